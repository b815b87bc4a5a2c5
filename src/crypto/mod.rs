//! TDES and AES DUKPT, ISO 9564 PIN blocks, MACs. Sans-io.
//!
//! Entry points: [`decrypt_reader_data`] / [`encrypt_reader_data`] for reader traffic,
//! [`dukpt`] for every key usage, MAC and PIN block by KSN, [`DukptHost`] for a host that caches
//! IPEKs/IKs.
//!
//! Two DES cores ([`DesCore`]). [`des_fast`] is table-driven: its lookups are indexed by key and
//! data bits, so its cache footprint depends on the key (a cache-timing channel to anything
//! sharing the CPU); it is many times faster. [`des_ct`] reads every S-box entry and selects with
//! masks: no secret-dependent address or branch. Which is used where:
//! - the gateway simulator: the constant-time core for every BDK except the public ANSI X9.24-1
//!   test BDK (`Bdk::des_core`, [`DesCore::for_bdk`]), for reader data and PIN blocks;
//! - the lab tools (`decode --bdk`, `dukpt`, `pinblock`, `reader read --bdk`, `synth`), the bench
//!   and [`DukptHost`]: the fast core (test and lab keys, where speed is the point);
//! - the agent itself holds no BDK and derives nothing: it forwards reader ciphertext.
//!
//! AES DUKPT uses the `aes` crate (bitsliced in software, or AES-NI), no DES.
pub mod aes_dukpt;
pub mod cache;
pub mod des_ct;
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
    decrypt_data, derive_key, encrypt_data, mac as dukpt_mac, pin_block_decrypt,
    pin_block_decrypt_on, pin_block_encrypt, pin_block_encrypt_with_rng, DataCipher, Ksn, Usage,
};
pub use error::{CryptoError, PinBlockFault};
pub use pinblock::PinFormat;
pub use reader::{
    decrypt_reader_data, decrypt_reader_data_on, encrypt_reader_data, DesCore, ReaderCipher,
    ReaderKey,
};
pub use reader_decryptor::BdkDecryptor;
pub use secret::SecretKey;
pub use tdes_dukpt::{TdesKsn, TdesVariant};
