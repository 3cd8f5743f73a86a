//! Uploaded chat files' metadata; the bytes live in the blob store.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::model::FileRecord;

#[async_trait]
pub trait FileStore: Send + Sync {
    /// Records an uploaded file, after its bytes are stored.
    async fn insert_file(&self, file: &FileRecord) -> StoreResult<()>;
    /// The file `uuid` of `app`, expired or not (the caller decides what expiry means).
    async fn file(&self, app: Uuid, uuid: Uuid) -> StoreResult<Option<FileRecord>>;
    /// Up to `limit` files whose `expires` is at or before `now_ms`, soonest first.
    async fn expired_files(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<FileRecord>>;
    /// Forgets a file (its blobs are the caller's to delete). Returns whether it existed.
    async fn delete_file(&self, app: Uuid, uuid: Uuid) -> StoreResult<bool>;
}
