//! Forward-only migrations, embedded in the binary and applied in order at open. Each runs in
//! its own transaction, so a crash mid-upgrade leaves the previous version intact.
//!
//! Every applied version is recorded in `missive_migrations`, so a migration numbered below
//! one already applied (branches merged in another order: 0006 and 0007 landed after 0008)
//! still runs. `user_version` keeps the highest applied version, as before. A database
//! written before the table existed recorded only `user_version`; its applied set is every
//! version of [`BEFORE_TRACKING`] up to that number.

use missive_core::store::StoreResult;
use rusqlite::Connection;

use super::rows::SqlResultExt;

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_files.sql")),
    (3, include_str!("../../migrations/sqlite/0003_idempotency.sql")),
    (4, include_str!("../../migrations/sqlite/0004_queue_sequences.sql")),
    (5, include_str!("../../migrations/sqlite/0005_notify.sql")),
    (7, include_str!("../../migrations/sqlite/0007_contacts_attributes.sql")),
    (8, include_str!("../../migrations/sqlite/0008_cluster.sql")),
];

/// The versions that existed while `user_version` alone recorded the schema.
const BEFORE_TRACKING: &[i64] = &[1, 2, 3, 4, 5, 8];

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.iter().map(|(v, _)| *v).max().unwrap_or(0)
}

pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).store()?;
    let tracked: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'missive_migrations'",
            [],
            |r| r.get(0),
        )
        .store()?;
    if !tracked {
        let tx = conn.transaction().store()?;
        tx.execute_batch("CREATE TABLE missive_migrations (version INTEGER PRIMARY KEY)").store()?;
        for v in BEFORE_TRACKING.iter().filter(|v| **v <= current) {
            tx.execute("INSERT INTO missive_migrations (version) VALUES (?1)", [v]).store()?;
        }
        tx.commit().store()?;
    }
    let applied: Vec<i64> = conn
        .prepare("SELECT version FROM missive_migrations")
        .store()?
        .query_map([], |r| r.get(0))
        .store()?
        .collect::<rusqlite::Result<_>>()
        .store()?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let tx = conn.transaction().store()?;
        tx.execute_batch(sql).store()?;
        tx.execute("INSERT INTO missive_migrations (version) VALUES (?1)", [version]).store()?;
        // PRAGMA takes no bind parameters; the version is one of our own constants.
        tx.execute_batch(&format!("PRAGMA user_version = {}", current.max(applied_max(&tx)?))).store()?;
        tx.commit().store()?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

fn applied_max(c: &Connection) -> StoreResult<i64> {
    c.query_row("SELECT COALESCE(max(version), 0) FROM missive_migrations", [], |r| r.get(0)).store()
}
