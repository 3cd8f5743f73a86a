//! Forward-only migrations: a database written by an older schema opens with this build, is
//! upgraded in place, and keeps its data — including the delivery state of devices.

use missive_core::id::MsgId;
use missive_core::store::prelude::*;
use missive_store::{SqliteStore, SqliteStoreOptions};
use rusqlite::Connection;
use uuid::Uuid;

fn user_version(path: &std::path::Path) -> i64 {
    Connection::open(path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn a_schema_v1_database_upgrades_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let app = Uuid::new_v4();
    {
        // What a v1 server left behind: its schema, its version stamp, and rows.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(include_str!("../migrations/sqlite/0001_init.sql")).unwrap();
        c.execute_batch("PRAGMA user_version = 1").unwrap();
        c.execute(
            "INSERT INTO apps (id, org, name, client_id, client_secret, open_registration, created) \
             VALUES (?1, 'o', 'a', 'cid', 'sec', 0, 1)",
            [app.to_string()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO messages (id, app_id, owner, queue, sender, created, payload, delivered) \
             VALUES (42, ?1, 'bob', 'alice', 'alice', 1, x'0a00', 0)",
            [app.to_string()],
        )
        .unwrap();
        // Delivered before the upgrade: its flag becomes the queue's delivered prefix (0010).
        c.execute(
            "INSERT INTO messages (id, app_id, owner, queue, sender, created, payload, delivered) \
             VALUES (41, ?1, 'bob', 'alice', 'alice', 1, x'0a01', 1)",
            [app.to_string()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("upgrade");
    let found = store.app_by_name("o", "a").await.unwrap().expect("app kept");
    assert_eq!(found.id, app);
    assert_eq!(store.offline_count(app, "bob").await.unwrap(), 1);
    let m = store.message(app, MsgId(42)).await.unwrap().expect("message kept");
    assert_eq!((m.payload.as_ref(), m.seq, m.delivered), (&[0x0a, 0x00][..], 2, false));
    let m = store.message(app, MsgId(41)).await.unwrap().expect("delivered message kept");
    assert_eq!((m.seq, m.delivered), (1, true));
    store.close().await;
    drop(store);

    // The upgraded file reports the newest version and opening it again changes nothing.
    assert_eq!(user_version(&path), missive_store::sqlite::schema_version());
    let again = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("reopen");
    assert_eq!(again.offline_count(app, "bob").await.unwrap(), 1);
}

/// `tests/fixtures/v0.1-data` is a data directory's database written by the 0.1 release
/// (schema 3: cursors are message ids); its README says what it holds.
#[tokio::test]
async fn a_data_directory_of_release_0_1_upgrades_to_queue_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missive.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v0.1-data/missive.db"), &path).unwrap();
    assert_eq!(user_version(&path), 3);
    let store = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("upgrade");
    let app = store.app_by_name("demo", "demo").await.unwrap().expect("the demo app").id;
    assert_eq!(store.offline_count(app, "bob").await.unwrap(), 3);
    assert_eq!(store.offline_count(app, "alice").await.unwrap(), 2);

    // bob's phone acked a2b-1..5 and c2b-1..3 by id; as sequences that is 5 and 3.
    let page = store.pending(app, "bob", "phone", "alice", 0, 100).await.unwrap();
    assert_eq!((page.cursor, page.head), (5, 8));
    assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [6, 7, 8]);
    let texts: Vec<String> = page.messages.iter().map(|m| text_of(&m.payload)).collect();
    assert_eq!(texts, ["a2b-6", "a2b-7", "a2b-8"]);
    let carol = store.pending(app, "bob", "phone", "carol", 0, 100).await.unwrap();
    assert_eq!((carol.cursor, carol.head, carol.messages.len()), (3, 3, 0));
    // A device bob never used gets what no device acked, and alice's queue is whole.
    store
        .register_device(
            app,
            "bob",
            &missive_core::model::DeviceInfo { resource: "tablet".into(), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(store.pending(app, "bob", "tablet", "alice", 0, 100).await.unwrap().messages.len(), 3);
    let alice = store.pending(app, "alice", "web", "bob", 0, 100).await.unwrap();
    assert_eq!(alice.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);

    // New messages continue the sequence instead of reusing one.
    let ids = missive_core::id::IdGenerator::new(3);
    let stored = store
        .enqueue(missive_core::store::EnqueueRequest {
            messages: vec![missive_core::model::NewMessage {
                id: ids.next_id(),
                app_id: app,
                owner: "bob".into(),
                queue: "alice".into(),
                sender: "alice".into(),
                created: 1,
                payload: bytes::Bytes::from_static(b"x"),
            }],
            policy: missive_core::store::QueuePolicy { max_offline_per_user: 500 },
            record: None,
            outbox: vec![],
            archive: vec![],
        })
        .await
        .unwrap();
    assert_eq!(stored[0].seq, 9);
}

/// Sends one archived message from alice to bob as the delivery path does (queue row and
/// archive row in one request).
async fn alice_to_bob(
    store: &SqliteStore,
    app: Uuid,
    id: MsgId,
) -> Vec<std::sync::Arc<missive_core::model::QueuedMessage>> {
    let payload = bytes::Bytes::from_static(b"x");
    let message = missive_core::model::NewMessage {
        id,
        app_id: app,
        owner: "bob".into(),
        queue: "alice".into(),
        sender: "alice".into(),
        created: 1,
        payload: payload.clone(),
    };
    let entry = missive_core::store::NewArchived {
        app_id: app,
        id,
        from: "alice".into(),
        to: "bob".into(),
        created: 1,
        kind: missive_core::archive::MessageKind::Text,
        payload,
        hidden_from_sender: false,
        hidden_from_recipient: false,
        listed: true,
    };
    store
        .enqueue(missive_core::store::EnqueueRequest {
            messages: vec![message],
            policy: missive_core::store::QueuePolicy { max_offline_per_user: 500 },
            record: None,
            outbox: vec![],
            archive: vec![entry],
        })
        .await
        .unwrap()
}

/// The text of a txt message's encoded `MessageBody`, found without decoding protobuf: the
/// fixture's texts are short ASCII and appear verbatim in the bytes.
fn text_of(payload: &[u8]) -> String {
    let s = String::from_utf8_lossy(payload);
    let start = s.find("a2b-").expect("a fixture text");
    s[start..start + 5].to_owned()
}

/// A database written before 0006 and 0007 existed has `user_version` 8 (0008 arrived
/// first): the archive and contacts migrations, numbered below it, still run, and sends
/// archive from then on.
#[tokio::test]
async fn a_migration_numbered_below_the_database_version_still_runs() {
    use missive_core::archive::{Direction, HistoryQuery, KindSet, TimeRange};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v8.db");
    {
        let c = Connection::open(&path).unwrap();
        for sql in [
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/sqlite/0002_files.sql"),
            include_str!("../migrations/sqlite/0003_idempotency.sql"),
            include_str!("../migrations/sqlite/0004_queue_sequences.sql"),
            include_str!("../migrations/sqlite/0005_notify.sql"),
            include_str!("../migrations/sqlite/0008_cluster.sql"),
        ] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch("PRAGMA user_version = 8").unwrap();
    }
    let store = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("upgrade");
    let (app, ids) = (Uuid::new_v4(), missive_core::id::IdGenerator::new(1));
    alice_to_bob(&store, app, ids.next_id()).await;
    let q = HistoryQuery {
        direction: Direction::Older,
        cursor: None,
        time: TimeRange::ALL,
        kinds: KindSet::default(),
        from: None,
        limit: 10,
    };
    assert_eq!(store.history(app, "bob", "alice", &q).await.unwrap().len(), 1);
    assert!(store.add_contact(app, "amy", "bob", 1).await.unwrap(), "0007's tables exist");
    store.close().await;
    drop(store);
    assert_eq!(user_version(&path), missive_store::sqlite::schema_version());
    let again = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("reopening applies nothing twice");
    assert_eq!(again.contact_count(app, "amy").await.unwrap(), 1);
}

/// A database of schema 11 (queues and archive pairs keyed by name) gets integer queue and
/// pair ids (0012, 0013): its queued messages, delivered prefix and archive are found through
/// the new indexes, sequences continue, and deleting a user still finds their rows on the
/// `lo` side of a pair.
#[tokio::test]
async fn a_schema_v11_database_gets_queue_and_pair_ids() {
    use missive_core::archive::{Direction, HistoryQuery, KindSet, TimeRange};
    use missive_core::model::NewUser;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v11.db");
    let app = Uuid::new_v4();
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE missive_schema (version INTEGER PRIMARY KEY)").unwrap();
        for (version, sql) in missive_store::sqlite::migrations().iter().filter(|(v, _)| *v <= 11) {
            c.execute_batch(sql).unwrap();
            c.execute("INSERT INTO missive_schema (version) VALUES (?1)", [version]).unwrap();
        }
        c.execute_batch("PRAGMA user_version = 11").unwrap();
        let app_s = app.to_string();
        // bob's queue from alice: two messages, the first delivered.
        for (id, seq) in [(101, 1), (102, 2)] {
            c.execute(
                "INSERT INTO messages (id, app_id, owner, queue, sender, created, payload, seq) \
                 VALUES (?1, ?2, 'bob', 'alice', 'alice', 1, x'0a00', ?3)",
                rusqlite::params![id, app_s, seq],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO queues (app_id, owner, queue, head, delivered) VALUES (?1, 'bob', 'alice', 2, 1)",
            [&app_s],
        )
        .unwrap();
        // Three archived messages alice → bob (`lo` = alice sent them: flag 1); the third is
        // hidden from bob (flag 4).
        for (id, flags) in [(101, 1), (102, 1), (103, 1 | 4)] {
            c.execute(
                "INSERT INTO archive (id, app_id, lo, hi, flags, kind, created, payload) \
                 VALUES (?1, ?2, 'alice', 'bob', ?3, 0, 1, x'0a00')",
                rusqlite::params![id, app_s, flags],
            )
            .unwrap();
        }
        c.execute("INSERT INTO archive_pairs (app_id, hi, lo) VALUES (?1, 'bob', 'alice')", [&app_s]).unwrap();
    }
    let store = SqliteStore::open(&path, SqliteStoreOptions::default()).await.expect("upgrade");
    for name in ["alice", "bob"] {
        let new = NewUser { username: name.into(), password_hash: "h".into(), nickname: None };
        store.create_user(app, &new).await.unwrap();
    }
    let page = store.pending(app, "bob", "phone", "alice", 0, 10).await.unwrap();
    assert_eq!(page.head, 2);
    let seqs: Vec<(u64, bool)> = page.messages.iter().map(|m| (m.seq, m.delivered)).collect();
    assert_eq!(seqs, [(1, true), (2, false)]);
    assert_eq!(store.offline_count(app, "bob").await.unwrap(), 1);

    let q = HistoryQuery {
        direction: Direction::Newer,
        cursor: None,
        time: TimeRange::ALL,
        kinds: KindSet::default(),
        from: None,
        limit: 10,
    };
    let history = |owner: &'static str, peer: &'static str| {
        let (store, q) = (&store, &q);
        async move { store.history(app, owner, peer, q).await.unwrap().iter().map(|m| m.id.0).collect::<Vec<_>>() }
    };
    assert_eq!(history("alice", "bob").await, [101, 102, 103]);
    assert_eq!(history("bob", "alice").await, [101, 102]);

    // A new message continues bob's queue and lands in the same pair.
    let id = missive_core::id::IdGenerator::new(1).next_id();
    let stored = alice_to_bob(&store, app, id).await;
    assert_eq!(stored[0].seq, 3);
    assert_eq!(history("bob", "alice").await, [101, 102, id.0]);

    // alice is the pair's `lo`: deleting her hides her side, and the row nobody can see
    // any more (103, already hidden from bob) is gone.
    store.delete_user(app, "alice").await.unwrap().expect("alice existed");
    assert_eq!(history("alice", "bob").await, Vec::<u64>::new());
    assert_eq!(history("bob", "alice").await, [101, 102, id.0]);
    let everything = missive_core::store::ChatLogQuery {
        window: TimeRange::ALL.ids(),
        direction: Direction::Newer,
        from: None,
        to: None,
        limit: 10,
    };
    let log: Vec<u64> = store.chat_log(app, &everything).await.unwrap().iter().map(|m| m.id.0).collect();
    assert_eq!(log, [101, 102, id.0]);
}
