//! `TokenStore` on SQLite.

use async_trait::async_trait;
use missive_core::model::TokenRecord;
use missive_core::store::{StoreResult, TokenStore};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{self, SqlResultExt, TOKEN_COLUMNS};

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let t = token.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO tokens (hash, app_id, user_uuid, expires_at, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .store()?
            .execute(params![t.hash, t.app_id.to_string(), t.user.map(|u| u.to_string()), t.expires_at, t.created])
            .store()?;
            Ok(())
        })
        .await
    }

    async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>> {
        let hash = hash.to_vec();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"))
                .store()?
                .query_row([hash], rows::token)
                .optional()
                .store()
        })
        .await
    }

    async fn delete_user_tokens(&self, app: Uuid, user: Uuid) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM tokens WHERE app_id = ?1 AND user_uuid = ?2")
                .store()?
                .execute(params![app.to_string(), user.to_string()])
                .store()?;
            Ok(())
        })
        .await
    }
}
