//! Apps: Easemob's `{org}/{app}` tenants.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::model::App;

#[async_trait]
pub trait AppStore: Send + Sync {
    /// Fails with `Conflict("app")` when `org/name` or the client id is taken.
    async fn create_app(&self, app: &App) -> StoreResult<()>;
    async fn app_by_name(&self, org: &str, name: &str) -> StoreResult<Option<App>>;
    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>>;
    async fn app_count(&self) -> StoreResult<u64>;
}
