//! What one MSYNC session knows of its device's queues, as a state machine free of I/O.
//!
//! The session (`ws/session.rs`) feeds it events — a commit was announced, an online-only
//! message arrived, a message was withdrawn, the device pulled, a store read came back — and
//! writes the frames it asks for. Nothing here touches a socket or the store, so the rules
//! are property-tested below against lost, duplicated, reordered and late announcements.
//!
//! **The rule** (the sequence rule of `missive_core::store::queues`, applied per queue):
//! `known` is the sequence up to which this view knows the queue completely — every stored
//! message in `(acked, known]` is in `held`, or no longer stored. An announcement of `known +
//! 1` extends that knowledge and is served from memory; one at or below `known` is a
//! duplicate and dropped; one beyond `known + 1` is a gap, so the view becomes *stale* and
//! the next pull reads the store from `known`. A device is only ever sent a prefix it knows
//! completely, so its ack — the highest sequence it was sent — never skips a message, and the
//! durable cursor is just that sequence.
//!
//! Online-only messages (`ROUTE_ONLINE`, copies to the sender's other devices) have no
//! sequence: they exist only here, in arrival order, until a pull's ack covers the batch
//! that carried them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use missive_core::model::QueuedMessage;
use missive_core::store::PendingPage;

/// Bits of a `next_key` that count batches; the sequence sits above them.
const BATCH_BITS: u32 = 24;
const BATCH_MASK: u64 = (1 << BATCH_BITS) - 1;

/// The `next_key` of a batch: the highest sequence it carried (or the view's ack position if
/// it carried only online-only messages) above a per-queue batch counter. The counter makes
/// every key differ from the previous one, which the SDK requires (a repeated `next_key`
/// stops its pull loop: PROTOCOL.md §3.4 rule 4).
pub fn next_key(seq: u64, batch: u32) -> u64 {
    (seq << BATCH_BITS) | (u64::from(batch) & BATCH_MASK)
}

/// Splits a key the device sent back into (sequence, batch).
pub fn split_key(key: u64) -> (u64, u32) {
    (key >> BATCH_BITS, (key & BATCH_MASK) as u32)
}

/// Whether batch `a` was answered no later than batch `b`, in 24-bit serial arithmetic.
fn batch_not_after(a: u32, b: u32) -> bool {
    (u64::from(b).wrapping_sub(u64::from(a)) & BATCH_MASK) < (1 << (BATCH_BITS - 1))
}

/// A pull's answer: messages, or — when `next_key` is `None` — the empty `is_last` frame.
#[derive(Debug, Default)]
pub struct Batch {
    pub messages: Vec<Arc<QueuedMessage>>,
    pub next_key: Option<u64>,
}

/// What a pull needs next.
#[derive(Debug)]
pub enum PullStep {
    /// Answer at once with this batch.
    Answer(Batch),
    /// Read the queue from the store for this device, after `after` (the device's durable
    /// cursor applies too), then call `read_done`.
    Read { after: u64, limit: u32 },
}

/// A pull: the cursor to make durable, if the ack moved it, and what to do next.
#[derive(Debug)]
pub struct Pull {
    pub ack: Option<u64>,
    pub step: PullStep,
}

/// The device holds more unacked messages than `sessions.max_online_pending` allows even
/// after every unsent stored message was dropped: it is not pulling, so it is disconnected.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

struct Online {
    msg: Arc<QueuedMessage>,
    /// The batch that carried it, once sent.
    sent_in: Option<u32>,
}

/// One queue, for one device.
#[derive(Default)]
struct QueueView {
    /// The highest sequence the device acked (this session, or its durable cursor).
    acked: u64,
    /// The highest acked sequence handed to the store.
    durable: u64,
    /// `None` until the first read: the view knows nothing yet.
    known: Option<u64>,
    /// The store may hold messages beyond `known` (a gap was announced, memory was spilled,
    /// or a read filled its page): the next pull reads.
    stale: bool,
    /// Stored messages in `(acked, known]`, by sequence.
    held: BTreeMap<u64, Arc<QueuedMessage>>,
    /// The highest sequence sent in this session.
    sent: u64,
    online: VecDeque<Online>,
    /// Batches answered with messages; the low bits of every `next_key`.
    batches: u32,
}

impl QueueView {
    fn needs_read(&self) -> bool {
        self.known.is_none() || self.stale
    }

    /// Nothing here that the store does not know: the view can be forgotten.
    fn is_idle(&self) -> bool {
        self.held.is_empty() && self.online.is_empty() && self.acked == 0 && self.sent == 0
    }

    /// Drops held messages beyond the first `keep` that were not sent yet (the store still
    /// has them) and goes stale. Sent-but-unacked messages always stay: the device may ask
    /// for them again. Returns how many were dropped.
    fn spill(&mut self, keep: usize) -> usize {
        let keep = keep.max(self.held.range(..=self.sent).count());
        let Some(&cut) = self.held.keys().nth(keep) else { return 0 };
        let dropped = self.held.split_off(&cut).len();
        // Everything below `cut` is still held (or no longer stored).
        self.known = Some(cut - 1);
        self.stale = true;
        dropped
    }
}

/// Every queue view of one session, and the bound on what they hold together.
pub struct SessionQueues {
    views: HashMap<String, QueueView>,
    /// Messages held in all views (stored and online-only).
    held: usize,
    max_held: usize,
    pull_batch: usize,
    /// Queues told of with a NOTICE that the device has not pulled since: one is enough.
    noticed: HashSet<String>,
    /// Queues answered with messages whose ack-pull has not come yet: the device pulls
    /// again by itself, so no NOTICE is needed.
    awaiting_pull: HashSet<String>,
}

impl SessionQueues {
    /// `max_held` bounds the messages held in memory for the session
    /// (`sessions.max_online_pending`); `pull_batch` the messages per pull answer.
    pub fn new(max_held: usize, pull_batch: usize) -> SessionQueues {
        SessionQueues {
            views: HashMap::new(),
            held: 0,
            max_held: max_held.max(1),
            // A batch is at most what memory may hold, so a pull can always be answered.
            pull_batch: pull_batch.clamp(1, max_held.max(1)),
            noticed: HashSet::new(),
            awaiting_pull: HashSet::new(),
        }
    }

    /// Messages held in memory now (for tests and metrics).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether to send a NOTICE for `queue` now.
    fn notice(&mut self, queue: &str) -> bool {
        !self.awaiting_pull.contains(queue) && self.noticed.insert(queue.to_owned())
    }

    /// A stored message of this device's user was committed. Returns whether to send a
    /// NOTICE for its queue.
    pub fn stored(&mut self, msg: Arc<QueuedMessage>) -> Result<bool, Overflow> {
        let view = self.views.entry(msg.queue.clone()).or_default();
        if let Some(known) = view.known {
            if msg.seq == known + 1 {
                view.known = Some(msg.seq);
                if msg.seq > view.acked {
                    view.held.insert(msg.seq, msg.clone());
                    self.held += 1;
                }
            } else if msg.seq > known + 1 {
                view.stale = true;
            }
            // At or below `known`: a duplicate or a late announcement; the view has it.
        }
        let notice = self.notice(&msg.queue);
        self.within_bounds()?;
        Ok(notice)
    }

    /// An online-only message for this device. Returns whether to send a NOTICE.
    pub fn online(&mut self, msg: Arc<QueuedMessage>) -> Result<bool, Overflow> {
        let queue = msg.queue.clone();
        self.views.entry(queue.clone()).or_default().online.push_back(Online { msg, sent_in: None });
        self.held += 1;
        let notice = self.notice(&queue);
        self.within_bounds()?;
        Ok(notice)
    }

    /// A stored message was removed (recall): it must not go out (again).
    pub fn withdrawn(&mut self, queue: &str, seq: u64) {
        if let Some(view) = self.views.get_mut(queue)
            && view.held.remove(&seq).is_some()
        {
            self.held -= 1;
        }
    }

    /// The store reports `head` as the last sequence of `queue` (a periodic check, or a
    /// count that does not match): if the view is behind it, it goes stale. Returns whether
    /// to send a NOTICE.
    pub fn head(&mut self, queue: &str, head: u64) -> bool {
        match self.views.get_mut(queue) {
            Some(view) if view.known.is_some_and(|k| head > k) => {
                view.stale = true;
                self.notice(queue)
            }
            _ => false,
        }
    }

    /// The device pulled `queue`, acking up to `key` if it sent one.
    pub fn pull(&mut self, queue: &str, key: Option<u64>) -> Pull {
        self.noticed.remove(queue);
        self.awaiting_pull.remove(queue);
        let view = self.views.entry(queue.to_owned()).or_default();
        let mut ack = None;
        if let Some(key) = key.filter(|k| *k > 0) {
            let (seq, batch) = split_key(key);
            // Never past what this session sent: a key from an older protocol or a confused
            // client cannot ack what the device never had.
            let seq = seq.min(view.sent);
            if seq > view.acked {
                view.acked = seq;
                let rest = view.held.split_off(&(seq + 1));
                self.held -= view.held.len();
                view.held = rest;
            }
            let before = view.online.len();
            view.online.retain(|o| !o.sent_in.is_some_and(|b| batch_not_after(b, batch)));
            self.held -= before - view.online.len();
            if view.acked > view.durable {
                view.durable = view.acked;
                ack = Some(view.acked);
            }
        }
        let step = if view.needs_read() {
            PullStep::Read { after: view.known.unwrap_or(0), limit: self.pull_batch as u32 }
        } else {
            PullStep::Answer(self.answer(queue))
        };
        Pull { ack, step }
    }

    /// A read requested by `pull` came back: merge it, then answer the pull.
    pub fn read_done(&mut self, queue: &str, page: PendingPage) -> Result<Batch, Overflow> {
        let view = self.views.entry(queue.to_owned()).or_default();
        // The durable cursor is ahead of this view when the device acked through an earlier
        // session of the same resource: what it acked there is not sent again.
        if page.cursor > view.acked {
            view.acked = page.cursor;
            view.durable = view.durable.max(page.cursor);
            let rest = view.held.split_off(&(page.cursor + 1));
            self.held -= view.held.len();
            view.held = rest;
        }
        let full = page.messages.len() >= self.pull_batch;
        let mut known = view.known.unwrap_or(0).max(view.acked);
        for m in page.messages {
            known = known.max(m.seq);
            if m.seq > view.acked && !view.held.contains_key(&m.seq) {
                view.held.insert(m.seq, m);
                self.held += 1;
            }
        }
        if !full {
            known = known.max(page.head);
        }
        view.known = Some(known);
        view.stale = full;
        if self.held > self.max_held {
            // Keep what the device is about to be sent; spill the other queues first.
            for (q, v) in self.views.iter_mut() {
                if q != queue {
                    self.held -= v.spill(0);
                }
            }
            if self.held > self.max_held
                && let Some(v) = self.views.get_mut(queue)
            {
                self.held -= v.spill(self.pull_batch);
            }
            if self.held > self.max_held {
                return Err(Overflow);
            }
        }
        Ok(self.answer(queue))
    }

    /// A read requested by `pull` failed: answer with what memory holds; the view stays in
    /// need of a read, so the next pull tries again.
    pub fn read_failed(&mut self, queue: &str) -> Batch {
        self.answer(queue)
    }

    /// Online-only messages not yet acked, per queue (UNREAD adds them to the store's counts).
    pub fn online_counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.views.iter().filter(|(_, v)| !v.online.is_empty()).map(|(q, v)| (q.as_str(), v.online.len() as u32))
    }

    /// The next batch of `queue`: held messages from the ack position on (resending what was
    /// sent but not acked), merged with online-only ones by id, at most `pull_batch`.
    fn answer(&mut self, queue: &str) -> Batch {
        let Some(view) = self.views.get_mut(queue) else { return Batch::default() };
        let mut stored = view.held.values().take(self.pull_batch).peekable();
        let mut online = view.online.iter_mut().filter(|o| o.sent_in.is_none()).peekable();
        let batch_no = view.batches.wrapping_add(1) & BATCH_MASK as u32;
        let mut messages = Vec::new();
        while messages.len() < self.pull_batch {
            let take_stored = match (stored.peek(), online.peek()) {
                (Some(s), Some(o)) => s.id <= o.msg.id,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_stored {
                let m = stored.next().expect("peeked");
                view.sent = view.sent.max(m.seq);
                messages.push(m.clone());
            } else {
                let o = online.next().expect("peeked");
                o.sent_in = Some(batch_no);
                messages.push(o.msg.clone());
            }
        }
        if messages.is_empty() {
            if view.is_idle() {
                // Nothing of this queue was ever here: forget it, so a client pulling endless
                // made-up queue names cannot grow the session.
                self.views.remove(queue);
            }
            return Batch::default();
        }
        view.batches = batch_no;
        let top = messages.iter().filter(|m| m.seq > 0).map(|m| m.seq).max().unwrap_or(0).max(view.acked);
        self.awaiting_pull.insert(queue.to_owned());
        Batch { messages, next_key: Some(next_key(top, batch_no)) }
    }

    /// Keeps held messages under the bound: unsent stored messages are dropped first (the
    /// store still has them); if that is not enough the device is not pulling.
    fn within_bounds(&mut self) -> Result<(), Overflow> {
        if self.held <= self.max_held {
            return Ok(());
        }
        for view in self.views.values_mut() {
            self.held -= view.spill(0);
        }
        if self.held > self.max_held { Err(Overflow) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests;
