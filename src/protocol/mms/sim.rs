//! A simulated DynaFlex (sans-io), as payment SDKs ship simulated readers: it answers the echo,
//! start, cancel and close; on `present` it sends a transaction update with an ARQC container
//! for the next card (a test PAN, encrypted under the BDK with the DUKPT data key, KSN counting
//! up, MACed under the MAC request key). Like the real reader it ignores a message it cannot
//! parse. `reader-sim` and the tests drive it through a fake HID transport.
use std::collections::VecDeque;

use zeroize::Zeroizing;

use super::commands::{CANCEL, CLOSE, OPERATION_COMPLETE, START};
use super::message::{Message, MsgType, Status};
use super::notify::{self, Technology};
use super::packet::Reassembler;
use super::session::ECHO;
use crate::crypto::{self, ReaderCipher, ReaderKey, TdesKsn, TdesVariant};
use crate::parse::build::{self, tlv};

/// A card the simulator presents.
#[derive(Clone)]
pub struct SimCard {
    pub pan: Zeroizing<String>,
    /// YYMM.
    pub expiry: String,
    pub contactless: bool,
}

impl std::fmt::Debug for SimCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SimCard(…{}, {})",
            &self.pan[self.pan.len().saturating_sub(4)..],
            self.expiry
        )
    }
}

pub struct SimDynaflex {
    bdk: Zeroizing<Vec<u8>>,
    ksn: TdesKsn,
    cards: VecDeque<SimCard>,
    /// The running transaction's interfaces (`A3` flags), when one runs.
    running: bool,
    /// Joins the host's 64-byte packets into messages.
    packets: Reassembler,
    /// Every request received, as `"1001"` and the like (what `reader-sim` logs).
    pub log: Vec<String>,
}

impl SimDynaflex {
    /// `ksn`: the first KSN used (10 bytes); it counts up per card.
    pub fn new(
        bdk: &[u8],
        ksn: &[u8],
        cards: Vec<SimCard>,
    ) -> Result<SimDynaflex, crypto::CryptoError> {
        Ok(SimDynaflex {
            bdk: Zeroizing::new(bdk.to_vec()),
            ksn: TdesKsn::from_slice(ksn)?,
            cards: cards.into(),
            running: false,
            packets: Reassembler::new(),
            log: Vec::new(),
        })
    }

    pub fn running(&self) -> bool {
        self.running
    }

    fn response(m: &Message, status: [u8; 4], payload: &[u8]) -> Vec<u8> {
        Message {
            kind: MsgType::ResponseFromDevice,
            msg_ref: m.msg_ref,
            command: m.command,
            status: Some(Status(status)),
            payload: Zeroizing::new(payload.to_vec()),
        }
        .encode()
    }

    /// One 64-byte packet from the host (an output report without its id): the replies
    /// (whole messages) once it completes a message. A broken sequence is dropped silently.
    pub fn handle_packet(&mut self, packet: &[u8]) -> Vec<Vec<u8>> {
        match self.packets.push(packet) {
            Ok(Some(m)) => self.handle(&m),
            _ => Vec::new(),
        }
    }

    /// One whole message from the host; the reader's replies (whole messages).
    pub fn handle(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let Ok(m) = Message::decode(bytes) else {
            return Vec::new();
        };
        if m.kind != MsgType::RequestFromHost {
            return Vec::new();
        }
        self.log.push(format!("{:04X}", m.command));
        match m.command {
            ECHO => vec![Self::response(&m, [0; 4], &m.payload)],
            START if self.running => {
                // Failed to start: transaction in progress (02 0308).
                vec![Self::response(&m, [0x80, 0x02, 0x03, 0x08], &[])]
            }
            START => {
                self.running = true;
                vec![Self::response(&m, [0x01, 0, 0, 0], &[])]
            }
            CANCEL | CLOSE => {
                let was = std::mem::replace(&mut self.running, false);
                let mut out = vec![Self::response(&m, [0; 4], &[])];
                if was {
                    out.push(operation_complete());
                }
                out
            }
            _ => vec![Self::response(&m, [0x81, 0x01, 0x01, 0x02], &[])],
        }
    }

    /// A card is dipped or tapped: the notifications, if a transaction runs and a card is left.
    pub fn present(&mut self) -> Result<Vec<Vec<u8>>, crypto::CryptoError> {
        if !self.running {
            return Ok(Vec::new());
        }
        let Some(card) = self.cards.pop_front() else {
            return Ok(Vec::new());
        };
        let ksn = crypto::tdes_dukpt::next_ksn(&self.ksn)?;
        let container = container(&self.bdk, ksn.as_bytes(), &card)?;
        self.ksn = ksn;
        let tech = if card.contactless {
            Technology::Contactless
        } else {
            Technology::Contact
        };
        // Card inserted / detected, then the ARQC data.
        let seen = Message {
            kind: MsgType::NotificationFromDevice,
            msg_ref: 0,
            command: super::commands::TRANSACTION_UPDATE,
            status: Some(Status([tech.to_byte(), 0x01, 0x04, 0x00])),
            payload: Zeroizing::new(vec![0x01, 0x01]),
        };
        Ok(vec![
            seen.encode(),
            notify::card_data(tech, false, &container).encode(),
        ])
    }
}

fn operation_complete() -> Vec<u8> {
    Message {
        kind: MsgType::NotificationFromDevice,
        msg_ref: 0,
        command: OPERATION_COMPLETE,
        status: Some(Status([0; 4])),
        payload: Zeroizing::new(OPERATION_COMPLETE.to_be_bytes().to_vec()),
    }
    .encode()
}

/// An ARQC container for `card` under the BDK and KSN (data key for DFDF59, MAC request key for
/// the MAC over the prefix through the padding).
pub fn container(bdk: &[u8], ksn: &[u8], card: &SimCard) -> Result<Vec<u8>, crypto::CryptoError> {
    let pan = card.pan.as_str();
    let mut t2 = Zeroizing::new(format!("{pan}D{}2010000000", card.expiry));
    if t2.len() % 2 == 1 {
        t2.push('F');
    }
    let t2_bytes =
        Zeroizing::new(hex::decode(t2.as_bytes()).map_err(|_| crypto::CryptoError::BadPan)?);
    let mut pan_digits = Zeroizing::new(pan.to_string());
    if pan_digits.len() % 2 == 1 {
        pan_digits.push('F');
    }
    let pan_bytes = Zeroizing::new(
        hex::decode(pan_digits.as_bytes()).map_err(|_| crypto::CryptoError::BadPan)?,
    );
    let mode = if card.contactless { 0x07 } else { 0x05 };
    let t2_tag = if card.contactless { 0x9F6B } else { 0x57 };
    let mut f2 = Zeroizing::new(tlv(0x5A, &pan_bytes));
    f2.extend(tlv(t2_tag, &t2_bytes));
    f2.extend(tlv(0x9F39, &[mode]));
    let secret = Zeroizing::new(tlv(0xFC, &tlv(0xF2, &f2)));
    let ct =
        crypto::encrypt_reader_data(bdk, ksn, ReaderKey::Data, ReaderCipher::Tdes, None, &secret)?;
    let shown = pan.len().saturating_sub(10);
    let masked = format!(
        ";{}{}{}={}0000000000000000?",
        pan.get(..6).unwrap_or(""),
        "0".repeat(shown),
        pan.get(pan.len().saturating_sub(4)..).unwrap_or(""),
        card.expiry
    );
    let mut clear = tlv(0xDFDF4D, masked.as_bytes());
    // MagTek's card types: 06 contactless EMV, 05 contact chip.
    clear.extend(tlv(0xDFDF52, &[if card.contactless { 0x06 } else { 0x05 }]));
    clear.extend(tlv(0x9F39, &[mode]));
    let spec = build::MagtekContainer {
        batch: false,
        serial: b"B5SIM01",
        clear: &clear,
        ciphertext: &ct,
        ksn,
        pad_count: (ct.len() - secret.len()) as u8,
        mac: [0; 4],
    };
    let mut out = build::magtek_container(&spec);
    let txn = crypto::tdes_dukpt::transaction_key(bdk, &TdesKsn::from_slice(ksn)?)?;
    let mac_key = crypto::tdes_dukpt::variant_key(txn.as_bytes(), TdesVariant::MacRequest, false)?;
    let n = out.len() - 4;
    let mac = crypto::mac::retail_mac(mac_key.as_bytes(), &out[..n])?;
    out[n..].copy_from_slice(&mac[..4]);
    Ok(out)
}
