//! Forward-only migrations, embedded in the binary and applied in order at open. The
//! `missive_schema` table records every version applied, so a migration numbered below one
//! already applied (branches merged in another order: 0006 and 0007 arrived after 0008) still runs;
//! `user_version` holds the highest. Each runs in its own transaction, so a crash
//! mid-upgrade leaves the previous version intact.

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
    (7, include_str!("../../migrations/sqlite/0007_contacts_attributes.sql")),
    (8, include_str!("../../migrations/sqlite/0008_cluster.sql")),
    (9, include_str!("../../migrations/sqlite/0009_archive_pairs.sql")),
    (10, include_str!("../../migrations/sqlite/0010_delivered_prefix.sql")),
    (11, include_str!("../../migrations/sqlite/0011_conversations_unindexed_activity.sql")),
    (12, include_str!("../../migrations/sqlite/0012_queue_ids.sql")),
    (13, include_str!("../../migrations/sqlite/0013_archive_pair_ids.sql")),
];

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0)
}

/// What a database without `missive_schema` has applied, up to its `user_version`: the
/// versions that existed before the table did.
const BEFORE_LEDGER: &[i64] = &[1, 2, 3, 4, 5, 8];

pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).store()?;
    let has_ledger: bool = conn
        .query_row("SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'missive_schema'", [], |r| {
            r.get(0)
        })
        .store()?;
    let applied: Vec<i64> = if has_ledger {
        let mut stmt = conn.prepare("SELECT version FROM missive_schema").store()?;
        stmt.query_map([], |r| r.get(0)).store()?.collect::<rusqlite::Result<_>>().store()?
    } else {
        let before: Vec<i64> = BEFORE_LEDGER.iter().copied().filter(|v| *v <= current).collect();
        let tx = conn.transaction().store()?;
        tx.execute_batch("CREATE TABLE missive_schema (version INTEGER PRIMARY KEY)").store()?;
        for v in &before {
            tx.execute("INSERT INTO missive_schema (version) VALUES (?1)", [v]).store()?;
        }
        tx.commit().store()?;
        before
    };
    let mut highest = current;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        highest = highest.max(*version);
        let tx = conn.transaction().store()?;
        tx.execute_batch(sql).store()?;
        tx.execute("INSERT INTO missive_schema (version) VALUES (?1)", [version]).store()?;
        // PRAGMA takes no bind parameters; the version is one of our own constants.
        tx.execute_batch(&format!("PRAGMA user_version = {highest}")).store()?;
        tx.commit().store()?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}
