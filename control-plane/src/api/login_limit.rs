//! Login rate limiting: a token bucket of failed attempts per source address
//! and username, so guessing a password is slow while an admin who mistypes
//! once or twice is never locked out, and a success forgets her failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed attempts a key may make in a burst.
const BURST: f64 = 5.0;
/// One more failed attempt is allowed per this long.
const REFILL_EVERY: Duration = Duration::from_secs(12);
/// Past this many tracked keys, full buckets are dropped (they carry no state).
const MAX_KEYS: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    address: Option<IpAddr>,
    username: String,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> Self {
        let gained =
            now.saturating_duration_since(self.at).as_secs_f64() / REFILL_EVERY.as_secs_f64();
        Self {
            tokens: (self.tokens + gained).min(BURST),
            at: now,
        }
    }
}

/// Shared by every request of one router (cheap to clone).
#[derive(Clone, Default)]
pub struct LoginLimiter {
    buckets: Arc<Mutex<HashMap<Key, Bucket>>>,
}

impl LoginLimiter {
    fn key(address: Option<IpAddr>, username: &str) -> Key {
        Key {
            address,
            username: username.to_lowercase(),
        }
    }

    /// `Err(wait)` when this address has used up its failed attempts for
    /// this username; the caller answers 429 and checks no password.
    pub fn check(&self, address: Option<IpAddr>, username: &str) -> Result<(), Duration> {
        self.check_at(address, username, Instant::now())
    }

    fn check_at(
        &self,
        address: Option<IpAddr>,
        username: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        let buckets = self.buckets.lock().expect("login limiter poisoned");
        match buckets.get(&Self::key(address, username)) {
            Some(b) => {
                let b = b.refilled(now);
                if b.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(REFILL_EVERY.mul_f64(1.0 - b.tokens))
                }
            }
            None => Ok(()),
        }
    }

    pub fn failed(&self, address: Option<IpAddr>, username: &str) {
        self.failed_at(address, username, Instant::now());
    }

    fn failed_at(&self, address: Option<IpAddr>, username: &str, now: Instant) {
        let mut buckets = self.buckets.lock().expect("login limiter poisoned");
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, b| b.refilled(now).tokens < BURST);
        }
        let bucket = buckets
            .entry(Self::key(address, username))
            .or_insert(Bucket {
                tokens: BURST,
                at: now,
            });
        let b = bucket.refilled(now);
        *bucket = Bucket {
            tokens: (b.tokens - 1.0).max(0.0),
            at: now,
        };
    }

    pub fn succeeded(&self, address: Option<IpAddr>, username: &str) {
        let mut buckets = self.buckets.lock().expect("login limiter poisoned");
        buckets.remove(&Self::key(address, username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_wait() {
        let limiter = LoginLimiter::default();
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.check_at(ip, "root", t0).is_ok());
            limiter.failed_at(ip, "root", t0);
        }
        let wait = limiter.check_at(ip, "root", t0).unwrap_err();
        assert!(wait <= REFILL_EVERY && wait > Duration::ZERO);
        // Another address, or another username, is not affected.
        assert!(
            limiter
                .check_at(Some(IpAddr::from([192, 0, 2, 2])), "root", t0)
                .is_ok()
        );
        assert!(limiter.check_at(ip, "other", t0).is_ok());
        // Case does not give more attempts.
        assert!(limiter.check_at(ip, "ROOT", t0).is_err());
        // One attempt comes back after the refill period.
        assert!(limiter.check_at(ip, "root", t0 + REFILL_EVERY).is_ok());
    }

    #[test]
    fn success_forgets_failures() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.failed_at(None, "root", t0);
        }
        limiter.succeeded(None, "root");
        assert!(limiter.check_at(None, "root", t0).is_ok());
    }
}
