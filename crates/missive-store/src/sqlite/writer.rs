//! The SQLite writer: one thread owns the only write connection and runs the group commit
//! (`crate::group_commit`) over it.
//!
//! Every write — delivery-path jobs (`QueueJob`) and every other write as a closure
//! (`SqliteJob::Exec`: users, tokens, files, apps) — runs inside the batch's one transaction,
//! and one job's failure (a taken username) rolls back only that job: a closure runs in a
//! savepoint of its own; queue jobs run without one (a savepoint copies every page it
//! changes first) and, should one of them fail, the batch is rolled back and written again
//! with each in a savepoint. A batch costs one fsync (`synchronous = FULL`, WAL). Owning
//! the connection on this thread means a batch is one wake-up, not one thread hand-off per
//! statement.
//!
//! Queue sequences are assigned here. The writer keeps each queue's id and committed head in
//! memory and reads them from `queues` only on a miss (a queue's first message creates its
//! row, and so its id); a batch's new heads and new queues reach that cache only after its
//! COMMIT succeeded. The cache is exact as long as nobody else writes: the data directory
//! lock allows one server, and should another process commit anyway (`missive app create`
//! beside a running server), `PRAGMA data_version` changes and the writer forgets its cache
//! before the next batch, so a sequence is never handed out twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_core::id::MsgId;
use missive_core::model::QueuedMessage;
use missive_core::store::{EnqueueRequest, RecallOutcome, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::rows::{self, MESSAGE_COLUMNS, SqlResultExt, UNDELIVERED_OF_OWNER};
use crate::backlog::{self, Backlog};
use crate::group_commit::{
    AckWrite, BatchTiming, BatchWriter, DeviceWrite, ListenerSlot, QueueJob, QueueWrite, Written, finish,
};

/// Called with the batch's commit outcome, to answer the caller of an `Exec` job.
pub(crate) type ExecReply = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A write run inside the batch transaction: returns whether it succeeded (a failed job is
/// rolled back to its savepoint) and how to answer its caller once the batch committed.
pub(crate) type ExecJob = Box<dyn FnOnce(&Connection) -> (bool, ExecReply) + Send>;

pub(crate) enum SqliteJob {
    Queue(QueueJob),
    Exec(ExecJob),
}

impl From<QueueJob> for SqliteJob {
    fn from(job: QueueJob) -> Self {
        SqliteJob::Queue(job)
    }
}

/// (app, owner, queue).
type QueueKey = (Uuid, String, String);

/// A queue as the writer knows it: its row id (`messages.qid`) and its last sequence.
#[derive(Clone, Copy)]
struct QueueHead {
    id: i64,
    head: u64,
}

/// Heads cached before the map starts over; a miss costs one indexed read.
const MAX_CACHED_HEADS: usize = 200_000;
/// WAL frames (4 KiB pages) past which the writer resets the WAL with a TRUNCATE checkpoint:
/// 64 MiB, the `journal_size_limit` default. Below it the WAL restarts from its beginning
/// and reuses its file; truncating every time it passed 16 MiB (one busy second at full
/// load) made the file shrink and grow twice a second, each time a writer stall and new
/// block allocations on the next commits.
const WAL_FRAMES_BEFORE_TRUNCATE: i64 = 16_384;
/// How often the writer looks at the WAL's size.
const WAL_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long a TRUNCATE checkpoint may wait for readers still on old snapshots.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

pub(crate) struct SqliteWriter {
    conn: Connection,
    /// Row id and committed head of each queue this writer has seen.
    heads: HashMap<QueueKey, QueueHead>,
    backlog: Backlog,
    listener: Arc<ListenerSlot>,
    busy_timeout: Duration,
    wal_checked: Instant,
    /// `PRAGMA data_version` after this writer's last commit; another connection's commit
    /// changes it.
    data_version: i64,
}

/// What a batch changed that must reach the writer's memory only if the batch commits.
#[derive(Default)]
struct Pending {
    heads: HashMap<QueueKey, QueueHead>,
    bounds: Vec<(Uuid, String, u32)>,
}

/// How the queue jobs of a batch are kept apart (see `SqliteWriter::queue_writes`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// All in the transaction directly; one failure rolls the batch back for a retry.
    Shared,
    /// Each in a savepoint of its own.
    Savepoints,
}

/// Undo log of one job, so a job rolled back to its savepoint leaves `Pending` as it was.
#[derive(Default)]
struct JobUndo {
    heads: Vec<(QueueKey, Option<QueueHead>)>,
    bounds: usize,
}

impl SqliteWriter {
    pub fn new(conn: Connection, listener: Arc<ListenerSlot>, busy_timeout: Duration) -> SqliteWriter {
        SqliteWriter {
            conn,
            heads: HashMap::new(),
            backlog: Backlog::default(),
            listener,
            busy_timeout,
            wal_checked: Instant::now(),
            data_version: -1,
        }
    }

    /// Runs one job in a savepoint; on failure rolls it back (the rest of the batch stays).
    fn in_savepoint<T>(
        &mut self,
        pending: &mut Pending,
        f: impl FnOnce(&mut Self, &mut Pending, &mut JobUndo) -> StoreResult<T>,
    ) -> StoreResult<T> {
        run(&self.conn, "SAVEPOINT job")?;
        let mut undo = JobUndo::default();
        let result = f(self, pending, &mut undo);
        end_savepoint(&self.conn, result.is_ok())?;
        if result.is_err() {
            for (key, prev) in undo.heads.into_iter().rev() {
                match prev {
                    Some(h) => pending.heads.insert(key, h),
                    None => pending.heads.remove(&key),
                };
            }
            pending.bounds.truncate(pending.bounds.len() - undo.bounds);
        }
        result
    }

    /// The queue's id and head as this batch sees them. A queue without a row gets one now,
    /// with head 0; it is the batch's (`Pending`), not committed, until the batch commits.
    fn head(&mut self, pending: &mut Pending, undo: &mut JobUndo, key: &QueueKey) -> StoreResult<QueueHead> {
        if let Some(h) = pending.heads.get(key).or_else(|| self.heads.get(key)) {
            return Ok(*h);
        }
        let app = key.0.to_string();
        let found: Option<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT id, head FROM queues WHERE app_id = ?1 AND owner = ?2 AND queue = ?3")
            .store()?
            .query_row(params![app, key.1, key.2], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .store()?;
        if let Some((id, head)) = found {
            let queue = QueueHead { id, head: head as u64 };
            if self.heads.len() >= MAX_CACHED_HEADS {
                self.heads.clear();
            }
            self.heads.insert(key.clone(), queue);
            return Ok(queue);
        }
        let id: i64 = self
            .conn
            .prepare_cached("INSERT INTO queues (app_id, owner, queue, head) VALUES (?1, ?2, ?3, 0) RETURNING id")
            .store()?
            .query_row(params![app, key.1, key.2], |r| r.get(0))
            .store()?;
        let queue = QueueHead { id, head: 0 };
        undo.heads.push((key.clone(), pending.heads.insert(key.clone(), queue)));
        Ok(queue)
    }

    fn enqueue(&mut self, pending: &mut Pending, undo: &mut JobUndo, request: &EnqueueRequest) -> StoreResult<Written> {
        let mut stored = Vec::with_capacity(request.messages.len());
        let mut touched: Vec<QueueKey> = Vec::new();
        for m in &request.messages {
            let key = (m.app_id, m.owner.clone(), m.queue.clone());
            let queue = self.head(pending, undo, &key)?;
            let seq = queue.head + 1;
            undo.heads.push((key.clone(), pending.heads.insert(key.clone(), QueueHead { head: seq, ..queue })));
            if !touched.contains(&key) {
                touched.push(key);
            }
            self.conn
                .prepare_cached(
                    "INSERT INTO messages (id, app_id, owner, queue, sender, created, payload, seq, qid) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .store()?
                .execute(params![
                    m.id.0 as i64,
                    m.app_id.to_string(),
                    m.owner,
                    m.queue,
                    m.sender,
                    m.created,
                    m.payload.as_ref(),
                    seq as i64,
                    queue.id
                ])
                .store()?;
            stored.push(Arc::new(m.clone().queued(seq)));
        }
        for key in touched {
            let queue = pending.heads[&key];
            self.conn
                .prepare_cached("UPDATE queues SET head = ?2 WHERE id = ?1")
                .store()?
                .execute(params![queue.id, queue.head as i64])
                .store()?;
        }
        if let Some(record) = &request.record {
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO idempotency (app_id, key, response, created) VALUES (?1, ?2, ?3, ?4)",
                )
                .store()?
                .execute(params![record.app_id.to_string(), record.key, record.response, record.created])
                .store()?;
        }
        if !request.outbox.is_empty() {
            super::outbox::insert_entries(&self.conn, &request.outbox, missive_core::id::now_ms() as i64)?;
        }
        super::history::insert(&self.conn, &request.archive)?;
        let cap = request.policy.max_offline_per_user;
        for a in backlog::added(request.messages.iter().map(|m| (m, cap))) {
            let bound = match self.backlog.within_cap(&a) {
                Some(n) => n,
                None => self.enforce_cap(a.app, a.owner, a.cap)?,
            };
            pending.bounds.push((a.app, a.owner.to_owned(), bound));
            undo.bounds += 1;
        }
        Ok(Written::Enqueued(stored))
    }

    /// Deletes a recipient's oldest undelivered messages beyond `cap`; returns the count left.
    fn enforce_cap(&mut self, app: Uuid, owner: &str, cap: u32) -> StoreResult<u32> {
        let app_s = app.to_string();
        let count: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM (SELECT 1 {UNDELIVERED_OF_OWNER} LIMIT ?3)"))
            .store()?
            .query_row(params![app_s, owner, i64::from(cap) + 1], |r| r.get(0))
            .store()?;
        if count > i64::from(cap) {
            self.conn
                .prepare_cached(&format!(
                    "DELETE FROM messages WHERE id IN (SELECT m.id {UNDELIVERED_OF_OWNER} \
                     ORDER BY m.id DESC LIMIT -1 OFFSET ?3)"
                ))
                .store()?
                .execute(params![app_s, owner, i64::from(cap)])
                .store()?;
        }
        Ok(count.min(i64::from(cap)) as u32)
    }

    fn ack(&mut self, a: &AckWrite) -> StoreResult<Written> {
        let app = a.app.to_string();
        self.conn
            .prepare_cached(
                "INSERT INTO cursors (app_id, owner, resource, queue, acked) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (app_id, owner, resource, queue) DO UPDATE SET acked = MAX(acked, excluded.acked)",
            )
            .store()?
            .execute(params![app, a.owner, a.resource, a.queue, a.seq as i64])
            .store()?;
        // The queue's delivered prefix, never past its head: an ack of a sequence not yet
        // assigned must not mark the messages that will get it.
        self.conn
            .prepare_cached(
                "UPDATE queues SET delivered = MIN(?4, head) \
                 WHERE app_id = ?1 AND owner = ?2 AND queue = ?3 AND delivered < MIN(?4, head)",
            )
            .store()?
            .execute(params![app, a.owner, a.queue, a.seq as i64])
            .store()?;
        Ok(Written::Acked)
    }

    fn device(&mut self, d: &DeviceWrite) -> StoreResult<Written> {
        let app = d.app.to_string();
        let updated = self
            .conn
            .prepare_cached(
                "UPDATE devices SET last_seen = ?1, device_uuid = ?2, device_name = ?3 \
                 WHERE app_id = ?4 AND owner = ?5 AND resource = ?6",
            )
            .store()?
            .execute(params![d.now, d.device.device_uuid, d.device.device_name, app, d.owner, d.device.resource])
            .store()?;
        let first = updated == 0;
        if first {
            self.conn
                .prepare_cached(
                    "INSERT INTO devices (app_id, owner, resource, device_uuid, device_name, first_seen, last_seen) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )
                .store()?
                .execute(params![app, d.owner, d.device.resource, d.device.device_uuid, d.device.device_name, d.now])
                .store()?;
            // A new device starts where the user's delivered prefix of each queue ends.
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO cursors (app_id, owner, resource, queue, acked) \
                     SELECT app_id, owner, ?1, queue, delivered FROM queues \
                     WHERE app_id = ?2 AND owner = ?3 AND delivered > 0",
                )
                .store()?
                .execute(params![d.device.resource, app, d.owner])
                .store()?;
        }
        Ok(Written::Device(first))
    }

    fn recall(&mut self, app: Uuid, id: MsgId) -> StoreResult<Written> {
        let sql = format!("DELETE FROM messages WHERE id = ?1 AND app_id = ?2 RETURNING {MESSAGE_COLUMNS}");
        let removed: Option<QueuedMessage> = self
            .conn
            .prepare_cached(&sql)
            .store()?
            .query_row(params![id.0 as i64, app.to_string()], rows::message)
            .optional()
            .store()?
            .map(|m| super::queues::with_delivered(&self.conn, m))
            .transpose()?;
        // Gone from history for both parties too, even if the queue had already dropped it.
        super::history::recall(&self.conn, app, id)?;
        Ok(Written::Recalled(match removed {
            None => RecallOutcome::NotFound,
            Some(m) if m.delivered => RecallOutcome::RemovedDelivered(m),
            Some(m) => RecallOutcome::RemovedUndelivered(m),
        }))
    }

    fn queue_write(&mut self, pending: &mut Pending, undo: &mut JobUndo, write: &QueueWrite) -> StoreResult<Written> {
        match write {
            QueueWrite::Enqueue(request) => self.enqueue(pending, undo, request),
            QueueWrite::Ack(a) => self.ack(a),
            QueueWrite::Device(d) => self.device(d),
            QueueWrite::Recall { app, id } => self.recall(*app, *id),
        }
    }

    /// Writes the batch's queue jobs into the open transaction, one result per job.
    ///
    /// `Isolation::Shared` runs them without savepoints and answers `Ok(false)` at the first
    /// job that fails, leaving the transaction to be rolled back: a savepoint makes SQLite
    /// copy every page a job changes to a statement journal first (a `pwrite` each, a
    /// quarter of the writer's time in a 600-recipient send), and queue jobs almost never
    /// fail alone. `Isolation::Savepoints` is the retry after such a failure: each job in a
    /// savepoint of its own, so only the failing one is refused.
    fn queue_writes(
        &mut self,
        jobs: &[QueueJob],
        isolation: Isolation,
        pending: &mut Pending,
        results: &mut Vec<StoreResult<Written>>,
    ) -> StoreResult<bool> {
        for job in jobs {
            let result = match isolation {
                Isolation::Shared => self.queue_write(pending, &mut JobUndo::default(), &job.write),
                Isolation::Savepoints => {
                    self.in_savepoint(pending, |w, pending, undo| w.queue_write(pending, undo, &job.write))
                }
            };
            let failed = result.is_err();
            results.push(result);
            if failed && isolation == Isolation::Shared {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Opens the batch's transaction; forgets the cached heads if another connection
    /// committed since this writer's last batch.
    fn begin(&mut self) -> StoreResult<()> {
        run(&self.conn, "BEGIN IMMEDIATE")?;
        let version: i64 =
            self.conn.prepare_cached("PRAGMA data_version").store()?.query_row([], |r| r.get(0)).store()?;
        if version != self.data_version {
            self.heads.clear();
            self.backlog = Backlog::default();
            self.data_version = version;
        }
        Ok(())
    }

    /// Resets the WAL when it has grown, so its file follows the data instead of keeping its
    /// high-water mark. The checkpoint thread (`super::checkpoint`, PASSIVE) copies frames
    /// back but can never reset a WAL that readers keep in use; a TRUNCATE checkpoint waits
    /// briefly for readers on old snapshots to finish, then restarts the log at zero bytes.
    fn maybe_truncate_wal(&mut self) {
        if self.wal_checked.elapsed() < WAL_CHECK_EVERY {
            return;
        }
        self.wal_checked = Instant::now();
        let frames: rusqlite::Result<i64> = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1));
        if !matches!(frames, Ok(n) if n > WAL_FRAMES_BEFORE_TRUNCATE) {
            return;
        }
        let _ = self.conn.busy_timeout(CHECKPOINT_WAIT);
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::debug!(%e, "WAL truncate checkpoint did not complete; will retry");
        }
        let _ = self.conn.busy_timeout(self.busy_timeout);
    }
}

impl BatchWriter for SqliteWriter {
    type Job = SqliteJob;

    fn weight(job: &SqliteJob) -> usize {
        match job {
            SqliteJob::Queue(q) => q.weight(),
            SqliteJob::Exec(_) => 1,
        }
    }

    fn deferrable(job: &SqliteJob) -> bool {
        matches!(job, SqliteJob::Queue(q) if q.deferrable())
    }

    async fn commit(&mut self, batch: Vec<SqliteJob>) {
        let mut queue_jobs = Vec::new();
        let mut exec_jobs = Vec::new();
        for job in batch {
            match job {
                SqliteJob::Queue(q) => queue_jobs.push(q),
                SqliteJob::Exec(e) => exec_jobs.push(e),
            }
        }
        let timing = BatchTiming { ops: queue_jobs.len() + exec_jobs.len(), started: Instant::now() };
        let mut pending = Pending::default();
        let mut results: Vec<StoreResult<Written>> = Vec::with_capacity(queue_jobs.len());
        let mut replies: Vec<ExecReply> = Vec::with_capacity(exec_jobs.len());
        let outcome = (|| -> StoreResult<()> {
            self.begin()?;
            if !self.queue_writes(&queue_jobs, Isolation::Shared, &mut pending, &mut results)? {
                run(&self.conn, "ROLLBACK")?;
                (pending, results) = (Pending::default(), Vec::with_capacity(queue_jobs.len()));
                self.begin()?;
                self.queue_writes(&queue_jobs, Isolation::Savepoints, &mut pending, &mut results)?;
            }
            for exec in exec_jobs {
                run(&self.conn, "SAVEPOINT job")?;
                let (ok, reply) = exec(&self.conn);
                end_savepoint(&self.conn, ok)?;
                replies.push(reply);
            }
            run(&self.conn, "COMMIT")
        })();
        match outcome {
            Ok(()) => {
                if self.heads.len() + pending.heads.len() > MAX_CACHED_HEADS {
                    self.heads.clear();
                }
                self.heads.extend(pending.heads);
                for (app, owner, n) in &pending.bounds {
                    self.backlog.set(*app, owner, *n);
                }
                let listener = self.listener.get();
                finish(queue_jobs, results, listener.as_deref(), Some(timing));
                replies.into_iter().for_each(|reply| reply(Ok(())));
            }
            Err(err) => {
                // SQLite may have rolled back already (a full disk); if not, do it now so the
                // connection is clean for the next batch.
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                tracing::warn!(%err, jobs = queue_jobs.len() + replies.len(), "group commit failed");
                let failed = queue_jobs.iter().map(|_| Err(err.clone())).collect();
                finish(queue_jobs, failed, None, None);
                replies.into_iter().for_each(|reply| reply(Err(err.clone())));
            }
        }
        self.maybe_truncate_wal();
    }
}

/// Runs a statement without results through the statement cache: the transaction and
/// savepoint statements run several times per batch, and `execute_batch` would parse each
/// anew.
fn run(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql).store()?.execute([]).store().map(drop)
}

/// Ends a job's savepoint: kept if the job succeeded, rolled back (only this job) if not.
fn end_savepoint(conn: &Connection, ok: bool) -> StoreResult<()> {
    if !ok {
        run(conn, "ROLLBACK TO job")?;
    }
    run(conn, "RELEASE job")
}

/// Wraps a closure as an `Exec` job answered on `tx` after the batch's commit.
pub(crate) fn exec_job<T: Send + 'static>(
    f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    tx: tokio::sync::oneshot::Sender<StoreResult<T>>,
) -> SqliteJob {
    SqliteJob::Exec(Box::new(move |conn| {
        let result = f(conn);
        let ok = result.is_ok();
        let reply: ExecReply = Box::new(move |commit: StoreResult<()>| {
            let _ = tx.send(commit.and(result));
        });
        (ok, reply)
    }))
}
