//! The pipeline, configuration, the local API for kiosks.
pub mod config;
