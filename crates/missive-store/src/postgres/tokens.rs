//! `TokenStore` on PostgreSQL.

use async_trait::async_trait;
use missive_core::model::TokenRecord;
use missive_core::store::{StoreResult, TokenStore};
use uuid::Uuid;

use super::PgStore;
use super::rows::{self, PgResultExt, TOKEN_COLUMNS};

#[async_trait]
impl TokenStore for PgStore {
    async fn insert_token(&self, t: &TokenRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO tokens (hash, app_id, user_uuid, expires_at, created) VALUES ($1, $2, $3, $4, $5)")
            .bind(&t.hash)
            .bind(t.app_id)
            .bind(t.user)
            .bind(t.expires_at)
            .bind(t.created)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1")))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .store()?;
        row.as_ref().map(rows::token).transpose()
    }

    async fn delete_user_tokens(&self, app: Uuid, user: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM tokens WHERE app_id = $1 AND user_uuid = $2")
            .bind(app)
            .bind(user)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }
}
