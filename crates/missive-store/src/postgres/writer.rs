//! The PostgreSQL group-commit writer: one transaction per batch of delivery-path jobs, with
//! set-based statements (`UNNEST`) so a batch of a thousand messages is a handful of round
//! trips, not a thousand.
//!
//! Rows are locked in one global order — queue heads sorted by (app, owner, queue), cursors
//! sorted likewise — so batches of different nodes cannot deadlock on each other; if the
//! database still reports a deadlock or serialization failure, the batch is retried. Any
//! other failure retries each job alone, so one bad job cannot fail its neighbours.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use missive_core::model::QueuedMessage;
use missive_core::store::{NewArchived, NewOutboxEntry, RecallOutcome, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::rows::{self, MESSAGE_COLUMNS, is_retryable};
use crate::backlog::{self, Backlog};
use crate::group_commit::{BatchTiming, BatchWriter, DeviceWrite, ListenerSlot, QueueJob, QueueWrite, Written, finish};

/// Attempts of a batch that lost a deadlock or serialization race.
const RACE_RETRIES: usize = 3;

pub(crate) struct PgWriter {
    pool: PgPool,
    backlog: Backlog,
    listener: Arc<ListenerSlot>,
}

/// (app, owner, queue), in the order rows are locked.
type QueueKey = (Uuid, String, String);

impl PgWriter {
    pub fn new(pool: PgPool, listener: Arc<ListenerSlot>) -> PgWriter {
        PgWriter { pool, backlog: Backlog::default(), listener }
    }

    /// Writes `writes` in one transaction. Returns one result per write, and the recipients'
    /// new cap bounds to apply if the commit succeeded.
    async fn write(&mut self, writes: &[&QueueWrite]) -> Result<(Vec<Written>, Vec<(Uuid, String, u32)>), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut out: Vec<Option<Written>> = writes.iter().map(|_| None).collect();

        // Messages: one head update for every queue, one insert for every message.
        let enqueues: Vec<(usize, &missive_core::store::EnqueueRequest)> = writes
            .iter()
            .enumerate()
            .filter_map(|(i, w)| match w {
                QueueWrite::Enqueue(e) => Some((i, e)),
                _ => None,
            })
            .collect();
        let mut bounds = Vec::new();
        if enqueues.iter().any(|(_, e)| !e.messages.is_empty()) {
            let mut counts: BTreeMap<QueueKey, i64> = BTreeMap::new();
            for (_, e) in &enqueues {
                for m in &e.messages {
                    *counts.entry((m.app_id, m.owner.clone(), m.queue.clone())).or_default() += 1;
                }
            }
            let (apps, owners, queues, ns) = unzip4(counts.iter().map(|((a, o, q), n)| (*a, o.clone(), q.clone(), *n)));
            let heads = sqlx::query(
                "INSERT INTO queues (app_id, owner, queue, head) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[]) \
                 ON CONFLICT (app_id, owner, queue) DO UPDATE SET head = queues.head + EXCLUDED.head \
                 RETURNING app_id, owner, queue, head",
            )
            .bind(apps)
            .bind(owners)
            .bind(queues)
            .bind(ns)
            .fetch_all(&mut *tx)
            .await?;
            // The next sequence to hand out per queue: new head - count + 1.
            let mut next: BTreeMap<QueueKey, i64> = BTreeMap::new();
            for row in heads {
                let key: QueueKey = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                let head: i64 = row.try_get(3)?;
                let n = counts.get(&key).copied().unwrap_or(0);
                next.insert(key, head - n + 1);
            }
            let mut cols = MessageColumns::default();
            for (i, e) in &enqueues {
                let mut stored = Vec::with_capacity(e.messages.len());
                for m in &e.messages {
                    let slot = next
                        .get_mut(&(m.app_id, m.owner.clone(), m.queue.clone()))
                        .ok_or_else(|| sqlx::Error::Protocol("queue head missing from RETURNING".into()))?;
                    let seq = *slot;
                    *slot += 1;
                    cols.push(m, seq);
                    stored.push(Arc::new(m.clone().queued(seq as u64)));
                }
                out[*i] = Some(Written::Enqueued(stored));
            }
            sqlx::query(
                "INSERT INTO messages (id, app_id, owner, queue, sender, created, payload, seq) \
                 SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
                 $7::bytea[], $8::bigint[])",
            )
            .bind(cols.id)
            .bind(cols.app)
            .bind(cols.owner)
            .bind(cols.queue)
            .bind(cols.sender)
            .bind(cols.created)
            .bind(cols.payload)
            .bind(cols.seq)
            .execute(&mut *tx)
            .await?;
            // The per-recipient cap, checked only where this node's bound says it may be hit.
            let caps = enqueues.iter().flat_map(|(_, e)| e.messages.iter().map(|m| (m, e.policy.max_offline_per_user)));
            for a in backlog::added(caps) {
                let bound = match self.backlog.within_cap(&a) {
                    Some(n) => n,
                    None => enforce_cap(&mut tx, a.app, a.owner, a.cap).await?,
                };
                bounds.push((a.app, a.owner.to_owned(), bound));
            }
        }
        let archive: Vec<&NewArchived> = enqueues.iter().flat_map(|(_, e)| &e.archive).collect();
        super::history::insert(&mut tx, &archive).await?;
        let outbox: Vec<&NewOutboxEntry> = enqueues.iter().flat_map(|(_, e)| &e.outbox).collect();
        if !outbox.is_empty() {
            super::outbox::insert_entries(&mut tx, &outbox).await?;
        }
        for (i, e) in &enqueues {
            if let Some(record) = &e.record {
                sqlx::query(
                    "INSERT INTO idempotency (app_id, key, response, created) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (app_id, key) DO UPDATE SET response = EXCLUDED.response, created = EXCLUDED.created",
                )
                .bind(record.app_id)
                .bind(&record.key)
                .bind(&record.response)
                .bind(record.created)
                .execute(&mut *tx)
                .await?;
            }
            out[*i].get_or_insert(Written::Enqueued(Vec::new()));
        }

        // Acks: the highest sequence per cursor, sorted, in two set-based statements.
        let mut acks: BTreeMap<(Uuid, String, String, String), i64> = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            if let QueueWrite::Ack(a) = w {
                let key = (a.app, a.owner.clone(), a.resource.clone(), a.queue.clone());
                let seq = acks.entry(key).or_default();
                *seq = (*seq).max(a.seq as i64);
                out[i] = Some(Written::Acked);
            }
        }
        if !acks.is_empty() {
            write_acks(&mut tx, &acks).await?;
        }

        for (i, w) in writes.iter().enumerate() {
            match w {
                QueueWrite::Device(d) => out[i] = Some(Written::Device(write_device(&mut tx, d).await?)),
                QueueWrite::Recall { app, id } => {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM messages WHERE id = $1 AND app_id = $2 RETURNING {MESSAGE_COLUMNS}"
                    )))
                    .bind(id.0 as i64)
                    .bind(app)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let removed = row.as_ref().map(message_row).transpose()?;
                    // Gone from history for both parties too, even if the queue had dropped it.
                    super::history::recall(&mut tx, *app, *id).await?;
                    out[i] = Some(Written::Recalled(match removed {
                        None => RecallOutcome::NotFound,
                        Some(m) if m.delivered => RecallOutcome::RemovedDelivered(m),
                        Some(m) => RecallOutcome::RemovedUndelivered(m),
                    }));
                }
                _ => {}
            }
        }
        tx.commit().await?;
        let written = out
            .into_iter()
            .map(|w| w.ok_or_else(|| sqlx::Error::Protocol("a write produced no result".into())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((written, bounds))
    }

    /// `write` with the retry rules of the module doc.
    async fn write_with_retries(&mut self, writes: &[&QueueWrite]) -> Vec<StoreResult<Written>> {
        let mut attempt = 0;
        loop {
            match self.write(writes).await {
                Ok((written, bounds)) => {
                    for (app, owner, n) in bounds {
                        self.backlog.set(app, &owner, n);
                    }
                    return written.into_iter().map(Ok).collect();
                }
                Err(e) if is_retryable(&e) && attempt < RACE_RETRIES => attempt += 1,
                Err(e) if writes.len() > 1 => {
                    tracing::warn!(err = %e, jobs = writes.len(), "group commit failed; retrying jobs one by one");
                    let mut results = Vec::with_capacity(writes.len());
                    for w in writes {
                        results.extend(Box::pin(self.write_with_retries(std::slice::from_ref(w))).await);
                    }
                    return results;
                }
                Err(e) => return vec![Err(rows::map_err(e))],
            }
        }
    }
}

fn message_row(row: &PgRow) -> Result<QueuedMessage, sqlx::Error> {
    rows::message(row).map_err(|e| sqlx::Error::Protocol(e.to_string()))
}

/// Deletes a recipient's oldest undelivered messages beyond `cap`; returns the count left.
async fn enforce_cap(tx: &mut PgConnection, app: Uuid, owner: &str, cap: u32) -> Result<u32, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE app_id = $1 AND owner = $2 AND NOT delivered LIMIT $3) t",
    )
    .bind(app)
    .bind(owner)
    .bind(i64::from(cap) + 1)
    .fetch_one(&mut *tx)
    .await?;
    if count > i64::from(cap) {
        sqlx::query(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE app_id = $1 AND owner = $2 \
             AND NOT delivered ORDER BY id DESC OFFSET $3)",
        )
        .bind(app)
        .bind(owner)
        .bind(i64::from(cap))
        .execute(&mut *tx)
        .await?;
    }
    Ok(count.min(i64::from(cap)) as u32)
}

async fn write_acks(
    tx: &mut PgConnection,
    acks: &BTreeMap<(Uuid, String, String, String), i64>,
) -> Result<(), sqlx::Error> {
    let mut apps = Vec::with_capacity(acks.len());
    let (mut owners, mut resources, mut queues, mut seqs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((app, owner, resource, queue), seq) in acks {
        apps.push(*app);
        owners.push(owner.as_str());
        resources.push(resource.as_str());
        queues.push(queue.as_str());
        seqs.push(*seq);
    }
    sqlx::query(
        "INSERT INTO cursors (app_id, owner, resource, queue, acked) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
         ON CONFLICT (app_id, owner, resource, queue) DO UPDATE SET acked = GREATEST(cursors.acked, EXCLUDED.acked)",
    )
    .bind(&apps)
    .bind(&owners)
    .bind(&resources)
    .bind(&queues)
    .bind(&seqs)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE messages m SET delivered = true \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS a(app_id, owner, queue, seq) \
         WHERE m.app_id = a.app_id AND m.owner = a.owner AND m.queue = a.queue AND m.seq <= a.seq AND NOT m.delivered",
    )
    .bind(&apps)
    .bind(&owners)
    .bind(&queues)
    .bind(&seqs)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records a device login; true when the resource is new.
async fn write_device(tx: &mut PgConnection, d: &DeviceWrite) -> Result<bool, sqlx::Error> {
    let inserted: bool = sqlx::query_scalar(
        "INSERT INTO devices (app_id, owner, resource, device_uuid, device_name, first_seen, last_seen) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (app_id, owner, resource) DO UPDATE SET last_seen = EXCLUDED.last_seen, \
         device_uuid = EXCLUDED.device_uuid, device_name = EXCLUDED.device_name \
         RETURNING (xmax = 0)",
    )
    .bind(d.app)
    .bind(&d.owner)
    .bind(&d.device.resource)
    .bind(&d.device.device_uuid)
    .bind(&d.device.device_name)
    .bind(d.now)
    .fetch_one(&mut *tx)
    .await?;
    if inserted {
        // A new device starts where the user's delivered prefix of each queue ends.
        sqlx::query(
            "INSERT INTO cursors (app_id, owner, resource, queue, acked) \
             SELECT app_id, owner, $3, queue, COALESCE(MAX(seq) FILTER (WHERE delivered), 0) \
             FROM messages WHERE app_id = $1 AND owner = $2 GROUP BY app_id, owner, queue \
             ON CONFLICT (app_id, owner, resource, queue) DO UPDATE SET acked = EXCLUDED.acked",
        )
        .bind(d.app)
        .bind(&d.owner)
        .bind(&d.device.resource)
        .execute(&mut *tx)
        .await?;
    }
    Ok(inserted)
}

/// The columns of a batch's messages, as arrays for one `UNNEST` insert.
#[derive(Default)]
struct MessageColumns {
    id: Vec<i64>,
    app: Vec<Uuid>,
    owner: Vec<String>,
    queue: Vec<String>,
    sender: Vec<String>,
    created: Vec<i64>,
    payload: Vec<Vec<u8>>,
    seq: Vec<i64>,
}

impl MessageColumns {
    fn push(&mut self, m: &missive_core::model::NewMessage, seq: i64) {
        self.id.push(m.id.0 as i64);
        self.app.push(m.app_id);
        self.owner.push(m.owner.clone());
        self.queue.push(m.queue.clone());
        self.sender.push(m.sender.clone());
        self.created.push(m.created);
        self.payload.push(m.payload.to_vec());
        self.seq.push(seq);
    }
}

fn unzip4<A, B, C, D>(it: impl Iterator<Item = (A, B, C, D)>) -> (Vec<A>, Vec<B>, Vec<C>, Vec<D>) {
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (w, x, y, z) in it {
        a.push(w);
        b.push(x);
        c.push(y);
        d.push(z);
    }
    (a, b, c, d)
}

impl BatchWriter for PgWriter {
    type Job = QueueJob;

    fn weight(job: &QueueJob) -> usize {
        job.weight()
    }

    fn deferrable(job: &QueueJob) -> bool {
        job.deferrable()
    }

    async fn commit(&mut self, batch: Vec<QueueJob>) {
        let timing = BatchTiming { ops: batch.len(), started: Instant::now() };
        let writes: Vec<&QueueWrite> = batch.iter().map(|j| &j.write).collect();
        let results = self.write_with_retries(&writes).await;
        let listener = self.listener.get();
        finish(batch, results, listener.as_deref(), Some(timing));
    }
}
