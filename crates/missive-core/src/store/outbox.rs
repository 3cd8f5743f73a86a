//! The notify outbox: callbacks and pushes waiting to be sent, and callbacks that ran out of
//! attempts (exception storage).
//!
//! Three guarantees, the same on every backend:
//! - **nothing lost**: entries a message causes are written in the transaction that commits
//!   the message (`EnqueueRequest::outbox`), so once a sender is answered its callbacks and
//!   pushes are durable too; entries not tied to a message go through
//!   [`OutboxStore::add_outbox`];
//! - **one sender at a time**: [`OutboxStore::claim_outbox`] leases entries to one node. A lease
//!   is the entry's `due_at` moved to the lease's end, so the entries of a node that died are
//!   simply due again when their lease runs out: delivery is at least once;
//! - **fencing**: every claim gives the entry a fresh random token, and completing,
//!   rescheduling or giving up acts only while the entry still carries it, so a node whose
//!   lease ran out cannot undo the work of the node that took over.
//!
//! Entries are unique per (app, kind, `dedup_key`); a second insert with the same key is
//! ignored, which is what makes a push "once per message and recipient" and a repeated
//! exception retry harmless. Payloads are JSON the store never looks into.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::StoreResult;

/// What an outbox entry delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxKind {
    /// A post-send callback: `payload` is the unsigned body, `rule_id` its rule.
    Callback,
    /// An offline push: `payload` names the event and the recipient.
    Push,
}

impl OutboxKind {
    /// The number stored in the `kind` column.
    pub fn code(self) -> i64 {
        match self {
            OutboxKind::Callback => 1,
            OutboxKind::Push => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<OutboxKind> {
        match code {
            1 => Some(OutboxKind::Callback),
            2 => Some(OutboxKind::Push),
            _ => None,
        }
    }
}

/// An entry to add.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOutboxEntry {
    pub app_id: Uuid,
    pub kind: OutboxKind,
    /// The callback rule (callbacks only).
    pub rule_id: Option<String>,
    /// Unique per app and kind; a second entry with the same key is ignored.
    pub dedup_key: String,
    pub payload: Value,
    /// Unix ms when it may first be sent (normally now).
    pub due_at: i64,
    /// Send to this URL instead of the rule's (`callbacks/storage/retry`'s `targetUrl`).
    pub url_override: Option<String>,
    /// The exception record this entry re-sends; deleted when the entry is delivered.
    pub exception_id: Option<i64>,
}

/// A claimed entry.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    /// This claim's fencing token.
    pub claim: i64,
    pub app_id: Uuid,
    pub kind: OutboxKind,
    pub rule_id: Option<String>,
    pub dedup_key: String,
    pub payload: Value,
    /// Attempts made by earlier claims.
    pub attempts: u32,
    pub url_override: Option<String>,
    pub exception_id: Option<i64>,
    /// Unix ms the entry was written.
    pub created: i64,
}

/// How full the outbox is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Due now and not leased.
    pub due: u64,
    /// Waiting for a later time (backoff, a ban).
    pub scheduled: u64,
    /// Leased to a node right now.
    pub leased: u64,
    /// `created` of the oldest due entry, if any.
    pub oldest_due_created: Option<i64>,
}

/// A callback that ran out of attempts, for exception storage.
#[derive(Clone, Debug, PartialEq)]
pub struct NewException {
    pub app_id: Uuid,
    pub rule_id: String,
    /// The 10-minute slice it belongs to (`yyyyMMddHHmm`).
    pub date_key: String,
    pub target_url: String,
    /// The unsigned callback body.
    pub payload: Value,
    /// The last failure, for operators.
    pub reason: String,
    pub failed_at: i64,
}

/// One slice of exception storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionSlice {
    pub date_key: String,
    /// Records in the slice.
    pub size: u64,
    /// How many times the slice was re-sent.
    pub retries: u32,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Adds entries not caused by a message commit. Duplicate keys are ignored.
    async fn add_outbox(&self, entries: Vec<NewOutboxEntry>) -> StoreResult<()>;

    /// Leases up to `limit` entries due at `now` to `node` until `now + lease_ms`, oldest due
    /// first, each with a fresh claim token. Concurrent claimers (other nodes) never get the
    /// same entry while its lease runs.
    async fn claim_outbox(&self, node: &str, limit: u32, lease_ms: i64, now: i64) -> StoreResult<Vec<OutboxEntry>>;

    /// Delivered: deletes each `(id, claim)` still holding its claim, and the exception
    /// record an entry re-sent. Returns how many were deleted.
    async fn complete_outbox(&self, done: &[(i64, i64)]) -> StoreResult<u64>;

    /// Not yet: releases the lease; the entry is due again at `due_at` with `attempts` made.
    /// `false` if the claim was lost.
    async fn reschedule_outbox(
        &self,
        id: i64,
        claim: i64,
        due_at: i64,
        attempts: u32,
        last_error: &str,
    ) -> StoreResult<bool>;

    /// Out of attempts: deletes the entry and, with `exception`, records it — unless the
    /// entry itself re-sent an exception record, which then stays as it is. One transaction.
    /// `false` if the claim was lost.
    async fn give_up_outbox(&self, id: i64, claim: i64, exception: Option<NewException>) -> StoreResult<bool>;

    async fn outbox_depth(&self, now: i64) -> StoreResult<OutboxDepth>;

    /// Entries per app, for the per-app bound.
    async fn outbox_counts(&self) -> StoreResult<Vec<(Uuid, u64)>>;

    /// The app's exception slices, oldest first.
    async fn exception_slices(&self, app: Uuid) -> StoreResult<Vec<ExceptionSlice>>;

    /// Re-sends every record of a slice (a new outbox entry each, due at `now`, to
    /// `target_url` when given) and counts one retry of the slice. Returns how many records
    /// the slice has (0: no such slice). Records already being re-sent are not added twice.
    async fn retry_exception_slice(
        &self,
        app: Uuid,
        date_key: &str,
        target_url: Option<&str>,
        now: i64,
    ) -> StoreResult<u64>;

    /// Deletes records that failed before `older_than`. Returns how many.
    async fn sweep_exceptions(&self, older_than: i64) -> StoreResult<u64>;
}
