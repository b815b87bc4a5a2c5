//! The SQLite store: one row per record, payload sealed with AES-256-GCM.
//!
//! Durability: enqueue commits with `synchronous=FULL` (a swipe is taken only once it is on
//! disk). Every other write (claim, ack, retry, fail) uses `NORMAL`, which in WAL mode survives a
//! process crash and at worst loses the last state change on power loss; that only re-sends a
//! record, and the gateway's upsert on `customer_id` makes the re-send harmless.
use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use zeroize::Zeroizing;

use super::error::QueueError;
use super::key::{self, KeySource};
use super::mask::mask_text;
use super::seal::Sealer;

const KEY_CHECK_AAD: &[u8] = b"cardlane-queue-key-check-v1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
-- AUTOINCREMENT: ids are never reused, so a late ack can never delete a newer record.
CREATE TABLE IF NOT EXISTS records (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id  TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    -- The queue's held clock at enqueue (see HeldClock): expiry counts time really held.
    held_at      INTEGER,
    last_error   TEXT,
    masked_pan   TEXT,
    nonce        BLOB,
    payload      BLOB
);
CREATE INDEX IF NOT EXISTS records_due ON records (state, next_attempt);
CREATE INDEX IF NOT EXISTS records_customer ON records (customer_id, id);
-- The cap count and expiry purge look at `created` only.
CREATE INDEX IF NOT EXISTS records_created ON records (created);
-- Kiosk captures and how their record ended, so a capture survives a restart of the agent
-- (no card data: ids, state, the gateway's token, a masked PAN or account, a masked reason).
-- `masked_account` was added later: `migrate_captures` adds it to an older file.
CREATE TABLE IF NOT EXISTS captures (
    id          TEXT    PRIMARY KEY,
    customer_id TEXT,
    state       TEXT    NOT NULL,
    token       TEXT,
    masked_pan  TEXT,
    error       TEXT,
    updated     INTEGER NOT NULL,
    masked_account TEXT
);
CREATE INDEX IF NOT EXISTS captures_customer ON captures (customer_id);
";

/// A kiosk capture as kept beside the records (see the `captures` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRow {
    pub id: String,
    pub customer_id: Option<String>,
    /// `queued`, `saved`, `declined`, `rejected`, `failed`.
    pub state: String,
    pub token: Option<String>,
    pub masked_pan: Option<String>,
    /// A check's account masked to its last 4 (`*****6789`).
    pub masked_account: Option<String>,
    pub error: Option<String>,
}

/// Time the queue has really been held, in ms: advances with a monotonic clock while a process
/// has the queue open and is saved in `meta`, so a wall-clock jump (a kiosk whose clock is set
/// after it took swipes) never ages a record. Time while no process runs is not counted.
struct HeldClock {
    /// Held time at `mono_base`.
    base: i64,
    mono_base: i64,
}

fn mono_now_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Limits and key for [`Queue::open`].
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Cap on records held (not yet expired); past it enqueue fails with [`QueueError::Full`].
    pub max_records: u64,
    /// Records older than this are never sent and are purged.
    pub max_age: Duration,
    pub key: KeySource,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_records: 1_000,
            max_age: Duration::from_secs(48 * 3600),
            key: KeySource::Auto,
        }
    }
}

/// A row id; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub i64);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A record to store. `payload` is the serialized Customer request (card data inside).
pub struct NewRecord {
    pub customer_id: String,
    pub masked_pan: Option<String>,
    pub payload: Zeroizing<Vec<u8>>,
    /// The request carries a PIN block: refused, never written.
    pub has_pin_block: bool,
    /// Already on its way to the gateway (the uploader's direct lane, started before this
    /// commit): stored `sending` with one attempt so nobody claims it a second time. A crash
    /// leaves it `sending`, and recovery makes it pending again.
    pub in_flight: bool,
}

impl fmt::Debug for NewRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewRecord")
            .field("customer_id", &self.customer_id)
            .field("masked_pan", &self.masked_pan)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("has_pin_block", &self.has_pin_block)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

/// A record handed out for delivery (now in state `sending`).
pub struct Claimed {
    pub id: RecordId,
    pub customer_id: String,
    /// Attempts including this one.
    pub attempts: u32,
    pub masked_pan: Option<String>,
    pub payload: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Claimed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("attempts", &self.attempts)
            .field("masked_pan", &self.masked_pan)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Pending,
    Sending,
    Failed,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Pending => "pending",
            RecordState::Sending => "sending",
            RecordState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RecordState::Pending),
            "sending" => Some(RecordState::Sending),
            "failed" => Some(RecordState::Failed),
            _ => None,
        }
    }
}

/// What `list()` shows: metadata only, no payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    pub id: RecordId,
    pub customer_id: String,
    pub state: RecordState,
    pub attempts: u32,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub masked_pan: Option<String>,
    /// How long the record has really been held (not the wall clock), never negative.
    pub age: Duration,
    pub expired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    pub held: u64,
    pub pending: u64,
    pub sending: u64,
    pub failed: u64,
    /// Age of the oldest record, if any.
    pub oldest_age: Option<Duration>,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The durable queue. All methods are blocking (SQLite); call them from `spawn_blocking` in
/// async code. Safe to share between threads (`Arc<Queue>`).
pub struct Queue {
    conn: Mutex<Connection>,
    sealer: Option<Sealer>,
    max_records: u64,
    max_age_ms: i64,
    clock: Clock,
    /// Monotonic ms (any origin), for the held clock.
    mono: Clock,
    held: Mutex<HeldClock>,
    path: PathBuf,
    /// Why the last enqueue could not be written (disk full, read-only, locked), until one
    /// succeeds again; health reports it.
    write_error: Mutex<Option<String>>,
    /// Rows found corrupt (and marked failed) by claims so far, for flush reports.
    corrupt_marked: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.path)
            .field("max_records", &self.max_records)
            .field("max_age_ms", &self.max_age_ms)
            .field("keyed", &self.sealer.is_some())
            .finish()
    }
}

fn system_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Queue {
    /// Opens (or creates, mode 0600) the queue file and checks the key against it.
    pub fn open(path: impl AsRef<Path>, config: QueueConfig) -> Result<Queue, QueueError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            // Created private before SQLite touches it; SQLite gives -wal/-shm the same mode.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)?;
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(QueueError::Storage(format!(
                "journal mode {mode}, want wal"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let held_base = migrate_held(&conn)?;
        migrate_captures(&conn)?;

        let check: Option<Vec<u8>> = conn
            .query_row("SELECT v FROM meta WHERE k = 'key_check'", [], |r| r.get(0))
            .optional()?;
        let key = key::resolve(&config.key, &path, check.is_none())?;
        let sealer = key.as_ref().map(Sealer::new);
        if let Some(s) = &sealer {
            match &check {
                Some(blob) => {
                    let (nonce, ct) = blob.split_at(blob.len().min(super::seal::NONCE_LEN));
                    if s.open(KEY_CHECK_AAD, nonce, ct).is_none() {
                        return Err(QueueError::WrongKey);
                    }
                }
                None => {
                    let (nonce, ct) = s
                        .seal(KEY_CHECK_AAD, b"")
                        .ok_or_else(|| QueueError::Key("cannot seal".into()))?;
                    let mut blob = nonce.to_vec();
                    blob.extend_from_slice(&ct);
                    conn.execute(
                        "INSERT OR IGNORE INTO meta (k, v) VALUES ('key_check', ?1)",
                        params![blob],
                    )?;
                }
            }
        }
        Ok(Queue {
            conn: Mutex::new(conn),
            sealer,
            max_records: config.max_records,
            max_age_ms: millis(config.max_age),
            clock: Arc::new(system_now_ms),
            mono: Arc::new(mono_now_ms),
            held: Mutex::new(HeldClock {
                base: held_base,
                mono_base: mono_now_ms(),
            }),
            path,
            write_error: Mutex::new(None),
            corrupt_marked: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Replaces the clock (unix milliseconds); for tests and simulations of expiry and backoff.
    /// The held clock follows it too (use [`Queue::with_clocks`] to tell them apart).
    pub fn with_clock(self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        let clock: Clock = Arc::new(clock);
        self.with_clocks(clock.clone(), clock)
    }

    /// Replaces the wall clock (unix ms) and the monotonic clock behind held time (ms, any
    /// origin); for tests of clock jumps.
    pub fn with_clocks(mut self, wall: Clock, mono: Clock) -> Self {
        {
            let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let held = h
                .base
                .saturating_add(0.max((self.mono)().saturating_sub(h.mono_base)));
            h.base = held;
            h.mono_base = mono();
        }
        self.mono = mono;
        self.clock = wall;
        self
    }

    /// The queue's notion of now, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long this queue has really been held (ms; see [`HeldClock`]).
    pub fn held_now(&self) -> i64 {
        let h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        h.base
            .saturating_add(0.max((self.mono)().saturating_sub(h.mono_base)))
    }

    /// Records held since at most this held time have expired.
    fn held_cutoff(&self) -> i64 {
        self.held_now().saturating_sub(self.max_age_ms)
    }

    /// Saves the held clock, so the next process continues it.
    fn save_held(&self, conn: &Connection) -> Result<(), QueueError> {
        conn.execute(
            "INSERT INTO meta (k, v) VALUES ('held_clock', ?1)
             ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            params![self.held_now()],
        )?;
        Ok(())
    }

    /// Stores one record durably (fsync'd) and returns its id.
    pub fn enqueue(&self, record: NewRecord) -> Result<RecordId, QueueError> {
        self.enqueue_many(vec![record])?
            .pop()
            .unwrap_or(Err(QueueError::Storage("empty batch".into())))
    }

    /// Stores a batch in one transaction with one fsync. Each record gets its own answer
    /// (a PIN record or one past the cap is refused alone); the outer error means nothing of
    /// the batch was stored.
    #[allow(clippy::type_complexity)]
    pub fn enqueue_many(
        &self,
        records: Vec<NewRecord>,
    ) -> Result<Vec<Result<RecordId, QueueError>>, QueueError> {
        let sealer = self.sealer.as_ref().ok_or(QueueError::NoKey)?;
        // Validate and seal before taking the lock; refused payloads are never written.
        let prepared: Vec<Result<_, QueueError>> = records
            .into_iter()
            .map(|r| {
                if r.has_pin_block {
                    return Err(QueueError::PinBlockRefused);
                }
                if r.customer_id.is_empty() || r.customer_id.chars().count() > 64 {
                    return Err(QueueError::BadCustomerId);
                }
                if let Some(m) = &r.masked_pan {
                    if m.chars().filter(|c| c.is_ascii_digit()).count() > 10 {
                        return Err(QueueError::UnmaskedPan);
                    }
                }
                let (nonce, ct) = sealer
                    .seal(r.customer_id.as_bytes(), &r.payload)
                    .ok_or_else(|| QueueError::Storage("payload too large to seal".into()))?;
                Ok((r.customer_id, r.masked_pan, r.in_flight, nonce, ct))
            })
            .collect();
        let now = self.now_ms();
        let held_ms = self.held_now();
        let cutoff = held_ms.saturating_sub(self.max_age_ms);
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let result: Result<Vec<_>, QueueError> = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Only what still waits to be sent counts: failed rows keep a reason, not a slot.
            let mut held = count(tx.query_row(
                "SELECT COUNT(*) FROM records WHERE held_at > ?1 AND state != 'failed'",
                params![cutoff],
                |r| r.get(0),
            )?);
            let mut out = Vec::with_capacity(prepared.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO records (customer_id, state, attempts, next_attempt, created,
                                          masked_pan, nonce, payload, held_at)
                     VALUES (?1, CASE WHEN ?6 THEN 'sending' ELSE 'pending' END,
                             CASE WHEN ?6 THEN 1 ELSE 0 END, ?2, ?2, ?3, ?4, ?5, ?7)",
                )?;
                for p in prepared {
                    out.push(match p {
                        Err(e) => Err(e),
                        Ok(_) if held >= self.max_records => Err(QueueError::Full {
                            held,
                            cap: self.max_records,
                        }),
                        Ok((customer_id, masked_pan, in_flight, nonce, ct)) => {
                            insert.execute(params![
                                customer_id,
                                now,
                                masked_pan,
                                nonce.as_slice(),
                                ct,
                                in_flight,
                                held_ms
                            ])?;
                            held += 1;
                            Ok(RecordId(tx.last_insert_rowid()))
                        }
                    });
                }
            }
            tx.execute(
                "INSERT INTO meta (k, v) VALUES ('held_clock', ?1)
                 ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                params![held_ms],
            )?;
            tx.commit()?;
            Ok(out)
        })();
        let restored = conn.pragma_update(None, "synchronous", "NORMAL");
        *self.write_error.lock().unwrap_or_else(|e| e.into_inner()) =
            result.as_ref().err().map(|e| e.to_string());
        let out = result?;
        restored?;
        Ok(out)
    }

    /// Hands out up to `n` due, unexpired pending records (oldest first) and marks them
    /// `sending`. A customer's records go out one at a time, in order, so an older update can
    /// never overwrite a newer one at the gateway. A row that fails authentication is marked
    /// failed (`corrupt`) instead of being handed out.
    pub fn claim_due(&self, n: usize) -> Result<Vec<Claimed>, QueueError> {
        self.claim_due_by(n, self.now_ms())
    }

    /// [`Queue::claim_due`] for records due by `due_by_ms` (a flush that started earlier
    /// passes its start, so a record rescheduled during the flush is not tried twice).
    pub fn claim_due_by(&self, n: usize, due_by_ms: i64) -> Result<Vec<Claimed>, QueueError> {
        let sealer = self.sealer.as_ref().ok_or(QueueError::NoKey)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let cutoff = self.held_cutoff();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::new();
        {
            let mut select = tx.prepare_cached(
                "SELECT id, customer_id, attempts, masked_pan, nonce, payload FROM records r
                 WHERE state = 'pending' AND next_attempt <= ?1 AND held_at > ?2
                   AND NOT EXISTS (SELECT 1 FROM records o
                                   WHERE o.customer_id = r.customer_id AND o.id < r.id
                                     AND o.state != 'failed' AND o.held_at > ?2)
                 ORDER BY next_attempt, id LIMIT ?3",
            )?;
            let rows = select.query_map(
                params![
                    due_by_ms.min(now),
                    cutoff,
                    i64::try_from(n).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                        Zeroizing::new(r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default()),
                    ))
                },
            )?;
            let mut mark_sending = tx.prepare_cached(
                "UPDATE records SET state = 'sending', attempts = attempts + 1 WHERE id = ?1",
            )?;
            let mut mark_corrupt = tx.prepare_cached(
                "UPDATE records SET state = 'failed', last_error = 'corrupt: payload failed decryption',
                        nonce = NULL, payload = NULL WHERE id = ?1",
            )?;
            for row in rows {
                let (id, customer_id, attempts, masked_pan, nonce, ct) = row?;
                let opened = nonce
                    .as_deref()
                    .and_then(|nonce| sealer.open(customer_id.as_bytes(), nonce, &ct));
                match opened {
                    Some(payload) => {
                        mark_sending.execute(params![id])?;
                        out.push(Claimed {
                            id: RecordId(id),
                            customer_id,
                            attempts: u32::try_from(attempts.saturating_add(1)).unwrap_or(u32::MAX),
                            masked_pan,
                            payload,
                        });
                    }
                    None => {
                        tracing::warn!(
                            record = id,
                            "queue record failed decryption; marked failed"
                        );
                        mark_corrupt.execute(params![id])?;
                        self.corrupt_marked
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
        self.save_held(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Whether a swipe could be stored now: the last enqueue did not fail, and the write lock
    /// can be taken within a moment. `Err` says why not (SQLite/OS text, no card data).
    pub fn writable(&self) -> Result<(), String> {
        if let Some(e) = self
            .write_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(e);
        }
        let conn = self.lock();
        // A short wait: health must answer even while something holds the file.
        let probe = conn
            .busy_timeout(Duration::from_millis(250))
            .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;"));
        let restored = conn.busy_timeout(Duration::from_secs(10));
        probe.and(restored).map_err(|e| e.to_string())
    }

    /// Rows found corrupt by claims of this handle so far (they are kept `failed`).
    pub fn corrupt_marked(&self) -> u64 {
        self.corrupt_marked
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes every pending record due now (a manual flush ignores the backoff); returns how
    /// many were waiting for a later attempt.
    pub fn make_all_due(&self) -> Result<u64, QueueError> {
        let now = self.now_ms();
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE records SET next_attempt = ?1 WHERE state = 'pending' AND next_attempt > ?1",
            params![now],
        )?;
        Ok(count(i64::try_from(n).unwrap_or(i64::MAX)))
    }

    /// The gateway's answer is final (saved): deletes the record. `false` when it was already
    /// gone (acknowledged before or purged), so a double ack is harmless.
    /// The WAL is then checkpointed and truncated, so the record's pages (written there at
    /// enqueue) do not outlive the delete.
    pub fn ack(&self, id: RecordId) -> Result<bool, QueueError> {
        let conn = self.lock();
        let gone = conn.execute("DELETE FROM records WHERE id = ?1", params![id.0])? > 0;
        if gone {
            checkpoint(&conn)?;
        }
        Ok(gone)
    }

    /// Transient failure: back to pending, not before `at_ms` (unix ms), with the masked error.
    pub fn retry_later(&self, id: RecordId, error: &str, at_ms: i64) -> Result<(), QueueError> {
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE records SET state = 'pending', next_attempt = ?2, last_error = ?3 WHERE id = ?1",
            params![id.0, at_ms, mask_text(error)],
        )?;
        if n == 0 {
            return Err(QueueError::NotFound(id.0));
        }
        Ok(())
    }

    /// Hands a claimed record back without counting the attempt (uploads paused, shutdown).
    pub fn release(&self, id: RecordId, error: &str) -> Result<(), QueueError> {
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE records SET state = 'pending', attempts = MAX(attempts - 1, 0), last_error = ?2
             WHERE id = ?1",
            params![id.0, mask_text(error)],
        )?;
        if n == 0 {
            return Err(QueueError::NotFound(id.0));
        }
        Ok(())
    }

    /// Final refusal (declined, rejected): kept as `failed` with its reason for the operator,
    /// but the sealed payload is wiped: card data stays only until the gateway's final answer.
    pub fn fail(&self, id: RecordId, reason: &str) -> Result<(), QueueError> {
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE records SET state = 'failed', last_error = ?2, nonce = NULL, payload = NULL
             WHERE id = ?1",
            params![id.0, mask_text(reason)],
        )?;
        if n == 0 {
            return Err(QueueError::NotFound(id.0));
        }
        // The wiped payload must not stay readable in the WAL either.
        checkpoint(&conn)?;
        Ok(())
    }

    /// Every record held, oldest first; metadata only.
    pub fn list(&self) -> Result<Vec<RecordInfo>, QueueError> {
        let held_now = self.held_now();
        let cutoff = held_now.saturating_sub(self.max_age_ms);
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, customer_id, state, attempts, created, next_attempt, last_error, masked_pan,
                    held_at
             FROM records ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let created: i64 = r.get(4)?;
            let held_at: i64 = r.get(8)?;
            let state: String = r.get(2)?;
            Ok(RecordInfo {
                id: RecordId(r.get(0)?),
                customer_id: r.get(1)?,
                state: RecordState::parse(&state).unwrap_or(RecordState::Failed),
                attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                created_ms: created,
                next_attempt_ms: r.get(5)?,
                last_error: r.get(6)?,
                masked_pan: r.get(7)?,
                age: Duration::from_millis(count(held_now.saturating_sub(held_at))),
                expired: held_at <= cutoff,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = self.held_now();
        let conn = self.lock();
        let (pending, sending, failed, oldest): (i64, i64, i64, Option<i64>) = conn.query_row(
            "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'sending'), 0),
                    COALESCE(SUM(state = 'failed'), 0), MIN(held_at) FROM records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        Ok(QueueStats {
            held: count(pending) + count(sending) + count(failed),
            pending: count(pending),
            sending: count(sending),
            failed: count(failed),
            oldest_age: oldest.map(|c| Duration::from_millis(count(now.saturating_sub(c)))),
        })
    }

    /// When the next pending record becomes due (unix ms), if any.
    pub fn next_due_ms(&self) -> Result<Option<i64>, QueueError> {
        let cutoff = self.held_cutoff();
        let conn = self.lock();
        Ok(conn.query_row(
            "SELECT MIN(next_attempt) FROM records WHERE state = 'pending' AND held_at > ?1",
            params![cutoff],
            |r| r.get(0),
        )?)
    }

    /// Deletes records past `max_age` (never sent: stale card data must not go upstream).
    pub fn purge_expired(&self) -> Result<u64, QueueError> {
        let cutoff = self.held_cutoff();
        let wall_cutoff = self.now_ms().saturating_sub(self.max_age_ms);
        let conn = self.lock();
        self.save_held(&conn)?;
        let n = conn.execute("DELETE FROM records WHERE held_at <= ?1", params![cutoff])?;
        // Captures are kept about as long as records: past that nobody asks any more.
        conn.execute(
            "DELETE FROM captures WHERE updated <= ?1",
            params![wall_cutoff],
        )?;
        if n > 0 {
            checkpoint(&conn)?;
        }
        Ok(count(i64::try_from(n).unwrap_or(i64::MAX)))
    }

    /// Deletes every record.
    pub fn purge_all(&self) -> Result<u64, QueueError> {
        let conn = self.lock();
        let n = conn.execute("DELETE FROM records", [])?;
        checkpoint(&conn)?;
        Ok(count(i64::try_from(n).unwrap_or(i64::MAX)))
    }

    /// Keeps (or updates) a capture's state beside its record.
    pub fn save_capture(&self, c: &CaptureRow) -> Result<(), QueueError> {
        let digits = |m: &Option<String>| {
            m.as_deref()
                .map_or(0, |m| m.chars().filter(|c| c.is_ascii_digit()).count())
        };
        // A masked PAN shows at most 10 digits, a masked account its last 4.
        if digits(&c.masked_pan) > 10 || digits(&c.masked_account) > 4 {
            return Err(QueueError::UnmaskedPan);
        }
        let now = self.now_ms();
        let conn = self.lock();
        conn.execute(
            "INSERT INTO captures (id, customer_id, state, token, masked_pan, error, updated,
                                   masked_account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET
                customer_id = COALESCE(excluded.customer_id, customer_id),
                state = excluded.state,
                token = COALESCE(excluded.token, token),
                masked_pan = COALESCE(excluded.masked_pan, masked_pan),
                masked_account = COALESCE(excluded.masked_account, masked_account),
                error = excluded.error, updated = excluded.updated",
            params![
                c.id,
                c.customer_id,
                c.state,
                c.token,
                c.masked_pan,
                c.error.as_deref().map(mask_text),
                now,
                c.masked_account
            ],
        )?;
        Ok(())
    }

    /// The outcome of a record whose capture was kept (the record was delivered after a
    /// restart): updates every capture of `customer_id` still `queued`. Returns their ids.
    pub fn settle_captures(
        &self,
        customer_id: &str,
        state: &str,
        token: Option<&str>,
        error: Option<&str>,
    ) -> Result<Vec<String>, QueueError> {
        let now = self.now_ms();
        let conn = self.lock();
        let mut ids = Vec::new();
        {
            let mut stmt = conn.prepare_cached(
                "UPDATE captures SET state = ?2, token = COALESCE(?3, token), error = ?4,
                        updated = ?5
                 WHERE customer_id = ?1 AND state = 'queued' RETURNING id",
            )?;
            let rows = stmt.query_map(
                params![customer_id, state, token, error.map(mask_text), now],
                |r| r.get::<_, String>(0),
            )?;
            for r in rows {
                ids.push(r?);
            }
        }
        Ok(ids)
    }

    /// A kept capture by its id, or else the latest one of that `customer_id`.
    pub fn find_capture(&self, id_or_customer: &str) -> Result<Option<CaptureRow>, QueueError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, customer_id, state, token, masked_pan, error, masked_account FROM captures
             WHERE id = ?1 OR customer_id = ?1
             ORDER BY (id = ?1) DESC, updated DESC LIMIT 1",
        )?;
        Ok(stmt
            .query_row(params![id_or_customer], |r| {
                Ok(CaptureRow {
                    id: r.get(0)?,
                    customer_id: r.get(1)?,
                    state: r.get(2)?,
                    token: r.get(3)?,
                    masked_pan: r.get(4)?,
                    error: r.get(5)?,
                    masked_account: r.get(6)?,
                })
            })
            .optional()?)
    }

    /// On start: records left `sending` by a crash go back to `pending` (at-least-once; the
    /// gateway's upsert on `customer_id` makes it exactly-once).
    pub fn recover(&self) -> Result<u64, QueueError> {
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE records SET state = 'pending' WHERE state = 'sending'",
            [],
        )?;
        Ok(count(i64::try_from(n).unwrap_or(i64::MAX)))
    }
}

/// Adds `held_at` to a queue made before it (its records are given the held time their wall
/// age says, once) and returns the saved held clock.
fn migrate_held(conn: &Connection) -> Result<i64, QueueError> {
    let has: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('records') WHERE name = 'held_at'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE records ADD COLUMN held_at INTEGER")?;
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS records_held ON records (held_at)")?;
    let base: i64 = conn
        .query_row("SELECT v FROM meta WHERE k = 'held_clock'", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0);
    conn.execute(
        "UPDATE records SET held_at = ?1 - MAX(0, ?2 - created) WHERE held_at IS NULL",
        params![base, system_now_ms()],
    )?;
    Ok(base)
}

/// Adds `masked_account` to the `captures` table of a queue file made before it (its kept
/// captures are card captures, or checks whose masked account was not kept: NULL).
fn migrate_captures(conn: &Connection) -> Result<(), QueueError> {
    let has: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('captures') WHERE name = 'masked_account'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE captures ADD COLUMN masked_account TEXT")?;
    }
    Ok(())
}

/// Moves the WAL into the database and truncates it, so deleted rows do not linger there.
fn checkpoint(conn: &Connection) -> Result<(), QueueError> {
    // Busy (a reader holds an old snapshot) is not an error: the next checkpoint does it.
    let _busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(())
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Best effort: the held time since the last write is not lost on a clean exit.
        let conn = self.lock();
        let _ = self.save_held(&conn);
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
