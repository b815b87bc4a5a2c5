//! `CardRead`: the one value every decoder returns, and its JSON form (design.md §3).
use compact_str::CompactString;
use serde_json::{json, Map, Value};

use super::track::{Track1Ref, Track2Ref};
use super::{Brand, CheckRead, Ksn, MaskedPan, SecretText, Track1};

/// Which framing the reader used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    IdtechOriginal,
    IdtechEnhanced,
    MagtekHid,
    MagtekKb,
    Vivotech2,
    Tracks,
    EmvTlv,
    /// A MagTek EMV data container (ARQC or batch data, "DynaPro format").
    MagtekEmv,
    /// A check's MICR line: `CardRead::check` holds the fields, the card fields stay empty.
    Micr,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::IdtechOriginal => "idtech-original",
            Format::IdtechEnhanced => "idtech-enhanced",
            Format::MagtekHid => "magtek-hid",
            Format::MagtekKb => "magtek-kb",
            Format::Vivotech2 => "vivotech2",
            Format::Tracks => "tracks",
            Format::EmvTlv => "emv-tlv",
            Format::MagtekEmv => "magtek-emv",
            Format::Micr => "micr",
        }
    }
}

/// POS entry mode as tag 9F39 carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    Manual,
    Chip,
    ContactlessChip,
    Fallback,
    Swipe,
    ContactlessMsd,
    /// Any other 9F39 value, kept as sent.
    Other(u8),
}

impl EntryMode {
    pub fn from_byte(b: u8) -> EntryMode {
        match b {
            0x01 => EntryMode::Manual,
            0x05 => EntryMode::Chip,
            0x07 => EntryMode::ContactlessChip,
            0x80 => EntryMode::Fallback,
            0x90 => EntryMode::Swipe,
            0x91 => EntryMode::ContactlessMsd,
            o => EntryMode::Other(o),
        }
    }
    pub fn to_byte(self) -> u8 {
        match self {
            EntryMode::Manual => 0x01,
            EntryMode::Chip => 0x05,
            EntryMode::ContactlessChip => 0x07,
            EntryMode::Fallback => 0x80,
            EntryMode::Swipe => 0x90,
            EntryMode::ContactlessMsd => 0x91,
            EntryMode::Other(o) => o,
        }
    }
    /// Two digits, as the gateway's `entry_mode` field wants.
    pub fn code(self) -> String {
        format!("{:02X}", self.to_byte())
    }
    /// Chip-first modes: a swipe's service-code check does not apply.
    pub fn is_chip(self) -> bool {
        matches!(self, EntryMode::Chip | EntryMode::ContactlessChip)
    }
}

/// Which DUKPT key the reader encrypted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVariant {
    /// Data variant then the one-way function (ID TECH "Data key").
    Data,
    /// Bare data variant, no one-way function.
    DataVariant,
    /// PIN variant (MagTek default, ID TECH "PIN key").
    Pin,
}

impl KeyVariant {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyVariant::Data => "data",
            KeyVariant::DataVariant => "data-variant",
            KeyVariant::Pin => "pin",
        }
    }
    pub fn parse(s: &str) -> Option<KeyVariant> {
        match s {
            "data" => Some(KeyVariant::Data),
            "data-variant" => Some(KeyVariant::DataVariant),
            "pin" => Some(KeyVariant::Pin),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherKind {
    Tdes,
    Aes,
}

impl CipherKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CipherKind::Tdes => "tdes",
            CipherKind::Aes => "aes",
        }
    }
    pub fn block_len(self) -> usize {
        match self {
            CipherKind::Tdes => 8,
            CipherKind::Aes => 16,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TrackStatus {
    Ok,
    /// The reader reported a bad read.
    Error,
    #[default]
    Absent,
}

impl TrackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackStatus::Ok => "ok",
            TrackStatus::Error => "error",
            TrackStatus::Absent => "absent",
        }
    }
}

/// One track as the JSON shows it: status and masked text (never clear).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TrackInfo {
    pub status: TrackStatus,
    pub masked: Option<String>,
}

/// What an encrypted block holds once decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncTarget {
    /// One track (1..=3), its own CBC chain.
    Track(u8),
    /// ID TECH original format: T1‖T2[‖T3] as one CBC chain.
    Joined,
    /// A chip tag (57, 5A, 56, 9F6B, DFEF4D). `whole_tlv`: the plaintext is tag+length+value
    /// (VP3300/NEO 2) rather than the value only (Augusta keyboard mode); `None` = find out.
    Tag { tag: u32, value_len: Option<usize> },
    /// A MagTek container's DFDF59: nested TLV (`FC { F2 { … } }`) then `pad` pad bytes.
    MagtekTlv { pad: u8 },
}

/// Ciphertext as the reader sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncBlock {
    pub target: EncTarget,
    pub data: Vec<u8>,
}

/// The one value a decoder returns. Holds no clear PAN in anything `Debug` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct CardRead {
    pub format: Format,
    pub entry_mode: Option<EntryMode>,
    pub encrypted: bool,
    pub ksn: Option<Ksn>,
    pub key_variant: Option<KeyVariant>,
    pub cipher: Option<CipherKind>,
    pub device_serial: Option<CompactString>,
    // Short fields are inline strings: no heap allocation per decode (a name over 24 bytes
    // spills to the heap).
    pub masked_pan: Option<MaskedPan>,
    pub last4: Option<CompactString>,
    pub brand: Option<Brand>,
    pub expiry: Option<CompactString>,
    pub cardholder_name: Option<CompactString>,
    pub service_code: Option<CompactString>,
    /// Tracks 1, 2, 3.
    pub tracks: [TrackInfo; 3],
    pub enc_blocks: Vec<EncBlock>,
    /// Plaintext track lengths from the frame's length fields (ID TECH: LRC included).
    pub plain_lens: [Option<usize>; 3],
    /// SHA-1 of each clear track as the reader sent them (all-zero dummies dropped).
    pub hashes: [Option<[u8; 20]>; 3],
    /// Clear tracks (sentinel to sentinel, no LRC) when the reader sent clear data.
    pub clear: [Option<SecretText>; 3],
    /// Filled by `parse::decrypt_read`.
    pub decrypted: Option<[Option<SecretText>; 3]>,
    /// Whether the reader's plaintext includes the LRC (ID TECH yes, MagTek no).
    pub plain_has_lrc: bool,
    /// A check read from a MICR reader (format `micr`); boxed so card reads stay small.
    pub check: Option<Box<CheckRead>>,
    pub warnings: Vec<String>,
}

impl CardRead {
    pub fn new(format: Format) -> CardRead {
        CardRead {
            format,
            entry_mode: None,
            encrypted: false,
            ksn: None,
            key_variant: None,
            cipher: None,
            device_serial: None,
            masked_pan: None,
            last4: None,
            brand: None,
            expiry: None,
            cardholder_name: None,
            service_code: None,
            tracks: Default::default(),
            enc_blocks: Vec::new(),
            plain_lens: [None; 3],
            hashes: [None; 3],
            clear: Default::default(),
            decrypted: None,
            plain_has_lrc: false,
            check: None,
            warnings: Vec::new(),
        }
    }

    /// Sets PAN-derived fields (masked PAN, last4, brand) from a PAN as the reader showed it.
    pub fn set_pan_text(&mut self, pan: &str) {
        let m = MaskedPan::from_reader(pan);
        self.last4 = m.last4();
        self.brand = m.brand();
        self.masked_pan = Some(m);
    }

    /// Fills last4, expiry, service code, name, masked PAN and brand from clear tracks
    /// (index 0 = Track 1). Track 2 wins over Track 1 for the shared fields.
    pub fn fill_from_clear(&mut self, tracks: &[Option<SecretText>; 3]) {
        // Fields are borrowed from the tracks and copied once into the JSON-facing strings;
        // Track 1 is parsed whole only when Track 2 is unusable.
        let t1_text = tracks[0].as_ref().map(SecretText::expose);
        if let Some(name) = t1_text.and_then(Track1::name_field) {
            if !name.is_empty() {
                self.cardholder_name = Some(name.into());
            }
        }
        let fields = match tracks[1]
            .as_ref()
            .and_then(|t| Track2Ref::parse(t.expose()))
        {
            Some(t) => Some((t.pan, t.expiry, t.service_code)),
            None => t1_text
                .and_then(Track1Ref::parse)
                .map(|t| (t.pan, t.expiry, t.service_code)),
        };
        let Some((pan, expiry, service)) = fields else {
            return;
        };
        self.masked_pan = Some(MaskedPan::from_reader(pan));
        self.last4 = Some(pan.get(pan.len().saturating_sub(4)..).unwrap_or("").into());
        self.brand = Brand::from_bin(pan);
        if let Some(e) = expiry {
            self.expiry = Some(e.into());
        }
        if let Some(s) = service {
            self.service_code = Some(s.into());
        }
    }

    /// A check read: format `micr` with its fields.
    pub fn from_check(check: CheckRead, warnings: Vec<String>) -> CardRead {
        let mut r = CardRead::new(Format::Micr);
        r.check = Some(Box::new(check));
        r.warnings = warnings;
        r
    }

    /// The design.md §3 JSON object (the Checks shape for a check read).
    pub fn to_json(&self) -> Value {
        if let Some(c) = &self.check {
            return json!({"format": self.format.as_str(), "check": c.to_json(),
                          "warnings": self.warnings});
        }
        let mut tracks = Map::new();
        for (i, t) in self.tracks.iter().enumerate() {
            tracks.insert(
                (i + 1).to_string(),
                json!({"status": t.status.as_str(), "masked": t.masked}),
            );
        }
        let decrypted = self.decrypted.as_ref().map(|d| {
            let mut m = Map::new();
            for (i, t) in d.iter().enumerate() {
                m.insert(
                    (i + 1).to_string(),
                    t.as_ref().map_or(Value::Null, |s| Value::from(s.expose())),
                );
            }
            Value::Object(m)
        });
        json!({
            "format": self.format.as_str(),
            "entry_mode": self.entry_mode.map(EntryMode::code),
            "encrypted": self.encrypted,
            "ksn": self.ksn.as_ref().map(Ksn::to_hex),
            "key_variant": self.key_variant.map(KeyVariant::as_str),
            "cipher": self.cipher.map(CipherKind::as_str),
            "device_serial": self.device_serial,
            "masked_pan": self.masked_pan.as_ref().map(|m| m.as_str().to_string()),
            "last4": self.last4,
            "brand": self.brand.map(Brand::code),
            "expiry": self.expiry,
            "cardholder_name": self.cardholder_name,
            "service_code": self.service_code,
            "tracks": tracks,
            "decrypted": decrypted,
            "warnings": self.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_and_no_clear_pan_in_debug() {
        let mut r = CardRead::new(Format::Tracks);
        let clear = [
            None,
            Some(SecretText::new(";4111111111111111=29121010000?")),
            None,
        ];
        r.fill_from_clear(&clear);
        r.clear = clear;
        r.entry_mode = Some(EntryMode::Swipe);
        let v = r.to_json();
        assert_eq!(v["format"], "tracks");
        assert_eq!(v["entry_mode"], "90");
        assert_eq!(v["masked_pan"], "411111******1111");
        assert_eq!(v["last4"], "1111");
        assert_eq!(v["brand"], "VI");
        assert_eq!(v["expiry"], "2912");
        assert_eq!(v["service_code"], "101");
        assert_eq!(v["tracks"]["3"]["status"], "absent");
        assert_eq!(v["decrypted"], Value::Null);
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 16);
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("4111111111111111"));
        assert_eq!(EntryMode::from_byte(0x05).code(), "05");
    }
}
