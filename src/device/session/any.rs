//! The session a driven reader's profile asks for (`protocol = "neo2"`, `"mms"` or
//! `"magtek-v5"`), behind the one interface the driver uses, with that protocol's way of cutting
//! messages into HID reports and joining them back. A V5 session talks through feature reports
//! instead: the driver runs its actions (`poll_feature_action`).
use std::time::Instant;

use zeroize::Zeroizing;

use crate::protocol::magtek_v5::session::{self as v5, Action, V5Config};
use crate::protocol::mms;
use crate::protocol::neo2::hid::{self, Reassembler};
use crate::protocol::neo2::{Activate, Event, PinRequest, Session, SessionConfig, SessionError};

/// Which protocol the driver speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DrivenProtocol {
    #[default]
    Neo2,
    Mms,
    /// MagneSafe V5 extended commands (eDynamo, tDynamo) through HID feature reports.
    MagtekV5,
}

pub(super) enum AnySession {
    Neo2(Box<Session>, Reassembler),
    Mms(Box<mms::session::Session>, mms::Reassembler),
    V5(Box<v5::Session>),
}

impl AnySession {
    pub(super) fn new(
        p: DrivenProtocol,
        config: &SessionConfig,
        mms_start: &mms::Start,
        v5: &V5Config,
    ) -> Self {
        let now = Instant::now();
        match p {
            DrivenProtocol::Neo2 => AnySession::Neo2(
                Box::new(Session::new(config.clone(), now)),
                Reassembler::new(),
            ),
            DrivenProtocol::Mms => AnySession::Mms(
                Box::new(mms::session::Session::new(
                    mms::session::MmsConfig {
                        session: config.clone(),
                        start: mms_start.clone(),
                    },
                    now,
                )),
                mms::Reassembler::new(),
            ),
            DrivenProtocol::MagtekV5 => AnySession::V5(Box::new(v5::Session::new(V5Config {
                session: config.clone(),
                ..v5.clone()
            }))),
        }
    }

    pub(super) fn open(&mut self, now: Instant) {
        match self {
            AnySession::Neo2(s, _) => s.open(now),
            AnySession::Mms(s, _) => s.open(now),
            // The reader's clock is set on every open (UTC: no time zone in the core).
            AnySession::V5(s) => {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                s.open_at(now, unix)
            }
        }
    }
    pub(super) fn closed(&mut self) {
        match self {
            AnySession::Neo2(s, _) => s.closed(),
            AnySession::Mms(s, _) => s.closed(),
            AnySession::V5(s) => s.closed(),
        }
    }
    pub(super) fn activate(&mut self, now: Instant, req: Activate) -> Result<(), SessionError> {
        match self {
            AnySession::Neo2(s, _) => s.activate(now, req),
            AnySession::Mms(s, _) => s.activate(now, req),
            AnySession::V5(s) => s.activate(now, req),
        }
    }
    pub(super) fn cancel(&mut self, now: Instant) -> Result<(), SessionError> {
        match self {
            AnySession::Neo2(s, _) => s.cancel(now),
            AnySession::Mms(s, _) => s.cancel(now),
            AnySession::V5(s) => s.cancel(now),
        }
    }
    pub(super) fn ping(&mut self, now: Instant) -> Result<(), SessionError> {
        match self {
            AnySession::Neo2(s, _) => s.ping(now),
            AnySession::Mms(s, _) => s.ping(now),
            AnySession::V5(s) => s.ping(now),
        }
    }
    pub(super) fn request_pin(
        &mut self,
        now: Instant,
        req: PinRequest,
    ) -> Result<(), SessionError> {
        match self {
            AnySession::Neo2(s, _) => s.request_pin(now, req),
            // No keypad PIN entry over MMS here.
            AnySession::Mms(s, _) => Err(SessionError::NotReady(s.state())),
            AnySession::V5(s) => Err(SessionError::NotReady(s.state())),
        }
    }
    pub(super) fn in_transaction(&self) -> bool {
        match self {
            AnySession::Neo2(s, _) => s.in_transaction(),
            AnySession::Mms(s, _) => s.in_transaction(),
            AnySession::V5(s) => s.in_transaction(),
        }
    }
    pub(super) fn poll_transmit_pending(&self) -> bool {
        match self {
            AnySession::Neo2(s, _) => s.poll_transmit_pending(),
            AnySession::Mms(s, _) => s.poll_transmit_pending(),
            // Its actions run to the end in `flush`.
            AnySession::V5(_) => false,
        }
    }
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            AnySession::Neo2(s, _) => s.poll_timeout(),
            AnySession::Mms(s, _) => s.poll_timeout(),
            AnySession::V5(s) => s.poll_timeout(),
        }
    }
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        match self {
            AnySession::Neo2(s, _) => s.handle_timeout(now),
            AnySession::Mms(s, _) => s.handle_timeout(now),
            AnySession::V5(s) => s.handle_timeout(now),
        }
    }
    pub(super) fn poll_event(&mut self) -> Option<Event> {
        match self {
            AnySession::Neo2(s, _) => s.poll_event(),
            AnySession::Mms(s, _) => s.poll_event(),
            AnySession::V5(s) => s.poll_event(),
        }
    }

    /// One chunk from the port (`hid`: one input report).
    pub(super) fn handle_chunk(&mut self, now: Instant, hid_port: bool, chunk: &[u8]) {
        match self {
            AnySession::Neo2(s, r) => {
                if hid_port {
                    if let Some(frame) = r.push(chunk) {
                        s.handle_bytes(now, &frame);
                    }
                } else {
                    s.handle_bytes(now, chunk);
                }
            }
            AnySession::Mms(s, r) => {
                // A broken packet sequence drops the message, as the reader itself would.
                if let Ok(Some(m)) = r.push(chunk) {
                    s.handle_bytes(now, &m);
                }
            }
            AnySession::V5(s) => s.handle_input(now, chunk),
        }
    }

    /// The units to write for everything the session has to send.
    pub(super) fn poll_units(&mut self, hid_port: bool) -> Option<Vec<Zeroizing<Vec<u8>>>> {
        match self {
            AnySession::Neo2(s, _) => {
                let frame = s.poll_transmit()?;
                Some(if hid_port {
                    hid::segment(&frame)
                        .into_iter()
                        .map(|r| Zeroizing::new(r.to_vec()))
                        .collect()
                } else {
                    vec![Zeroizing::new(frame)]
                })
            }
            AnySession::Mms(s, _) => {
                let m = s.poll_transmit()?;
                // Output reports with report id 0 first, then the 64-byte packet.
                Some(
                    mms::packet::segment(&m, mms::REPORT_LEN)
                        .into_iter()
                        .map(|p| {
                            let mut r = Vec::with_capacity(p.len() + 1);
                            r.push(0);
                            r.extend(p);
                            Zeroizing::new(r)
                        })
                        .collect(),
                )
            }
            AnySession::V5(_) => None,
        }
    }

    /// A V5 session's next feature-report action (`None` for the other protocols).
    pub(super) fn poll_feature_action(&mut self) -> Option<Action> {
        match self {
            AnySession::V5(s) => s.poll_action(),
            _ => None,
        }
    }

    /// The feature result for the last action.
    pub(super) fn handle_feature(&mut self, now: Instant, report: &[u8]) {
        if let AnySession::V5(s) = self {
            s.handle_feature(now, report)
        }
    }

    /// A feature report could not be set or got: the reader does not answer.
    pub(super) fn feature_failed(&mut self) {
        if let AnySession::V5(s) = self {
            s.feature_failed()
        }
    }
}
