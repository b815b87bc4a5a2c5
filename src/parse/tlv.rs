//! Generic BER-TLV: multi-byte tags, long-form lengths, constructed tags, 00/FF padding,
//! ID TECH's flagged lengths (masked / encrypted copies), a depth limit, and tag names.
use nom::bytes::complete::take;
use nom::IResult;

use super::ParseError;

/// Nesting deeper than this is rejected (real data nests 3 levels at most).
pub const MAX_DEPTH: usize = 8;

/// ID TECH marks sensitive tags through bits of the first length byte (§2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LenFlag {
    Plain,
    Masked,
    Encrypted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u32,
    pub constructed: bool,
    pub flag: LenFlag,
    pub value: &'a [u8],
    /// Parsed contents of a constructed tag (empty when primitive or not parseable).
    pub children: Vec<Tlv<'a>>,
}

const TOO_DEEP: ParseError = ParseError::BadLength("TLV nested too deep");

fn tag(i: &[u8]) -> Result<(&[u8], u32, bool), ParseError> {
    let (&first, mut rest) = i.split_first().ok_or(ParseError::Truncated("TLV tag"))?;
    let mut tag = u32::from(first);
    if first & 0x1F == 0x1F {
        let mut n = 1;
        loop {
            let (&b, r) = rest.split_first().ok_or(ParseError::Truncated("TLV tag"))?;
            rest = r;
            tag = (tag << 8) | u32::from(b);
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
            if n >= 4 {
                return Err(ParseError::BadLength("TLV tag longer than 4 bytes"));
            }
        }
    }
    Ok((rest, tag, first & 0x20 != 0))
}

fn length(i: &[u8]) -> Result<(&[u8], usize, LenFlag), ParseError> {
    let (&b, rest) = i.split_first().ok_or(ParseError::Truncated("TLV length"))?;
    if b < 0x80 {
        return Ok((rest, usize::from(b), LenFlag::Plain));
    }
    let (n, flag) = if b & 0x60 != 0 && (1..=4).contains(&(b & 0x1F)) {
        let f = if b & 0x40 != 0 {
            LenFlag::Encrypted
        } else {
            LenFlag::Masked
        };
        (b & 0x1F, f)
    } else {
        (b & 0x7F, LenFlag::Plain)
    };
    if !(1..=4).contains(&n) {
        return Err(ParseError::BadLength("TLV length form"));
    }
    let r: IResult<&[u8], &[u8]> = take(usize::from(n))(rest);
    let (rest, bytes) = r.map_err(|_| ParseError::Truncated("TLV length"))?;
    let len = bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
    Ok((rest, len, flag))
}

/// The first tag of `data`, if one can be read.
pub fn first_tag(data: &[u8]) -> Option<u32> {
    tag(data).ok().map(|(_, t, _)| t)
}

/// Parses a sequence of TLV objects filling `input` (padding allowed between them).
pub fn parse(input: &[u8]) -> Result<Vec<Tlv<'_>>, ParseError> {
    parse_at(input, 0)
}

/// Where a stream that ends inside an object was cut: the object's tag, when its tag bytes
/// were all read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub tag: Option<u32>,
    pub constructed: bool,
}

/// Like [`parse`], but a stream that ends inside its last top-level object (keyboard output
/// that lost characters, a log line cut short) yields the objects before it and where it was
/// cut. Every other error stays an error.
pub fn parse_cut_short(input: &[u8]) -> Result<(Vec<Tlv<'_>>, Option<Cut>), ParseError> {
    let mut out = Vec::new();
    let mut i = input;
    loop {
        // Parse one top-level object at a time, so a cut is found at the object it hits.
        let start = i;
        let Some(next) = next_object_end(i)? else {
            break;
        };
        match next {
            Ok(len) => {
                let (obj, rest) = start.split_at(len);
                out.extend(parse_at(obj, 0)?);
                i = rest;
            }
            Err(cut) => return Ok((out, Some(cut))),
        }
    }
    Ok((out, None))
}

/// The length of the first object of `i` (padding before it included), `Err(Cut)` when the
/// input ends inside it, `None` when only padding is left.
fn next_object_end(i: &[u8]) -> Result<Option<Result<usize, Cut>>, ParseError> {
    let pad = i
        .iter()
        .enumerate()
        .take_while(|&(k, &b)| {
            b == 0x00 || (b == 0xFF && matches!(i.get(k + 1), None | Some(0x00) | Some(0xFF)))
        })
        .count();
    let body = i.get(pad..).unwrap_or_default();
    if body.is_empty() {
        return Ok(None);
    }
    let (rest, t, constructed) = match tag(body) {
        Ok(x) => x,
        Err(ParseError::Truncated(_)) => {
            return Ok(Some(Err(Cut {
                tag: None,
                constructed: false,
            })))
        }
        Err(e) => return Err(e),
    };
    let cut = Cut {
        tag: Some(t),
        constructed,
    };
    let (rest2, len, _) = match length(rest) {
        Ok(x) => x,
        Err(ParseError::Truncated(_)) => return Ok(Some(Err(cut))),
        Err(e) => return Err(e),
    };
    if rest2.len() < len {
        return Ok(Some(Err(cut)));
    }
    Ok(Some(Ok(i.len() - rest2.len() + len)))
}

fn parse_at(mut i: &[u8], depth: usize) -> Result<Vec<Tlv<'_>>, ParseError> {
    if depth > MAX_DEPTH {
        return Err(TOO_DEEP);
    }
    let mut out = Vec::new();
    while let Some(&b) = i.first() {
        // 00 is always padding; FF only when no tag can follow (FF also starts FFEE01).
        let next = i.get(1).copied();
        if b == 0x00 || (b == 0xFF && matches!(next, None | Some(0x00) | Some(0xFF))) {
            i = i.get(1..).unwrap_or_default();
            continue;
        }
        let (rest, t, constructed) = tag(i)?;
        let (rest, len, flag) = length(rest)?;
        let r: IResult<&[u8], &[u8]> = take(len)(rest);
        let (rest, value) = r.map_err(|_| ParseError::BadLength("TLV length past the end"))?;
        // FFEE12 sets the constructed bit but holds a bare KSN.
        let children = if constructed && t != 0xFFEE12 && flag == LenFlag::Plain {
            match parse_at(value, depth + 1) {
                Ok(c) => c,
                Err(e) if e == TOO_DEEP => return Err(e),
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        out.push(Tlv {
            tag: t,
            constructed,
            flag,
            value,
            children,
        });
        i = rest;
    }
    Ok(out)
}

/// Depth-first list of every object, containers and contents alike.
pub fn flatten<'a, 'b>(tlvs: &'b [Tlv<'a>], out: &mut Vec<&'b Tlv<'a>>) {
    for t in tlvs {
        out.push(t);
        flatten(&t.children, out);
    }
}

/// Names of the tags the decoders know.
pub fn tag_name(tag: u32) -> Option<&'static str> {
    Some(match tag {
        0x4F => "application identifier",
        0x6F => "FCI template",
        0x70 => "record template",
        0x77 => "response message template 2",
        0xA5 => "FCI proprietary template",
        0x50 => "application label",
        0x56 => "track 1 equivalent data",
        0x57 => "track 2 equivalent data",
        0x5A => "PAN",
        0x5F20 => "cardholder name",
        0x5F24 => "application expiration date",
        0x5F25 => "application effective date",
        0x5F28 => "issuer country code",
        0x5F2A => "transaction currency code",
        0x5F34 => "PAN sequence number",
        0x82 => "application interchange profile",
        0x84 => "dedicated file name",
        0x95 => "terminal verification results",
        0x9A => "transaction date",
        0x9C => "transaction type",
        0x9F02 => "amount authorised",
        0x9F03 => "amount other",
        0x9F10 => "issuer application data",
        0x9F1A => "terminal country code",
        0x9F26 => "application cryptogram",
        0x9F27 => "cryptogram information data",
        0x9F36 => "application transaction counter",
        0x9F37 => "unpredictable number",
        0x9F39 => "POS entry mode",
        0x9F6B => "track 2 data (contactless)",
        0xDF30 => "track source",
        0xDFEE12 => "KSN",
        0xDFEE23 => "ID TECH enhanced MSR frame",
        0xDFEE25 => "status code",
        0xDFEE26 => "encrypt information",
        0xDFEE30 => "track source",
        0xDFEF4C => "track lengths",
        0xDFEF4D => "encrypted track data",
        0xDFEF5B => "masked PAN",
        0xDFEF5D => "masked track 2 equivalent",
        0xDFEF5E => "masked contactless track 2",
        0xFFEE01 => "ViVOpay group",
        0xFFEE12 => "KSN",
        0xFF8105 => "MasterCard data record",
        0xFF8106 => "MasterCard discretionary data",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        // 9F39 01 05 | 00 pad | FFEE01 06 (DFEE30 01 0C, 9F39 ... ) | 57 A1 02 masked | 57 C1 08 ct
        let b = hex::decode(
            "9F390105 00 FFEE0104DFEE300C 57A10212D4 57C1080102030405060708 5F208200025858"
                .replace(' ', ""),
        )
        .unwrap();
        // FFEE01's contents (DFEE30 with a length running past it) do not parse: kept whole.
        let t = parse(&b).unwrap();
        assert_eq!(
            (t[1].tag, t[1].children.len(), t[1].value.len()),
            (0xFFEE01, 0, 4)
        );
        let b = hex::decode(
            "9F39010500FFEE0104DF300100 57A10212D4 57C1080102030405060708 5F208200025858"
                .replace(' ', ""),
        )
        .unwrap();
        let t = parse(&b).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!((t[0].tag, t[0].value), (0x9F39, &[0x05][..]));
        assert_eq!(t[1].children[0].tag, 0xDF30);
        assert_eq!((t[2].flag, t[2].value.len()), (LenFlag::Masked, 2));
        assert_eq!((t[3].flag, t[3].value.len()), (LenFlag::Encrypted, 8));
        assert_eq!((t[4].tag, t[4].value), (0x5F20, &b"XX"[..]));
        assert_eq!(tag_name(0x9F39), Some("POS entry mode"));
    }

    #[test]
    fn depth_limit_and_absurd_length() {
        let mut v = vec![0x9F, 0x39, 0x01, 0x05];
        for _ in 0..20 {
            let mut w = vec![0xE1, 0x81, v.len() as u8];
            w.extend_from_slice(&v);
            v = w;
        }
        assert_eq!(parse(&v).unwrap_err(), TOO_DEEP);
        assert_eq!(
            parse(&[0x57, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 1])
                .unwrap_err()
                .code(),
            "bad-length"
        );
        assert_eq!(parse(&[0x9F]).unwrap_err().code(), "truncated");
    }
}
