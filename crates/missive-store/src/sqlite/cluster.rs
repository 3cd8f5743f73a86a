//! `ClusterStore` on SQLite: node leases and presence. One embedded server is the only node
//! (its data directory lock), so nothing calls these in practice; they keep the backends'
//! meaning identical, which the conformance suite checks.

use std::collections::HashSet;

use async_trait::async_trait;
use missive_core::store::{ClusterStore, OnlineDevice, PresenceOutcome, StoreResult};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::SqlResultExt;

fn claim(c: &Connection, node: u16, owner: &str, now: i64, expires: i64) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO nodes (node_id, owner, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (node_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE nodes.expires_at < ?4 OR nodes.owner = excluded.owner",
        )
        .store()?
        .execute(params![node, owner, expires, now])
        .store()?;
    Ok(n > 0)
}

fn device(r: &rusqlite::Row<'_>, offset: usize) -> rusqlite::Result<OnlineDevice> {
    let node: i64 = r.get(offset + 3)?;
    let session: i64 = r.get(offset + 4)?;
    Ok(OnlineDevice {
        resource: r.get(offset)?,
        device_uuid: r.get(offset + 1)?,
        device_name: r.get(offset + 2)?,
        node: node as u16,
        session: session as u64,
    })
}

#[async_trait]
impl ClusterStore for SqliteStore {
    async fn lease_node_id(
        &self,
        wanted: Option<u16>,
        max_id: u16,
        owner: Uuid,
        now: i64,
        ttl_ms: i64,
    ) -> StoreResult<Option<u16>> {
        self.write(move |c| {
            let owner = owner.to_string();
            let expires = now + ttl_ms;
            if let Some(node) = wanted {
                return Ok(claim(c, node, &owner, now, expires)?.then_some(node));
            }
            let taken: HashSet<i64> = c
                .prepare_cached("SELECT node_id FROM nodes WHERE expires_at >= ?1 AND owner <> ?2")
                .store()?
                .query_map(params![now, owner], |r| r.get(0))
                .store()?
                .collect::<rusqlite::Result<_>>()
                .store()?;
            for node in 0..=max_id {
                if !taken.contains(&i64::from(node)) && claim(c, node, &owner, now, expires)? {
                    return Ok(Some(node));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn renew_node(&self, node: u16, owner: Uuid, now: i64, ttl_ms: i64) -> StoreResult<bool> {
        self.write(move |c| {
            let owner = owner.to_string();
            let kept = c
                .prepare_cached("UPDATE nodes SET expires_at = ?1 WHERE node_id = ?2 AND owner = ?3")
                .store()?
                .execute(params![now + ttl_ms, node, owner])
                .store()?
                > 0;
            c.prepare_cached("UPDATE presence SET expires_at = ?1 WHERE owner = ?2")
                .store()?
                .execute(params![now + ttl_ms, owner])
                .store()?;
            Ok(kept)
        })
        .await
    }

    async fn release_node(&self, node: u16, owner: Uuid) -> StoreResult<()> {
        self.write(move |c| {
            let owner = owner.to_string();
            c.prepare_cached("DELETE FROM presence WHERE owner = ?1").store()?.execute([&owner]).store()?;
            c.prepare_cached("DELETE FROM nodes WHERE node_id = ?1 AND owner = ?2")
                .store()?
                .execute(params![node, owner])
                .store()?;
            Ok(())
        })
        .await
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
        let (user, d) = (user.to_owned(), d.clone());
        self.write(move |c| {
            let app = app.to_string();
            let others: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM presence WHERE app_id = ?1 AND username = ?2 AND resource <> ?3 \
                     AND expires_at >= ?4",
                )
                .store()?
                .query_row(params![app, user, d.resource, now], |r| r.get(0))
                .store()?;
            if others >= i64::from(max_devices) {
                return Ok(PresenceOutcome::TooManyDevices);
            }
            let replaced = c
                .prepare_cached(
                    "SELECT resource, device_uuid, device_name, node_id, session_id FROM presence \
                     WHERE app_id = ?1 AND username = ?2 AND resource = ?3 AND expires_at >= ?4",
                )
                .store()?
                .query_row(params![app, user, d.resource, now], |r| device(r, 0))
                .optional()
                .store()?;
            let owner: String = c
                .prepare_cached("SELECT owner FROM nodes WHERE node_id = ?1")
                .store()?
                .query_row([d.node], |r| r.get(0))
                .optional()
                .store()?
                .unwrap_or_default();
            c.prepare_cached(
                "INSERT OR REPLACE INTO presence (app_id, username, resource, device_uuid, device_name, node_id, \
                 session_id, owner, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .store()?
            .execute(params![
                app,
                user,
                d.resource,
                d.device_uuid,
                d.device_name,
                d.node,
                d.session as i64,
                owner,
                now + ttl_ms
            ])
            .store()?;
            Ok(PresenceOutcome::Registered { replaced })
        })
        .await
    }

    async fn unregister_presence(
        &self,
        app: Uuid,
        user: &str,
        resource: &str,
        node: u16,
        session: u64,
    ) -> StoreResult<()> {
        let (user, resource) = (user.to_owned(), resource.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM presence WHERE app_id = ?1 AND username = ?2 AND resource = ?3 AND node_id = ?4 \
                 AND session_id = ?5",
            )
            .store()?
            .execute(params![app.to_string(), user, resource, node, session as i64])
            .store()?;
            Ok(())
        })
        .await
    }

    async fn online_devices(&self, app: Uuid, users: &[String], now: i64) -> StoreResult<Vec<(String, OnlineDevice)>> {
        let users = users.to_vec();
        self.read(move |c| {
            let mut out = Vec::new();
            for chunk in users.chunks(100) {
                let sql = format!(
                    "SELECT username, resource, device_uuid, device_name, node_id, session_id FROM presence \
                     WHERE app_id = ? AND expires_at >= ? AND username IN ({}) ORDER BY username, resource",
                    vec!["?"; chunk.len()].join(",")
                );
                let mut args: Vec<Value> = vec![app.to_string().into(), now.into()];
                args.extend(chunk.iter().map(|u| Value::from(u.clone())));
                let mut stmt = c.prepare_cached(&sql).store()?;
                let rows =
                    stmt.query_map(params_from_iter(args), |r| Ok((r.get::<_, String>(0)?, device(r, 1)?))).store()?;
                for r in rows {
                    out.push(r.store()?);
                }
            }
            Ok(out)
        })
        .await
    }
}
