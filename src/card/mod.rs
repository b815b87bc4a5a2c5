//! Domain types: PAN (redacted), masked PAN, tracks, entry mode, KSN, brand, `CardRead`; bank
//! account numbers and `CheckRead` for checks. Sans-io.
mod account;
mod check;
mod ksn;
mod pan;
mod pin_block;
mod read;
mod secret;
pub(crate) mod swar;
mod track;

/// Inline short string of `CardRead`'s short fields; re-exported so callers need not name the crate.
pub use account::AccountNumber;
pub use check::{CheckRead, CheckType};
pub use compact_str::CompactString;
pub use ksn::Ksn;
pub use pan::{luhn_valid, Brand, MaskedPan, Pan};
pub(crate) use pan::{push_masked, star_pan};
pub use pin_block::PinBlock;
pub use read::{
    CardRead, CipherKind, EncBlock, EncTarget, EntryMode, Format, KeyVariant, TrackInfo,
    TrackStatus,
};
pub use secret::SecretText;
pub(crate) use track::split_at_byte;
pub use track::{Name, Track1, Track2, Track3};
