//! Missive's domain, free of I/O: what an app, a user, a token and a queued message are, how
//! ids are made, and the one storage interface every backend implements.
//!
//! # Layout
//! - [`archive`]: the message archive's rows, kinds and id windows (history listings).
//! - [`id`]: 64-bit time-ordered message ids (Snowflake layout, like Easemob's).
//! - [`model`]: the records and the validation rules Easemob documents for them.
//! - [`store`]: the `Store` trait (one capability trait per area) and its error type.

pub mod archive;
pub mod id;
pub mod model;
pub mod store;

pub use id::{IdGenerator, MsgId};
pub use model::{App, DeviceInfo, IdempotencyRecord, NewMessage, NewUser, QueuedMessage, TokenRecord, User};
pub use store::{
    EnqueueRequest, PendingPage, QueueCount, QueuePolicy, RecallOutcome, Store, StoreError, StoreResult, UserPatch,
};
