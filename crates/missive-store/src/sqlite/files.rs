//! `FileStore` on SQLite.

use async_trait::async_trait;
use missive_core::model::FileRecord;
use missive_core::store::{FileStore, StoreResult};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{self, FILE_COLUMNS, SqlResultExt};
use crate::conflict_as;

#[async_trait]
impl FileStore for SqliteStore {
    async fn insert_file(&self, file: &FileRecord) -> StoreResult<()> {
        let f = file.clone();
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO files ({FILE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))
            .store()?
            .execute(params![
                f.uuid.to_string(),
                f.app_id.to_string(),
                f.owner.map(|o| o.to_string()),
                f.content_type,
                f.filename,
                f.length as i64,
                f.restricted,
                f.secret,
                f.blob_key,
                f.thumbnail_key,
                f.thumbnail_content_type,
                f.thumbnail_length.map(|n| n as i64),
                f.width.map(i64::from),
                f.height.map(i64::from),
                f.created,
                f.expires
            ])
            .store()
            .map_err(conflict_as("file"))?;
            Ok(())
        })
        .await
    }

    async fn file(&self, app: Uuid, uuid: Uuid) -> StoreResult<Option<FileRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE uuid = ?1 AND app_id = ?2"))
                .store()?
                .query_row(params![uuid.to_string(), app.to_string()], rows::file)
                .optional()
                .store()
        })
        .await
    }

    async fn expired_files(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<FileRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE expires <= ?1 ORDER BY expires LIMIT ?2"))
                .store()?
                .query_map(params![now_ms, i64::from(limit)], rows::file)
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()
        })
        .await
    }

    async fn delete_file(&self, app: Uuid, uuid: Uuid) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM files WHERE uuid = ?1 AND app_id = ?2")
                .store()?
                .execute(params![uuid.to_string(), app.to_string()])
                .store()?;
            Ok(n > 0)
        })
        .await
    }
}
