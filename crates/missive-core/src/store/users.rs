//! Users of an app.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::model::{NewUser, User};

/// Mutable user fields, as `PUT /users/{u}` sends them.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub nickname: Option<String>,
    /// Keys to set (JSON `null` removes the key).
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict("username")` when the name is taken.
    async fn create_user(&self, app: Uuid, user: &NewUser) -> StoreResult<User>;
    async fn user_by_name(&self, app: Uuid, username: &str) -> StoreResult<Option<User>>;
    /// Which of `names` are registered users (one query for a whole send).
    async fn existing_users(&self, app: Uuid, names: &[String]) -> StoreResult<Vec<String>>;
    async fn update_user(&self, app: Uuid, username: &str, patch: &UserPatch) -> StoreResult<Option<User>>;
    /// Up to `limit` users with `seq > after`, oldest first.
    async fn list_users(&self, app: Uuid, after: i64, limit: u32) -> StoreResult<Vec<User>>;
    /// Deletes the user with their tokens, devices, cursors and queued messages, and their
    /// side of the message archive and conversation list (`store::history`).
    async fn delete_user(&self, app: Uuid, username: &str) -> StoreResult<Option<User>>;
    async fn set_password(&self, app: Uuid, username: &str, password_hash: &str) -> StoreResult<Option<User>>;
    async fn set_activated(&self, app: Uuid, username: &str, activated: bool) -> StoreResult<Option<User>>;
}
