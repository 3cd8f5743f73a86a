//! The message archive's conformance tests (`missive_core::store::history`), run by
//! `conformance.rs` on both backends: history pages, what each side may see, conversation
//! lists and read positions, sweeps, the app's chat log, and a property test that random
//! sends, recalls, one-way deletes, user deletions and sweeps keep every history listing
//! exactly the archive it should be.

use std::collections::BTreeSet;

use bytes::Bytes;
use missive_core::archive::{Direction, HistoryQuery, KindSet, ListOrder, MessageKind, TimeRange};
use missive_core::id::{IdGenerator, MsgId, now_ms};
use missive_core::model::NewMessage;
use missive_core::store::{
    ChatLogQuery, ConversationQuery, EnqueueRequest, HistorySelection, NewArchived, QueuePolicy, RecallOutcome, Store,
};
use proptest::prelude::*;
use uuid::Uuid;

use super::support::TestStore;

const POLICY: QueuePolicy = QueuePolicy { max_offline_per_user: 100_000 };

/// How a test message is sent: who may not see it, whether it is listed.
#[derive(Clone, Copy, Default)]
pub struct Opts {
    pub kind: Option<MessageKind>,
    pub hide_sender: bool,
    pub hide_recipient: bool,
    pub unlisted: bool,
}

/// Sends one archived message as the delivery path does (queue row + archive row in one
/// request); returns its id.
pub async fn say(s: &dyn Store, ids: &IdGenerator, app: Uuid, from: &str, to: &str, text: &str, o: Opts) -> MsgId {
    let id = ids.next_id();
    let created = id.unix_ms() as i64;
    let payload = Bytes::copy_from_slice(text.as_bytes());
    let message =
        NewMessage { id, app_id: app, owner: to.into(), queue: from.into(), sender: from.into(), created, payload };
    let entry = NewArchived {
        app_id: app,
        id,
        from: from.into(),
        to: to.into(),
        created,
        kind: o.kind.unwrap_or(MessageKind::Text),
        payload: message.payload.clone(),
        hidden_from_sender: o.hide_sender,
        hidden_from_recipient: o.hide_recipient,
        listed: !o.unlisted,
    };
    s.enqueue(EnqueueRequest {
        messages: vec![message],
        policy: POLICY,
        record: None,
        outbox: vec![],
        archive: vec![entry],
    })
    .await
    .unwrap();
    id
}

fn query(direction: Direction, cursor: Option<MsgId>, limit: u32) -> HistoryQuery {
    HistoryQuery { direction, cursor, time: TimeRange::ALL, kinds: KindSet::default(), from: None, limit }
}

/// Every page of `owner`'s conversation with `peer`, following cursors as the SDK does.
pub async fn all_pages(s: &dyn Store, app: Uuid, owner: &str, peer: &str, base: &HistoryQuery) -> Vec<MsgId> {
    let mut q = base.clone();
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        let rows = s.history(app, owner, peer, &q).await.unwrap();
        let page = &rows[..rows.len().min(q.limit as usize)];
        seen.extend(page.iter().map(|m| m.id));
        if rows.len() <= q.limit as usize {
            return seen;
        }
        q.cursor = page.last().map(|m| m.id);
    }
    panic!("paging did not end");
}

fn list(order: ListOrder, limit: u32) -> ConversationQuery {
    ConversationQuery { order, after: None, include_empty: false, offset: 0, limit }
}

fn all_log(window: TimeRange) -> ChatLogQuery {
    ChatLogQuery { window: window.ids(), direction: Direction::Newer, from: None, to: None, limit: 10_000 }
}

pub async fn history_pages_both_directions_with_filters(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (super::app(s).await, IdGenerator::new(1));
    let kinds = [MessageKind::Text, MessageKind::Image, MessageKind::Custom];
    let mut sent = Vec::new();
    for i in 0..25 {
        let (from, to) = if i % 2 == 0 { ("alice", "bob") } else { ("bob", "alice") };
        let o = Opts { kind: Some(kinds[i % 3]), ..Default::default() };
        sent.push(say(s, &ids, a, from, to, &format!("m{i}"), o).await);
    }
    say(s, &ids, a, "alice", "carol", "elsewhere", Opts::default()).await;
    for (owner, peer) in [("alice", "bob"), ("bob", "alice")] {
        let newer = all_pages(s, a, owner, peer, &query(Direction::Newer, None, 4)).await;
        assert_eq!(newer, sent, "{owner}: oldest first, every message once");
        let older = all_pages(s, a, owner, peer, &query(Direction::Older, None, 7)).await;
        assert_eq!(older, sent.iter().rev().copied().collect::<Vec<_>>());
    }
    // The newest page first, with one extra row telling there is more.
    let rows = s.history(a, "bob", "alice", &query(Direction::Older, None, 3)).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!((rows[0].id, rows[0].from.as_str(), rows[0].to.as_str()), (sent[24], "alice", "bob"));
    assert_eq!(rows[0].payload.as_ref(), b"m24");
    assert_eq!(rows[0].timestamp, sent[24].unix_ms());
    // Kinds, sender, and time windows.
    let mut q = query(Direction::Newer, None, 50);
    q.kinds = [MessageKind::Image].into_iter().collect();
    let images: Vec<MsgId> = s.history(a, "alice", "bob", &q).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(images, sent.iter().skip(1).step_by(3).copied().collect::<Vec<_>>());
    let mut q = query(Direction::Newer, None, 50);
    q.from = Some("bob".into());
    let from_bob = s.history(a, "alice", "bob", &q).await.unwrap();
    assert_eq!(from_bob.len(), 12);
    assert!(from_bob.iter().all(|m| m.from == "bob"));
    q.from = Some("carol".into());
    assert!(s.history(a, "alice", "bob", &q).await.unwrap().is_empty());
    let mut q = query(Direction::Newer, None, 50);
    q.time = TimeRange { start_ms: sent[5].unix_ms(), end_ms: Some(sent[5].unix_ms() + 1) };
    let in_ms = s.history(a, "alice", "bob", &q).await.unwrap();
    assert!(in_ms.iter().any(|m| m.id == sent[5]));
    assert!(in_ms.iter().all(|m| m.timestamp == sent[5].unix_ms()));
    assert!(s.history(a, "carol", "bob", &query(Direction::Older, None, 5)).await.unwrap().is_empty());
}

pub async fn roam_ignore_recall_and_user_deletion_hide_history(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (super::app(s).await, IdGenerator::new(1));
    for u in ["alice", "bob"] {
        super::user(s, a, u).await;
    }
    let m1 = say(s, &ids, a, "alice", "bob", "one", Opts::default()).await;
    let m2 = say(s, &ids, a, "alice", "bob", "ignored", Opts { hide_recipient: true, ..Default::default() }).await;
    let m3 = say(s, &ids, a, "bob", "alice", "three", Opts::default()).await;
    let m4 = say(s, &ids, a, "alice", "bob", "recalled", Opts::default()).await;
    let newer = query(Direction::Newer, None, 20);
    assert_eq!(all_pages(s, a, "alice", "bob", &newer).await, [m1, m2, m3, m4]);
    assert_eq!(all_pages(s, a, "bob", "alice", &newer).await, [m1, m3, m4], "roam_ignore_users hides it from bob");

    assert!(matches!(s.recall(a, m4).await.unwrap(), RecallOutcome::RemovedUndelivered(_)));
    assert_eq!(all_pages(s, a, "alice", "bob", &newer).await, [m1, m2, m3], "recalled: gone for both");
    assert_eq!(all_pages(s, a, "bob", "alice", &newer).await, [m1, m3]);
    let bob_list = s.conversations(a, "bob", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!(bob_list[0].latest.as_ref().map(|m| m.id), Some(m3), "the latest message moves back");

    // The export still has what roam_ignore_users hid, but not the recalled message.
    let log: Vec<MsgId> = s.chat_log(a, &all_log(TimeRange::ALL)).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(log, [m1, m2, m3]);

    // One-way delete of some history: alice's side only.
    assert_eq!(s.hide_history(a, "alice", "bob", &HistorySelection::Ids(vec![m1, MsgId(7)])).await.unwrap(), 1);
    assert_eq!(all_pages(s, a, "alice", "bob", &newer).await, [m2, m3]);
    assert_eq!(all_pages(s, a, "bob", "alice", &newer).await, [m1, m3]);

    s.delete_user(a, "bob").await.unwrap().unwrap();
    assert!(all_pages(s, a, "bob", "alice", &newer).await.is_empty(), "a deleted user's side is gone");
    assert_eq!(all_pages(s, a, "alice", "bob", &newer).await, [m2, m3], "the peer keeps theirs");
    assert!(s.conversations(a, "bob", &list(ListOrder::Activity, 10)).await.unwrap().is_empty());
    // m1 was hidden from alice and now from bob: nobody can see it, so it is deleted.
    let log: Vec<MsgId> = s.chat_log(a, &all_log(TimeRange::ALL)).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(log, [m2, m3]);
}

pub async fn conversations_list_latest_unread_and_one_way_deletes(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (super::app(s).await, IdGenerator::new(1));
    for u in ["alice", "bob", "carol", "dave"] {
        super::user(s, a, u).await;
    }
    let b1 = say(s, &ids, a, "bob", "alice", "b1", Opts::default()).await;
    let b2 = say(s, &ids, a, "bob", "alice", "b2", Opts::default()).await;
    let c1 = say(s, &ids, a, "carol", "alice", "c1", Opts::default()).await;
    let a1 = say(s, &ids, a, "alice", "dave", "a1", Opts::default()).await;
    let _unlisted = say(s, &ids, a, "admin", "alice", "rest", Opts { unlisted: true, ..Default::default() }).await;
    let rows = s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap();
    let shown: Vec<(&str, u32, Option<MsgId>)> =
        rows.iter().map(|c| (c.peer.as_str(), c.unread, c.latest.as_ref().map(|m| m.id))).collect();
    assert_eq!(shown, [("dave", 0, Some(a1)), ("carol", 1, Some(c1)), ("bob", 2, Some(b2))]);
    let bob_side = s.conversations(a, "bob", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!((bob_side[0].peer.as_str(), bob_side[0].unread), ("alice", 0), "own messages are not unread");

    // Cursor paging: (key, peer) of the last row.
    let first = s.conversations(a, "alice", &list(ListOrder::Activity, 2)).await.unwrap();
    let last = &first[1];
    let mut next = list(ListOrder::Activity, 2);
    next.after = Some((last.key(ListOrder::Activity), last.peer.clone()));
    let rest = s.conversations(a, "alice", &next).await.unwrap();
    assert_eq!(rest.iter().map(|c| c.peer.as_str()).collect::<Vec<_>>(), ["bob"]);
    let mut legacy = list(ListOrder::Activity, 1);
    legacy.offset = 1;
    assert_eq!(s.conversations(a, "alice", &legacy).await.unwrap()[0].peer, "carol");

    // A channel ack moves the read position: never back.
    s.mark_read(a, "alice", "bob", b1).await.unwrap();
    let unread = |rows: &[missive_core::archive::ConversationSummary], p: &str| {
        rows.iter().find(|c| c.peer == p).map(|c| c.unread)
    };
    let rows = s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!(unread(&rows, "bob"), Some(1));
    s.mark_read(a, "alice", "bob", b2).await.unwrap();
    s.mark_read(a, "alice", "bob", b1).await.unwrap();
    let rows = s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!(unread(&rows, "bob"), Some(0));

    // Pinning, and the pinned list.
    assert_eq!(s.pin_conversation(a, "alice", "carol", Some(5_000)).await.unwrap(), Some(5_000));
    assert_eq!(s.pin_conversation(a, "alice", "nobody", Some(5_000)).await.unwrap(), None);
    let pinned = s.conversations(a, "alice", &list(ListOrder::Pinned, 10)).await.unwrap();
    assert_eq!((pinned.len(), pinned[0].peer.as_str(), pinned[0].pinned_at), (1, "carol", Some(5_000)));

    // One-way delete without history: gone from alice's list, history stays, the peer sees
    // no change; a new message brings it back with only itself unread.
    s.delete_conversation(a, "alice", "bob", ids.next_id(), false).await.unwrap();
    let rows = s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!(unread(&rows, "bob"), None);
    assert_eq!(all_pages(s, a, "alice", "bob", &query(Direction::Newer, None, 10)).await, [b1, b2]);
    assert_eq!(s.conversations(a, "bob", &list(ListOrder::Activity, 10)).await.unwrap().len(), 1);
    let b3 = say(s, &ids, a, "bob", "alice", "b3", Opts::default()).await;
    let rows = s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!((rows[0].peer.as_str(), rows[0].unread, rows[0].latest.as_ref().map(|m| m.id)), ("bob", 1, Some(b3)));
    // With its history: alice's side is gone too.
    s.delete_conversation(a, "alice", "carol", ids.next_id(), true).await.unwrap();
    assert!(all_pages(s, a, "alice", "carol", &query(Direction::Newer, None, 10)).await.is_empty());
    assert_eq!(all_pages(s, a, "carol", "alice", &query(Direction::Newer, None, 10)).await, [c1]);
    let rows = s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!(rows.iter().map(|c| c.peer.as_str()).collect::<Vec<_>>(), ["bob", "dave"]);

    // A sender who is not a registered user (a REST send's `from`) gets no list; the
    // recipient's moves.
    let r1 = say(s, &ids, a, "admin", "dave", "rest", Opts::default()).await;
    let dave = s.conversations(a, "dave", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!((dave[0].peer.as_str(), dave[0].latest.as_ref().map(|m| m.id)), ("admin", Some(r1)));
    assert!(s.conversations(a, "admin", &list(ListOrder::Activity, 10)).await.unwrap().is_empty());
}

pub async fn sweeps_and_the_chat_log(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (super::app(s).await, IdGenerator::new(1));
    for u in ["alice", "bob", "carol"] {
        super::user(s, a, u).await;
    }
    let mut sent = Vec::new();
    for i in 0..7 {
        let (from, to) = if i % 2 == 0 { ("alice", "bob") } else { ("bob", "carol") };
        sent.push(say(s, &ids, a, from, to, &format!("m{i}"), Opts::default()).await);
    }
    let other_app = super::app(s).await;
    say(s, &ids, other_app, "alice", "bob", "other app", Opts::default()).await;
    let log = |from: Option<&str>, to: Option<&str>, direction, limit| ChatLogQuery {
        window: TimeRange::ALL.ids(),
        direction,
        from: from.map(Into::into),
        to: to.map(Into::into),
        limit,
    };
    let got = |rows: Vec<missive_core::archive::ArchivedMessage>| rows.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(got(s.chat_log(a, &log(None, None, Direction::Newer, 100)).await.unwrap()), sent);
    assert_eq!(got(s.chat_log(a, &log(None, None, Direction::Older, 2)).await.unwrap()), [sent[6], sent[5]]);
    let from_bob = got(s.chat_log(a, &log(Some("bob"), None, Direction::Newer, 100)).await.unwrap());
    assert_eq!(from_bob, [sent[1], sent[3], sent[5]]);
    let to_bob = got(s.chat_log(a, &log(None, Some("bob"), Direction::Newer, 100)).await.unwrap());
    assert_eq!(to_bob, [sent[0], sent[2], sent[4], sent[6]]);
    assert!(s.chat_log(a, &log(Some("bob"), Some("bob"), Direction::Newer, 100)).await.unwrap().is_empty());

    // Sweeping in chunks of 2 below m5: five rows go, in three writes.
    let floor = sent[5];
    let mut removed = Vec::new();
    loop {
        let n = s.sweep_history(floor, 2).await.unwrap();
        removed.push(n);
        if n < 2 {
            break;
        }
    }
    assert_eq!(removed, [2, 2, 1]);
    assert_eq!(got(s.chat_log(a, &log(None, None, Direction::Newer, 100)).await.unwrap()), [sent[5], sent[6]]);
    // Carol's only conversation (with bob) still has m5; alice's with bob has m6.
    let carol = s.conversations(a, "carol", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!(carol[0].latest.as_ref().map(|m| m.id), Some(sent[5]));
    let alice = s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap();
    assert_eq!(alice[0].latest.as_ref().map(|m| m.id), Some(sent[6]));
    // Everything: the conversations go with their messages (the other app's too).
    while s.sweep_history(MsgId::floor_at(now_ms() + 1), 100).await.unwrap() == 100 {}
    assert!(s.chat_log(a, &log(None, None, Direction::Newer, 100)).await.unwrap().is_empty());
    assert!(s.conversations(a, "alice", &list(ListOrder::Activity, 10)).await.unwrap().is_empty());
    assert!(s.conversations(other_app, "alice", &list(ListOrder::Activity, 10)).await.unwrap().is_empty());
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    Send {
        from: usize,
        to: usize,
        hide_sender: bool,
        hide_recipient: bool,
    },
    /// Recall the n-th message sent so far (mod count).
    Recall(usize),
    /// `owner` deletes their history with `peer`.
    Hide {
        owner: usize,
        peer: usize,
    },
    DeleteUser(usize),
    /// Sweep everything before the n-th message sent so far.
    Sweep(usize),
}

const USERS: [&str; 3] = ["ann", "ben", "cy"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..3usize, prop::bool::weighted(0.15), prop::bool::weighted(0.15))
            .prop_map(|(from, to, hide_sender, hide_recipient)| Op::Send { from, to, hide_sender, hide_recipient }),
        1 => any::<usize>().prop_map(Op::Recall),
        1 => (0..3usize, 0..3usize).prop_map(|(owner, peer)| Op::Hide { owner, peer }),
        1 => (0..3usize).prop_map(Op::DeleteUser),
        1 => any::<usize>().prop_map(Op::Sweep),
    ]
}

/// The model: what is archived, and who may see it.
struct Row {
    id: MsgId,
    from: usize,
    to: usize,
    hidden: BTreeSet<usize>,
}

/// `ids` outlives the cases: the store is theirs in common, and a generator per case could
/// hand a new case the ids of the last one's final millisecond.
async fn run_ops(s: &dyn Store, ids: &IdGenerator, ops: &[Op], limit: u32) -> Result<(), TestCaseError> {
    let a = super::app(s).await;
    for u in USERS {
        super::user(s, a, u).await;
    }
    let mut model: Vec<Row> = Vec::new();
    let mut sent: Vec<MsgId> = Vec::new();
    for op in ops {
        match *op {
            Op::Send { from, to, hide_sender, hide_recipient } => {
                let o = Opts { hide_sender, hide_recipient, ..Default::default() };
                let id = say(s, ids, a, USERS[from], USERS[to], "x", o).await;
                let hidden = [(hide_sender, from), (hide_recipient, to)].into_iter().filter(|h| h.0).map(|h| h.1);
                model.push(Row { id, from, to, hidden: hidden.collect() });
                sent.push(id);
            }
            Op::Recall(n) if !sent.is_empty() => {
                let id = sent[n % sent.len()];
                s.recall(a, id).await.unwrap();
                model.retain(|r| r.id != id);
            }
            Op::Hide { owner, peer } => {
                s.hide_history(a, USERS[owner], USERS[peer], &HistorySelection::All).await.unwrap();
                for r in model.iter_mut().filter(|r| (r.from, r.to) == (owner, peer) || (r.from, r.to) == (peer, owner))
                {
                    r.hidden.insert(owner);
                }
            }
            Op::DeleteUser(u) => {
                s.delete_user(a, USERS[u]).await.unwrap();
                super::user(s, a, USERS[u]).await;
                for r in model.iter_mut().filter(|r| r.from == u || r.to == u) {
                    r.hidden.insert(u);
                }
                model.retain(|r| {
                    !((r.from == u || r.to == u) && r.hidden.contains(&r.from) && r.hidden.contains(&r.to))
                });
            }
            Op::Sweep(n) if !sent.is_empty() => {
                let floor = sent[n % sent.len()];
                while s.sweep_history(floor, 3).await.unwrap() == 3 {}
                model.retain(|r| r.id >= floor);
            }
            Op::Recall(_) | Op::Sweep(_) => {}
        }
    }
    for (owner, owner_name) in USERS.iter().enumerate() {
        for (peer, peer_name) in USERS.iter().enumerate() {
            let mut want: Vec<MsgId> = model
                .iter()
                .filter(|r| (r.from, r.to) == (owner, peer) || (r.from, r.to) == (peer, owner))
                .filter(|r| !r.hidden.contains(&owner))
                .map(|r| r.id)
                .collect();
            let newer = all_pages(s, a, owner_name, peer_name, &query(Direction::Newer, None, limit)).await;
            prop_assert_eq!(&newer, &want, "{} with {}, oldest first", owner_name, peer_name);
            want.reverse();
            let older = all_pages(s, a, owner_name, peer_name, &query(Direction::Older, None, limit)).await;
            prop_assert_eq!(&older, &want, "{} with {}, newest first", owner_name, peer_name);
        }
    }
    let log: Vec<MsgId> = s.chat_log(a, &all_log(TimeRange::ALL)).await.unwrap().iter().map(|m| m.id).collect();
    prop_assert_eq!(log, model.iter().map(|r| r.id).collect::<Vec<_>>(), "the app's chat log is the archive");
    Ok(())
}

pub async fn history_pages_are_exactly_the_archive_under_random_operations(t: TestStore) {
    let handle = tokio::runtime::Handle::current();
    let store = t.store.clone();
    let ids = IdGenerator::new(1);
    tokio::task::block_in_place(move || {
        let config = proptest::test_runner::Config { cases: 24, failure_persistence: None, ..Default::default() };
        let mut runner = proptest::test_runner::TestRunner::new(config);
        let strategy = (prop::collection::vec(op(), 1..40), 1u32..6);
        runner.run(&strategy, |(ops, limit)| handle.block_on(run_ops(store.as_ref(), &ids, &ops, limit))).unwrap();
    });
}
