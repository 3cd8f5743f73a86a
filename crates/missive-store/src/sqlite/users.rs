//! `UserStore` on SQLite.

use async_trait::async_trait;
use missive_core::id::now_ms;
use missive_core::model::{NewUser, User};
use missive_core::store::{StoreResult, UserPatch, UserStore};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{self, SqlResultExt, USER_COLUMNS};
use crate::conflict_as;

fn user_by_name(c: &Connection, app: Uuid, username: &str) -> StoreResult<Option<User>> {
    c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE app_id = ?1 AND username = ?2"))
        .store()?
        .query_row(params![app.to_string(), username], rows::user)
        .optional()
        .store()
}

/// `UPDATE users SET {set}, modified = now … RETURNING` the user.
fn update_returning(
    c: &Connection,
    set: &'static str,
    value: &dyn rusqlite::ToSql,
    app: Uuid,
    username: &str,
) -> StoreResult<Option<User>> {
    c.prepare_cached(&format!(
        "UPDATE users SET {set} = ?1, modified = ?2 WHERE app_id = ?3 AND username = ?4 RETURNING {USER_COLUMNS}"
    ))
    .store()?
    .query_row(params![value, now_ms() as i64, app.to_string(), username], rows::user)
    .optional()
    .store()
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, app: Uuid, user: &NewUser) -> StoreResult<User> {
        let user = user.clone();
        self.write(move |c| {
            let now = now_ms() as i64;
            let uuid = Uuid::new_v4();
            let seq: i64 = c
                .prepare_cached(
                    "INSERT INTO users (uuid, app_id, username, password_hash, nickname, activated, created, \
                     modified, attributes) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6, '{}') RETURNING seq",
                )
                .store()?
                .query_row(
                    params![uuid.to_string(), app.to_string(), user.username, user.password_hash, user.nickname, now],
                    |r| r.get(0),
                )
                .store()
                .map_err(conflict_as("username"))?;
            Ok(User {
                uuid,
                app_id: app,
                username: user.username,
                password_hash: user.password_hash,
                nickname: user.nickname,
                activated: true,
                created: now,
                modified: now,
                seq,
                attributes: Default::default(),
            })
        })
        .await
    }

    async fn user_by_name(&self, app: Uuid, username: &str) -> StoreResult<Option<User>> {
        let username = username.to_owned();
        self.read(move |c| user_by_name(c, app, &username)).await
    }

    async fn existing_users(&self, app: Uuid, names: &[String]) -> StoreResult<Vec<String>> {
        let names = names.to_vec();
        self.read(move |c| {
            let mut found = Vec::new();
            // SQLite allows 32766 parameters; chunks keep every statement well under that and
            // the cached statement texts few.
            for chunk in names.chunks(100) {
                let sql = format!(
                    "SELECT username FROM users WHERE app_id = ? AND username IN ({})",
                    vec!["?"; chunk.len()].join(",")
                );
                let app_s = app.to_string();
                let args = std::iter::once(&app_s).chain(chunk.iter());
                let mut stmt = c.prepare_cached(&sql).store()?;
                let rows = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(0)).store()?;
                for r in rows {
                    found.push(r.store()?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn update_user(&self, app: Uuid, username: &str, patch: &UserPatch) -> StoreResult<Option<User>> {
        let (username, patch) = (username.to_owned(), patch.clone());
        self.write(move |c| {
            let Some(mut user) = user_by_name(c, app, &username)? else { return Ok(None) };
            if let Some(n) = &patch.nickname {
                user.nickname = Some(n.clone());
            }
            for (k, v) in patch.attributes {
                if v.is_null() {
                    user.attributes.remove(&k);
                } else {
                    user.attributes.insert(k, v);
                }
            }
            user.modified = now_ms() as i64;
            let attrs = serde_json::Value::Object(user.attributes.clone()).to_string();
            c.prepare_cached("UPDATE users SET nickname = ?1, attributes = ?2, modified = ?3 WHERE seq = ?4")
                .store()?
                .execute(params![user.nickname, attrs, user.modified, user.seq])
                .store()?;
            Ok(Some(user))
        })
        .await
    }

    async fn list_users(&self, app: Uuid, after: i64, limit: u32) -> StoreResult<Vec<User>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE app_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))
            .store()?
            .query_map(params![app.to_string(), after, i64::from(limit)], rows::user)
            .store()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .store()
        })
        .await
    }

    async fn delete_user(&self, app: Uuid, username: &str) -> StoreResult<Option<User>> {
        let username = username.to_owned();
        self.write(move |c| {
            let app_s = app.to_string();
            let Some(user) = c
                .prepare_cached(&format!(
                    "DELETE FROM users WHERE app_id = ?1 AND username = ?2 RETURNING {USER_COLUMNS}"
                ))
                .store()?
                .query_row(params![app_s, username], rows::user)
                .optional()
                .store()?
            else {
                return Ok(None);
            };
            for sql in [
                "DELETE FROM messages WHERE qid IN (SELECT id FROM queues WHERE app_id = ?1 AND owner = ?2)",
                "DELETE FROM devices WHERE app_id = ?1 AND owner = ?2",
                "DELETE FROM cursors WHERE app_id = ?1 AND owner = ?2",
            ] {
                c.prepare_cached(sql).store()?.execute(params![app_s, username]).store()?;
            }
            super::history::forget_user(c, &app_s, &username)?;
            c.prepare_cached("DELETE FROM tokens WHERE app_id = ?1 AND user_uuid = ?2")
                .store()?
                .execute(params![app_s, user.uuid.to_string()])
                .store()?;
            super::contacts::delete_user_rows(c, &app_s, &username, now_ms() as i64)?;
            Ok(Some(user))
        })
        .await
    }

    async fn set_password(&self, app: Uuid, username: &str, password_hash: &str) -> StoreResult<Option<User>> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |c| update_returning(c, "password_hash", &hash, app, &username)).await
    }

    async fn set_activated(&self, app: Uuid, username: &str, activated: bool) -> StoreResult<Option<User>> {
        let username = username.to_owned();
        self.write(move |c| update_returning(c, "activated", &activated, app, &username)).await
    }
}
