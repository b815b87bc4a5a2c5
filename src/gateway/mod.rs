//! The Customer record and its validation, the OnePay HTTP client, tolerant response parsing,
//! and the local simulator.
//!
//! - `record` + `validate`: the request/response types and every customer-api.md rule.
//! - `client`: `GatewayClient::save_customer` (with retries) / `save_once` → `Outcome`.
//! - `response`: reading a reply however the gateway encodes it.
//! - `sim`: the simulator behind `cardlane gateway-sim`.
pub mod check_record;
pub mod client;
pub mod lenient;
pub mod record;
pub mod response;
pub mod secret;
pub mod sim;
pub mod swipe;
pub mod validate;

pub use client::{ClientConfig, ClientError, Delivery, GatewayClient, Outcome, RetryPolicy};
pub use record::{
    CardRequest, CheckRequest, CustomerFields, CustomerReply, CustomerRequest, CustomerResponse,
};
pub use response::{parse_reply, ResponseError};
pub use secret::{AccountString, ApiKey, PanString, SecretString};
pub use validate::{validate, validate_customer_fields, FieldError, Rule};
