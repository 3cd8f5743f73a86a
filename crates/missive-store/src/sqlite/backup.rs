//! Backup and restore of the embedded database.
//!
//! A backup is `VACUUM INTO` a new file from a read connection: a consistent snapshot, taken
//! while the server serves (WAL readers never block the writer). Restore checks the file is
//! an intact Missive database this build can open, removes the old WAL so it is not replayed
//! onto the restored data, and swaps the file in with a rename.

use std::path::{Path, PathBuf};

use missive_core::store::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};

use super::migrate;
use super::rows::SqlResultExt;

/// Writes a consistent copy of the database `conn` reads to `dest`.
pub(crate) fn backup(conn: &Connection, dest: &Path) -> StoreResult<()> {
    let dest = dest.to_str().ok_or_else(|| StoreError::Backend("backup path is not UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [dest]).store()?;
    Ok(())
}

/// Replaces the database at `db` with the backup at `backup`. The server must not be running.
pub fn restore(backup: &Path, db: &Path) -> StoreResult<()> {
    {
        let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY).store()?;
        let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).store()?;
        if verdict != "ok" {
            return Err(StoreError::Backend(format!("backup failed its integrity check: {verdict}")));
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).store()?;
        let latest = migrate::latest();
        if version < 1 || version > latest {
            return Err(StoreError::Backend(format!(
                "backup has schema version {version}; this build supports 1 to {latest}"
            )));
        }
    }
    let io = |e: std::io::Error| StoreError::Backend(format!("restoring {}: {e}", db.display()));
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(p)) {
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
