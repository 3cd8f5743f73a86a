//! `OutboxStore` on SQLite. Every write goes through the writer thread, so a claim (one
//! `UPDATE … RETURNING`) is atomic against other claims of this process, and `BEGIN
//! IMMEDIATE` serializes it against another process's. Claims look for due entries on a
//! reader first, so an idle outbox costs the writer nothing.

use std::str::FromStr;

use async_trait::async_trait;
use missive_core::store::{
    ExceptionSlice, NewException, NewOutboxEntry, OutboxDepth, OutboxEntry, OutboxKind, OutboxStore, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::SqlResultExt;

/// The columns `entry` reads.
const ENTRY_COLUMNS: &str =
    "id, claim, app_id, kind, rule_id, dedup_key, payload, attempts, url_override, exception_id, created";

fn entry(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let app: String = row.get(2)?;
    let kind: i64 = row.get(3)?;
    let payload: String = row.get(6)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("outbox {what}").into())
    };
    Ok(OutboxEntry {
        id: row.get(0)?,
        claim: row.get(1)?,
        app_id: Uuid::from_str(&app).map_err(|_| bad("app id"))?,
        kind: OutboxKind::from_code(kind).ok_or_else(|| bad("kind"))?,
        rule_id: row.get(4)?,
        dedup_key: row.get(5)?,
        payload: serde_json::from_str(&payload).map_err(|_| bad("payload"))?,
        attempts: row.get::<_, i64>(7)?.max(0) as u32,
        url_override: row.get(8)?,
        exception_id: row.get(9)?,
        created: row.get(10)?,
    })
}

/// Inserts entries, ignoring duplicate keys. Called by `add_outbox` and, for entries a
/// message causes, by the writer inside the message's own transaction.
pub(crate) fn insert_entries(c: &Connection, entries: &[NewOutboxEntry], now: i64) -> StoreResult<()> {
    let mut stmt = c
        .prepare_cached(
            "INSERT INTO notify_outbox (app_id, kind, rule_id, dedup_key, payload, due_at, url_override, \
             exception_id, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (app_id, kind, dedup_key) DO NOTHING",
        )
        .store()?;
    for e in entries {
        stmt.execute(params![
            e.app_id.to_string(),
            e.kind.code(),
            e.rule_id,
            e.dedup_key,
            e.payload.to_string(),
            e.due_at,
            e.url_override,
            e.exception_id,
            now
        ])
        .store()?;
    }
    Ok(())
}

/// Deletes a claimed entry; the exception record it re-sent, if any, as `Some(Some(id))`.
/// `None` when the claim was lost.
fn delete_claimed(c: &Connection, id: i64, claim: i64) -> StoreResult<Option<Option<i64>>> {
    c.prepare_cached("DELETE FROM notify_outbox WHERE id = ?1 AND claim = ?2 RETURNING exception_id")
        .store()?
        .query_row(params![id, claim], |r| r.get::<_, Option<i64>>(0))
        .optional()
        .store()
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn add_outbox(&self, entries: Vec<NewOutboxEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = missive_core::id::now_ms() as i64;
        self.write(move |c| insert_entries(c, &entries, now)).await
    }

    async fn claim_outbox(&self, node: &str, limit: u32, lease_ms: i64, now: i64) -> StoreResult<Vec<OutboxEntry>> {
        let any_due = self
            .read(move |c| {
                c.prepare_cached("SELECT 1 FROM notify_outbox WHERE due_at <= ?1 LIMIT 1")
                    .store()?
                    .query_row([now], |_| Ok(()))
                    .optional()
                    .store()
            })
            .await?;
        if any_due.is_none() || limit == 0 {
            return Ok(Vec::new());
        }
        let node = node.to_owned();
        let claim = crate::claim_token();
        self.write(move |c| {
            let mut claimed = c
                .prepare_cached(&format!(
                    "UPDATE notify_outbox SET lease_owner = ?1, claim = ?2, due_at = ?3 + ?4 \
                     WHERE id IN (SELECT id FROM notify_outbox WHERE due_at <= ?3 ORDER BY due_at, id LIMIT ?5) \
                     RETURNING {ENTRY_COLUMNS}"
                ))
                .store()?
                .query_map(params![node, claim, now, lease_ms, i64::from(limit)], entry)
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()?;
            // RETURNING gives no order; hand them out oldest first as the query chose them.
            claimed.sort_by_key(|e| e.id);
            Ok(claimed)
        })
        .await
    }

    async fn complete_outbox(&self, done: &[(i64, i64)]) -> StoreResult<u64> {
        if done.is_empty() {
            return Ok(0);
        }
        let done = done.to_vec();
        self.write(move |c| {
            let mut n = 0;
            for (id, claim) in done {
                if let Some(resent) = delete_claimed(c, id, claim)? {
                    n += 1;
                    if let Some(exception) = resent {
                        c.prepare_cached("DELETE FROM notify_exceptions WHERE id = ?1")
                            .store()?
                            .execute([exception])
                            .store()?;
                    }
                }
            }
            Ok(n)
        })
        .await
    }

    async fn reschedule_outbox(
        &self,
        id: i64,
        claim: i64,
        due_at: i64,
        attempts: u32,
        last_error: &str,
    ) -> StoreResult<bool> {
        let last_error = last_error.to_owned();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE notify_outbox SET due_at = ?1, attempts = ?2, last_error = ?3, lease_owner = NULL, \
                     claim = NULL WHERE id = ?4 AND claim = ?5",
                )
                .store()?
                .execute(params![due_at, i64::from(attempts), last_error, id, claim])
                .store()?;
            Ok(n == 1)
        })
        .await
    }

    async fn give_up_outbox(&self, id: i64, claim: i64, exception: Option<NewException>) -> StoreResult<bool> {
        self.write(move |c| {
            let Some(resent) = delete_claimed(c, id, claim)? else { return Ok(false) };
            if let (Some(e), None) = (exception, resent) {
                c.prepare_cached(
                    "INSERT INTO notify_exceptions (app_id, rule_id, date_key, target_url, payload, reason, \
                     failed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .store()?
                .execute(params![
                    e.app_id.to_string(),
                    e.rule_id,
                    e.date_key,
                    e.target_url,
                    e.payload.to_string(),
                    e.reason,
                    e.failed_at
                ])
                .store()?;
            }
            Ok(true)
        })
        .await
    }

    async fn outbox_depth(&self, now: i64) -> StoreResult<OutboxDepth> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT COALESCE(SUM(CASE WHEN due_at <= ?1 THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN due_at > ?1 AND claim IS NULL THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN due_at > ?1 AND claim IS NOT NULL THEN 1 ELSE 0 END), 0), \
                 MIN(CASE WHEN due_at <= ?1 THEN created END) FROM notify_outbox",
            )
            .store()?
            .query_row([now], |r| {
                Ok(OutboxDepth {
                    due: r.get::<_, i64>(0)? as u64,
                    scheduled: r.get::<_, i64>(1)? as u64,
                    leased: r.get::<_, i64>(2)? as u64,
                    oldest_due_created: r.get(3)?,
                })
            })
            .store()
        })
        .await
    }

    async fn outbox_counts(&self) -> StoreResult<Vec<(Uuid, u64)>> {
        self.read(|c| {
            let rows = c
                .prepare_cached("SELECT app_id, COUNT(*) FROM notify_outbox GROUP BY app_id")
                .store()?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()?;
            Ok(rows.into_iter().filter_map(|(a, n)| Some((Uuid::from_str(&a).ok()?, n as u64))).collect())
        })
        .await
    }

    async fn exception_slices(&self, app: Uuid) -> StoreResult<Vec<ExceptionSlice>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT e.date_key, COUNT(*), COALESCE(r.retries, 0) FROM notify_exceptions e \
                 LEFT JOIN notify_exception_retries r ON r.app_id = e.app_id AND r.date_key = e.date_key \
                 WHERE e.app_id = ?1 GROUP BY e.date_key, r.retries ORDER BY e.date_key",
            )
            .store()?
            .query_map([app.to_string()], |r| {
                Ok(ExceptionSlice {
                    date_key: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    retries: r.get::<_, i64>(2)?.max(0) as u32,
                })
            })
            .store()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .store()
        })
        .await
    }

    async fn retry_exception_slice(
        &self,
        app: Uuid,
        date_key: &str,
        target_url: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let (date_key, target_url) = (date_key.to_owned(), target_url.map(str::to_owned));
        self.write(move |c| {
            let app_s = app.to_string();
            let size: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM notify_exceptions WHERE app_id = ?1 AND date_key = ?2")
                .store()?
                .query_row(params![app_s, date_key], |r| r.get(0))
                .store()?;
            if size == 0 {
                return Ok(0);
            }
            c.prepare_cached(
                "INSERT INTO notify_outbox (app_id, kind, rule_id, dedup_key, payload, due_at, url_override, \
                 exception_id, created) \
                 SELECT app_id, ?1, rule_id, 'exception/' || id, payload, ?2, ?3, id, ?2 FROM notify_exceptions \
                 WHERE app_id = ?4 AND date_key = ?5 ON CONFLICT (app_id, kind, dedup_key) DO NOTHING",
            )
            .store()?
            .execute(params![OutboxKind::Callback.code(), now, target_url, app_s, date_key])
            .store()?;
            c.prepare_cached(
                "INSERT INTO notify_exception_retries (app_id, date_key, retries) VALUES (?1, ?2, 1) \
                 ON CONFLICT (app_id, date_key) DO UPDATE SET retries = retries + 1",
            )
            .store()?
            .execute(params![app_s, date_key])
            .store()?;
            Ok(size as u64)
        })
        .await
    }

    async fn sweep_exceptions(&self, older_than: i64) -> StoreResult<u64> {
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM notify_exceptions WHERE failed_at < ?1")
                .store()?
                .execute([older_than])
                .store()?;
            c.prepare_cached(
                "DELETE FROM notify_exception_retries WHERE NOT EXISTS (SELECT 1 FROM notify_exceptions e \
                 WHERE e.app_id = notify_exception_retries.app_id AND e.date_key = notify_exception_retries.date_key)",
            )
            .store()?
            .execute([])
            .store()?;
            Ok(n as u64)
        })
        .await
    }
}
