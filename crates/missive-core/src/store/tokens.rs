//! Access tokens: only their SHA-256 is ever stored.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::model::TokenRecord;

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()>;
    async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>>;
    /// Revokes every token of a user (password change, deactivation, deletion).
    async fn delete_user_tokens(&self, app: Uuid, user: Uuid) -> StoreResult<()>;
}
