//! WAL checkpoints, off the writer's thread.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that crosses its threshold, on the
//! committing connection: it copies the WAL's pages into the database file and fsyncs both
//! before `COMMIT` returns, so every caller of that batch — and every job queued behind it —
//! waited for it (the long tail of send latency), and it took a sixth of the writer's time.
//! Here the writer's connection only reports the WAL's size after each commit (a WAL hook,
//! which also turns the automatic checkpoint off); past [`CHECKPOINT_FRAMES`] it wakes a
//! thread of its own that runs a PASSIVE checkpoint on its own connection. A PASSIVE
//! checkpoint never blocks the writer or a reader, and it copies each page once however many
//! times the WAL holds it. The writer still resets a grown WAL (`writer::maybe_truncate_wal`).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use missive_core::store::{StoreError, StoreResult};
use rusqlite::Connection;

use super::rows::SqlResultExt;

/// WAL frames (pages, 32 MiB) after which a checkpoint is started. SQLite's default, 1,000, ran
/// one every tenth of a second at full load, each with an fsync of the database file that a
/// commit's fsync of the WAL then queued behind (the idle send's p99); a page rewritten many
/// times in between is copied once.
const CHECKPOINT_FRAMES: i32 = 8000;
/// The shortest time from one checkpoint's start to the next one's.
const CHECKPOINT_PACE: Duration = Duration::from_millis(25);

/// Hooks `writer` so that its commits wake a checkpoint thread running on `conn`.
pub(crate) fn start(writer: &mut Connection, conn: Connection) -> StoreResult<()> {
    let (wake, woken): (SyncSender<()>, Receiver<()>) = sync_channel(1);
    std::thread::Builder::new()
        .name("missive-checkpoint".into())
        .spawn(move || run(conn, woken))
        .map_err(|e| StoreError::Backend(format!("checkpoint thread: {e}")))?;
    // The sender lives in the hook, so the thread ends when the writer's connection closes.
    writer
        .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
            if frames >= CHECKPOINT_FRAMES {
                // Full: a checkpoint is already waiting, and it will take these frames too.
                let _ = wake.try_send(());
            }
            Ok(())
        }))
        .store()
}

/// Checkpoints when woken, at most once per [`CHECKPOINT_PACE`]. The WAL does not shrink
/// after a checkpoint that commits overlapped (it restarts only once everything in it was
/// copied back), so a long WAL wakes this thread after every commit; unpaced, it ran a
/// checkpoint of a few pages — with its fsyncs of the database file — every few commits.
fn run(conn: Connection, woken: Receiver<()>) {
    while woken.recv().is_ok() {
        let started = Instant::now();
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(%e, "WAL checkpoint did not complete; the next commit retries");
        }
        std::thread::sleep(CHECKPOINT_PACE.saturating_sub(started.elapsed()));
    }
}
