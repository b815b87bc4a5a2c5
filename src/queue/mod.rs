//! Durable store-and-forward of Customer records (SQLite, encrypted at rest).
