//! Storage backends for Missive: every one implements all of `missive_core::store::Store`.
//!
//! # Layout
//! - [`sqlite`]: the embedded default, one file under the data directory, WAL mode, every
//!   commit fsync'd; rusqlite on a writer thread and a few reader threads.
//! - [`postgres`]: PostgreSQL, for several nodes sharing one store.
//! - `group_commit`: the batching writer both backends use for the delivery path.
//! - `backlog`: the per-recipient cap's bookkeeping, shared by both writers.
//! - `archive`: the message archive's row layout and statements, shared by both backends.
//!
//! Each backend carries its own dialect's migrations under `migrations/<dialect>/`, embedded
//! in the binary and applied forward-only at open.

mod archive;
mod backlog;
mod group_commit;
pub mod postgres;
pub mod sqlite;

pub use postgres::{PgStore, PgStoreOptions};
pub use sqlite::{SqliteStore, SqliteStoreOptions, restore};

use missive_core::store::StoreError;

/// Renames a uniqueness conflict after the rule it broke ("username", "app", "file").
pub(crate) fn conflict_as(rule: &'static str) -> impl Fn(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(rule),
        other => other,
    }
}

/// A fresh fencing token for an outbox claim: random, so two claims never share one.
pub(crate) fn claim_token() -> i64 {
    uuid::Uuid::new_v4().as_u64_pair().0 as i64
}
