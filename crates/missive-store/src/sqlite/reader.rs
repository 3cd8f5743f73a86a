//! Readers: a few threads, each owning a read-only connection, serving closures from one
//! bounded queue.
//!
//! A read costs one hand-off to a reader thread and one back (a oneshot), whatever the query
//! does: rows are mapped on the reader thread, not streamed back statement by statement. WAL
//! mode lets readers run beside the writer without waiting for it. A full queue is answered
//! with `StoreError::Busy` at once instead of growing without bound.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use missive_core::store::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::oneshot;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Reads waiting for a reader before new ones are refused.
const QUEUE_DEPTH: usize = 4096;

pub(crate) struct ReadPool {
    jobs: SyncSender<ReadJob>,
}

impl ReadPool {
    /// Starts one thread per connection. The threads end when the pool is dropped.
    pub fn start(connections: Vec<Connection>) -> StoreResult<ReadPool> {
        let (jobs, rx) = sync_channel::<ReadJob>(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for (i, conn) in connections.into_iter().enumerate() {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("missive-reader-{i}"))
                .spawn(move || serve(conn, rx))
                .map_err(|e| StoreError::Backend(format!("reader thread: {e}")))?;
        }
        Ok(ReadPool { jobs })
    }

    /// Runs `f` on a reader's connection.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(StoreError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(StoreError::Backend("readers stopped".into())),
        }
        rx.await.map_err(|_| StoreError::Backend("a reader stopped mid-read".into()))?
    }
}

fn serve(conn: Connection, jobs: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running it.
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job(&conn);
    }
}
