//! `cardlane reader info|read|cancel --device SEL [--profile ID]` (design.md §3): drives a NEO 2
//! reader through `device::session`. `info` prints the profile, protocol and firmware; `read`
//! runs one card-on-file transaction and prints the read as `decode`'s JSON line (or an error
//! line: `timed-out`, `cancelled`, `reader-error`, `not-driven`; exit 1), cancelling on its
//! time-out and on Ctrl-C; `cancel` cancels whatever the reader runs and waits for the answer.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cardlane::device::enumerate::resolve_profile;
use cardlane::device::profile::{Profile, Protocol};
use cardlane::device::session::{DrivenReader, DriverConfig, DriverEvent};
use cardlane::device::{Profiles, Selector};
use cardlane::parse;
use cardlane::protocol::neo2::{Activate, Event, Interfaces, Outcome};
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
    /// Base derivation key (lab use): decrypts the read.
    #[arg(long, value_name = "HEX")]
    bdk: Option<String>,
}

// By hand: the BDK must never reach a Debug print.
impl std::fmt::Debug for ReadArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadArgs")
            .field("common", &self.common)
            .field("interfaces", &self.interfaces)
            .field("timeout", &self.timeout)
            .field("bdk", &self.bdk.as_ref().map(|_| "***"))
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
            let dec = match &a.bdk {
                None => None,
                Some(h) => {
                    let bdk = Zeroizing::new(
                        hex::decode(h.trim())
                            .map_err(|_| anyhow::anyhow!("--bdk is not valid hex"))?,
                    );
                    Some(
                        cardlane::crypto::BdkDecryptor::new(&bdk)
                            .map_err(|e| anyhow::anyhow!("--bdk: {e}"))?,
                    )
                }
            };
            let req = Activate {
                interfaces,
                timeout: Duration::from_secs(a.timeout),
            };
            with_reader(&a.common, |r, _, _, events| {
                read(r, events, req, dec.as_ref())
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
        Err(e) => return usage(e),
    };
    let profile = match resolve_profile(&selector, &profiles, c.profile.as_deref()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let profile =
        match profile {
            Some(p) if p.protocol == Protocol::Neo2 => p,
            Some(p) => {
                return Ok(error_line(
                    "not-driven",
                    format_args!(
                        "profile `{}` has protocol `{}`: cardlane drives NEO 2 readers only",
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

fn read(
    reader: &DrivenReader,
    events: &mpsc::Receiver<DriverEvent>,
    req: Activate,
    dec: Option<&cardlane::crypto::BdkDecryptor>,
) -> anyhow::Result<ExitCode> {
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
            DriverEvent::Session(Event::Outcome(o)) => return Ok(print_outcome(o, req, dec)),
            other => tracing::debug!(event = ?other, "reader"),
        }
    }
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
