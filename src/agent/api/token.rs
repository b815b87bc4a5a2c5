//! The API's bearer token: kept in a file readable by its owner only, created with a random
//! value on first start, compared in constant time.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

/// The token. Debug prints `***`; memory is zeroed on drop.
pub struct ApiToken(Zeroizing<String>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    /// A token from text (trimmed). `None` if empty or not printable ASCII without spaces,
    /// which an `Authorization` header could not carry.
    pub fn new(text: &str) -> Option<ApiToken> {
        let t = text.trim();
        let ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| ApiToken(Zeroizing::new(t.to_string())))
    }

    /// 32 random bytes as 64 hex digits.
    pub fn random() -> ApiToken {
        let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
        ApiToken(Zeroizing::new(hex::encode(*bytes)))
    }

    /// The secret text, for writing the file or a client's header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time check of a presented token. Both sides are hashed first so that neither
    /// the content nor the length of the real token shows in the timing.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let a = Sha1::digest(self.0.as_bytes());
        let b = Sha1::digest(presented);
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("token file {path} is accessible to other users (mode {mode:04o}): chmod 600 it")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("token file {path} holds no usable token (printable ASCII, no spaces)")]
    Invalid { path: PathBuf },
    #[error("token file {path} holds a weak token: use at least {MIN_TOKEN_LEN} characters with {MIN_DISTINCT} different ones (delete the file and the agent writes a random one)")]
    Weak { path: PathBuf },
}

/// A token someone wrote by hand must still resist guessing: 32 characters (a 64-digit hex
/// token, as the agent writes, has 256 bits) with some variety in them.
pub const MIN_TOKEN_LEN: usize = 32;
pub const MIN_DISTINCT: usize = 8;

fn strong(t: &str) -> bool {
    let mut seen = [false; 256];
    for b in t.bytes() {
        seen[usize::from(b)] = true;
    }
    t.len() >= MIN_TOKEN_LEN && seen.iter().filter(|&&x| x).count() >= MIN_DISTINCT
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Io { .. } => "token-io",
            TokenError::TooOpen { .. } => "token-file-too-open",
            TokenError::Invalid { .. } => "token-invalid",
            TokenError::Weak { .. } => "token-weak",
        }
    }
}

fn io_err(path: &Path, e: std::io::Error) -> TokenError {
    TokenError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads the token at `path`, or creates the file (mode 0600, parent directory 0700 when it
/// has to be made) with a random token. A file that others can read or write is refused; a
/// group-readable one is accepted so that a kiosk's group may share it.
pub fn load_or_create(path: &Path) -> Result<ApiToken, TokenError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => return load(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io_err(parent, e))?;
    }
    let token = ApiToken::random();
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return load(path),
        Err(e) => return Err(io_err(path, e)),
    };
    // The mode above is filtered by the umask, which can only narrow it; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err(path, e))?;
    file.write_all(token.expose().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(path, e))?;
    Ok(token)
}

fn load(path: &Path) -> Result<ApiToken, TokenError> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(TokenError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io_err(path, e))?);
    let token = ApiToken::new(&text).ok_or_else(|| TokenError::Invalid {
        path: path.to_path_buf(),
    })?;
    if !strong(token.expose()) {
        return Err(TokenError::Weak {
            path: path.to_path_buf(),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_then_reads_back_the_same_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/api-token");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.expose().len(), 64);
        assert!(first.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let again = load_or_create(&path).unwrap();
        assert_eq!(again.expose(), first.expose());
        assert_ne!(ApiToken::random().expose(), first.expose());
    }

    #[test]
    fn refuses_world_readable_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok");
        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert_eq!(e.code(), "token-file-too-open");
        assert!(!e.to_string().contains("abc"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        // Private now, but three characters are guessable.
        let e = load_or_create(&path).unwrap_err();
        assert_eq!(e.code(), "token-weak");
        assert!(!e.to_string().contains("abc"));
        // 32 characters of one kind are too (a placeholder left in place).
        std::fs::write(&path, format!("{}\n", "x".repeat(40))).unwrap();
        assert_eq!(load_or_create(&path).unwrap_err().code(), "token-weak");
        let hand = "kiosk-7f3a9c1e-2b4d-4e8f-a6b5-0c9d8e7f6a5b";
        std::fs::write(&path, format!("{hand}\n")).unwrap();
        assert_eq!(load_or_create(&path).unwrap().expose(), hand);
        std::fs::write(&path, " \n").unwrap();
        assert_eq!(load_or_create(&path).unwrap_err().code(), "token-invalid");
    }

    #[test]
    fn verify_and_debug() {
        let t = ApiToken::new("s3cret\n").unwrap();
        assert!(t.verify(b"s3cret"));
        assert!(!t.verify(b"s3cre"));
        assert!(!t.verify(b"s3cret "));
        assert!(!t.verify(b""));
        assert_eq!(format!("{t:?}"), "ApiToken(***)");
        assert!(ApiToken::new("a b").is_none());
    }
}
