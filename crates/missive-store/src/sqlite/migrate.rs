//! Forward-only migrations, embedded in the binary and applied in order at open; the
//! database's `user_version` records the last one applied. Each runs in its own transaction,
//! so a crash mid-upgrade leaves the previous version intact.

use missive_core::store::StoreResult;
use rusqlite::Connection;

use super::rows::SqlResultExt;

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_files.sql")),
    (3, include_str!("../../migrations/sqlite/0003_idempotency.sql")),
    (4, include_str!("../../migrations/sqlite/0004_queue_sequences.sql")),
    (5, include_str!("../../migrations/sqlite/0005_notify.sql")),
    (6, include_str!("../../migrations/sqlite/0006_archive.sql")),
    (8, include_str!("../../migrations/sqlite/0008_cluster.sql")),
];

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0)
}

pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).store()?;
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        let tx = conn.transaction().store()?;
        tx.execute_batch(sql).store()?;
        // PRAGMA takes no bind parameters; the version is one of our own constants.
        tx.execute_batch(&format!("PRAGMA user_version = {version}")).store()?;
        tx.commit().store()?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}
