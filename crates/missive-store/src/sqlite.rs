//! The SQLite backend: the embedded default that needs nothing but a data directory.
//!
//! Two pools share one database file in WAL mode: a read pool, so readers never wait for
//! the writer, and a one-connection write pool, so writers never fight over SQLite's single
//! write lock. `synchronous = FULL` makes every commit fsync the WAL before it returns, which
//! is Missive's durability point: a message is acknowledged only after that.
//!
//! Message writes are the hot path and go through a group-commit task: concurrent
//! `enqueue` calls are queued on a channel, and the task writes everything that has arrived
//! in one transaction with one fsync, then answers every caller. Under load this turns N
//! fsyncs into one; with a single caller it costs nothing extra. Device acks and device
//! logins, which happen as often as messages do, take the same path, so the write
//! connection never spends an fsync on one of them alone.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::{App, DeviceInfo, FileRecord, IdempotencyRecord, NewUser, QueuedMessage, TokenRecord, User};
use missive_core::store::{
    AckReceipt, CommitListener, QueueCount, QueuePolicy, RecallOutcome, Store, StoreError, StoreResult, UserPatch,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// Forward-only migrations, applied in order; the database's `user_version` records the last
/// one applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_files.sql")),
    (3, include_str!("../migrations/sqlite/0003_idempotency.sql")),
];

/// How a `SqliteStore` is opened.
#[derive(Clone, Debug)]
pub struct SqliteStoreOptions {
    /// How long a statement may wait for a lock held by another process (the `app create`
    /// command beside a running server) before it fails with `StoreError::Busy`.
    pub busy_timeout: Duration,
    /// Connections in the read pool.
    pub read_connections: u32,
    /// Most messages written by one group commit.
    pub max_batch: usize,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        // Two readers: each is an OS thread that a query has to wake, and on a small machine
        // more of them mostly add wake-ups (docs/benchmarks.md: 4 → 2 readers took `send`
        // from about 3,000 to 4,000 messages per server CPU-second; 1 reader does more per
        // CPU-second still but queues reads, doubling end-to-end latency under load).
        SqliteStoreOptions { busy_timeout: Duration::from_secs(5), read_connections: 2, max_batch: 1024 }
    }
}

/// The SQLite `Store`. Cheap to clone: pools and the group-commit channel are shared.
#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    enqueue_tx: mpsc::Sender<Job>,
    clock: Arc<CommitClock>,
}

/// Orders group commits against reads, so `pending` can promise that the commit listener
/// has heard of every commit the read could see: a read that ends waits until every batch
/// begun before its end has been announced (at most the one batch being written).
struct CommitClock {
    /// Batches begun; incremented before a batch's transaction starts.
    begun: AtomicU64,
    /// The last batch that has been committed (or failed) and announced to the listener.
    announced: watch::Sender<u64>,
    /// A std lock, read once per batch and never held across an await.
    listener: RwLock<Option<Arc<dyn CommitListener>>>,
}

impl CommitClock {
    fn listener(&self) -> Option<Arc<dyn CommitListener>> {
        self.listener.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl CommitClock {
    /// Waits until every batch begun so far has been announced.
    async fn settled(&self) -> StoreResult<()> {
        let target = self.begun.load(Ordering::SeqCst);
        if *self.announced.borrow() >= target {
            return Ok(());
        }
        let mut rx = self.announced.subscribe();
        rx.wait_for(|n| *n >= target).await.map(|_| ()).map_err(writer_stopped)
    }
}

/// Marks every batch announced when the group-commit task ends, however it ends, so no
/// reader waits forever on a writer that is gone.
struct AnnounceAllOnExit(Arc<CommitClock>);

impl Drop for AnnounceAllOnExit {
    fn drop(&mut self) {
        self.0.announced.send_replace(u64::MAX);
    }
}

struct EnqueueJob {
    messages: Vec<QueuedMessage>,
    policy: QueuePolicy,
    /// Written in the same transaction as the messages.
    record: Option<IdempotencyRecord>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// A write the group-commit task performs for a caller, in the next batch's transaction.
enum Job {
    Enqueue(EnqueueJob),
    /// A device acknowledged a queue up to a key (at-least-once delivery's cursor).
    Ack {
        ack: AckWrite,
        done: oneshot::Sender<StoreResult<()>>,
    },
    /// A device logged in; answered with whether it was seen for the first time.
    Device {
        device: DeviceWrite,
        done: oneshot::Sender<StoreResult<bool>>,
    },
}

struct AckWrite {
    app: String,
    owner: String,
    resource: String,
    queue: String,
    key: i64,
}

struct DeviceWrite {
    app: String,
    owner: String,
    device: DeviceInfo,
    now: i64,
}

impl Job {
    /// Rows this job writes, roughly: what `max_batch` counts.
    fn weight(&self) -> usize {
        match self {
            Job::Enqueue(j) => j.messages.len().max(1),
            Job::Ack { .. } | Job::Device { .. } => 1,
        }
    }

    /// Answers the caller; `first` only means something to a device login.
    fn answer(self, result: StoreResult<bool>) {
        match self {
            Job::Enqueue(j) => {
                let _ = j.done.send(result.map(|_| ()));
            }
            Job::Ack { done, .. } => {
                let _ = done.send(result.map(|_| ()));
            }
            Job::Device { done, .. } => {
                let _ = done.send(result);
            }
        }
    }
}

fn writer_stopped<E>(_: E) -> StoreError {
    StoreError::Backend("group-commit task stopped".into())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    /// Must be called inside a Tokio runtime; the group commit runs on a thread of its own.
    pub async fn open(path: &Path, options: SqliteStoreOptions) -> StoreResult<SqliteStore> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(false);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(options.busy_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        migrate(&write).await?;
        // Readers are opened up front: a server out of file descriptors must still be able
        // to read, and the first requests should not pay for opening connections.
        let read = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .min_connections(options.read_connections.max(1))
            .acquire_timeout(options.busy_timeout)
            .connect_with(connect.read_only(true))
            .await
            .map_err(map_err)?;
        let (enqueue_tx, rx) = mpsc::channel(4096);
        let clock = Arc::new(CommitClock {
            begun: AtomicU64::new(0),
            announced: watch::Sender::new(0),
            listener: RwLock::new(None),
        });
        // The writer gets a thread of its own. As a task on the shared runtime it waited its
        // turn behind every ready connection task at each of a batch's awaits; under
        // overload (thousands of connections being refused) a batch took seconds and every
        // admitted send waited for it. The thread ends when the store is dropped.
        let writer = group_commit(write.clone(), rx, options.max_batch.max(1), clock.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("group-commit runtime: {e}")))?;
        std::thread::Builder::new()
            .name("missive-writer".into())
            .spawn(move || runtime.block_on(writer))
            .map_err(|e| StoreError::Backend(format!("group-commit thread: {e}")))?;
        Ok(SqliteStore { read, write, enqueue_tx, clock })
    }

    /// Hands a job to the group-commit task and waits for the commit that covers it.
    async fn submit(&self, mut job: EnqueueJob) -> StoreResult<()> {
        let (done, rx) = oneshot::channel();
        job.done = done;
        self.enqueue_tx.send(Job::Enqueue(job)).await.map_err(writer_stopped)?;
        rx.await.map_err(|_| StoreError::Backend("group-commit task stopped".into()))?
    }

    /// Closes both pools, waiting for in-flight statements.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Writes a consistent copy of the live database to `dest` (`VACUUM INTO`), safe while
    /// the server is serving.
    pub async fn backup_to(&self, dest: &Path) -> StoreResult<()> {
        let dest = dest.to_str().ok_or_else(|| StoreError::Backend("backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO ?").bind(dest).execute(&self.write).await.map_err(map_err)?;
        Ok(())
    }
}

/// Replaces the database at `db` with the backup at `backup`, after checking the backup is
/// an intact Missive database this build can open. The server must not be running.
pub async fn restore(backup: &Path, db: &Path) -> StoreResult<()> {
    let check = SqliteConnectOptions::new().filename(backup).read_only(true);
    let mut conn = SqliteConnection::connect_with(&check).await.map_err(map_err)?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.map_err(map_err)?;
    if verdict != "ok" {
        return Err(StoreError::Backend(format!("backup failed its integrity check: {verdict}")));
    }
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut conn).await.map_err(map_err)?;
    let latest = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
    if version < 1 || version > latest {
        return Err(StoreError::Backend(format!(
            "backup has schema version {version}; this build supports 1 to {latest}"
        )));
    }
    conn.close().await.map_err(map_err)?;
    let io = |e: std::io::Error| StoreError::Backend(format!("restoring {}: {e}", db.display()));
    // Stale WAL files of the old database must not be replayed onto the restored one.
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(std::path::PathBuf::from(p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    let tmp = db.with_extension("restoring");
    std::fs::copy(backup, &tmp).map_err(io)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, db).map_err(io)?;
    Ok(())
}

async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let current: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *conn).await.map_err(map_err)?;
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        let mut tx = conn.begin().await.map_err(map_err)?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(map_err)?;
        // PRAGMA takes no bind parameters; the version is one of our own constants.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {version}")))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

/// The group-commit loop: take what has queued up, write it in one transaction, answer all.
async fn group_commit(pool: SqlitePool, mut rx: mpsc::Receiver<Job>, max_batch: usize, clock: Arc<CommitClock>) {
    let _exit = AnnounceAllOnExit(clock.clone());
    let mut batch: Vec<Job> = Vec::new();
    let mut backlog = Backlog::default();
    let announce = |job: &Job, listener: &Option<Arc<dyn CommitListener>>| {
        if let (Job::Enqueue(e), Some(listener)) = (job, listener)
            && !e.messages.is_empty()
        {
            listener.committed(&e.messages);
        }
    };
    while let Some(first) = rx.recv().await {
        let mut count = first.weight();
        batch.push(first);
        while count < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.weight();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let seq = clock.begun.fetch_add(1, Ordering::SeqCst) + 1;
        // Listeners hear of a commit before its writers are answered (so before the sender
        // can tell anyone), and before `announced` moves (so before a read that saw it ends).
        let mut answers: Vec<(Job, StoreResult<bool>)> = Vec::with_capacity(batch.len());
        let listener = clock.listener();
        match write_batch(&pool, &batch, &mut backlog).await {
            Ok(firsts) => {
                batch.iter().for_each(|job| announce(job, &listener));
                answers.extend(batch.drain(..).zip(firsts.into_iter().map(Ok)));
            }
            Err(err) if batch.len() > 1 => {
                // One bad job must not fail its neighbours: retry each alone.
                tracing::warn!(%err, jobs = batch.len(), "group commit failed; retrying jobs one by one");
                for job in batch.drain(..) {
                    let r = write_batch(&pool, std::slice::from_ref(&job), &mut backlog).await.map(|f| f[0]);
                    if r.is_ok() {
                        announce(&job, &listener);
                    }
                    answers.push((job, r));
                }
            }
            Err(err) => answers.extend(batch.drain(..).map(|job| (job, Err(clone_err(&err))))),
        }
        clock.announced.send_replace(seq);
        for (job, result) in answers {
            job.answer(result);
        }
    }
}

fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(s) => StoreError::Conflict(s),
        StoreError::Busy => StoreError::Busy,
        StoreError::Full => StoreError::Full,
        StoreError::Backend(s) => StoreError::Backend(s.clone()),
    }
}

/// Rows per multi-row `INSERT INTO messages`: a batch is written in chunks of these sizes,
/// so a thousand messages take about twenty statements, not a thousand (each statement is a
/// round trip to sqlx's SQLite thread), and only four statement texts are ever prepared.
const INSERT_CHUNKS: [usize; 4] = [64, 16, 4, 1];
static INSERT_MESSAGES: LazyLock<Vec<String>> = LazyLock::new(|| {
    INSERT_CHUNKS
        .iter()
        .map(|&n| {
            format!(
                "INSERT INTO messages (id, app_id, owner, queue, sender, created, payload, delivered) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ")
            )
        })
        .collect()
});
/// Acks per multi-row cursor upsert and delivered-flag update, like `INSERT_CHUNKS`.
const ACK_CHUNKS: [usize; 4] = [32, 8, 2, 1];
/// Moves each device's cursor forward (never back: acks may arrive out of order).
static ACK_CURSORS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ACK_CHUNKS
        .iter()
        .map(|&n| {
            format!(
                "INSERT INTO cursors (app_id, owner, resource, queue, acked) VALUES {} \
                 ON CONFLICT (app_id, owner, resource, queue) DO UPDATE SET acked = MAX(acked, excluded.acked)",
                vec!["(?, ?, ?, ?, ?)"; n].join(", ")
            )
        })
        .collect()
});
/// Marks what the acks cover as delivered, through the undelivered-only index: the by-queue
/// index would visit every message of the conversation up to the key, delivered ones
/// included, and that history only grows.
static ACK_DELIVERED: LazyLock<Vec<String>> = LazyLock::new(|| {
    ACK_CHUNKS
        .iter()
        .map(|&n| {
            format!(
                "WITH a(app_id, owner, queue, key) AS (VALUES {}) \
                 UPDATE messages INDEXED BY messages_undelivered SET delivered = 1 FROM a \
                 WHERE messages.app_id = a.app_id AND messages.owner = a.owner AND messages.queue = a.queue \
                 AND messages.id <= a.key AND messages.delivered = 0",
                vec!["(?, ?, ?, ?)"; n].join(", ")
            )
        })
        .collect()
});
/// Keeps the newest `cap` undelivered messages of a recipient, deleting older ones.
const EVICT_OVER_CAP: &str = "DELETE FROM messages WHERE id IN (SELECT id FROM messages \
     WHERE app_id = ? AND owner = ? AND delivered = 0 ORDER BY id DESC LIMIT -1 OFFSET ?)";
/// A recipient's undelivered messages, counted no further than the limit.
const COUNT_UNDELIVERED: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM messages \
     WHERE app_id = ? AND owner = ? AND delivered = 0 LIMIT ?)";

/// Upper bounds on each recipient's undelivered messages, so the per-user cap is checked
/// only for recipients that may be over it, not with a query per recipient per batch.
///
/// A bound is exact after a check and grows with every message queued; acks, recalls and
/// sweeps only lower the real count, so it stays an upper bound. A recipient without a
/// bound (first seen since start-up, or after the map was cleared) is checked, so
/// forgetting bounds is always safe. Owned by the group-commit task: no lock.
#[derive(Default)]
struct Backlog {
    bound: HashMap<Uuid, HashMap<String, u32>>,
    entries: usize,
}

/// Bounds kept before the map starts over (about 100 bytes each).
const BACKLOG_MAX_ENTRIES: usize = 100_000;

impl Backlog {
    fn get(&self, app: Uuid, owner: &str) -> Option<u32> {
        self.bound.get(&app)?.get(owner).copied()
    }

    fn set(&mut self, app: Uuid, owner: &str, n: u32) {
        if self.entries >= BACKLOG_MAX_ENTRIES {
            self.bound.clear();
            self.entries = 0;
        }
        let per_app = self.bound.entry(app).or_default();
        match per_app.get_mut(owner) {
            Some(b) => *b = n,
            None => {
                per_app.insert(owner.to_owned(), n);
                self.entries += 1;
            }
        }
    }
}

/// Writes `jobs` in one transaction; returns each job's first-sight flag (device logins).
/// `backlog` is updated only once the transaction has committed.
async fn write_batch(pool: &SqlitePool, jobs: &[Job], backlog: &mut Backlog) -> StoreResult<Vec<bool>> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let mut bounds: Vec<(Uuid, &str, u32)> = Vec::new();
    let result = async {
        let mut tx = conn.begin().await.map_err(map_err)?;
        let enqueues = || {
            jobs.iter().filter_map(|j| match j {
                Job::Enqueue(e) => Some(e),
                _ => None,
            })
        };
        // Messages, in multi-row statements.
        let messages: Vec<&QueuedMessage> = enqueues().flat_map(|e| e.messages.iter()).collect();
        let mut rest = messages.as_slice();
        while !rest.is_empty() {
            let i = INSERT_CHUNKS.iter().position(|&n| n <= rest.len()).expect("chunk size 1 always fits");
            let (chunk, tail) = rest.split_at(INSERT_CHUNKS[i]);
            let mut q = sqlx::query(INSERT_MESSAGES[i].as_str());
            for m in chunk {
                q = q
                    .bind(m.id.0 as i64)
                    .bind(m.app_id.to_string())
                    .bind(m.owner.as_str())
                    .bind(m.queue.as_str())
                    .bind(m.sender.as_str())
                    .bind(m.created)
                    .bind(m.payload.as_slice())
                    .bind(m.delivered);
            }
            q.execute(&mut *tx).await.map_err(map_err)?;
            rest = tail;
        }
        for record in enqueues().filter_map(|j| j.record.as_ref()) {
            sqlx::query("INSERT OR REPLACE INTO idempotency (app_id, key, response, created) VALUES (?, ?, ?, ?)")
                .bind(record.app_id.to_string())
                .bind(&record.key)
                .bind(&record.response)
                .bind(record.created)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        // The per-user cap: messages added per recipient, and the tightest cap asked for.
        let mut added: Vec<(Uuid, &str, u32, u32)> = Vec::new();
        for job in enqueues() {
            for m in &job.messages {
                let cap = job.policy.max_offline_per_user;
                match added.iter_mut().find(|(a, o, _, _)| *a == m.app_id && *o == m.owner) {
                    Some(e) => {
                        e.2 += 1;
                        e.3 = e.3.min(cap);
                    }
                    None => added.push((m.app_id, m.owner.as_str(), 1, cap)),
                }
            }
        }
        for (app, owner, n, cap) in added {
            match backlog.get(app, owner) {
                Some(b) if b.saturating_add(n) <= cap => bounds.push((app, owner, b + n)),
                _ => {
                    let app_s = app.to_string();
                    let count: i64 = sqlx::query_scalar(COUNT_UNDELIVERED)
                        .bind(&app_s)
                        .bind(owner)
                        .bind(i64::from(cap) + 1)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if count > i64::from(cap) {
                        sqlx::query(EVICT_OVER_CAP)
                            .bind(&app_s)
                            .bind(owner)
                            .bind(i64::from(cap))
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    }
                    bounds.push((app, owner, count.min(i64::from(cap)) as u32));
                }
            }
        }
        // Device logins, in arrival order, then every ack in a few multi-row statements.
        let mut firsts = Vec::with_capacity(jobs.len());
        for job in jobs {
            firsts.push(match job {
                Job::Device { device, .. } => write_device(&mut tx, device).await?,
                Job::Enqueue(_) | Job::Ack { .. } => false,
            });
        }
        let acks: Vec<&AckWrite> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Ack { ack, .. } => Some(ack),
                _ => None,
            })
            .collect();
        write_acks(&mut tx, &acks).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(firsts)
    }
    .await;
    discard_on_error(&mut conn, &result);
    if result.is_ok() {
        for (app, owner, n) in bounds {
            backlog.set(app, owner, n);
        }
    }
    result
}

async fn write_acks(tx: &mut sqlx::SqliteConnection, acks: &[&AckWrite]) -> StoreResult<()> {
    let mut rest = acks;
    while !rest.is_empty() {
        let i = ACK_CHUNKS.iter().position(|&n| n <= rest.len()).expect("chunk size 1 always fits");
        let (chunk, tail) = rest.split_at(ACK_CHUNKS[i]);
        let mut cursors = sqlx::query(ACK_CURSORS[i].as_str());
        let mut delivered = sqlx::query(ACK_DELIVERED[i].as_str());
        for a in chunk {
            cursors = cursors.bind(&a.app).bind(&a.owner).bind(&a.resource).bind(&a.queue).bind(a.key);
            delivered = delivered.bind(&a.app).bind(&a.owner).bind(&a.queue).bind(a.key);
        }
        cursors.execute(&mut *tx).await.map_err(map_err)?;
        delivered.execute(&mut *tx).await.map_err(map_err)?;
        rest = tail;
    }
    Ok(())
}

/// Records a device login; true when the resource is new.
async fn write_device(tx: &mut sqlx::SqliteConnection, d: &DeviceWrite) -> StoreResult<bool> {
    let updated = sqlx::query(
        "UPDATE devices SET last_seen = ?, device_uuid = ?, device_name = ? \
         WHERE app_id = ? AND owner = ? AND resource = ?",
    )
    .bind(d.now)
    .bind(&d.device.device_uuid)
    .bind(&d.device.device_name)
    .bind(&d.app)
    .bind(&d.owner)
    .bind(&d.device.resource)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    let first = updated == 0;
    if first {
        sqlx::query(
            "INSERT INTO devices (app_id, owner, resource, device_uuid, device_name, first_seen, last_seen) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&d.app)
        .bind(&d.owner)
        .bind(&d.device.resource)
        .bind(&d.device.device_uuid)
        .bind(&d.device.device_name)
        .bind(d.now)
        .bind(d.now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // A new device starts where the user's delivered prefix of each queue ends.
        sqlx::query(
            "INSERT OR REPLACE INTO cursors (app_id, owner, resource, queue, acked) \
             SELECT app_id, owner, ?, queue, MAX(CASE WHEN delivered = 1 THEN id ELSE 0 END) \
             FROM messages WHERE app_id = ? AND owner = ? GROUP BY queue",
        )
        .bind(&d.device.resource)
        .bind(&d.app)
        .bind(&d.owner)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    Ok(first)
}

/// A failed statement or COMMIT inside a transaction (a full disk, say) can leave the
/// connection with a transaction SQLite already rolled back but sqlx still counts as open;
/// sqlx would then turn the next BEGIN/COMMIT into a savepoint that never commits, and a
/// "successful" write would never reach the disk. The connection is therefore closed,
/// never reused, after any error in a transaction.
fn discard_on_error<T>(conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>, result: &StoreResult<T>) {
    if result.is_err() {
        conn.close_on_drop();
    }
}

/// Maps sqlx errors to what callers can act on, keeping the rest as text for the log.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict("unique");
            }
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1);
            match primary {
                5 | 6 => StoreError::Busy,
                13 => StoreError::Full,
                _ => StoreError::Backend(e.to_string()),
            }
        }
        sqlx::Error::PoolTimedOut => StoreError::Busy,
        sqlx::Error::Io(io) if io.raw_os_error() == Some(28) => StoreError::Full,
        _ => StoreError::Backend(e.to_string()),
    }
}

fn uuid_col(row: &SqliteRow, col: &str) -> StoreResult<Uuid> {
    let s: String = row.try_get(col).map_err(map_err)?;
    Uuid::from_str(&s).map_err(|e| StoreError::Backend(format!("bad uuid in {col}: {e}")))
}

fn app_from_row(row: &SqliteRow) -> StoreResult<App> {
    Ok(App {
        id: uuid_col(row, "id")?,
        org: row.try_get("org").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        client_id: row.try_get("client_id").map_err(map_err)?,
        client_secret: row.try_get("client_secret").map_err(map_err)?,
        open_registration: row.try_get("open_registration").map_err(map_err)?,
        created: row.try_get("created").map_err(map_err)?,
    })
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    let attrs: String = row.try_get("attributes").map_err(map_err)?;
    Ok(User {
        uuid: uuid_col(row, "uuid")?,
        app_id: uuid_col(row, "app_id")?,
        username: row.try_get("username").map_err(map_err)?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        nickname: row.try_get("nickname").map_err(map_err)?,
        activated: row.try_get("activated").map_err(map_err)?,
        created: row.try_get("created").map_err(map_err)?,
        modified: row.try_get("modified").map_err(map_err)?,
        seq: row.try_get("seq").map_err(map_err)?,
        attributes: serde_json::from_str(&attrs).unwrap_or_default(),
    })
}

fn message_from_row(row: &SqliteRow) -> StoreResult<QueuedMessage> {
    let id: i64 = row.try_get("id").map_err(map_err)?;
    Ok(QueuedMessage {
        id: MsgId(id as u64),
        app_id: uuid_col(row, "app_id")?,
        owner: row.try_get("owner").map_err(map_err)?,
        queue: row.try_get("queue").map_err(map_err)?,
        sender: row.try_get("sender").map_err(map_err)?,
        created: row.try_get("created").map_err(map_err)?,
        payload: row.try_get("payload").map_err(map_err)?,
        delivered: row.try_get("delivered").map_err(map_err)?,
    })
}

fn file_from_row(row: &SqliteRow) -> StoreResult<FileRecord> {
    let owner: Option<String> = row.try_get("owner").map_err(map_err)?;
    let length: i64 = row.try_get("length").map_err(map_err)?;
    let thumbnail_length: Option<i64> = row.try_get("thumbnail_length").map_err(map_err)?;
    let width: Option<i64> = row.try_get("width").map_err(map_err)?;
    let height: Option<i64> = row.try_get("height").map_err(map_err)?;
    Ok(FileRecord {
        uuid: uuid_col(row, "uuid")?,
        app_id: uuid_col(row, "app_id")?,
        owner: owner.and_then(|o| Uuid::from_str(&o).ok()),
        content_type: row.try_get("content_type").map_err(map_err)?,
        filename: row.try_get("filename").map_err(map_err)?,
        length: length as u64,
        restricted: row.try_get("restricted").map_err(map_err)?,
        secret: row.try_get("secret").map_err(map_err)?,
        blob_key: row.try_get("blob_key").map_err(map_err)?,
        thumbnail_key: row.try_get("thumbnail_key").map_err(map_err)?,
        thumbnail_content_type: row.try_get("thumbnail_content_type").map_err(map_err)?,
        thumbnail_length: thumbnail_length.map(|n| n as u64),
        width: width.map(|n| n as u32),
        height: height.map(|n| n as u32),
        created: row.try_get("created").map_err(map_err)?,
        expires: row.try_get("expires").map_err(map_err)?,
    })
}

/// The `files` columns `file_from_row` reads, as a literal for `sql!`.
macro_rules! file_columns {
    () => {
        "uuid, app_id, owner, content_type, filename, length, restricted, secret, blob_key, \
         thumbnail_key, thumbnail_content_type, thumbnail_length, width, height, created, expires"
    };
}

/// Joins string literals at compile time, so long SQL stays `&'static str` (what sqlx 0.9
/// accepts as safe SQL) and readable.
macro_rules! sql {
    ($($part:expr),+ $(,)?) => { concat!($($part),+) };
}

/// The columns `user_from_row` reads, as a literal `sql!` can join.
macro_rules! user_columns {
    () => {
        "seq, uuid, app_id, username, password_hash, nickname, activated, created, modified, attributes"
    };
}

/// The columns `message_from_row` reads, as a literal `sql!` can join.
macro_rules! message_columns {
    () => {
        "id, app_id, owner, queue, sender, created, payload, delivered"
    };
}

const SELECT_USER: &str = sql!("SELECT ", user_columns!(), " ", "FROM users WHERE app_id = ? AND username = ?");

#[async_trait]
impl Store for SqliteStore {
    fn set_commit_listener(&self, listener: Arc<dyn CommitListener>) {
        *self.clock.listener.write().unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    async fn create_app(&self, app: &App) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO apps (id, org, name, client_id, client_secret, open_registration, created) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(app.id.to_string())
        .bind(&app.org)
        .bind(&app.name)
        .bind(&app.client_id)
        .bind(&app.client_secret)
        .bind(app.open_registration)
        .bind(app.created)
        .execute(&self.write)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("app"),
            other => other,
        })?;
        Ok(())
    }

    async fn app_by_name(&self, org: &str, name: &str) -> StoreResult<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE org = ? AND name = ?")
            .bind(org)
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn app_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apps").fetch_one(&self.read).await.map_err(map_err)?;
        Ok(n as u64)
    }

    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO tokens (hash, app_id, user_uuid, expires_at, created) VALUES (?, ?, ?, ?, ?)")
            .bind(token.hash.as_slice())
            .bind(token.app_id.to_string())
            .bind(token.user.map(|u| u.to_string()))
            .bind(token.expires_at)
            .bind(token.created)
            .execute(&self.write)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query("SELECT hash, app_id, user_uuid, expires_at, created FROM tokens WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let user: Option<String> = row.try_get("user_uuid").map_err(map_err)?;
        Ok(Some(TokenRecord {
            hash: row.try_get("hash").map_err(map_err)?,
            app_id: uuid_col(&row, "app_id")?,
            user: user.and_then(|u| Uuid::from_str(&u).ok()),
            expires_at: row.try_get("expires_at").map_err(map_err)?,
            created: row.try_get("created").map_err(map_err)?,
        }))
    }

    async fn delete_user_tokens(&self, app: Uuid, user: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM tokens WHERE app_id = ? AND user_uuid = ?")
            .bind(app.to_string())
            .bind(user.to_string())
            .execute(&self.write)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn create_user(&self, app: Uuid, user: &NewUser) -> StoreResult<User> {
        let now = now_ms() as i64;
        let uuid = Uuid::new_v4();
        let row = sqlx::query(sql!(
            "INSERT INTO users (uuid, app_id, username, password_hash, nickname, activated, created, modified, attributes) ",
            "VALUES (?, ?, ?, ?, ?, 1, ?, ?, '{}') RETURNING seq"
        ))
        .bind(uuid.to_string())
        .bind(app.to_string())
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.nickname)
        .bind(now)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("username"),
            other => other,
        })?;
        Ok(User {
            uuid,
            app_id: app,
            username: user.username.clone(),
            password_hash: user.password_hash.clone(),
            nickname: user.nickname.clone(),
            activated: true,
            created: now,
            modified: now,
            seq: row.try_get("seq").map_err(map_err)?,
            attributes: Default::default(),
        })
    }

    async fn user_by_name(&self, app: Uuid, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(SELECT_USER)
            .bind(app.to_string())
            .bind(username)
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn existing_users(&self, app: Uuid, names: &[String]) -> StoreResult<Vec<String>> {
        let mut found = Vec::new();
        // SQLite allows 32766 parameters; chunks keep every statement well under that.
        for chunk in names.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT username FROM users WHERE app_id = ? AND username IN ({placeholders})");
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(app.to_string());
            for n in chunk {
                q = q.bind(n.as_str());
            }
            found.extend(q.fetch_all(&self.read).await.map_err(map_err)?);
        }
        Ok(found)
    }

    async fn update_user(&self, app: Uuid, username: &str, patch: &UserPatch) -> StoreResult<Option<User>> {
        let mut conn = self.write.acquire().await.map_err(map_err)?;
        let result = async {
            let mut tx = conn.begin().await.map_err(map_err)?;
            let row = sqlx::query(SELECT_USER)
                .bind(app.to_string())
                .bind(username)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let Some(row) = row else { return Ok(None) };
            let mut user = user_from_row(&row)?;
            if let Some(n) = &patch.nickname {
                user.nickname = Some(n.clone());
            }
            for (k, v) in &patch.attributes {
                if v.is_null() {
                    user.attributes.remove(k);
                } else {
                    user.attributes.insert(k.clone(), v.clone());
                }
            }
            user.modified = now_ms() as i64;
            let attrs = serde_json::Value::Object(user.attributes.clone()).to_string();
            sqlx::query("UPDATE users SET nickname = ?, attributes = ?, modified = ? WHERE seq = ?")
                .bind(&user.nickname)
                .bind(attrs)
                .bind(user.modified)
                .bind(user.seq)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(Some(user))
        }
        .await;
        discard_on_error(&mut conn, &result);
        result
    }

    async fn list_users(&self, app: Uuid, after: i64, limit: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sql!(
            "SELECT ",
            user_columns!(),
            " ",
            "FROM users WHERE app_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(app.to_string())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(map_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn delete_user(&self, app: Uuid, username: &str) -> StoreResult<Option<User>> {
        let mut conn = self.write.acquire().await.map_err(map_err)?;
        let result = async {
            let mut tx = conn.begin().await.map_err(map_err)?;
            let app_s = app.to_string();
            let row =
                sqlx::query(sql!("DELETE FROM users WHERE app_id = ? AND username = ? RETURNING ", user_columns!()))
                    .bind(&app_s)
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            let Some(row) = row else { return Ok(None) };
            let user = user_from_row(&row)?;
            for sql in [
                "DELETE FROM messages WHERE app_id = ? AND owner = ?",
                "DELETE FROM devices WHERE app_id = ? AND owner = ?",
                "DELETE FROM cursors WHERE app_id = ? AND owner = ?",
            ] {
                sqlx::query(sql).bind(&app_s).bind(username).execute(&mut *tx).await.map_err(map_err)?;
            }
            sqlx::query("DELETE FROM tokens WHERE app_id = ? AND user_uuid = ?")
                .bind(&app_s)
                .bind(user.uuid.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(Some(user))
        }
        .await;
        discard_on_error(&mut conn, &result);
        result
    }

    async fn set_password(&self, app: Uuid, username: &str, password_hash: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(sql!(
            "UPDATE users SET password_hash = ?, modified = ? WHERE app_id = ? AND username = ? RETURNING ",
            user_columns!()
        ))
        .bind(password_hash)
        .bind(now_ms() as i64)
        .bind(app.to_string())
        .bind(username)
        .fetch_optional(&self.write)
        .await
        .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn set_activated(&self, app: Uuid, username: &str, activated: bool) -> StoreResult<Option<User>> {
        let row = sqlx::query(sql!(
            "UPDATE users SET activated = ?, modified = ? WHERE app_id = ? AND username = ? RETURNING ",
            user_columns!()
        ))
        .bind(activated)
        .bind(now_ms() as i64)
        .bind(app.to_string())
        .bind(username)
        .fetch_optional(&self.write)
        .await
        .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn enqueue(&self, messages: Vec<QueuedMessage>, policy: QueuePolicy) -> StoreResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.submit(EnqueueJob { messages, policy, record: None, done: oneshot::channel().0 }).await
    }

    async fn enqueue_recorded(
        &self,
        messages: Vec<QueuedMessage>,
        policy: QueuePolicy,
        record: IdempotencyRecord,
    ) -> StoreResult<()> {
        self.submit(EnqueueJob { messages, policy, record: Some(record), done: oneshot::channel().0 }).await
    }

    async fn idempotency_record(&self, app: Uuid, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let row = sqlx::query("SELECT app_id, key, response, created FROM idempotency WHERE app_id = ? AND key = ?")
            .bind(app.to_string())
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(IdempotencyRecord {
            app_id: uuid_col(&row, "app_id")?,
            key: row.try_get("key").map_err(map_err)?,
            response: row.try_get("response").map_err(map_err)?,
            created: row.try_get("created").map_err(map_err)?,
        }))
    }

    async fn sweep_idempotency(&self, before_ms: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM idempotency WHERE created < ?")
            .bind(before_ms)
            .execute(&self.write)
            .await
            .map_err(map_err)?
            .rows_affected())
    }

    async fn offline_count(&self, app: Uuid, owner: &str) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE app_id = ? AND owner = ? AND delivered = 0")
                .bind(app.to_string())
                .bind(owner)
                .fetch_one(&self.read)
                .await
                .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn message(&self, app: Uuid, id: MsgId) -> StoreResult<Option<QueuedMessage>> {
        let row = sqlx::query(sql!("SELECT ", message_columns!(), " ", "FROM messages WHERE id = ? AND app_id = ?"))
            .bind(id.0 as i64)
            .bind(app.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn recall(&self, app: Uuid, id: MsgId) -> StoreResult<RecallOutcome> {
        let row = sqlx::query(sql!("DELETE FROM messages WHERE id = ? AND app_id = ? RETURNING ", message_columns!()))
            .bind(id.0 as i64)
            .bind(app.to_string())
            .fetch_optional(&self.write)
            .await
            .map_err(map_err)?;
        let removed = row.as_ref().map(message_from_row).transpose()?;
        if let (Some(m), Some(listener)) = (&removed, self.clock.listener()) {
            listener.removed(m);
        }
        Ok(match removed {
            None => RecallOutcome::NotFound,
            Some(m) if m.delivered => RecallOutcome::RemovedDelivered(m),
            Some(m) => RecallOutcome::RemovedUndelivered(m),
        })
    }

    async fn register_device(&self, app: Uuid, owner: &str, device: &DeviceInfo) -> StoreResult<bool> {
        // Through the group commit: a login shares its transaction and fsync with whatever
        // else is being written, instead of holding the write connection for one of its own.
        let device =
            DeviceWrite { app: app.to_string(), owner: owner.to_owned(), device: device.clone(), now: now_ms() as i64 };
        let (done, rx) = oneshot::channel();
        self.enqueue_tx.send(Job::Device { device, done }).await.map_err(writer_stopped)?;
        rx.await.map_err(writer_stopped)?
    }

    async fn pending_counts(&self, app: Uuid, owner: &str, resource: &str) -> StoreResult<Vec<QueueCount>> {
        let rows = sqlx::query(
            "SELECT m.queue AS queue, COUNT(*) AS n FROM messages m \
             LEFT JOIN cursors c ON c.app_id = m.app_id AND c.owner = m.owner AND c.queue = m.queue AND c.resource = ? \
             WHERE m.app_id = ? AND m.owner = ? AND m.id > COALESCE(c.acked, 0) \
             GROUP BY m.queue ORDER BY MIN(m.id)",
        )
        .bind(resource)
        .bind(app.to_string())
        .bind(owner)
        .fetch_all(&self.read)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n").map_err(map_err)?;
                Ok(QueueCount { queue: r.try_get("queue").map_err(map_err)?, pending: n as u32 })
            })
            .collect()
    }

    async fn submit_ack(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        key: MsgId,
    ) -> StoreResult<AckReceipt> {
        // Through the group commit, like messages: every pull acks, so acks are as frequent
        // as deliveries, and one fsync each would cap delivery at the disk's fsync rate.
        let ack = AckWrite {
            app: app.to_string(),
            owner: owner.to_owned(),
            resource: resource.to_owned(),
            queue: queue.to_owned(),
            key: key.0 as i64,
        };
        let (done, rx) = oneshot::channel();
        self.enqueue_tx.send(Job::Ack { ack, done }).await.map_err(writer_stopped)?;
        Ok(Box::pin(async move { rx.await.map_err(writer_stopped)? }))
    }

    async fn pending(
        &self,
        app: Uuid,
        owner: &str,
        resource: &str,
        queue: &str,
        after: MsgId,
        limit: u32,
    ) -> StoreResult<Vec<QueuedMessage>> {
        let app_s = app.to_string();
        let rows = sqlx::query(sql!(
            "SELECT ",
            message_columns!(),
            " FROM messages ",
            "WHERE app_id = ?1 AND owner = ?2 AND queue = ?3 AND id > MAX(?6, COALESCE(",
            "(SELECT acked FROM cursors WHERE app_id = ?1 AND owner = ?2 AND resource = ?4 AND queue = ?3), 0)) ",
            "ORDER BY id LIMIT ?5"
        ))
        .bind(&app_s)
        .bind(owner)
        .bind(queue)
        .bind(resource)
        .bind(i64::from(limit))
        .bind(after.0 as i64)
        .fetch_all(&self.read)
        .await
        .map_err(map_err)?;
        let messages = rows.iter().map(message_from_row).collect();
        self.clock.settled().await?;
        messages
    }

    async fn sweep(&self, floor: MsgId) -> StoreResult<u64> {
        let mut removed = 0;
        removed += sqlx::query("DELETE FROM messages WHERE id < ?")
            .bind(floor.0 as i64)
            .execute(&self.write)
            .await
            .map_err(map_err)?
            .rows_affected();
        let floor_ms = floor.unix_ms() as i64;
        removed += sqlx::query("DELETE FROM devices WHERE last_seen < ?")
            .bind(floor_ms)
            .execute(&self.write)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query(
            "DELETE FROM cursors WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.app_id = cursors.app_id \
             AND d.owner = cursors.owner AND d.resource = cursors.resource)",
        )
        .execute(&self.write)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?")
            .bind(now_ms() as i64)
            .execute(&self.write)
            .await
            .map_err(map_err)?;
        Ok(removed)
    }

    async fn insert_file(&self, file: &FileRecord) -> StoreResult<()> {
        sqlx::query(sql!(
            "INSERT INTO files (uuid, app_id, owner, content_type, filename, length, restricted, secret, blob_key, ",
            "thumbnail_key, thumbnail_content_type, thumbnail_length, width, height, created, expires) ",
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(file.uuid.to_string())
        .bind(file.app_id.to_string())
        .bind(file.owner.map(|o| o.to_string()))
        .bind(&file.content_type)
        .bind(&file.filename)
        .bind(file.length as i64)
        .bind(file.restricted)
        .bind(&file.secret)
        .bind(&file.blob_key)
        .bind(&file.thumbnail_key)
        .bind(&file.thumbnail_content_type)
        .bind(file.thumbnail_length.map(|n| n as i64))
        .bind(file.width.map(i64::from))
        .bind(file.height.map(i64::from))
        .bind(file.created)
        .bind(file.expires)
        .execute(&self.write)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("file"),
            other => other,
        })?;
        Ok(())
    }

    async fn file(&self, app: Uuid, uuid: Uuid) -> StoreResult<Option<FileRecord>> {
        let row = sqlx::query(sql!("SELECT ", file_columns!(), " FROM files WHERE uuid = ? AND app_id = ?"))
            .bind(uuid.to_string())
            .bind(app.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
        row.as_ref().map(file_from_row).transpose()
    }

    async fn expired_files(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<FileRecord>> {
        let rows =
            sqlx::query(sql!("SELECT ", file_columns!(), " FROM files WHERE expires <= ? ORDER BY expires LIMIT ?"))
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await
                .map_err(map_err)?;
        rows.iter().map(file_from_row).collect()
    }

    async fn delete_file(&self, app: Uuid, uuid: Uuid) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM files WHERE uuid = ? AND app_id = ?")
            .bind(uuid.to_string())
            .bind(app.to_string())
            .execute(&self.write)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
