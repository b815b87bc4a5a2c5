//! The thin driver that runs a driven reader's session (NEO 2, MMS or MagneSafe V5) on a port:
//! reads chunks (reassembling HID reports), feeds the session, writes its frames (as HID output
//! reports where the port is HID) or runs its feature-report actions (V5: set, then get),
//! honours its deadlines, and reopens the port with backoff when it goes away or the session
//! finds the reader unresponsive. One thread per reader; requests come in over a channel,
//! events go out through a callback (the CLI collects them on a channel, the agent can forward
//! them to tokio).
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::profile::Profile;
use super::selector::Selector;
use super::transport::{Duplex, HidTransport, SerialTransport, TransportError};
use crate::protocol::magtek_v5::feature::FEATURE_LEN;
use crate::protocol::magtek_v5::session::{Action, V5Config};
use crate::protocol::magtek_v5::CardTypes;
use crate::protocol::neo2::hid;
use crate::protocol::neo2::{Activate, Event, PinRequest, SessionConfig, SessionError, State};
use any::AnySession;
pub use any::DrivenProtocol;

mod any;

/// An open port of a driven reader.
pub struct Port {
    pub io: Box<dyn Duplex>,
    /// HID: frames travel in 64-byte reports (ids 1-4).
    pub hid: bool,
}

/// Opens a driven reader's port from its selector (serial or HID).
pub fn open_port(selector: &Selector, profile: Option<&Profile>) -> Result<Port, TransportError> {
    let report = profile
        .and_then(|p| p.report.as_ref())
        .map(|r| r.size)
        .unwrap_or(hid::REPORT_LEN);
    match selector {
        Selector::Serial { path, baud } => Ok(Port {
            io: Box::new(SerialTransport::open(
                path,
                profile.and_then(|p| p.serial.as_ref()),
                *baud,
            )?),
            hid: false,
        }),
        Selector::Hid { vid, pid, serial } => Ok(Port {
            io: Box::new(HidTransport::open_ids(
                *vid,
                *pid,
                serial.as_deref(),
                report,
            )?),
            hid: true,
        }),
        Selector::Hidraw(path) => Ok(Port {
            io: Box::new(HidTransport::open_path(path, report)?),
            hid: true,
        }),
        _ => Err(TransportError::Config(String::from(
            "a driven reader needs a serial:, hid: or hidraw: selector",
        ))),
    }
}

#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub session: SessionConfig,
    /// First pause before reopening; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longest a read waits before requests are looked at again.
    pub poll_interval: Duration,
    /// On shutdown, how long a running transaction's cancel may take.
    pub shutdown_grace: Duration,
    /// The protocol (`DrivenReader::spawn` takes it from the profile).
    pub protocol: DrivenProtocol,
    /// MMS: the start request's template (options, currency…).
    pub mms_start: crate::protocol::mms::Start,
    /// MagneSafe V5: card-type bits and the start template.
    pub v5: V5Config,
    /// MagneSafe V5: the report id of the command feature report.
    pub feature_id: u8,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            session: SessionConfig::default(),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            poll_interval: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(3),
            protocol: DrivenProtocol::Neo2,
            mms_start: crate::protocol::mms::Start::default(),
            v5: V5Config::default(),
            feature_id: 0,
        }
    }
}

impl DriverConfig {
    /// Takes the protocol (and V5 settings) from the reader's profile.
    pub fn apply_profile(&mut self, profile: Option<&Profile>) {
        use super::profile::Protocol;
        match profile.map(|p| p.protocol) {
            Some(Protocol::Mms) => self.protocol = DrivenProtocol::Mms,
            Some(Protocol::MagtekV5) => {
                self.protocol = DrivenProtocol::MagtekV5;
                let v5 = profile
                    .and_then(|p| p.magtek_v5.clone())
                    .unwrap_or_default();
                self.feature_id = v5.feature_report_id;
                self.v5.card_types = CardTypes {
                    msr: v5.msr,
                    contact: v5.contact,
                    contactless: v5.contactless,
                };
            }
            _ => {}
        }
    }
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// The port opened; the session's open sequence starts.
    PortOpened,
    /// The port could not open, or failed (it is reopened with backoff).
    PortError(TransportError),
    Session(Event),
    /// The driver stopped (after `shutdown`).
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("the reader's driver has stopped")]
    Stopped,
}

enum Request {
    Activate(Activate, mpsc::SyncSender<Result<(), SessionError>>),
    Cancel(mpsc::SyncSender<Result<(), SessionError>>),
    Ping(mpsc::SyncSender<Result<(), SessionError>>),
    Pin(PinRequest, mpsc::SyncSender<Result<(), SessionError>>),
    Shutdown,
}

/// A reader driven on its own thread. Typical use (the agent forwards events to tokio):
///
/// ```no_run
/// use std::time::Duration;
/// use cardlane::device::session::{DriverConfig, DriverEvent, DrivenReader};
/// use cardlane::protocol::neo2::{Activate, Event, Interfaces};
///
/// let selector = "serial:/dev/ttyUSB0".parse().unwrap();
/// let profile = cardlane::device::Profiles::embedded().unwrap()
///     .get("idtech-neo2-serial").cloned();
/// let (reader, events) = DrivenReader::spawn_channel(selector, profile, DriverConfig::default());
/// // Wait for `Event::Ready`, then start a transaction; its `Event::Outcome` ends it.
/// while let Ok(e) = events.recv_timeout(Duration::from_secs(15)) {
///     if let DriverEvent::Session(Event::Ready { .. }) = e { break; }
/// }
/// reader.activate(Activate { interfaces: Interfaces::ALL, timeout: Duration::from_secs(30) }).ok();
/// reader.shutdown(); // cancels a running transaction (and waits for the answer) first
/// ```
pub struct DrivenReader {
    requests: mpsc::Sender<Request>,
    thread: Option<JoinHandle<()>>,
}

impl DrivenReader {
    /// Drives the reader at `selector`; `on_event` runs on the driver's thread.
    pub fn spawn(
        selector: Selector,
        profile: Option<Profile>,
        config: DriverConfig,
        on_event: impl FnMut(DriverEvent) + Send + 'static,
    ) -> DrivenReader {
        let mut config = config;
        config.apply_profile(profile.as_ref());
        if let Selector::Simulated(_) = selector {
            let connect = match super::simulated::connector(profile.as_ref()) {
                Ok(c) => c,
                // Opening fails the same way on every try: the driver reports it and backs off.
                Err(e) => Box::new(move || Err(e.clone())),
            };
            return DrivenReader::spawn_with(connect, config, on_event);
        }
        let connect = move || open_port(&selector, profile.as_ref());
        DrivenReader::spawn_with(connect, config, on_event)
    }

    /// As `spawn`, with events on a channel.
    pub fn spawn_channel(
        selector: Selector,
        profile: Option<Profile>,
        config: DriverConfig,
    ) -> (DrivenReader, mpsc::Receiver<DriverEvent>) {
        let (tx, rx) = mpsc::channel();
        let reader = DrivenReader::spawn(selector, profile, config, move |e| {
            let _ = tx.send(e);
        });
        (reader, rx)
    }

    /// Drives whatever `connect` opens (tests pass a fake port).
    pub fn spawn_with(
        connect: impl FnMut() -> Result<Port, TransportError> + Send + 'static,
        config: DriverConfig,
        on_event: impl FnMut(DriverEvent) + Send + 'static,
    ) -> DrivenReader {
        let (requests, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(String::from("neo2-driver"))
            .spawn(move || {
                let mut d = Driver {
                    config,
                    requests: rx,
                    on_event: Box::new(on_event),
                };
                d.run(Box::new(connect));
                (d.on_event)(DriverEvent::Stopped);
            })
            .ok();
        DrivenReader { requests, thread }
    }

    fn ask(
        &self,
        make: impl FnOnce(mpsc::SyncSender<Result<(), SessionError>>) -> Request,
    ) -> Result<(), DriverError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.requests
            .send(make(tx))
            .map_err(|_| DriverError::Stopped)?;
        // The driver looks at requests at least every poll interval; a generous bound.
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| DriverError::Stopped)?
            .map_err(DriverError::Session)
    }

    pub fn activate(&self, req: Activate) -> Result<(), DriverError> {
        self.ask(|tx| Request::Activate(req, tx))
    }

    pub fn cancel(&self) -> Result<(), DriverError> {
        self.ask(Request::Cancel)
    }

    pub fn ping(&self) -> Result<(), DriverError> {
        self.ask(Request::Ping)
    }

    /// PIN entry on the reader's keypad after a read (`Session::request_pin`); its end comes as
    /// `DriverEvent::Session(Event::Pin(_))`. `cancel` cancels it.
    pub fn request_pin(&self, req: PinRequest) -> Result<(), DriverError> {
        self.ask(|tx| Request::Pin(req, tx))
    }

    /// Cancels a running transaction (waiting for its answer, within the grace time), closes
    /// the port and joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.requests.send(Request::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DrivenReader {
    fn drop(&mut self) {
        self.stop();
    }
}

type Connect = Box<dyn FnMut() -> Result<Port, TransportError> + Send>;

struct Driver {
    config: DriverConfig,
    requests: mpsc::Receiver<Request>,
    on_event: Box<dyn FnMut(DriverEvent) + Send>,
}

/// Why a connected stretch ended.
enum Ended {
    Reopen,
    Shutdown,
}

impl Driver {
    fn run(&mut self, mut connect: Connect) {
        let mut backoff = self.config.backoff_min;
        loop {
            match connect() {
                Ok(port) => {
                    (self.on_event)(DriverEvent::PortOpened);
                    let mut fresh = false;
                    match self.connected(port, &mut fresh) {
                        Ended::Shutdown => return,
                        Ended::Reopen => {}
                    }
                    if fresh {
                        backoff = self.config.backoff_min;
                    }
                }
                Err(e) => (self.on_event)(DriverEvent::PortError(e)),
            }
            if !self.pause(backoff) {
                return;
            }
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    /// Waits out a backoff, answering requests (nothing is open). False on shutdown.
    fn pause(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.requests.recv_timeout(left) {
                Ok(Request::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Ok(
                    Request::Activate(_, r)
                    | Request::Cancel(r)
                    | Request::Ping(r)
                    | Request::Pin(_, r),
                ) => {
                    let _ = r.send(Err(SessionError::NotReady(State::Closed)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Runs the session while the port works. `fresh` is set once the reader got ready.
    fn connected(&mut self, mut port: Port, fresh: &mut bool) -> Ended {
        let mut session = AnySession::new(
            self.config.protocol,
            &self.config.session,
            &self.config.mms_start,
            &self.config.v5,
        );
        let mut shutdown_by: Option<Instant> = None;
        session.open(Instant::now());
        loop {
            if let Err(e) = flush(&mut session, &mut port, self.config.feature_id) {
                session.closed();
                self.drain(&mut session, fresh);
                (self.on_event)(DriverEvent::PortError(e));
                return Ended::Reopen;
            }
            if self.drain(&mut session, fresh) == Some(State::Unresponsive) {
                return Ended::Reopen;
            }
            if let Some(by) = shutdown_by {
                if !session.in_transaction() || Instant::now() >= by {
                    return Ended::Shutdown;
                }
            }
            loop {
                match self.requests.try_recv() {
                    Ok(Request::Activate(req, r)) => {
                        let _ = r.send(session.activate(Instant::now(), req));
                    }
                    Ok(Request::Cancel(r)) => {
                        let _ = r.send(session.cancel(Instant::now()));
                    }
                    Ok(Request::Ping(r)) => {
                        let _ = r.send(session.ping(Instant::now()));
                    }
                    Ok(Request::Pin(req, r)) => {
                        let _ = r.send(session.request_pin(Instant::now(), req));
                    }
                    Ok(Request::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                        if shutdown_by.is_none() {
                            shutdown_by = Some(Instant::now() + self.config.shutdown_grace);
                            let _ = session.cancel(Instant::now()).ok();
                        }
                        if !session.in_transaction() {
                            return Ended::Shutdown;
                        }
                        break;
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            if session.poll_transmit_pending() {
                continue;
            }
            let now = Instant::now();
            let wait = session
                .poll_timeout()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(self.config.poll_interval)
                .min(self.config.poll_interval);
            match port.io.read_chunk(wait) {
                Ok(Some(chunk)) => {
                    session.handle_chunk(Instant::now(), port.hid, &chunk.bytes);
                }
                Ok(None) => {}
                Err(e) => {
                    session.closed();
                    self.drain(&mut session, fresh);
                    (self.on_event)(DriverEvent::PortError(e));
                    return if shutdown_by.is_some() {
                        Ended::Shutdown
                    } else {
                        Ended::Reopen
                    };
                }
            }
            let now = Instant::now();
            if session.poll_timeout().is_some_and(|t| now >= t) {
                session.handle_timeout(now);
            }
        }
    }

    /// Hands the session's events out; returns the last state it entered, if any.
    fn drain(&mut self, session: &mut AnySession, fresh: &mut bool) -> Option<State> {
        let mut last = None;
        while let Some(e) = session.poll_event() {
            match &e {
                Event::State(s) => last = Some(*s),
                Event::Ready { .. } => *fresh = true,
                _ => {}
            }
            (self.on_event)(DriverEvent::Session(e));
        }
        last
    }
}

/// Writes every frame the session has for the port, and runs its feature-report actions. A
/// feature report the reader does not take (a stalled or timed-out control transfer) makes it
/// unresponsive; an unplugged port is the caller's error.
fn flush(session: &mut AnySession, port: &mut Port, feature_id: u8) -> Result<(), TransportError> {
    while let Some(units) = session.poll_units(port.hid) {
        for u in units {
            port.io.write_unit(&u)?;
        }
    }
    while let Some(action) = session.poll_feature_action() {
        match feature_round(port, feature_id, &action) {
            Ok(result) => session.handle_feature(Instant::now(), &result),
            Err(e @ (TransportError::Closed | TransportError::Config(_))) => return Err(e),
            Err(_) => session.feature_failed(),
        }
    }
    Ok(())
}

/// One set (for `Action::Set`) and the get of its result; the result without its report id.
fn feature_round(
    port: &mut Port,
    id: u8,
    action: &Action,
) -> Result<zeroize::Zeroizing<Vec<u8>>, TransportError> {
    let f = port.io.as_features().ok_or_else(|| {
        TransportError::Config(String::from("this port cannot carry feature reports"))
    })?;
    if let Action::Set(r) = action {
        let mut report = Vec::with_capacity(r.len() + 1);
        report.push(id);
        report.extend_from_slice(r);
        f.set_feature(&report)?;
    }
    let mut buf = zeroize::Zeroizing::new(vec![0u8; FEATURE_LEN + 1]);
    let n = f.get_feature(id, &mut buf)?;
    Ok(zeroize::Zeroizing::new(
        buf.get(1..n).unwrap_or_default().to_vec(),
    ))
}

#[cfg(test)]
mod tests;
