//! `UserStore` on PostgreSQL.

use async_trait::async_trait;
use missive_core::id::now_ms;
use missive_core::model::{NewUser, User};
use missive_core::store::{StoreResult, UserPatch, UserStore};
use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use super::rows::{self, PgResultExt, USER_COLUMNS};
use crate::conflict_as;

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, app: Uuid, user: &NewUser) -> StoreResult<User> {
        let now = now_ms() as i64;
        let uuid = Uuid::new_v4();
        let row = sqlx::query(
            "INSERT INTO users (uuid, app_id, username, password_hash, nickname, activated, created, modified, \
             attributes) VALUES ($1, $2, $3, $4, $5, true, $6, $6, '{}') RETURNING seq",
        )
        .bind(uuid)
        .bind(app)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.nickname)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .store()
        .map_err(conflict_as("username"))?;
        Ok(User {
            uuid,
            app_id: app,
            username: user.username.clone(),
            password_hash: user.password_hash.clone(),
            nickname: user.nickname.clone(),
            activated: true,
            created: now,
            modified: now,
            seq: row.try_get("seq").store()?,
            attributes: Default::default(),
        })
    }

    async fn user_by_name(&self, app: Uuid, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND username = $2"
        )))
        .bind(app)
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn existing_users(&self, app: Uuid, names: &[String]) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT username FROM users WHERE app_id = $1 AND username = ANY($2)")
            .bind(app)
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .store()
    }

    async fn update_user(&self, app: Uuid, username: &str, patch: &UserPatch) -> StoreResult<Option<User>> {
        let mut tx = self.pool.begin().await.store()?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND username = $2 FOR UPDATE"
        )))
        .bind(app)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        let Some(row) = row else { return Ok(None) };
        let mut user = rows::user(&row)?;
        if let Some(n) = &patch.nickname {
            user.nickname = Some(n.clone());
        }
        for (k, v) in &patch.attributes {
            if v.is_null() {
                user.attributes.remove(k);
            } else {
                user.attributes.insert(k.clone(), v.clone());
            }
        }
        user.modified = now_ms() as i64;
        sqlx::query("UPDATE users SET nickname = $1, attributes = $2, modified = $3 WHERE seq = $4")
            .bind(&user.nickname)
            .bind(serde_json::Value::Object(user.attributes.clone()).to_string())
            .bind(user.modified)
            .bind(user.seq)
            .execute(&mut *tx)
            .await
            .store()?;
        tx.commit().await.store()?;
        Ok(Some(user))
    }

    async fn list_users(&self, app: Uuid, after: i64, limit: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )))
        .bind(app)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter().map(rows::user).collect()
    }

    async fn delete_user(&self, app: Uuid, username: &str) -> StoreResult<Option<User>> {
        let mut tx = self.pool.begin().await.store()?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM users WHERE app_id = $1 AND username = $2 RETURNING {USER_COLUMNS}"
        )))
        .bind(app)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        let Some(row) = row else { return Ok(None) };
        let user = rows::user(&row)?;
        for sql in [
            "DELETE FROM messages WHERE app_id = $1 AND owner = $2",
            "DELETE FROM devices WHERE app_id = $1 AND owner = $2",
            "DELETE FROM cursors WHERE app_id = $1 AND owner = $2",
        ] {
            sqlx::query(sql).bind(app).bind(username).execute(&mut *tx).await.store()?;
        }
        super::history::forget_user(&mut tx, app, username).await.store()?;
        sqlx::query("DELETE FROM tokens WHERE app_id = $1 AND user_uuid = $2")
            .bind(app)
            .bind(user.uuid)
            .execute(&mut *tx)
            .await
            .store()?;
        tx.commit().await.store()?;
        Ok(Some(user))
    }

    async fn set_password(&self, app: Uuid, username: &str, password_hash: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET password_hash = $1, modified = $2 WHERE app_id = $3 AND username = $4 \
             RETURNING {USER_COLUMNS}"
        )))
        .bind(password_hash)
        .bind(now_ms() as i64)
        .bind(app)
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn set_activated(&self, app: Uuid, username: &str, activated: bool) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET activated = $1, modified = $2 WHERE app_id = $3 AND username = $4 \
             RETURNING {USER_COLUMNS}"
        )))
        .bind(activated)
        .bind(now_ms() as i64)
        .bind(app)
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(rows::user).transpose()
    }
}
