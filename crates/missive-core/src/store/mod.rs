//! The storage interface: every durable operation Missive performs, named for what it means.
//!
//! Callers hold an `Arc<dyn Store>` and never see SQL. `Store` is the sum of one capability
//! trait per area ([`AppStore`], [`UserStore`], [`TokenStore`], [`QueueStore`],
//! [`FileStore`], [`ClusterStore`], [`OutboxStore`], [`NotifyConfigStore`], [`HistoryStore`]), each in its own module, so a new area adds a trait and its two
//! implementations without touching the others. Every backend (SQLite, the embedded default;
//! PostgreSQL, for clusters) implements all of them with the same meaning, which one
//! conformance suite (`missive-store/tests/conformance.rs`) checks against both. Every method
//! that returns `Ok` after a write has made it durable: the HTTP layer answers 200 and the
//! MSYNC layer acks only after that.

mod apps;
mod cluster;
mod files;
mod history;
mod notify;
mod outbox;
mod queues;
mod tokens;
mod users;

pub use apps::AppStore;
pub use cluster::{ClusterStore, OnlineDevice, PresenceOutcome};
pub use files::FileStore;
pub use history::{ChatLogQuery, ConversationQuery, HistorySelection, HistoryStore, NewArchived};
pub use notify::{NotifyConfigStore, NotifyRule, NotifyRuleKind, PushProviderRecord, RuleBan};
pub use outbox::{ExceptionSlice, NewException, NewOutboxEntry, OutboxDepth, OutboxEntry, OutboxKind, OutboxStore};
pub use queues::{
    AckReceipt, CommitListener, EnqueueRequest, PendingPage, QueueCount, QueuePolicy, QueueStore, RecallOutcome,
};
pub use tokens::TokenStore;
pub use users::{UserPatch, UserStore};

/// Every capability trait, for callers that hold a concrete store or `dyn Store` and call
/// its methods: `use missive_core::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        AppStore, ClusterStore, FileStore, HistoryStore, NotifyConfigStore, OutboxStore, QueueStore, Store, TokenStore,
        UserStore,
    };
}

/// Storage failures that callers can act on; everything else is `Backend`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; the string names the rule ("username", "app").
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The store could not answer in time (locked or overloaded database, pool exhausted).
    #[error("store busy")]
    Busy,
    /// The disk is full: writes fail until space returns.
    #[error("storage full")]
    Full,
    /// Anything else; the text is for the log, never for a client.
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything a backend stores. Implemented automatically for any type that implements every
/// capability trait, so `Arc<dyn Store>` reaches all of them.
pub trait Store:
    AppStore
    + UserStore
    + TokenStore
    + QueueStore
    + FileStore
    + ClusterStore
    + OutboxStore
    + NotifyConfigStore
    + HistoryStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AppStore
        + UserStore
        + TokenStore
        + QueueStore
        + FileStore
        + ClusterStore
        + OutboxStore
        + NotifyConfigStore
        + HistoryStore
        + Send
        + Sync
        + 'static
{
}
