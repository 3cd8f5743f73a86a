//! What an operator sees of a running server: Prometheus metrics ([`metrics`]), logs as text
//! or JSON lines ([`logs`]), and the request id that ties together the log lines of one REST
//! call or one WebSocket session ([`RequestIds`], applied by `http::observe`).
//!
//! Nothing here is global: each server (tests run many in one process) has its own metrics
//! registry, reached through `AppState::telemetry`. Only the log subscriber is process-wide,
//! installed once by `main`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use missive_core::model::QueuedMessage;
use missive_core::store::CommitListener;

use crate::fanout::Fanout;

pub mod logs;
pub mod metrics;
mod process;

pub use self::metrics::{Metrics, Sampled};

/// The server's telemetry, shared by every handler and session.
pub struct Telemetry {
    pub metrics: Metrics,
    pub request_ids: RequestIds,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        Telemetry { metrics: Metrics::new(), request_ids: RequestIds::new() }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

/// The store's commit listener: the fan-out, with every group commit counted on the way
/// (messages committed, batch size, fsync time).
pub struct MeteredCommits {
    fanout: Arc<dyn Fanout>,
    metrics: Metrics,
}

impl MeteredCommits {
    pub fn new(fanout: Arc<dyn Fanout>, metrics: Metrics) -> MeteredCommits {
        MeteredCommits { fanout, metrics }
    }
}

impl CommitListener for MeteredCommits {
    fn committed(&self, messages: &[Arc<QueuedMessage>]) {
        self.fanout.committed(messages);
    }

    fn removed(&self, message: &QueuedMessage) {
        self.fanout.removed(message);
    }

    fn batch_committed(&self, ops: usize, messages: u64, took: Duration) {
        self.metrics.committed(ops, messages, took);
    }
}

/// Request ids for calls that arrive without one: a random per-process prefix and a
/// counter, so an id costs an atomic increment (not a syscall for randomness) and ids of
/// different processes or restarts do not collide in practice.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        let mut raw = [0u8; 4];
        // Without randomness the prefix is the time: still distinct across restarts.
        let prefix = match getrandom::fill(&mut raw) {
            Ok(()) => u32::from_le_bytes(raw),
            Err(_) => missive_core::id::now_ms() as u32,
        };
        RequestIds { prefix, next: AtomicU64::new(1) }
    }

    /// A fresh id: 8 hex digits of prefix, then the counter in hex.
    pub fn next(&self) -> String {
        format!("{:08x}{:08x}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A client's `X-Request-Id`, if it is safe to log and echo: 1–64 characters out of
    /// letters, digits and `-_.:`. Anything else is replaced by a fresh id.
    pub fn accept(given: &str) -> Option<&str> {
        let ok = (1..=64).contains(&given.len())
            && given.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then_some(given)
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_client_ids_are_checked() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_eq!(RequestIds::accept("req-42.a:b_C"), Some("req-42.a:b_C"));
        assert_eq!(RequestIds::accept(""), None);
        assert_eq!(RequestIds::accept("a b"), None);
        assert_eq!(RequestIds::accept("x\ny"), None);
        assert_eq!(RequestIds::accept(&"a".repeat(65)), None);
    }
}
