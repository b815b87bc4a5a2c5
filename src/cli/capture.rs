//! `cardlane capture --device SEL [--profile ID] --out FILE [--frames N] [--seconds S]`:
//! records a reader's raw traffic, chunk by chunk, to a capture file (design.md §4). Stops after
//! N complete frames or S seconds, whichever comes first, or when the device closes.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cardlane::capture::{ClearGate, Headers, Recorder};
use cardlane::device::enumerate::{hint_for, open, resolve_profile};
use cardlane::device::framer::{Framer, FramerOptions};
use cardlane::device::profile::{Framing, TrackData, TransportKind};
use cardlane::device::{Chunk, Profiles, Selector, TransportError};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `hid:VID:PID[:SERIAL]`, `hidraw:/dev/hidrawN`, `serial:/dev/ttyX[@BAUD]`,
    /// `keyboard:/dev/input/eventN` or `stdin`.
    #[arg(long)]
    device: String,
    /// Force a profile instead of matching one from the device's ids.
    #[arg(long)]
    profile: Option<String>,
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many complete frames.
    #[arg(long)]
    frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Free text for the `source:` header.
    #[arg(long)]
    note: Option<String>,
    /// Allow recording a clear-text (non-encrypting) reader: the file then holds clear tracks,
    /// so use test cards only.
    #[arg(long)]
    allow_clear: bool,
    /// Directory of profile TOML files overriding the built-in ones.
    #[arg(long, env = "CARDLANE_PROFILES_DIR")]
    profiles: Option<PathBuf>,
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {msg}");
    Ok(ExitCode::from(2))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let selector: Selector = match args.device.parse() {
        Ok(s) => s,
        Err(e) => return usage(format_args!("--device: {e}")),
    };
    if let Some(s) = args.seconds {
        if !(s.is_finite() && s > 0.0) {
            return usage("--seconds must be a positive number");
        }
    }
    let profiles = match Profiles::embedded_with_overrides(args.profiles.as_deref()) {
        Ok(p) => p,
        Err(e) => return Ok(super::profiles_unusable(&e)),
    };
    let profile = match resolve_profile(&selector, &profiles, args.profile.as_deref()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    if let Some(p) = &profile {
        if p.track_data == TrackData::ClearTracks && !args.allow_clear {
            return usage(format_args!(
                "profile `{}` reads clear card data; a capture would hold it in clear on disk. Pass --allow-clear to record test cards anyway",
                p.id
            ));
        }
    }

    // The blocking reads run on their own thread; this one waits on a channel with a deadline.
    let (tx, rx) = mpsc::channel::<Result<Chunk, TransportError>>();
    let (open_tx, open_rx) = mpsc::channel::<Result<(), TransportError>>();
    // A check reader that reads only when asked (Epson `FS a`): asked once now and again after
    // each frame, so that every check put in is recorded.
    let command = profile
        .as_ref()
        .map(|p| p.micr_read_command().to_vec())
        .unwrap_or_default();
    let (ask_tx, ask_rx) = mpsc::channel::<()>();
    if !command.is_empty() {
        let _ = ask_tx.send(());
    }
    let asks = !command.is_empty();
    let (sel, prof) = (selector.clone(), profile.clone());
    std::thread::Builder::new()
        .name(String::from("capture reader"))
        .spawn(move || {
            let mut t = match open(&sel, prof.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    let _ = open_tx.send(Err(e));
                    return;
                }
            };
            let _ = open_tx.send(Ok(()));
            loop {
                while ask_rx.try_recv().is_ok() {
                    match t.as_writer().map(|w| w.write_unit(&command)) {
                        Some(Ok(())) => {}
                        Some(Err(e)) => {
                            tracing::warn!(code = e.code(), "cannot ask the reader to read")
                        }
                        None => tracing::warn!("the reader's transport cannot be written to"),
                    }
                }
                // Short reads when asking, so a request waits no longer than that.
                let wait = if command.is_empty() { 500 } else { 100 };
                match t.read_chunk(Duration::from_millis(wait)) {
                    Ok(Some(c)) => {
                        if tx.send(Ok(c)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        })
        .context("starting the reader thread")?;
    match open_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let vid = profile.as_ref().and_then(|p| p.matcher.vid);
            eprintln!("error: {selector}: {e}");
            if let Some(h) = hint_for(&e, selector.transport(), vid, profile.as_ref()) {
                eprintln!("hint: {h}");
            }
            return Ok(ExitCode::from(1));
        }
        Err(_) => anyhow::bail!("reader thread ended before opening the device"),
    }

    let headers = Headers {
        profile: profile.as_ref().map(|p| p.id.clone()),
        transport: Some(selector.transport_name().to_string()),
        source: Some(args.note.clone().unwrap_or_else(|| {
            format!(
                "cardlane capture --device {selector} at {}",
                chrono::Utc::now().to_rfc3339()
            )
        })),
        other: Vec::new(),
    };
    // 0600 and never over an existing file: a capture may hold card data (test cards).
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&args.out)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return usage(format_args!(
                    "{} already exists; choose another --out (a capture never overwrites a file)",
                    args.out.display()
                ));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", args.out.display()));
            }
        }
    };
    let mut rec = Recorder::new(std::io::BufWriter::new(file), &headers)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let mut framer = match &profile {
        Some(p) => Framer::for_profile(p, selector.to_string()),
        None => {
            let framing = match selector.transport() {
                TransportKind::Keyboard => Framing::Text,
                _ => Framing::Stream,
            };
            Framer::new(framing, FramerOptions::default(), selector.to_string())
        }
    };
    eprintln!(
        "recording from {selector} (profile {}) to {}",
        profile
            .as_ref()
            .map(|p| p.id.as_str())
            .unwrap_or("none: framing detected on replay"),
        args.out.display()
    );

    let started = Instant::now();
    let stop_at = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut frames = 0u64;
    let mut closed = None;
    let mut gate = ClearGate::new(args.allow_clear);
    let mut refused = None;
    let done = |n: u64| args.frames.is_some_and(|want| n >= want);
    while !done(frames) {
        let now = Instant::now();
        if stop_at.is_some_and(|t| now >= t) {
            break;
        }
        let mut wait = Duration::from_secs(3600);
        if let Some(t) = stop_at {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if let Some(d) = framer.deadline() {
            wait = wait.min(d.saturating_sub(started.elapsed()));
        }
        let (chunk, made) = match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(Ok(chunk)) => {
                // Chunks of an open frame are held (ClearGate): this line says one was read.
                tracing::debug!(bytes = chunk.bytes.len(), "chunk read");
                let made = framer.push(&chunk.bytes, started.elapsed());
                (Some(chunk), made)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => (None, framer.poll(started.elapsed())),
            Ok(Err(e)) => {
                closed = Some(e);
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                closed = Some(TransportError::Closed);
                break;
            }
        };
        frames += made.len() as u64;
        if asks && !made.is_empty() && !done(frames) {
            let _ = ask_tx.send(());
        }
        match gate.offer(chunk, &made, framer.deadline().is_none()) {
            Ok(ready) => write_chunks(&mut rec, &ready, &args.out)?,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    if refused.is_none() {
        let last = if done(frames) {
            Vec::new()
        } else {
            framer.finish(started.elapsed())
        };
        frames += last.len() as u64;
        match gate.finish(&last) {
            Ok(ready) => write_chunks(&mut rec, &ready, &args.out)?,
            Err(e) => refused = Some(e),
        }
    }
    let chunks = rec.chunks();
    drop(rec);
    eprintln!(
        "captured {frames} frame(s) in {chunks} chunk(s) to {}",
        args.out.display()
    );
    if let Some(e) = refused {
        eprintln!(
            "error: {selector}: {e}. Pass --allow-clear to record test cards from a clear-text reader"
        );
        return Ok(ExitCode::from(1));
    }
    match (closed, args.frames) {
        (Some(e), Some(want)) if frames < want => {
            eprintln!("error: {selector}: {e} after {frames} of {want} frame(s)");
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn write_chunks<W: std::io::Write>(
    rec: &mut Recorder<W>,
    chunks: &[Chunk],
    out: &std::path::Path,
) -> anyhow::Result<()> {
    for c in chunks {
        rec.record(c)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
