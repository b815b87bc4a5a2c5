//! Short-lived secrets the API hands out besides its token: one-time sign-in codes for the
//! console, console sessions (the cookie's value), and one-time event-stream tickets.
//!
//! Only a hash of each secret is kept, so the table itself holds nothing a reader could
//! replay; each table is bounded (the entry closest to expiry makes room for a new one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

type Hash = [u8; 20];

fn hash(secret: &[u8]) -> Hash {
    Sha1::digest(secret).into()
}

/// One kind of secret: its lifetime, whether it is spent by use, and how many may be live.
pub(crate) struct Secrets {
    ttl: Duration,
    single_use: bool,
    cap: usize,
    live: Mutex<HashMap<Hash, Instant>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("ttl", &self.ttl)
            .field("single_use", &self.single_use)
            .field("live", &self.lock().len())
            .finish()
    }
}

impl Secrets {
    pub(crate) fn new(ttl: Duration, single_use: bool, cap: usize) -> Secrets {
        Secrets {
            ttl,
            single_use,
            cap: cap.max(1),
            live: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Instant>> {
        // Plain data: a panic elsewhere while holding the lock leaves it usable.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new secret (32 random bytes as 64 hex digits), valid for the lifetime.
    pub(crate) fn issue(&self) -> Zeroizing<String> {
        self.issue_at(Instant::now())
    }

    fn issue_at(&self, now: Instant) -> Zeroizing<String> {
        let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
        let secret = Zeroizing::new(hex::encode(*bytes));
        let mut live = self.lock();
        live.retain(|_, expires| *expires > now);
        while live.len() >= self.cap {
            let Some(soonest) = live.iter().min_by_key(|(_, e)| **e).map(|(h, _)| *h) else {
                break;
            };
            live.remove(&soonest);
        }
        live.insert(hash(secret.as_bytes()), now + self.ttl);
        secret
    }

    /// Whether `presented` is live; a single-use secret is spent by this call.
    pub(crate) fn accept(&self, presented: &[u8]) -> bool {
        self.accept_at(presented, Instant::now())
    }

    fn accept_at(&self, presented: &[u8], now: Instant) -> bool {
        let h = hash(presented);
        let mut live = self.lock();
        let ok = live.get(&h).is_some_and(|expires| *expires > now);
        if self.single_use || !ok {
            live.remove(&h);
        }
        ok
    }

    /// Forgets a secret (sign-out).
    pub(crate) fn revoke(&self, presented: &[u8]) {
        self.lock().remove(&hash(presented));
    }
}

/// The console's and kiosks' secrets together.
#[derive(Debug)]
pub(crate) struct Access {
    /// `cardlane console-url`'s codes: once, within a minute.
    pub(crate) codes: Secrets,
    /// Console sessions (the cookie): a working day.
    pub(crate) sessions: Secrets,
    /// `POST /v1/events/ticket`: opens one event stream, within 30 s.
    pub(crate) tickets: Secrets,
}

/// How long a sign-in code from `console-url` stays valid.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long an event-stream ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

impl Default for Access {
    fn default() -> Self {
        Access {
            codes: Secrets::new(CODE_TTL, true, 16),
            sessions: Secrets::new(SESSION_TTL, false, 64),
            tickets: Secrets::new(TICKET_TTL, true, 64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_secrets_work_once_and_expire() {
        let s = Secrets::new(Duration::from_secs(60), true, 4);
        let t0 = Instant::now();
        let a = s.issue_at(t0);
        assert_eq!(a.len(), 64);
        assert!(s.accept_at(a.as_bytes(), t0 + Duration::from_secs(59)));
        assert!(
            !s.accept_at(a.as_bytes(), t0 + Duration::from_secs(59)),
            "spent"
        );
        let b = s.issue_at(t0);
        assert!(
            !s.accept_at(b.as_bytes(), t0 + Duration::from_secs(60)),
            "expired"
        );
        assert!(!s.accept_at(b"", t0));
        assert!(!s.accept_at(b"0123", t0));
    }

    #[test]
    fn sessions_stay_until_revoked_and_the_table_is_bounded() {
        let s = Secrets::new(Duration::from_secs(100), false, 2);
        let t0 = Instant::now();
        let first = s.issue_at(t0);
        assert!(s.accept_at(first.as_bytes(), t0));
        assert!(s.accept_at(first.as_bytes(), t0), "a session is not spent");
        let second = s.issue_at(t0 + Duration::from_secs(1));
        // A third pushes out the one closest to expiry: the first.
        let third = s.issue_at(t0 + Duration::from_secs(2));
        assert!(!s.accept_at(first.as_bytes(), t0 + Duration::from_secs(3)));
        assert!(s.accept_at(second.as_bytes(), t0 + Duration::from_secs(3)));
        s.revoke(third.as_bytes());
        assert!(!s.accept_at(third.as_bytes(), t0 + Duration::from_secs(3)));
        assert!(!format!("{s:?}").contains(second.as_str()));
    }
}
