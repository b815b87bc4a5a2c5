//! ViVOtech2 frames (NEO 2 protocol v2): header, command, status, big-endian length, data,
//! CRC-16/CCITT-FALSE sent high byte first; card data = attribution byte + BER-TLV.
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, u8 as nom_u8};
use nom::sequence::tuple;
use nom::IResult;

use super::{emv, ParseError};
use crate::card::{CardRead, Format};

/// Frame headers seen in the wild.
pub const HEADERS: [&[u8; 10]; 3] = [b"ViVOtech2\0", b"ViVOpayV3\0", b"ViVOpayV2\0"];

/// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn header(i: &[u8]) -> IResult<&[u8], (&[u8], u8, u8, u16)> {
    tuple((take(10usize), nom_u8, nom_u8, be_u16))(i)
}

pub fn is_vivo(input: &[u8]) -> bool {
    HEADERS.iter().any(|h| input.starts_with(&h[..]))
}

pub fn decode(input: &[u8]) -> Result<CardRead, ParseError> {
    let (_, (hdr, _cmd, _status, len)) =
        header(input).map_err(|_| ParseError::Truncated("ViVOtech2 header"))?;
    if !HEADERS.iter().any(|h| &h[..] == hdr) {
        return Err(ParseError::UnknownFormat);
    }
    let end = 14 + usize::from(len);
    let (Some(body), Some(crc)) = (input.get(..end), input.get(end..end + 2)) else {
        return Err(ParseError::Truncated("frame shorter than its length"));
    };
    if input
        .get(end + 2..)
        .is_some_and(|t| t.iter().any(|&b| b != 0))
    {
        return Err(ParseError::BadLength("bytes after the CRC"));
    }
    let sent = u16::from_be_bytes([
        crc.first().copied().unwrap_or(0),
        crc.get(1).copied().unwrap_or(0),
    ]);
    if crc16(body) != sent {
        return Err(ParseError::BadCrc("ViVOtech2"));
    }
    let data = body.get(14..).unwrap_or_default();
    if data.is_empty() {
        Ok(CardRead::new(Format::Vivotech2))
    } else {
        let (attr, tlvs) = emv::split_attribution(data)?;
        emv::from_tlv(&tlvs, attr, Format::Vivotech2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_values() {
        // CRC-16/CCITT-FALSE catalogue check value over "123456789".
        assert_eq!(crc16(b"123456789"), 0x29B1);
        // The NEO 2 guide's example frame and its CRC 32E6 (reader-formats.md §2.5).
        let f = hex::decode("5669564F746563683200040000 05DFED110100".replace(' ', "")).unwrap();
        assert_eq!(crc16(&f), 0x32E6);
    }
}
