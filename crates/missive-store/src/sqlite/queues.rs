//! `QueueStore` on SQLite: reads here, writes through the group commit (`writer`).

use std::sync::Arc;

use async_trait::async_trait;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::{DeviceInfo, IdempotencyRecord, QueuedMessage};
use missive_core::store::{
    AckReceipt, CommitListener, EnqueueRequest, PendingPage, QueueCount, QueueStore, RecallOutcome, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{self, MESSAGE_COLUMNS, SqlResultExt, UNDELIVERED, UNDELIVERED_OF_OWNER};
use crate::group_commit::{AckWrite, DeviceWrite};

#[async_trait]
impl QueueStore for SqliteStore {
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
        let key = key.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT response, created FROM idempotency WHERE app_id = ?1 AND key = ?2")
                .store()?
                .query_row(params![app.to_string(), key], |r| {
                    Ok(IdempotencyRecord { app_id: app, key: key.clone(), response: r.get(0)?, created: r.get(1)? })
                })
                .optional()
                .store()
        })
        .await
    }

    async fn sweep_idempotency(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM idempotency WHERE created < ?1")
                .store()?
                .execute([before_ms])
                .store()
                .map(|n| n as u64)
        })
        .await
    }

    async fn offline_count(&self, app: Uuid, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT COUNT(*) {UNDELIVERED_OF_OWNER}"))
                .store()?
                .query_row(params![app.to_string(), owner], |r| r.get::<_, i64>(0))
                .store()
                .map(|n| n as u64)
        })
        .await
    }

    async fn queued_total(&self) -> StoreResult<u64> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT COUNT(*) {UNDELIVERED}"))
                .store()?
                .query_row([], |r| r.get::<_, i64>(0))
                .store()
                .map(|n| n as u64)
        })
        .await
    }

    async fn message(&self, app: Uuid, id: MsgId) -> StoreResult<Option<QueuedMessage>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1 AND app_id = ?2"))
                .store()?
                .query_row(params![id.0 as i64, app.to_string()], rows::message)
                .optional()
                .store()?
                .map(|m| with_delivered(c, m))
                .transpose()
        })
        .await
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
        let (owner, resource) = (owner.to_owned(), resource.to_owned());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT q.queue, COUNT(*), MAX(m.seq) FROM queues q \
                 LEFT JOIN cursors c ON c.app_id = q.app_id AND c.owner = q.owner AND c.queue = q.queue \
                 AND c.resource = ?1 \
                 CROSS JOIN messages m ON m.qid = q.id AND m.seq > COALESCE(c.acked, 0) \
                 WHERE q.app_id = ?2 AND q.owner = ?3 GROUP BY q.queue ORDER BY MIN(m.id)",
            )
            .store()?
            .query_map(params![resource, app.to_string(), owner], |r| {
                Ok(QueueCount {
                    queue: r.get(0)?,
                    pending: r.get::<_, i64>(1)? as u32,
                    last_seq: r.get::<_, i64>(2)? as u64,
                })
            })
            .store()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .store()
        })
        .await
    }

    async fn submit_ack(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        seq: u64,
    ) -> StoreResult<AckReceipt> {
        // Through the group commit, like messages: every pull acks, so acks are as frequent
        // as deliveries, and one fsync each would cap delivery at the disk's fsync rate.
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
        let (owner, resource, queue) = (owner.to_owned(), resource.to_owned(), queue.to_owned());
        self.read(move |c| {
            let app_s = app.to_string();
            // The head first, then the rows: every sequence up to the head committed before
            // the rows were read, so a short page really holds everything up to the head.
            // A queue without a row has never been written: id 0 matches no message.
            let (qid, head, delivered): (i64, i64, i64) = c
                .prepare_cached(
                    "SELECT id, head, delivered FROM queues WHERE app_id = ?1 AND owner = ?2 AND queue = ?3",
                )
                .store()?
                .query_row(params![app_s, owner, queue], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .store()?
                .unwrap_or((0, 0, 0));
            let cursor: i64 = c
                .prepare_cached(
                    "SELECT acked FROM cursors WHERE app_id = ?1 AND owner = ?2 AND resource = ?3 AND queue = ?4",
                )
                .store()?
                .query_row(params![app_s, owner, resource, queue], |r| r.get(0))
                .optional()
                .store()?
                .unwrap_or(0);
            let from = (after as i64).max(cursor);
            let messages = c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE qid = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                ))
                .store()?
                .query_map(params![qid, from, i64::from(limit)], |r| {
                    let mut m = rows::message(r)?;
                    m.delivered = m.seq <= delivered as u64;
                    Ok(Arc::new(m))
                })
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()?;
            Ok(PendingPage { messages, head: head as u64, cursor: cursor as u64 })
        })
        .await
    }

    async fn sweep(&self, floor: MsgId) -> StoreResult<u64> {
        self.write(move |c| {
            let mut removed =
                c.prepare_cached("DELETE FROM messages WHERE id < ?1").store()?.execute([floor.0 as i64]).store()?
                    as u64;
            removed += c
                .prepare_cached("DELETE FROM devices WHERE last_seen < ?1")
                .store()?
                .execute([floor.unix_ms() as i64])
                .store()? as u64;
            c.prepare_cached(
                "DELETE FROM cursors WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.app_id = cursors.app_id \
                 AND d.owner = cursors.owner AND d.resource = cursors.resource)",
            )
            .store()?
            .execute([])
            .store()?;
            c.prepare_cached("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?1")
                .store()?
                .execute([now_ms() as i64])
                .store()?;
            Ok(removed)
        })
        .await
    }
}

/// `m` with `delivered` set from its queue's delivered prefix: the flag is the queue's, not
/// the row's, so `rows::message` cannot see it.
pub(super) fn with_delivered(c: &Connection, mut m: QueuedMessage) -> StoreResult<QueuedMessage> {
    let prefix: Option<i64> = c
        .prepare_cached("SELECT delivered FROM queues WHERE app_id = ?1 AND owner = ?2 AND queue = ?3")
        .store()?
        .query_row(params![m.app_id.to_string(), m.owner, m.queue], |r| r.get(0))
        .optional()
        .store()?;
    m.delivered = m.seq <= prefix.unwrap_or(0) as u64;
    Ok(m)
}
