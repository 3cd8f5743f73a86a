//! One conformance suite for every backend: each test below runs against SQLite (a fresh
//! file) and against PostgreSQL (a fresh database on `MISSIVE_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, dropped afterwards). The suite checks
//! meaning, not SQL: what a caller of `Store` may rely on, whichever backend it holds.

mod contacts;
mod history;
mod notify;
mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use contacts::*;
use history::*;
use missive_core::id::{IdGenerator, MsgId, now_ms};
use missive_core::model::{
    App, DeviceInfo, FileRecord, IdempotencyRecord, NewMessage, NewUser, QueuedMessage, TokenRecord,
};
use missive_core::store::{
    CommitListener, EnqueueRequest, OnlineDevice, PresenceOutcome, QueuePolicy, RecallOutcome, Store, StoreError,
    UserPatch,
};
use notify::*;
use support::{Backend, TestStore};
use uuid::Uuid;

/// Instantiates each named test once per backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::support::open(super::Backend::Sqlite).await).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::support::open(super::Backend::Postgres).await).await })*
        }
    };
}

conformance!(
    apps_are_unique_by_name,
    users_create_update_list_delete,
    tokens_are_found_by_hash_and_revoked_per_user,
    files_expire_in_order,
    sequences_are_per_queue_and_gap_free,
    concurrent_writers_to_one_queue_commit_in_sequence_order,
    a_failing_enqueue_fails_alone,
    pending_pages_start_after_the_cursor_and_report_the_head,
    acks_move_forward_only_and_mark_delivered,
    a_new_device_starts_after_the_delivered_prefix,
    an_ack_past_the_head_marks_nothing_sent_later,
    recall_removes_announces_and_never_reuses_a_sequence,
    idempotency_records_commit_with_their_messages,
    the_per_user_cap_evicts_the_oldest_undelivered,
    sweeps_remove_old_messages_and_stale_devices,
    deleting_a_user_deletes_their_queues,
    outbox_entries_commit_with_their_messages,
    claims_lease_and_fence,
    concurrent_claims_never_share_an_entry,
    exceptions_are_kept_retried_and_swept,
    rules_bans_and_providers_advance_the_generation,
    node_ids_are_leased_to_one_live_node,
    presence_limits_devices_and_names_the_replaced_session,
    history_pages_both_directions_with_filters,
    roam_ignore_recall_and_user_deletion_hide_history,
    conversations_list_latest_unread_and_one_way_deletes,
    sweeps_and_the_chat_log,
    history_pages_are_exactly_the_archive_under_random_operations,
    contacts_are_mutual_paged_and_versioned,
    invitations_are_taken_once_and_cleared_by_adding,
    blocklists_are_one_way_and_independent_of_contacts,
    deleting_a_user_removes_their_relations,
    attributes_merge_under_the_limit,
);

const POLICY: QueuePolicy = QueuePolicy { max_offline_per_user: 500 };

/// Records every announcement, in order.
#[derive(Default)]
struct Recorder {
    committed: Mutex<Vec<Arc<QueuedMessage>>>,
    removed: Mutex<Vec<QueuedMessage>>,
}

impl CommitListener for Recorder {
    fn committed(&self, messages: &[Arc<QueuedMessage>]) {
        self.committed.lock().unwrap().extend(messages.iter().cloned());
    }
    fn removed(&self, message: &QueuedMessage) {
        self.removed.lock().unwrap().push(message.clone());
    }
}

async fn app(store: &dyn Store) -> Uuid {
    let id = Uuid::new_v4();
    let app = App {
        id,
        org: "org".into(),
        name: format!("app{}", id.simple()),
        client_id: format!("cid-{id}"),
        client_secret: "secret".into(),
        open_registration: false,
        created: 1,
    };
    store.create_app(&app).await.unwrap();
    id
}

async fn user(store: &dyn Store, app: Uuid, name: &str) {
    let new = NewUser { username: name.into(), password_hash: "h".into(), nickname: None };
    store.create_user(app, &new).await.unwrap();
}

fn message(ids: &IdGenerator, app: Uuid, owner: &str, queue: &str, text: &str) -> NewMessage {
    NewMessage {
        id: ids.next_id(),
        app_id: app,
        owner: owner.into(),
        queue: queue.into(),
        sender: queue.into(),
        created: now_ms() as i64,
        payload: Bytes::copy_from_slice(text.as_bytes()),
    }
}

async fn send(store: &dyn Store, messages: Vec<NewMessage>) -> Vec<Arc<QueuedMessage>> {
    store
        .enqueue(EnqueueRequest { messages, policy: POLICY, record: None, outbox: vec![], archive: vec![] })
        .await
        .unwrap()
}

fn device(resource: &str) -> DeviceInfo {
    DeviceInfo { resource: resource.into(), ..Default::default() }
}

fn seqs(messages: &[Arc<QueuedMessage>]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

async fn apps_are_unique_by_name(t: TestStore) {
    let s = t.store.as_ref();
    let before = s.app_count().await.unwrap();
    let id = app(s).await;
    let found = s.app_by_id(id).await.unwrap().expect("by id");
    assert_eq!(s.app_by_name("org", &found.name).await.unwrap().expect("by name").id, id);
    let mut twin = found.clone();
    twin.id = Uuid::new_v4();
    twin.client_id = "another".into();
    assert!(matches!(s.create_app(&twin).await, Err(StoreError::Conflict("app"))));
    assert_eq!(s.app_count().await.unwrap(), before + 1);
    assert!(s.app_by_name("org", "nope").await.unwrap().is_none());
}

async fn users_create_update_list_delete(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    for n in ["u1", "u2", "u3"] {
        user(s, a, n).await;
    }
    let dup = NewUser { username: "u2".into(), password_hash: "x".into(), nickname: None };
    assert!(matches!(s.create_user(a, &dup).await, Err(StoreError::Conflict("username"))));
    let mut names = s.existing_users(a, &["u1".into(), "zz".into(), "u3".into()]).await.unwrap();
    names.sort();
    assert_eq!(names, ["u1", "u3"]);

    let mut patch = UserPatch { nickname: Some("Uno".into()), ..Default::default() };
    patch.attributes.insert("k".into(), serde_json::json!(1));
    let u = s.update_user(a, "u1", &patch).await.unwrap().expect("updated");
    assert_eq!((u.nickname.as_deref(), u.attributes.get("k")), (Some("Uno"), Some(&serde_json::json!(1))));
    let mut unset = UserPatch::default();
    unset.attributes.insert("k".into(), serde_json::Value::Null);
    let u = s.update_user(a, "u1", &unset).await.unwrap().unwrap();
    assert!(u.attributes.is_empty() && u.nickname.as_deref() == Some("Uno"));
    assert!(s.update_user(a, "nobody", &patch).await.unwrap().is_none());

    let first = s.list_users(a, 0, 2).await.unwrap();
    assert_eq!(first.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["u1", "u2"]);
    let rest = s.list_users(a, first[1].seq, 10).await.unwrap();
    assert_eq!(rest.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["u3"]);

    let u = s.set_password(a, "u2", "new-hash").await.unwrap().unwrap();
    assert_eq!(u.password_hash, "new-hash");
    assert!(!s.set_activated(a, "u2", false).await.unwrap().unwrap().activated);
    assert!(!s.user_by_name(a, "u2").await.unwrap().unwrap().activated);
    assert!(s.set_password(a, "nobody", "h").await.unwrap().is_none());

    assert_eq!(s.delete_user(a, "u2").await.unwrap().unwrap().username, "u2");
    assert!(s.user_by_name(a, "u2").await.unwrap().is_none());
    assert!(s.delete_user(a, "u2").await.unwrap().is_none());
}

async fn tokens_are_found_by_hash_and_revoked_per_user(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    user(s, a, "bob").await;
    let bob = s.user_by_name(a, "bob").await.unwrap().unwrap();
    let token = |h: u8, u: Option<Uuid>| TokenRecord {
        hash: vec![h; 32],
        app_id: a,
        user: u,
        expires_at: Some(now_ms() as i64 + 60_000),
        created: 1,
    };
    s.insert_token(&token(1, Some(bob.uuid))).await.unwrap();
    s.insert_token(&token(2, None)).await.unwrap();
    assert_eq!(s.token_by_hash(&[1; 32]).await.unwrap().unwrap().user, Some(bob.uuid));
    s.delete_user_tokens(a, bob.uuid).await.unwrap();
    assert!(s.token_by_hash(&[1; 32]).await.unwrap().is_none());
    assert!(s.token_by_hash(&[2; 32]).await.unwrap().is_some(), "the app token stays");
}

async fn files_expire_in_order(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    let file = |expires: i64| FileRecord {
        uuid: Uuid::new_v4(),
        app_id: a,
        owner: None,
        content_type: "image/png".into(),
        filename: Some("a.png".into()),
        length: 10,
        restricted: true,
        secret: "s".into(),
        blob_key: "k".into(),
        thumbnail_key: None,
        thumbnail_content_type: None,
        thumbnail_length: None,
        width: Some(3),
        height: Some(4),
        created: 1,
        expires,
    };
    let (late, early, future) = (file(200), file(100), file(i64::MAX / 2));
    for f in [&late, &early, &future] {
        s.insert_file(f).await.unwrap();
    }
    assert!(matches!(s.insert_file(&early).await, Err(StoreError::Conflict("file"))));
    assert_eq!(s.file(a, early.uuid).await.unwrap().unwrap(), early);
    let expired: Vec<Uuid> = s.expired_files(1_000, 10).await.unwrap().iter().map(|f| f.uuid).collect();
    assert!(expired.starts_with(&[early.uuid, late.uuid]) && !expired.contains(&future.uuid));
    assert!(s.delete_file(a, early.uuid).await.unwrap());
    assert!(!s.delete_file(a, early.uuid).await.unwrap());
    assert!(s.file(a, early.uuid).await.unwrap().is_none());
}

async fn sequences_are_per_queue_and_gap_free(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    let recorder = Arc::new(Recorder::default());
    s.set_commit_listener(recorder.clone());
    let stored = send(
        s,
        vec![
            message(&ids, a, "bob", "alice", "1"),
            message(&ids, a, "bob", "carol", "2"),
            message(&ids, a, "bob", "alice", "3"),
            message(&ids, a, "dave", "alice", "4"),
        ],
    )
    .await;
    assert_eq!(seqs(&stored), [1, 1, 2, 1]);
    let more = send(s, vec![message(&ids, a, "bob", "alice", "5")]).await;
    assert_eq!(seqs(&more), [3]);
    // The listener heard of every commit before `enqueue` returned, in commit order.
    let heard = recorder.committed.lock().unwrap().clone();
    assert_eq!(
        heard.iter().map(|m| (m.queue.as_str(), m.seq)).collect::<Vec<_>>(),
        [("alice", 1), ("carol", 1), ("alice", 2), ("alice", 1), ("alice", 3)]
    );
    let m = s.message(a, stored[2].id).await.unwrap().expect("stored");
    assert_eq!((m.seq, m.payload.as_ref(), m.delivered), (2, b"3".as_slice(), false));
}

async fn concurrent_writers_to_one_queue_commit_in_sequence_order(t: TestStore) {
    let a = app(t.store.as_ref()).await;
    // Two writers on one database: two nodes of a cluster, or one for SQLite.
    let stores = [t.store.clone(), t.second().await];
    let recorder = Arc::new(Recorder::default());
    stores[0].set_commit_listener(recorder.clone());
    let mut tasks = Vec::new();
    for w in 0..8u16 {
        let s = stores[w as usize % 2].clone();
        tasks.push(tokio::spawn(async move {
            let ids = IdGenerator::new(w + 10);
            for i in 0..25 {
                send(s.as_ref(), vec![message(&ids, a, "bob", "alice", &format!("{w}-{i}"))]).await;
            }
        }));
    }
    // A reader following the queue the way a session does: it must only ever see a gap-free
    // prefix, and a short page must end at the head it reported.
    let reader = {
        let s = stores[1].clone();
        tokio::spawn(async move {
            let mut known = 0u64;
            while known < 200 {
                let page = s.pending(a, "bob", "phone", "alice", known, 7).await.unwrap();
                for (i, m) in page.messages.iter().enumerate() {
                    assert_eq!(m.seq, known + 1 + i as u64, "a read skipped a sequence");
                }
                if let Some(last) = page.messages.last() {
                    if page.messages.len() < 7 {
                        assert!(last.seq >= page.head, "short page ended at {} before head {}", last.seq, page.head);
                    }
                    known = last.seq;
                } else {
                    assert!(page.head <= known, "empty page, yet head {} > {known}", page.head);
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    reader.await.unwrap();
    let all = stores[0].pending(a, "bob", "phone", "alice", 0, 1000).await.unwrap();
    assert_eq!(seqs(&all.messages), (1..=200).collect::<Vec<_>>());
    assert_eq!(all.head, 200);
    // What one writer announced is in increasing sequence order.
    let heard = seqs(&recorder.committed.lock().unwrap());
    assert!(heard.windows(2).all(|w| w[0] < w[1]), "announcements out of order: {heard:?}");
}

/// One enqueue that cannot commit (its id is taken) among many that arrive with it: the
/// group commit may put them in one transaction, and only the failing one may be refused —
/// nor may it use up a sequence number.
async fn a_failing_enqueue_fails_alone(t: TestStore) {
    let s = t.store.clone();
    let (a, ids) = (app(s.as_ref()).await, IdGenerator::new(1));
    let first = send(s.as_ref(), vec![message(&ids, a, "bob", "alice", "first")]).await;
    let mut taken = message(&ids, a, "bob", "carol", "taken id");
    taken.id = first[0].id;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        let m = if i == 20 { taken.clone() } else { message(&ids, a, "bob", "alice", &i.to_string()) };
        tasks.push(tokio::spawn(async move {
            let request =
                EnqueueRequest { messages: vec![m], policy: POLICY, record: None, outbox: vec![], archive: vec![] };
            s.enqueue(request).await.map(|stored| stored.len())
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome.is_err(), i == 20, "enqueue {i}: {outcome:?}");
    }
    let alice = s.pending(a, "bob", "phone", "alice", 0, 100).await.unwrap();
    assert_eq!(seqs(&alice.messages), (1..=40).collect::<Vec<_>>());
    let carol = s.pending(a, "bob", "phone", "carol", 0, 100).await.unwrap();
    assert_eq!((carol.messages.len(), carol.head), (0, 0));
    let next = send(s.as_ref(), vec![message(&ids, a, "bob", "carol", "after")]).await;
    assert_eq!(seqs(&next), [1], "the failed enqueue kept its sequence");
}

async fn pending_pages_start_after_the_cursor_and_report_the_head(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    let empty = s.pending(a, "bob", "phone", "alice", 0, 10).await.unwrap();
    assert_eq!((empty.messages.len(), empty.head, empty.cursor), (0, 0, 0));
    send(s, (0..5).map(|i| message(&ids, a, "bob", "alice", &i.to_string())).collect()).await;
    let page = s.pending(a, "bob", "phone", "alice", 0, 3).await.unwrap();
    assert_eq!((seqs(&page.messages), page.head, page.cursor), (vec![1, 2, 3], 5, 0));
    let page = s.pending(a, "bob", "phone", "alice", 3, 3).await.unwrap();
    assert_eq!(seqs(&page.messages), [4, 5]);
    s.ack(a, "bob", "phone", "alice", 4).await.unwrap();
    // The durable cursor wins over a smaller `after`.
    let page = s.pending(a, "bob", "phone", "alice", 1, 10).await.unwrap();
    assert_eq!((seqs(&page.messages), page.cursor), (vec![5], 4));
    // Other devices and queues are untouched.
    assert_eq!(s.pending(a, "bob", "laptop", "alice", 0, 10).await.unwrap().messages.len(), 5);
    assert!(s.pending(a, "bob", "phone", "carol", 0, 10).await.unwrap().messages.is_empty());
}

async fn acks_move_forward_only_and_mark_delivered(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    let sent = send(s, (0..4).map(|i| message(&ids, a, "bob", "alice", &i.to_string())).collect()).await;
    send(s, vec![message(&ids, a, "bob", "carol", "c")]).await;
    assert_eq!(s.offline_count(a, "bob").await.unwrap(), 5);
    assert_eq!(s.queued_total().await.unwrap(), 5);
    let counts = s.pending_counts(a, "bob", "phone").await.unwrap();
    assert_eq!(counts.iter().map(|c| (c.queue.as_str(), c.pending)).collect::<Vec<_>>(), [("alice", 4), ("carol", 1)]);
    let receipt = s.submit_ack(a, "bob", "phone", "alice", 3).await.unwrap();
    receipt.await.unwrap();
    s.ack(a, "bob", "phone", "alice", 1).await.unwrap();
    assert_eq!(s.pending(a, "bob", "phone", "alice", 0, 10).await.unwrap().cursor, 3, "a cursor never moves back");
    assert_eq!(s.offline_count(a, "bob").await.unwrap(), 2);
    assert_eq!(s.queued_total().await.unwrap(), 2);
    assert!(s.message(a, sent[2].id).await.unwrap().unwrap().delivered);
    assert!(!s.message(a, sent[3].id).await.unwrap().unwrap().delivered);
    let counts = s.pending_counts(a, "bob", "phone").await.unwrap();
    assert_eq!(counts.iter().map(|c| (c.queue.as_str(), c.pending)).collect::<Vec<_>>(), [("alice", 1), ("carol", 1)]);
}

async fn a_new_device_starts_after_the_delivered_prefix(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    assert!(s.register_device(a, "bob", &device("phone")).await.unwrap());
    assert!(!s.register_device(a, "bob", &device("phone")).await.unwrap());
    send(s, (0..3).map(|i| message(&ids, a, "bob", "alice", &i.to_string())).collect()).await;
    s.ack(a, "bob", "phone", "alice", 2).await.unwrap();
    assert!(s.register_device(a, "bob", &device("laptop")).await.unwrap());
    let page = s.pending(a, "bob", "laptop", "alice", 0, 10).await.unwrap();
    assert_eq!((seqs(&page.messages), page.cursor), (vec![3], 2));
}

async fn an_ack_past_the_head_marks_nothing_sent_later(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    send(s, (0..2).map(|i| message(&ids, a, "bob", "alice", &i.to_string())).collect()).await;
    // A device acks a sequence the queue has not assigned yet (a buggy or hostile client).
    s.ack(a, "bob", "phone", "alice", 50).await.unwrap();
    assert_eq!(s.offline_count(a, "bob").await.unwrap(), 0);
    let later = send(s, vec![message(&ids, a, "bob", "alice", "later")]).await;
    assert_eq!(later[0].seq, 3);
    assert_eq!(s.offline_count(a, "bob").await.unwrap(), 1, "sent after the ack: still undelivered");
    assert_eq!(s.queued_total().await.unwrap(), 1);
    assert!(!s.message(a, later[0].id).await.unwrap().unwrap().delivered);
    // Another device's ack covers it; the slower device's smaller ack takes nothing back.
    s.ack(a, "bob", "laptop", "alice", 3).await.unwrap();
    s.ack(a, "bob", "tablet", "alice", 1).await.unwrap();
    assert!(s.message(a, later[0].id).await.unwrap().unwrap().delivered);
    assert_eq!(s.offline_count(a, "bob").await.unwrap(), 0);
    match s.recall(a, later[0].id).await.unwrap() {
        RecallOutcome::RemovedDelivered(m) => assert_eq!(m.seq, 3),
        other => panic!("{other:?}"),
    }
}

async fn recall_removes_announces_and_never_reuses_a_sequence(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    let recorder = Arc::new(Recorder::default());
    s.set_commit_listener(recorder.clone());
    let sent = send(s, (0..3).map(|i| message(&ids, a, "bob", "alice", &i.to_string())).collect()).await;
    s.ack(a, "bob", "phone", "alice", 1).await.unwrap();
    match s.recall(a, sent[0].id).await.unwrap() {
        RecallOutcome::RemovedDelivered(m) => assert_eq!(m.seq, 1),
        other => panic!("{other:?}"),
    }
    match s.recall(a, sent[2].id).await.unwrap() {
        RecallOutcome::RemovedUndelivered(m) => assert_eq!(m.seq, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.recall(a, sent[2].id).await.unwrap(), RecallOutcome::NotFound);
    assert_eq!(s.recall(Uuid::new_v4(), sent[1].id).await.unwrap(), RecallOutcome::NotFound);
    let removed: Vec<u64> = recorder.removed.lock().unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(removed, [1, 3]);
    // The queue's head stays: the next message is 4, not a reused 3.
    assert_eq!(seqs(&send(s, vec![message(&ids, a, "bob", "alice", "x")]).await), [4]);
    let page = s.pending(a, "bob", "phone", "alice", 0, 10).await.unwrap();
    assert_eq!((seqs(&page.messages), page.head), (vec![2, 4], 4));
}

async fn idempotency_records_commit_with_their_messages(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    let record = IdempotencyRecord { app_id: a, key: "k1".into(), response: "{\"bob\":\"1\"}".into(), created: 1_000 };
    let stored = s
        .enqueue(EnqueueRequest {
            messages: vec![message(&ids, a, "bob", "alice", "x")],
            policy: POLICY,
            record: Some(record.clone()),
            outbox: vec![],
            archive: vec![],
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(s.idempotency_record(a, "k1").await.unwrap(), Some(record));
    // A record alone (a send whose recipients all were unknown) is kept too.
    let alone = IdempotencyRecord { app_id: a, key: "k2".into(), response: "{}".into(), created: 5_000 };
    s.enqueue(EnqueueRequest {
        messages: vec![],
        policy: POLICY,
        record: Some(alone.clone()),
        outbox: vec![],
        archive: vec![],
    })
    .await
    .unwrap();
    assert_eq!(s.idempotency_record(a, "k2").await.unwrap(), Some(alone));
    assert_eq!(s.sweep_idempotency(2_000).await.unwrap(), 1);
    assert!(s.idempotency_record(a, "k1").await.unwrap().is_none());
    assert!(s.idempotency_record(a, "k2").await.unwrap().is_some());
}

async fn the_per_user_cap_evicts_the_oldest_undelivered(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    let cap = QueuePolicy { max_offline_per_user: 3 };
    let mut all = Vec::new();
    for i in 0..5 {
        let q = if i % 2 == 0 { "alice" } else { "carol" };
        let m = message(&ids, a, "bob", q, &i.to_string());
        all.push(m.id);
        s.enqueue(EnqueueRequest { messages: vec![m], policy: cap, record: None, outbox: vec![], archive: vec![] })
            .await
            .unwrap();
    }
    assert_eq!(s.offline_count(a, "bob").await.unwrap(), 3);
    assert!(s.message(a, all[0]).await.unwrap().is_none() && s.message(a, all[1]).await.unwrap().is_none());
    assert!(s.message(a, all[4]).await.unwrap().is_some());
}

async fn sweeps_remove_old_messages_and_stale_devices(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    s.register_device(a, "bob", &device("phone")).await.unwrap();
    let old = send(s, vec![message(&ids, a, "bob", "alice", "old")]).await;
    let floor = MsgId::floor_at(now_ms() + 1);
    while MsgId::floor_at(now_ms()) <= floor {
        tokio::task::yield_now().await;
    }
    let new = send(s, vec![message(&ids, a, "bob", "alice", "new")]).await;
    let removed = s.sweep(floor).await.unwrap();
    assert!(removed >= 2, "message and device removed, got {removed}");
    assert!(s.message(a, old[0].id).await.unwrap().is_none());
    assert_eq!(s.message(a, new[0].id).await.unwrap().unwrap().seq, 2);
    assert!(s.register_device(a, "bob", &device("phone")).await.unwrap(), "the stale device was forgotten");
}

async fn deleting_a_user_deletes_their_queues(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    user(s, a, "bob").await;
    let sent = send(s, vec![message(&ids, a, "bob", "alice", "x"), message(&ids, a, "carol", "bob", "y")]).await;
    s.ack(a, "bob", "phone", "alice", 1).await.unwrap();
    s.delete_user(a, "bob").await.unwrap().unwrap();
    assert!(s.message(a, sent[0].id).await.unwrap().is_none());
    assert!(s.message(a, sent[1].id).await.unwrap().is_some(), "what bob sent stays with its recipient");
    assert_eq!(s.offline_count(a, "bob").await.unwrap(), 0);
    assert_eq!(s.pending(a, "bob", "phone", "alice", 0, 10).await.unwrap().cursor, 0);
}

async fn node_ids_are_leased_to_one_live_node(t: TestStore) {
    let s = t.store.as_ref();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let now = 1_000_000;
    assert_eq!(s.lease_node_id(None, 1023, a, now, 30_000).await.unwrap(), Some(0));
    assert_eq!(s.lease_node_id(None, 1023, b, now, 30_000).await.unwrap(), Some(1));
    assert_eq!(s.lease_node_id(Some(0), 1023, b, now, 30_000).await.unwrap(), None, "0 is a's while it lives");
    assert_eq!(s.lease_node_id(Some(0), 1023, a, now, 30_000).await.unwrap(), Some(0), "a keeps its own id");
    assert_eq!(s.lease_node_id(None, 1, Uuid::new_v4(), now, 30_000).await.unwrap(), None, "all taken");
    assert!(s.renew_node(0, a, now + 10_000, 30_000).await.unwrap());
    // a stops renewing: once its lease is past, b may take the id, and a learns it lost it.
    let later = now + 10_000 + 30_001;
    assert_eq!(s.lease_node_id(Some(0), 1023, b, later, 30_000).await.unwrap(), Some(0));
    assert!(!s.renew_node(0, a, later, 30_000).await.unwrap());
    s.release_node(0, b).await.unwrap();
    assert_eq!(s.lease_node_id(Some(0), 1023, a, later, 30_000).await.unwrap(), Some(0));
}

async fn presence_limits_devices_and_names_the_replaced_session(t: TestStore) {
    let s = t.store.as_ref();
    let (app, owner) = (Uuid::new_v4(), Uuid::new_v4());
    let now = 5_000_000;
    let node = s.lease_node_id(None, 1023, owner, now, 30_000).await.unwrap().unwrap();
    let dev = |r: &str, session: u64| OnlineDevice {
        resource: r.into(),
        device_uuid: format!("{r}-uuid"),
        device_name: "web".into(),
        node,
        session,
    };
    let register =
        |d: OnlineDevice, at: i64| async move { s.register_presence(app, "bob", &d, 2, at, 30_000).await.unwrap() };
    assert_eq!(register(dev("phone", 1), now).await, PresenceOutcome::Registered { replaced: None });
    assert_eq!(register(dev("web", 2), now).await, PresenceOutcome::Registered { replaced: None });
    assert_eq!(register(dev("tablet", 3), now).await, PresenceOutcome::TooManyDevices);
    // The same resource again replaces, and names, the live session it takes over.
    assert_eq!(register(dev("phone", 4), now).await, PresenceOutcome::Registered { replaced: Some(dev("phone", 1)) });
    let online = s.online_devices(app, &["bob".into(), "carol".into()], now).await.unwrap();
    assert_eq!(online, vec![("bob".to_owned(), dev("phone", 4)), ("bob".to_owned(), dev("web", 2))]);
    // An old session's logout does not remove the session that replaced it.
    s.unregister_presence(app, "bob", "phone", node, 1).await.unwrap();
    assert_eq!(s.online_devices(app, &["bob".into()], now).await.unwrap().len(), 2);
    s.unregister_presence(app, "bob", "web", node, 2).await.unwrap();
    assert_eq!(s.online_devices(app, &["bob".into()], now).await.unwrap(), vec![("bob".to_owned(), dev("phone", 4))]);
    // Renewal keeps rows alive; a node that stops renewing loses them.
    assert!(s.renew_node(node, owner, now + 20_000, 30_000).await.unwrap());
    assert_eq!(s.online_devices(app, &["bob".into()], now + 40_000).await.unwrap().len(), 1);
    assert!(s.online_devices(app, &["bob".into()], now + 50_001).await.unwrap().is_empty());
    assert_eq!(register(dev("tablet", 5), now + 50_001).await, PresenceOutcome::Registered { replaced: None });
}
