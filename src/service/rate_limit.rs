//! Per-key rate limits: a token bucket per API key, in memory in each process that serves the
//! API. A key may make `rate` requests a minute, in a burst of up to `rate` at once; each request
//! takes a token, and tokens come back at `rate / 60` a second.
//!
//! Per process on purpose: a check costs no round trip, and an outage of a shared store cannot
//! stop the API. With N API processes behind a balancer a key may make up to N × `rate` a minute;
//! set the key's limit with that in mind. (Hand-written rather than `governor`: its keyed limiter
//! has one quota for every key, and ours differ per key; the bucket is a few lines.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One key's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Take a token at `now` from a bucket of `rate` a minute: Ok, or how long until one is back.
    fn take(&mut self, rate: u32, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(rate.max(1));
        let per_second = capacity / 60.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        }
    }
}

/// Every key's bucket in this process.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimits {
    /// Count a request of `key_id` (limit `rate` a minute): Ok, or the whole seconds to wait
    /// (for `Retry-After`, at least 1).
    pub fn check(&self, key_id: &str, rate: u32) -> Result<(), u32> {
        self.check_at(key_id, rate, Instant::now())
    }

    fn check_at(&self, key_id: &str, rate: u32, now: Instant) -> Result<(), u32> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Only keys found in the database get a bucket, so the map is as large as the key table.
        let bucket = buckets.entry(key_id.to_string()).or_insert(Bucket { tokens: f64::from(rate.max(1)), at: now });
        bucket.take(rate, now).map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_a_burst_of_the_rate_then_refills_at_rate_per_minute() {
        let limits = RateLimits::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.check_at("k", 3, start), Ok(()));
        }
        // Three a minute: one token comes back every 20 seconds.
        assert_eq!(limits.check_at("k", 3, start), Err(20));
        assert_eq!(limits.check_at("k", 3, start + Duration::from_secs(15)), Err(5));
        assert_eq!(limits.check_at("k", 3, start + Duration::from_secs(20)), Ok(()));
        assert_eq!(limits.check_at("k", 3, start + Duration::from_secs(20)), Err(20));
        // Another key has its own bucket.
        assert_eq!(limits.check_at("other", 3, start), Ok(()));
        // A long pause refills only up to the rate.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limits.check_at("k", 3, later), Ok(()));
        }
        assert!(limits.check_at("k", 3, later).is_err());
    }

    #[test]
    fn the_default_rate_allows_fifty_a_second_steadily() {
        let limits = RateLimits::default();
        let start = Instant::now();
        for _ in 0..3000 {
            assert!(limits.check_at("k", 3000, start).is_ok());
        }
        assert_eq!(limits.check_at("k", 3000, start), Err(1), "never less than a second");
        assert!(limits.check_at("k", 3000, start + Duration::from_millis(20)).is_ok());
    }
}
