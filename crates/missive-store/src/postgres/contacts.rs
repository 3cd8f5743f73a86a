//! `ContactStore` and `UserAttributeStore` on PostgreSQL.
//!
//! Roster versions are updated in sorted owner order, so two transactions touching the same
//! pair (`a` adds `b` while `b` adds `a`) wait for each other instead of deadlocking.

use std::collections::BTreeMap;

use async_trait::async_trait;
use missive_core::store::{
    AttributeWrite, Attributes, Contact, ContactStore, StoreResult, UserAttributeStore, attributes_size, merged,
};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::PgStore;
use super::rows::PgResultExt;

/// Moves each of `owners`' roster version past its old value and past `now` (so a user
/// deleted and created again never gets back a version a client cached).
pub(super) async fn bump_versions(c: &mut PgConnection, app: Uuid, owners: &[&str], now: i64) -> StoreResult<()> {
    let mut owners: Vec<&str> = owners.to_vec();
    owners.sort_unstable();
    owners.dedup();
    for owner in owners {
        sqlx::query(
            "INSERT INTO roster_versions (app_id, owner, version) VALUES ($1, $2, $3) \
             ON CONFLICT (app_id, owner) DO UPDATE SET version = GREATEST(roster_versions.version + 1, EXCLUDED.version)",
        )
        .bind(app)
        .bind(owner)
        .bind(now)
        .execute(&mut *c)
        .await
        .store()?;
    }
    Ok(())
}

/// The rows of a deleted user in the contact tables; the users who had them as a contact get
/// a new roster version. Runs inside `delete_user`'s transaction.
pub(super) async fn delete_user_rows(c: &mut PgConnection, app: Uuid, user: &str, now: i64) -> StoreResult<()> {
    let peers: Vec<String> = sqlx::query_scalar("SELECT owner FROM contacts WHERE app_id = $1 AND peer = $2")
        .bind(app)
        .bind(user)
        .fetch_all(&mut *c)
        .await
        .store()?;
    bump_versions(c, app, &peers.iter().map(String::as_str).collect::<Vec<_>>(), now).await?;
    for sql in [
        "DELETE FROM contacts WHERE app_id = $1 AND (owner = $2 OR peer = $2)",
        "DELETE FROM contact_requests WHERE app_id = $1 AND (requester = $2 OR target = $2)",
        "DELETE FROM blocks WHERE app_id = $1 AND (owner = $2 OR blocked = $2)",
        "DELETE FROM roster_versions WHERE app_id = $1 AND owner = $2",
        "DELETE FROM user_attributes WHERE app_id = $1 AND username = $2",
    ] {
        sqlx::query(sql).bind(app).bind(user).execute(&mut *c).await.store()?;
    }
    Ok(())
}

fn parse_attrs(json: &str) -> Attributes {
    serde_json::from_str(json).unwrap_or_default()
}

impl PgStore {
    async fn count(&self, sql: &'static str, app: Uuid, owner: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(sql).bind(app).bind(owner).fetch_one(&self.pool).await.store()?;
        Ok(n as u64)
    }
}

#[async_trait]
impl ContactStore for PgStore {
    async fn add_contact(&self, app: Uuid, a: &str, b: &str, now_ms: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.store()?;
        let added = sqlx::query(
            "INSERT INTO contacts (app_id, owner, peer, remark, created, updated) \
             VALUES ($1, $2, $3, NULL, $4, $4), ($1, $3, $2, NULL, $4, $4) ON CONFLICT DO NOTHING",
        )
        .bind(app)
        .bind(a)
        .bind(b)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .store()?
        .rows_affected();
        sqlx::query(
            "DELETE FROM contact_requests WHERE app_id = $1 AND \
             ((requester = $2 AND target = $3) OR (requester = $3 AND target = $2))",
        )
        .bind(app)
        .bind(a)
        .bind(b)
        .execute(&mut *tx)
        .await
        .store()?;
        if added > 0 {
            bump_versions(&mut tx, app, &[a, b], now_ms).await?;
        }
        tx.commit().await.store()?;
        Ok(added > 0)
    }

    async fn remove_contact(&self, app: Uuid, a: &str, b: &str, now_ms: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.store()?;
        let removed = sqlx::query(
            "DELETE FROM contacts WHERE app_id = $1 AND ((owner = $2 AND peer = $3) OR (owner = $3 AND peer = $2))",
        )
        .bind(app)
        .bind(a)
        .bind(b)
        .execute(&mut *tx)
        .await
        .store()?
        .rows_affected();
        if removed > 0 {
            bump_versions(&mut tx, app, &[a, b], now_ms).await?;
        }
        tx.commit().await.store()?;
        Ok(removed > 0)
    }

    async fn contacts(&self, app: Uuid, owner: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Contact>> {
        let rows = sqlx::query(
            "SELECT peer, remark, created, updated FROM contacts \
             WHERE app_id = $1 AND owner = $2 AND peer > $3 ORDER BY peer LIMIT $4",
        )
        .bind(app)
        .bind(owner)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter()
            .map(|r| {
                Ok(Contact {
                    peer: r.try_get("peer").store()?,
                    remark: r.try_get("remark").store()?,
                    created: r.try_get("created").store()?,
                    updated: r.try_get("updated").store()?,
                })
            })
            .collect()
    }

    async fn contact_count(&self, app: Uuid, owner: &str) -> StoreResult<u64> {
        self.count("SELECT count(*) FROM contacts WHERE app_id = $1 AND owner = $2", app, owner).await
    }

    async fn set_remark(&self, app: Uuid, owner: &str, peer: &str, remark: &str, now_ms: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.store()?;
        let n =
            sqlx::query("UPDATE contacts SET remark = $1, updated = $2 WHERE app_id = $3 AND owner = $4 AND peer = $5")
                .bind(remark)
                .bind(now_ms)
                .bind(app)
                .bind(owner)
                .bind(peer)
                .execute(&mut *tx)
                .await
                .store()?
                .rows_affected();
        if n > 0 {
            bump_versions(&mut tx, app, &[owner], now_ms).await?;
        }
        tx.commit().await.store()?;
        Ok(n > 0)
    }

    async fn add_request(&self, app: Uuid, from: &str, to: &str, reason: &str, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO contact_requests (app_id, requester, target, reason, created) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, requester, target) DO UPDATE SET reason = EXCLUDED.reason, created = EXCLUDED.created",
        )
        .bind(app)
        .bind(from)
        .bind(to)
        .bind(reason)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }

    async fn take_request(&self, app: Uuid, from: &str, to: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "DELETE FROM contact_requests WHERE app_id = $1 AND requester = $2 AND target = $3 RETURNING reason",
        )
        .bind(app)
        .bind(from)
        .bind(to)
        .fetch_optional(&self.pool)
        .await
        .store()
    }

    async fn block(&self, app: Uuid, owner: &str, peers: &[String], now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO blocks (app_id, owner, blocked, created) SELECT $1, $2, p, $4 FROM UNNEST($3::text[]) AS p \
             ON CONFLICT DO NOTHING",
        )
        .bind(app)
        .bind(owner)
        .bind(peers)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }

    async fn unblock(&self, app: Uuid, owner: &str, peers: &[String]) -> StoreResult<u64> {
        let n = sqlx::query("DELETE FROM blocks WHERE app_id = $1 AND owner = $2 AND blocked = ANY($3)")
            .bind(app)
            .bind(owner)
            .bind(peers)
            .execute(&self.pool)
            .await
            .store()?
            .rows_affected();
        Ok(n)
    }

    async fn blocklist(&self, app: Uuid, owner: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT blocked FROM blocks WHERE app_id = $1 AND owner = $2 AND blocked > $3 ORDER BY blocked LIMIT $4",
        )
        .bind(app)
        .bind(owner)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .store()
    }

    async fn blocked_count(&self, app: Uuid, owner: &str) -> StoreResult<u64> {
        self.count("SELECT count(*) FROM blocks WHERE app_id = $1 AND owner = $2", app, owner).await
    }

    async fn is_blocked(&self, app: Uuid, owner: &str, sender: &str) -> StoreResult<bool> {
        let row: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM blocks WHERE app_id = $1 AND owner = $2 AND blocked = $3")
                .bind(app)
                .bind(owner)
                .bind(sender)
                .fetch_optional(&self.pool)
                .await
                .store()?;
        Ok(row.is_some())
    }

    async fn roster_version(&self, app: Uuid, owner: &str) -> StoreResult<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT version FROM roster_versions WHERE app_id = $1 AND owner = $2")
            .bind(app)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .store()?;
        Ok(v.unwrap_or(0))
    }
}

#[async_trait]
impl UserAttributeStore for PgStore {
    async fn merge_attributes(
        &self,
        app: Uuid,
        user: &str,
        patch: &Attributes,
        limit_bytes: usize,
        now_ms: i64,
    ) -> StoreResult<AttributeWrite> {
        let mut tx = self.pool.begin().await.store()?;
        // Two merges of one user must not both start from the same old attributes, and a row
        // that does not exist yet cannot be locked: serialize on the (app, user) name instead.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("user_attributes/{app}/{user}"))
            .execute(&mut *tx)
            .await
            .store()?;
        let old: Option<String> =
            sqlx::query_scalar("SELECT attrs FROM user_attributes WHERE app_id = $1 AND username = $2")
                .bind(app)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await
                .store()?;
        let now = merged(old.as_deref().map(parse_attrs).unwrap_or_default(), patch);
        let size = attributes_size(&now);
        if size > limit_bytes {
            return Ok(AttributeWrite::TooLarge { size });
        }
        sqlx::query(
            "INSERT INTO user_attributes (app_id, username, attrs, size, updated) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, username) DO UPDATE SET attrs = EXCLUDED.attrs, size = EXCLUDED.size, \
             updated = EXCLUDED.updated",
        )
        .bind(app)
        .bind(user)
        .bind(serde_json::to_string(&now).unwrap_or_else(|_| "{}".into()))
        .bind(size as i64)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()?;
        Ok(AttributeWrite::Stored(now))
    }

    async fn attributes(&self, app: Uuid, user: &str) -> StoreResult<Attributes> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT attrs FROM user_attributes WHERE app_id = $1 AND username = $2")
                .bind(app)
                .bind(user)
                .fetch_optional(&self.pool)
                .await
                .store()?;
        Ok(json.as_deref().map(parse_attrs).unwrap_or_default())
    }

    async fn attributes_of(&self, app: Uuid, users: &[String]) -> StoreResult<BTreeMap<String, Attributes>> {
        let rows = sqlx::query("SELECT username, attrs FROM user_attributes WHERE app_id = $1 AND username = ANY($2)")
            .bind(app)
            .bind(users)
            .fetch_all(&self.pool)
            .await
            .store()?;
        rows.iter()
            .map(|r| {
                let user: String = r.try_get("username").store()?;
                let json: String = r.try_get("attrs").store()?;
                Ok((user, parse_attrs(&json)))
            })
            .collect()
    }

    async fn delete_attributes(&self, app: Uuid, user: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM user_attributes WHERE app_id = $1 AND username = $2")
            .bind(app)
            .bind(user)
            .execute(&self.pool)
            .await
            .store()?
            .rows_affected();
        Ok(n > 0)
    }

    async fn attribute_bytes(&self, app: Uuid) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(sum(size), 0)::bigint FROM user_attributes WHERE app_id = $1")
            .bind(app)
            .fetch_one(&self.pool)
            .await
            .store()?;
        Ok(n as u64)
    }
}
