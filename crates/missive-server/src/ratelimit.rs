//! Per-app send quotas: calls per second (→ 429) and messages per minute (→ 403).
//!
//! Each is a token bucket: it holds up to the limit, refills continuously at limit per
//! period, and a call takes one token (a send to N users takes N message tokens). A bucket
//! rather than a fixed window, so a burst at a window edge cannot double the rate.
//!
//! [`SendQuotas`] applies both. Alone, a node keeps the buckets in memory. In a cluster with
//! `cluster.redis_url` the buckets live in Redis and one script takes from both atomically,
//! with Redis's clock, so the limits hold for the cluster as a whole: one round trip per send
//! call, and no coordination protocol of our own (docs/cluster.md says why Redis). If Redis
//! cannot be reached, each node falls back to its in-memory buckets — limits become per node
//! for that time — rather than refusing or accepting everything.

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

/// What the quotas say about a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaVerdict {
    Allowed,
    /// Over `limits.send_calls_per_second` (429).
    TooManyCalls,
    /// Over `limits.send_messages_per_minute` (403).
    TooManyMessages,
}

/// Both send quotas of every app.
pub struct SendQuotas {
    calls: Quota,
    messages: Quota,
    shared: Option<RedisQuotas>,
}

struct RedisQuotas {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    /// Key prefix: `{cluster.name}:quota`.
    prefix: String,
    calls_limit: u32,
    messages_limit: u32,
}

/// Takes one call token, then `n` message tokens, from two buckets (hash fields `tokens` and
/// `ts`), with Redis's own clock: 0 = allowed, 1 = calls refused, 2 = messages refused.
const TAKE: &str = r#"
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local function take(key, cap, per_ms, n)
  if cap <= 0 then return true end
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil or ts == nil then tokens = cap; ts = t end
  tokens = math.min(cap, tokens + math.max(0, t - ts) * per_ms)
  local ok = tokens >= n
  if ok then tokens = tokens - n end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(t))
  redis.call('PEXPIRE', key, math.ceil(cap / per_ms) + 1000)
  return ok
end
if not take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1) then return 1 end
if not take(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])) then return 2 end
return 0
"#;

impl SendQuotas {
    /// In-memory buckets: `calls` per second and `messages` per minute (0 disables either).
    pub fn local(calls: u32, messages: u32) -> SendQuotas {
        SendQuotas {
            calls: Quota::new(calls, Duration::from_secs(1)),
            messages: Quota::new(messages, Duration::from_secs(60)),
            shared: None,
        }
    }

    /// Buckets in Redis at `url`, shared by every node of cluster `name`.
    pub async fn redis(url: &str, name: &str, calls: u32, messages: u32) -> redis::RedisResult<SendQuotas> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        Ok(SendQuotas {
            shared: Some(RedisQuotas {
                conn,
                script: redis::Script::new(TAKE),
                prefix: format!("{name}:quota"),
                calls_limit: calls,
                messages_limit: messages,
            }),
            ..SendQuotas::local(calls, messages)
        })
    }

    /// Takes one call and `n` messages of `app`'s quotas, if both allow it.
    pub async fn check(&self, app: Uuid, n: u32) -> QuotaVerdict {
        if let Some(r) = &self.shared {
            // `{app}` is a Redis Cluster hash tag: both keys land in one slot.
            let calls = format!("{}:{{{app}}}:calls", r.prefix);
            let messages = format!("{}:{{{app}}}:messages", r.prefix);
            let mut conn = r.conn.clone();
            let result: redis::RedisResult<i64> = r
                .script
                .key(calls)
                .key(messages)
                .arg(r.calls_limit)
                .arg(f64::from(r.calls_limit) / 1000.0)
                .arg(r.messages_limit)
                .arg(f64::from(r.messages_limit) / 60_000.0)
                .arg(n)
                .invoke_async(&mut conn)
                .await;
            match result {
                Ok(0) => return QuotaVerdict::Allowed,
                Ok(1) => return QuotaVerdict::TooManyCalls,
                Ok(_) => return QuotaVerdict::TooManyMessages,
                Err(e) => tracing::warn!(%e, "Redis quota check failed; using this node's own buckets"),
            }
        }
        if !self.calls.try_take(app, 1) {
            QuotaVerdict::TooManyCalls
        } else if !self.messages.try_take(app, n) {
            QuotaVerdict::TooManyMessages
        } else {
            QuotaVerdict::Allowed
        }
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
