//! MMS packets (MagTek DynaFlex, 64-byte reports): joins them into messages and yields the EMV
//! container of each transaction update that carries card data (ARQC or batch data); other
//! messages (responses, prompts) are not card data and are dropped. A broken packet sequence
//! is counted as a dropped partial.
use std::time::Duration;

use super::FramerStats;
use crate::protocol::mms::message::Message;
use crate::protocol::mms::notify::{classify, Notice};
use crate::protocol::mms::packet::Reassembler;

#[derive(Default)]
pub(super) struct MmsEngine {
    packets: Reassembler,
}

impl MmsEngine {
    pub(super) fn push(
        &mut self,
        data: &[u8],
        _at: Duration,
        out: &mut Vec<Vec<u8>>,
        stats: &mut FramerStats,
    ) {
        match self.packets.push(data) {
            Ok(Some(m)) => {
                if let Ok(msg) = Message::decode(&m) {
                    if let Notice::CardData { container, .. } = classify(&msg) {
                        out.push(container.to_vec());
                    }
                }
            }
            Ok(None) => {}
            Err(_) => stats.dropped_partials += 1,
        }
    }
}
