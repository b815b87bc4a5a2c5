//! Finding readers (hidapi enumeration, serial ports, `/dev/input` via sysfs), matching them to
//! profiles, opening selectors, and the operator hints that go with problems.

use std::path::Path;

use serde::Serialize;

use super::profile::{Profile, Profiles, TransportKind};
use super::selector::Selector;
use super::transport::{
    Connector, HidTransport, KeyboardTransport, SerialTransport, StdinTransport, Transport,
    TransportError,
};

/// One attached reader, as `cardlane devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub selector: String,
    pub profile: Option<String>,
    pub name: String,
    /// `hid`, `serial` or `keyboard`: the mode the reader is in now.
    pub transport: String,
    pub vid: String,
    pub pid: String,
    pub path: String,
    /// Reason code of a problem (`permission-denied`, `keyboard-mode`), or null.
    pub problem: Option<String>,
    pub hint: Option<String>,
}

/// The udev rule that grants access to a vendor's nodes of this kind.
pub fn udev_hint(transport: TransportKind, vid: Option<u16>) -> String {
    let vendor = vid
        .map(|v| format!(", ATTRS{{idVendor}}==\"{v:04x}\""))
        .unwrap_or_default();
    let node = match transport {
        TransportKind::Hid => "KERNEL==\"hidraw*\", SUBSYSTEM==\"hidraw\"",
        TransportKind::Keyboard => "KERNEL==\"event*\", SUBSYSTEM==\"input\"",
        TransportKind::Serial => "SUBSYSTEM==\"tty\"",
    };
    format!(
        "no permission: install devices/99-cardlane.rules in /etc/udev/rules.d (rule: {node}{vendor}, MODE=\"0660\", GROUP=\"pos\"), run `udevadm control --reload && udevadm trigger`, and add this user to group pos"
    )
}

/// Advice for an error seen on a reader.
pub fn hint_for(
    error: &TransportError,
    transport: TransportKind,
    vid: Option<u16>,
    profile: Option<&Profile>,
) -> Option<String> {
    match error {
        TransportError::PermissionDenied => Some(udev_hint(transport, vid)),
        TransportError::NotFound if transport == TransportKind::Hid => Some(String::from(
            "no such HID device: if the reader is in keyboard mode it shows as /dev/input/eventN (see `cardlane devices`); switch it to HID with the vendor's configuration utility",
        )),
        TransportError::Busy => Some(String::from("another program holds the device open")),
        TransportError::Closed | TransportError::NotFound => {
            Some(String::from("reader unplugged or gone; waiting for it to come back"))
        }
        _ => profile.and_then(|p| p.hint.clone()),
    }
}

/// Lists attached readers that match a profile. Never fails: a source that cannot be listed
/// contributes nothing (logged at debug level).
pub fn enumerate(profiles: &Profiles) -> Vec<DeviceInfo> {
    let mut out = hid_devices(profiles);
    out.extend(keyboard_devices(profiles));
    out.extend(serial_devices(profiles));
    out
}

fn hid_devices(profiles: &Profiles) -> Vec<DeviceInfo> {
    let api = match hidapi::HidApi::new() {
        Ok(api) => api,
        Err(_) => {
            tracing::debug!("hidapi unavailable; no HID readers listed");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for d in api.device_list() {
        let (vid, pid) = (d.vendor_id(), d.product_id());
        let usage = Some(d.usage_page()).filter(|&u| u != 0);
        let Some(p) = profiles.match_usb(
            TransportKind::Hid,
            vid,
            pid,
            usage,
            Some(d.interface_number()),
        ) else {
            continue;
        };
        let path = d.path().to_string_lossy().into_owned();
        let problem = super::transport::hid_probe(&path).err();
        out.push(DeviceInfo {
            selector: format!("hidraw:{path}"),
            profile: Some(p.id.clone()),
            name: p.name.clone(),
            transport: String::from("hid"),
            vid: format!("{vid:04X}"),
            pid: format!("{pid:04X}"),
            hint: problem
                .as_ref()
                .and_then(|e| hint_for(e, TransportKind::Hid, Some(vid), Some(p))),
            problem: problem.map(|e| e.code().to_string()),
            path,
        });
    }
    out
}

fn read_hex_file(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    u16::from_str_radix(text.trim(), 16).ok()
}

fn keyboard_devices(profiles: &Profiles) -> Vec<DeviceInfo> {
    let Ok(dir) = std::fs::read_dir("/sys/class/input") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("event") {
            continue;
        }
        let id = entry.path().join("device/id");
        let (Some(vid), Some(pid)) = (
            read_hex_file(&id.join("vendor")),
            read_hex_file(&id.join("product")),
        ) else {
            continue;
        };
        let Some(p) = profiles.match_usb(TransportKind::Keyboard, vid, pid, None, None) else {
            continue;
        };
        let path = format!("/dev/input/{name}");
        let denied = super::transport::hid_probe(&path).err();
        out.push(DeviceInfo {
            selector: format!("keyboard:{path}"),
            profile: Some(p.id.clone()),
            name: p.name.clone(),
            transport: String::from("keyboard"),
            vid: format!("{vid:04X}"),
            pid: format!("{pid:04X}"),
            problem: Some(
                denied
                    .as_ref()
                    .map(|e| e.code().to_string())
                    .unwrap_or_else(|| String::from("keyboard-mode")),
            ),
            hint: match &denied {
                Some(e) => hint_for(e, TransportKind::Keyboard, Some(vid), Some(p)),
                None => p.hint.clone(),
            },
            path,
        });
    }
    out
}

fn serial_devices(profiles: &Profiles) -> Vec<DeviceInfo> {
    let Ok(ports) = serialport::available_ports() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for port in ports {
        let serialport::SerialPortType::UsbPort(usb) = &port.port_type else {
            continue;
        };
        let Some(p) = serial_match(profiles, usb.vid) else {
            continue;
        };
        // Opening a tty to probe it would toggle its modem lines: report access from the mode bits.
        let problem = tty_access(&port.port_name).err();
        out.push(DeviceInfo {
            selector: format!("serial:{}", port.port_name),
            profile: Some(p.id.clone()),
            name: p.name.clone(),
            transport: String::from("serial"),
            vid: format!("{:04X}", usb.vid),
            pid: format!("{:04X}", usb.pid),
            hint: problem
                .as_ref()
                .and_then(|e| hint_for(e, TransportKind::Serial, Some(usb.vid), Some(p))),
            problem: problem.map(|e| e.code().to_string()),
            path: port.port_name.clone(),
        });
    }
    out
}

/// A serial port's profile by its USB vendor alone: the adapter's product id says nothing about
/// the reader on the line.
fn serial_match(profiles: &Profiles, vid: u16) -> Option<&Profile> {
    profiles
        .iter()
        .find(|p| p.transport == TransportKind::Serial && p.matcher.vid == Some(vid))
}

fn tty_access(path: &str) -> Result<(), TransportError> {
    // Opening read-only with O_NONBLOCK does not wait for carrier and does not configure the line.
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map(drop)
        .map_err(|e| TransportError::from_io(&e))
}

/// USB ids of a hidraw node, from sysfs (`HID_ID=0003:00000ACD:00002010`).
pub fn hidraw_ids(path: &str) -> Option<(u16, u16)> {
    let node = Path::new(path).file_name()?.to_str()?;
    let uevent = std::fs::read_to_string(format!("/sys/class/hidraw/{node}/device/uevent")).ok()?;
    let id = uevent.lines().find_map(|l| l.strip_prefix("HID_ID="))?;
    let mut parts = id.split(':').skip(1);
    let vid = u32::from_str_radix(parts.next()?, 16).ok()?;
    let pid = u32::from_str_radix(parts.next()?, 16).ok()?;
    Some((u16::try_from(vid).ok()?, u16::try_from(pid).ok()?))
}

/// The profile for a selector: the forced one, else matched from the device's ids, else the
/// transport's generic default (binary stream for serial, clear text for keyboard/stdin).
pub fn resolve_profile(
    selector: &Selector,
    profiles: &Profiles,
    forced: Option<&str>,
) -> Result<Option<Profile>, super::ProfileError> {
    resolve_profile_in(Path::new("/sys"), selector, profiles, forced)
}

/// [`resolve_profile`] with the sysfs root as a parameter (tests give a tree of their own).
/// Serial and keyboard selectors are matched by the USB ids behind them too, by the rules
/// `cardlane devices` uses, so a configured reader names the same profile `devices` shows.
pub fn resolve_profile_in(
    sys: &Path,
    selector: &Selector,
    profiles: &Profiles,
    forced: Option<&str>,
) -> Result<Option<Profile>, super::ProfileError> {
    if let Some(id) = forced {
        return profiles.require(id).cloned().map(Some);
    }
    let ids = match selector {
        Selector::Hid { vid, pid, .. } => Some((*vid, *pid)),
        Selector::Hidraw(p) => hidraw_ids(p),
        Selector::Serial { path, .. } => tty_usb_ids(sys, path),
        Selector::Keyboard(p) => input_ids(sys, p),
        Selector::Stdin | Selector::Simulated(_) => None,
    };
    let matched = match (selector, ids) {
        (Selector::Serial { .. }, Some((v, _))) => serial_match(profiles, v),
        (_, Some((v, p))) => profiles.match_usb(selector.transport(), v, p, None, None),
        (_, None) => None,
    };
    Ok(match (matched, selector) {
        (Some(p), _) => Some(p.clone()),
        (None, Selector::Keyboard(_) | Selector::Stdin) => {
            profiles.get("generic-keyboard-wedge").cloned()
        }
        // Serial without a profile: the binary stream framer detects STX and ViVOtech2 frames.
        (None, _) => None,
    })
}

/// USB ids behind a tty (a reader's own USB-CDC port or a USB-serial adapter): the tty's
/// `device` is a USB interface (ttyACM) or a port under one (ttyUSB); idVendor/idProduct sit on
/// the USB device a level or two up. None for a plain RS-232 port or a PTY.
fn tty_usb_ids(sys: &Path, path: &str) -> Option<(u16, u16)> {
    let node = Path::new(path).file_name()?.to_str()?;
    let dev = std::fs::canonicalize(sys.join("class/tty").join(node).join("device")).ok()?;
    dev.ancestors().take(4).find_map(|d| {
        Some((
            read_hex_file(&d.join("idVendor"))?,
            read_hex_file(&d.join("idProduct"))?,
        ))
    })
}

/// Ids of an input event node (`/sys/class/input/eventN/device/id/{vendor,product}`).
fn input_ids(sys: &Path, path: &str) -> Option<(u16, u16)> {
    let node = Path::new(path).file_name()?.to_str()?;
    let id = sys.join("class/input").join(node).join("device/id");
    Some((
        read_hex_file(&id.join("vendor"))?,
        read_hex_file(&id.join("product"))?,
    ))
}

/// Opens a selector once.
pub fn open(
    selector: &Selector,
    profile: Option<&Profile>,
) -> Result<Box<dyn Transport>, TransportError> {
    let report = profile
        .and_then(|p| p.report.as_ref())
        .map(|r| r.size)
        .unwrap_or(64);
    Ok(match selector {
        Selector::Hid { vid, pid, serial } => Box::new(HidTransport::open_ids(
            *vid,
            *pid,
            serial.as_deref(),
            report,
        )?),
        Selector::Hidraw(path) => Box::new(HidTransport::open_path(path, report)?),
        Selector::Serial { path, baud } => Box::new(SerialTransport::open(
            path,
            profile.and_then(|p| p.serial.as_ref()),
            *baud,
        )?),
        Selector::Keyboard(path) => Box::new(KeyboardTransport::open(path)?),
        Selector::Stdin => Box::new(StdinTransport::open()),
        Selector::Simulated(_) => {
            return Err(TransportError::Config(String::from(
                "sim: is a driven MagTek reader (protocol \"mms\" or \"magtek-v5\"), not a listen-only one",
            )))
        }
    })
}

/// Re-opens a selector each time the manager asks.
pub struct SelectorConnector {
    pub selector: Selector,
    pub profile: Option<Profile>,
}

impl Connector for SelectorConnector {
    fn connect(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        open(&self.selector, self.profile.as_ref())
    }

    fn source(&self) -> String {
        self.selector.to_string()
    }

    fn reconnectable(&self) -> bool {
        self.selector != Selector::Stdin
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A fake sysfs: an ID TECH USB-CDC port (ttyACM0), a MagTek keyboard reader (event7), and
    /// a plain port with no USB device behind it (ttyS0).
    #[test]
    fn serial_and_keyboard_selectors_are_matched_by_their_usb_ids() {
        let profiles = Profiles::embedded().unwrap();
        let sys = tempfile::tempdir().unwrap();
        let root = sys.path();
        let usb = root.join("devices/pci0/usb1/1-1");
        write(&usb.join("idVendor"), "0acd\n");
        write(&usb.join("idProduct"), "3210\n");
        std::fs::create_dir_all(usb.join("1-1:1.0")).unwrap();
        std::fs::create_dir_all(root.join("class/tty/ttyACM0")).unwrap();
        std::os::unix::fs::symlink(usb.join("1-1:1.0"), root.join("class/tty/ttyACM0/device"))
            .unwrap();
        write(&root.join("class/input/event7/device/id/vendor"), "0801\n");
        write(&root.join("class/input/event7/device/id/product"), "0001\n");
        std::fs::create_dir_all(root.join("class/tty/ttyS0/device")).unwrap();

        let id = |sel: &str| {
            resolve_profile_in(root, &sel.parse().unwrap(), &profiles, None)
                .unwrap()
                .map(|p| p.id)
        };
        assert_eq!(
            id("serial:/dev/ttyACM0@9600").as_deref(),
            Some("idtech-serial")
        );
        assert_eq!(
            id("keyboard:/dev/input/event7").as_deref(),
            Some("magtek-dynamag-kb")
        );
        // Nothing behind them: the generic defaults, as before.
        assert_eq!(id("serial:/dev/ttyS0"), None);
        assert_eq!(
            id("keyboard:/dev/input/event9").as_deref(),
            Some("generic-keyboard-wedge")
        );
        // A forced profile still wins.
        let forced = resolve_profile_in(
            root,
            &"serial:/dev/ttyACM0".parse().unwrap(),
            &profiles,
            Some("magtek-micr-serial"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(forced.id, "magtek-micr-serial");
    }
}
