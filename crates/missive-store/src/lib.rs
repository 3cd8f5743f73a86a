//! Storage backends for Missive.
//!
//! # Layout
//! - [`sqlite`]: the embedded default, one file under the data directory, WAL mode, every
//!   commit fsync'd, concurrent message writes grouped into one transaction (group commit).
//!
//! Each backend carries its own dialect's migrations under `migrations/<dialect>/`, embedded
//! in the binary and applied forward-only at open.

pub mod sqlite;

pub use sqlite::{SqliteStore, SqliteStoreOptions, restore};
