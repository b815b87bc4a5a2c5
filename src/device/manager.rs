//! The device manager: runs each reader on its own thread (blocking reads, no polling loop),
//! frames its chunks, reconnects with backoff after unplug or read errors, and watches for
//! arrival/departure by enumerating at a configurable interval. Everything it sees goes out as
//! [`DeviceEvent`]s on a tokio channel.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use tokio::sync::mpsc;

use super::enumerate::{enumerate, hint_for, resolve_profile, DeviceInfo, SelectorConnector};
use super::framer::{Frame, Framer, FramerOptions};
use super::profile::{Framing, Profile, ProfileError, Profiles, TransportKind};
use super::selector::Selector;
use super::transport::{Connector, Transport, TransportError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    Attached {
        source: String,
        profile: Option<String>,
    },
    Detached {
        source: String,
        reason: TransportError,
    },
    Error {
        source: String,
        error: TransportError,
        hint: Option<String>,
    },
    Frame(Frame),
    /// A whole frame that failed its integrity check (a bad read), by reason code.
    Unreadable {
        source: String,
        code: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// How often the watcher enumerates devices.
    pub poll_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longest single blocking read; bounds how long a stop takes to be noticed.
    pub read_timeout: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            poll_interval: Duration::from_secs(2),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            read_timeout: Duration::from_secs(1),
        }
    }
}

/// Stops the threads it was handed to when dropped or when [`Stop::stop`] is called.
pub struct Stop {
    tx: Option<std_mpsc::Sender<()>>,
}

impl Stop {
    pub fn stop(&mut self) {
        self.tx.take();
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The receiving side of a stop signal; sleeping on it wakes at once when stopped.
struct StopRx(std_mpsc::Receiver<()>);

impl StopRx {
    /// Sleeps up to `d`; true if a stop was requested.
    fn sleep(&self, d: Duration) -> bool {
        matches!(
            self.0.recv_timeout(d),
            Err(std_mpsc::RecvTimeoutError::Disconnected)
        )
    }

    fn stopped(&self) -> bool {
        matches!(self.0.try_recv(), Err(std_mpsc::TryRecvError::Disconnected))
    }
}

fn stop_pair() -> (Stop, StopRx) {
    let (tx, rx) = std_mpsc::channel();
    (Stop { tx: Some(tx) }, StopRx(rx))
}

/// Starts a reader thread: connect, read, frame, emit; on error emit and reconnect with backoff.
/// Ends when stopped or when the event receiver is dropped.
pub fn spawn_reader(
    connector: Box<dyn Connector>,
    profile: Option<Profile>,
    transport: TransportKind,
    config: ManagerConfig,
    events: mpsc::Sender<DeviceEvent>,
) -> std::io::Result<(Stop, JoinHandle<()>)> {
    spawn_reader_with_commands(connector, profile, transport, config, events, None)
}

/// Longest wait before a command sent to a reader thread is written to its device.
const COMMAND_LATENCY: Duration = Duration::from_millis(100);

/// As [`spawn_reader`], with a channel of commands the thread writes to the device as they
/// come (an Epson MICR reader's `FS a` when a check capture is armed). A command that arrives
/// while the device is not open is dropped: whoever sends it sends again on `Attached`.
pub fn spawn_reader_with_commands(
    mut connector: Box<dyn Connector>,
    profile: Option<Profile>,
    transport: TransportKind,
    mut config: ManagerConfig,
    events: mpsc::Sender<DeviceEvent>,
    commands: Option<std_mpsc::Receiver<Vec<u8>>>,
) -> std::io::Result<(Stop, JoinHandle<()>)> {
    if commands.is_some() {
        // Reads return at least this often, so a command waits no longer.
        config.read_timeout = config.read_timeout.min(COMMAND_LATENCY);
    }
    let (stop, stop_rx) = stop_pair();
    let handle = std::thread::Builder::new()
        .name(format!("reader {}", connector.source()))
        .spawn(move || {
            reader_loop(
                connector.as_mut(),
                profile,
                transport,
                &config,
                &events,
                &stop_rx,
                commands.as_ref(),
            )
        })?;
    Ok((stop, handle))
}

/// NAKs sent for consecutive bad-LRC frames before the next one is passed on as it is.
const MAX_NAKS: u32 = 2;

fn new_backoff(config: &ManagerConfig) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

fn reader_loop(
    connector: &mut dyn Connector,
    profile: Option<Profile>,
    transport: TransportKind,
    config: &ManagerConfig,
    events: &mpsc::Sender<DeviceEvent>,
    stop: &StopRx,
    commands: Option<&std_mpsc::Receiver<Vec<u8>>>,
) {
    let link = Link {
        source: connector.source(),
        events,
        stop,
    };
    let source = &link.source;
    let mut backoff = new_backoff(config);
    let mut last_error: Option<TransportError> = None;
    while !stop.stopped() {
        let mut t = match connector.connect() {
            Ok(t) => t,
            Err(error) => {
                // Report each distinct error once, not on every retry.
                if last_error.as_ref() != Some(&error) {
                    if !report_open_error(&link, &error, transport, profile.as_ref()) {
                        return;
                    }
                    last_error = Some(error);
                }
                if stop.sleep(backoff.next().unwrap_or(config.backoff_max)) {
                    return;
                }
                continue;
            }
        };
        last_error = None;
        // Commands sent while the device was away are stale (before `Attached`, which is
        // when their sender sends again).
        while commands.is_some_and(|c| c.try_recv().is_ok()) {}
        backoff = new_backoff(config);
        tracing::info!(source = %source, "reader attached");
        if !link.send(DeviceEvent::Attached {
            source: source.clone(),
            profile: profile.as_ref().map(|p| p.id.clone()),
        }) {
            return;
        }
        let Some(reason) = read_until_gone(
            &link,
            t.as_mut(),
            profile.as_ref(),
            transport,
            config,
            commands,
        ) else {
            return;
        };
        drop(t);
        tracing::info!(source = %source, code = reason.code(), "reader detached");
        if !link.send(DeviceEvent::Detached {
            source: source.clone(),
            reason,
        }) {
            return;
        }
        if !connector.reconnectable() {
            return;
        }
        if stop.sleep(backoff.next().unwrap_or(config.backoff_max)) {
            return;
        }
    }
}

/// Where one reader thread reports, and what stops it.
struct Link<'a> {
    source: String,
    events: &'a mpsc::Sender<DeviceEvent>,
    stop: &'a StopRx,
}

impl Link<'_> {
    /// False once nobody listens any more (the thread then ends).
    fn send(&self, e: DeviceEvent) -> bool {
        self.events.blocking_send(e).is_ok()
    }
}

/// Logs and reports a failed open, with a hint for the person at the lane.
fn report_open_error(
    link: &Link<'_>,
    error: &TransportError,
    transport: TransportKind,
    profile: Option<&Profile>,
) -> bool {
    tracing::warn!(source = %link.source, code = error.code(), "cannot open reader");
    let vid = profile.and_then(|p| p.matcher.vid);
    link.send(DeviceEvent::Error {
        source: link.source.clone(),
        error: error.clone(),
        hint: hint_for(error, transport, vid, profile),
    })
}

/// Reads an open transport until it fails, sending its frames and bad reads on; the error it
/// failed with, or `None` once the thread is to stop.
fn read_until_gone(
    link: &Link<'_>,
    t: &mut dyn Transport,
    profile: Option<&Profile>,
    transport: TransportKind,
    config: &ManagerConfig,
    commands: Option<&std_mpsc::Receiver<Vec<u8>>>,
) -> Option<TransportError> {
    let source = &link.source;
    let mut framer = match profile {
        Some(p) => Framer::for_profile(p, source.clone()),
        None => Framer::new(
            default_framing(transport),
            FramerOptions::default(),
            source.clone(),
        ),
    };
    let opened = Instant::now();
    let mut resend = MicrResend::for_profile(profile);
    let reason = loop {
        if link.stop.stopped() || link.events.is_closed() {
            return None;
        }
        if let Some(c) = commands {
            write_commands(c, t, source);
        }
        let now = opened.elapsed();
        let timeout = framer
            .deadline()
            .map(|d| d.saturating_sub(now).max(Duration::from_millis(1)))
            .unwrap_or(config.read_timeout)
            .min(config.read_timeout);
        let before = framer.stats();
        let frames = match t.read_chunk(timeout) {
            Ok(Some(chunk)) => framer.push(&chunk.bytes, opened.elapsed()),
            Ok(None) => framer.poll(opened.elapsed()),
            Err(e) => break e,
        };
        // Bad reads are reported, never dropped silently (the operator swipes again).
        for code in framer.stats().bad_reads_since(&before) {
            if !link.send(DeviceEvent::Unreadable {
                source: source.clone(),
                code,
            }) {
                return None;
            }
        }
        for f in frames {
            if resend.asked(&f, t, source) {
                continue;
            }
            if !link.send(DeviceEvent::Frame(f)) {
                return None;
            }
        }
    };
    // A frame cut off by the unplug is dropped (counted in the framer's stats).
    for f in framer.finish(opened.elapsed()) {
        if !link.send(DeviceEvent::Frame(f)) {
            return None;
        }
    }
    Some(reason)
}

/// A MICR reader framing STX data ETX LRC sends a frame again when the host answers NAK
/// (micr.md §2): a bad LRC is asked for again, up to [`MAX_NAKS`] times in a row, before the
/// frame goes on to be reported unreadable (bad-lrc).
struct MicrResend {
    enabled: bool,
    naks: u32,
}

impl MicrResend {
    fn for_profile(profile: Option<&Profile>) -> MicrResend {
        MicrResend {
            enabled: profile.is_some_and(|p| p.kind == super::profile::ReaderKind::Micr),
            naks: 0,
        }
    }

    /// Whether `f` was asked for again (so it is not passed on).
    fn asked(&mut self, f: &Frame, t: &mut dyn Transport, source: &str) -> bool {
        if self.enabled && self.naks < MAX_NAKS && crate::parse::micr::lrc_mismatch(&f.bytes) {
            if let Some(w) = t.as_writer() {
                match w.write_unit(&[crate::parse::micr::NAK]) {
                    Ok(()) => {
                        self.naks += 1;
                        tracing::info!(source = %source, "MICR frame failed its LRC; asked the reader to resend (NAK)");
                        return true;
                    }
                    Err(e) => {
                        tracing::warn!(source = %source, code = e.code(), "cannot send NAK");
                    }
                }
            }
        }
        self.naks = 0;
        false
    }
}

/// Writes the commands waiting for the device; a failed write is logged (by code) and the
/// command dropped: the read it asked for then never comes, and the capture times out.
fn write_commands(commands: &std_mpsc::Receiver<Vec<u8>>, t: &mut dyn Transport, source: &str) {
    while let Ok(cmd) = commands.try_recv() {
        match t.as_writer() {
            Some(w) => match w.write_unit(&cmd) {
                Ok(()) => {
                    tracing::info!(source = %source, len = cmd.len(), "command written to the reader")
                }
                Err(e) => {
                    tracing::warn!(source = %source, code = e.code(), "cannot write a command to the reader")
                }
            },
            None => tracing::warn!(source = %source, "the reader's transport cannot be written to"),
        }
    }
}

fn default_framing(transport: TransportKind) -> Framing {
    match transport {
        TransportKind::Keyboard => Framing::Text,
        _ => Framing::Stream,
    }
}

/// Starts the hot-plug watcher: calls `list` every `interval` and emits `Attached` for new
/// readers and `Detached` for ones that went away (keyed by selector).
pub fn spawn_watcher<F>(
    mut list: F,
    interval: Duration,
    events: mpsc::Sender<DeviceEvent>,
) -> std::io::Result<(Stop, JoinHandle<()>)>
where
    F: FnMut() -> Vec<DeviceInfo> + Send + 'static,
{
    let (stop, stop_rx) = stop_pair();
    let handle = std::thread::Builder::new()
        .name(String::from("device watcher"))
        .spawn(move || {
            let mut known: BTreeMap<String, DeviceInfo> = BTreeMap::new();
            loop {
                let now: BTreeMap<String, DeviceInfo> = list()
                    .into_iter()
                    .map(|d| (d.selector.clone(), d))
                    .collect();
                for (sel, d) in &now {
                    if !known.contains_key(sel) {
                        let ev = DeviceEvent::Attached {
                            source: sel.clone(),
                            profile: d.profile.clone(),
                        };
                        if events.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                }
                for sel in known.keys() {
                    if !now.contains_key(sel) {
                        let ev = DeviceEvent::Detached {
                            source: sel.clone(),
                            reason: TransportError::Closed,
                        };
                        if events.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                }
                known = now;
                if stop_rx.sleep(interval) {
                    return;
                }
            }
        })?;
    Ok((stop, handle))
}

/// Why the manager could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("cannot start a reader thread ({0})")]
    Spawn(String),
}

/// Readers on their own threads plus the hot-plug watcher; stops them all when dropped.
pub struct Manager {
    stops: Vec<Stop>,
    handles: Vec<JoinHandle<()>>,
}

impl Manager {
    /// Starts a reader per `(selector, forced profile id)` and, when `watch`, the watcher that
    /// enumerates every `config.poll_interval`. Events arrive on the returned channel.
    pub fn start(
        readers: &[(Selector, Option<String>)],
        profiles: &Profiles,
        config: ManagerConfig,
        watch: bool,
    ) -> Result<(Manager, mpsc::Receiver<DeviceEvent>), ManagerError> {
        let (tx, rx) = mpsc::channel(256);
        let mut m = Manager {
            stops: Vec::new(),
            handles: Vec::new(),
        };
        let spawn_err = |e: std::io::Error| ManagerError::Spawn(e.kind().to_string());
        for (selector, forced) in readers {
            let profile = resolve_profile(selector, profiles, forced.as_deref())?;
            let connector = SelectorConnector {
                selector: selector.clone(),
                profile: profile.clone(),
            };
            let (stop, h) = spawn_reader(
                Box::new(connector),
                profile,
                selector.transport(),
                config.clone(),
                tx.clone(),
            )
            .map_err(spawn_err)?;
            m.stops.push(stop);
            m.handles.push(h);
        }
        if watch {
            let profiles = profiles.clone();
            let (stop, h) = spawn_watcher(move || enumerate(&profiles), config.poll_interval, tx)
                .map_err(spawn_err)?;
            m.stops.push(stop);
            m.handles.push(h);
        }
        Ok((m, rx))
    }

    /// Signals every thread to stop; each ends within one read time-out (a reader blocked in
    /// stdin or evdev ends at its next event or with the process).
    pub fn stop(mut self) {
        for s in &mut self.stops {
            s.stop();
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        for s in &mut self.stops {
            s.stop();
        }
        // Detach: joining could wait on a read that cannot time out (stdin, evdev).
        self.handles.clear();
    }
}

#[cfg(test)]
mod tests;
