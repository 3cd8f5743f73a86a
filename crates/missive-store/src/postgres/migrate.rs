//! Forward-only migrations for PostgreSQL, embedded in the binary. Applied versions are
//! recorded in `missive_schema`; each migration runs in one transaction holding an advisory lock, so
//! several nodes starting at once apply it exactly once.

use missive_core::store::{StoreError, StoreResult};
use sqlx::PgPool;

use super::rows::PgResultExt;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_notify.sql")),
    (3, include_str!("../../migrations/postgres/0003_archive.sql")),
    (4, include_str!("../../migrations/postgres/0004_contacts_attributes.sql")),
    (5, include_str!("../../migrations/postgres/0005_cluster.sql")),
    (6, include_str!("../../migrations/postgres/0006_archive_pairs.sql")),
];

/// An arbitrary constant naming Missive's migration lock among advisory locks.
const MIGRATION_LOCK: i64 = 0x006d_6973_7369_7665; // "missive"

pub(crate) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await.store()?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await.store()?;
    // Checked first: `CREATE TABLE IF NOT EXISTS` on an existing table logs a server notice
    // at every start.
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('missive_schema') IS NOT NULL").fetch_one(&mut *tx).await.store()?;
    if !exists {
        sqlx::query("CREATE TABLE missive_schema (version bigint NOT NULL)").execute(&mut *tx).await.store()?;
    }
    // Every applied version is recorded, so a migration numbered below one already applied
    // (branches merged in another order) still runs.
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM missive_schema").fetch_all(&mut *tx).await.store()?;
    let current = applied.iter().copied().max().unwrap_or(0);
    let latest = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
    if current > latest {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}; this build supports up to {latest}"
        )));
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await.store()?;
        sqlx::query("INSERT INTO missive_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .store()?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await.store()
}
