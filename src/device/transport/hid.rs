//! HID readers through hidapi (`linux-native-basic-udev`: hidraw, no libudev needed).

use std::ffi::CString;
use std::time::{Duration, Instant};

use super::{Chunk, ChunkKind, FeatureReports, Transport, TransportError, Writer};

pub struct HidTransport {
    device: hidapi::HidDevice,
    opened: Instant,
    buf: Vec<u8>,
}

impl HidTransport {
    /// Opens by ids (and serial number); `report_size` sizes the read buffer so whole reports
    /// come back (a short buffer is what truncates reports in other libraries).
    pub fn open_ids(
        vid: u16,
        pid: u16,
        serial: Option<&str>,
        report_size: usize,
    ) -> Result<Self, TransportError> {
        let api = hidapi::HidApi::new().map_err(|e| map_err(&e))?;
        let device = match serial {
            Some(sn) => api.open_serial(vid, pid, sn),
            None => api.open(vid, pid),
        };
        // hidapi reports "no such device" and "permission denied" alike as open failures:
        // look for the node to tell them apart.
        let device = device.map_err(|e| {
            let path = api
                .device_list()
                .find(|d| d.vendor_id() == vid && d.product_id() == pid)
                .map(|d| d.path().to_string_lossy().into_owned());
            match path {
                None => TransportError::NotFound,
                Some(p) => probe_path(&p).err().unwrap_or_else(|| map_err(&e)),
            }
        })?;
        Ok(Self::wrap(device, report_size))
    }

    /// Opens a hidraw node by path.
    pub fn open_path(path: &str, report_size: usize) -> Result<Self, TransportError> {
        probe_path(path)?;
        let api = hidapi::HidApi::new().map_err(|e| map_err(&e))?;
        let c = CString::new(path)
            .map_err(|_| TransportError::Config(String::from("path holds NUL")))?;
        let device = api.open_path(&c).map_err(|e| map_err(&e))?;
        Ok(Self::wrap(device, report_size))
    }

    fn wrap(device: hidapi::HidDevice, report_size: usize) -> Self {
        HidTransport {
            device,
            opened: Instant::now(),
            // +1 for a report id byte; never below a full-speed report.
            buf: vec![0; report_size.max(64) + 1],
        }
    }
}

/// Opening the node ourselves gives the precise errno (EACCES vs ENOENT).
pub(crate) fn probe_path(path: &str) -> Result<(), TransportError> {
    std::fs::OpenOptions::new()
        .read(true)
        .open(path)
        .map(drop)
        .map_err(|e| TransportError::from_io(&e))
}

fn map_err(e: &hidapi::HidError) -> TransportError {
    match e {
        hidapi::HidError::IoError { error } => TransportError::from_io(error),
        _ => TransportError::Io(String::from("hidapi error")),
    }
}

impl Transport for HidTransport {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        match self.device.read_timeout(&mut self.buf, ms) {
            Ok(0) => Ok(None),
            Ok(n) => {
                let bytes = self.buf.get(..n).unwrap_or(&[]).to_vec();
                zeroize::Zeroize::zeroize(self.buf.as_mut_slice());
                Ok(Some(Chunk::new(
                    bytes,
                    self.opened.elapsed(),
                    ChunkKind::Hex,
                )))
            }
            // A read error on hidraw means the device went away (ENODEV/EIO).
            Err(hidapi::HidError::IoError { error }) => match TransportError::from_io(&error) {
                TransportError::Io(_) => Err(TransportError::Closed),
                other => Err(other),
            },
            Err(_) => Err(TransportError::Closed),
        }
    }
    fn as_features(&mut self) -> Option<&mut dyn FeatureReports> {
        Some(self)
    }
}

/// hidapi errors of a control transfer: a gone device is `Closed`; anything else (a stalled or
/// timed-out transfer: the reader did not take it) stays an I/O error, so the session can tell
/// an unresponsive reader from an unplugged one.
fn feature_err(e: hidapi::HidError) -> TransportError {
    match e {
        // EPIPE is the device's STALL handshake: it refused the request, it is still there.
        hidapi::HidError::IoError { error } if error.raw_os_error() == Some(libc::EPIPE) => {
            TransportError::Io(String::from("feature report stalled"))
        }
        hidapi::HidError::IoError { error } => TransportError::from_io(&error),
        _ => TransportError::Io(String::from("feature report failed")),
    }
}

impl FeatureReports for HidTransport {
    fn set_feature(&mut self, report: &[u8]) -> Result<(), TransportError> {
        self.device.send_feature_report(report).map_err(feature_err)
    }
    fn get_feature(&mut self, report_id: u8, buf: &mut [u8]) -> Result<usize, TransportError> {
        let first = buf
            .first_mut()
            .ok_or_else(|| TransportError::Config(String::from("empty feature buffer")))?;
        *first = report_id;
        self.device.get_feature_report(buf).map_err(feature_err)
    }
}

impl Writer for HidTransport {
    /// One output report, report id first (hidapi's convention).
    fn write_unit(&mut self, report: &[u8]) -> Result<(), TransportError> {
        match self.device.write(report) {
            Ok(_) => Ok(()),
            Err(hidapi::HidError::IoError { error }) => match TransportError::from_io(&error) {
                TransportError::Io(_) => Err(TransportError::Closed),
                other => Err(other),
            },
            Err(_) => Err(TransportError::Closed),
        }
    }
}
