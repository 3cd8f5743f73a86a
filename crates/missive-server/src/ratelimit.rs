//! Per-app send quotas: calls per second (→ 429) and messages per minute (→ 403).
//!
//! Each is a token bucket: it holds up to the limit, refills continuously at limit per
//! period, and a call takes one token (a send to N users takes N message tokens). A bucket
//! rather than a fixed window, so a burst at a window edge cannot double the rate. Counts are
//! per node: in a cluster each node enforces its share.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

/// One token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes `n` tokens if all are available; refills first.
    fn take(&mut self, n: f64, capacity: f64, per_sec: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.last = now;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// A keyed family of buckets sharing one limit.
#[derive(Debug)]
pub struct Quota {
    capacity: f64,
    per_sec: f64,
    /// A std `Mutex` per bucket: the critical section is arithmetic, never an await.
    buckets: DashMap<Uuid, Mutex<Bucket>>,
}

impl Quota {
    /// `limit` tokens per `period`; `limit == 0` disables the quota.
    pub fn new(limit: u32, period: Duration) -> Quota {
        Quota { capacity: f64::from(limit), per_sec: f64::from(limit) / period.as_secs_f64(), buckets: DashMap::new() }
    }

    /// Whether `app` may spend `n` more; spends them if so.
    pub fn try_take(&self, app: Uuid, n: u32) -> bool {
        if self.capacity == 0.0 {
            return true;
        }
        let now = Instant::now();
        let entry = self.buckets.entry(app).or_insert_with(|| Mutex::new(Bucket { tokens: self.capacity, last: now }));
        let mut bucket = entry.lock().unwrap_or_else(|e| e.into_inner());
        bucket.take(f64::from(n), self.capacity, self.per_sec, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_limit_then_refuses_then_refills() {
        let mut b = Bucket { tokens: 3.0, last: Instant::now() };
        let t0 = b.last;
        assert!(b.take(1.0, 3.0, 3.0, t0));
        assert!(b.take(2.0, 3.0, 3.0, t0));
        assert!(!b.take(1.0, 3.0, 3.0, t0));
        assert!(b.take(1.0, 3.0, 3.0, t0 + Duration::from_millis(400)));
    }

    #[test]
    fn quota_counts_each_app_separately_and_zero_disables() {
        let q = Quota::new(2, Duration::from_secs(3600));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(q.try_take(a, 2));
        assert!(!q.try_take(a, 1));
        assert!(q.try_take(b, 1));
        assert!(Quota::new(0, Duration::from_secs(1)).try_take(a, 1_000_000));
    }
}
