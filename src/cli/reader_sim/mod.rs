//! `cardlane reader-sim --profile ID --link PATH …`: a simulated NEO 2 reader on a PTY, as
//! payment SDKs ship simulated readers. It links the PTY's device at PATH, answers ping,
//! firmware, poll mode, configuration, activate (first response `63`, a `61-01` "PRESENT CARD"
//! prompt, then the next `--card` encrypted as the real reader does, or the reader's time-out)
//! and cancel. Test switches: `--refuse N` answers the first N starts with `0B`; `--wedge-after
//! N` stops answering after N commands until the PTY is reopened. Every command it gets is
//! logged as one JSON line on standard error; nothing sensitive is printed.
//!
//! Keypad switches (reader-protocols.md §1.6): `--pin DIGITS` answers `62-01` (after its first
//! answer) with a format-0 PIN block under the PIN variant of the reader's own PIN DUKPT key
//! (`--pin-ksn`, a KSN distinct from the card data's, counting up per entry) for the PAN it
//! presented last; `--pin-cancel` plays a customer who presses cancel (state 01), `--pin-never`
//! one who never types (state 02 at the command's time-out). Without them `62-01` is unknown.
//!
//! When the host closes the PTY, the simulated reader resets (as after a power cycle).
mod card;
mod magtek;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use cardlane::card::Ksn;
use cardlane::crypto::SecretKey;
use cardlane::device::profile::{Profiles, Protocol};
use cardlane::protocol::neo2::{Command, Deframed, Deframer, Response, Status};
use serialport::{SerialPort, TTYPort};
use zeroize::Zeroizing;

use card::{Card, Interface, Keys};

const ANSI_TEST_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

#[derive(clap::Args)]
pub struct Args {
    /// Reader profile (a `protocol = "neo2"`, `"mms"` or `"magtek-v5"` profile).
    #[arg(long, value_name = "ID")]
    profile: String,
    /// Where to link the PTY's device (a symlink, replaced if present). Not used by MagTek MMS
    /// and V5 profiles, which run in-process over a fake HID transport.
    #[arg(long, value_name = "PATH")]
    link: Option<PathBuf>,
    /// Base derivation key the reader's keys come from (default: the ANSI test BDK).
    #[arg(long, value_name = "HEX", env = "CARDLANE_BDK")]
    bdk: Option<String>,
    /// Initial KSN (20 hex digits); each read counts up from it.
    #[arg(long, value_name = "HEX", default_value = "FFFF9876543210E00000")]
    ksn: String,
    /// A test card presented on an activate, in order (PAN[:YYMM], repeatable).
    #[arg(long = "card", value_name = "PAN[:YYMM]")]
    cards: Vec<Card>,
    /// How long after an activate the card is presented.
    #[arg(long, value_name = "MS", default_value_t = 1500)]
    present_after: u64,
    #[arg(long, value_enum, default_value = "contactless")]
    interface: Interface,
    /// Never present a card (activates end with the reader's time-out).
    #[arg(long)]
    no_card: bool,
    /// Refuse the first N transaction starts with status 0B (command not allowed).
    #[arg(long, value_name = "N", default_value_t = 0)]
    refuse: u32,
    /// Stop answering after N commands, until the PTY is reopened (a wedged reader).
    #[arg(long, value_name = "N")]
    wedge_after: Option<u64>,
    /// A keypad reader: the customer types these digits when asked for the PIN (62-01).
    #[arg(long, value_name = "DIGITS", conflicts_with_all = ["pin_cancel", "pin_never"])]
    pin: Option<String>,
    /// A keypad reader whose customer presses cancel when asked for the PIN.
    #[arg(long, conflicts_with = "pin_never")]
    pin_cancel: bool,
    /// A keypad reader whose customer never types (the reader's PIN time-out).
    #[arg(long)]
    pin_never: bool,
    /// Initial KSN of the reader's PIN DUKPT key (20 hex digits; not the card data's).
    #[arg(long, value_name = "HEX", default_value = "FFFF9876543211E00000")]
    pin_ksn: String,
    /// How long after the PIN request the customer finishes (types or cancels).
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pin_after: u64,
    /// MagTek (MMS, V5) profiles: the host's time-out for each transaction, in seconds.
    #[arg(long, value_name = "S", default_value_t = 20)]
    mms_timeout: u64,
    /// Firmware version string the reader reports.
    #[arg(long, default_value = "NEO2 SIM v1.00.000")]
    firmware: String,
}

// By hand: the BDK and cards must never reach a Debug print.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("profile", &self.profile)
            .field("link", &self.link)
            .field("cards", &self.cards.len())
            .finish_non_exhaustive()
    }
}

/// What the simulated customer does at the keypad.
enum Keypad {
    None,
    Types(Zeroizing<String>),
    Cancels,
    Never,
}

/// A running PIN entry (after `62-01`'s first answer).
struct PinEntry {
    done_at: Instant,
    timeout_at: Instant,
}

/// A running transaction on the simulated reader.
struct Tx {
    present_at: Option<Instant>,
    timeout_at: Instant,
}

struct Sim {
    keys_bdk: SecretKey,
    base_ksn: Ksn,
    reads: u32,
    cards: VecDeque<Card>,
    interface: Interface,
    present_after: Duration,
    no_card: bool,
    refuse_left: u32,
    wedge_after: Option<u64>,
    firmware: String,
    keypad: Keypad,
    pin_base_ksn: Ksn,
    pin_entries: u32,
    pin_after: Duration,
    /// The PAN of the card presented last: the reader's own PAN for 62-01.
    last_pan: Option<Zeroizing<String>>,
    // Per connection.
    deframer: Deframer,
    tx: Option<Tx>,
    pin_entry: Option<PinEntry>,
    seen: u64,
    out: Vec<Vec<u8>>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profiles = Profiles::embedded().context("profiles")?;
    let Some(profile) = profiles.get(&args.profile) else {
        eprintln!("error: no profile with id `{}`", args.profile);
        return Ok(ExitCode::from(2));
    };
    if !matches!(
        profile.protocol,
        Protocol::Neo2 | Protocol::Mms | Protocol::MagtekV5
    ) {
        eprintln!(
            "error: reader-sim speaks NEO 2, MMS and MagneSafe V5: profile `{}` has protocol `{}`",
            profile.id,
            profile.protocol.as_str()
        );
        return Ok(ExitCode::from(2));
    }
    let bdk = Zeroizing::new(
        hex::decode(args.bdk.as_deref().unwrap_or(ANSI_TEST_BDK).trim())
            .map_err(|_| anyhow::anyhow!("--bdk is not valid hex"))?,
    );
    if bdk.len() != 16 {
        anyhow::bail!("--bdk must be 16 bytes (TDES DUKPT)");
    }
    let base_ksn = Ksn::from_hex(&args.ksn)
        .filter(|k| !k.is_aes())
        .ok_or_else(|| anyhow::anyhow!("--ksn must be 20 hex digits"))?;

    if matches!(profile.protocol, Protocol::Mms | Protocol::MagtekV5) {
        return magtek::run(magtek::MmsRun {
            profile,
            bdk: &bdk,
            ksn: base_ksn.as_bytes(),
            cards: &args.cards,
            interface: args.interface,
            present_after: Duration::from_millis(args.present_after),
            no_card: args.no_card,
            timeout: Duration::from_secs(args.mms_timeout),
        });
    }
    let Some(link) = args.link.clone() else {
        eprintln!("error: --link PATH is required for a NEO 2 profile");
        return Ok(ExitCode::from(2));
    };
    let pin_base_ksn = Ksn::from_hex(&args.pin_ksn)
        .filter(|k| !k.is_aes())
        .ok_or_else(|| anyhow::anyhow!("--pin-ksn must be 20 hex digits"))?;
    let keypad = match (&args.pin, args.pin_cancel, args.pin_never) {
        (Some(p), _, _) => {
            if !(4..=12).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
                eprintln!("error: --pin must be 4-12 digits");
                return Ok(ExitCode::from(2));
            }
            Keypad::Types(Zeroizing::new(p.clone()))
        }
        (None, true, _) => Keypad::Cancels,
        (None, false, true) => Keypad::Never,
        (None, false, false) => Keypad::None,
    };

    let (mut master, slave) = TTYPort::pair().context("creating a PTY")?;
    let pty = slave.name().context("PTY name")?;
    // The host opens the device by path; the sim keeps only the master, so it sees the host
    // close (a hang-up) and reopen.
    drop(slave);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&pty, &link)
        .with_context(|| format!("linking {}", link.display()))?;
    master
        .set_timeout(Duration::from_millis(20))
        .context("PTY timeout")?;
    println!(
        "{}",
        serde_json::json!({"ready": true, "link": link, "pty": pty, "profile": profile.id})
    );
    let _ = std::io::stdout().flush();

    let mut sim = Sim {
        keys_bdk: SecretKey::from_slice(&bdk),
        base_ksn,
        reads: 0,
        cards: args.cards.iter().cloned().collect(),
        interface: args.interface,
        present_after: Duration::from_millis(args.present_after),
        no_card: args.no_card,
        refuse_left: args.refuse,
        wedge_after: args.wedge_after,
        firmware: args.firmware.clone(),
        keypad,
        pin_base_ksn,
        pin_entries: 0,
        pin_after: Duration::from_millis(args.pin_after),
        last_pan: None,
        deframer: Deframer::reader(),
        tx: None,
        pin_entry: None,
        seen: 0,
        out: Vec::new(),
    };
    let mut buf = [0u8; 1024];
    let mut connected = false;
    loop {
        match master.read(&mut buf) {
            Ok(n) => {
                connected = true;
                sim.bytes(buf.get(..n).unwrap_or_default(), Instant::now());
            }
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::Interrupted => {}
            // POLLHUP / EIO: no process has the device open.
            Err(_) => {
                if connected {
                    log(serde_json::json!({"event": "hangup"}));
                    connected = false;
                }
                sim.hang_up();
                // Nothing to read until someone opens the device: look again shortly.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        sim.tick(Instant::now());
        for frame in sim.out.drain(..) {
            if master
                .write_all(&frame)
                .and_then(|()| master.flush())
                .is_err()
            {
                log(serde_json::json!({"event": "write-failed"}));
            }
        }
    }
}

/// The interface bits (`DFEF37`) of an activate's TLVs.
fn find_dfef37(tlvs: &[u8]) -> Option<u8> {
    let parsed = cardlane::parse::tlv::parse(tlvs).ok()?;
    let t = parsed.iter().find(|t| t.tag == 0xDFEF37)?;
    t.value.first().copied()
}

/// The fields of a `62-01` request (see `protocol::neo2::pin`).
struct PinFields {
    key_type: u8,
    pan_len: u8,
    max: u8,
    min: u8,
    prompt: String,
    timeout_s: u8,
}

fn pin_fields(d: &[u8]) -> Option<PinFields> {
    let (&key_type, rest) = d.split_first()?;
    let (&pan_len, rest) = rest.split_first()?;
    let rest = rest.get(usize::from(pan_len)..)?;
    let (&max, rest) = rest.split_first()?;
    let (&min, rest) = rest.split_first()?;
    let (&msg_len, rest) = rest.split_first()?;
    let msg = rest.get(..usize::from(msg_len))?;
    let rest = rest.get(usize::from(msg_len)..)?;
    let [timeout_s] = rest else { return None };
    Some(PinFields {
        key_type,
        pan_len,
        max,
        min,
        prompt: String::from_utf8_lossy(msg).into_owned(),
        timeout_s: *timeout_s,
    })
}

fn log(v: serde_json::Value) {
    eprintln!("{v}");
}

impl Sim {
    fn hang_up(&mut self) {
        self.deframer.reset();
        self.tx = None;
        self.pin_entry = None;
        self.seen = 0;
        self.out.clear();
    }

    fn wedged(&self) -> bool {
        self.wedge_after.is_some_and(|n| self.seen > n)
    }

    fn respond(&mut self, command: u8, status: Status, data: &[u8]) {
        if let Ok(f) = Response::new(command, status, data).encode() {
            self.out.push(f);
        }
    }

    fn bytes(&mut self, bytes: &[u8], now: Instant) {
        for d in self.deframer.push_commands(bytes) {
            match d {
                Deframed::Frame(c) => self.command(&c, now),
                Deframed::BadCrc { command } => {
                    self.seen += 1;
                    let wedged = self.wedged();
                    log(serde_json::json!({
                        "cmd": format!("{command:02X}-??"), "crc": "bad",
                        "in_transaction": self.tx.is_some(),
                        "answer": (!wedged).then(|| format!("{command:02X}-04")),
                    }));
                    if !wedged {
                        self.respond(command, Status::CrcError, &[]);
                    }
                }
                Deframed::Garbage { len } | Deframed::Oversize { len } => {
                    log(serde_json::json!({"event": "garbage", "len": len}))
                }
            }
        }
    }

    fn command(&mut self, c: &Command, now: Instant) {
        self.seen += 1;
        let in_tx = self.tx.is_some() || self.pin_entry.is_some();
        let wedged = self.wedged();
        let answer = if wedged {
            None
        } else {
            Some(self.answer(c, now))
        };
        let mut line = serde_json::json!({
            "cmd": c.name(), "len": c.data.len(), "crc": "ok",
            "in_transaction": in_tx,
            "answer": answer.map(|s| format!("{:02X}-{:02X}", c.command, s.to_byte())),
        });
        if c.command == 0x02 {
            // What the host asked for: the reader's time-out and the DFEEF37 interface bits.
            line["timeout_s"] = c.data.first().copied().into();
            line["interfaces"] = find_dfef37(c.data.get(1..).unwrap_or_default()).into();
        }
        if c.command == 0x62 {
            // What the host asked for (no PAN is ever sent with key type 01).
            let d = c.data.as_slice();
            line["key_type"] = d.first().map(|b| format!("{b:02X}")).into();
            line["pan_len"] = d.get(1).copied().into();
            if let Some(f) = pin_fields(d) {
                line["pin_max"] = f.max.into();
                line["pin_min"] = f.min.into();
                line["prompt"] = f.prompt.into();
                line["timeout_s"] = f.timeout_s.into();
            }
        }
        log(line);
    }

    /// Answers one command; returns the status it answered with.
    fn answer(&mut self, c: &Command, now: Instant) -> Status {
        if (self.tx.is_some() || self.pin_entry.is_some()) && c.command != 0x05 {
            // Any other command while a transaction runs is taken as a cancel (IDG).
            self.tx = None;
            self.pin_entry = None;
            self.respond(c.command, Status::CommandNotAllowed, &[]);
            return Status::CommandNotAllowed;
        }
        let (status, data): (Status, Vec<u8>) = match (c.command, c.sub) {
            (0x18, 0x01) => (Status::Ok, Vec::new()),
            (0x29, 0x00) => (Status::Ok, self.firmware.as_bytes().to_vec()),
            (0x01, 0x01) | (0x04, 0x00) => (Status::Ok, Vec::new()),
            (0x05, 0x01) => {
                self.tx = None;
                self.pin_entry = None;
                (Status::Ok, Vec::new())
            }
            (0x62, 0x01) if !matches!(self.keypad, Keypad::None) => return self.get_pin(c, now),
            (0x02, 0x01 | 0x40) => return self.start(c, now),
            (0x02 | 0x05 | 0x18 | 0x29 | 0x01 | 0x04, _) => (Status::UnknownSubCommand, Vec::new()),
            _ => (Status::UnknownCommand, Vec::new()),
        };
        self.respond(c.command, status, &data);
        status
    }

    fn start(&mut self, c: &Command, now: Instant) -> Status {
        if self.refuse_left > 0 {
            self.refuse_left -= 1;
            self.respond(0x02, Status::CommandNotAllowed, &[]);
            return Status::CommandNotAllowed;
        }
        let secs = c.data.first().copied().unwrap_or(30).max(1);
        let present_at =
            (!self.no_card && !self.cards.is_empty()).then(|| now + self.present_after);
        self.tx = Some(Tx {
            present_at,
            timeout_at: now + Duration::from_secs(u64::from(secs)),
        });
        self.respond(0x02, Status::FirstResponse, &[]);
        if let Ok(f) = Command::new(0x61, 0x01, b"PRESENT CARD").encode() {
            self.out.push(f);
        }
        Status::FirstResponse
    }

    /// `62-01`: checks the request, acknowledges it (status 00, no data), starts the entry.
    fn get_pin(&mut self, c: &Command, now: Instant) -> Status {
        let fields = pin_fields(c.data.as_slice());
        let status = match &fields {
            None => Status::MalformattedData,
            Some(f) if f.key_type != 0x01 || f.pan_len != 0 => Status::IncorrectParameter,
            Some(f) if !(4 <= f.min && f.min <= f.max && f.max <= 12) => Status::IncorrectParameter,
            // No read to take the PAN from.
            Some(_) if self.last_pan.is_none() => Status::CommandNotAllowed,
            Some(_) => Status::Ok,
        };
        if let (Status::Ok, Some(f)) = (status, fields) {
            self.pin_entry = Some(PinEntry {
                done_at: now + self.pin_after,
                timeout_at: now + Duration::from_secs(u64::from(f.timeout_s.max(1))),
            });
        }
        self.respond(0x62, status, &[]);
        status
    }

    /// Ends a due PIN entry with the PIN answer.
    fn pin_tick(&mut self, now: Instant) {
        let Some(p) = self.pin_entry.as_ref() else {
            return;
        };
        let data: Vec<u8> = match &self.keypad {
            Keypad::Types(_) | Keypad::Cancels if now < p.done_at => return,
            Keypad::Never | Keypad::None if now < p.timeout_at => return,
            Keypad::Types(pin) => {
                self.pin_entries += 1;
                let ksn = card::ksn_after(&self.pin_base_ksn, self.pin_entries);
                let pan = self.last_pan.as_ref().map(|p| p.as_str()).unwrap_or("");
                let block = cardlane::crypto::Ksn::from_slice(ksn.as_bytes()).and_then(|k| {
                    cardlane::crypto::pin_block_encrypt(
                        self.keys_bdk.as_bytes(),
                        &k,
                        pin,
                        pan,
                        Some(cardlane::crypto::PinFormat::Iso0),
                        None,
                    )
                });
                let Ok(block) = block else {
                    self.pin_entry = None;
                    log(serde_json::json!({"event": "pin-failed"}));
                    return;
                };
                let block = Zeroizing::new(block);
                log(
                    serde_json::json!({"event": "pin-entered", "ksn": ksn.to_hex(), "answer": "62-00"}),
                );
                let mut d = vec![0x00];
                d.extend_from_slice(ksn.to_hex().as_bytes());
                d.extend_from_slice(hex::encode_upper(block.as_slice()).as_bytes());
                d
            }
            Keypad::Cancels => {
                log(
                    serde_json::json!({"event": "pin-cancelled", "answer": "62-00", "state": "01"}),
                );
                vec![0x01]
            }
            Keypad::Never | Keypad::None => {
                log(serde_json::json!({"event": "pin-timeout", "answer": "62-00", "state": "02"}));
                vec![0x02]
            }
        };
        let data = Zeroizing::new(data);
        self.pin_entry = None;
        self.respond(0x62, Status::Ok, &data);
    }

    fn tick(&mut self, now: Instant) {
        if self.wedged() {
            return;
        }
        self.pin_tick(now);
        let Some(tx) = self.tx.as_ref() else { return };
        if tx.present_at.is_some_and(|t| now >= t) {
            self.tx = None;
            self.present();
        } else if now >= tx.timeout_at {
            self.tx = None;
            log(serde_json::json!({"event": "reader-timeout", "answer": "02-0A"}));
            self.respond(0x02, Status::Failed, &card::timeout_data());
        }
    }

    fn present(&mut self) {
        let Some(card) = self.cards.pop_front() else {
            return;
        };
        self.reads += 1;
        self.last_pan = Some(card.pan.clone());
        let keys = Keys {
            bdk: self.keys_bdk.clone(),
            ksn: card::ksn_after(&self.base_ksn, self.reads),
        };
        match card::read_data(&card, self.interface, &keys) {
            Ok(data) => {
                log(serde_json::json!({
                    "event": "card-presented", "interface": format!("{:?}", self.interface).to_lowercase(),
                    "ksn": keys.ksn.to_hex(), "answer": "02-00",
                }));
                self.respond(0x02, Status::Ok, &data);
            }
            Err(e) => log(serde_json::json!({"event": "card-failed", "reason": e})),
        }
    }
}
