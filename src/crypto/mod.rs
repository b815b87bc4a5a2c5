//! TDES and AES DUKPT, ISO 9564 PIN blocks, MACs. Sans-io.
//!
//! Entry points: [`decrypt_reader_data`] / [`encrypt_reader_data`] for reader traffic,
//! [`dukpt`] for every key usage, MAC and PIN block by KSN, [`DukptHost`] for a host that caches
//! IPEKs/IKs. The TDES path runs on our own table-driven DES ([`des_fast`]).
pub mod aes_dukpt;
pub mod cache;
pub mod des_fast;
pub mod dukpt;
pub mod error;
pub mod mac;
pub mod modes;
pub mod pinblock;
pub mod reader;
pub mod reader_decryptor;
pub mod secret;
pub mod tdes_dukpt;

pub use aes_dukpt::{AesKsn, AesUsage, KeyType};
pub use cache::DukptHost;
pub use dukpt::{
    decrypt_data, derive_key, encrypt_data, mac as dukpt_mac, pin_block_decrypt, pin_block_encrypt,
    pin_block_encrypt_with_rng, DataCipher, Ksn, Usage,
};
pub use error::{CryptoError, PinBlockFault};
pub use pinblock::PinFormat;
pub use reader::{decrypt_reader_data, encrypt_reader_data, ReaderCipher, ReaderKey};
pub use reader_decryptor::BdkDecryptor;
pub use secret::SecretKey;
pub use tdes_dukpt::{TdesKsn, TdesVariant};
