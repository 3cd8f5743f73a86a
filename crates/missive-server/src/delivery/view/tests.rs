//! The queue-view rules under random interleavings of commits, lost / duplicated /
//! reordered announcements, online-only messages, recalls, pulls, acks and reconnects,
//! against a model of the store and of the SDK's pull loop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use missive_core::id::MsgId;
use missive_core::model::QueuedMessage;
use missive_core::store::PendingPage;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const QUEUES: [&str; 2] = ["alice", "carol"];

#[derive(Clone, Debug)]
enum Op {
    Commit(usize),
    /// Deliver the announcement at this index of the pending ones (reordering), keeping a
    /// copy when `dup` (duplication).
    Announce {
        pick: usize,
        dup: bool,
    },
    Lose(usize),
    Online(usize),
    /// Recall the n-th stored message of a queue still stored.
    Recall(usize, usize),
    Pull(usize),
    Reconnect,
    HeadCheck(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(Op::Commit),
        4 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(pick, dup)| Op::Announce { pick, dup }),
        1 => any::<usize>().prop_map(Op::Lose),
        1 => (0..2usize).prop_map(Op::Online),
        1 => ((0..2usize), any::<usize>()).prop_map(|(q, n)| Op::Recall(q, n)),
        4 => (0..2usize).prop_map(Op::Pull),
        1 => Just(Op::Reconnect),
        1 => (0..2usize).prop_map(Op::HeadCheck),
    ]
}

/// The store as the session sees it.
#[derive(Default)]
struct Store {
    /// Per queue: every committed message, `None` once recalled.
    log: HashMap<&'static str, Vec<Option<Arc<QueuedMessage>>>>,
    cursor: HashMap<&'static str, u64>,
    next_id: u64,
}

impl Store {
    fn commit(&mut self, q: &'static str) -> Arc<QueuedMessage> {
        self.next_id += 1;
        let log = self.log.entry(q).or_default();
        let m = Arc::new(QueuedMessage {
            id: MsgId(self.next_id * 10),
            app_id: Uuid::nil(),
            owner: "bob".into(),
            queue: q.into(),
            sender: q.into(),
            created: 0,
            payload: Bytes::new(),
            seq: log.len() as u64 + 1,
            delivered: false,
        });
        log.push(Some(m.clone()));
        m
    }

    fn online(&mut self, q: &'static str) -> Arc<QueuedMessage> {
        self.next_id += 1;
        Arc::new(QueuedMessage {
            id: MsgId(self.next_id * 10 + 1),
            app_id: Uuid::nil(),
            owner: "bob".into(),
            queue: q.into(),
            sender: q.into(),
            created: 0,
            payload: Bytes::new(),
            seq: 0,
            delivered: false,
        })
    }

    fn read(&self, q: &'static str, after: u64, limit: u32) -> PendingPage {
        let cursor = self.cursor.get(q).copied().unwrap_or(0);
        let log = self.log.get(q).map(Vec::as_slice).unwrap_or(&[]);
        let from = after.max(cursor);
        PendingPage {
            messages: log.iter().flatten().filter(|m| m.seq > from).take(limit as usize).cloned().collect(),
            head: log.len() as u64,
            cursor,
        }
    }

    fn stored(&self, q: &'static str) -> impl Iterator<Item = u64> + '_ {
        self.log.get(q).into_iter().flatten().flatten().map(|m| m.seq)
    }
}

/// The SDK's side: what it received, and the key it acks with on its next pull.
#[derive(Default)]
struct Client {
    received: HashMap<&'static str, Vec<u64>>,
    online_received: HashSet<u64>,
    key: HashMap<&'static str, u64>,
}

struct Run {
    store: Store,
    client: Client,
    session: SessionQueues,
    /// Announcements in flight to the session: stored commits and recalls.
    pending: Vec<Arc<QueuedMessage>>,
    max_held: usize,
    reconnects: usize,
    lost: usize,
}

impl Run {
    fn new(max_held: usize, pull_batch: usize) -> Run {
        Run {
            store: Store::default(),
            client: Client::default(),
            session: SessionQueues::new(max_held, pull_batch),
            pending: Vec::new(),
            max_held,
            reconnects: 0,
            lost: 0,
        }
    }

    fn reconnect(&mut self) {
        self.session = SessionQueues::new(self.max_held, self.session.pull_batch);
        self.client.key.clear();
        self.reconnects += 1;
    }

    /// One pull of `q`, read included; returns whether the answer carried messages.
    fn pull(&mut self, q: &'static str) -> bool {
        let Pull { ack, step } = self.session.pull(q, self.client.key.get(q).copied());
        if let Some(seq) = ack {
            let c = self.store.cursor.entry(q).or_default();
            *c = (*c).max(seq);
        }
        let batch = match step {
            PullStep::Answer(b) => b,
            PullStep::Read { after, limit } => match self.session.read_done(q, self.store.read(q, after, limit)) {
                Ok(b) => b,
                Err(Overflow) => {
                    self.reconnect();
                    return true;
                }
            },
        };
        self.receive(q, &batch);
        match batch.next_key {
            Some(k) => {
                self.client.key.insert(q, k);
                true
            }
            None => {
                self.client.key.remove(q);
                false
            }
        }
    }

    fn receive(&mut self, q: &'static str, batch: &Batch) {
        for m in &batch.messages {
            assert_eq!(m.queue, q, "a message answered in another queue's pull");
            if m.seq == 0 {
                self.client.online_received.insert(m.id.0);
                continue;
            }
            let got = self.client.received.entry(q).or_default();
            if !got.contains(&m.seq) {
                // In order: nothing still stored below it may be missing.
                for s in self.store.stored(q).filter(|s| *s < m.seq) {
                    assert!(got.contains(&s), "{q}: seq {} delivered before stored seq {s}", m.seq);
                }
            }
            got.push(m.seq);
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Commit(q) => {
                let m = self.store.commit(QUEUES[q]);
                self.pending.push(m);
            }
            Op::Announce { pick, dup } if !self.pending.is_empty() => {
                let i = pick % self.pending.len();
                let m = if dup { self.pending[i].clone() } else { self.pending.remove(i) };
                // A recalled message's late announcement still arrives.
                if self.session.stored(m).is_err() {
                    self.reconnect();
                }
            }
            Op::Lose(pick) if !self.pending.is_empty() => {
                self.pending.remove(pick % self.pending.len());
                self.lost += 1;
            }
            Op::Online(q) => {
                let m = self.store.online(QUEUES[q]);
                if self.session.online(m).is_err() {
                    self.reconnect();
                }
            }
            Op::Recall(q, n) => {
                let q = QUEUES[q];
                let live: Vec<u64> = self.store.stored(q).collect();
                if !live.is_empty() {
                    let seq = live[n % live.len()];
                    self.store.log.get_mut(q).unwrap()[seq as usize - 1] = None;
                    self.session.withdrawn(q, seq);
                }
            }
            Op::Pull(q) => {
                self.pull(QUEUES[q]);
            }
            Op::Reconnect => self.reconnect(),
            Op::HeadCheck(q) => {
                let head = self.store.log.get(QUEUES[q]).map_or(0, |l| l.len() as u64);
                self.session.head(QUEUES[q], head);
            }
            _ => {}
        }
        assert!(self.session.held() <= self.max_held, "held {} > {}", self.session.held(), self.max_held);
    }

    /// The periodic head check, then the SDK pulling every queue until `is_last`: every
    /// message still stored must have reached the device.
    fn settle(&mut self) {
        for q in QUEUES {
            let head = self.store.log.get(q).map_or(0, |l| l.len() as u64);
            self.session.head(q, head);
            let mut rounds = 0;
            while self.pull(q) {
                rounds += 1;
                assert!(rounds < 10_000, "{q}: the pull loop never ends");
            }
            let got: HashSet<u64> = self.client.received.get(q).into_iter().flatten().copied().collect();
            for s in self.store.stored(q) {
                assert!(got.contains(&s), "{q}: stored seq {s} never delivered");
            }
        }
    }

    fn duplicates(&self) -> usize {
        self.client
            .received
            .values()
            .map(|v| {
                let mut seen = BTreeMap::new();
                v.iter().filter(|s| seen.insert(**s, ()).is_some()).count()
            })
            .sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every committed message reaches the device, in order; exactly once while the session
    /// lives; memory stays under the bound.
    #[test]
    fn every_message_arrives_in_order(ops in prop::collection::vec(op(), 1..300), max_held in 2usize..12, batch in 1usize..6) {
        let mut run = Run::new(max_held, batch);
        for op in &ops {
            run.apply(op);
        }
        run.settle();
        if run.reconnects == 0 {
            prop_assert_eq!(run.duplicates(), 0);
        }
    }
}

#[test]
fn keys_carry_the_sequence_and_always_change() {
    assert_eq!(split_key(next_key(41, 7)), (41, 7));
    assert_ne!(next_key(5, 1), next_key(5, 2));
    assert!(batch_not_after(3, 3) && batch_not_after(3, 4) && !batch_not_after(4, 3));
    assert!(batch_not_after(BATCH_MASK as u32, 0), "the counter wraps");
    // A snowflake id sent back by a client of the previous protocol decodes to a huge
    // sequence, which a view clamps to what it sent.
    let mut s = SessionQueues::new(8, 4);
    let pull = s.pull("q", Some(1_612_041_012_140_572_672));
    assert!(pull.ack.is_none());
}

#[test]
fn a_gap_reads_the_store_and_a_duplicate_is_dropped() {
    let mut run = Run::new(16, 8);
    let first = run.store.commit("alice");
    assert!(run.session.stored(first).unwrap(), "a NOTICE for a new queue");
    assert!(run.pull("alice"));
    assert!(!run.pull("alice"), "acked, nothing more");
    // Live now: the next message is served from memory.
    let second = run.store.commit("alice");
    run.session.stored(second.clone()).unwrap();
    let Pull { step: PullStep::Answer(b), .. } = run.session.pull("alice", None) else {
        panic!("a read for the next sequence")
    };
    assert_eq!(b.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [2]);
    run.client.key.insert("alice", b.next_key.unwrap());
    // A duplicate of 2 is dropped; 4 after 2 is a gap: the next pull reads.
    let third = run.store.commit("alice");
    let fourth = run.store.commit("alice");
    run.session.stored(second).unwrap();
    run.session.stored(fourth).unwrap();
    let Pull { step: PullStep::Read { after, .. }, .. } =
        run.session.pull("alice", run.client.key.get("alice").copied())
    else {
        panic!("a gap must read")
    };
    assert_eq!(after, 2);
    let b = run.session.read_done("alice", run.store.read("alice", after, 8)).unwrap();
    assert_eq!(b.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
    let _ = third;
}
