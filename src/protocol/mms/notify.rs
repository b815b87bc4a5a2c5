//! What an incoming MMS message means to a host driving a transaction: a response to one of its
//! requests, a transaction update (card seen, ARQC or batch data attached), operation complete.
//! Notification `0101`'s status names the technology (first byte) and the event (detail:
//! `080202` ARQC data, `080302` batch data), as MagTek's public WebHID code reads them.
use zeroize::Zeroizing;

use super::commands::{OPERATION_COMPLETE, TRANSACTION_UPDATE};
use super::message::{Message, MsgType, Status};
use crate::parse::magtek_emv;

/// The technology byte of a transaction update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Technology {
    Manual,
    Msr,
    Contact,
    Contactless,
    Other(u8),
}

impl Technology {
    pub fn from_byte(b: u8) -> Technology {
        match b {
            0x07 => Technology::Manual,
            0x08 => Technology::Msr,
            0x10 => Technology::Contact,
            0x20 => Technology::Contactless,
            o => Technology::Other(o),
        }
    }
    pub fn to_byte(self) -> u8 {
        match self {
            Technology::Manual => 0x07,
            Technology::Msr => 0x08,
            Technology::Contact => 0x10,
            Technology::Contactless => 0x20,
            Technology::Other(o) => o,
        }
    }
}

pub const DETAIL_ARQC: [u8; 3] = [0x08, 0x02, 0x02];
pub const DETAIL_BATCH: [u8; 3] = [0x08, 0x03, 0x02];

/// One incoming message, classified. Card data stays in a zeroing buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The reader's answer to request `msg_ref`.
    Response {
        msg_ref: u8,
        command: u16,
        status: Status,
    },
    /// ARQC or batch data: the container (from its length prefix, or from F9).
    CardData {
        technology: Technology,
        batch: bool,
        container: Zeroizing<Vec<u8>>,
    },
    /// Another transaction update (card inserted, detected, removed…).
    Update {
        technology: Technology,
        detail: [u8; 3],
    },
    OperationComplete {
        status: Status,
    },
    /// Anything else (other notifications, requests from the device).
    Other {
        kind: MsgType,
        command: u16,
    },
}

/// Where the container starts inside a notification's payload: the first offset (within the
/// first 24 bytes) at which a whole container parses, else the first that looks like one (so
/// its decoding error names what is wrong). The bytes before it are not in the spec.
pub fn find_container(payload: &[u8]) -> Option<&[u8]> {
    let tail = |k: usize| payload.get(k..).unwrap_or_default();
    let window = payload.len().min(24);
    (0..window)
        .map(tail)
        .find(|t| magtek_emv::parse(t).is_ok())
        .or_else(|| {
            (0..window)
                .map(tail)
                .find(|t| magtek_emv::looks_like_container(t))
        })
}

pub fn classify(m: &Message) -> Notice {
    let status = m.status.unwrap_or(Status::OK);
    match (m.kind, m.command) {
        (MsgType::ResponseFromDevice, command) => Notice::Response {
            msg_ref: m.msg_ref,
            command,
            status,
        },
        (MsgType::NotificationFromDevice, TRANSACTION_UPDATE) => {
            let technology = Technology::from_byte(status.code());
            let detail = status.detail();
            let batch = detail == DETAIL_BATCH;
            if detail == DETAIL_ARQC || batch {
                if let Some(c) = find_container(m.params()) {
                    return Notice::CardData {
                        technology,
                        batch,
                        container: Zeroizing::new(c.to_vec()),
                    };
                }
            }
            Notice::Update { technology, detail }
        }
        (MsgType::NotificationFromDevice, OPERATION_COMPLETE) => {
            Notice::OperationComplete { status }
        }
        (kind, command) => Notice::Other { kind, command },
    }
}

/// A transaction-update notification carrying a container (for simulators and tests): the
/// payload is the notification id, then the container.
pub fn card_data(technology: Technology, batch: bool, container: &[u8]) -> Message {
    let mut payload = Zeroizing::new(TRANSACTION_UPDATE.to_be_bytes().to_vec());
    payload.extend_from_slice(container);
    let detail = if batch { DETAIL_BATCH } else { DETAIL_ARQC };
    Message {
        kind: MsgType::NotificationFromDevice,
        msg_ref: 0,
        command: TRANSACTION_UPDATE,
        status: Some(Status([
            technology.to_byte(),
            detail[0],
            detail[1],
            detail[2],
        ])),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_updates_and_completion() {
        let r = Message::decode(
            &hex::decode("AA00 8104 8201DF01 8204 00000000 8407 DF018103010203".replace(' ', ""))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            classify(&r),
            Notice::Response {
                msg_ref: 1,
                command: 0xDF01,
                status: Status::OK
            }
        );
        // 0101 "card inserted" on contact: 82 04 10 010200.
        let m =
            Message::decode(&hex::decode("AA0081048300010182041001020084020101").unwrap()).unwrap();
        assert_eq!(
            classify(&m),
            Notice::Update {
                technology: Technology::Contact,
                detail: [0x01, 0x02, 0x00]
            }
        );
        let m = Message::decode(
            &hex::decode("AA008104830001058204000000008402 0105".replace(' ', "")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            classify(&m),
            Notice::OperationComplete { status: Status::OK }
        );
    }
}
