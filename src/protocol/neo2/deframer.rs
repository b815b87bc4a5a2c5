//! Streaming deframer: bytes in as the line delivers them, whole checked frames out. Resyncs on
//! the header after garbage or a bad CRC; never panics, never waits for more than `max_data`.
use zeroize::Zeroizing;

use super::frame::{self, Command, Direction, FrameError, Incoming, HEADER, HEAD_LEN};

/// What the deframer found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deframed<T> {
    Frame(T),
    /// A frame whose CRC did not match (dropped; the deframer resyncs after its header).
    BadCrc {
        command: u8,
    },
    /// Bytes that were not part of any frame, dropped.
    Garbage {
        len: usize,
    },
    /// A header announcing more data than any NEO 2 answer holds (taken as garbage).
    Oversize {
        len: usize,
    },
}

/// Longest data a frame may announce before the header is taken as garbage. NEO 2 answers with
/// card data are a few hundred bytes; the cap keeps a corrupt length from stalling the stream.
pub const DEFAULT_MAX_DATA: usize = 8192;

pub struct Deframer {
    direction: Direction,
    buf: Zeroizing<Vec<u8>>,
    max_data: usize,
}

impl Deframer {
    /// `direction`: the way the frames this deframer reads travel.
    pub fn new(direction: Direction) -> Deframer {
        Deframer {
            direction,
            buf: Zeroizing::new(Vec::new()),
            max_data: DEFAULT_MAX_DATA,
        }
    }

    /// A host reading a reader.
    pub fn host() -> Deframer {
        Deframer::new(Direction::ReaderToHost)
    }

    /// A reader (or simulator) reading its host.
    pub fn reader() -> Deframer {
        Deframer::new(Direction::HostToReader)
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Drops a partial frame (the line was reopened).
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    /// Whole frames, checked but not split.
    pub fn push_raw(&mut self, bytes: &[u8]) -> Vec<Deframed<Zeroizing<Vec<u8>>>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let Some(start) = find(&self.buf, HEADER) else {
                // Keep a tail that may be the start of a header split across reads.
                let keep = header_prefix_suffix(&self.buf);
                let drop = self.buf.len() - keep;
                if drop > 0 {
                    self.buf.drain(..drop);
                    out.push(Deframed::Garbage { len: drop });
                }
                break;
            };
            if start > 0 {
                self.buf.drain(..start);
                out.push(Deframed::Garbage { len: start });
            }
            let Some(total) = frame::frame_len(&self.buf) else {
                break;
            };
            if total - HEAD_LEN - 2 > self.max_data {
                out.push(Deframed::Oversize { len: total });
                self.buf.drain(..1);
                continue;
            }
            let Some(whole) = self.buf.get(..total) else {
                break;
            };
            match frame::check(self.direction, whole) {
                Ok(_) => {
                    let f = Zeroizing::new(whole.to_vec());
                    self.buf.drain(..total);
                    out.push(Deframed::Frame(f));
                }
                Err(FrameError::BadCrc { command }) => {
                    out.push(Deframed::BadCrc { command });
                    // Resync: a real header may start inside the bad frame.
                    self.buf.drain(..1);
                }
                Err(_) => {
                    self.buf.drain(..1);
                }
            }
        }
        out
    }

    /// A host's deframer: responses and the reader's own requests.
    pub fn push_incoming(&mut self, bytes: &[u8]) -> Vec<Deframed<Incoming>> {
        map(self.push_raw(bytes), frame::decode_incoming)
    }

    /// A reader's deframer: the host's commands.
    pub fn push_commands(&mut self, bytes: &[u8]) -> Vec<Deframed<Command>> {
        map(self.push_raw(bytes), frame::decode_command)
    }
}

fn map<T>(
    raw: Vec<Deframed<Zeroizing<Vec<u8>>>>,
    decode: impl Fn(&[u8]) -> Result<T, FrameError>,
) -> Vec<Deframed<T>> {
    raw.into_iter()
        .filter_map(|d| match d {
            // Already checked: decoding cannot fail, but a failure is dropped, not a panic.
            Deframed::Frame(f) => decode(&f).ok().map(Deframed::Frame),
            Deframed::BadCrc { command } => Some(Deframed::BadCrc { command }),
            Deframed::Garbage { len } => Some(Deframed::Garbage { len }),
            Deframed::Oversize { len } => Some(Deframed::Oversize { len }),
        })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Length of the longest suffix of `buf` that is a proper prefix of the header.
fn header_prefix_suffix(buf: &[u8]) -> usize {
    (1..HEADER.len())
        .rev()
        .find(|&n| buf.len() >= n && buf.get(buf.len() - n..) == HEADER.get(..n))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::neo2::{Response, Status};
    use proptest::prelude::*;

    fn frames_only<T>(v: Vec<Deframed<T>>) -> Vec<T> {
        v.into_iter()
            .filter_map(|d| match d {
                Deframed::Frame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn garbage_bad_crc_and_split_header() {
        // The ping answer of §1.5 (CRC FA83, MSB first), after noise, then a copy with its CRC
        // flipped, then the poll-mode answer split inside the header.
        let ping = hex::decode("5669564F74656368320018000000FA83").unwrap();
        let mut bad = ping.clone();
        bad[15] ^= 0xFF;
        let poll = hex::decode("5669564F7465636832000100000 01253".replace(' ', "")).unwrap();
        let mut d = Deframer::host();
        let mut stream = b"\x00\xFFjunk".to_vec();
        stream.extend_from_slice(&ping);
        stream.extend_from_slice(&bad);
        stream.extend_from_slice(&poll[..5]);
        let got = d.push_incoming(&stream);
        assert_eq!(
            got,
            vec![
                Deframed::Garbage { len: 6 },
                Deframed::Frame(Incoming::Response(Response::new(0x18, Status::Ok, &[]))),
                Deframed::BadCrc { command: 0x18 },
                Deframed::Garbage { len: 15 },
            ]
        );
        assert_eq!(d.pending(), 5);
        let got = d.push_incoming(&poll[5..]);
        assert_eq!(
            got,
            vec![Deframed::Frame(Incoming::Response(Response::new(
                0x01,
                Status::Ok,
                &[]
            )))]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn oversize_length_does_not_stall() {
        let mut d = Deframer::host();
        let mut s = b"ViVOtech2\0\x02\x00\xFF\xFF".to_vec();
        s.extend_from_slice(&hex::decode("5669564F74656368320018000000FA83").unwrap());
        let got = d.push_incoming(&s);
        assert_eq!(got.first(), Some(&Deframed::Oversize { len: 0xFFFF + 16 }));
        assert_eq!(frames_only(got).len(), 1);
    }

    fn reader_frame() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(prompt, cmd, code, data)| {
                if prompt {
                    Command::new(0x61, code, &data).encode().unwrap()
                } else {
                    // 61 from the reader is always a request frame.
                    let cmd = if cmd == 0x61 { 0x02 } else { cmd };
                    Response::new(cmd, Status::from_byte(code), &data)
                        .encode()
                        .unwrap()
                }
            })
    }

    proptest! {
        // Any chunking of a reader's byte stream (frames with garbage between them) yields the
        // frames that were sent, in order.
        #[test]
        fn any_chunking_yields_the_same_frames(
            frames in proptest::collection::vec(reader_frame(), 1..6),
            garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no header start", |b| *b != b'V'), 0..20), 6),
            cuts in proptest::collection::vec(1usize..80, 0..40),
        ) {
            let mut stream = Vec::new();
            for (f, g) in frames.iter().zip(&garbage) {
                stream.extend_from_slice(g);
                stream.extend_from_slice(f);
            }
            let want: Vec<Incoming> = frames.iter().map(|f| frame::decode_incoming(f).unwrap()).collect();
            let mut d = Deframer::host();
            let mut got = Vec::new();
            let mut rest = stream.as_slice();
            for c in cuts {
                let n = c.min(rest.len());
                let (a, b) = rest.split_at(n);
                got.extend(frames_only(d.push_incoming(a)));
                rest = b;
            }
            got.extend(frames_only(d.push_incoming(rest)));
            prop_assert_eq!(got, want);
            prop_assert_eq!(d.pending(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..10)) {
            let mut d = Deframer::reader();
            for c in chunks {
                let _ = d.push_commands(&c);
            }
            prop_assert!(d.pending() < HEAD_LEN + DEFAULT_MAX_DATA + 2);
        }
    }
}
