//! `cardlane reader info|read|cancel --device SEL [--profile ID]` (design.md §3): drives a NEO 2
//! reader through `device::session`. `info` prints the profile, protocol and firmware; `read`
//! runs one card-on-file transaction and prints the read as `decode`'s JSON line (or an error
//! line: `timed-out`, `cancelled`, `reader-error`, `not-driven`; exit 1), cancelling on its
//! time-out and on Ctrl-C; `cancel` cancels whatever the reader runs and waits for the answer.
//! `read --pin required|optional` then asks for the PIN on the reader's keypad (`62-01`, the
//! reader's own PAN) and adds `"pin":{"ksn","format","pin_block":"present"}` to the line (with
//! `--bdk`, `"pin_verified"`); the block itself is never printed.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cardlane::device::enumerate::resolve_profile;
use cardlane::device::profile::{Profile, Protocol};
use cardlane::device::session::{DrivenReader, DriverConfig, DriverEvent};
use cardlane::device::{Profiles, Selector};
use cardlane::parse;
use cardlane::protocol::neo2::{Activate, Event, Interfaces, Outcome, PinOutcome, PinRequest};
use zeroize::Zeroizing;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Opens the reader and prints its profile, protocol and firmware.
    Info(Common),
    /// One card-on-file read (amount zero), printed as a `decode` JSON line.
    Read(ReadArgs),
    /// Cancels whatever transaction the reader runs and waits for its answer.
    Cancel(Common),
}

#[derive(clap::Args, Debug)]
struct Common {
    /// Device selector (serial:/dev/ttyX[@BAUD], hid:VID:PID[:SERIAL], hidraw:/dev/hidrawN).
    #[arg(long, value_name = "SEL")]
    device: String,
    /// Forces a reader profile (e.g. idtech-neo2-serial).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
    /// Directory of profile files overriding the built-in ones.
    #[arg(long, value_name = "DIR", env = "CARDLANE_PROFILES_DIR")]
    profiles: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReadArgs {
    #[command(flatten)]
    common: Common,
    /// Comma list of msr, contact, contactless (default: all).
    #[arg(long, value_name = "LIST")]
    interfaces: Option<String>,
    /// Seconds to wait for a card; the transaction is then cancelled.
    #[arg(long, value_name = "S", default_value_t = 30)]
    timeout: u64,
    /// Base derivation key (lab use): decrypts the read (and checks the PIN block).
    #[arg(long, value_name = "HEX")]
    bdk: Option<String>,
    /// After the read, ask for the PIN on the reader's keypad: `required` (no PIN is an
    /// error) or `optional` (the customer may cancel).
    #[arg(long, value_enum, value_name = "MODE")]
    pin: Option<PinMode>,
    /// Seconds the customer has to type the PIN.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pin_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PinMode {
    Required,
    Optional,
}

// By hand: the BDK must never reach a Debug print.
impl std::fmt::Debug for ReadArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadArgs")
            .field("common", &self.common)
            .field("interfaces", &self.interfaces)
            .field("timeout", &self.timeout)
            .field("bdk", &self.bdk.as_ref().map(|_| "***"))
            .field("pin", &self.pin)
            .field("pin_timeout", &self.pin_timeout)
            .finish()
    }
}

/// How long the reader may take to open and answer the open sequence.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long a cancel's answer may take, beyond the session's own deadlines.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

fn error_line(code: &str, message: impl std::fmt::Display) -> ExitCode {
    println!(
        "{}",
        serde_json::json!({"error": {"code": code, "message": message.to_string()}})
    );
    ExitCode::from(1)
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {msg}");
    Ok(ExitCode::from(2))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Info(c) => with_reader(&c, |_, p, firmware, _| Ok(info(p, firmware))),
        Action::Cancel(c) => with_reader(&c, |r, _, _, events| Ok(cancel(r, events))),
        Action::Read(a) => {
            let interfaces = match a.interfaces.as_deref() {
                None => Interfaces::ALL,
                Some(l) => match Interfaces::parse_list(l) {
                    Some(i) => i,
                    None => {
                        return usage("--interfaces: a comma list of msr, contact, contactless")
                    }
                },
            };
            if a.timeout == 0 || a.timeout > 250 {
                return usage("--timeout must be 1..=250 seconds");
            }
            let pin = match a.pin {
                None => None,
                Some(mode) => {
                    match PinRequest::new(4, 12, "ENTER PIN", Duration::from_secs(a.pin_timeout)) {
                        Ok(r) => Some((mode, r)),
                        Err(e) => return usage(format_args!("--pin-timeout: {e}")),
                    }
                }
            };
            let mut bdk_bytes = None;
            let dec = match &a.bdk {
                None => None,
                Some(h) => {
                    let bdk = Zeroizing::new(
                        hex::decode(h.trim())
                            .map_err(|_| anyhow::anyhow!("--bdk is not valid hex"))?,
                    );
                    let d = cardlane::crypto::BdkDecryptor::new(&bdk)
                        .map_err(|e| anyhow::anyhow!("--bdk: {e}"))?;
                    bdk_bytes = Some(bdk);
                    Some(d)
                }
            };
            let req = Activate {
                interfaces,
                timeout: Duration::from_secs(a.timeout),
            };
            with_reader(&a.common, |r, _, _, events| {
                let keys = Keys {
                    dec: dec.as_ref(),
                    bdk: bdk_bytes.as_ref().map(|b| b.as_slice()),
                };
                read(r, events, req, keys, pin)
            })
        }
    }
}

/// Resolves the profile, starts the driver, waits until the reader is ready, runs `f`.
fn with_reader(
    c: &Common,
    f: impl FnOnce(
        &DrivenReader,
        &Profile,
        Option<String>,
        &mpsc::Receiver<DriverEvent>,
    ) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let selector: Selector = match c.device.parse() {
        Ok(s) => s,
        Err(e) => return usage(format_args!("--device: {e}")),
    };
    let profiles = match Profiles::embedded_with_overrides(c.profiles.as_deref()) {
        Ok(p) => p,
        Err(e) => return Ok(super::profiles_unusable(&e)),
    };
    let profile = match resolve_profile(&selector, &profiles, c.profile.as_deref()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let profile =
        match profile {
            Some(p) if matches!(p.protocol, Protocol::Neo2 | Protocol::Mms | Protocol::MagtekV5) => p,
            Some(p) => {
                return Ok(error_line(
                    "not-driven",
                    format_args!(
                        "profile `{}` has protocol `{}`: cardlane drives NEO 2, MMS and MagneSafe V5 readers",
                        p.id,
                        p.protocol.as_str()
                    ),
                ))
            }
            None => return Ok(error_line(
                "not-driven",
                "no driven profile matches this device: give --profile (e.g. idtech-neo2-serial)",
            )),
        };
    let (reader, events) =
        DrivenReader::spawn_channel(selector, Some(profile.clone()), DriverConfig::default());
    let code = match wait_ready(&events) {
        Ok(firmware) => f(&reader, &profile, firmware, &events)?,
        Err(msg) => error_line("reader-error", msg),
    };
    reader.shutdown();
    Ok(code)
}

/// Waits for the open sequence; returns the firmware version it read.
fn wait_ready(events: &mpsc::Receiver<DriverEvent>) -> Result<Option<String>, String> {
    let until = Instant::now() + READY_WITHIN;
    let mut last_error = None;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(DriverEvent::Session(Event::Ready { firmware })) => return Ok(firmware),
            Ok(DriverEvent::PortError(e)) => {
                tracing::debug!(code = e.code(), "reader port");
                last_error = Some(e);
            }
            Ok(other) => tracing::debug!(event = ?other, "reader"),
            Err(_) => {
                return Err(match last_error {
                    Some(e) => format!("cannot open the reader: {e}"),
                    None => String::from("the reader did not answer its open sequence"),
                })
            }
        }
    }
}

fn info(p: &Profile, firmware: Option<String>) -> ExitCode {
    println!(
        "{}",
        serde_json::json!({
            "profile": p.id, "protocol": p.protocol.as_str(),
            "firmware": firmware, "serial": null,
        })
    );
    ExitCode::SUCCESS
}

fn cancel(reader: &DrivenReader, events: &mpsc::Receiver<DriverEvent>) -> ExitCode {
    if let Err(e) = reader.cancel() {
        return error_line("reader-error", e);
    }
    let until = Instant::now() + ANSWER_WITHIN;
    loop {
        match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(DriverEvent::Session(Event::CancelAnswered { status })) => {
                println!(
                    "{}",
                    serde_json::json!({"cancelled": true, "status": status.code()})
                );
                return ExitCode::SUCCESS;
            }
            Ok(DriverEvent::Session(Event::State(
                cardlane::protocol::neo2::State::Unresponsive,
            )))
            | Err(_) => return error_line("reader-error", "the reader did not answer the cancel"),
            Ok(_) => {}
        }
    }
}

/// `--bdk` as a decryptor (the read) and as bytes (the PIN block's key).
#[derive(Clone, Copy)]
struct Keys<'a> {
    dec: Option<&'a cardlane::crypto::BdkDecryptor>,
    bdk: Option<&'a [u8]>,
}

fn read(
    reader: &DrivenReader,
    events: &mpsc::Receiver<DriverEvent>,
    req: Activate,
    keys: Keys<'_>,
    pin: Option<(PinMode, PinRequest)>,
) -> anyhow::Result<ExitCode> {
    let dec = keys.dec;
    let interrupted = ctrl_c();
    if let Err(e) = reader.activate(req) {
        return Ok(error_line("reader-error", e));
    }
    let mut cancelled = false;
    // The session cancels at the time-out itself; this bound only guards against a driver that
    // never reports.
    let until = Instant::now() + req.timeout + ANSWER_WITHIN;
    loop {
        if !cancelled && interrupted.try_recv().is_ok() {
            cancelled = true;
            let _ = reader.cancel();
        }
        if Instant::now() >= until {
            return Ok(error_line(
                "reader-error",
                "the reader never ended the transaction",
            ));
        }
        let e = match events.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Ok(error_line("reader-error", "the reader's driver stopped"))
            }
        };
        match e {
            DriverEvent::Session(Event::Prompt(text)) => {
                tracing::info!(prompt = %text, "reader prompt")
            }
            DriverEvent::Session(Event::Outcome(o)) => {
                return Ok(match (pin, o) {
                    (Some((mode, pr)), Outcome::Read { read, .. }) => {
                        read_with_pin(reader, events, &interrupted, *read, keys, mode, pr)
                    }
                    (_, o) => print_outcome(o, req, dec),
                })
            }
            other => tracing::debug!(event = ?other, "reader"),
        }
    }
}

/// The read, decoded (and decrypted with `--bdk`) as `decode` prints it; an error line else.
fn decoded(
    read: cardlane::card::CardRead,
    dec: Option<&cardlane::crypto::BdkDecryptor>,
) -> Result<cardlane::card::CardRead, ExitCode> {
    let mut r = read;
    parse::validate(&mut r);
    match dec {
        Some(d) => parse::decrypt_read(&r, d, None).map_err(|e| error_line(e.code(), e)),
        None => Ok(r),
    }
}

/// After a read: PIN entry on the reader's keypad, then one line (the read plus `pin`).
fn read_with_pin(
    reader: &DrivenReader,
    events: &mpsc::Receiver<DriverEvent>,
    interrupted: &mpsc::Receiver<()>,
    read: cardlane::card::CardRead,
    keys: Keys<'_>,
    mode: PinMode,
    req: PinRequest,
) -> ExitCode {
    let r = match decoded(read, keys.dec) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Err(e) = reader.request_pin(req.clone()) {
        return error_line("reader-error", e);
    }
    let until = Instant::now() + req.timeout() + ANSWER_WITHIN;
    let mut cancelled = false;
    let outcome = loop {
        if !cancelled && interrupted.try_recv().is_ok() {
            cancelled = true;
            let _ = reader.cancel();
        }
        if Instant::now() >= until {
            return error_line("reader-error", "the reader never ended the PIN entry");
        }
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(DriverEvent::Session(Event::Pin(o))) => break o,
            Ok(other) => tracing::debug!(event = ?other, "reader"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return error_line("reader-error", "the reader's driver stopped")
            }
        }
    };
    let mut line = r.to_json();
    match outcome {
        PinOutcome::Pin { ksn, block } => {
            let mut pin = serde_json::json!({
                "ksn": ksn.to_hex(),
                // A TDES PIN key gives ISO format 0, an AES one format 4 (dukpt.md).
                "format": if ksn.is_aes() { 4 } else { 0 },
                "pin_block": "present",
            });
            if let Some(bdk) = keys.bdk {
                pin["pin_verified"] = pin_verifies(bdk, &ksn, block.as_bytes(), &r).into();
            }
            line["pin"] = pin;
        }
        PinOutcome::PinCancelled | PinOutcome::PinTimedOut if mode == PinMode::Optional => {
            line["pin"] = serde_json::Value::Null;
        }
        PinOutcome::PinCancelled => {
            return error_line("pin-cancelled", "the PIN entry was cancelled")
        }
        PinOutcome::PinTimedOut => {
            return error_line("pin-timed-out", "no PIN was entered in time")
        }
        PinOutcome::PinError { state } => {
            return error_line(
                "pin-error",
                format_args!("the reader ended the PIN entry with state {state:02X}"),
            )
        }
        PinOutcome::ReaderError { status } => {
            return error_line(
                "reader-error",
                format_args!(
                    "the reader answered the PIN request with status {:02X} ({})",
                    status.to_byte(),
                    status.code()
                ),
            )
        }
        PinOutcome::BadAnswer => {
            return error_line("reader-error", "the reader's PIN answer is malformed")
        }
        PinOutcome::Disconnected => {
            return error_line(
                "reader-error",
                "the reader went away or stopped answering during PIN entry",
            )
        }
    }
    println!("{line}");
    ExitCode::SUCCESS
}

/// Whether the PIN block decrypts under the PIN key of its KSN to a valid ISO 9564 block for the
/// card's PAN (taken from the decrypted tracks). The PIN itself is dropped unseen.
fn pin_verifies(
    bdk: &[u8],
    ksn: &cardlane::card::Ksn,
    block: &[u8],
    r: &cardlane::card::CardRead,
) -> bool {
    let Some(pan) = pan_of(r) else { return false };
    let Ok(k) = cardlane::crypto::Ksn::from_slice(ksn.as_bytes()) else {
        return false;
    };
    cardlane::crypto::pin_block_decrypt(bdk, &k, &pan, block, None).is_ok()
}

/// The PAN from decrypted Track 2 (`;PAN=`) or Track 1 (`%BPAN^`).
fn pan_of(r: &cardlane::card::CardRead) -> Option<Zeroizing<String>> {
    let tracks = r.decrypted.as_ref()?;
    let from = |t: Option<&cardlane::card::SecretText>, start: &str, end: char| {
        let text = t?.expose();
        let rest = text.strip_prefix(start)?;
        let pan = rest.split(end).next()?;
        (pan.len() >= 8 && pan.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Zeroizing::new(pan.to_owned()))
    };
    from(tracks.get(1).and_then(Option::as_ref), ";", '=')
        .or_else(|| from(tracks.first().and_then(Option::as_ref), "%B", '^'))
}

fn print_outcome(
    o: Outcome,
    req: Activate,
    dec: Option<&cardlane::crypto::BdkDecryptor>,
) -> ExitCode {
    match o {
        Outcome::Read { read, .. } => {
            let mut r = *read;
            parse::validate(&mut r);
            let r = match dec {
                Some(d) => match parse::decrypt_read(&r, d, None) {
                    Ok(r) => r,
                    Err(e) => return error_line(e.code(), e),
                },
                None => r,
            };
            println!("{}", r.to_json());
            ExitCode::SUCCESS
        }
        Outcome::TimedOut => error_line(
            "timed-out",
            format_args!(
                "no card within {} s; the transaction was cancelled",
                req.timeout.as_secs()
            ),
        ),
        Outcome::Cancelled => error_line("cancelled", "the transaction was cancelled"),
        Outcome::ReaderError { status } => error_line(
            "reader-error",
            format_args!(
                "the reader answered status {:02X} ({})",
                status.to_byte(),
                status.code()
            ),
        ),
        Outcome::Declined { code } => error_line(
            "reader-error",
            format_args!("the reader ended the transaction with result code {code:04X}"),
        ),
        Outcome::Unreadable { code } => error_line(
            "reader-error",
            format_args!("the card data could not be decoded ({code})"),
        ),
        Outcome::Disconnected => error_line(
            "reader-error",
            "the reader went away or stopped answering during the transaction",
        ),
    }
}

/// Ctrl-C (SIGINT) as a channel message. Returns once the handler is installed, so a Ctrl-C
/// right after the transaction starts is not lost (nor kills the process mid-transaction).
fn ctrl_c() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = ready_tx.send(());
            return;
        };
        let sig = {
            let _enter = rt.enter();
            signal(SignalKind::interrupt())
        };
        let _ = ready_tx.send(());
        if let Ok(mut sig) = sig {
            if rt.block_on(sig.recv()).is_some() {
                let _ = tx.send(());
            }
        }
    });
    // Installing a handler takes microseconds; the bound only keeps a broken runtime from
    // blocking the read.
    let _ = ready_rx.recv_timeout(Duration::from_secs(5));
    rx
}
