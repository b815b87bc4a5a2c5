//! `cardlane synth`: reader output built from clear tracks, a BDK and a KSN, masked and encrypted
//! as each reader does (lab tool). With `--capture --profile ID` it writes a capture file
//! (design.md §4) chunked as that profile's transport delivers: HID reports of the profile's
//! size, serial reads split at awkward places, keystroke bursts.
//!
//! The BDK comes from `--bdk` only (never the environment): synth is for test keys.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cardlane::capture::{Capture, CaptureChunk, Headers};
use cardlane::card::{CipherKind, KeyVariant, Ksn};
use cardlane::crypto::reader_decryptor::{reader_cipher, reader_key};
use cardlane::crypto::{encrypt_reader_data, SecretKey};
use cardlane::device::profile::{Framing, Profile, Profiles, TransportKind};
use cardlane::device::ChunkKind;
use cardlane::parse::build::{self, IdtechSpec, MagtekSpec};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

const ANSI_TEST_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

/// Reader output formats synth can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthFormat {
    /// ID TECH enhanced binary frame (per-track CBC chains, SHA-1 hashes).
    IdtechEnhanced,
    /// ID TECH enhanced frame as keyboard text.
    IdtechEnhancedKb,
    /// ID TECH original binary frame (T1‖T2 one chain; TDES only).
    IdtechOriginal,
    /// ID TECH original frame as keyboard text.
    IdtechOriginalKb,
    /// MagTek MagneSafe V5 HID input report (888 bytes).
    MagtekHid,
    /// MagTek keyboard/serial text, security level 3.
    MagtekSl3,
    /// MagTek keyboard text, security level 2 (clear tracks).
    MagtekSl2,
    /// MagTek non-encrypting HID report (3 × 110-byte clear fields, 337 bytes).
    MagtekClearHid,
    /// ViVOtech2 frame holding the ID TECH enhanced frame in DFEE23.
    Vivotech2,
    /// Plain ISO 7813 wedge text.
    Tracks,
    /// A check's MICR line (--routing, --account, ...) in the profile's symbol set.
    Micr,
}

impl SynthFormat {
    fn is_text(self) -> bool {
        use SynthFormat::*;
        matches!(
            self,
            IdtechEnhancedKb | IdtechOriginalKb | MagtekSl3 | MagtekSl2 | Tracks | Micr
        )
    }
    fn is_encrypting(self) -> bool {
        use SynthFormat::*;
        !matches!(self, MagtekSl2 | MagtekClearHid | Tracks | Micr)
    }
    fn is_magtek(self) -> bool {
        use SynthFormat::*;
        matches!(self, MagtekHid | MagtekSl3 | MagtekSl2 | MagtekClearHid)
    }
    /// The format a profile's reader sends by default.
    fn for_profile(p: &Profile) -> SynthFormat {
        if p.micr_decoding().is_some() {
            return SynthFormat::Micr;
        }
        let magtek = p.vendor.eq_ignore_ascii_case("magtek");
        match (p.framing, magtek, p.allow_clear) {
            (Framing::MagtekReport, _, true) => SynthFormat::MagtekClearHid,
            (Framing::MagtekReport, _, false) => SynthFormat::MagtekHid,
            // A V5 reader in EMV mode still sends swipes as the MagneSafe report (id 1).
            (Framing::MagtekV5Report, _, _) => SynthFormat::MagtekHid,
            (Framing::Text, true, _) => SynthFormat::MagtekSl3,
            (Framing::Text, false, true) => SynthFormat::Tracks,
            (Framing::Text, false, false) => SynthFormat::IdtechEnhancedKb,
            _ if p.id.contains("vp33") => SynthFormat::Vivotech2,
            _ => SynthFormat::IdtechEnhanced,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Output format (default: what --profile's reader sends).
    #[arg(long, value_enum)]
    format: Option<SynthFormat>,
    /// Clear Track 1, start sentinel through end sentinel, no LRC.
    #[arg(long, value_name = "TEXT")]
    track1: Option<String>,
    #[arg(long, value_name = "TEXT")]
    track2: Option<String>,
    #[arg(long, value_name = "TEXT")]
    track3: Option<String>,
    /// Tracks the reader failed to read (1-3, repeatable): sent as `%E?`-style bad reads.
    #[arg(long = "bad-track", value_name = "N", value_parser = clap::value_parser!(u8).range(1..=3))]
    bad_track: Vec<u8>,
    /// Base derivation key (command line only; use test keys).
    #[arg(long, value_name = "HEX")]
    bdk: Option<String>,
    /// TDES DUKPT key serial number, 20 hex digits.
    #[arg(long, value_name = "HEX")]
    ksn: Option<String>,
    /// Key the reader encrypts with (default: ID TECH data, MagTek pin).
    #[arg(long, value_parser = ["data", "data-variant", "pin"])]
    variant: Option<String>,
    /// `aes` = the ID TECH option: AES-128-CBC under the 16-byte TDES data key.
    #[arg(long, value_parser = ["tdes", "aes"], default_value = "tdes")]
    cipher: String,
    /// Device serial number the reader reports.
    #[arg(long, default_value = "SYN0000001")]
    serial: String,
    /// Binary output as hex text (text formats are printed as text either way).
    #[arg(long)]
    hex: bool,
    /// Write a capture file chunked as --profile's transport delivers.
    #[arg(long, requires = "profile")]
    capture: bool,
    /// Reader profile id (devices/*.toml).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
    /// Capture: add this swipe to an existing capture file (same profile), in place.
    #[arg(
        long,
        value_name = "FILE",
        requires = "capture",
        conflicts_with = "out"
    )]
    append: Option<PathBuf>,
    /// Output file (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Capture: pause before this swipe's first chunk.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    delay_ms: u64,
    /// Capture: bytes the line delivers before the frame (noise), as hex.
    #[arg(long, value_name = "HEX", requires = "capture")]
    garbage: Option<String>,
    /// Capture: the reader is unplugged after this many bytes of the frame.
    #[arg(long, value_name = "N", requires = "capture")]
    cut: Option<usize>,
    /// Capture: seed for where serial reads and keystroke bursts split.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    micr: Box<MicrArgs>,
}

/// `--format micr`: the fields of the check (test numbers only: the account is card-like data).
#[derive(clap::Args, Default)]
struct MicrArgs {
    /// Routing number as printed between the transit symbols.
    #[arg(long, value_name = "DIGITS")]
    routing: Option<String>,
    /// Account as printed (digits; spaces or `-` between groups are printed too).
    #[arg(long, value_name = "TEXT")]
    account: Option<String>,
    /// Serial number: right of the on-us symbol, or in the auxiliary field with --business.
    #[arg(long, value_name = "DIGITS")]
    check_number: Option<String>,
    /// Business check: the serial goes in the auxiliary on-us field.
    #[arg(long)]
    business: bool,
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    epc: Option<u8>,
    #[arg(long, value_name = "CENTS")]
    amount_cents: Option<u64>,
    /// Symbol set (default: the profile's, else magtek-00).
    #[arg(long, value_name = "SET")]
    symbol_set: Option<String>,
    /// Runs of spaces: keep, collapse (MagTek +16) or remove (+32).
    #[arg(long, value_parser = ["keep", "collapse", "remove"], default_value = "collapse")]
    spacing: String,
    /// The reader's status suffix after the data (`/NN`); for an Epson reply its status byte
    /// in hex (`20`: abnormal end; default `00`).
    #[arg(long, value_name = "NN")]
    status: Option<String>,
}

/// A MICR line as the profile's reader sends it: data, `/NN` if asked, CR LF (serial) or CR
/// (keyboard, upper case); an Epson `FS a` reply for the `epson` set.
fn micr_frame(m: &MicrArgs, profile: Option<&Profile>) -> Result<Zeroizing<Vec<u8>>, Fail> {
    use cardlane::parse::micr::{build_line, CheckLine, Spacing, SymbolSet};
    let (set, upper) = match (&m.symbol_set, profile.and_then(|p| p.micr_decoding())) {
        (Some(name), _) => (
            SymbolSet::parse(name).ok_or_else(|| usage(format!("unknown symbol set `{name}`")))?,
            profile.is_some_and(|p| p.transport == TransportKind::Keyboard),
        ),
        (None, Some(d)) => d,
        (None, None) => (SymbolSet::Magtek(0), false),
    };
    let routing = m
        .routing
        .clone()
        .ok_or_else(|| usage("--format micr needs --routing"))?;
    let account = m
        .account
        .clone()
        .ok_or_else(|| usage("--format micr needs --account"))?;
    let spacing = match m.spacing.as_str() {
        "keep" => Spacing::Keep,
        "remove" => Spacing::Remove,
        _ => Spacing::Collapse,
    };
    let line = CheckLine {
        aux: m.check_number.clone().filter(|_| m.business),
        epc: m.epc,
        routing,
        account,
        serial: m.check_number.clone().filter(|_| !m.business),
        amount_cents: m.amount_cents,
    };
    let mut text = Zeroizing::new(build_line(&line, set, spacing));
    if set.is_epson_reply() {
        // `0x5F status line NUL`, binary: no CR/LF after it.
        let status = match &m.status {
            Some(st) => u8::from_str_radix(st, 16)
                .ok()
                .filter(|_| st.len() == 2)
                .ok_or_else(|| usage("--status takes two hex digits for an Epson reply"))?,
            None => 0,
        };
        return Ok(cardlane::parse::micr::epson_frame(status, text.as_bytes()));
    }
    if set.has_status_byte() {
        text.insert(0, '0');
    }
    if let Some(st) = &m.status {
        if st.len() != 2 || !st.bytes().all(|b| b.is_ascii_digit()) {
            return Err(usage("--status takes two digits"));
        }
        text.push('/');
        text.push_str(st);
    }
    if upper {
        text.make_ascii_uppercase();
    }
    let keyboard = profile.is_some_and(|p| p.transport == TransportKind::Keyboard);
    text.push_str(if keyboard { "\r" } else { "\r\n" });
    Ok(Zeroizing::new(text.as_bytes().to_vec()))
}

// By hand: the BDK and clear tracks must never reach a Debug print.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("format", &self.format)
            .field("bdk", &self.bdk.as_ref().map(|_| "***"))
            .field("ksn", &self.ksn)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Usage errors exit 2, bad input 1. Messages never hold track text or key bytes.
enum Fail {
    Usage(String),
    Input(String),
}

fn usage(m: impl Into<String>) -> Fail {
    Fail::Usage(m.into())
}
fn input(m: impl Into<String>) -> Fail {
    Fail::Input(m.into())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match synth(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Fail::Usage(m)) => {
            eprintln!("error: {m}");
            Ok(ExitCode::from(2))
        }
        Err(Fail::Input(m)) => {
            eprintln!("error: {m}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Checks a clear track: sentinels, character set, length (ISO 7813 / 4909), no LRC.
fn check_track(n: u8, t: &str) -> Result<(), Fail> {
    let b = t.as_bytes();
    let (starts, range, max): (&[u8], std::ops::RangeInclusive<u8>, usize) = match n {
        1 => (b"%", 0x20..=0x5F, 78),
        2 => (b";", 0x30..=0x3F, 39),
        _ => (b";+", 0x30..=0x3F, 106),
    };
    let ok = b.len() >= 3
        && b.len() <= max
        && b.first().is_some_and(|c| starts.contains(c))
        && b.last() == Some(&b'?')
        && b.iter().skip(1).all(|c| range.contains(c))
        && b.iter().filter(|&&c| c == b'?').count() == 1;
    if ok {
        Ok(())
    } else {
        Err(input(format!(
            "--track{n} is not a track {n} from start to end sentinel (no LRC, at most {max} characters, ISO 7813 character set)"
        )))
    }
}

fn parse_hex(name: &str, s: &str) -> Result<Zeroizing<Vec<u8>>, Fail> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean)
        .map(Zeroizing::new)
        .map_err(|_| input(format!("{name} is not valid hex")))
}

/// What one swipe encrypts with.
struct Keys {
    bdk: SecretKey,
    ksn: Ksn,
    variant: KeyVariant,
    cipher: CipherKind,
}

impl Keys {
    fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, Fail> {
        encrypt_reader_data(
            self.bdk.as_bytes(),
            self.ksn.as_bytes(),
            reader_key(self.variant),
            reader_cipher(self.cipher),
            None,
            plain,
        )
        .map(|c| c.to_vec())
        .map_err(|e| input(format!("encryption failed: {e}")))
    }
}

fn keys(args: &Args, format: SynthFormat) -> Result<Option<Keys>, Fail> {
    if !format.is_encrypting() {
        if args.bdk.is_some() || args.ksn.is_some() {
            return Err(usage(
                "this format sends clear tracks: --bdk and --ksn do not apply",
            ));
        }
        return Ok(None);
    }
    let bdk = args.bdk.as_deref().ok_or_else(|| {
        usage("--bdk HEX is required (synth takes the BDK from the command line only)")
    })?;
    let bdk = parse_hex("--bdk", bdk)?;
    if bdk.len() != 16 {
        return Err(input(format!(
            "--bdk must be 16 bytes (TDES DUKPT), got {}",
            bdk.len()
        )));
    }
    let ksn = args
        .ksn
        .as_deref()
        .ok_or_else(|| usage("--ksn HEX is required for an encrypting format"))?;
    let ksn = parse_hex("--ksn", ksn)?;
    let ksn = Ksn::from_bytes(&ksn)
        .filter(|k| !k.is_aes())
        .ok_or_else(|| input("--ksn must be 20 hex digits (TDES DUKPT, as reader frames carry)"))?;
    let variant = match args.variant.as_deref() {
        Some(v) => KeyVariant::parse(v).ok_or_else(|| usage("bad --variant"))?,
        None if format.is_magtek() => KeyVariant::Pin,
        None => KeyVariant::Data,
    };
    let cipher = match args.cipher.as_str() {
        "aes" => CipherKind::Aes,
        _ => CipherKind::Tdes,
    };
    if cipher == CipherKind::Aes
        && matches!(
            format,
            SynthFormat::IdtechOriginal
                | SynthFormat::IdtechOriginalKb
                | SynthFormat::MagtekHid
                | SynthFormat::MagtekSl3
        )
    {
        return Err(usage(
            "--cipher aes: only the ID TECH enhanced format and ViVOtech2 can say so",
        ));
    }
    Ok(Some(Keys {
        bdk: SecretKey::from_slice(&bdk),
        ksn,
        variant,
        cipher,
    }))
}

/// The reader's output for one swipe: binary frame or keyboard text.
fn build_frame(
    format: SynthFormat,
    tracks: &[Option<&str>; 3],
    bad: [bool; 3],
    keys: Option<&Keys>,
    serial: &str,
) -> Result<Zeroizing<Vec<u8>>, Fail> {
    use SynthFormat::*;
    let need = || keys.ok_or_else(|| usage("this format needs --bdk and --ksn"));
    let out = match format {
        Micr => return Err(usage("--format micr builds from the check's fields")),
        IdtechEnhanced | IdtechEnhancedKb | Vivotech2 => {
            let k = need()?;
            let mut spec = idtech_spec(tracks, bad, k, serial);
            for (i, t) in tracks.iter().enumerate() {
                if let Some(t) = *t {
                    // ID TECH encrypts and hashes each track with its LRC (rule 2).
                    let plain = Zeroizing::new(build::with_lrc(i as u8 + 1, t));
                    spec.enc[i] = Some(k.encrypt(plain.as_bytes())?);
                    spec.hashes[i] = Some(Sha1::digest(plain.as_bytes()).into());
                }
            }
            match format {
                IdtechEnhanced => build::idtech_enhanced(&spec),
                IdtechEnhancedKb => build::idtech_enhanced_keyboard(&spec).into_bytes(),
                _ => {
                    let frame = build::idtech_enhanced(&spec);
                    build::vivotech2_msr(&frame, Some(&k.ksn), k.cipher)
                }
            }
        }
        IdtechOriginal | IdtechOriginalKb => {
            let k = need()?;
            if tracks[2].is_some() {
                return Err(usage(
                    "the original format encrypts Track 1 and 2 only: drop --track3",
                ));
            }
            let mut spec = idtech_spec(tracks, bad, k, serial);
            spec.serial = None;
            let mut joined = Zeroizing::new(String::new());
            for (i, t) in tracks.iter().enumerate().take(2) {
                if let Some(t) = *t {
                    let p = build::with_lrc(i as u8 + 1, t);
                    spec.hashes[i] = Some(Sha1::digest(p.as_bytes()).into());
                    joined.push_str(&p);
                }
            }
            // One CBC chain over T1‖T2 (rule 5).
            spec.enc[0] = Some(k.encrypt(joined.as_bytes())?);
            if format == IdtechOriginal {
                build::idtech_original(&spec)
            } else {
                build::idtech_original_keyboard(&spec).into_bytes()
            }
        }
        MagtekHid | MagtekSl3 => {
            let k = need()?;
            let mut spec = MagtekSpec {
                tracks: *tracks,
                errors: bad,
                serial: Some(serial),
                ksn: Some(k.ksn.clone()),
                ..Default::default()
            };
            for (i, t) in tracks.iter().enumerate() {
                if let Some(t) = *t {
                    // MagTek encrypts sentinel to sentinel, no LRC.
                    spec.enc[i] = Some(k.encrypt(t.as_bytes())?);
                }
            }
            if format == MagtekHid {
                build::magtek_hid(&spec)
            } else {
                build::magtek_sl3(&spec).into_bytes()
            }
        }
        MagtekSl2 | Tracks => {
            let errs = ["%E?", ";E?", "+E?"];
            let t: [Option<&str>; 3] =
                std::array::from_fn(|i| if bad[i] { Some(errs[i]) } else { tracks[i] });
            build::plain_tracks(&t, false).into_bytes()
        }
        MagtekClearHid => clear_hid(tracks, bad),
    };
    Ok(Zeroizing::new(out))
}

fn idtech_spec<'a>(
    tracks: &[Option<&'a str>; 3],
    bad: [bool; 3],
    k: &Keys,
    serial: &'a str,
) -> IdtechSpec<'a> {
    IdtechSpec {
        tracks: *tracks,
        serial: Some(serial),
        ksn: Some(k.ksn.clone()),
        aes: k.cipher == CipherKind::Aes,
        pin_key: k.variant == KeyVariant::Pin,
        errors: bad,
        ..Default::default()
    }
}

/// A non-encrypting MagTek HID report: 3 decode statuses, 3 lengths, card encode type, then
/// three 110-byte zero-filled clear track fields (reader-formats.md §3.1, older layout).
fn clear_hid(tracks: &[Option<&str>; 3], bad: [bool; 3]) -> Vec<u8> {
    const FIELD: usize = 110;
    let mut r = vec![0u8; 7 + 3 * FIELD];
    for i in 0..3 {
        if let Some(s) = r.get_mut(i) {
            *s = u8::from(bad[i]);
        }
        if let Some(t) = tracks[i] {
            let b = t.as_bytes();
            let n = b.len().min(FIELD);
            if let Some(l) = r.get_mut(3 + i) {
                *l = n as u8;
            }
            let at = 7 + FIELD * i;
            if let (Some(dst), Some(src)) = (r.get_mut(at..at + n), b.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
    }
    r
}

/// Small deterministic generator for split points (reproducible fixtures, no crate version
/// drift).
struct Splitter(u64);

impl Splitter {
    fn next(&mut self, lo: usize, hi: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (self.0 % (hi - lo + 1) as u64) as usize
    }
}

/// Chunks as the profile's transport delivers `bytes`: `(delay before, kind, bytes)`.
fn chunk(p: &Profile, bytes: &[u8], first_delay: u64, rng: &mut Splitter) -> Vec<CaptureChunk> {
    let mut out = Vec::new();
    let mut push = |delay: u64, kind: ChunkKind, b: Vec<u8>| {
        out.push(CaptureChunk {
            delay: Duration::from_millis(delay),
            kind,
            bytes: Zeroizing::new(b),
        })
    };
    match p.transport {
        TransportKind::Hid => {
            // Fixed-size reports, the last zero-filled, the report id first when numbered;
            // a full-speed interrupt endpoint delivers one report per millisecond.
            let (size, id) = p.report.as_ref().map_or((64, 0), |r| (r.size, r.id));
            for (n, piece) in bytes.chunks(size.max(1)).enumerate() {
                let mut rep = Vec::with_capacity(size + 1);
                if id != 0 {
                    rep.push(id);
                }
                rep.extend_from_slice(piece);
                rep.resize(size + usize::from(id != 0), 0);
                push(if n == 0 { first_delay } else { 1 }, ChunkKind::Hex, rep);
            }
        }
        TransportKind::Serial => {
            // Reads split anywhere; a byte takes 10 bit times on the line.
            let baud = u64::from(p.serial.as_ref().map_or(9600, |s| s.baud).max(1));
            let mut at = 0;
            let mut delay = first_delay;
            while at < bytes.len() {
                let n = rng.next(1, 40).min(bytes.len() - at);
                push(delay, ChunkKind::Hex, bytes[at..at + n].to_vec());
                delay = (n as u64 * 10_000).div_ceil(baud);
                at += n;
            }
        }
        TransportKind::Keyboard => {
            // Keystroke bursts, a few milliseconds per key, well inside the character time-out.
            // Readers that pad to blocks (iDynamo `x`) do so after the CR.
            let mut text = bytes.to_vec();
            if let Some(pad) = p.wedge.as_ref().and_then(|w| w.pad.as_deref()) {
                if let Some(&c) = pad.as_bytes().first() {
                    text.resize(text.len().div_ceil(500) * 500, c);
                }
            }
            let mut at = 0;
            let mut delay = first_delay;
            while at < text.len() {
                let n = rng.next(1, 24).min(text.len() - at);
                push(delay, ChunkKind::Text, text[at..at + n].to_vec());
                delay = 2 * n as u64;
                at += n;
            }
        }
    }
    out
}

fn synth(args: &Args) -> Result<(), Fail> {
    let profiles = Profiles::embedded().map_err(|e| input(format!("profiles: {e}")))?;
    let profile = match &args.profile {
        Some(id) => Some(
            profiles
                .get(id)
                .ok_or_else(|| usage(format!("unknown profile `{id}` (see devices/*.toml)")))?,
        ),
        None => None,
    };
    let format = match (args.format, profile) {
        (Some(f), _) => f,
        (None, Some(p)) => SynthFormat::for_profile(p),
        (None, None) => return Err(usage("give --format or --profile")),
    };
    let frame = if format == SynthFormat::Micr {
        micr_frame(&args.micr, profile)?
    } else {
        card_frame(args, format)?
    };

    if !args.capture {
        // An Epson MICR reply is binary (status byte, NUL) though built from text fields.
        let binary = !format.is_text() || profile.is_some_and(|p| p.framing == Framing::EpsonMicr);
        let mut out: Vec<u8> = if args.hex && binary {
            let mut h = hex::encode_upper(frame.as_slice()).into_bytes();
            h.push(b'\n');
            h
        } else {
            frame.to_vec()
        };
        let r = write_out(args.out.as_ref(), &out);
        zeroize::Zeroize::zeroize(&mut out);
        return r;
    }

    let Some(p) = profile else {
        return Err(usage("--capture needs --profile"));
    };
    let text_transport = p.transport == TransportKind::Keyboard;
    // A MICR line is text on any transport (serial readers send it with CR LF).
    if format != SynthFormat::Micr && text_transport != format.is_text() {
        return Err(usage(format!(
            "profile `{}` ({}) does not deliver the {} format",
            p.id,
            p.transport.as_str(),
            if format.is_text() { "text" } else { "binary" }
        )));
    }
    let mut rng = Splitter(args.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut chunks = Vec::new();
    let mut delay = args.delay_ms;
    if let Some(g) = &args.garbage {
        let g = parse_hex("--garbage", g)?;
        chunks.extend(chunk(p, &g, delay, &mut rng));
        delay = 5;
    }
    let body = match args.cut {
        Some(n) => frame.get(..n.min(frame.len())).unwrap_or_default(),
        None => frame.as_slice(),
    };
    chunks.extend(chunk(p, body, delay, &mut rng));

    let mut capture = match &args.append {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| input(format!("reading {}: {e}", path.display())))?;
            let c = Capture::parse(&text).map_err(|e| input(format!("{}: {e}", path.display())))?;
            if c.headers.profile.as_deref() != Some(p.id.as_str()) {
                return Err(usage(format!(
                    "{} was made for another profile",
                    path.display()
                )));
            }
            c
        }
        None => Capture {
            headers: headers(p, args),
            chunks: Vec::new(),
        },
    };
    capture.chunks.extend(chunks);
    let text = Zeroizing::new(capture.to_text());
    write_out(args.append.as_ref().or(args.out.as_ref()), text.as_bytes())
}

/// Card reader output from the clear tracks and keys given.
fn card_frame(args: &Args, format: SynthFormat) -> Result<Zeroizing<Vec<u8>>, Fail> {
    let given = [&args.track1, &args.track2, &args.track3];
    for (i, t) in given.iter().enumerate() {
        if let Some(t) = t {
            check_track(i as u8 + 1, t)?;
        }
    }
    let mut bad = [false; 3];
    for &n in &args.bad_track {
        bad[usize::from(n - 1)] = true;
    }
    let tracks: [Option<&str>; 3] =
        std::array::from_fn(|i| given[i].as_deref().filter(|_| !bad[i]));
    if tracks.iter().all(Option::is_none) {
        return Err(usage(
            "give at least one good track (--track1/--track2/--track3)",
        ));
    }
    if format.is_magtek() {
        if let Some(t) = tracks[2] {
            if !t.starts_with('+') {
                return Err(input(
                    "MagTek readers send Track 3 with the `+` start sentinel",
                ));
            }
        }
    }
    let keys = keys(args, format)?;
    build_frame(format, &tracks, bad, keys.as_ref(), &args.serial)
}

fn headers(p: &Profile, args: &Args) -> Headers {
    let ansi = args
        .bdk
        .as_deref()
        .is_some_and(|b| b.trim().eq_ignore_ascii_case(ANSI_TEST_BDK));
    let key = match (&args.bdk, ansi) {
        (None, _) if p.micr_decoding().is_some() => "check MICR line, no key".to_string(),
        (None, _) => "clear tracks, no key".to_string(),
        (Some(_), true) => format!("ANSI test BDK {ANSI_TEST_BDK}"),
        // Any other key is not written down (design.md §2).
        (Some(_), false) => "lab BDK (not recorded)".to_string(),
    };
    Headers {
        profile: Some(p.id.clone()),
        transport: Some(p.transport.as_str().to_string()),
        source: Some(format!("synthetic (cardlane synth); {key}")),
        other: Vec::new(),
    }
}

fn write_out(path: Option<&PathBuf>, bytes: &[u8]) -> Result<(), Fail> {
    match path {
        Some(p) => {
            std::fs::write(p, bytes).map_err(|e| input(format!("writing {}: {e}", p.display())))
        }
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes)
                .and_then(|()| o.flush())
                .map_err(|e| input(format!("writing standard output: {e}")))
        }
    }
}
