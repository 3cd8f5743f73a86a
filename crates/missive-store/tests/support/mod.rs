//! Opens a fresh store of either backend for one test.

#![allow(dead_code)]

use std::sync::Arc;

use missive_core::store::Store;
use missive_store::postgres::ScratchDatabase;
use missive_store::{PgStore, PgStoreOptions, SqliteStore, SqliteStoreOptions};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL tests create their databases from.
pub fn pg_admin_url() -> String {
    std::env::var("MISSIVE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A store for one test, and what keeps its data alive (a temporary directory or database).
pub struct TestStore {
    pub store: Arc<dyn Store>,
    backend: Backend,
    dir: Option<tempfile::TempDir>,
    pg: Option<ScratchDatabase>,
}

impl TestStore {
    /// Another handle on the same data, as a second node (PostgreSQL) or a second process
    /// (SQLite) would open it.
    pub async fn second(&self) -> Arc<dyn Store> {
        match self.backend {
            Backend::Sqlite => Arc::new(
                SqliteStore::open(&self.dir.as_ref().expect("dir").path().join("db"), SqliteStoreOptions::default())
                    .await
                    .expect("second sqlite handle"),
            ),
            Backend::Postgres => Arc::new(
                PgStore::open(&self.pg.as_ref().expect("db").url, PgStoreOptions::default())
                    .await
                    .expect("second pg handle"),
            ),
        }
    }
}

pub async fn open(backend: Backend) -> TestStore {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let store =
                SqliteStore::open(&dir.path().join("db"), SqliteStoreOptions::default()).await.expect("open sqlite");
            TestStore { store: Arc::new(store), backend, dir: Some(dir), pg: None }
        }
        Backend::Postgres => {
            let pg = ScratchDatabase::create(&pg_admin_url(), "conf").await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required for the conformance suite ({e}); set MISSIVE_TEST_PG_URL")
            });
            let store = PgStore::open(&pg.url, PgStoreOptions::default()).await.expect("open postgres");
            TestStore { store: Arc::new(store), backend, dir: None, pg: Some(pg) }
        }
    }
}
