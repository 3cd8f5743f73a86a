//! The durable state callbacks and pushes need, as traits for the server's storage backends.
//!
//! Nothing here is implemented in this crate: the SQLite and PostgreSQL backends implement
//! these traits beside the message store (tables and SQL in `docs/callbacks.md` and the
//! issue 15 hand-off). Methods are named for what they mean; every one that returns `Ok`
//! after a write has made it durable.
//!
//! The rules the backends must keep:
//! - **no lost callback**: outbox entries caused by a message are written in the same
//!   transaction as the message (the message store's commit takes them along); entries made
//!   later (`storage/retry`) go through [`OutboxStore::enqueue`];
//! - **one sender per entry**: [`OutboxStore::claim`] hands an entry to one node at a time,
//!   under a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: its single writer). An
//!   entry whose node died is claimable again when the lease runs out, so delivery is at
//!   least once; receivers de-duplicate on `callId`;
//! - **fencing**: every claim carries a fresh token; `complete`, `reschedule` and
//!   `give_up` act only if the entry still carries that token, so a node that lost its lease
//!   cannot undo the work of the node that took over.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use crate::callback::CallbackRule;
use crate::callback::exceptions::SliceSummary;
use crate::callback::policy::Ban;
use crate::presend::PreSendRule;
use crate::push::DeviceBinding;
use crate::push::provider::ProviderConfig;

/// Storage failures callers act on; everything else is `Backend`.
#[derive(Debug, thiserror::Error)]
pub enum NotifyStoreError {
    /// A uniqueness rule was violated; names the rule (`"callback rule name"`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type NotifyResult<T> = Result<T, NotifyStoreError>;

/// What an outbox entry delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxKind {
    /// A post-send callback: `payload` is the unsigned §6.3 body, `rule_id` its rule.
    Callback,
    /// An offline push: `payload` is `{"event": MessageEvent, "user": recipient}`; the
    /// dispatcher builds the notification when it sends (settings as they are then).
    Push,
}

/// An entry to add.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOutboxEntry {
    pub app_id: Uuid,
    pub kind: OutboxKind,
    /// The callback rule (callbacks only).
    pub rule_id: Option<String>,
    /// Unique per app and kind: `{rule_id}/{event}/{msg_id}[/{recipient}]` for callbacks,
    /// `{msg_id}/{recipient}` for pushes. A second insert with the same key is ignored, which
    /// is what makes pushes "de-duplicated per message".
    pub dedup_key: String,
    pub payload: Value,
    /// Unix ms when it may first be sent (normally now).
    pub due_at: i64,
    /// Re-send to this URL instead of the rule's (`storage/retry`'s `targetUrl`).
    pub url_override: Option<String>,
    /// The exception record this entry re-sends: deleted when the entry is delivered.
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
    /// Unix ms the entry was first written (its age, for metrics).
    pub created: i64,
}

/// How full the outbox is, for `/metrics` and the admission decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Entries due now and not leased.
    pub due: u64,
    /// Entries waiting for a later time (backoff, a ban).
    pub scheduled: u64,
    /// Entries leased to a node right now.
    pub leased: u64,
    /// Unix ms of the oldest due entry's `created`, if any.
    pub oldest_due_created: Option<i64>,
}

/// A callback that ran out of attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct NewException {
    pub app_id: Uuid,
    pub rule_id: String,
    /// The 10-minute slice (`callback::exceptions::date_key` of the failure time).
    pub date_key: String,
    pub target_url: String,
    pub payload: Value,
    /// The last failure, for operators.
    pub reason: String,
    pub failed_at: i64,
}

/// The callback and push outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Adds entries not tied to a message commit (message-caused entries ride in the
    /// message store's commit). Duplicate `dedup_key`s are ignored.
    async fn enqueue(&self, entries: &[NewOutboxEntry]) -> NotifyResult<()>;

    /// Leases up to `limit` due entries to `node` until `now + lease_ms`, oldest due first,
    /// with a fresh claim token. A lease is `due_at` moved to the lease's end, so "due"
    /// (`due_at <= now`) also covers entries whose node died. Banned rules are not skipped
    /// here: the dispatcher applies the ban through `callback::policy` (wait it out or give
    /// up), so the rule lives in one place.
    async fn claim(&self, node: &str, limit: u32, lease_ms: i64, now: i64) -> NotifyResult<Vec<OutboxEntry>>;

    /// Delivered: deletes the entry (and its exception record, if it re-sent one). `false`
    /// if the claim was lost.
    async fn complete(&self, id: i64, claim: i64) -> NotifyResult<bool>;

    /// Not yet: releases the lease and makes the entry due at `due_at` with the new attempt
    /// count and last error.
    async fn reschedule(&self, id: i64, claim: i64, due_at: i64, attempts: u32, last_error: &str)
    -> NotifyResult<bool>;

    /// Out of attempts: deletes the entry and, if `exception` is given (and the entry did
    /// not itself re-send an exception), inserts it, in one transaction.
    async fn give_up(&self, id: i64, claim: i64, exception: Option<NewException>) -> NotifyResult<bool>;

    async fn depth(&self, now: i64) -> NotifyResult<OutboxDepth>;
}

/// Exception storage behind `callbacks/storage/info` and `callbacks/storage/retry`.
#[async_trait]
pub trait ExceptionStore: Send + Sync {
    /// One summary per date key of the app, oldest first.
    async fn exception_slices(&self, app_id: Uuid) -> NotifyResult<Vec<SliceSummary>>;

    /// Re-enqueues every record of the slice (attempts reset, due now, `target_url`
    /// overriding the rule's URL when given, `exception_id` set) and counts one retry of the
    /// slice. Returns how many were enqueued (0: no such slice).
    async fn retry_slice(&self, app_id: Uuid, date_key: &str, target_url: Option<&str>, now: i64) -> NotifyResult<u64>;

    /// Deletes records that failed before `older_than` (Easemob keeps 3 days).
    async fn sweep_exceptions(&self, older_than: i64) -> NotifyResult<u64>;
}

/// Callback and pre-send rules.
#[async_trait]
pub trait RuleStore: Send + Sync {
    async fn callback_rules(&self, app_id: Uuid) -> NotifyResult<Vec<CallbackRule>>;
    /// Inserts, or replaces the rule with the same id. `Conflict("callback rule name")`
    /// when another rule of the app has the name.
    async fn put_callback_rule(&self, app_id: Uuid, rule: &CallbackRule) -> NotifyResult<()>;
    /// Removes the rule with this id or name; `false` if there is none.
    async fn remove_callback_rule(&self, app_id: Uuid, id_or_name: &str) -> NotifyResult<bool>;

    async fn presend_rules(&self, app_id: Uuid) -> NotifyResult<Vec<PreSendRule>>;
    async fn put_presend_rule(&self, app_id: Uuid, rule: &PreSendRule) -> NotifyResult<()>;
    async fn remove_presend_rule(&self, app_id: Uuid, id_or_name: &str) -> NotifyResult<bool>;

    /// A number that grows with every rule change of any app: servers poll it (once a
    /// second) and reload their rule cache when it moved, so a CLI change beside a running
    /// server applies within a second.
    async fn rules_generation(&self) -> NotifyResult<i64>;

    /// Records a ban so every node honours it.
    async fn record_ban(&self, rule_id: &str, ban: Ban) -> NotifyResult<()>;
    /// Bans still running at `now`, by rule id.
    async fn active_bans(&self, now: i64) -> NotifyResult<Vec<(String, Ban)>>;
}

/// Push providers and device bindings.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// The app's provider configs by notifier name.
    async fn push_providers(&self, app_id: Uuid) -> NotifyResult<Vec<(String, ProviderConfig)>>;
    async fn put_push_provider(&self, app_id: Uuid, notifier_name: &str, config: &ProviderConfig) -> NotifyResult<()>;
    async fn remove_push_provider(&self, app_id: Uuid, notifier_name: &str) -> NotifyResult<bool>;

    /// Every binding of the user's devices.
    async fn push_bindings(&self, app_id: Uuid, user: &str) -> NotifyResult<Vec<DeviceBinding>>;
    /// `PUT /users/{u}/push/binding`: binds (device, notifier) to the token, or with an empty
    /// token unbinds that pair, or with an empty notifier unbinds the device entirely.
    /// Returns the device's bindings afterwards.
    async fn put_push_binding(
        &self,
        app_id: Uuid,
        user: &str,
        binding: &DeviceBinding,
    ) -> NotifyResult<Vec<DeviceBinding>>;
    /// A provider said the token is dead.
    async fn remove_push_token(&self, app_id: Uuid, notifier_name: &str, device_token: &str) -> NotifyResult<()>;
}
