//! `FileStore` on PostgreSQL.

use async_trait::async_trait;
use missive_core::model::FileRecord;
use missive_core::store::{FileStore, StoreResult};
use uuid::Uuid;

use super::PgStore;
use super::rows::{self, FILE_COLUMNS, PgResultExt};
use crate::conflict_as;

#[async_trait]
impl FileStore for PgStore {
    async fn insert_file(&self, f: &FileRecord) -> StoreResult<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16)"
        )))
        .bind(f.uuid)
        .bind(f.app_id)
        .bind(f.owner)
        .bind(&f.content_type)
        .bind(&f.filename)
        .bind(f.length as i64)
        .bind(f.restricted)
        .bind(&f.secret)
        .bind(&f.blob_key)
        .bind(&f.thumbnail_key)
        .bind(&f.thumbnail_content_type)
        .bind(f.thumbnail_length.map(|n| n as i64))
        .bind(f.width.map(i64::from))
        .bind(f.height.map(i64::from))
        .bind(f.created)
        .bind(f.expires)
        .execute(&self.pool)
        .await
        .store()
        .map_err(conflict_as("file"))?;
        Ok(())
    }

    async fn file(&self, app: Uuid, uuid: Uuid) -> StoreResult<Option<FileRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE uuid = $1 AND app_id = $2"
        )))
        .bind(uuid)
        .bind(app)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(rows::file).transpose()
    }

    async fn expired_files(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<FileRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE expires <= $1 ORDER BY expires LIMIT $2"
        )))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter().map(rows::file).collect()
    }

    async fn delete_file(&self, app: Uuid, uuid: Uuid) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM files WHERE uuid = $1 AND app_id = $2")
            .bind(uuid)
            .bind(app)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(done.rows_affected() > 0)
    }
}
