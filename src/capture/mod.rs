//! The capture file format: record and replay reader traffic.
