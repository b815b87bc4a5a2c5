//! Retry delays: exponential from `base`, capped at `max`, with "equal jitter" (a random
//! factor in [0.5, 1]) so lanes that lost the network together do not retry in lockstep.
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Delay before the next try after `attempts` tries: nominal `base·2^(attempts-1)` capped
    /// at `max`, scaled by `0.5 + jitter/2` (`jitter` in [0, 1], clamped).
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let nominal = self.nominal(attempts);
        let factor = 0.5 + jitter.clamp(0.0, 1.0) / 2.0;
        nominal.mul_f64(factor)
    }

    /// The un-jittered delay.
    pub fn nominal(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(40);
        self.base
            .checked_mul(1u32.checked_shl(shift.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }

    pub fn delay_random(&self, attempts: u32) -> Duration {
        self.delay(attempts, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        let b = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(10),
        };
        // Nominal: 0.5, 1, 2, 4, 8, then capped at 10 s.
        let want = [500, 1000, 2000, 4000, 8000, 10_000, 10_000];
        for (i, ms) in want.iter().enumerate() {
            let attempts = i as u32 + 1;
            assert_eq!(b.nominal(attempts), Duration::from_millis(*ms));
            assert_eq!(b.delay(attempts, 1.0), Duration::from_millis(*ms));
            assert_eq!(b.delay(attempts, 0.0), Duration::from_millis(ms / 2));
        }
        assert_eq!(b.nominal(0), Duration::from_millis(500));
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(10));
        assert_eq!(
            b.delay(3, 7.0),
            Duration::from_millis(2000),
            "jitter clamped"
        );
        for _ in 0..100 {
            let d = b.delay_random(4);
            assert!(d >= Duration::from_millis(2000) && d <= Duration::from_millis(4000));
        }
    }
}
