//! ISO 9564-1 PIN blocks, formats 0, 1, 3 (8 bytes, for TDES) and 4 (16 bytes, for AES):
//! encode, decode and validate. Encryption under a key lives in the callers (`super::dukpt_ops`).
use rand::RngCore;
use zeroize::Zeroizing;

use super::error::{CryptoError, PinBlockFault};
use super::modes::AesAny;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PinFormat {
    Iso0,
    Iso1,
    Iso3,
    Iso4,
}

impl PinFormat {
    pub fn from_digit(d: u8) -> Option<Self> {
        match d {
            0 => Some(PinFormat::Iso0),
            1 => Some(PinFormat::Iso1),
            3 => Some(PinFormat::Iso3),
            4 => Some(PinFormat::Iso4),
            _ => None,
        }
    }
}

fn pin_digits(pin: &str) -> Result<&[u8], CryptoError> {
    let b = pin.as_bytes();
    if !(4..=12).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return Err(CryptoError::BadPin);
    }
    Ok(b)
}

fn pan_digits(pan: &str) -> Result<&[u8], CryptoError> {
    let b = pan.as_bytes();
    if !(1..=19).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return Err(CryptoError::BadPan);
    }
    Ok(b)
}

fn pack(nibbles: &[u8], out: &mut [u8]) {
    for (o, pair) in out.iter_mut().zip(nibbles.chunks(2)) {
        let hi = pair.first().copied().unwrap_or(0);
        let lo = pair.get(1).copied().unwrap_or(0);
        *o = (hi << 4) | (lo & 0x0F);
    }
}

fn unpack(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(bytes.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect())
}

/// Formats 0/3 PAN field: `0000` ‖ the 12 digits before the check digit (left-padded with 0).
pub fn pan_field_iso0(pan: &str) -> Result<[u8; 8], CryptoError> {
    let d = pan_digits(pan)?;
    let body = d.get(..d.len() - 1).unwrap_or(&[]);
    let take = &body[body.len().saturating_sub(12)..];
    let mut nib = [0u8; 16];
    let start = 16 - take.len();
    for (n, c) in nib.iter_mut().skip(start).zip(take) {
        *n = c - b'0';
    }
    let mut out = [0u8; 8];
    pack(&nib, &mut out);
    Ok(out)
}

/// The 8-byte PIN field of format 0, 1 or 3 with the given fill nibbles (ignored for format 0,
/// which fills with F). Fill for format 3 must be A-F; for format 1 any nibble.
pub fn pin_field_8(
    format: PinFormat,
    pin: &str,
    fill: &[u8],
) -> Result<Zeroizing<[u8; 8]>, CryptoError> {
    let p = pin_digits(pin)?;
    let control = match format {
        PinFormat::Iso0 => 0,
        PinFormat::Iso1 => 1,
        PinFormat::Iso3 => 3,
        PinFormat::Iso4 => return Err(CryptoError::Unsupported("format 4 is a 16-byte block")),
    };
    let mut nib = Zeroizing::new([0u8; 16]);
    nib[0] = control;
    nib[1] = p.len() as u8;
    let mut fill_it = fill.iter();
    for (i, n) in nib.iter_mut().enumerate().skip(2) {
        *n = match p.get(i - 2) {
            Some(c) => c - b'0',
            None => match format {
                PinFormat::Iso0 => 0xF,
                _ => {
                    let f = *fill_it
                        .next()
                        .ok_or(CryptoError::Unsupported("not enough fill"))?;
                    let ok = match format {
                        PinFormat::Iso3 => (0xA..=0xF).contains(&f),
                        _ => f <= 0xF,
                    };
                    if !ok {
                        return Err(CryptoError::BadPinBlock(PinBlockFault::Fill));
                    }
                    f
                }
            },
        };
    }
    let mut out = Zeroizing::new([0u8; 8]);
    pack(&nib[..], &mut out[..]);
    Ok(out)
}

/// Clear 8-byte PIN block (format 0, 1 or 3) with explicit fill nibbles.
pub fn clear_block_8(
    format: PinFormat,
    pin: &str,
    pan: &str,
    fill: &[u8],
) -> Result<Zeroizing<[u8; 8]>, CryptoError> {
    let mut field = pin_field_8(format, pin, fill)?;
    if matches!(format, PinFormat::Iso0 | PinFormat::Iso3) {
        let pf = pan_field_iso0(pan)?;
        for (a, b) in field.iter_mut().zip(pf) {
            *a ^= b;
        }
    }
    Ok(field)
}

/// Random fill for formats 1 (0-F) and 3 (A-F), 14 nibbles (enough for any PIN length).
pub fn random_fill(format: PinFormat, rng: &mut impl RngCore) -> Zeroizing<Vec<u8>> {
    let mut raw = [0u8; 14];
    rng.fill_bytes(&mut raw);
    Zeroizing::new(
        raw.iter()
            .map(|r| match format {
                PinFormat::Iso3 => 0xA + r % 6,
                _ => r & 0x0F,
            })
            .collect(),
    )
}

fn check_pin_nibbles(nib: &[u8], control: u8) -> Result<(usize, Zeroizing<String>), CryptoError> {
    let fault = |f| CryptoError::BadPinBlock(f);
    if nib.first() != Some(&control) {
        return Err(fault(PinBlockFault::ControlNibble));
    }
    let len = usize::from(
        *nib.get(1)
            .ok_or(fault(PinBlockFault::Size { expected: 8 }))?,
    );
    if !(4..=12).contains(&len) {
        return Err(fault(PinBlockFault::Length));
    }
    let digits = nib.get(2..2 + len).ok_or(fault(PinBlockFault::Length))?;
    if digits.iter().any(|d| *d > 9) {
        return Err(fault(PinBlockFault::Digit));
    }
    let pin = Zeroizing::new(digits.iter().map(|d| char::from(b'0' + d)).collect());
    Ok((2 + len, pin))
}

/// Decodes a clear 8-byte block of format 0, 1 or 3 (detected from the control nibble) and
/// checks length, digits and fill. `pan` is needed for formats 0 and 3.
pub fn decode_block_8(block: &[u8], pan: &str) -> Result<Zeroizing<String>, CryptoError> {
    let b: &[u8; 8] = block
        .try_into()
        .map_err(|_| CryptoError::BadPinBlock(PinBlockFault::Size { expected: 8 }))?;
    let control = b[0] >> 4;
    let format = match PinFormat::from_digit(control) {
        Some(f @ (PinFormat::Iso0 | PinFormat::Iso1 | PinFormat::Iso3)) => f,
        _ => return Err(CryptoError::BadPinBlock(PinBlockFault::ControlNibble)),
    };
    let mut field = Zeroizing::new(*b);
    if format != PinFormat::Iso1 {
        let pf = pan_field_iso0(pan)?;
        for (a, p) in field.iter_mut().zip(pf) {
            *a ^= p;
        }
    }
    let nib = unpack(&field[..]);
    let (end, pin) = check_pin_nibbles(&nib, control)?;
    let fill = nib.get(end..).unwrap_or(&[]);
    let fill_ok = match format {
        PinFormat::Iso0 => fill.iter().all(|n| *n == 0xF),
        PinFormat::Iso3 => fill.iter().all(|n| *n >= 0xA),
        _ => true,
    };
    if !fill_ok {
        return Err(CryptoError::BadPinBlock(PinBlockFault::Fill));
    }
    Ok(pin)
}

/// Format 4 PIN field: `4 L P…P A…A` (16 nibbles) ‖ 8 random bytes.
pub fn pin_field_iso4(pin: &str, random: &[u8; 8]) -> Result<Zeroizing<[u8; 16]>, CryptoError> {
    let p = pin_digits(pin)?;
    let mut nib = Zeroizing::new([0xAu8; 16]);
    nib[0] = 4;
    nib[1] = p.len() as u8;
    for (n, c) in nib.iter_mut().skip(2).zip(p) {
        *n = c - b'0';
    }
    let mut out = Zeroizing::new([0u8; 16]);
    pack(&nib[..], &mut out[..8]);
    out[8..].copy_from_slice(random);
    Ok(out)
}

/// Format 4 PAN field: `M` ‖ PAN left-padded with 0 to 12 digits ‖ 0 fill; M = len − 12 (0 if
/// shorter).
pub fn pan_field_iso4(pan: &str) -> Result<[u8; 16], CryptoError> {
    let d = pan_digits(pan)?;
    let mut nib = [0u8; 32];
    nib[0] = d.len().saturating_sub(12) as u8;
    let pad = 12usize.saturating_sub(d.len());
    for (n, c) in nib.iter_mut().skip(1 + pad).zip(d) {
        *n = c - b'0';
    }
    let mut out = [0u8; 16];
    pack(&nib, &mut out);
    Ok(out)
}

/// `C = E(E(pin field) ⊕ pan field)`.
pub fn encipher_iso4(
    key: &AesAny,
    pin_field: &[u8; 16],
    pan: &str,
) -> Result<[u8; 16], CryptoError> {
    let pf = pan_field_iso4(pan)?;
    let mut b = *pin_field;
    key.encrypt(&mut b);
    for (x, p) in b.iter_mut().zip(pf) {
        *x ^= p;
    }
    key.encrypt(&mut b);
    Ok(b)
}

/// Deciphers and validates a format-4 block; returns the PIN.
pub fn decipher_iso4(
    key: &AesAny,
    block: &[u8],
    pan: &str,
) -> Result<Zeroizing<String>, CryptoError> {
    let b: &[u8; 16] = block
        .try_into()
        .map_err(|_| CryptoError::BadPinBlock(PinBlockFault::Size { expected: 16 }))?;
    let pf = pan_field_iso4(pan)?;
    let mut x = Zeroizing::new(*b);
    key.decrypt(&mut x);
    for (v, p) in x.iter_mut().zip(pf) {
        *v ^= p;
    }
    key.decrypt(&mut x);
    let nib = unpack(&x[..8]);
    let (end, pin) = check_pin_nibbles(&nib, 4)?;
    if !nib.get(end..).unwrap_or(&[]).iter().all(|n| *n == 0xA) {
        return Err(CryptoError::BadPinBlock(PinBlockFault::Fill));
    }
    Ok(pin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert_eq, proptest};

    fn h(b: &[u8]) -> String {
        hex::encode_upper(b)
    }

    #[test]
    fn fields_and_faults() {
        assert_eq!(
            h(&pan_field_iso0("4012345678909").unwrap()),
            "0000401234567890"
        );
        assert_eq!(
            h(&pan_field_iso0("43219876543210987").unwrap()),
            "0000987654321098"
        );
        assert_eq!(
            h(&pan_field_iso4("4111111111111111").unwrap()),
            "44111111111111111000000000000000"
        );
        assert_eq!(
            h(&pan_field_iso4("123456").unwrap()),
            "00000001234560000000000000000000"
        );
        assert_eq!(
            pin_field_8(PinFormat::Iso0, "123", &[]),
            Err(CryptoError::BadPin)
        );
        assert_eq!(pan_field_iso0("40123x"), Err(CryptoError::BadPan));
        // Control nibble 2 is not a format we decode.
        assert_eq!(
            decode_block_8(&hex::decode("241274EDCBA9876F").unwrap(), "4012345678909"),
            Err(CryptoError::BadPinBlock(PinBlockFault::ControlNibble))
        );
        // Length nibble 3.
        assert_eq!(
            decode_block_8(&hex::decode("031274EDCBA9876F").unwrap(), "4012345678909"),
            Err(CryptoError::BadPinBlock(PinBlockFault::Length))
        );
        // Format 0 whose fill is not all F (last nibble changed).
        assert_eq!(
            decode_block_8(&hex::decode("041274EDCBA98760").unwrap(), "4012345678909"),
            Err(CryptoError::BadPinBlock(PinBlockFault::Fill))
        );
    }

    proptest! {
        #[test]
        fn round_trips(pin in "[0-9]{4,12}", pan in "[0-9]{8,19}", seed: u64, fmt in 0usize..3) {
            use rand::{RngCore as _, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let f = [PinFormat::Iso0, PinFormat::Iso1, PinFormat::Iso3][fmt];
            let fill = random_fill(f, &mut rng);
            let blk = clear_block_8(f, &pin, &pan, &fill).unwrap();
            let got = decode_block_8(&blk[..], &pan).unwrap();
            prop_assert_eq!(got.as_str(), pin.as_str());
            let key = AesAny::new(&[seed as u8; 16]).unwrap();
            let mut r = [0u8; 8];
            rng.fill_bytes(&mut r);
            let field = pin_field_iso4(&pin, &r).unwrap();
            let c = encipher_iso4(&key, &field, &pan).unwrap();
            let got = decipher_iso4(&key, &c, &pan).unwrap();
            prop_assert_eq!(got.as_str(), pin.as_str());
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..20), pan in "[0-9]{0,20}") {
            let _ = decode_block_8(&b, &pan);
            let key = AesAny::new(&[7u8; 16]).unwrap();
            let _ = decipher_iso4(&key, &b, &pan);
        }
    }
}
