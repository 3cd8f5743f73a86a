//! `QueueStore` on PostgreSQL: reads here, writes through the group commit (`writer`).

use std::sync::Arc;

use async_trait::async_trait;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::{DeviceInfo, IdempotencyRecord, QueuedMessage};
use missive_core::store::{
    AckReceipt, CommitListener, EnqueueRequest, PendingPage, QueueCount, QueueStore, RecallOutcome, StoreResult,
};
use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use super::rows::{self, MESSAGE_COLUMNS, PgResultExt};
use crate::group_commit::{AckWrite, DeviceWrite};

#[async_trait]
impl QueueStore for PgStore {
    fn set_commit_listener(&self, listener: Arc<dyn CommitListener>) {
        self.listener.set(listener);
    }

    async fn enqueue(&self, request: EnqueueRequest) -> StoreResult<Vec<Arc<QueuedMessage>>> {
        if request.messages.is_empty() && request.record.is_none() && request.outbox.is_empty() {
            return Ok(Vec::new());
        }
        self.jobs.enqueue(request).await
    }

    async fn idempotency_record(&self, app: Uuid, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let row = sqlx::query("SELECT response, created FROM idempotency WHERE app_id = $1 AND key = $2")
            .bind(app)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .store()?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(IdempotencyRecord {
            app_id: app,
            key: key.to_owned(),
            response: row.try_get("response").store()?,
            created: row.try_get("created").store()?,
        }))
    }

    async fn sweep_idempotency(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency WHERE created < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(done.rows_affected())
    }

    async fn offline_count(&self, app: Uuid, owner: &str) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE app_id = $1 AND owner = $2 AND NOT delivered")
                .bind(app)
                .bind(owner)
                .fetch_one(&self.pool)
                .await
                .store()?;
        Ok(n as u64)
    }

    async fn queued_total(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE NOT delivered")
            .fetch_one(&self.pool)
            .await
            .store()?;
        Ok(n as u64)
    }

    async fn message(&self, app: Uuid, id: MsgId) -> StoreResult<Option<QueuedMessage>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND app_id = $2"
        )))
        .bind(id.0 as i64)
        .bind(app)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(rows::message).transpose()
    }

    async fn recall(&self, app: Uuid, id: MsgId) -> StoreResult<RecallOutcome> {
        self.jobs.recall(app, id).await
    }

    async fn register_device(&self, app: Uuid, owner: &str, device: &DeviceInfo) -> StoreResult<bool> {
        self.jobs
            .device(DeviceWrite { app, owner: owner.to_owned(), device: device.clone(), now: now_ms() as i64 })
            .await
    }

    async fn pending_counts(&self, app: Uuid, owner: &str, resource: &str) -> StoreResult<Vec<QueueCount>> {
        let rows = sqlx::query(
            "SELECT m.queue, COUNT(*) AS n, MAX(m.seq) AS last_seq FROM messages m \
             LEFT JOIN cursors c ON c.app_id = m.app_id AND c.owner = m.owner AND c.queue = m.queue \
             AND c.resource = $1 \
             WHERE m.app_id = $2 AND m.owner = $3 AND m.seq > COALESCE(c.acked, 0) \
             GROUP BY m.queue ORDER BY MIN(m.id)",
        )
        .bind(resource)
        .bind(app)
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n").store()?;
                let last: i64 = r.try_get("last_seq").store()?;
                Ok(QueueCount { queue: r.try_get("queue").store()?, pending: n as u32, last_seq: last as u64 })
            })
            .collect()
    }

    async fn submit_ack(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        seq: u64,
    ) -> StoreResult<AckReceipt> {
        self.jobs
            .submit_ack(AckWrite {
                app,
                owner: owner.to_owned(),
                resource: resource.to_owned(),
                queue: queue.to_owned(),
                seq,
            })
            .await
    }

    async fn pending(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<PendingPage> {
        // One statement, so the head, the cursor and the rows come from one snapshot; at
        // least one row comes back, with NULL message columns when the page is empty.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT hc.head, hc.acked, m.* FROM \
             (SELECT COALESCE((SELECT head FROM queues WHERE app_id = $1 AND owner = $2 AND queue = $3), 0) AS head, \
                     COALESCE((SELECT acked FROM cursors WHERE app_id = $1 AND owner = $2 AND resource = $4 \
                               AND queue = $3), 0) AS acked) hc \
             LEFT JOIN LATERAL (SELECT {MESSAGE_COLUMNS} FROM messages WHERE app_id = $1 AND owner = $2 \
                AND queue = $3 AND seq > GREATEST($5, hc.acked) ORDER BY seq LIMIT $6) m ON true"
        )))
        .bind(app)
        .bind(owner)
        .bind(queue)
        .bind(resource)
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .store()?;
        let mut page = PendingPage::default();
        for row in &rows {
            page.head = row.try_get::<i64, _>("head").store()? as u64;
            page.cursor = row.try_get::<i64, _>("acked").store()? as u64;
            if row.try_get::<Option<i64>, _>("id").store()?.is_some() {
                page.messages.push(Arc::new(rows::message(row)?));
            }
        }
        Ok(page)
    }

    async fn sweep(&self, floor: MsgId) -> StoreResult<u64> {
        let mut removed = sqlx::query("DELETE FROM messages WHERE id < $1")
            .bind(floor.0 as i64)
            .execute(&self.pool)
            .await
            .store()?
            .rows_affected();
        removed += sqlx::query("DELETE FROM devices WHERE last_seen < $1")
            .bind(floor.unix_ms() as i64)
            .execute(&self.pool)
            .await
            .store()?
            .rows_affected();
        sqlx::query(
            "DELETE FROM cursors c WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.app_id = c.app_id \
             AND d.owner = c.owner AND d.resource = c.resource)",
        )
        .execute(&self.pool)
        .await
        .store()?;
        sqlx::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < $1")
            .bind(now_ms() as i64)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(removed)
    }
}
