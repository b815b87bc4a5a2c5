//! From a swipe to a Customer record (issue 4 item 2): names from Track 1, `track_data` as the
//! reader's profile says, `ksn`, `entry_mode`, `expiration_date` (MMYY from the track's YYMM),
//! `pin_block` when present, and an agent-chosen `customer_id` with action code 1 so that a
//! retry is an upsert, never a second customer.
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use zeroize::Zeroizing;

use super::check_record::CheckDefaults;
use super::record::{CardRequest, CustomerFields, CustomerRequest};
use super::secret::SecretString;
use super::validate::{validate, CUSTOMER_ID_MAX};
use crate::card::{CardRead, EncTarget, EntryMode, Format, Name};
use crate::device::profile::{Profile, TrackData};

/// The two-digit POS entry mode sent for each kind of read (`[lane.entry_modes]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryModeTable {
    pub swipe: String,
    pub contactless_msd: String,
    pub chip: String,
    pub contactless_chip: String,
    pub fallback: String,
    pub manual: String,
}

impl Default for EntryModeTable {
    fn default() -> Self {
        EntryModeTable {
            swipe: "90".into(),
            contactless_msd: "91".into(),
            chip: "05".into(),
            contactless_chip: "07".into(),
            fallback: "80".into(),
            manual: "01".into(),
        }
    }
}

impl EntryModeTable {
    /// The code for `mode`; a 9F39 value outside the table is sent as the reader gave it.
    pub fn code(&self, mode: EntryMode) -> String {
        match mode {
            EntryMode::Swipe => self.swipe.clone(),
            EntryMode::ContactlessMsd => self.contactless_msd.clone(),
            EntryMode::Chip => self.chip.clone(),
            EntryMode::ContactlessChip => self.contactless_chip.clone(),
            EntryMode::Fallback => self.fallback.clone(),
            EntryMode::Manual => self.manual.clone(),
            EntryMode::Other(_) => mode.code(),
        }
    }
}

/// How records are built on this lane (`[lane]` of the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneSettings {
    pub client_ip: Option<String>,
    /// Top-level `device_code` pass-through; `None` derives it from the read (IDTECH/MAGTEK).
    pub device_code: Option<String>,
    /// Start of every agent-chosen `customer_id` (letters, digits, `-`, `_`).
    pub customer_id_prefix: String,
    /// Clear-text (non-encrypting) reads are refused unless this is set and the reader's
    /// profile allows clear data too.
    pub allow_clear: bool,
    pub entry_modes: EntryModeTable,
    /// `[lane.check]`: check records' defaults.
    pub check: CheckDefaults,
}

impl Default for LaneSettings {
    fn default() -> Self {
        LaneSettings {
            client_ip: None,
            device_code: None,
            customer_id_prefix: "CL".into(),
            allow_clear: false,
            entry_modes: EntryModeTable::default(),
            check: CheckDefaults::default(),
        }
    }
}

/// Why a swipe gives no record. Messages never hold card data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwipeError {
    #[error(
        "clear-text card data refused: the lane or the reader profile does not allow clear readers"
    )]
    ClearRefused,
    #[error("the read holds no card data to send (no ciphertext and no clear track)")]
    NoCardData,
    #[error("the record is invalid: {0}")]
    Invalid(String),
}

impl SwipeError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            SwipeError::ClearRefused => "clear-refused",
            SwipeError::NoCardData => "no-card-data",
            SwipeError::Invalid(_) => "invalid-record",
        }
    }
}

/// A record ready for the queue or the gateway, with the little the agent keeps about it.
#[derive(Debug, Clone)]
pub struct SwipeRecord {
    pub request: CustomerRequest,
    pub customer_id: String,
    /// First 6 / last 4 at most.
    pub masked_pan: Option<String>,
    pub has_pin_block: bool,
    /// `customer_id` was chosen by the agent for this swipe (not given by a kiosk), so no
    /// older record can carry it.
    pub fresh_customer_id: bool,
}

impl SwipeRecord {
    /// The request as the bytes the queue seals and the uploader sends.
    pub fn payload(&self) -> Zeroizing<Vec<u8>> {
        // A struct of strings always serializes; an empty payload would be rejected downstream.
        Zeroizing::new(serde_json::to_vec(&self.request).unwrap_or_default())
    }
}

/// Everything a record is built from.
#[derive(Debug, Clone, Copy)]
pub struct SwipeInput<'a> {
    pub read: &'a CardRead,
    /// The complete frame as the reader sent it.
    pub frame: &'a [u8],
    /// The reader's profile; `None` for profile-less input (defaults follow the format).
    pub profile: Option<&'a Profile>,
    pub lane: &'a LaneSettings,
    /// Customer fields from an armed kiosk capture; they win over the names on the card.
    pub customer: Option<&'a CustomerFields>,
    /// A PIN block for the record (a keypad reader's or a PIN pad's).
    pub pin_block: Option<&'a RecordPin>,
}

/// A PIN block for `card.pin_block`, with the KSN of the key it is under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPin {
    /// Upper-case hex.
    pub block: SecretString,
    /// The PIN key's KSN (upper-case hex), which then goes in `card.ksn` while the card data
    /// keeps its own KSN inside `track_data`. `None`: the block is under the PIN variant of
    /// the read's own KSN.
    pub ksn: Option<String>,
}

impl RecordPin {
    /// A block under the PIN variant of the read's own KSN.
    pub fn same_ksn(block: SecretString) -> RecordPin {
        RecordPin { block, ksn: None }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new customer id: the prefix, the time in ms and a per-process counter (base 36), and 8
/// random characters, so ids differ across restarts, processes and lanes. At most 50 characters.
pub fn new_customer_id(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(CUSTOMER_ID_MAX - 24)
        .collect();
    let ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut rng = rand::thread_rng();
    let random: String = (0..8)
        .map(|_| char::from(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.gen_range(0..36)]))
        .collect();
    let mut id = format!("{clean}{}{}{random}", base36(ms), base36(n));
    id.truncate(CUSTOMER_ID_MAX);
    id
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// MMYY from a track's YYMM, when the month is real.
pub fn mmyy_from_yymm(yymm: &str) -> Option<String> {
    if yymm.len() != 4 || !yymm.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy = yymm.get(0..2)?;
    let mm = yymm.get(2..4)?;
    let month: u8 = mm.parse().ok()?;
    (1..=12).contains(&month).then(|| format!("{mm}{yy}"))
}

/// What `track_data` carries when no profile says: whole frames for ID TECH and ViVOtech2
/// (the gateway decodes them), the encrypted track for MagTek, clear tracks for clear reads.
fn default_track_data(read: &CardRead) -> TrackData {
    if !read.encrypted {
        return TrackData::ClearTracks;
    }
    match read.format {
        Format::MagtekHid | Format::MagtekKb => TrackData::EncryptedTrack,
        _ => TrackData::Frame,
    }
}

/// The whole frame as upper-case hex.
fn frame_track_data(frame: &[u8]) -> String {
    hex::encode_upper(frame)
}

fn encrypted_track(read: &CardRead) -> Option<String> {
    let pick = |want: EncTarget| read.enc_blocks.iter().find(|b| b.target == want);
    let block = pick(EncTarget::Track(1))
        .or_else(|| pick(EncTarget::Track(2)))
        .or_else(|| read.enc_blocks.first())?;
    (!block.data.is_empty()).then(|| hex::encode_upper(&block.data))
}

fn clear_tracks(read: &CardRead) -> Option<String> {
    let mut out = String::new();
    for t in read.clear.iter().take(2).flatten() {
        out.push_str(t.expose());
    }
    (!out.is_empty()).then_some(out)
}

fn device_code(read: &CardRead, profile: Option<&Profile>) -> Option<String> {
    let vendor = profile.map(|p| p.vendor.to_ascii_uppercase());
    match (vendor.as_deref(), read.format) {
        (Some(v), _) if v.contains("MAGTEK") => Some("MAGTEK".into()),
        (Some(v), _) if v.contains("ID TECH") || v.contains("IDTECH") => Some("IDTECH".into()),
        (_, Format::MagtekHid | Format::MagtekKb | Format::MagtekEmv) => Some("MAGTEK".into()),
        (
            _,
            Format::IdtechOriginal | Format::IdtechEnhanced | Format::Vivotech2 | Format::EmvTlv,
        ) => Some("IDTECH".into()),
        _ => None,
    }
}

pub(crate) fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Builds and validates the record for one decoded swipe.
pub fn build_record(input: SwipeInput<'_>) -> Result<SwipeRecord, SwipeError> {
    let read = input.read;
    let profile = input.profile;
    let clear_ok = input.lane.allow_clear && profile.map_or(true, |p| p.allow_clear);
    if !read.encrypted && !clear_ok {
        return Err(SwipeError::ClearRefused);
    }
    let mode = profile
        .map(|p| p.track_data)
        .unwrap_or_else(|| default_track_data(read));
    let track_data = if !read.encrypted {
        // A clear read goes as clear tracks whatever the profile prefers for ciphertext.
        clear_tracks(read)
    } else {
        match mode {
            TrackData::Frame => Some(frame_track_data(input.frame)),
            // An EMV container's ciphertext only decrypts as part of its container (data key,
            // nested TLV): a V5 reader's profile asks for swipes' encrypted tracks, but its chip
            // reads go whole.
            TrackData::EncryptedTrack if read.format == Format::MagtekEmv => {
                Some(frame_track_data(input.frame))
            }
            TrackData::EncryptedTrack => {
                encrypted_track(read).or_else(|| Some(frame_track_data(input.frame)))
            }
            // An encrypting reader on a clear-tracks profile: send what it gave.
            TrackData::ClearTracks => Some(frame_track_data(input.frame)),
        }
    }
    .filter(|t| !t.is_empty())
    .ok_or(SwipeError::NoCardData)?;

    let entry_mode = read
        .entry_mode
        .map(|m| input.lane.entry_modes.code(m))
        .or_else(|| profile.and_then(|p| p.entry_mode.clone()))
        .unwrap_or_else(|| input.lane.entry_modes.swipe.clone());

    let mut customer = input.customer.cloned().unwrap_or_default();
    // Names come whole from one source: the kiosk's when it gave any, else the card's. Half of
    // each would save a person who does not exist.
    let kiosk_named =
        non_empty(&customer.first_name).is_some() || non_empty(&customer.last_name).is_some();
    if let Some(name) = read
        .cardholder_name
        .as_deref()
        .map(Name::parse)
        .filter(|_| !kiosk_named)
    {
        if !name.given.is_empty() {
            customer.first_name = Some(name.given.clone());
        }
        if !name.surname.is_empty() {
            customer.last_name = Some(name.surname.clone());
        }
    }
    // A kiosk may name its own customer; AUTO is never used (a retry could create a duplicate).
    let (customer_id, fresh_customer_id) = match non_empty(&customer.customer_id) {
        Some(id) if !id.eq_ignore_ascii_case("AUTO") => (id, false),
        _ => (new_customer_id(&input.lane.customer_id_prefix), true),
    };
    customer.customer_id = Some(customer_id.clone());
    customer.action_code = Some("1".into());

    let pin = input.pin_block.filter(|p| !p.block.is_empty());
    let card = CardRequest {
        track_data: Some(SecretString::new(track_data)),
        // A PIN key's own KSN wins: `card.ksn` is the PIN block's (customer-api.md: required
        // with a PIN block), and whole-frame `track_data` carries the data key's KSN itself.
        ksn: pin
            .and_then(|p| p.ksn.clone())
            .or_else(|| read.ksn.as_ref().map(|k| k.to_hex())),
        entry_mode: Some(entry_mode),
        expiration_date: read.expiry.as_deref().and_then(mmyy_from_yymm),
        pin_block: pin.map(|p| p.block.clone()),
        ..CardRequest::default()
    };
    let has_pin_block = card.pin_block.is_some();
    let request = CustomerRequest {
        client_ip: input.lane.client_ip.clone(),
        customer,
        card: Some(card),
        check: None,
        device_code: input
            .lane
            .device_code
            .clone()
            .or_else(|| read.encrypted.then(|| device_code(read, profile)).flatten()),
    };
    if let Err(errors) = validate(&request) {
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(SwipeError::Invalid(text));
    }
    Ok(SwipeRecord {
        request,
        customer_id,
        masked_pan: read.masked_pan.as_ref().map(|m| m.as_str().to_string()),
        has_pin_block,
        fresh_customer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{EncBlock, Ksn, SecretText};
    use crate::device::profile::Profiles;

    fn clear_read() -> CardRead {
        let mut r = CardRead::new(Format::Tracks);
        let clear = [
            Some(SecretText::new(
                "%B4005571701111111^BRADY/OSCAR J.MR^2512101000?",
            )),
            Some(SecretText::new(";4005571701111111=25121010000?")),
            None,
        ];
        r.fill_from_clear(&clear);
        r.clear = clear;
        r.entry_mode = Some(EntryMode::Swipe);
        r
    }

    fn lane(allow_clear: bool) -> LaneSettings {
        LaneSettings {
            allow_clear,
            customer_id_prefix: "LANE7".into(),
            client_ip: Some("10.0.0.5".into()),
            ..LaneSettings::default()
        }
    }

    #[test]
    fn clear_swipe_to_record() {
        let read = clear_read();
        let lane = lane(true);
        let rec = build_record(SwipeInput {
            read: &read,
            frame: b"ignored",
            profile: None,
            lane: &lane,
            customer: None,
            pin_block: None,
        })
        .unwrap();
        let v = serde_json::to_value(&rec.request).unwrap();
        // Track 1 name `BRADY/OSCAR J.MR`: surname BRADY, given `OSCAR J`, title MR.
        assert_eq!(v["customer"]["last_name"], "BRADY");
        assert_eq!(v["customer"]["first_name"], "OSCAR J");
        assert_eq!(v["customer"]["action_code"], "1");
        assert_eq!(v["client_ip"], "10.0.0.5");
        assert_eq!(
            v["card"]["track_data"],
            "%B4005571701111111^BRADY/OSCAR J.MR^2512101000?;4005571701111111=25121010000?"
        );
        // YYMM 2512 -> MMYY 1225.
        assert_eq!(v["card"]["expiration_date"], "1225");
        assert_eq!(v["card"]["entry_mode"], "90");
        assert!(v.get("device_code").is_none());
        assert!(rec.customer_id.starts_with("LANE7"));
        assert_eq!(rec.masked_pan.as_deref(), Some("400557******1111"));
        assert!(!rec.has_pin_block);
        assert!(!format!("{rec:?}").contains("4005571701111111"));
    }

    #[test]
    fn clear_refused_unless_allowed_by_lane_and_profile() {
        let read = clear_read();
        let profiles = Profiles::embedded().unwrap();
        let enc_profile = profiles.get("idtech-securemag-hid").unwrap();
        let wedge = profiles.get("generic-keyboard-wedge").unwrap();
        let input = |lane: &'static LaneSettings, p: Option<&Profile>| {
            build_record(SwipeInput {
                read: &read,
                frame: b"",
                profile: p,
                lane,
                customer: None,
                pin_block: None,
            })
            .map(|r| r.customer_id)
        };
        let deny: &'static LaneSettings = Box::leak(Box::new(lane(false)));
        let allow: &'static LaneSettings = Box::leak(Box::new(lane(true)));
        assert_eq!(input(deny, Some(wedge)), Err(SwipeError::ClearRefused));
        assert_eq!(
            input(allow, Some(enc_profile)),
            Err(SwipeError::ClearRefused)
        );
        let id = input(allow, Some(wedge)).expect("clear text allowed by lane and profile");
        assert!(id.starts_with("LANE7"), "{id}");
    }

    fn encrypted_read(format: Format) -> CardRead {
        let mut r = CardRead::new(format);
        r.encrypted = true;
        r.ksn = Ksn::from_hex("FFFF9876543210E00001");
        r.set_pan_text("5413********4111");
        r.cardholder_name = Some("DI TEST/CARD 04".into());
        r.enc_blocks = vec![
            EncBlock {
                target: EncTarget::Track(2),
                data: vec![0xAB; 16],
            },
            EncBlock {
                target: EncTarget::Track(1),
                data: vec![0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0],
            },
        ];
        r
    }

    #[test]
    fn track_data_follows_the_profile() {
        let profiles = Profiles::embedded().unwrap();
        let lane = lane(false);
        let frame = [0x02u8, 0x10, 0x20, 0x03];
        let build = |read: &CardRead, p: Option<&Profile>, pin: Option<&RecordPin>| {
            build_record(SwipeInput {
                read,
                frame: &frame,
                profile: p,
                lane: &lane,
                customer: None,
                pin_block: pin,
            })
            .unwrap()
        };
        let idt = encrypted_read(Format::IdtechEnhanced);
        let rec = build(&idt, profiles.get("idtech-securemag-hid"), None);
        let card = rec.request.card.as_ref().unwrap();
        assert_eq!(card.track_data.as_ref().unwrap().expose(), "02102003");
        assert_eq!(card.ksn.as_deref(), Some("FFFF9876543210E00001"));
        assert_eq!(card.expiration_date, None);
        assert_eq!(rec.request.device_code.as_deref(), Some("IDTECH"));
        assert_eq!(rec.request.customer.last_name.as_deref(), Some("DI TEST"));
        assert_eq!(rec.request.customer.first_name.as_deref(), Some("CARD 04"));

        // MagTek: the Track 1 ciphertext, not the frame.
        let mt = encrypted_read(Format::MagtekHid);
        let pin = RecordPin::same_ksn(SecretString::new("0412AC89ABCDEF67"));
        let rec = build(&mt, profiles.get("magtek-dynamag-hid"), Some(&pin));
        let card = rec.request.card.as_ref().unwrap();
        assert_eq!(
            card.track_data.as_ref().unwrap().expose(),
            "123456789ABCDEF0"
        );
        assert_eq!(rec.request.device_code.as_deref(), Some("MAGTEK"));
        assert!(rec.has_pin_block);
        // A keypad's PIN key has its own KSN: it is `card.ksn`, while the whole frame in
        // `track_data` keeps the card data's.
        let keypad = RecordPin {
            block: SecretString::new("0412AC89ABCDEF67"),
            ksn: Some("FFFF9876543211E00001".into()),
        };
        let rec = build(&idt, profiles.get("idtech-securemag-hid"), Some(&keypad));
        let card = rec.request.card.as_ref().unwrap();
        assert_eq!(card.ksn.as_deref(), Some("FFFF9876543211E00001"));
        assert_eq!(card.track_data.as_ref().unwrap().expose(), "02102003");
        assert_eq!(
            card.pin_block.as_ref().map(|p| p.expose()),
            Some("0412AC89ABCDEF67")
        );
        assert!(rec.has_pin_block);
        // Without a profile, the MagTek default is the encrypted track too.
        let rec = build(&mt, None, None);
        assert_eq!(
            rec.request.card.unwrap().track_data.unwrap().expose(),
            "123456789ABCDEF0"
        );
    }

    /// A kiosk that gives only a first name gets no surname from the card: names come whole
    /// from one source. Without kiosk names, both come from Track 1 ("SURNAME/GIVEN").
    #[test]
    fn names_come_from_the_kiosk_or_the_card_never_half_of_each() {
        let mut read = encrypted_read(Format::Vivotech2);
        read.cardholder_name = Some("BRADY/OSCAR J".into());
        let lane = lane(false);
        let build_with = |kiosk: Option<&CustomerFields>| {
            build_record(SwipeInput {
                read: &read,
                frame: &[1, 2],
                profile: None,
                lane: &lane,
                customer: kiosk,
                pin_block: None,
            })
            .unwrap()
            .request
            .customer
        };
        let only_first = CustomerFields {
            first_name: Some("Ada".into()),
            ..CustomerFields::default()
        };
        let c = build_with(Some(&only_first));
        assert_eq!(c.first_name.as_deref(), Some("Ada"));
        assert_eq!(c.last_name, None);
        let c = build_with(None);
        assert_eq!(c.first_name.as_deref(), Some("OSCAR J"));
        assert_eq!(c.last_name.as_deref(), Some("BRADY"));
    }

    #[test]
    fn kiosk_fields_win_and_entry_modes_map() {
        let mut read = encrypted_read(Format::Vivotech2);
        read.entry_mode = Some(EntryMode::ContactlessChip);
        let mut lane = lane(false);
        lane.entry_modes.contactless_chip = "91".into();
        let kiosk = CustomerFields {
            first_name: Some("Oscar".into()),
            last_name: Some("Brady".into()),
            zip: Some("32503".into()),
            customer_id: Some("AUTO".into()),
            ..CustomerFields::default()
        };
        let rec = build_record(SwipeInput {
            read: &read,
            frame: &[1, 2],
            profile: None,
            lane: &lane,
            customer: Some(&kiosk),
            pin_block: None,
        })
        .unwrap();
        let c = &rec.request.customer;
        assert_eq!(c.first_name.as_deref(), Some("Oscar"));
        assert_eq!(c.last_name.as_deref(), Some("Brady"));
        assert_eq!(c.zip.as_deref(), Some("32503"));
        assert_ne!(c.customer_id.as_deref(), Some("AUTO"));
        assert_eq!(rec.request.card.unwrap().entry_mode.as_deref(), Some("91"));
        // A kiosk's bad zip is a local rejection naming the field.
        let bad = CustomerFields {
            zip: Some("123".into()),
            ..CustomerFields::default()
        };
        let err = build_record(SwipeInput {
            read: &read,
            frame: &[1, 2],
            profile: None,
            lane: &lane,
            customer: Some(&bad),
            pin_block: None,
        })
        .unwrap_err();
        assert_eq!(err.code(), "invalid-record");
        assert!(err.to_string().contains("zip"), "{err}");
    }

    #[test]
    fn customer_ids_are_unique_bounded_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = new_customer_id("CL");
            assert!(id.starts_with("CL") && id.len() <= 50);
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!(seen.insert(id));
        }
        // A long prefix is cut so the unique part always fits.
        let long = new_customer_id(&"P".repeat(80));
        assert!(long.len() <= 50 && long.starts_with(&"P".repeat(26)));
        assert!(!long.starts_with(&"P".repeat(27)));
        // Characters the gateway refuses are dropped from the prefix.
        assert!(new_customer_id("a b/c").starts_with("abc"));
    }

    #[test]
    fn expiry_conversion() {
        assert_eq!(mmyy_from_yymm("2912").as_deref(), Some("1229"));
        assert_eq!(mmyy_from_yymm("2913"), None);
        assert_eq!(mmyy_from_yymm("29"), None);
        assert_eq!(mmyy_from_yymm("29a2"), None);
    }
}
