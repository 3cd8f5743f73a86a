//! Properties of message ids: whatever the clock does, ids from one generator strictly
//! increase and decode to a time no earlier than the clock said; generators with different
//! node ids never produce the same id.

use missive_core::id::{EPOCH_MS, IdGenerator, MsgId};
use proptest::prelude::*;

proptest! {
    #[test]
    fn ids_strictly_increase_whatever_the_clock_does(steps in proptest::collection::vec(-50i64..50, 1..500), node in 0u16..1024) {
        let g = IdGenerator::new(node);
        let mut clock: i64 = 1_700_000_000_000;
        let mut last = MsgId(0);
        for step in steps {
            clock += step;
            let id = g.next_at_for_tests(clock as u64);
            prop_assert!(id > last);
            prop_assert!(id.unix_ms() >= clock as u64, "an id never claims a time before the clock");
            prop_assert_eq!(((id.0 >> 12) & 1023) as u16, node);
            last = id;
        }
    }

    #[test]
    fn different_nodes_never_collide(a in 0u16..1024, b in 0u16..1024, t in EPOCH_MS..EPOCH_MS + (1u64 << 40), n in 1usize..200) {
        prop_assume!(a != b);
        let (ga, gb) = (IdGenerator::new(a), IdGenerator::new(b));
        let xs: std::collections::HashSet<MsgId> = (0..n).map(|_| ga.next_at_for_tests(t)).collect();
        for _ in 0..n {
            prop_assert!(!xs.contains(&gb.next_at_for_tests(t)));
        }
    }

    #[test]
    fn floor_at_bounds_every_id_of_that_instant(t in EPOCH_MS..EPOCH_MS + (1u64 << 40), node in 0u16..1024) {
        let id = IdGenerator::new(node).next_at_for_tests(t);
        prop_assert!(MsgId::floor_at(t) <= id);
        prop_assert!(MsgId::floor_at(t + 1) > id);
        prop_assert_eq!(id.unix_ms(), t);
    }
}
