//! Device selectors (design.md §3): `hid:VID:PID[:SERIAL]`, `hidraw:/dev/hidrawN`,
//! `serial:/dev/ttyX[@BAUD]`, `keyboard:/dev/input/eventN`, `stdin`.

use std::fmt;
use std::str::FromStr;

use super::profile::TransportKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Hid {
        vid: u16,
        pid: u16,
        serial: Option<String>,
    },
    Hidraw(String),
    Serial {
        path: String,
        baud: Option<u32>,
    },
    Keyboard(String),
    Stdin,
    /// `sim:` or `sim:LABEL`: a simulated MagTek reader inside the agent
    /// (`device::simulated`); the label tells several apart.
    Simulated(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "unknown device selector kind (expected hid:, hidraw:, serial:, keyboard:, sim: or stdin)"
    )]
    UnknownKind,
    #[error("bad vendor/product id in hid: selector (expected hid:VID:PID[:SERIAL], hex)")]
    BadUsbId,
    #[error("bad baud rate in serial: selector (expected serial:/dev/ttyX[@BAUD])")]
    BadBaud,
    #[error("empty device path")]
    EmptyPath,
}

impl SelectorError {
    pub fn code(&self) -> &'static str {
        match self {
            SelectorError::UnknownKind => "selector-kind",
            SelectorError::BadUsbId => "selector-usb-id",
            SelectorError::BadBaud => "selector-baud",
            SelectorError::EmptyPath => "selector-path",
        }
    }
}

fn hex16(s: &str) -> Result<u16, SelectorError> {
    let s = s.trim_start_matches("0x").trim_start_matches("0X");
    if s.is_empty() || s.len() > 4 {
        return Err(SelectorError::BadUsbId);
    }
    u16::from_str_radix(s, 16).map_err(|_| SelectorError::BadUsbId)
}

fn path(s: &str) -> Result<String, SelectorError> {
    if s.is_empty() {
        Err(SelectorError::EmptyPath)
    } else {
        Ok(s.to_string())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "stdin" {
            return Ok(Selector::Stdin);
        }
        let (kind, rest) = s.split_once(':').ok_or(SelectorError::UnknownKind)?;
        match kind {
            "hid" => {
                let mut parts = rest.splitn(3, ':');
                let vid = hex16(parts.next().unwrap_or(""))?;
                let pid = hex16(parts.next().unwrap_or(""))?;
                let serial = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
                Ok(Selector::Hid { vid, pid, serial })
            }
            "hidraw" => Ok(Selector::Hidraw(path(rest)?)),
            "serial" => match rest.rsplit_once('@') {
                Some((p, baud)) => {
                    let baud: u32 = baud.parse().map_err(|_| SelectorError::BadBaud)?;
                    if baud == 0 {
                        return Err(SelectorError::BadBaud);
                    }
                    Ok(Selector::Serial {
                        path: path(p)?,
                        baud: Some(baud),
                    })
                }
                None => Ok(Selector::Serial {
                    path: path(rest)?,
                    baud: None,
                }),
            },
            "keyboard" => Ok(Selector::Keyboard(path(rest)?)),
            "sim" => Ok(Selector::Simulated(rest.to_string())),
            _ => Err(SelectorError::UnknownKind),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Hid { vid, pid, serial } => {
                write!(f, "hid:{vid:04X}:{pid:04X}")?;
                match serial {
                    Some(sn) => write!(f, ":{sn}"),
                    None => Ok(()),
                }
            }
            Selector::Hidraw(p) => write!(f, "hidraw:{p}"),
            Selector::Serial { path, baud } => match baud {
                Some(b) => write!(f, "serial:{path}@{b}"),
                None => write!(f, "serial:{path}"),
            },
            Selector::Keyboard(p) => write!(f, "keyboard:{p}"),
            Selector::Stdin => f.write_str("stdin"),
            Selector::Simulated(label) => write!(f, "sim:{label}"),
        }
    }
}

impl Selector {
    /// The transport this selector opens (`stdin` reads keyboard text).
    pub fn transport(&self) -> TransportKind {
        match self {
            Selector::Hid { .. } | Selector::Hidraw(_) | Selector::Simulated(_) => {
                TransportKind::Hid
            }
            Selector::Serial { .. } => TransportKind::Serial,
            Selector::Keyboard(_) | Selector::Stdin => TransportKind::Keyboard,
        }
    }

    /// The name written in a capture's `transport:` header.
    pub fn transport_name(&self) -> &'static str {
        match self {
            Selector::Stdin => "stdin",
            other => other.transport().as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_selector_form() {
        let ok = |s: &str| s.parse::<Selector>().unwrap();
        assert_eq!(
            ok("hid:0ACD:2010"),
            Selector::Hid {
                vid: 0x0ACD,
                pid: 0x2010,
                serial: None
            }
        );
        assert_eq!(
            ok("hid:0801:0011:B1234"),
            Selector::Hid {
                vid: 0x0801,
                pid: 0x0011,
                serial: Some("B1234".into())
            }
        );
        assert_eq!(
            ok("hidraw:/dev/hidraw3"),
            Selector::Hidraw("/dev/hidraw3".into())
        );
        assert_eq!(
            ok("serial:/dev/ttyUSB0@19200"),
            Selector::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: Some(19200)
            }
        );
        assert_eq!(
            ok("serial:/dev/pts/4"),
            Selector::Serial {
                path: "/dev/pts/4".into(),
                baud: None
            }
        );
        assert_eq!(
            ok("keyboard:/dev/input/event7"),
            Selector::Keyboard("/dev/input/event7".into())
        );
        assert_eq!(ok("stdin"), Selector::Stdin);
        assert_eq!(ok("sim:"), Selector::Simulated(String::new()));
        assert_eq!(ok("sim:kiosk"), Selector::Simulated("kiosk".into()));
        for s in [
            "sim:",
            "sim:kiosk",
            "hid:0ACD:2010",
            "hid:0801:0011:B1234",
            "serial:/dev/ttyS0@9600",
            "stdin",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn bad_selectors_have_typed_errors() {
        let err = |s: &str| s.parse::<Selector>().unwrap_err();
        assert_eq!(err("usb:1:2"), SelectorError::UnknownKind);
        assert_eq!(err("nothing"), SelectorError::UnknownKind);
        assert_eq!(err("hid:XYZ:1"), SelectorError::BadUsbId);
        assert_eq!(err("hid:0ACD"), SelectorError::BadUsbId);
        assert_eq!(err("hid:12345:1"), SelectorError::BadUsbId);
        assert_eq!(err("serial:/dev/ttyS0@fast"), SelectorError::BadBaud);
        assert_eq!(err("serial:/dev/ttyS0@0"), SelectorError::BadBaud);
        assert_eq!(err("keyboard:"), SelectorError::EmptyPath);
    }
}
