//! `ContactStore` and `UserAttributeStore` on SQLite.

use std::collections::BTreeMap;

use async_trait::async_trait;
use missive_core::store::{
    AttributeWrite, Attributes, Contact, ContactStore, StoreResult, UserAttributeStore, attributes_size, merged,
};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::SqlResultExt;

/// Moves each of `owners`' roster version past its old value and past `now` (so a user
/// deleted and created again never gets back a version a client cached).
pub(super) fn bump_versions(c: &Connection, app: &str, owners: &[&str], now: i64) -> StoreResult<()> {
    let mut stmt = c
        .prepare_cached(
            "INSERT INTO roster_versions (app_id, owner, version) VALUES (?1, ?2, ?3) \
             ON CONFLICT (app_id, owner) DO UPDATE SET version = max(version + 1, excluded.version)",
        )
        .store()?;
    for owner in owners {
        stmt.execute(params![app, owner, now]).store()?;
    }
    Ok(())
}

/// The rows of a deleted user in the contact tables; the users who had them as a contact get
/// a new roster version. Runs inside `delete_user`'s write.
pub(super) fn delete_user_rows(c: &Connection, app: &str, user: &str, now: i64) -> StoreResult<()> {
    let peers: Vec<String> = c
        .prepare_cached("SELECT owner FROM contacts WHERE app_id = ?1 AND peer = ?2")
        .store()?
        .query_map(params![app, user], |r| r.get(0))
        .store()?
        .collect::<rusqlite::Result<_>>()
        .store()?;
    bump_versions(c, app, &peers.iter().map(String::as_str).collect::<Vec<_>>(), now)?;
    for sql in [
        "DELETE FROM contacts WHERE app_id = ?1 AND (owner = ?2 OR peer = ?2)",
        "DELETE FROM contact_requests WHERE app_id = ?1 AND (requester = ?2 OR target = ?2)",
        "DELETE FROM blocks WHERE app_id = ?1 AND (owner = ?2 OR blocked = ?2)",
        "DELETE FROM roster_versions WHERE app_id = ?1 AND owner = ?2",
        "DELETE FROM user_attributes WHERE app_id = ?1 AND username = ?2",
    ] {
        c.prepare_cached(sql).store()?.execute(params![app, user]).store()?;
    }
    Ok(())
}

fn count(c: &Connection, sql: &str, app: Uuid, owner: &str) -> StoreResult<u64> {
    let n: i64 = c.prepare_cached(sql).store()?.query_row(params![app.to_string(), owner], |r| r.get(0)).store()?;
    Ok(n as u64)
}

fn attrs_json(attrs: &Attributes) -> String {
    serde_json::to_string(attrs).unwrap_or_else(|_| "{}".into())
}

fn parse_attrs(json: &str) -> Attributes {
    serde_json::from_str(json).unwrap_or_default()
}

fn attributes_of(c: &Connection, app: &str, user: &str) -> StoreResult<Attributes> {
    let json: Option<String> = c
        .prepare_cached("SELECT attrs FROM user_attributes WHERE app_id = ?1 AND username = ?2")
        .store()?
        .query_row(params![app, user], |r| r.get(0))
        .optional()
        .store()?;
    Ok(json.as_deref().map(parse_attrs).unwrap_or_default())
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn add_contact(&self, app: Uuid, a: &str, b: &str, now_ms: i64) -> StoreResult<bool> {
        let (a, b) = (a.to_owned(), b.to_owned());
        self.write(move |c| {
            let app = app.to_string();
            let mut insert = c
                .prepare_cached(
                    "INSERT INTO contacts (app_id, owner, peer, remark, created, updated) \
                     VALUES (?1, ?2, ?3, NULL, ?4, ?4) ON CONFLICT DO NOTHING",
                )
                .store()?;
            let added = insert.execute(params![app, a, b, now_ms]).store()?
                + insert.execute(params![app, b, a, now_ms]).store()?;
            c.prepare_cached(
                "DELETE FROM contact_requests WHERE app_id = ?1 AND \
                 ((requester = ?2 AND target = ?3) OR (requester = ?3 AND target = ?2))",
            )
            .store()?
            .execute(params![app, a, b])
            .store()?;
            if added > 0 {
                bump_versions(c, &app, &[&a, &b], now_ms)?;
            }
            Ok(added > 0)
        })
        .await
    }

    async fn remove_contact(&self, app: Uuid, a: &str, b: &str, now_ms: i64) -> StoreResult<bool> {
        let (a, b) = (a.to_owned(), b.to_owned());
        self.write(move |c| {
            let app = app.to_string();
            let removed = c
                .prepare_cached(
                    "DELETE FROM contacts WHERE app_id = ?1 AND \
                     ((owner = ?2 AND peer = ?3) OR (owner = ?3 AND peer = ?2))",
                )
                .store()?
                .execute(params![app, a, b])
                .store()?;
            if removed > 0 {
                bump_versions(c, &app, &[&a, &b], now_ms)?;
            }
            Ok(removed > 0)
        })
        .await
    }

    async fn contacts(&self, app: Uuid, owner: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Contact>> {
        let (owner, after) = (owner.to_owned(), after.unwrap_or("").to_owned());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT peer, remark, created, updated FROM contacts \
                 WHERE app_id = ?1 AND owner = ?2 AND peer > ?3 ORDER BY peer LIMIT ?4",
            )
            .store()?
            .query_map(params![app.to_string(), owner, after, i64::from(limit)], |r| {
                Ok(Contact { peer: r.get(0)?, remark: r.get(1)?, created: r.get(2)?, updated: r.get(3)? })
            })
            .store()?
            .collect::<rusqlite::Result<_>>()
            .store()
        })
        .await
    }

    async fn contact_count(&self, app: Uuid, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_owned();
        self.read(move |c| count(c, "SELECT count(*) FROM contacts WHERE app_id = ?1 AND owner = ?2", app, &owner))
            .await
    }

    async fn set_remark(&self, app: Uuid, owner: &str, peer: &str, remark: &str, now_ms: i64) -> StoreResult<bool> {
        let (owner, peer, remark) = (owner.to_owned(), peer.to_owned(), remark.to_owned());
        self.write(move |c| {
            let app = app.to_string();
            let n = c
                .prepare_cached(
                    "UPDATE contacts SET remark = ?1, updated = ?2 WHERE app_id = ?3 AND owner = ?4 AND peer = ?5",
                )
                .store()?
                .execute(params![remark, now_ms, app, owner, peer])
                .store()?;
            if n > 0 {
                bump_versions(c, &app, &[&owner], now_ms)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn add_request(&self, app: Uuid, from: &str, to: &str, reason: &str, now_ms: i64) -> StoreResult<()> {
        let (from, to, reason) = (from.to_owned(), to.to_owned(), reason.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO contact_requests (app_id, requester, target, reason, created) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (app_id, requester, target) DO UPDATE SET reason = excluded.reason, created = excluded.created",
            )
            .store()?
            .execute(params![app.to_string(), from, to, reason, now_ms])
            .store()?;
            Ok(())
        })
        .await
    }

    async fn take_request(&self, app: Uuid, from: &str, to: &str) -> StoreResult<Option<String>> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM contact_requests WHERE app_id = ?1 AND requester = ?2 AND target = ?3 RETURNING reason",
            )
            .store()?
            .query_row(params![app.to_string(), from, to], |r| r.get(0))
            .optional()
            .store()
        })
        .await
    }

    async fn block(&self, app: Uuid, owner: &str, peers: &[String], now_ms: i64) -> StoreResult<()> {
        let (owner, peers) = (owner.to_owned(), peers.to_vec());
        self.write(move |c| {
            let app = app.to_string();
            let mut stmt = c
                .prepare_cached(
                    "INSERT INTO blocks (app_id, owner, blocked, created) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )
                .store()?;
            for p in &peers {
                stmt.execute(params![app, owner, p, now_ms]).store()?;
            }
            Ok(())
        })
        .await
    }

    async fn unblock(&self, app: Uuid, owner: &str, peers: &[String]) -> StoreResult<u64> {
        let (owner, peers) = (owner.to_owned(), peers.to_vec());
        self.write(move |c| {
            let app = app.to_string();
            let mut stmt =
                c.prepare_cached("DELETE FROM blocks WHERE app_id = ?1 AND owner = ?2 AND blocked = ?3").store()?;
            let mut n = 0;
            for p in &peers {
                n += stmt.execute(params![app, owner, p]).store()? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn blocklist(&self, app: Uuid, owner: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<String>> {
        let (owner, after) = (owner.to_owned(), after.unwrap_or("").to_owned());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT blocked FROM blocks WHERE app_id = ?1 AND owner = ?2 AND blocked > ?3 ORDER BY blocked LIMIT ?4",
            )
            .store()?
            .query_map(params![app.to_string(), owner, after, i64::from(limit)], |r| r.get(0))
            .store()?
            .collect::<rusqlite::Result<_>>()
            .store()
        })
        .await
    }

    async fn blocked_count(&self, app: Uuid, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_owned();
        self.read(move |c| count(c, "SELECT count(*) FROM blocks WHERE app_id = ?1 AND owner = ?2", app, &owner)).await
    }

    async fn is_blocked(&self, app: Uuid, owner: &str, sender: &str) -> StoreResult<bool> {
        let (owner, sender) = (owner.to_owned(), sender.to_owned());
        self.read(move |c| {
            c.prepare_cached("SELECT 1 FROM blocks WHERE app_id = ?1 AND owner = ?2 AND blocked = ?3")
                .store()?
                .query_row(params![app.to_string(), owner, sender], |_| Ok(()))
                .optional()
                .store()
                .map(|r| r.is_some())
        })
        .await
    }

    async fn roster_version(&self, app: Uuid, owner: &str) -> StoreResult<i64> {
        let owner = owner.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT version FROM roster_versions WHERE app_id = ?1 AND owner = ?2")
                .store()?
                .query_row(params![app.to_string(), owner], |r| r.get(0))
                .optional()
                .store()
                .map(|v| v.unwrap_or(0))
        })
        .await
    }
}

#[async_trait]
impl UserAttributeStore for SqliteStore {
    async fn merge_attributes(
        &self,
        app: Uuid,
        user: &str,
        patch: &Attributes,
        limit_bytes: usize,
        now_ms: i64,
    ) -> StoreResult<AttributeWrite> {
        let (user, patch) = (user.to_owned(), patch.clone());
        self.write(move |c| {
            let app = app.to_string();
            let now = merged(attributes_of(c, &app, &user)?, &patch);
            let size = attributes_size(&now);
            if size > limit_bytes {
                return Ok(AttributeWrite::TooLarge { size });
            }
            c.prepare_cached(
                "INSERT INTO user_attributes (app_id, username, attrs, size, updated) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (app_id, username) DO UPDATE SET attrs = excluded.attrs, size = excluded.size, \
                 updated = excluded.updated",
            )
            .store()?
            .execute(params![app, user, attrs_json(&now), size as i64, now_ms])
            .store()?;
            Ok(AttributeWrite::Stored(now))
        })
        .await
    }

    async fn attributes(&self, app: Uuid, user: &str) -> StoreResult<Attributes> {
        let user = user.to_owned();
        self.read(move |c| attributes_of(c, &app.to_string(), &user)).await
    }

    async fn attributes_of(&self, app: Uuid, users: &[String]) -> StoreResult<BTreeMap<String, Attributes>> {
        let users = users.to_vec();
        self.read(move |c| {
            let mut found = BTreeMap::new();
            let app = app.to_string();
            for chunk in users.chunks(100) {
                let sql = format!(
                    "SELECT username, attrs FROM user_attributes WHERE app_id = ? AND username IN ({})",
                    vec!["?"; chunk.len()].join(",")
                );
                let args = std::iter::once(&app).chain(chunk.iter());
                let mut stmt = c.prepare_cached(&sql).store()?;
                let rows = stmt
                    .query_map(params_from_iter(args), |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                    .store()?;
                for row in rows {
                    let (user, json) = row.store()?;
                    found.insert(user, parse_attrs(&json));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn delete_attributes(&self, app: Uuid, user: &str) -> StoreResult<bool> {
        let user = user.to_owned();
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM user_attributes WHERE app_id = ?1 AND username = ?2")
                .store()?
                .execute(params![app.to_string(), user])
                .store()?;
            Ok(n > 0)
        })
        .await
    }

    async fn attribute_bytes(&self, app: Uuid) -> StoreResult<u64> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached("SELECT COALESCE(sum(size), 0) FROM user_attributes WHERE app_id = ?1")
                .store()?
                .query_row(params![app.to_string()], |r| r.get(0))
                .store()?;
            Ok(n as u64)
        })
        .await
    }
}
