//! The simulator's SQLite store (WAL), so customers, tokens and AUTO numbering survive a restart.
//! No card data is written: tokens, brand, last 4 and expiry only.
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::gateway::record::CustomerFields;

/// First `AUTO` customer id (customer-api.md).
pub const FIRST_AUTO_ID: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("simulator database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("simulator database is poisoned")]
    Poisoned,
    #[error("simulator token key {path}: {reason}")]
    TokenKey { path: String, reason: String },
}

/// The card part of a stored customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredCard {
    pub token: String,
    pub account_type: Option<String>,
    pub last4: Option<String>,
    pub expiry: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredCustomer {
    pub fields: CustomerFields,
    pub card: Option<StoredCard>,
    pub check_token: Option<String>,
    pub check_last4: Option<String>,
    /// The saved check's routing number (not secret; `/_sim/customers` shows it).
    pub check_aba: Option<String>,
    pub updated_count: i64,
}

pub struct Store {
    conn: Mutex<Connection>,
    /// Keys the token function. Kept out of the database (a file beside it, 0600, or memory
    /// only), so a copy of the database alone does not let anyone test PANs against tokens.
    token_key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating) the database at `path`, or an in-memory one for `None`.
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = match path {
            Some(p) => {
                create_private(p)?;
                Connection::open(p)?
            }
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL + NORMAL: a commit survives a process crash; fsync only at checkpoints.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS customers (
                 customer_id TEXT PRIMARY KEY,
                 fields TEXT NOT NULL,
                 token TEXT, account_type TEXT, account_last_4 TEXT, expiration_date TEXT,
                 check_token TEXT, check_last_4 TEXT,
                 updated_count INTEGER NOT NULL DEFAULT 0);",
        )?;
        // Databases made before checks kept their routing number gain the column.
        let has_aba = conn
            .prepare("SELECT 1 FROM pragma_table_info('customers') WHERE name = 'check_aba'")?
            .exists([])?;
        if !has_aba {
            conn.execute_batch("ALTER TABLE customers ADD COLUMN check_aba TEXT;")?;
        }
        // Earlier versions kept a token salt inside the database: drop it.
        conn.execute("DELETE FROM meta WHERE key = 'salt'", [])?;
        let token_key = match path {
            Some(p) => token_key_beside(p)?,
            None => zeroize::Zeroizing::new(rand::random::<[u8; 32]>()),
        };
        Ok(Self {
            conn: Mutex::new(conn),
            token_key,
        })
    }

    /// Runs `f` in one transaction under the store's lock: what it reads and writes is atomic
    /// with respect to every other request (AUTO numbering, action codes).
    pub fn transaction<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Transaction) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction().map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// A 16-digit token, stable for this store, customer and card number.
    pub fn card_token(&self, customer_id: &str, pan: &str) -> String {
        self.token("card", customer_id, pan)
    }

    pub fn check_token(&self, customer_id: &str, aba: &str, account: &str) -> String {
        self.token("check", customer_id, &format!("{aba}:{account}"))
    }

    fn token(&self, kind: &str, customer_id: &str, secret: &str) -> String {
        // AES-256-CMAC as a keyed PRF over length-prefixed parts.
        let mut mac = <cmac::Cmac<aes::Aes256> as cmac::Mac>::new_from_slice(&*self.token_key)
            .expect("a 32-byte key fits AES-256");
        for part in [kind, customer_id, secret] {
            cmac::Mac::update(&mut mac, &(part.len() as u64).to_be_bytes());
            cmac::Mac::update(&mut mac, part.as_bytes());
        }
        let digest = cmac::Mac::finalize(mac).into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 16 digits, no leading zero: 10^15 ..= 10^16 - 1.
        let n = 1_000_000_000_000_000u64 + u64::from_be_bytes(first) % 9_000_000_000_000_000u64;
        n.to_string()
    }

    pub fn list(&self) -> Result<Vec<(String, StoredCustomer)>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        // rowid follows insertion order (an upsert keeps its row).
        let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY rowid"))?;
        let rows = stmt.query_map([], row_to_customer)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const SELECT: &str = "SELECT customer_id, fields, token, account_type, account_last_4, \
     expiration_date, check_token, check_last_4, updated_count, check_aba FROM customers";

fn row_to_customer(r: &rusqlite::Row) -> rusqlite::Result<(String, StoredCustomer)> {
    let id: String = r.get(0)?;
    let fields: String = r.get(1)?;
    let token: Option<String> = r.get(2)?;
    let card = token.map(|token| -> rusqlite::Result<StoredCard> {
        Ok(StoredCard {
            token,
            account_type: r.get(3)?,
            last4: r.get(4)?,
            expiry: r.get(5)?,
        })
    });
    Ok((
        id,
        StoredCustomer {
            // Written by `put` from the same type; a hand-edited row reads as empty fields.
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            card: card.transpose()?,
            check_token: r.get(6)?,
            check_last4: r.get(7)?,
            updated_count: r.get(8)?,
            check_aba: r.get(9)?,
        },
    ))
}

pub fn get(tx: &Transaction, id: &str) -> rusqlite::Result<Option<StoredCustomer>> {
    tx.prepare_cached(&format!("{SELECT} WHERE customer_id = ?1"))?
        .query_row(params![id], row_to_customer)
        .optional()
        .map(|o| o.map(|(_, c)| c))
}

pub fn put(tx: &Transaction, id: &str, c: &StoredCustomer) -> rusqlite::Result<()> {
    let fields = serde_json::to_string(&c.fields).unwrap_or_else(|_| "{}".into());
    let card = c.card.as_ref();
    tx.prepare_cached(
        "INSERT INTO customers (customer_id, fields, token, account_type, account_last_4,
             expiration_date, check_token, check_last_4, updated_count, check_aba)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(customer_id) DO UPDATE SET fields = ?2, token = ?3, account_type = ?4,
             account_last_4 = ?5, expiration_date = ?6, check_token = ?7, check_last_4 = ?8,
             updated_count = ?9, check_aba = ?10",
    )?
    .execute(params![
        id,
        fields,
        card.map(|k| &k.token),
        card.and_then(|k| k.account_type.as_ref()),
        card.and_then(|k| k.last4.as_ref()),
        card.and_then(|k| k.expiry.as_ref()),
        c.check_token,
        c.check_last4,
        c.updated_count,
        c.check_aba
    ])?;
    Ok(())
}

/// The next free `AUTO` id, counting from 100000 and skipping ids callers chose themselves.
pub fn next_auto_id(tx: &Transaction) -> rusqlite::Result<String> {
    let stored: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'next_auto'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let mut n = stored
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(FIRST_AUTO_ID);
    loop {
        let id = n.to_string();
        n = n.saturating_add(1);
        let taken: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM customers WHERE customer_id = ?1)",
            params![id],
            |r| r.get(0),
        )?;
        if !taken {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('next_auto', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = ?1",
                params![n.to_string()],
            )?;
            return Ok(id);
        }
    }
}

/// Creates the database file 0600 when it does not exist yet (SQLite gives its -wal and -shm
/// files the same mode), and narrows an existing one.
fn create_private(p: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |e: std::io::Error| StoreError::TokenKey {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(p)
        .map_err(err)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(err)
}

/// The token key in `<db>.token-key` (32 random bytes, 0600), created on first use.
fn token_key_beside(db: &Path) -> Result<zeroize::Zeroizing<[u8; 32]>, StoreError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = db.as_os_str().to_owned();
    name.push(".token-key");
    let path = std::path::PathBuf::from(name);
    let err = |reason: String| StoreError::TokenKey {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| err(format!("holds {} bytes, not 32", bytes.len())))?;
            Ok(zeroize::Zeroizing::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = zeroize::Zeroizing::new(rand::random::<[u8; 32]>());
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| err(e.to_string()))?;
            f.write_all(&*key)
                .and_then(|()| f.sync_all())
                .map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_16_digits() {
        let s = Store::open(None).unwrap();
        let a = s.card_token("CID1", "4005571701111111");
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, s.card_token("CID1", "4005571701111111"));
        assert_ne!(a, s.card_token("CID2", "4005571701111111"));
        assert_ne!(a, s.card_token("CID1", "4005571701111129"));
    }

    /// The database file is private and holds nothing that keys the tokens: the same PAN in a
    /// store with another key file gets another token, and the key survives a reopen.
    #[test]
    fn database_is_0600_and_the_token_key_lives_outside_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sim.db");
        let pan = "4005571701111111";
        let a = Store::open(Some(&db)).unwrap().card_token("CID1", pan);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        let key = dir.path().join("sim.db.token-key");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap().len(), 32);
        // Reopened: same key, same token.
        assert_eq!(Store::open(Some(&db)).unwrap().card_token("CID1", pan), a);
        // The database alone (key file gone): a new key, so the old token cannot be rebuilt.
        std::fs::remove_file(&key).unwrap();
        assert_ne!(Store::open(Some(&db)).unwrap().card_token("CID1", pan), a);
        let conn = Connection::open(&db).unwrap();
        let salt: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'salt'", [], |r| {
                r.get(0)
            })
            .optional()
            .unwrap();
        assert_eq!(salt, None);
    }

    #[test]
    fn auto_ids_skip_taken() {
        let s = Store::open(None).unwrap();
        let ids: Vec<String> = s
            .transaction(|tx| -> Result<_, StoreError> {
                put(tx, "100001", &StoredCustomer::default())?;
                Ok(vec![next_auto_id(tx)?, next_auto_id(tx)?])
            })
            .unwrap();
        assert_eq!(ids, vec!["100000", "100002"]);
    }

    #[test]
    fn a_database_from_before_checks_gains_the_routing_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.db");
        {
            // The schema as it was before `check_aba`, with one customer in it.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, fields TEXT NOT NULL,
                     token TEXT, account_type TEXT, account_last_4 TEXT, expiration_date TEXT,
                     check_token TEXT, check_last_4 TEXT,
                     updated_count INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO customers (customer_id, fields, check_last_4) VALUES ('C1', '{}', '6789');",
            )
            .unwrap();
        }
        let s = Store::open(Some(&path)).unwrap();
        let list = s.list().unwrap();
        assert_eq!(list[0].1.check_last4.as_deref(), Some("6789"));
        assert_eq!(list[0].1.check_aba, None);
        s.transaction(|tx| -> Result<_, StoreError> {
            let c = StoredCustomer {
                check_aba: Some("021000021".into()),
                ..Default::default()
            };
            Ok(put(tx, "C2", &c)?)
        })
        .unwrap();
        drop(s);
        let again = Store::open(Some(&path)).unwrap().list().unwrap();
        assert_eq!(again[1].1.check_aba.as_deref(), Some("021000021"));
    }
}
