//! One process per queue file: an exclusive `flock` on `FILE.lock` beside it, holding the
//! holder's pid. Without it, a second process's start-up recovery takes over the first one's
//! in-flight rows and both send the same records at once.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::QueueError;

/// Held while alive; the lock goes with the process (or when dropped). The lock file itself
/// stays: removing it would let a third process lock a different inode.
#[derive(Debug)]
pub struct QueueLock {
    _file: File,
    path: PathBuf,
}

/// `queue.db` → `queue.db.lock`.
pub fn lock_path(queue: &Path) -> PathBuf {
    let mut name = queue.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl QueueLock {
    /// Takes the lock of `queue` without waiting; [`QueueError::Locked`] names the holder.
    pub fn acquire(queue: &Path) -> Result<QueueLock, QueueError> {
        let path = lock_path(queue);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                // Best effort: the holder writes its pid right after locking.
                let _ = file.read_to_string(&mut text);
                return Err(QueueError::Locked {
                    path: queue.display().to_string(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(QueueLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q.db");
        let held = QueueLock::acquire(&q).unwrap();
        assert_eq!(held.path(), dir.path().join("q.db.lock"));
        // flock locks belong to the open file: a second open in this process conflicts too.
        match QueueLock::acquire(&q) {
            Err(QueueError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("want Locked, got {other:?}"),
        }
        drop(held);
        let again = QueueLock::acquire(&q).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}
