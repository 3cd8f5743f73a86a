//! Upper bounds on each recipient's undelivered messages, so the per-user cap
//! (`queue.max_offline_per_user`) is checked only for recipients that may be over it, not
//! with a count query per recipient per batch.
//!
//! A bound is exact after a check and grows with every message this writer queues; acks,
//! recalls and sweeps only lower the real count, so it stays an upper bound. A recipient
//! without a bound (first seen since start-up, or after the map was cleared) is checked, so
//! forgetting bounds is always safe. Owned by one group-commit writer: no lock.
//!
//! With several nodes writing to one PostgreSQL, each node's bounds only count its own
//! writes, so the cap is enforced a little late: a recipient can hold up to about
//! (nodes × cap) undelivered messages before every node's bound reaches the cap and checks.
//! The cap protects storage from an unbounded queue; it is not a delivery guarantee.

use std::collections::HashMap;

use missive_core::model::NewMessage;
use uuid::Uuid;

/// Bounds kept before the map starts over (about 100 bytes each).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub(crate) struct Backlog {
    bound: HashMap<Uuid, HashMap<String, u32>>,
    entries: usize,
}

/// One recipient of a batch: how many messages it gets and the tightest cap asked for.
pub(crate) struct Added<'a> {
    pub app: Uuid,
    pub owner: &'a str,
    pub count: u32,
    pub cap: u32,
}

impl Backlog {
    pub fn get(&self, app: Uuid, owner: &str) -> Option<u32> {
        self.bound.get(&app)?.get(owner).copied()
    }

    pub fn set(&mut self, app: Uuid, owner: &str, n: u32) {
        if self.entries >= MAX_ENTRIES {
            self.bound.clear();
            self.entries = 0;
        }
        let per_app = self.bound.entry(app).or_default();
        match per_app.get_mut(owner) {
            Some(b) => *b = n,
            None => {
                per_app.insert(owner.to_owned(), n);
                self.entries += 1;
            }
        }
    }

    /// The bound after adding `a.count` messages, if that stays within the cap: then no
    /// check is needed.
    pub fn within_cap(&self, a: &Added<'_>) -> Option<u32> {
        self.get(a.app, a.owner).map(|b| b.saturating_add(a.count)).filter(|n| *n <= a.cap)
    }
}

/// Groups a batch's messages by recipient, in first-seen order.
pub(crate) fn added<'a>(messages: impl Iterator<Item = (&'a NewMessage, u32)>) -> Vec<Added<'a>> {
    let mut out: Vec<Added<'a>> = Vec::new();
    let mut index: HashMap<(Uuid, &'a str), usize> = HashMap::new();
    for (m, cap) in messages {
        match index.get(&(m.app_id, m.owner.as_str())) {
            Some(&i) => {
                out[i].count += 1;
                out[i].cap = out[i].cap.min(cap);
            }
            None => {
                index.insert((m.app_id, &m.owner), out.len());
                out.push(Added { app: m.app_id, owner: &m.owner, count: 1, cap });
            }
        }
    }
    out
}
