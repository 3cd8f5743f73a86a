//! `OutboxStore` on PostgreSQL. Claims take their rows with `FOR UPDATE SKIP LOCKED`, so the
//! nodes of a cluster claiming at the same moment skip each other's rows instead of waiting
//! for them or taking them twice; everything else is conditional on the claim token.

use async_trait::async_trait;
use missive_core::store::{
    ExceptionSlice, NewException, NewOutboxEntry, OutboxDepth, OutboxEntry, OutboxKind, OutboxStore, StoreError,
    StoreResult,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::PgStore;
use super::rows::PgResultExt;

const ENTRY_COLUMNS: &str = "o.id, o.claim, o.app_id, o.kind, o.rule_id, o.dedup_key, o.payload, o.attempts, \
     o.url_override, o.exception_id, o.created";

fn entry(row: &PgRow) -> StoreResult<OutboxEntry> {
    let kind: i16 = row.try_get("kind").store()?;
    let payload: String = row.try_get("payload").store()?;
    let attempts: i32 = row.try_get("attempts").store()?;
    Ok(OutboxEntry {
        id: row.try_get("id").store()?,
        claim: row.try_get("claim").store()?,
        app_id: row.try_get("app_id").store()?,
        kind: OutboxKind::from_code(i64::from(kind))
            .ok_or_else(|| StoreError::Backend(format!("outbox kind {kind}")))?,
        rule_id: row.try_get("rule_id").store()?,
        dedup_key: row.try_get("dedup_key").store()?,
        payload: serde_json::from_str(&payload).map_err(|e| StoreError::Backend(format!("outbox payload: {e}")))?,
        attempts: attempts.max(0) as u32,
        url_override: row.try_get("url_override").store()?,
        exception_id: row.try_get("exception_id").store()?,
        created: row.try_get("created").store()?,
    })
}

/// Inserts entries in one statement, ignoring duplicate keys. Used by `add_outbox` and by
/// the group commit, inside the transaction of the messages that caused them.
pub(crate) async fn insert_entries(tx: &mut PgConnection, entries: &[&NewOutboxEntry]) -> Result<(), sqlx::Error> {
    let now = missive_core::id::now_ms() as i64;
    let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in entries {
        cols.0.push(e.app_id);
        cols.1.push(e.kind.code() as i16);
        cols.2.push(e.rule_id.clone());
        cols.3.push(e.dedup_key.clone());
        cols.4.push(e.payload.to_string());
        cols.5.push(e.due_at);
        cols.6.push(e.url_override.clone());
        cols.7.push(e.exception_id);
    }
    sqlx::query(
        "INSERT INTO notify_outbox (app_id, kind, rule_id, dedup_key, payload, due_at, url_override, exception_id, \
         created) SELECT a, k, r, d, p, t, u, x, $9 FROM UNNEST($1::uuid[], $2::smallint[], $3::text[], $4::text[], \
         $5::text[], $6::bigint[], $7::text[], $8::bigint[]) AS e(a, k, r, d, p, t, u, x) \
         ON CONFLICT (app_id, kind, dedup_key) DO NOTHING",
    )
    .bind(cols.0)
    .bind(cols.1)
    .bind(cols.2)
    .bind(cols.3)
    .bind(cols.4)
    .bind(cols.5)
    .bind(cols.6)
    .bind(cols.7)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn add_outbox(&self, entries: Vec<NewOutboxEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await.store()?;
        insert_entries(&mut conn, &entries.iter().collect::<Vec<_>>()).await.store()
    }

    async fn claim_outbox(&self, node: &str, limit: u32, lease_ms: i64, now: i64) -> StoreResult<Vec<OutboxEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let claim = crate::claim_token();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE notify_outbox o SET lease_owner = $1, claim = $2, due_at = $3 + $4 \
             FROM (SELECT id FROM notify_outbox WHERE due_at <= $3 ORDER BY due_at, id LIMIT $5 \
             FOR UPDATE SKIP LOCKED) d WHERE o.id = d.id RETURNING {ENTRY_COLUMNS}"
        )))
        .bind(node)
        .bind(claim)
        .bind(now)
        .bind(lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .store()?;
        let mut claimed = rows.iter().map(entry).collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|e| e.id);
        Ok(claimed)
    }

    async fn complete_outbox(&self, done: &[(i64, i64)]) -> StoreResult<u64> {
        if done.is_empty() {
            return Ok(0);
        }
        let (ids, claims): (Vec<i64>, Vec<i64>) = done.iter().copied().unzip();
        let n: i64 = sqlx::query_scalar(
            "WITH d AS (DELETE FROM notify_outbox o USING UNNEST($1::bigint[], $2::bigint[]) AS c(id, claim) \
             WHERE o.id = c.id AND o.claim = c.claim RETURNING o.exception_id), \
             e AS (DELETE FROM notify_exceptions WHERE id IN (SELECT exception_id FROM d)) \
             SELECT COUNT(*) FROM d",
        )
        .bind(ids)
        .bind(claims)
        .fetch_one(&self.pool)
        .await
        .store()?;
        Ok(n as u64)
    }

    async fn reschedule_outbox(
        &self,
        id: i64,
        claim: i64,
        due_at: i64,
        attempts: u32,
        last_error: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE notify_outbox SET due_at = $1, attempts = $2, last_error = $3, lease_owner = NULL, claim = NULL \
             WHERE id = $4 AND claim = $5",
        )
        .bind(due_at)
        .bind(attempts.min(i32::MAX as u32) as i32)
        .bind(last_error)
        .bind(id)
        .bind(claim)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(done.rows_affected() == 1)
    }

    async fn give_up_outbox(&self, id: i64, claim: i64, exception: Option<NewException>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.store()?;
        let resent: Option<Option<i64>> =
            sqlx::query_scalar("DELETE FROM notify_outbox WHERE id = $1 AND claim = $2 RETURNING exception_id")
                .bind(id)
                .bind(claim)
                .fetch_optional(&mut *tx)
                .await
                .store()?;
        let Some(resent) = resent else { return Ok(false) };
        if let (Some(e), None) = (exception, resent) {
            sqlx::query(
                "INSERT INTO notify_exceptions (app_id, rule_id, date_key, target_url, payload, reason, failed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.app_id)
            .bind(&e.rule_id)
            .bind(&e.date_key)
            .bind(&e.target_url)
            .bind(e.payload.to_string())
            .bind(&e.reason)
            .bind(e.failed_at)
            .execute(&mut *tx)
            .await
            .store()?;
        }
        tx.commit().await.store()?;
        Ok(true)
    }

    async fn outbox_depth(&self, now: i64) -> StoreResult<OutboxDepth> {
        let row = sqlx::query(
            "SELECT COUNT(*) FILTER (WHERE due_at <= $1), \
             COUNT(*) FILTER (WHERE due_at > $1 AND claim IS NULL), \
             COUNT(*) FILTER (WHERE due_at > $1 AND claim IS NOT NULL), \
             MIN(created) FILTER (WHERE due_at <= $1) FROM notify_outbox",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .store()?;
        let count = |i: usize| -> StoreResult<u64> { Ok(row.try_get::<i64, _>(i).store()? as u64) };
        Ok(OutboxDepth {
            due: count(0)?,
            scheduled: count(1)?,
            leased: count(2)?,
            oldest_due_created: row.try_get(3).store()?,
        })
    }

    async fn outbox_counts(&self) -> StoreResult<Vec<(Uuid, u64)>> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as("SELECT app_id, COUNT(*) FROM notify_outbox GROUP BY app_id")
            .fetch_all(&self.pool)
            .await
            .store()?;
        Ok(rows.into_iter().map(|(a, n)| (a, n as u64)).collect())
    }

    async fn exception_slices(&self, app: Uuid) -> StoreResult<Vec<ExceptionSlice>> {
        let rows: Vec<(String, i64, i32)> = sqlx::query_as(
            "SELECT e.date_key, COUNT(*), COALESCE(r.retries, 0) FROM notify_exceptions e \
             LEFT JOIN notify_exception_retries r ON r.app_id = e.app_id AND r.date_key = e.date_key \
             WHERE e.app_id = $1 GROUP BY e.date_key, r.retries ORDER BY e.date_key",
        )
        .bind(app)
        .fetch_all(&self.pool)
        .await
        .store()?;
        Ok(rows
            .into_iter()
            .map(|(date_key, size, retries)| ExceptionSlice {
                date_key,
                size: size as u64,
                retries: retries.max(0) as u32,
            })
            .collect())
    }

    async fn retry_exception_slice(
        &self,
        app: Uuid,
        date_key: &str,
        target_url: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.store()?;
        let size: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM notify_exceptions WHERE app_id = $1 AND date_key = $2")
                .bind(app)
                .bind(date_key)
                .fetch_one(&mut *tx)
                .await
                .store()?;
        if size == 0 {
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO notify_outbox (app_id, kind, rule_id, dedup_key, payload, due_at, url_override, \
             exception_id, created) \
             SELECT app_id, $1, rule_id, 'exception/' || id, payload, $2, $3, id, $2 FROM notify_exceptions \
             WHERE app_id = $4 AND date_key = $5 ON CONFLICT (app_id, kind, dedup_key) DO NOTHING",
        )
        .bind(OutboxKind::Callback.code() as i16)
        .bind(now)
        .bind(target_url)
        .bind(app)
        .bind(date_key)
        .execute(&mut *tx)
        .await
        .store()?;
        sqlx::query(
            "INSERT INTO notify_exception_retries (app_id, date_key, retries) VALUES ($1, $2, 1) \
             ON CONFLICT (app_id, date_key) DO UPDATE SET retries = notify_exception_retries.retries + 1",
        )
        .bind(app)
        .bind(date_key)
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()?;
        Ok(size as u64)
    }

    async fn sweep_exceptions(&self, older_than: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.store()?;
        let n = sqlx::query("DELETE FROM notify_exceptions WHERE failed_at < $1")
            .bind(older_than)
            .execute(&mut *tx)
            .await
            .store()?
            .rows_affected();
        sqlx::query(
            "DELETE FROM notify_exception_retries r WHERE NOT EXISTS (SELECT 1 FROM notify_exceptions e \
             WHERE e.app_id = r.app_id AND e.date_key = r.date_key)",
        )
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()?;
        Ok(n)
    }
}
