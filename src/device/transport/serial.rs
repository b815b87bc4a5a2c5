//! Serial readers (RS-232, USB-CDC) through `serialport`; line settings from the profile.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::{Chunk, ChunkKind, Transport, TransportError, Writer};
use crate::device::profile::{Parity, Serial};

pub struct SerialTransport {
    port: Box<dyn serialport::SerialPort>,
    opened: Instant,
    buf: Vec<u8>,
}

impl SerialTransport {
    /// Opens `path` with the profile's settings; `baud` (from the selector) overrides its baud.
    pub fn open(
        path: &str,
        settings: Option<&Serial>,
        baud: Option<u32>,
    ) -> Result<Self, TransportError> {
        let baud = baud.or(settings.map(|s| s.baud)).unwrap_or(9600);
        let parity = match settings.map(|s| s.parity) {
            Some(Parity::Odd) => serialport::Parity::Odd,
            Some(Parity::Even) => serialport::Parity::Even,
            _ => serialport::Parity::None,
        };
        let data_bits = match settings.map(|s| s.data_bits) {
            Some(5) => serialport::DataBits::Five,
            Some(6) => serialport::DataBits::Six,
            Some(7) => serialport::DataBits::Seven,
            _ => serialport::DataBits::Eight,
        };
        let stop_bits = match settings.map(|s| s.stop_bits) {
            Some(2) => serialport::StopBits::Two,
            _ => serialport::StopBits::One,
        };
        let port = serialport::new(path, baud)
            .parity(parity)
            .data_bits(data_bits)
            .stop_bits(stop_bits)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| map_err(&e))?;
        Ok(SerialTransport {
            port,
            opened: Instant::now(),
            buf: vec![0; 4096],
        })
    }
}

fn map_err(e: &serialport::Error) -> TransportError {
    match e.kind() {
        // serialport reports EBUSY (TIOCEXCL held by someone else) as NoDevice.
        serialport::ErrorKind::NoDevice => TransportError::Busy,
        serialport::ErrorKind::Io(kind) => TransportError::from_io(&std::io::Error::from(kind)),
        serialport::ErrorKind::InvalidInput => {
            TransportError::Config(String::from("invalid serial settings"))
        }
        serialport::ErrorKind::Unknown => TransportError::Io(String::from("serial error")),
    }
}

impl Transport for SerialTransport {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        // serialport waits with poll(2) up to the timeout: no spinning.
        self.port
            .set_timeout(timeout.max(Duration::from_millis(1)))
            .map_err(|e| map_err(&e))?;
        match self.port.read(&mut self.buf) {
            Ok(0) => Err(TransportError::Closed),
            Ok(n) => {
                let bytes = self.buf.get(..n).unwrap_or(&[]).to_vec();
                zeroize::Zeroize::zeroize(self.buf.as_mut_slice());
                Ok(Some(Chunk::new(
                    bytes,
                    self.opened.elapsed(),
                    ChunkKind::Hex,
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(TransportError::from_io(&e)),
        }
    }

    fn as_writer(&mut self) -> Option<&mut dyn Writer> {
        Some(self)
    }
}

impl Writer for SerialTransport {
    fn write_unit(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.port
            .write_all(bytes)
            .and_then(|()| self.port.flush())
            .map_err(|e| TransportError::from_io(&e))
    }
}
