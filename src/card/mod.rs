//! Domain types: PAN (redacted), masked PAN, tracks, entry mode, KSN, brand, `CardRead`. Sans-io.
