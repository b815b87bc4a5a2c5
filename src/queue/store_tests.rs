use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::queue::QueueKey;

const PAN: &str = "4761739001010119";
const T0: i64 = 1_800_000_000_000;

fn payload_for(customer: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        format!(
            r#"{{"customer_id":"{customer}","card":{{"track_data":";{PAN}=2512101?","ksn":"FFFF9876543210E00001"}}}}"#
        )
        .into_bytes(),
    )
}

fn rec(customer: &str) -> NewRecord {
    NewRecord {
        customer_id: customer.to_string(),
        masked_pan: Some("476173******0119".into()),
        payload: payload_for(customer),
        has_pin_block: false,
        in_flight: false,
    }
}

fn key_cfg() -> QueueConfig {
    QueueConfig {
        key: KeySource::Key(QueueKey::from_bytes([0x42; 32])),
        ..QueueConfig::default()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<AtomicI64>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(AtomicI64::new(T0)),
        }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("queue.db")
    }
    fn open(&self, cfg: QueueConfig) -> Queue {
        let c = self.clock.clone();
        Queue::open(self.db(), cfg)
            .unwrap()
            .with_clock(move || c.load(Ordering::SeqCst))
    }
    fn advance(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }
    /// Every byte of the database and its WAL/SHM files.
    fn disk_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.db().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(&p) {
                all.extend(b);
            }
        }
        all
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn round_trip_and_ack() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let id = q.enqueue(rec("c-1")).unwrap();
    let claimed = q.claim_due(10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].payload.as_slice(), payload_for("c-1").as_slice());
    assert_eq!(q.stats().unwrap().sending, 1);
    // Already sending: not handed out twice.
    assert!(q.claim_due(10).unwrap().is_empty());
    assert!(q.ack(id).unwrap());
    assert!(!q.ack(id).unwrap(), "second ack finds nothing");
    assert_eq!(q.stats().unwrap(), QueueStats::default());
    // Debug of a claimed record shows no payload.
    let id2 = q.enqueue(rec("c-2")).unwrap();
    let c = q.claim_due(1).unwrap();
    let dbg = format!("{:?}", c[0]);
    assert!(!dbg.contains(PAN) && dbg.contains("bytes"));
    // Ids are never reused after a delete.
    assert!(id2.0 > id.0);
}

#[test]
fn encrypted_at_rest_in_db_wal_and_shm() {
    let f = Fixture::new();
    let q = f.open(QueueConfig {
        key: KeySource::Auto,
        ..QueueConfig::default()
    });
    for i in 0..50 {
        q.enqueue(rec(&format!("cust-{i}"))).unwrap();
    }
    // Some churn so pages move between WAL and db.
    for c in q.claim_due(10).unwrap() {
        q.ack(c.id).unwrap();
    }
    let disk = f.disk_bytes();
    assert!(
        // cust-0..9 were acknowledged (and are gone); cust-17 is still held.
        contains(&disk, b"cust-17"),
        "sanity: metadata is in the file"
    );
    assert!(
        contains(&disk, b"476173******0119"),
        "sanity: masked PAN stored"
    );
    assert!(!contains(&disk, PAN.as_bytes()), "clear PAN on disk");
    assert!(!contains(&disk, b"FFFF9876543210E00001"));
    assert!(!contains(&disk, b"track_data"));
    // The key is not in the database either.
    let key_hex = std::fs::read_to_string(key::default_key_path(&f.db())).unwrap();
    let key = hex::decode(key_hex.trim()).unwrap();
    assert!(!contains(&disk, &key));
    assert!(!contains(&disk, key_hex.trim().as_bytes()));
}

#[test]
fn files_are_private_and_key_file_created_next_to_db() {
    let f = Fixture::new();
    let q = f.open(QueueConfig {
        key: KeySource::Auto,
        ..QueueConfig::default()
    });
    q.enqueue(rec("c")).unwrap();
    let key_path = f.dir.path().join("queue.db.key");
    for p in [f.db(), key_path.clone()] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    drop(q);
    // Reopens with the same key file.
    let q = f.open(QueueConfig {
        key: KeySource::File(key_path),
        ..QueueConfig::default()
    });
    assert_eq!(q.claim_due(5).unwrap().len(), 1);
}

#[test]
fn wrong_or_missing_key_refused() {
    let f = Fixture::new();
    f.open(key_cfg()).enqueue(rec("c")).unwrap();
    let err = Queue::open(
        f.db(),
        QueueConfig {
            key: KeySource::Key(QueueKey::from_bytes([1; 32])),
            ..QueueConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, QueueError::WrongKey);
    // A queue keyed elsewhere does not get a fresh key file silently.
    let err = Queue::open(
        f.db(),
        QueueConfig {
            key: KeySource::File(f.dir.path().join("nope.key")),
            ..QueueConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), "key-unusable");
    assert!(!f.dir.path().join("nope.key").exists());
}

#[test]
fn absent_key_inspects_but_cannot_read_payloads() {
    let f = Fixture::new();
    f.open(key_cfg()).enqueue(rec("c")).unwrap();
    let q = f.open(QueueConfig {
        key: KeySource::Absent,
        ..QueueConfig::default()
    });
    assert_eq!(q.list().unwrap().len(), 1);
    assert_eq!(q.claim_due(1).unwrap_err(), QueueError::NoKey);
    assert_eq!(q.enqueue(rec("d")).unwrap_err(), QueueError::NoKey);
    assert_eq!(q.purge_all().unwrap(), 1);
}

#[test]
fn cap_refuses_and_never_drops() {
    let f = Fixture::new();
    let q = f.open(QueueConfig {
        max_records: 3,
        ..key_cfg()
    });
    for i in 0..3 {
        q.enqueue(rec(&format!("c{i}"))).unwrap();
    }
    let err = q.enqueue(rec("c3")).unwrap_err();
    assert_eq!(err, QueueError::Full { held: 3, cap: 3 });
    assert!(err.to_string().contains("queue full"));
    assert_eq!(q.stats().unwrap().held, 3, "nothing dropped");
    // A batch straddling the cap: each record gets its own answer.
    q.ack(RecordId(1)).unwrap();
    let res = q.enqueue_many(vec![rec("a"), rec("b")]).unwrap();
    // Ids are never reused (AUTOINCREMENT): after c0-c2 (1-3) and the refused c3, `a` is 4.
    assert_eq!(res[0], Ok(RecordId(4)));
    assert_eq!(res[1], Err(QueueError::Full { held: 3, cap: 3 }));
    // Expired records do not block new swipes.
    f.advance(49 * 3600 * 1000);
    assert_eq!(q.enqueue(rec("late")), Ok(RecordId(5)));
    // The three expired ones are still listed (purged later), past the cap of 3.
    let held: Vec<(String, bool)> = q
        .list()
        .unwrap()
        .into_iter()
        .map(|r| (r.customer_id, r.expired))
        .collect();
    let want = [("c1", true), ("c2", true), ("a", true), ("late", false)];
    assert_eq!(held, want.map(|(c, e)| (c.to_string(), e)));
}

#[test]
fn expiry_never_sends_and_purges() {
    let f = Fixture::new();
    let q = f.open(QueueConfig {
        max_age: Duration::from_secs(3600),
        ..key_cfg()
    });
    q.enqueue(rec("old")).unwrap();
    f.advance(30 * 60 * 1000);
    q.enqueue(rec("young")).unwrap();
    f.advance(31 * 60 * 1000); // "old" is 61 min old, "young" 31 min.
    let claimed = q.claim_due(10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].customer_id, "young");
    let list = q.list().unwrap();
    assert!(list[0].expired && !list[1].expired);
    assert_eq!(list[0].age, Duration::from_secs(61 * 60));
    assert_eq!(q.purge_expired().unwrap(), 1);
    assert_eq!(q.list().unwrap().len(), 1);
    assert_eq!(
        q.stats().unwrap().oldest_age,
        Some(Duration::from_secs(31 * 60))
    );
}

#[test]
fn pin_block_refused_and_never_on_disk() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let marker = b"PINBLOCK-0412AC89ABCDEF67-MARKER";
    let err = q
        .enqueue(NewRecord {
            customer_id: "pin-cust".into(),
            masked_pan: None,
            payload: Zeroizing::new(marker.to_vec()),
            has_pin_block: true,
            in_flight: false,
        })
        .unwrap_err();
    assert_eq!(err, QueueError::PinBlockRefused);
    assert_eq!(err.code(), "pin-block-not-queueable");
    assert_eq!(q.stats().unwrap().held, 0);
    let disk = f.disk_bytes();
    assert!(!contains(&disk, b"pin-cust"), "not even the row exists");
    assert!(!contains(&disk, marker));
}

#[test]
fn unmasked_pan_and_bad_customer_id_refused() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let mut r = rec("c");
    r.masked_pan = Some(PAN.into());
    assert_eq!(q.enqueue(r).unwrap_err(), QueueError::UnmaskedPan);
    assert_eq!(q.enqueue(rec("")).unwrap_err(), QueueError::BadCustomerId);
    assert_eq!(
        q.enqueue(rec(&"x".repeat(65))).unwrap_err(),
        QueueError::BadCustomerId
    );
    assert!(!contains(&f.disk_bytes(), PAN.as_bytes()));
}

#[test]
fn retry_later_waits_and_masks_error() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let id = q.enqueue(rec("c")).unwrap();
    q.claim_due(1).unwrap();
    q.retry_later(id, &format!("gateway echoed {PAN}"), T0 + 5_000)
        .unwrap();
    let info = &q.list().unwrap()[0];
    assert_eq!(info.state, RecordState::Pending);
    assert_eq!(
        info.last_error.as_deref(),
        Some("gateway echoed 476173******0119")
    );
    assert!(q.claim_due(1).unwrap().is_empty());
    assert_eq!(q.next_due_ms().unwrap(), Some(T0 + 5_000));
    f.advance(5_000);
    let c = q.claim_due(1).unwrap();
    assert_eq!(c[0].attempts, 2);
    // release does not count the attempt.
    q.release(id, "paused").unwrap();
    assert_eq!(q.claim_due(1).unwrap()[0].attempts, 2);
    assert_eq!(
        q.retry_later(RecordId(999), "x", 0).unwrap_err(),
        QueueError::NotFound(999)
    );
}

#[test]
fn fail_keeps_reason_and_wipes_payload() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let id = q.enqueue(rec("c")).unwrap();
    q.claim_due(1).unwrap();
    q.fail(id, "declined: do not honor").unwrap();
    let info = &q.list().unwrap()[0];
    assert_eq!(info.state, RecordState::Failed);
    assert_eq!(info.last_error.as_deref(), Some("declined: do not honor"));
    let raw = Connection::open(f.db()).unwrap();
    let payload: Option<Vec<u8>> = raw
        .query_row("SELECT payload FROM records WHERE id = ?1", [id.0], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(payload, None);
    assert!(
        q.claim_due(1).unwrap().is_empty(),
        "failed is never re-sent"
    );
}

#[test]
fn recover_returns_sending_to_pending() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    q.enqueue_many(vec![rec("a"), rec("b")]).unwrap();
    assert_eq!(q.claim_due(5).unwrap().len(), 2);
    drop(q);
    let q = f.open(key_cfg());
    assert_eq!(q.recover().unwrap(), 2);
    assert_eq!(q.stats().unwrap().pending, 2);
    assert_eq!(q.claim_due(5).unwrap().len(), 2);
}

#[test]
fn one_customer_in_order() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let first = q.enqueue(rec("same")).unwrap();
    let second = q.enqueue(rec("same")).unwrap();
    let other = q.enqueue(rec("other")).unwrap();
    let c: Vec<RecordId> = q.claim_due(10).unwrap().iter().map(|c| c.id).collect();
    assert_eq!(c, vec![first, other]);
    q.ack(first).unwrap();
    let c: Vec<RecordId> = q.claim_due(10).unwrap().iter().map(|c| c.id).collect();
    assert_eq!(c, vec![second]);
}

#[test]
fn tampered_payload_marked_corrupt() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let a = q.enqueue(rec("a")).unwrap();
    let b = q.enqueue(rec("b")).unwrap();
    let raw = Connection::open(f.db()).unwrap();
    // Move b's sealed payload onto a: the AAD (customer id) no longer matches.
    raw.execute(
        "UPDATE records SET (nonce, payload) = (SELECT nonce, payload FROM records WHERE id = ?2) WHERE id = ?1",
        [a.0, b.0],
    )
    .unwrap();
    let c = q.claim_due(10).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].id, b);
    let info = q.list().unwrap();
    assert_eq!(info[0].state, RecordState::Failed);
    assert!(info[0]
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("corrupt"));
}

#[test]
fn purge_all_empties() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    q.enqueue_many((0..10).map(|i| rec(&format!("c{i}"))).collect())
        .unwrap();
    assert_eq!(q.purge_all().unwrap(), 10);
    assert_eq!(q.stats().unwrap().held, 0);
}

/// Failed rows used to count against the cap (for their whole 48 h): a few declines could
/// stop a lane from taking swipes.
#[test]
fn failed_rows_do_not_count_against_the_cap() {
    let f = Fixture::new();
    let q = f.open(QueueConfig {
        max_records: 2,
        ..key_cfg()
    });
    for c in ["a", "b"] {
        q.enqueue(rec(c)).unwrap();
    }
    assert_eq!(
        q.enqueue(rec("c")),
        Err(QueueError::Full { held: 2, cap: 2 })
    );
    for claimed in q.claim_due(2).unwrap() {
        q.fail(claimed.id, "declined: do not honor").unwrap();
    }
    // Two failed rows kept for the operator, two new records waiting: the cap is about these.
    q.enqueue(rec("c")).unwrap();
    q.enqueue(rec("d")).unwrap();
    assert_eq!(
        q.enqueue(rec("e")),
        Err(QueueError::Full { held: 2, cap: 2 })
    );
    let s = q.stats().unwrap();
    assert_eq!((s.failed, s.pending), (2, 2));
}

/// After an ack the WAL of a running queue held the record's pages (its ciphertext and
/// customer id) until some later checkpoint.
#[test]
fn nothing_acknowledged_outlives_its_delete_in_the_wal() {
    let f = Fixture::new();
    let q = f.open(key_cfg());
    let gone = q.enqueue(rec("CUST-ACKED-0001")).unwrap();
    let kept = q.enqueue(rec("CUST-KEPT-0002")).unwrap();
    let (ct, declined_ct): (Vec<u8>, Vec<u8>) = {
        let conn = Connection::open(f.db()).unwrap();
        let get = |id: RecordId| -> Vec<u8> {
            conn.query_row("SELECT payload FROM records WHERE id = ?1", [id.0], |r| {
                r.get(0)
            })
            .unwrap()
        };
        (get(gone), get(kept))
    };
    let wal = f.dir.path().join("queue.db-wal");
    // Before: the enqueue's pages are in the WAL (this is what the ack must not leave behind).
    let before = std::fs::read(&wal).unwrap();
    assert!(contains(&before, b"CUST-ACKED-0001"));
    assert!(contains(&before, &ct[..32]));
    let claimed = q.claim_due(2).unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(q.ack(gone).unwrap());
    q.fail(kept, "declined").unwrap();
    for bytes in [std::fs::read(&wal).unwrap(), std::fs::read(f.db()).unwrap()] {
        assert!(!contains(&bytes, b"CUST-ACKED-0001"));
        assert!(!contains(&bytes, &ct[..32]));
        // The declined record's payload is wiped too (its row stays, with the reason).
        assert!(!contains(&bytes, &declined_ct[..32]));
    }
}

/// Expiry used the wall clock: a kiosk that took swipes before its clock was set (or whose
/// clock jumped forward) expired them at once, unsent.
#[test]
fn a_wall_clock_jump_does_not_expire_a_fresh_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    let wall = Arc::new(AtomicI64::new(T0));
    let mono = Arc::new(AtomicI64::new(0));
    let open = || {
        let (w, m) = (wall.clone(), mono.clone());
        Queue::open(&db, key_cfg()).unwrap().with_clocks(
            Arc::new(move || w.load(Ordering::SeqCst)),
            Arc::new(move || m.load(Ordering::SeqCst)),
        )
    };
    const HOUR: i64 = 3_600_000;
    let q = open();
    q.enqueue(rec("fresh")).unwrap();
    // The clock is set: ten years forward, one second really passed.
    wall.fetch_add(10 * 365 * 24 * HOUR, Ordering::SeqCst);
    mono.fetch_add(1_000, Ordering::SeqCst);
    assert_eq!(q.purge_expired().unwrap(), 0);
    let info = &q.list().unwrap()[0];
    assert!(!info.expired);
    assert_eq!(info.age, Duration::from_secs(1));
    assert_eq!(q.claim_due(1).unwrap().len(), 1);
    q.release(RecordId(1), "test").unwrap();

    // 47 h really held, then a restart: the held time carries over.
    mono.fetch_add(47 * HOUR, Ordering::SeqCst);
    drop(q);
    mono.store(5_000_000, Ordering::SeqCst); // a new boot: the monotonic clock starts over
    let q = open();
    assert_eq!(q.purge_expired().unwrap(), 0);
    assert_eq!(q.stats().unwrap().pending, 1);
    // Past 48 h really held: expired, never sent.
    mono.fetch_add(HOUR, Ordering::SeqCst);
    assert!(q.claim_due(1).unwrap().is_empty());
    assert_eq!(q.purge_expired().unwrap(), 1);
}

/// A queue file from before `masked_account`: its `captures` table gets the column on open,
/// its kept capture still reads, and a check capture keeps its masked account (never more).
#[test]
fn an_older_captures_table_gets_masked_account() {
    let f = Fixture::new();
    {
        let raw = Connection::open(f.db()).unwrap();
        raw.execute_batch(
            "CREATE TABLE captures (id TEXT PRIMARY KEY, customer_id TEXT, state TEXT NOT NULL,
                 token TEXT, masked_pan TEXT, error TEXT, updated INTEGER NOT NULL);
             INSERT INTO captures VALUES ('cap_old', 'CL1', 'saved', '77', '476173******0119',
                 NULL, 1);",
        )
        .unwrap();
    }
    let q = f.open(key_cfg());
    let old = q.find_capture("cap_old").unwrap().unwrap();
    assert_eq!(old.masked_pan.as_deref(), Some("476173******0119"));
    assert_eq!(old.masked_account, None);
    let check = CaptureRow {
        id: "cap_check".into(),
        customer_id: Some("CL2".into()),
        state: "queued".into(),
        token: None,
        masked_pan: None,
        masked_account: Some("*****6789".into()),
        error: None,
    };
    q.save_capture(&check).unwrap();
    // A later update without it (the settled outcome) keeps it.
    q.save_capture(&CaptureRow {
        state: "saved".into(),
        masked_account: None,
        ..check.clone()
    })
    .unwrap();
    let got = q.find_capture("CL2").unwrap().unwrap();
    assert_eq!(
        (got.state.as_str(), got.masked_account.as_deref()),
        ("saved", Some("*****6789"))
    );
    let clear = CaptureRow {
        masked_account: Some("123456789".into()),
        ..check
    };
    assert!(matches!(
        q.save_capture(&clear),
        Err(QueueError::UnmaskedPan)
    ));
    drop(q);
    // Opening it again (the column is there now) changes nothing.
    let q = f.open(key_cfg());
    assert!(q.find_capture("cap_check").unwrap().is_some());
}
