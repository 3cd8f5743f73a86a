//! Queues: each recipient's messages per conversation, with per-device delivery cursors.
//!
//! **The sequence rule.** Each queue (app, owner, peer) numbers its messages 1, 2, 3, …
//! and the store assigns the number inside the transaction that commits the message, so
//! sequence order *is* commit order on every backend and on any number of nodes: once a
//! reader sees sequence `n` committed, every sequence below `n` is committed too (or was
//! removed since: recalled, evicted, expired). Everything downstream speaks sequences: a
//! device's cursor is the highest sequence it acked, a session that holds sequence 41 after
//! 39 knows it must read 40 from the store, and a late or repeated announcement of a commit
//! is recognised by its sequence alone. Message ids stay 19-digit snowflakes on the wire.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewArchived, NewOutboxEntry, StoreResult};
use crate::id::MsgId;
use crate::model::{DeviceInfo, IdempotencyRecord, NewMessage, QueuedMessage};

/// Limits applied when messages are queued.
#[derive(Clone, Copy, Debug)]
pub struct QueuePolicy {
    /// At most this many undelivered messages per recipient; the oldest are evicted.
    pub max_offline_per_user: u32,
}

/// Messages to queue in one durable step.
#[derive(Clone, Debug)]
pub struct EnqueueRequest {
    pub messages: Vec<NewMessage>,
    pub policy: QueuePolicy,
    /// Written in the same transaction: either the messages and the record are durable, or
    /// neither is (idempotent sends).
    pub record: Option<IdempotencyRecord>,
    /// The callbacks and pushes these messages cause, written in the same transaction, so a
    /// crash after the sender was answered cannot lose one (`store::outbox`).
    pub outbox: Vec<NewOutboxEntry>,
    /// The chat messages among `messages` that go into the archive (`store::history`),
    /// written in the same transaction: a message is in history exactly when it is queued.
    pub archive: Vec<NewArchived>,
}

/// What a recall found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecallOutcome {
    /// No such message in this app (never sent, or past retention).
    NotFound,
    /// Removed before any device had it: nobody will see it.
    RemovedUndelivered(QueuedMessage),
    /// A device already had it; it was removed from the queue, and devices must be told.
    RemovedDelivered(QueuedMessage),
}

/// Where a device stands in one of its queues, for `UNREAD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueCount {
    pub queue: String,
    pub pending: u32,
    /// The highest sequence stored in the queue: a session whose view of the queue ends
    /// below it has missed an announcement and reads the queue again.
    pub last_seq: u64,
}

/// One read of a queue for a device.
#[derive(Clone, Debug, Default)]
pub struct PendingPage {
    /// Messages with a sequence above both the caller's `after` and the device's durable
    /// cursor, in sequence order, at most `limit`.
    pub messages: Vec<Arc<QueuedMessage>>,
    /// The queue's last assigned sequence, read *before* the messages: every sequence up to
    /// it is either in `messages` (if it fit under `limit`) or no longer stored.
    pub head: u64,
    /// The device's durable cursor in this queue (0 if it never acked).
    pub cursor: u64,
}

/// Resolves once an acknowledgement submitted with `QueueStore::submit_ack` is durable.
pub type AckReceipt = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + Sync>>;

/// Told about queue changes as they commit, so online devices are served from memory
/// instead of a read per message. The server wires its fan-out here at start-up.
///
/// Called on the store's write path after the commit and before the writers are answered,
/// in commit order: keep it short and never block. Announcements are an optimisation of
/// delivery, never its guarantee: a session that misses one finds the message by sequence.
pub trait CommitListener: Send + Sync {
    /// These messages were just committed (in sequence order within each queue).
    fn committed(&self, messages: &[Arc<QueuedMessage>]);
    /// This message was removed from its queue (recall): it must not go out any more.
    fn removed(&self, message: &QueuedMessage);
    /// A group commit finished: `ops` operations (sends, acks, device records, …) in one
    /// transaction, `messages` of them new stored messages, `took` from its start to the
    /// commit's return — mostly the fsync. For metrics; the default ignores it.
    fn batch_committed(&self, _ops: usize, _messages: u64, _took: std::time::Duration) {}
}

#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Installs the listener told about every later commit, replacing any earlier one.
    fn set_commit_listener(&self, listener: Arc<dyn CommitListener>);

    /// Queues messages durably, assigning each its queue's next sequence; concurrent callers
    /// may share one transaction and one fsync. Returns the messages as stored.
    async fn enqueue(&self, request: EnqueueRequest) -> StoreResult<Vec<Arc<QueuedMessage>>>;
    /// The recorded answer for an idempotency key, if any.
    async fn idempotency_record(&self, app: Uuid, key: &str) -> StoreResult<Option<IdempotencyRecord>>;
    /// Forgets idempotency records created before `before_ms`.
    async fn sweep_idempotency(&self, before_ms: i64) -> StoreResult<u64>;
    /// Messages that no device of `owner` has acked.
    async fn offline_count(&self, app: Uuid, owner: &str) -> StoreResult<u64>;
    /// Messages that no device has acked, in every queue of every app (a partial-index
    /// count; the metrics sample it when scraped).
    async fn queued_total(&self) -> StoreResult<u64>;
    async fn message(&self, app: Uuid, id: MsgId) -> StoreResult<Option<QueuedMessage>>;
    /// Removes a message from its queue (see `RecallOutcome`) and from the archive, and
    /// tells the listener.
    async fn recall(&self, app: Uuid, id: MsgId) -> StoreResult<RecallOutcome>;

    /// Records a device login. The first time a resource is seen its cursor in each existing
    /// queue starts after what some device already acked, so a new device gets what is still
    /// undelivered, not the whole history. Returns true on first sight.
    async fn register_device(&self, app: Uuid, owner: &str, device: &DeviceInfo) -> StoreResult<bool>;
    /// Per-queue counts of messages this device has not acked, oldest queue first.
    async fn pending_counts(&self, app: Uuid, owner: &str, resource: &str) -> StoreResult<Vec<QueueCount>>;
    /// Moves this device's cursor in `queue` up to `seq` (never back) and marks what it covers
    /// delivered; returns once that is durable.
    async fn ack(&self, app: Uuid, owner: &str, resource: &str, queue: &str, seq: u64) -> StoreResult<()> {
        self.submit_ack(app, owner, resource, queue, seq).await?.await
    }
    /// Like `ack`, but returns as soon as the write is queued, with a receipt that resolves
    /// when it is durable. A device's next pull need not wait for its ack's fsync: an ack
    /// lost in a crash only means those messages are delivered again.
    async fn submit_ack(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        seq: u64,
    ) -> StoreResult<AckReceipt>;
    /// Reads `queue` for a device: see `PendingPage`.
    async fn pending(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<PendingPage>;

    /// Deletes messages older than `floor` and devices unseen since then. Returns rows removed.
    async fn sweep(&self, floor: MsgId) -> StoreResult<u64>;
}
