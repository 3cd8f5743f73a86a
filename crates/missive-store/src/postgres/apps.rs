//! `AppStore` on PostgreSQL.

use async_trait::async_trait;
use missive_core::model::App;
use missive_core::store::{AppStore, StoreResult};
use uuid::Uuid;

use super::PgStore;
use super::rows::{self, APP_COLUMNS, PgResultExt};
use crate::conflict_as;

#[async_trait]
impl AppStore for PgStore {
    async fn create_app(&self, app: &App) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO apps (id, org, name, client_id, client_secret, open_registration, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(app.id)
        .bind(&app.org)
        .bind(&app.name)
        .bind(&app.client_id)
        .bind(&app.client_secret)
        .bind(app.open_registration)
        .bind(app.created)
        .execute(&self.pool)
        .await
        .store()
        .map_err(conflict_as("app"))?;
        Ok(())
    }

    async fn app_by_name(&self, org: &str, name: &str) -> StoreResult<Option<App>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {APP_COLUMNS} FROM apps WHERE org = $1 AND name = $2")))
                .bind(org)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .store()?;
        row.as_ref().map(rows::app).transpose()
    }

    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .store()?;
        row.as_ref().map(rows::app).transpose()
    }

    async fn app_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apps").fetch_one(&self.pool).await.store()?;
        Ok(n as u64)
    }
}
