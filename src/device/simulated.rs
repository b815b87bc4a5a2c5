//! The `sim:` selector: a simulated MagTek reader (DynaFlex over MMS, eDynamo or tDynamo over
//! V5 feature reports) inside the agent, behind the fake HID transport. A PTY cannot carry HID
//! reports, so `reader-sim` cannot stand in for these readers out of process; with `sim:` a
//! whole `cardlane run` (captures, driver, pipeline, queue, uploads) can be exercised with one,
//! for labs, demos and tests. Its cards are public test PANs encrypted under the ANSI X9.24 test
//! BDK, so only a gateway (or `gateway-sim --bdk`) holding that key can read them.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zeroize::Zeroizing;

use super::fake_hid::{FakeHidPort, FakeLine, SimHid};
use super::profile::{Profile, Protocol};
use super::session::Port;
use super::transport::{Duplex, TransportError};
use crate::protocol::magtek_v5::sim::SimEdynamo;
use crate::protocol::mms::sim::{SimCard, SimDynaflex};

/// ANSI X9.24-1 test BDK and the initial KSN the simulated readers count from.
pub const TEST_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const INITIAL_KSN: &str = "FFFF9876543210E00000";
/// Public test cards (PAN, expiry YYMM), presented in turn.
pub const TEST_CARDS: [(&str, &str); 2] =
    [("4761739001010119", "2812"), ("5413330089010608", "2901")];
/// How many reads one simulated reader gives before it has no card left (the DUKPT counter
/// and the memory it holds stay bounded).
const READS: usize = 200;
/// A card is presented this long after a transaction starts, as a customer would.
const PRESENT_AFTER: Duration = Duration::from_millis(300);

/// Makes the reader `profile` asks for and returns what opens its port: the same simulated
/// reader on every reopen, as a real one stays the same device.
pub fn connector(
    profile: Option<&Profile>,
) -> Result<Box<dyn FnMut() -> Result<Port, TransportError> + Send>, TransportError> {
    let p = profile.ok_or_else(not_magtek)?;
    let bdk = hex::decode(TEST_BDK).map_err(|_| not_magtek())?;
    let ksn = hex::decode(INITIAL_KSN).map_err(|_| not_magtek())?;
    let sim_err = |e: crate::crypto::CryptoError| TransportError::Config(e.to_string());
    match p.protocol {
        Protocol::Mms => {
            let reader = SimDynaflex::new(&bdk, &ksn, cards(false)).map_err(sim_err)?;
            Ok(port(FakeLine::new(reader, Some(PRESENT_AFTER))))
        }
        Protocol::MagtekV5 => {
            let settings = p.magtek_v5.clone().unwrap_or_default();
            let reader =
                SimEdynamo::new(&bdk, &ksn, cards(settings.contactless != 0)).map_err(sim_err)?;
            let line = FakeLine::new(reader, Some(PRESENT_AFTER));
            if let Ok(mut l) = line.lock() {
                l.feature_id = settings.feature_report_id;
            }
            Ok(port(line))
        }
        _ => Err(not_magtek()),
    }
}

fn not_magtek() -> TransportError {
    TransportError::Config(String::from(
        "sim: needs a driven MagTek profile (protocol \"mms\" or \"magtek-v5\"); NEO 2 readers are simulated by `cardlane reader-sim` on a PTY",
    ))
}

fn cards(contactless: bool) -> Vec<SimCard> {
    TEST_CARDS
        .iter()
        .cycle()
        .take(READS)
        .map(|(pan, expiry)| SimCard {
            pan: Zeroizing::new((*pan).to_string()),
            expiry: (*expiry).to_string(),
            contactless,
        })
        .collect()
}

fn port<R: SimHid + 'static>(
    line: Arc<Mutex<FakeLine<R>>>,
) -> Box<dyn FnMut() -> Result<Port, TransportError> + Send> {
    Box::new(move || {
        Ok(Port {
            io: Box::new(FakeHidPort::new(line.clone())) as Box<dyn Duplex>,
            hid: true,
        })
    })
}
