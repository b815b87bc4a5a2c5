//! The pipeline, configuration, the local API for kiosks.
pub mod api;
pub mod capture_pin;
pub mod captures;
pub mod config;
pub mod driven;
pub mod events;
pub mod lane;
pub mod metrics;
pub mod micr_ask;
pub mod pipeline;
pub mod service;
pub mod telemetry;
