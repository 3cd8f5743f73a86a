//! `ClusterStore` on PostgreSQL: node id leases and presence, shared by every node.
//!
//! A login's device-limit check and its upsert run in one transaction under an advisory lock
//! on the user, so two logins of one user on two nodes cannot both pass the limit.

use async_trait::async_trait;
use missive_core::store::{ClusterStore, OnlineDevice, PresenceOutcome, StoreResult};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::rows::PgResultExt;

const CLAIM: &str = "INSERT INTO nodes (node_id, owner, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (node_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
     WHERE nodes.expires_at < $4 OR nodes.owner = EXCLUDED.owner RETURNING node_id";

fn device(r: &PgRow) -> StoreResult<OnlineDevice> {
    let node: i32 = r.try_get("node_id").store()?;
    let session: i64 = r.try_get("session_id").store()?;
    Ok(OnlineDevice {
        resource: r.try_get("resource").store()?,
        device_uuid: r.try_get("device_uuid").store()?,
        device_name: r.try_get("device_name").store()?,
        node: node as u16,
        session: session as u64,
    })
}

#[async_trait]
impl ClusterStore for PgStore {
    async fn lease_node_id(
        &self,
        wanted: Option<u16>,
        max_id: u16,
        owner: Uuid,
        now: i64,
        ttl_ms: i64,
    ) -> StoreResult<Option<u16>> {
        let claim = |node: u16| {
            sqlx::query(CLAIM).bind(i32::from(node)).bind(owner).bind(now + ttl_ms).bind(now).fetch_optional(&self.pool)
        };
        if let Some(node) = wanted {
            return Ok(claim(node).await.store()?.map(|_| node));
        }
        // The lowest free id; another node may take it first, so try the next ones.
        for _ in 0..8 {
            let free: Option<i32> = sqlx::query_scalar(
                "SELECT g FROM generate_series(0, $1) g WHERE NOT EXISTS \
                 (SELECT 1 FROM nodes WHERE node_id = g AND expires_at >= $2 AND owner <> $3) ORDER BY g LIMIT 1",
            )
            .bind(i32::from(max_id))
            .bind(now)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .store()?;
            let Some(node) = free else { return Ok(None) };
            if claim(node as u16).await.store()?.is_some() {
                return Ok(Some(node as u16));
            }
        }
        Ok(None)
    }

    async fn renew_node(&self, node: u16, owner: Uuid, now: i64, ttl_ms: i64) -> StoreResult<bool> {
        let kept = sqlx::query("UPDATE nodes SET expires_at = $1 WHERE node_id = $2 AND owner = $3")
            .bind(now + ttl_ms)
            .bind(i32::from(node))
            .bind(owner)
            .execute(&self.pool)
            .await
            .store()?
            .rows_affected()
            > 0;
        sqlx::query("UPDATE presence SET expires_at = $1 WHERE owner = $2")
            .bind(now + ttl_ms)
            .bind(owner)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(kept)
    }

    async fn release_node(&self, node: u16, owner: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM presence WHERE owner = $1").bind(owner).execute(&self.pool).await.store()?;
        sqlx::query("DELETE FROM nodes WHERE node_id = $1 AND owner = $2")
            .bind(i32::from(node))
            .bind(owner)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }

    async fn register_presence(
        &self,
        app: Uuid,
        user: &str,
        d: &OnlineDevice,
        max_devices: u32,
        now: i64,
        ttl_ms: i64,
    ) -> StoreResult<PresenceOutcome> {
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
            .bind(app.to_string())
            .bind(user)
            .execute(&mut *tx)
            .await
            .store()?;
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM presence WHERE app_id = $1 AND username = $2 AND resource <> $3 AND expires_at >= $4",
        )
        .bind(app)
        .bind(user)
        .bind(&d.resource)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .store()?;
        if others >= i64::from(max_devices) {
            return Ok(PresenceOutcome::TooManyDevices);
        }
        let old = sqlx::query(
            "SELECT resource, device_uuid, device_name, node_id, session_id FROM presence \
             WHERE app_id = $1 AND username = $2 AND resource = $3 AND expires_at >= $4",
        )
        .bind(app)
        .bind(user)
        .bind(&d.resource)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        let replaced = old.as_ref().map(device).transpose()?;
        sqlx::query(
            "INSERT INTO presence (app_id, username, resource, device_uuid, device_name, node_id, session_id, owner, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             COALESCE((SELECT owner FROM nodes WHERE node_id = $6), '00000000-0000-0000-0000-000000000000'), $8) \
             ON CONFLICT (app_id, username, resource) DO UPDATE SET device_uuid = EXCLUDED.device_uuid, \
             device_name = EXCLUDED.device_name, node_id = EXCLUDED.node_id, session_id = EXCLUDED.session_id, \
             owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at",
        )
        .bind(app)
        .bind(user)
        .bind(&d.resource)
        .bind(&d.device_uuid)
        .bind(&d.device_name)
        .bind(i32::from(d.node))
        .bind(d.session as i64)
        .bind(now + ttl_ms)
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()?;
        Ok(PresenceOutcome::Registered { replaced })
    }

    async fn unregister_presence(
        &self,
        app: Uuid,
        user: &str,
        resource: &str,
        node: u16,
        session: u64,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM presence WHERE app_id = $1 AND username = $2 AND resource = $3 AND node_id = $4 \
             AND session_id = $5",
        )
        .bind(app)
        .bind(user)
        .bind(resource)
        .bind(i32::from(node))
        .bind(session as i64)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }

    async fn online_devices(&self, app: Uuid, users: &[String], now: i64) -> StoreResult<Vec<(String, OnlineDevice)>> {
        let rows = sqlx::query(
            "SELECT username, resource, device_uuid, device_name, node_id, session_id FROM presence \
             WHERE app_id = $1 AND username = ANY($2) AND expires_at >= $3 ORDER BY username, resource",
        )
        .bind(app)
        .bind(users)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter().map(|r| Ok((r.try_get("username").store()?, device(r)?))).collect()
    }
}
