//! Counters of callbacks, pre-send checks and pushes, and the outbox's depth: plain atomics
//! the dispatcher and the send path bump, read whole by [`NotifyMetrics::snapshot`] for
//! whatever exports them (a `/metrics` endpoint, logs, tests).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Live counters (monotonic) and gauges (last observed).
#[derive(Debug, Default)]
pub struct NotifyMetrics {
    pub callbacks_delivered: AtomicU64,
    /// Attempts that failed (each attempt counts, Easemob's immediate retry included).
    pub callbacks_failed: AtomicU64,
    /// Callbacks put back in the outbox for a later attempt (backoff, a ban waited out).
    pub callbacks_retried: AtomicU64,
    /// Callbacks given up on and not kept (out of attempts, banned, rule removed).
    pub callbacks_dropped: AtomicU64,
    /// Callbacks given up on and kept in exception storage.
    pub callbacks_exceptions: AtomicU64,
    /// Bans this node started.
    pub callback_bans: AtomicU64,
    pub presend_passed: AtomicU64,
    pub presend_blocked: AtomicU64,
    pub pushes_delivered: AtomicU64,
    pub pushes_retried: AtomicU64,
    /// Rejected by the provider, out of attempts, or no provider left.
    pub pushes_dropped: AtomicU64,
    /// A provider said the device token is dead; the binding was removed.
    pub pushes_unregistered: AtomicU64,
    /// Not sent by the recipient's settings (do-not-disturb, muted group) at send time.
    pub pushes_skipped: AtomicU64,
    /// Entries not written because their app's outbox was full (`max_outbox_per_app`).
    pub outbox_dropped_full: AtomicU64,
    /// Gauges, refreshed about once a second: entries due and not leased, waiting for a
    /// later time, leased to a node.
    pub outbox_due: AtomicU64,
    pub outbox_scheduled: AtomicU64,
    pub outbox_leased: AtomicU64,
    /// Age in ms of the oldest due entry (0 when none is due).
    pub outbox_oldest_due_ms: AtomicI64,
}

/// One reading of every counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NotifySnapshot {
    pub callbacks_delivered: u64,
    pub callbacks_failed: u64,
    pub callbacks_retried: u64,
    pub callbacks_dropped: u64,
    pub callbacks_exceptions: u64,
    pub callback_bans: u64,
    pub presend_passed: u64,
    pub presend_blocked: u64,
    pub pushes_delivered: u64,
    pub pushes_retried: u64,
    pub pushes_dropped: u64,
    pub pushes_unregistered: u64,
    pub pushes_skipped: u64,
    pub outbox_dropped_full: u64,
    pub outbox_due: u64,
    pub outbox_scheduled: u64,
    pub outbox_leased: u64,
    pub outbox_oldest_due_ms: i64,
}

impl NotifyMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> NotifySnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NotifySnapshot {
            callbacks_delivered: get(&self.callbacks_delivered),
            callbacks_failed: get(&self.callbacks_failed),
            callbacks_retried: get(&self.callbacks_retried),
            callbacks_dropped: get(&self.callbacks_dropped),
            callbacks_exceptions: get(&self.callbacks_exceptions),
            callback_bans: get(&self.callback_bans),
            presend_passed: get(&self.presend_passed),
            presend_blocked: get(&self.presend_blocked),
            pushes_delivered: get(&self.pushes_delivered),
            pushes_retried: get(&self.pushes_retried),
            pushes_dropped: get(&self.pushes_dropped),
            pushes_unregistered: get(&self.pushes_unregistered),
            pushes_skipped: get(&self.pushes_skipped),
            outbox_dropped_full: get(&self.outbox_dropped_full),
            outbox_due: get(&self.outbox_due),
            outbox_scheduled: get(&self.outbox_scheduled),
            outbox_leased: get(&self.outbox_leased),
            outbox_oldest_due_ms: self.outbox_oldest_due_ms.load(Ordering::Relaxed),
        }
    }
}
