//! `AppStore` on SQLite.

use async_trait::async_trait;
use missive_core::model::App;
use missive_core::store::{AppStore, StoreResult};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{self, APP_COLUMNS, SqlResultExt};
use crate::conflict_as;

#[async_trait]
impl AppStore for SqliteStore {
    async fn create_app(&self, app: &App) -> StoreResult<()> {
        let app = app.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO apps (id, org, name, client_id, client_secret, open_registration, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .store()?
            .execute(params![
                app.id.to_string(),
                app.org,
                app.name,
                app.client_id,
                app.client_secret,
                app.open_registration,
                app.created
            ])
            .store()
            .map_err(conflict_as("app"))?;
            Ok(())
        })
        .await
    }

    async fn app_by_name(&self, org: &str, name: &str) -> StoreResult<Option<App>> {
        let (org, name) = (org.to_owned(), name.to_owned());
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE org = ?1 AND name = ?2"))
                .store()?
                .query_row(params![org, name], rows::app)
                .optional()
                .store()
        })
        .await
    }

    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE id = ?1"))
                .store()?
                .query_row([id.to_string()], rows::app)
                .optional()
                .store()
        })
        .await
    }

    async fn app_count(&self) -> StoreResult<u64> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM apps", [], |r| r.get::<_, i64>(0)).store().map(|n| n as u64))
            .await
    }
}
