//! TDES and AES DUKPT, ISO 9564 PIN blocks, MACs. Sans-io.
pub mod des_fast;
