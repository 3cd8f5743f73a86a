//! The PostgreSQL backend: one database shared by every node of a cluster.
//!
//! Reads and ordinary writes (users, tokens, files, apps) go straight to a connection pool;
//! the delivery path's writes (messages, acks, device logins, recalls) go through this node's
//! group commit (`writer`), so a burst of sends costs one transaction and one WAL flush.
//! Queue sequences come from the `queues` row of each queue, updated in the transaction that
//! inserts the messages: concurrent writers to one queue — on this node or another — wait on
//! that row and commit in sequence order, which is the sequence rule the delivery path
//! relies on (`missive_core::store::queues`).
//!
//! # Layout
//! - `writer`: the group-commit batch writer. `migrate`: forward-only migrations.
//! - `rows`: row mapping. `apps`, `users`, `tokens`, `queues`, `files`, `cluster`, `outbox`,
//!   `notify`, `history`: one capability each.
//! - [`ScratchDatabase`]: a throw-away database, for tests and benchmarks.

mod apps;
mod cluster;
mod files;
mod history;
mod migrate;
mod notify;
mod outbox;
mod queues;
mod rows;
mod tokens;
mod users;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use missive_core::store::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::mpsc;

use crate::group_commit::{self, ListenerSlot, QueueJob, QueueJobs};
use rows::PgResultExt;
use writer::PgWriter;

/// How a `PgStore` is opened.
#[derive(Clone, Debug)]
pub struct PgStoreOptions {
    /// Connections in the pool (the group commit holds one while it writes a batch).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing with `Busy`.
    pub acquire_timeout: Duration,
    /// Most rows written by one group commit.
    pub max_batch: usize,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions { max_connections: 16, acquire_timeout: Duration::from_secs(5), max_batch: 1024 }
    }
}

/// The PostgreSQL `Store`. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    jobs: QueueJobs<QueueJob>,
    listener: Arc<ListenerSlot>,
}

/// Parses a `postgres://` URL (user info, host, port, database, `sslmode` and the other
/// libpq parameters sqlx understands), without logging it: it may carry a password.
fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map(|o| o.disable_statement_logging())
        .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {}", redact(&e.to_string()))))
}

/// Error texts from URL parsing can echo the URL; keep any password out of logs.
fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &text[..s], &text[at..]),
        _ => text.to_owned(),
    }
}

impl PgStore {
    /// Connects, applies pending migrations and starts this node's group commit.
    pub async fn open(url: &str, options: PgStoreOptions) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options(url)?)
            .await
            .store()?;
        migrate::migrate(&pool).await?;
        let listener = Arc::new(ListenerSlot::default());
        let (tx, rx) = mpsc::channel(4096);
        let writer = PgWriter::new(pool.clone(), listener.clone());
        tokio::spawn(group_commit::run(writer, rx, options.max_batch.max(1)));
        Ok(PgStore { pool, jobs: QueueJobs::new(tx), listener })
    }

    /// Closes the pool, waiting for statements in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database created for one test or benchmark run and dropped afterwards, so runs never
/// see each other's data. Made from an admin URL (`postgres://postgres@127.0.0.1:5432/postgres`).
pub struct ScratchDatabase {
    /// The URL of the new database.
    pub url: String,
    admin: PgConnectOptions,
    name: String,
}

impl ScratchDatabase {
    /// Creates `missive_<prefix>_<random>` on the server `admin_url` points at.
    pub async fn create(admin_url: &str, prefix: &str) -> StoreResult<ScratchDatabase> {
        let admin = connect_options(admin_url)?;
        let mut conn = admin.connect().await.store()?;
        let name = format!("missive_{}_{}", prefix, uuid::Uuid::new_v4().simple());
        // Identifiers cannot be bound; the name is ours (prefix checked, random suffix).
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::Backend(format!("invalid database prefix {prefix:?}")));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.store()?;
        let _ = conn.close().await;
        let url = format!("{}/{}", admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(admin_url), name);
        Ok(ScratchDatabase { url, admin, name })
    }

    /// Drops the database, disconnecting anyone still on it.
    pub async fn drop_now(&self) -> StoreResult<()> {
        let mut conn = self.admin.connect().await.store()?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&mut conn)
            .await
            .store()?;
        let _ = conn.close().await;
        Ok(())
    }
}

impl Drop for ScratchDatabase {
    /// Best effort, on a thread of its own: `Drop` cannot await, and it may run inside a
    /// runtime that must not be blocked.
    fn drop(&mut self) {
        let scratch = ScratchDatabase { url: self.url.clone(), admin: self.admin.clone(), name: self.name.clone() };
        let done = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = rt.block_on(scratch.drop_now());
            }
            std::mem::forget(scratch);
        });
        let _ = done.join();
    }
}
