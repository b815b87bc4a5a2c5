//! The demo's driven readers: `cardlane reader-sim` (this same binary) on a PTY in the demo's
//! scratch directory, driven over NEO 2 like a lane's VP3300 (one dip, one tap), and a DynaFlex
//! dip from a `sim:` reader (MMS over the fake HID transport, in this process). Each read's
//! card data is handed back, with its profile, as the frame the pipeline takes.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cardlane::device::profile::{Profile, Profiles};
use cardlane::device::session::{DrivenReader, DriverConfig, DriverEvent};
use cardlane::device::Selector;
use cardlane::protocol::neo2::{Activate, Event, Interfaces, Outcome};
use zeroize::Zeroizing;

const PROFILE: &str = "idtech-neo2-serial";
const MAGTEK_PROFILE: &str = "magtek-dynaflex-hid";
/// The DynaFlex's row; it presents `device::simulated::TEST_CARDS[0]`.
const MAGTEK_DIP: &str = "sim:dynaflex-dip";
/// Issuer test PANs (Visa, Mastercard); the rows show them masked.
const DIP: (&str, &str, &str) = ("reader-sim:dip", "contact", "4761739001010119:2812");
const TAP: (&str, &str, &str) = ("reader-sim:tap", "contactless", "5413330089010608:2901");
/// Generous bounds: a PTY answers in milliseconds; these only keep a broken run from hanging.
const WITHIN: Duration = Duration::from_secs(20);

/// A reader-sim process, killed when dropped.
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A read the demo submits: its row name, the reader's profile and the card data.
pub(super) type DrivenRead = (String, Profile, Zeroizing<Vec<u8>>);

/// One dip and one tap over NEO 2, one DynaFlex dip.
pub(super) fn reads(dir: &Path, profiles: &Profiles) -> anyhow::Result<Vec<DrivenRead>> {
    let profile = profiles
        .get(PROFILE)
        .context("the NEO 2 serial profile is missing")?
        .clone();
    let mut reads = [DIP, TAP]
        .into_iter()
        .map(|(name, interface, card)| {
            let frame = one_read(dir, &profile, interface, card)
                .with_context(|| format!("{name} through reader-sim"))?;
            Ok((name.to_string(), profile.clone(), frame))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let magtek = profiles
        .get(MAGTEK_PROFILE)
        .context("the DynaFlex profile is missing")?
        .clone();
    let (reader, events) = DrivenReader::spawn_channel(
        Selector::Simulated("demo".into()),
        Some(magtek.clone()),
        DriverConfig::default(),
    );
    let frame = drive(&reader, &events, "contact");
    reader.shutdown();
    let frame = frame.with_context(|| format!("{MAGTEK_DIP} through the fake HID transport"))?;
    reads.push((MAGTEK_DIP.to_string(), magtek, frame));
    Ok(reads)
}

fn one_read(
    dir: &Path,
    profile: &Profile,
    interface: &str,
    card: &str,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let link = dir.join(format!("neo2-{interface}"));
    let _sim = start_sim(&link, interface, card)?;
    let selector: Selector = format!("serial:{}", link.display())
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (reader, events) =
        DrivenReader::spawn_channel(selector, Some(profile.clone()), DriverConfig::default());
    let result = drive(&reader, &events, interface);
    reader.shutdown();
    result
}

fn drive(
    reader: &DrivenReader,
    events: &mpsc::Receiver<DriverEvent>,
    interface: &str,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let until = Instant::now() + WITHIN;
    let next = || {
        events
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .map_err(|_| anyhow::anyhow!("the simulated reader did not answer in time"))
    };
    while !matches!(next()?, DriverEvent::Session(Event::Ready { .. })) {}
    let interfaces = Interfaces::parse_list(interface).context("interface")?;
    reader
        .activate(Activate {
            interfaces,
            timeout: Duration::from_secs(10),
        })
        .map_err(|e| anyhow::anyhow!("starting the transaction: {e}"))?;
    loop {
        if let DriverEvent::Session(Event::Outcome(o)) = next()? {
            return match o {
                Outcome::Read { frame, .. } => Ok(frame),
                other => Err(anyhow::anyhow!("the transaction ended {}", other.code())),
            };
        }
    }
}

fn start_sim(link: &Path, interface: &str, card: &str) -> anyhow::Result<SimProcess> {
    let exe = std::env::current_exe().context("finding the cardlane binary")?;
    let mut child = Command::new(exe)
        .args(["reader-sim", "--profile", PROFILE, "--link"])
        .arg(link)
        .args([
            "--interface",
            interface,
            "--card",
            card,
            "--present-after",
            "100",
        ])
        .env_remove("CARDLANE_BDK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting reader-sim")?;
    let stdout = child.stdout.take().context("reader-sim's output")?;
    let sim = SimProcess(child);
    // Ready once it printed its first line (the PTY is linked by then).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(WITHIN)
        .map_err(|_| anyhow::anyhow!("reader-sim did not start"))?;
    anyhow::ensure!(line.contains("\"ready\":true"), "reader-sim did not start");
    Ok(sim)
}
