//! The `Store` trait: every durable operation Missive performs, named for what it means.
//!
//! Callers hold an `Arc<dyn Store>` and never see SQL. Each backend (SQLite today, PostgreSQL
//! next) implements the whole trait over the same schema, so the server does not change when
//! the backend does. Every method that returns `Ok` after a write has made it durable: the
//! HTTP layer answers 200 only after that.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::id::MsgId;
use crate::model::{App, DeviceInfo, FileRecord, IdempotencyRecord, NewUser, QueuedMessage, TokenRecord, User};

/// Storage failures that callers can act on; everything else is `Backend`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; the string names the rule ("username", "app").
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The store could not answer in time (locked or overloaded database).
    #[error("store busy")]
    Busy,
    /// The disk is full: writes fail until space returns.
    #[error("storage full")]
    Full,
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Mutable user fields, as `PUT /users/{u}` sends them.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub nickname: Option<String>,
    /// Keys to set (JSON `null` removes the key).
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Limits applied when messages are queued.
#[derive(Clone, Copy, Debug)]
pub struct QueuePolicy {
    /// At most this many undelivered messages per recipient; the oldest are evicted.
    pub max_offline_per_user: u32,
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
}

/// Resolves once an acknowledgement submitted with `Store::submit_ack` is durable.
pub type AckReceipt = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + Sync>>;

/// Told about queue changes as they become visible, so online devices can be served from
/// memory instead of a read per message (the server's hub implements it).
///
/// Called from the store's write path after the commit and before the writers are answered:
/// keep it short and never block.
pub trait CommitListener: Send + Sync {
    /// These messages were just committed.
    fn committed(&self, messages: &[QueuedMessage]);
    /// This message was removed from its queue before every device had it (recall).
    fn removed(&self, message: &QueuedMessage);
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Installs the listener told about every later commit, replacing any earlier one.
    fn set_commit_listener(&self, listener: Arc<dyn CommitListener>);

    // --- apps -----------------------------------------------------------------------------
    async fn create_app(&self, app: &App) -> StoreResult<()>;
    async fn app_by_name(&self, org: &str, name: &str) -> StoreResult<Option<App>>;
    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>>;
    async fn app_count(&self) -> StoreResult<u64>;

    // --- tokens ---------------------------------------------------------------------------
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()>;
    async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>>;
    /// Revokes every token of a user (password change, deactivation, deletion).
    async fn delete_user_tokens(&self, app: Uuid, user: Uuid) -> StoreResult<()>;

    // --- users ----------------------------------------------------------------------------
    /// Fails with `Conflict("username")` when the name is taken.
    async fn create_user(&self, app: Uuid, user: &NewUser) -> StoreResult<User>;
    async fn user_by_name(&self, app: Uuid, username: &str) -> StoreResult<Option<User>>;
    /// Which of `names` are registered users (one query for a whole send).
    async fn existing_users(&self, app: Uuid, names: &[String]) -> StoreResult<Vec<String>>;
    async fn update_user(&self, app: Uuid, username: &str, patch: &UserPatch) -> StoreResult<Option<User>>;
    /// Up to `limit` users with `seq > after`, oldest first.
    async fn list_users(&self, app: Uuid, after: i64, limit: u32) -> StoreResult<Vec<User>>;
    /// Deletes the user with their tokens, devices and queued messages.
    async fn delete_user(&self, app: Uuid, username: &str) -> StoreResult<Option<User>>;
    async fn set_password(&self, app: Uuid, username: &str, password_hash: &str) -> StoreResult<Option<User>>;
    async fn set_activated(&self, app: Uuid, username: &str, activated: bool) -> StoreResult<Option<User>>;

    // --- messages and queues --------------------------------------------------------------
    /// Queues messages durably; concurrent callers may share one transaction and one fsync.
    async fn enqueue(&self, messages: Vec<QueuedMessage>, policy: QueuePolicy) -> StoreResult<()>;
    /// Like `enqueue`, and writes `record` in the same transaction: either both the messages
    /// and the record are durable, or neither is.
    async fn enqueue_recorded(
        &self,
        messages: Vec<QueuedMessage>,
        policy: QueuePolicy,
        record: IdempotencyRecord,
    ) -> StoreResult<()>;
    /// The recorded answer for an idempotency key, if any.
    async fn idempotency_record(&self, app: Uuid, key: &str) -> StoreResult<Option<IdempotencyRecord>>;
    /// Forgets idempotency records created before `before_ms`.
    async fn sweep_idempotency(&self, before_ms: i64) -> StoreResult<u64>;
    /// Messages that no device of `owner` has acked.
    async fn offline_count(&self, app: Uuid, owner: &str) -> StoreResult<u64>;
    async fn message(&self, app: Uuid, id: MsgId) -> StoreResult<Option<QueuedMessage>>;
    /// Removes a message from its queue (see `RecallOutcome`).
    async fn recall(&self, app: Uuid, id: MsgId) -> StoreResult<RecallOutcome>;

    // --- devices and delivery -------------------------------------------------------------
    /// Records a device login. The first time a resource is seen its position in each
    /// existing queue starts after what some device already acked, so a new device gets
    /// what is still undelivered, not the whole history. Returns true on first sight.
    async fn register_device(&self, app: Uuid, owner: &str, device: &DeviceInfo) -> StoreResult<bool>;
    /// Per-queue counts of messages this device has not acked.
    async fn pending_counts(&self, app: Uuid, owner: &str, resource: &str) -> StoreResult<Vec<QueueCount>>;
    /// Marks everything up to `key` in `queue` as acked by this device (and delivered);
    /// returns once that is durable.
    async fn ack(&self, app: Uuid, owner: &str, resource: &str, queue: &str, key: MsgId) -> StoreResult<()> {
        self.submit_ack(app, owner, resource, queue, key).await?.await
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
        key: MsgId,
    ) -> StoreResult<AckReceipt>;
    /// The next `limit` messages of `queue` with ids above both this device's durable ack
    /// position and `after` (what the caller knows the device already has), in id order.
    ///
    /// When it returns, the commit listener has been called for every commit this read
    /// could see, so a caller that also takes the listener's announcements can match the
    /// two exactly.
    async fn pending(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        after: MsgId,
        limit: u32,
    ) -> StoreResult<Vec<QueuedMessage>>;

    // --- housekeeping ---------------------------------------------------------------------
    /// Deletes messages older than `floor` and devices unseen since then. Returns rows removed.
    async fn sweep(&self, floor: MsgId) -> StoreResult<u64>;

    // --- chat files -----------------------------------------------------------------------
    /// Records an uploaded file, after its bytes are stored.
    async fn insert_file(&self, file: &FileRecord) -> StoreResult<()>;
    /// The file `uuid` of `app`, expired or not (the caller decides what expiry means).
    async fn file(&self, app: Uuid, uuid: Uuid) -> StoreResult<Option<FileRecord>>;
    /// Up to `limit` files whose `expires` is at or before `now_ms`, soonest first.
    async fn expired_files(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<FileRecord>>;
    /// Forgets a file (its blobs are the caller's to delete). Returns whether it existed.
    async fn delete_file(&self, app: Uuid, uuid: Uuid) -> StoreResult<bool>;
}
