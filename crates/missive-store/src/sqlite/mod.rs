//! The SQLite backend: the embedded default that needs nothing but a data directory.
//!
//! One database file in WAL mode with `synchronous = FULL`: every commit fsyncs the WAL
//! before it returns, which is Missive's durability point. One thread owns the only write
//! connection and group-commits every write (`writer`); a few reader threads own read-only
//! connections (`reader`), so reads never wait for the writer. Both run rusqlite on their own
//! threads: a query is one hand-off to its thread and one back, never one per statement.
//!
//! # Layout
//! - `writer`: the group-commit writer and queue sequences. `reader`: the read pool.
//!   `checkpoint`: WAL checkpoints on a thread of their own.
//! - `migrate`: forward-only migrations. `backup`: backup and restore. `rows`: row mapping.
//! - `apps`, `users`, `tokens`, `queues`, `files`, `cluster`, `outbox`, `notify`, `history`:
//!   one `Store` capability each; `contacts`: contacts, blocklists and user attributes.

mod apps;
mod backup;
mod checkpoint;
mod cluster;
mod contacts;
mod files;
mod history;
mod migrate;
mod notify;
mod outbox;
mod queues;
mod reader;
mod rows;
mod tokens;
mod users;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use missive_core::store::{StoreError, StoreResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use backup::restore;

/// The schema version this build writes (`PRAGMA user_version` after the migrations).
pub fn schema_version() -> i64 {
    migrate::latest()
}

/// Every migration as `(version, SQL)`, in order: upgrade tests build the databases of
/// earlier versions from them.
#[doc(hidden)]
pub fn migrations() -> &'static [(i64, &'static str)] {
    migrate::MIGRATIONS
}
use reader::ReadPool;
use rows::SqlResultExt;
use writer::{SqliteJob, SqliteWriter, exec_job};

use crate::group_commit::{self, ListenerSlot, QueueJobs, writer_stopped};

/// How a `SqliteStore` is opened.
#[derive(Clone, Debug)]
pub struct SqliteStoreOptions {
    /// How long a statement may wait for a lock held by another process (the `app create`
    /// command beside a running server, a backup) before it fails with `StoreError::Busy`.
    pub busy_timeout: Duration,
    /// Reader threads, each with its own connection.
    pub read_connections: u32,
    /// Most rows written by one group commit.
    pub max_batch: usize,
    /// The WAL file is cut back to this size when it is reset (`journal_size_limit`).
    pub wal_size_limit_bytes: i64,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        // Two readers: each is an OS thread a query has to wake; on a small machine more of
        // them mostly add wake-ups (docs/benchmarks.md).
        SqliteStoreOptions {
            busy_timeout: Duration::from_secs(5),
            read_connections: 2,
            max_batch: 1024,
            wal_size_limit_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The SQLite `Store`. Cheap to clone: the reader pool and the writer's channel are shared.
#[derive(Clone)]
pub struct SqliteStore {
    reads: Arc<ReadPool>,
    jobs: QueueJobs<SqliteJob>,
    listener: Arc<ListenerSlot>,
}

/// Prepared statements kept per connection. rusqlite keeps 16 by default; the writer alone
/// runs more than that on the send path (queue, archive, ack and transaction statements), so
/// with the default every batch re-parsed the ones evicted since the last.
const STATEMENT_CACHE: usize = 256;
/// Page cache of the writer's connection, in KiB (SQLite's default is 2,000 KiB). A message
/// dirties pages of several B-trees at random places (queue, archive, conversations), so a
/// 600-recipient send touches thousands of pages: with the default cache the writer read
/// most of them back with a `pread` each and spilled dirty pages to the WAL in the middle
/// of the transaction. The cache is filled only as pages are used, so an idle server does
/// not hold it; it is the writer's memory bound.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of each reader's connection, in KiB.
const READER_CACHE_KIB: i64 = 8 * 1024;

fn set_cache_kib(conn: &Connection, kib: i64) -> StoreResult<()> {
    conn.execute_batch(&format!("PRAGMA cache_size = -{kib}")).store()
}

fn configure(conn: &Connection, options: &SqliteStoreOptions) -> StoreResult<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans that do not depend on bound values. Without this guarantee SQLite marks a cached
    // statement for re-preparing whenever a parameter it compared while planning gets a new
    // value: every login's unread count (`pending_counts`) was parsed and planned anew, a
    // third of the readers' time. Missive keeps no STAT4 statistics that a value-specific
    // plan could use, so nothing is lost.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).store()?;
    conn.busy_timeout(options.busy_timeout).store()?;
    conn.execute_batch("PRAGMA foreign_keys = OFF").store()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    /// Must be called inside a Tokio runtime; the writer and readers run on threads of their own.
    pub async fn open(path: &Path, options: SqliteStoreOptions) -> StoreResult<SqliteStore> {
        let path = path.to_path_buf();
        let opts = options.clone();
        // Opening and migrating touch the disk: off the async threads.
        let (write_conn, read_conns) = tokio::task::spawn_blocking(move || -> StoreResult<_> {
            let mut conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .store()?;
            configure(&conn, &opts)?;
            set_cache_kib(&conn, WRITER_CACHE_KIB)?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).store()?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend(format!("could not enable WAL (journal_mode is {mode})")));
            }
            conn.execute_batch(&format!(
                "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = {}",
                opts.wal_size_limit_bytes
            ))
            .store()?;
            migrate::migrate(&mut conn)?;
            // Readers are opened up front: a server out of file descriptors must still be
            // able to read, and the first requests should not pay for opening connections.
            let mut readers = Vec::new();
            for _ in 0..opts.read_connections.max(1) {
                let r = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .store()?;
                configure(&r, &opts)?;
                set_cache_kib(&r, READER_CACHE_KIB)?;
                readers.push(r);
            }
            let checkpointer =
                Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .store()?;
            configure(&checkpointer, &opts)?;
            checkpoint::start(&mut conn, checkpointer)?;
            Ok((conn, readers))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("opening the database: {e}")))??;

        let listener = Arc::new(ListenerSlot::default());
        let (tx, rx) = mpsc::channel(4096);
        let writer = SqliteWriter::new(write_conn, listener.clone(), options.busy_timeout);
        // The writer gets a thread of its own: as a task on the shared runtime it would wait
        // its turn behind every ready connection task, and under overload a batch took seconds.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("writer runtime: {e}")))?;
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("missive-writer".into())
            .spawn(move || runtime.block_on(group_commit::run(writer, rx, max_batch)))
            .map_err(|e| StoreError::Backend(format!("writer thread: {e}")))?;
        Ok(SqliteStore { reads: Arc::new(ReadPool::start(read_conns)?), jobs: QueueJobs::new(tx), listener })
    }

    /// Runs `f` on a reader's connection.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.reads.read(f).await
    }

    /// Runs `f` on the write connection, inside the next group-commit transaction (in a
    /// savepoint of its own); answers once that transaction is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs.sender().send(exec_job(f, tx)).await.map_err(writer_stopped)?;
        rx.await.map_err(writer_stopped)?
    }

    /// Waits until every write queued before this call is durable.
    pub async fn close(&self) {
        let _ = self.write(|_| Ok(())).await;
    }

    /// Writes a consistent copy of the live database to `dest` (`VACUUM INTO`), safe while
    /// the server is serving.
    pub async fn backup_to(&self, dest: &Path) -> StoreResult<()> {
        let dest = dest.to_path_buf();
        self.read(move |c| backup::backup(c, &dest)).await
    }
}
