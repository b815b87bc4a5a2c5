//! nom decoders for reader output and ISO 7813 tracks. Sans-io, panic-free.
