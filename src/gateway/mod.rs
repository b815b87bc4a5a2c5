//! The Customer record and its validation, the OnePay HTTP client, tolerant response parsing,
//! and the local simulator.
pub mod lenient;
pub mod record;
pub mod secret;
pub mod validate;

pub use record::{
    CardRequest, CheckRequest, CustomerFields, CustomerReply, CustomerRequest, CustomerResponse,
};
pub use secret::{ApiKey, PanString, SecretString};
pub use validate::{validate, validate_customer_fields, FieldError, Rule};
pub mod client;
pub mod response;
pub use client::{ClientConfig, Delivery, GatewayClient, Outcome, RetryPolicy};
pub mod sim;
pub mod swipe;
