//! Time-ordered 64-bit message ids, the Snowflake layout Easemob's ids follow.
//!
//! `id = (ms since EPOCH) << 22 | node << 12 | sequence`. With the 2014-10-01 epoch the ids
//! of today are 19 decimal digits, like Easemob's (`"1029457500870543736"`), fit a signed
//! 64-bit integer until 2084, and `id >> 22` is the send time in ms, which is how recall
//! windows and retention are computed without another column.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2014-10-01T00:00:00Z in ms since the Unix epoch.
pub const EPOCH_MS: u64 = 1_412_121_600_000;
/// Node ids occupy 10 bits: up to 1024 nodes share one id space without coordination.
pub const MAX_NODE_ID: u16 = (1 << 10) - 1;
const SEQ_BITS: u64 = 12;
const NODE_BITS: u64 = 10;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// A message id: Easemob hands these to clients as decimal strings because JavaScript
/// numbers lose precision above 2^53.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId(pub u64);

impl MsgId {
    /// The Unix time in ms at which this id was generated.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> (SEQ_BITS + NODE_BITS)) + EPOCH_MS
    }

    /// The smallest id that could be generated at `unix_ms`: the floor for "everything
    /// sent before this instant", used by retention sweeps.
    pub fn floor_at(unix_ms: u64) -> MsgId {
        MsgId(unix_ms.saturating_sub(EPOCH_MS) << (SEQ_BITS + NODE_BITS))
    }
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Generates strictly increasing ids for one node.
///
/// A `std::sync::Mutex` and not an atomic: the state is two numbers updated together, the
/// critical section is a few instructions and never awaits.
#[derive(Debug)]
pub struct IdGenerator {
    node: u64,
    state: Mutex<IdState>,
}

#[derive(Debug, Default)]
struct IdState {
    last_ms: u64,
    seq: u64,
}

impl IdGenerator {
    /// `node` must be unique per running server that shares a store; it is masked to 10 bits.
    pub fn new(node: u16) -> Self {
        IdGenerator { node: u64::from(node & MAX_NODE_ID), state: Mutex::new(IdState::default()) }
    }

    /// The next id. If the wall clock steps backwards, the generator keeps counting from the
    /// last instant it used, so ids never repeat or go backwards within a process; after
    /// 4096 ids in one millisecond it borrows the next millisecond.
    pub fn next_id(&self) -> MsgId {
        self.next_at(now_ms())
    }

    /// `next_id` with the clock reading supplied, so tests can drive time.
    #[doc(hidden)]
    pub fn next_at_for_tests(&self, now: u64) -> MsgId {
        self.next_at(now)
    }

    fn next_at(&self, now: u64) -> MsgId {
        let now = now.saturating_sub(EPOCH_MS);
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now > s.last_ms {
            s.last_ms = now;
            s.seq = 0;
        } else {
            s.seq += 1;
            if s.seq > SEQ_MASK {
                s.last_ms += 1;
                s.seq = 0;
            }
        }
        MsgId((s.last_ms << (SEQ_BITS + NODE_BITS)) | (self.node << SEQ_BITS) | s.seq)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing_and_19_digits() {
        let g = IdGenerator::new(3);
        let mut last = MsgId(0);
        for _ in 0..20_000 {
            let id = g.next_id();
            assert!(id > last);
            assert_eq!(id.to_string().len(), 19);
            last = id;
        }
    }

    #[test]
    fn clock_going_backwards_never_repeats() {
        let g = IdGenerator::new(1);
        let a = g.next_at(EPOCH_MS + 10_000);
        let b = g.next_at(EPOCH_MS + 5_000);
        assert!(b > a);
        assert_eq!(b.unix_ms(), EPOCH_MS + 10_000);
    }

    #[test]
    fn sequence_overflow_borrows_next_millisecond() {
        let g = IdGenerator::new(0);
        let t = EPOCH_MS + 1_000;
        let ids: Vec<_> = (0..5000).map(|_| g.next_at(t)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids[4096].unix_ms(), t + 1);
    }

    #[test]
    fn nodes_never_collide() {
        let a = IdGenerator::new(1);
        let b = IdGenerator::new(2);
        let t = EPOCH_MS + 77;
        let xs: std::collections::HashSet<_> = (0..1000).map(|_| a.next_at(t)).collect();
        assert!((0..1000).map(|_| b.next_at(t)).all(|id| !xs.contains(&id)));
    }

    #[test]
    fn time_round_trips() {
        let g = IdGenerator::new(5);
        let id = g.next_at(1_700_000_000_123);
        assert_eq!(id.unix_ms(), 1_700_000_000_123);
        assert!(MsgId::floor_at(1_700_000_000_123) <= id);
        assert!(MsgId::floor_at(1_700_000_000_124) > id);
    }
}
