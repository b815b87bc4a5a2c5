//! TDES and AES DUKPT, ISO 9564 PIN blocks, MACs. Sans-io.
pub mod des_fast;
pub mod error;
pub mod secret;
pub mod tdes_dukpt;

pub use error::{CryptoError, PinBlockFault};
pub use secret::SecretKey;
pub mod mac;
pub mod modes;
