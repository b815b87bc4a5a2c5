//! Where the queue's AES-256 key comes from: a 0600 key file created on first use, the
//! `CARDLANE_QUEUE_KEY` environment variable (hex), or bytes given by the caller.
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroizing;

use super::error::QueueError;

/// Environment variable holding the key as 64 hex digits.
pub const KEY_ENV: &str = "CARDLANE_QUEUE_KEY";

/// A 256-bit key; zeroed on drop, never printed.
#[derive(Clone)]
pub struct QueueKey(Zeroizing<[u8; 32]>);

impl QueueKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        QueueKey(Zeroizing::new(bytes))
    }

    /// 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, QueueError> {
        let mut out = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), out.as_mut_slice())
            .map_err(|_| QueueError::Key("expected 64 hex digits".into()))?;
        Ok(QueueKey(out))
    }

    pub fn random() -> Self {
        let mut out = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(out.as_mut_slice());
        QueueKey(out)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for QueueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueKey(***)")
    }
}

/// How [`super::Queue::open`] gets its key.
#[derive(Debug, Clone, Default)]
pub enum KeySource {
    /// `CARDLANE_QUEUE_KEY` if set, else the file `<db>.key` next to the database.
    #[default]
    Auto,
    /// `CARDLANE_QUEUE_KEY` only.
    Env,
    /// This key file; created (0600, random key) when the queue is new.
    File(PathBuf),
    /// The caller's key (tests, or an agent that keeps the key elsewhere).
    Key(QueueKey),
    /// No key: inspection only (`list`, `stats`, purges). Enqueue and claim fail with `NoKey`.
    Absent,
}

/// The default key file for a database: `<db>.key`.
pub(crate) fn default_key_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Resolves the source. `may_create`: the queue is new, so a missing key file is created.
pub(crate) fn resolve(
    source: &KeySource,
    db: &Path,
    may_create: bool,
) -> Result<Option<QueueKey>, QueueError> {
    match source {
        KeySource::Absent => Ok(None),
        KeySource::Key(k) => Ok(Some(k.clone())),
        KeySource::Env => from_env()?
            .map(Some)
            .ok_or_else(|| QueueError::Key(format!("{KEY_ENV} is not set"))),
        KeySource::File(path) => from_file(path, may_create).map(Some),
        KeySource::Auto => match from_env()? {
            Some(k) => Ok(Some(k)),
            None => from_file(&default_key_path(db), may_create).map(Some),
        },
    }
}

fn from_env() -> Result<Option<QueueKey>, QueueError> {
    match std::env::var(KEY_ENV) {
        Ok(v) => QueueKey::from_hex(&Zeroizing::new(v))
            .map(Some)
            .map_err(|_| QueueError::Key(format!("{KEY_ENV}: expected 64 hex digits"))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(QueueError::Key(format!("{KEY_ENV}: not text")))
        }
    }
}

fn from_file(path: &Path, may_create: bool) -> Result<QueueKey, QueueError> {
    match fs::metadata(path) {
        Ok(meta) => {
            // A key readable by others defeats encryption at rest: refuse rather than use it.
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(QueueError::Key(format!(
                    "key file {} is accessible to group/others (want mode 0600)",
                    path.display()
                )));
            }
            read_key_file(path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !may_create {
                // Creating a fresh key for a queue that already holds records would make them
                // unreadable; say so instead.
                return Err(QueueError::Key(format!(
                    "key file {} is missing for an existing queue",
                    path.display()
                )));
            }
            create_key_file(path)
        }
        Err(e) => Err(QueueError::Key(format!("key file {}: {e}", path.display()))),
    }
}

fn read_key_file(path: &Path) -> Result<QueueKey, QueueError> {
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|e| QueueError::Key(format!("key file {}: {e}", path.display())))?,
    );
    QueueKey::from_hex(&text)
        .map_err(|_| QueueError::Key(format!("key file {}: malformed", path.display())))
}

/// Writes a random key to a private temporary file, fsyncs it, then links it into place so a
/// crash never leaves a half-written key and two processes never overwrite each other's key.
fn create_key_file(path: &Path) -> Result<QueueKey, QueueError> {
    let key = QueueKey::random();
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let io =
        |e: std::io::Error| QueueError::Key(format!("creating key file {}: {e}", path.display()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let text = Zeroizing::new(hex::encode(key.bytes()));
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    let _ = fs::remove_file(&tmp);
    write().map_err(io)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(key)
        }
        // Another process won the race: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = QueueKey::from_bytes([0xAB; 32]);
        assert_eq!(format!("{k:?}"), "QueueKey(***)");
        assert!(!format!("{:?}", KeySource::Key(k)).contains("ab"));
    }

    #[test]
    fn hex_parsing() {
        let k = QueueKey::from_hex(&format!(" {}\n", "0f".repeat(32))).unwrap();
        assert_eq!(k.bytes(), &[0x0f; 32]);
        assert_eq!(
            QueueKey::from_hex("abcd").unwrap_err().code(),
            "key-unusable"
        );
        assert!(QueueKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn key_file_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.key");
        assert!(
            from_file(&p, false).is_err(),
            "no silent creation for existing queues"
        );
        let k1 = from_file(&p, true).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = from_file(&p, false).unwrap();
        assert_eq!(k1.bytes(), k2.bytes());
        // The file holds the key as hex, which is what CARDLANE_QUEUE_KEY also takes.
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.trim(), hex::encode(k1.bytes()));
    }

    #[test]
    fn loose_key_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.key");
        fs::write(&p, "00".repeat(32)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let err = from_file(&p, false).unwrap_err();
        assert_eq!(err.code(), "key-unusable");
        assert!(!err.to_string().contains(&"00".repeat(32)));
    }
}
