//! Retry policy: capped exponential backoff with jitter.

use rand::Rng;
use std::time::Duration;

/// How often and how patiently the client retries lock conflicts (and, for reads, transport
/// failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first; 1 disables retries.
    pub attempts: u32,
    /// Backoff before the first retry; doubles for each further retry.
    pub base: Duration,
    /// Upper bound of a single backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 100 ms doubling up to 5 s: at most about 3.1 s of backoff in total
    /// (100 + 200 + 400 + 800 + 1600 ms, less with jitter).
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff ceiling before retry number `retry` (1 for the first retry):
    /// `min(cap, base * 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << shift)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The backoff before retry number `retry`: a random duration between half the
    /// [`ceiling`](Self::ceiling) and the ceiling ("equal jitter"), so that agents that hit
    /// the same lock do not retry in lock-step.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            rand::rng().random_range(0..=spread)
        };
        half + Duration::from_micros(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(400));
        assert_eq!(p.ceiling(6), Duration::from_millis(3200));
        assert_eq!(p.ceiling(7), Duration::from_secs(5));
        assert_eq!(p.ceiling(1000), Duration::from_secs(5));
    }

    #[test]
    fn delay_is_jittered_within_bounds() {
        let p = RetryPolicy::default();
        let mut seen = std::collections::BTreeSet::new();
        for retry in 1..=10 {
            for _ in 0..50 {
                let d = p.delay(retry);
                let c = p.ceiling(retry);
                assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
                seen.insert(d);
            }
        }
        assert!(seen.len() > 10, "no jitter: {seen:?}");
        let zero = RetryPolicy {
            attempts: 3,
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
    }
}
