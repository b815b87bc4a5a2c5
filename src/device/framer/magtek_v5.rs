//! MagneSafe V5 input reports (eDynamo, tDynamo): report id 1 is a swipe in the fixed-size
//! MagneSafe layout (the report engine joins partial reads), report id 2 a notification whose
//! ARQC or transaction-result data is an EMV container; other notifications (status, display
//! messages) are not card data and are dropped.
use std::time::Duration;

use super::report::ReportEngine;
use super::FramerStats;
use crate::protocol::magtek_v5::notify::{classify, NoticeAssembler, V5Notice, REPORT_ID};
use crate::protocol::magtek_v5::session::SWIPE_REPORT_ID;

pub(super) struct V5Engine {
    swipes: ReportEngine,
    notes: NoticeAssembler,
}

impl V5Engine {
    pub(super) fn new(report_size: usize, stall: Duration) -> Self {
        V5Engine {
            swipes: ReportEngine::new(report_size, stall),
            notes: NoticeAssembler::new(),
        }
    }

    /// One chunk, report id first (the rest of a partly read swipe report has none).
    pub(super) fn push(
        &mut self,
        data: &[u8],
        at: Duration,
        out: &mut Vec<Vec<u8>>,
        stats: &mut FramerStats,
    ) {
        if !self.swipes.at_report_start() {
            return self.swipes.push(data, at, out, stats);
        }
        match data.split_first() {
            Some((&SWIPE_REPORT_ID, rest)) => self.swipes.push(rest, at, out, stats),
            Some((&REPORT_ID, _)) => {
                if let Some((id, d)) = self.notes.push(data) {
                    if let V5Notice::CardData { container, .. } = classify(id, &d) {
                        out.push(container.to_vec());
                    }
                }
            }
            // Not a report this reader sends.
            Some(_) => stats.garbage_bytes += data.iter().filter(|&&b| b != 0).count() as u64,
            None => {}
        }
    }

    pub(super) fn poll(&mut self, now: Duration, stats: &mut FramerStats) {
        self.swipes.poll(now, stats)
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        self.swipes.deadline()
    }

    pub(super) fn finish(&mut self, stats: &mut FramerStats) {
        self.swipes.finish(stats)
    }
}
