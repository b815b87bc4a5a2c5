//! A simulated eDynamo (sans-io), for tests and `reader-sim`: it takes feature-report commands
//! (`cmd, len, data`; extended commands in `49` chunks) and gives feature results (`0A`/`0B`
//! parts), and sends notifications as input report `02`, as reader-protocols.md §3.2 describes.
//! It behaves as the spec says a V5 reader does:
//! - `030C` sets the clock; until then (after every power-up) `0300` is refused;
//! - `0300` starts an EMV transaction (refused while one runs);
//! - `0304` cancels, and is refused once a card has been presented;
//! - `present` inserts the next test card: a display message, then the ARQC notification with
//!   an ARQC container built under the BDK (as the DynaFlex simulator builds it, KSN counting
//!   up). With `hold_arqc` the card stays inserted (cancel refused) until `present` again.
//!
//! The spec gives no result codes for refusals: the simulator answers non-zero codes of its own
//! (named below); the host only tells zero from non-zero.
use std::collections::VecDeque;

use zeroize::Zeroizing;

use super::commands::{CANCEL, SET_DATE_TIME, START_EMV};
use super::extended::{answer_parts, WRAPPER};
use super::feature;
use super::notify::{self, ARQC, DISPLAY, STATUS};
use crate::crypto::{self, TdesKsn};
use crate::protocol::mms::sim::{self as mms_sim, SimCard};

/// Refusal codes of the simulator (not from the spec: any non-zero code is a refusal).
pub const REFUSED_NO_CLOCK: u16 = 0x0381;
pub const REFUSED_BUSY: u16 = 0x0382;
pub const REFUSED_CARD_PRESENTED: u16 = 0x0383;
pub const UNKNOWN_COMMAND: u16 = 0x0384;
/// Input report size the simulator sends notifications in (id first), and its part size.
pub const INPUT_LEN: usize = 64;
const PART_MAX: usize = INPUT_LEN - 9;
/// Status event the simulator sends when a card is inserted (not in the spec; informative).
const EVENT_CARD_INSERTED: u8 = 0x01;

pub struct SimEdynamo {
    bdk: Zeroizing<Vec<u8>>,
    ksn: TdesKsn,
    cards: VecDeque<SimCard>,
    clock_set: bool,
    running: bool,
    /// A card is in the slot (its ARQC not yet sent when `hold_arqc`).
    presented: Option<SimCard>,
    /// Keep an inserted card's ARQC until the next `present`.
    pub hold_arqc: bool,
    /// The card-type byte of the last start taken.
    pub card_types: Option<u8>,
    /// The extended command being received in chunks: (command, total length, data so far).
    receiving: Option<(u16, usize, Zeroizing<Vec<u8>>)>,
    /// Feature results waiting for the host's gets.
    results: VecDeque<Vec<u8>>,
    last_result: Vec<u8>,
    /// Every extended command completed, as `"030C"` and the like (what `reader-sim` logs).
    pub log: Vec<String>,
}

impl SimEdynamo {
    /// `ksn`: the first KSN used (10 bytes); it counts up per card.
    pub fn new(
        bdk: &[u8],
        ksn: &[u8],
        cards: Vec<SimCard>,
    ) -> Result<SimEdynamo, crypto::CryptoError> {
        Ok(SimEdynamo {
            bdk: Zeroizing::new(bdk.to_vec()),
            ksn: TdesKsn::from_slice(ksn)?,
            cards: cards.into(),
            clock_set: false,
            running: false,
            presented: None,
            hold_arqc: false,
            card_types: None,
            receiving: None,
            results: VecDeque::new(),
            last_result: feature::command(0, &[]),
            log: Vec::new(),
        })
    }

    pub fn running(&self) -> bool {
        self.running
    }

    /// Power lost and back (a replug): the clock must be set again.
    pub fn power_up(&mut self) {
        self.clock_set = false;
        self.running = false;
        self.presented = None;
        self.receiving = None;
        self.results.clear();
    }

    /// One feature report set by the host (without report id). Returns input reports the
    /// reader sends as a consequence (notifications).
    pub fn set_feature(&mut self, report: &[u8]) -> Vec<Vec<u8>> {
        self.results.clear();
        let Some((cmd, body)) = feature::result(report) else {
            self.results.push_back(feature::command(0x02, &[]));
            return Vec::new();
        };
        if cmd != WRAPPER {
            // Plain (non-extended) commands are not simulated: "bad parameter" style result.
            self.results.push_back(feature::command(0x02, &[]));
            return Vec::new();
        }
        let Some(head) = body.get(..6) else {
            self.results.push_back(feature::command(0x02, &[]));
            return Vec::new();
        };
        let offset = usize::from(u16::from_be_bytes([head[0], head[1]]));
        let ext = u16::from_be_bytes([head[2], head[3]]);
        let total = usize::from(u16::from_be_bytes([head[4], head[5]]));
        let chunk = body.get(6..).unwrap_or_default();
        if offset == 0 {
            self.receiving = Some((ext, total, Zeroizing::new(Vec::with_capacity(total))));
        }
        let Some((cmd, want, data)) = self.receiving.as_mut() else {
            self.results.push_back(feature::command(0x02, &[]));
            return Vec::new();
        };
        if *cmd != ext || data.len() != offset {
            self.receiving = None;
            self.results.push_back(feature::command(0x02, &[]));
            return Vec::new();
        }
        data.extend_from_slice(chunk);
        if data.len() < *want {
            // More chunks to come: a plain OK result for this one.
            self.results.push_back(feature::command(0x00, &[]));
            return Vec::new();
        }
        let Some((cmd, _, data)) = self.receiving.take() else {
            return Vec::new();
        };
        self.log.push(format!("{cmd:04X}"));
        let (code, notes) = self.extended(cmd, &data);
        self.results.extend(answer_parts(code, &[]));
        notes
    }

    /// The next feature result for a get (the last one again once all were taken, as a
    /// reader's feature report keeps its value).
    pub fn get_feature(&mut self) -> Vec<u8> {
        if let Some(r) = self.results.pop_front() {
            self.last_result = r;
        }
        self.last_result.clone()
    }

    fn extended(&mut self, cmd: u16, data: &[u8]) -> (u16, Vec<Vec<u8>>) {
        match cmd {
            SET_DATE_TIME => {
                self.clock_set = true;
                (0, Vec::new())
            }
            START_EMV if !self.clock_set => (REFUSED_NO_CLOCK, Vec::new()),
            START_EMV if self.running => (REFUSED_BUSY, Vec::new()),
            START_EMV => {
                // Card types: `data[1]` (spec §3.2); a start for no interface is refused.
                if data.get(1).copied().unwrap_or(0) == 0 {
                    return (UNKNOWN_COMMAND, Vec::new());
                }
                self.running = true;
                self.card_types = data.get(1).copied();
                (
                    0,
                    notify::reports(DISPLAY, b"INSERT CARD", PART_MAX, INPUT_LEN),
                )
            }
            CANCEL if self.presented.is_some() => (REFUSED_CARD_PRESENTED, Vec::new()),
            CANCEL => {
                let was = std::mem::replace(&mut self.running, false);
                // The reader reports the host's cancel as a status event (07).
                let notes = if was {
                    notify::reports(
                        STATUS,
                        &[notify::EVENT_HOST_CANCELLED, 0, 0],
                        PART_MAX,
                        INPUT_LEN,
                    )
                } else {
                    Vec::new()
                };
                (0, notes)
            }
            _ => (UNKNOWN_COMMAND, Vec::new()),
        }
    }

    /// A card is inserted (or, with `hold_arqc`, the held card's data is sent): the input
    /// reports, if a transaction runs and a card is left.
    pub fn present(&mut self) -> Result<Vec<Vec<u8>>, crypto::CryptoError> {
        if !self.running {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let card = match self.presented.take() {
            Some(c) => c,
            None => {
                let Some(card) = self.cards.pop_front() else {
                    return Ok(Vec::new());
                };
                out.extend(notify::reports(
                    STATUS,
                    &[EVENT_CARD_INSERTED, 0, 0],
                    PART_MAX,
                    INPUT_LEN,
                ));
                out.extend(notify::reports(DISPLAY, b"PROCESSING", PART_MAX, INPUT_LEN));
                if self.hold_arqc {
                    self.presented = Some(card);
                    return Ok(out);
                }
                card
            }
        };
        let ksn = crypto::tdes_dukpt::next_ksn(&self.ksn)?;
        let container = mms_sim::container(&self.bdk, ksn.as_bytes(), &card)?;
        self.ksn = ksn;
        // After the ARQC the transaction waits for the host (which cancels): the card no
        // longer blocks a cancel.
        out.extend(notify::reports(ARQC, &container, PART_MAX, INPUT_LEN));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::magtek_v5::commands::{cancel, StartEmv};
    use crate::protocol::magtek_v5::extended::ExtAssembler;

    fn sim() -> SimEdynamo {
        let card = SimCard {
            pan: Zeroizing::new("4761739001010119".into()),
            expiry: "2512".into(),
            contactless: false,
        };
        SimEdynamo::new(
            &hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap(),
            &hex::decode("FFFF9876543210E00000").unwrap(),
            vec![card],
        )
        .unwrap()
    }

    /// Sets every report of a command and reads the answer code.
    fn run(s: &mut SimEdynamo, reports: Vec<Vec<u8>>) -> u16 {
        let n = reports.len();
        for (i, r) in reports.into_iter().enumerate() {
            s.set_feature(&r);
            if i + 1 < n {
                assert_eq!(s.get_feature()[0], 0x00);
            }
        }
        let mut a = ExtAssembler::new();
        loop {
            if let Some(ans) = a.push(&s.get_feature()).unwrap() {
                return ans.code;
            }
        }
    }

    #[test]
    fn start_needs_the_clock_and_cancel_is_refused_once_a_card_is_in() {
        let mut s = sim();
        let start = StartEmv::default().reports();
        assert_eq!(run(&mut s, start.clone()), REFUSED_NO_CLOCK);
        let clock = crate::protocol::magtek_v5::DateTime::from_unix(1_796_408_577).reports();
        assert_eq!(run(&mut s, clock), 0);
        assert_eq!(run(&mut s, start.clone()), 0);
        assert_eq!(run(&mut s, start), REFUSED_BUSY);
        s.hold_arqc = true;
        assert!(!s.present().unwrap().is_empty());
        assert_eq!(run(&mut s, cancel()), REFUSED_CARD_PRESENTED);
        let reports = s.present().unwrap();
        assert!(reports.iter().all(|r| r.len() == INPUT_LEN && r[0] == 2));
        assert_eq!(run(&mut s, cancel()), 0);
        assert_eq!(s.log, ["0300", "030C", "0300", "0300", "0304", "0304"]);
        s.power_up();
        assert_eq!(run(&mut s, StartEmv::default().reports()), REFUSED_NO_CLOCK);
    }
}
