//! `reader-sim` for MagTek MMS (DynaFlex) and MagneSafe V5 (eDynamo, tDynamo) profiles: a PTY
//! cannot carry HID reports (nor feature reports), so the simulated reader runs in this process
//! behind the fake HID transport, and the real driver
//! (the one `reader read` and `run` use) drives it: one transaction per `--card`, each read
//! printed as a `decode` JSON line; every request the reader received is logged on standard
//! error as a JSON line. With `--no-card` the transaction ends with the host's time-out.
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cardlane::device::fake_hid::{FakeHidPort, FakeLine, SimHid};
use cardlane::device::profile::{Profile, Protocol};
use cardlane::device::session::{DrivenReader, DriverConfig, DriverEvent, Port};
use cardlane::device::transport::Duplex;
use cardlane::protocol::magtek_v5::sim::SimEdynamo;
use cardlane::protocol::mms::sim::{SimCard, SimDynaflex};
use cardlane::protocol::neo2::{Activate, Event, Interfaces, Outcome};
use zeroize::Zeroizing;

use super::card::{Card, Interface};

/// Longest the simulation waits for any one step before it fails.
const STEP: Duration = Duration::from_secs(30);

pub(super) struct MmsRun<'a> {
    pub profile: &'a Profile,
    pub bdk: &'a [u8],
    pub ksn: &'a [u8],
    pub cards: &'a [Card],
    pub interface: Interface,
    pub present_after: Duration,
    pub no_card: bool,
    pub timeout: Duration,
}

fn next_event(rx: &mpsc::Receiver<DriverEvent>, by: Instant) -> anyhow::Result<Event> {
    loop {
        let left = by.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(DriverEvent::Session(e)) => return Ok(e),
            Ok(_) => {}
            Err(_) => anyhow::bail!("the simulated reader did not answer within {STEP:?}"),
        }
    }
}

pub(super) fn run(r: MmsRun<'_>) -> anyhow::Result<ExitCode> {
    let cards: Vec<SimCard> = r
        .cards
        .iter()
        .map(|c| SimCard {
            pan: Zeroizing::new(c.pan.to_string()),
            expiry: c.expiry.clone(),
            contactless: r.interface == Interface::Contactless,
        })
        .collect();
    let runs = cards.len().max(1);
    let cards = if r.no_card { Vec::new() } else { cards };
    let present = (!r.no_card).then_some(r.present_after);
    if r.profile.protocol == Protocol::MagtekV5 {
        let antenna = r
            .profile
            .magtek_v5
            .as_ref()
            .is_some_and(|v| v.contactless != 0);
        if r.interface == Interface::Contactless && !antenna {
            eprintln!(
                "error: profile `{}` has no contactless interface: give --interface contact",
                r.profile.id
            );
            return Ok(ExitCode::from(2));
        }
        let sim = SimEdynamo::new(r.bdk, r.ksn, cards).context("simulated eDynamo")?;
        let line = FakeLine::new(sim, present);
        if let Ok(mut l) = line.lock() {
            l.feature_id = r
                .profile
                .magtek_v5
                .as_ref()
                .map_or(0, |v| v.feature_report_id);
        }
        return drive(&r, runs, line, |s| s.log.clone());
    }
    let sim = SimDynaflex::new(r.bdk, r.ksn, cards).context("simulated DynaFlex")?;
    drive(&r, runs, FakeLine::new(sim, present), |s| s.log.clone())
}

/// Drives the simulated reader on `line` with the real driver, one transaction per card.
fn drive<R: SimHid + 'static>(
    r: &MmsRun<'_>,
    runs: usize,
    line: Arc<Mutex<FakeLine<R>>>,
    log_of: fn(&R) -> Vec<String>,
) -> anyhow::Result<ExitCode> {
    let port_line = line.clone();
    let (tx, rx) = mpsc::channel();
    let mut config = DriverConfig::default();
    config.apply_profile(Some(r.profile));
    let reader = DrivenReader::spawn_with(
        move || {
            Ok(Port {
                io: Box::new(FakeHidPort::new(port_line.clone())) as Box<dyn Duplex>,
                hid: true,
            })
        },
        config,
        move |e| {
            let _ = tx.send(e);
        },
    );
    println!(
        "{}",
        serde_json::json!({"ready": true, "profile": r.profile.id, "transport": "fake-hid"})
    );
    let by = Instant::now() + STEP;
    while !matches!(next_event(&rx, by)?, Event::Ready { .. }) {}
    let mut failed = false;
    let mut logged = 0;
    for _ in 0..runs {
        reader
            .activate(Activate {
                interfaces: Interfaces::ALL,
                timeout: r.timeout,
            })
            .map_err(|e| anyhow::anyhow!("activate: {e}"))?;
        let by = Instant::now() + r.timeout + STEP;
        let outcome = loop {
            if let Event::Outcome(o) = next_event(&rx, by)? {
                break o;
            }
        };
        match outcome {
            Outcome::Read { read, .. } => println!("{}", read.to_json()),
            o => {
                failed = true;
                println!("{}", serde_json::json!({"error": {"code": o.code()}}));
            }
        }
        // Back to idle before the next transaction (the read's cancel is answered).
        let by = Instant::now() + STEP;
        while next_event(&rx, by)? != Event::State(cardlane::protocol::neo2::State::Idle) {}
        let log = line.lock().map(|l| log_of(&l.reader)).unwrap_or_default();
        for cmd in log.iter().skip(logged) {
            eprintln!("{}", serde_json::json!({"received": cmd}));
        }
        logged = log.len();
    }
    reader.shutdown();
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
