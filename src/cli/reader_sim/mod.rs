//! `cardlane reader-sim --profile ID --link PATH …`: a simulated NEO 2 reader on a PTY, as
//! payment SDKs ship simulated readers. It links the PTY's device at PATH, answers ping,
//! firmware, poll mode, configuration, activate (first response `63`, a `61-01` "PRESENT CARD"
//! prompt, then the next `--card` encrypted as the real reader does, or the reader's time-out)
//! and cancel. Test switches: `--refuse N` answers the first N starts with `0B`; `--wedge-after
//! N` stops answering after N commands until the PTY is reopened. Every command it gets is
//! logged as one JSON line on standard error; nothing sensitive is printed.
//!
//! When the host closes the PTY, the simulated reader resets (as after a power cycle).
mod card;

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
    /// Reader profile (a `protocol = "neo2"` profile).
    #[arg(long, value_name = "ID")]
    profile: String,
    /// Where to link the PTY's device (a symlink, replaced if present).
    #[arg(long, value_name = "PATH")]
    link: PathBuf,
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
    // Per connection.
    deframer: Deframer,
    tx: Option<Tx>,
    seen: u64,
    out: Vec<Vec<u8>>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profiles = Profiles::embedded().context("profiles")?;
    let Some(profile) = profiles.get(&args.profile) else {
        eprintln!("error: no profile with id `{}`", args.profile);
        return Ok(ExitCode::from(2));
    };
    if profile.protocol != Protocol::Neo2 {
        eprintln!(
            "error: reader-sim speaks NEO 2: profile `{}` has protocol `{}`",
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

    let (mut master, slave) = TTYPort::pair().context("creating a PTY")?;
    let pty = slave.name().context("PTY name")?;
    // The host opens the device by path; the sim keeps only the master, so it sees the host
    // close (a hang-up) and reopen.
    drop(slave);
    let _ = std::fs::remove_file(&args.link);
    std::os::unix::fs::symlink(&pty, &args.link)
        .with_context(|| format!("linking {}", args.link.display()))?;
    master
        .set_timeout(Duration::from_millis(20))
        .context("PTY timeout")?;
    println!(
        "{}",
        serde_json::json!({"ready": true, "link": args.link, "pty": pty, "profile": profile.id})
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
        deframer: Deframer::reader(),
        tx: None,
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

fn log(v: serde_json::Value) {
    eprintln!("{v}");
}

impl Sim {
    fn hang_up(&mut self) {
        self.deframer.reset();
        self.tx = None;
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
        let in_tx = self.tx.is_some();
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
        log(line);
    }

    /// Answers one command; returns the status it answered with.
    fn answer(&mut self, c: &Command, now: Instant) -> Status {
        if self.tx.is_some() && c.command != 0x05 {
            // Any other command while a transaction runs is taken as a cancel (IDG).
            self.tx = None;
            self.respond(c.command, Status::CommandNotAllowed, &[]);
            return Status::CommandNotAllowed;
        }
        let (status, data): (Status, Vec<u8>) = match (c.command, c.sub) {
            (0x18, 0x01) => (Status::Ok, Vec::new()),
            (0x29, 0x00) => (Status::Ok, self.firmware.as_bytes().to_vec()),
            (0x01, 0x01) | (0x04, 0x00) => (Status::Ok, Vec::new()),
            (0x05, 0x01) => {
                self.tx = None;
                (Status::Ok, Vec::new())
            }
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

    fn tick(&mut self, now: Instant) {
        if self.wedged() {
            return;
        }
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
