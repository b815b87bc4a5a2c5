//! Reader profiles: one TOML file per reader model in `devices/`, embedded in the binary and
//! overridable by a directory. Validated on load; errors name the file and the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::parse::micr::{SymbolSet, Symbols};

/// How the reader reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    Hid,
    Serial,
    Keyboard,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Hid => "hid",
            TransportKind::Serial => "serial",
            TransportKind::Keyboard => "keyboard",
        }
    }
}

/// How chunks become frames (see `device::framer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// Fixed-size, zero-filled HID report holding one ID TECH `STX…ETX` frame (SecureMag class).
    IdtechReport,
    /// 64-byte continuation reports carrying `STX` or `ViVOtech2` frames (Augusta, VP3300).
    ContinuationReport,
    /// Fixed-size report that is itself the frame (MagTek MagneSafe HID layout).
    MagtekReport,
    /// Serial byte stream with `STX…ETX` and/or `ViVOtech2` frames.
    Stream,
    /// Keyboard text up to CR, with an inter-character time-out.
    Text,
    /// MagTek MMS packets over 64-byte reports (DynaFlex): card data from transaction updates.
    MmsPacket,
    /// MagneSafe V5 input reports: id 1 a swipe (the `magtek-report` layout, `report.size`
    /// bytes), id 2 notifications whose ARQC or transaction-result data is an EMV container.
    MagtekV5Report,
    /// Epson ESC/POS `FS a` replies on a serial line: `0x5F`, status, MICR data, NUL.
    EpsonMicr,
}

/// Whether, and how, the host drives the reader (design.md §3 "Driving readers").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The reader sends by itself (MSR swipes, keyboard readers, Quick Chip).
    #[default]
    None,
    /// ID TECH NEO 2 (ViVOtech2 commands).
    Neo2,
    /// MagTek MMS (DynaFlex family).
    Mms,
    /// MagTek MagneSafe V5 extended commands (eDynamo, tDynamo).
    MagtekV5,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::None => "none",
            Protocol::Neo2 => "neo2",
            Protocol::Mms => "mms",
            Protocol::MagtekV5 => "magtek-v5",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyUsage {
    /// DUKPT data key (request data variant + one-way function): ID TECH default.
    Data,
    /// Data variant without the one-way function.
    DataVariant,
    /// PIN variant: MagTek default.
    Pin,
    /// The reader does not encrypt.
    None,
}

/// What the record's `track_data` carries for this reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrackData {
    Frame,
    EncryptedTrack,
    ClearTracks,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub vid: Option<u16>,
    /// Product ids; empty = any product of the vendor (then usage page/interface decide).
    #[serde(default)]
    pub pid: Vec<u16>,
    pub usage_page: Option<u16>,
    pub interface: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Input report size in bytes, without the report id.
    pub size: usize,
    /// Report id (0 = unnumbered).
    #[serde(default)]
    pub id: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Wedge {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffix: String,
    pub char_timeout_ms: Option<u64>,
    /// Block padding character dropped around messages (iDynamo: `x`).
    pub pad: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Serial {
    pub baud: u32,
    #[serde(default = "default_parity")]
    pub parity: Parity,
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

fn default_parity() -> Parity {
    Parity::None
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}

/// What a reader reads: cards (the default) or checks' MICR lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReaderKind {
    #[default]
    Card,
    Micr,
}

/// `[micr]`: how a check reader writes the E-13B symbols (spec micr.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MicrSettings {
    /// `magtek-NN` (the `xx` of MagTek format `00xx`), `ranger`, `axiohm`, `opos`, `font`,
    /// `epson`, `auto`.
    pub symbol_set: String,
    /// `[micr.symbols]`: the reader's own characters for the four symbols (`epson` only,
    /// whose characters the spec does not give).
    pub symbols: Option<MicrSymbols>,
    /// Bytes the host writes to the reader when a check capture is armed for it (Epson's
    /// `FS a n`, `[0x1C, 0x61, 0]`): the reader reads a check only when asked.
    #[serde(default)]
    pub read_command: Vec<u8>,
}

/// `[micr.symbols]`: one character each. `dash = "0"`: the reader sends the dash as a zero.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MicrSymbols {
    pub transit: String,
    pub on_us: String,
    pub amount: String,
    pub dash: String,
    pub unreadable: String,
}

impl MicrSymbols {
    fn to_symbols(&self) -> Option<Symbols> {
        let one = |s: &str| match s.as_bytes() {
            [c] => Some(*c),
            _ => None,
        };
        let dash = match one(&self.dash)? {
            b'0' => None,
            d => Some(d),
        };
        Symbols::new(
            one(&self.transit)?,
            one(&self.on_us)?,
            one(&self.amount)?,
            dash,
            one(&self.unreadable)?,
        )
    }
}

impl MicrSettings {
    /// The symbol set, with the profile's own characters for `epson`.
    pub fn symbol_set(&self) -> Option<SymbolSet> {
        match (SymbolSet::parse(&self.symbol_set)?, &self.symbols) {
            (SymbolSet::Epson(_), Some(own)) => own.to_symbols().map(SymbolSet::Epson),
            (set, None) => Some(set),
            (_, Some(_)) => None,
        }
    }
}

/// A MagneSafe V5 reader's command settings (`[magtek_v5]`, with `protocol = "magtek-v5"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MagtekV5Settings {
    /// Report id of the command feature report (the spec does not give it; 0 by default).
    #[serde(default)]
    pub feature_report_id: u8,
    /// Start EMV card-type bits per interface (spec §3.2: `01` MSR, `02` contact); 0 leaves
    /// the interface out (a reader without it).
    #[serde(default = "msr_bit")]
    pub msr: u8,
    #[serde(default = "contact_bit")]
    pub contact: u8,
    #[serde(default)]
    pub contactless: u8,
}

fn msr_bit() -> u8 {
    0x01
}
fn contact_bit() -> u8 {
    0x02
}

impl Default for MagtekV5Settings {
    fn default() -> Self {
        MagtekV5Settings {
            feature_report_id: 0,
            msr: msr_bit(),
            contact: contact_bit(),
            contactless: 0,
        }
    }
}

/// One reader model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub vendor: String,
    #[serde(rename = "match", default)]
    pub matcher: Match,
    pub transport: TransportKind,
    pub report: Option<Report>,
    pub framing: Framing,
    /// Whether the host drives the reader with commands (default `none`).
    #[serde(default)]
    pub protocol: Protocol,
    /// The reader has a keypad and answers NEO 2 `62-01` (PIN entry with its own PAN,
    /// reader-protocols.md §1.6). A `[[readers]] pin_entry` in the configuration wins.
    #[serde(default)]
    pub pin_entry: bool,
    pub key_usage: KeyUsage,
    pub track_data: TrackData,
    /// POS entry mode to assume when a frame does not say (`90` swipe, …).
    pub entry_mode: Option<String>,
    /// Whether clear (unencrypted) card data from this reader is acceptable.
    #[serde(default)]
    pub allow_clear: bool,
    pub wedge: Option<Wedge>,
    pub serial: Option<Serial>,
    /// Operator advice shown with the reader (e.g. how to switch it to HID mode).
    pub hint: Option<String>,
    /// `micr` for check readers (then `[micr]` is required).
    #[serde(default)]
    pub kind: ReaderKind,
    pub micr: Option<MicrSettings>,
    /// `protocol = "magtek-v5"`: feature report id and card-type bits.
    pub magtek_v5: Option<MagtekV5Settings>,
}

const ENTRY_MODES: [&str; 6] = ["90", "91", "05", "07", "80", "01"];

impl Profile {
    /// Parses and validates one profile file's text.
    pub fn from_toml(file: &str, text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            file: file.to_string(),
            key: key_at(text, e.span()),
            message: e.message().to_string(),
        })?;
        profile.validate(file)?;
        Ok(profile)
    }

    fn validate(&self, file: &str) -> Result<(), ProfileError> {
        let bad = |key: &str, reason: &str| {
            Err(ProfileError::Invalid {
                file: file.to_string(),
                key: key.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.id.is_empty()
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("id", "must be non-empty lower-case letters, digits and '-'");
        }
        if let Some(m) = &self.entry_mode {
            if !ENTRY_MODES.contains(&m.as_str()) {
                return bad("entry_mode", "must be one of 90, 91, 05, 07, 80, 01");
            }
        }
        match self.transport {
            TransportKind::Hid => {
                if self.matcher.vid.is_none() {
                    return bad("match.vid", "required for a HID reader");
                }
                match &self.report {
                    None => return bad("report", "required for a HID reader"),
                    Some(r) if r.size == 0 || r.size > 4096 => {
                        return bad("report.size", "must be 1..=4096")
                    }
                    Some(_) => {}
                }
                if !matches!(
                    self.framing,
                    Framing::IdtechReport
                        | Framing::ContinuationReport
                        | Framing::MagtekReport
                        | Framing::MmsPacket
                        | Framing::MagtekV5Report
                ) {
                    return bad("framing", "a HID reader needs a report framing");
                }
            }
            TransportKind::Serial => {
                match &self.serial {
                    None => return bad("serial", "required for a serial reader"),
                    Some(s) if s.baud == 0 => return bad("serial.baud", "must be > 0"),
                    Some(s) if !(5..=8).contains(&s.data_bits) => {
                        return bad("serial.data_bits", "must be 5..=8")
                    }
                    Some(s) if !(1..=2).contains(&s.stop_bits) => {
                        return bad("serial.stop_bits", "must be 1 or 2")
                    }
                    Some(_) => {}
                }
                if !matches!(
                    self.framing,
                    Framing::Stream | Framing::Text | Framing::EpsonMicr
                ) {
                    return bad(
                        "framing",
                        "a serial reader needs stream, text or epson-micr framing",
                    );
                }
            }
            TransportKind::Keyboard => {
                if self.framing != Framing::Text {
                    return bad("framing", "a keyboard reader needs text framing");
                }
            }
        }
        if let Some(pad) = self.wedge.as_ref().and_then(|w| w.pad.as_ref()) {
            if pad.len() != 1 || !pad.is_ascii() {
                return bad("wedge.pad", "must be one ASCII character");
            }
        }
        match (self.protocol, self.transport) {
            (Protocol::None, _) => {}
            (Protocol::Neo2, TransportKind::Serial) => {}
            (Protocol::Neo2, TransportKind::Hid) => {
                if self.report.as_ref().map(|r| r.size) != Some(64) {
                    return bad("report.size", "a NEO 2 HID reader uses 64-byte reports");
                }
            }
            (Protocol::Mms | Protocol::MagtekV5, TransportKind::Hid) => {}
            (_, _) => {
                return bad(
                    "protocol",
                    "a driven reader needs a transport the host can write to (hid or serial; mms and magtek-v5: hid)",
                )
            }
        }
        if self.magtek_v5.is_some() && self.protocol != Protocol::MagtekV5 {
            return bad("magtek_v5", "only with protocol = \"magtek-v5\"");
        }
        // PIN entry is a NEO 2 command: a reader the host does not drive cannot be asked.
        if self.pin_entry && self.protocol != Protocol::Neo2 {
            return bad(
                "pin_entry",
                "only a driven NEO 2 reader (protocol = \"neo2\") is asked for a PIN",
            );
        }
        if matches!(
            self.framing,
            Framing::MagtekReport | Framing::MagtekV5Report
        ) && self.report.is_none()
        {
            return bad("report.size", "magtek-report framing needs a report size");
        }
        match (self.kind, &self.micr) {
            (ReaderKind::Card, Some(_)) => return bad("micr", "only for kind = \"micr\""),
            (ReaderKind::Micr, None) => return bad("micr", "required for kind = \"micr\""),
            (ReaderKind::Micr, Some(m)) => {
                let Some(set) = SymbolSet::parse(&m.symbol_set) else {
                    return bad(
                        "micr.symbol_set",
                        "must be magtek-NN (00-04 or 06, plus 16 or 32), ranger, axiohm, opos, font, epson or auto",
                    );
                };
                if m.symbols.is_some() && !set.is_epson_reply() {
                    return bad(
                        "micr.symbols",
                        "only for symbol_set = \"epson\" (the other sets are fixed)",
                    );
                }
                if m.symbol_set().is_none() {
                    return bad(
                        "micr.symbols",
                        "each must be one printable ASCII character, no digit (dash may be \"0\"), all different",
                    );
                }
                // A MICR line ends with CR/LF (or a pause): the text engine frames it; an
                // Epson reply is binary (header, status byte, NUL) and has its own.
                let framing = if set.is_epson_reply() {
                    Framing::EpsonMicr
                } else {
                    Framing::Text
                };
                if self.framing != framing {
                    return bad(
                        "framing",
                        if set.is_epson_reply() {
                            "an Epson MICR reader needs epson-micr framing"
                        } else {
                            "a MICR reader needs text framing"
                        },
                    );
                }
                if !m.read_command.is_empty() && self.transport != TransportKind::Serial {
                    return bad(
                        "micr.read_command",
                        "the host writes it on a serial line: only for a serial reader",
                    );
                }
                if self.key_usage != KeyUsage::None {
                    return bad("key_usage", "a MICR reader does not encrypt: use \"none\"");
                }
            }
            (ReaderKind::Card, None) => {
                if self.framing == Framing::EpsonMicr {
                    return bad("framing", "epson-micr framing is for kind = \"micr\"");
                }
            }
        }
        Ok(())
    }

    /// For a check reader: its symbol set, and whether letters arrive upper case (keyboard
    /// emulation sends every letter upper case).
    pub fn micr_decoding(&self) -> Option<(SymbolSet, bool)> {
        let set = self.micr.as_ref()?.symbol_set()?;
        (self.kind == ReaderKind::Micr).then_some((set, self.transport == TransportKind::Keyboard))
    }

    /// What the host writes to a check reader when a check capture is armed for it (empty:
    /// the reader sends by itself).
    pub fn micr_read_command(&self) -> &[u8] {
        match (&self.kind, &self.micr) {
            (ReaderKind::Micr, Some(m)) => &m.read_command,
            _ => &[],
        }
    }

    /// Whether this profile describes a device with these USB ids.
    pub fn matches_usb(
        &self,
        vid: u16,
        pid: u16,
        usage_page: Option<u16>,
        iface: Option<i32>,
    ) -> bool {
        let m = &self.matcher;
        m.vid == Some(vid)
            && (m.pid.is_empty() || m.pid.contains(&pid))
            && (m.usage_page.is_none() || usage_page.is_none() || m.usage_page == usage_page)
            && (m.interface.is_none() || iface.is_none() || m.interface == iface)
            // A vendor-wide profile must pin something else down, or it would claim every device.
            && (!m.pid.is_empty() || (m.usage_page.is_some() && usage_page == m.usage_page))
    }
}

/// The key named at a TOML error's position: the `key =` on that line, or its `[table]`.
fn key_at(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::from("(document)");
    };
    let upto = text.get(..span.start.min(text.len())).unwrap_or("");
    let line_start = upto.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text
        .get(line_start..)
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("");
    let table = upto
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .map(|t| t.trim_matches(['[', ']']).trim().to_string())
        })
        .filter(|_| !line.trim_start().starts_with('['));
    let key = line.split('=').next().unwrap_or("").trim().to_string();
    match (table, key.is_empty()) {
        (Some(t), false) => format!("{t}.{key}"),
        (Some(t), true) => t,
        (None, false) => key,
        (None, true) => String::from("(document)"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: key `{key}`: {message}")]
    Parse {
        file: String,
        key: String,
        message: String,
    },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
    #[error("{file}: key `id`: profile id `{id}` is defined twice")]
    Duplicate { file: String, id: String },
    #[error("{file}: cannot read ({kind})")]
    Io { file: String, kind: String },
    #[error("no profile with id `{0}`")]
    Unknown(String),
}

impl ProfileError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ProfileError::Parse { .. } => "profile-parse",
            ProfileError::Invalid { .. } => "profile-invalid",
            ProfileError::Duplicate { .. } => "profile-duplicate",
            ProfileError::Io { .. } => "profile-io",
            ProfileError::Unknown(_) => "profile-unknown",
        }
    }
}

macro_rules! embedded {
    ($($f:literal),* $(,)?) => {
        &[$(($f, include_str!(concat!("../../devices/", $f)))),*]
    };
}

/// Profile files compiled into the binary (a test checks this list against `devices/`).
pub const EMBEDDED: &[(&str, &str)] = embedded!(
    "idtech-securemag-hid.toml",
    "idtech-securemag-kb.toml",
    "idtech-securekey-hid.toml",
    "idtech-secured-hid.toml",
    "idtech-secured-kb.toml",
    "idtech-sredkey2-hid.toml",
    "idtech-sredkey2-kb.toml",
    "idtech-augusta-hid.toml",
    "idtech-augusta-kb.toml",
    "idtech-augusta-s-hid.toml",
    "idtech-augusta-s-kb.toml",
    "idtech-vp3300-hid.toml",
    "idtech-vp3350-hid.toml",
    "idtech-serial.toml",
    "idtech-neo2-serial.toml",
    "magtek-dynamag-hid.toml",
    "magtek-dynamag-kb.toml",
    "magtek-edynamo-hid.toml",
    "magtek-tdynamo-hid.toml",
    "magtek-dynaflex-hid.toml",
    "magtek-idynamo-kb.toml",
    "magtek-sureswipe-hid.toml",
    "generic-keyboard-wedge.toml",
    "magtek-micr-serial.toml",
    "magtek-micr-kb.toml",
    "opos-micr-serial.toml",
    "epson-micr-serial.toml",
);

/// A validated set of profiles, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    by_id: BTreeMap<String, Profile>,
}

impl Profiles {
    /// The profiles compiled into the binary.
    pub fn embedded() -> Result<Profiles, ProfileError> {
        Profiles::from_files(
            EMBEDDED
                .iter()
                .map(|(f, t)| (format!("devices/{f}"), t.to_string())),
        )
    }

    /// Every `*.toml` in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let io = |file: &Path, e: std::io::Error| ProfileError::Io {
            file: file.display().to_string(),
            kind: e.kind().to_string(),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                files.push((path.display().to_string(), text));
            }
        }
        files.sort();
        Profiles::from_files(files)
    }

    /// The embedded profiles, with those in `dir` replacing same-id ones and adding new ones.
    pub fn embedded_with_overrides(dir: Option<&Path>) -> Result<Profiles, ProfileError> {
        let mut all = Profiles::embedded()?;
        if let Some(dir) = dir {
            for p in Profiles::load_dir(dir)?.by_id.into_values() {
                all.by_id.insert(p.id.clone(), p);
            }
        }
        Ok(all)
    }

    pub fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Profiles, ProfileError> {
        let mut by_id = BTreeMap::new();
        for (file, text) in files {
            let p = Profile::from_toml(&file, &text)?;
            if by_id.contains_key(&p.id) {
                return Err(ProfileError::Duplicate { file, id: p.id });
            }
            by_id.insert(p.id.clone(), p);
        }
        Ok(Profiles { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.by_id.get(id)
    }

    pub fn require(&self, id: &str) -> Result<&Profile, ProfileError> {
        self.get(id)
            .ok_or_else(|| ProfileError::Unknown(id.to_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The best profile for a USB device seen on `transport`: product-id matches win over
    /// vendor-wide (usage page) matches.
    pub fn match_usb(
        &self,
        transport: TransportKind,
        vid: u16,
        pid: u16,
        usage_page: Option<u16>,
        iface: Option<i32>,
    ) -> Option<&Profile> {
        let mut hits = self
            .iter()
            .filter(|p| p.transport == transport && p.matches_usb(vid, pid, usage_page, iface));
        let first = hits.next()?;
        if !first.matcher.pid.is_empty() {
            return Some(first);
        }
        Some(hits.find(|p| !p.matcher.pid.is_empty()).unwrap_or(first))
    }

    /// Vendor ids named by any profile (for the udev rules).
    pub fn vendor_ids(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.iter().filter_map(|p| p.matcher.vid).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
