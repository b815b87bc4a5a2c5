//! nom decoders for reader output and ISO 7813 tracks. Sans-io, panic-free.
//!
//! `decode_frame` detects the format and returns a [`CardRead`]; `split_frames` cuts an input
//! holding several frames; `validate` turns policy checks into warnings.
mod detect;
pub mod emv;
mod error;
pub mod idtech;
pub mod magtek;
pub mod magtek_clear;
pub mod magtek_emv;
pub mod micr;
pub mod tlv;
pub mod tracks;
pub mod vivo;

pub use detect::{decode_frame, decode_frame_as, split_frames};
pub use error::ParseError;

pub use crate::card::CardRead;
pub mod build;
mod decrypt;
mod validate;

pub use decrypt::{decrypt_read, DecryptError, TrackDecryptor};
pub use validate::{validate, validate_at};

/// Whether input is keyboard text rather than binary frames (MICR lines written with the
/// Unicode E-13B symbols count as text).
pub fn detect_is_text(input: &[u8]) -> bool {
    detect::is_text(input) || (input.contains(&0xE2) && micr::from_unicode(input).is_some())
}
