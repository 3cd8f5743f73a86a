//! Forward-only migrations: a database written by an older schema opens with this build,
//! is upgraded in place, and keeps its data.

use missive_core::id::MsgId;
use missive_core::store::Store;
use missive_store::{SqliteStore, SqliteStoreOptions};
use sqlx::{Connection, SqliteConnection};
use uuid::Uuid;

#[tokio::test]
async fn a_schema_v1_database_upgrades_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let app = Uuid::new_v4();
    {
        // What a v1 server left behind: its schema, its version stamp, and rows.
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let mut c = SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql(include_str!("../migrations/sqlite/0001_init.sql")).execute(&mut c).await.unwrap();
        sqlx::raw_sql("PRAGMA user_version = 1").execute(&mut c).await.unwrap();
        sqlx::query(
            "INSERT INTO apps (id, org, name, client_id, client_secret, open_registration, created) \
             VALUES (?, 'o', 'a', 'cid', 'sec', 0, 1)",
        )
        .bind(app.to_string())
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO messages (id, app_id, owner, queue, sender, created, payload, delivered) \
             VALUES (42, ?, 'bob', 'alice', 'alice', 1, x'0a00', 0)",
        )
        .bind(app.to_string())
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let store = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("upgrade");
    let found = store.app_by_name("o", "a").await.unwrap().expect("app kept");
    assert_eq!(found.id, app);
    assert_eq!(store.offline_count(app, "bob").await.unwrap(), 1);
    assert_eq!(store.message(app, MsgId(42)).await.unwrap().expect("message kept").payload, vec![0x0a, 0x00]);
    store.close().await;

    // The upgraded file reports the newest version and opening it again changes nothing.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut c = SqliteConnection::connect_with(&opts).await.unwrap();
    let v: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut c).await.unwrap();
    assert!(v >= 2, "schema version {v}");
    c.close().await.unwrap();
    let again = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("reopen");
    assert_eq!(again.offline_count(app, "bob").await.unwrap(), 1);
}
