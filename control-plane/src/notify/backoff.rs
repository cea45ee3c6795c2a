//! Exponential backoff with jitter and a cap, for deliveries.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after the `attempts`-th failure in a row (1 = the first):
    /// doubling from `first` up to `max`, then scaled by `jitter` in
    /// [0.5, 1] so that destinations failing together do not retry in step.
    pub fn delay(&self, attempts: i64, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let base = self.first.saturating_mul(1u32 << doublings).min(self.max);
        base.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// [`Backoff::delay`] with random jitter.
    pub fn random_delay(&self, attempts: i64) -> Duration {
        self.delay(attempts, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_below() {
        let b = Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay(4, 1.0), Duration::from_secs(8));
        assert_eq!(b.delay(5, 1.0), Duration::from_secs(10));
        assert_eq!(b.delay(1_000, 1.0), Duration::from_secs(10));
        assert_eq!(b.delay(4, 0.0), Duration::from_secs(4));
    }
}
