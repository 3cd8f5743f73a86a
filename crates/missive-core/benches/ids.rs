//! Micro-benchmarks of message-id generation: every stored copy of every message takes one
//! id, so a 600-recipient send takes 600 of them under the generator's mutex.
//! Run with `cargo bench -p missive-core`.

use missive_core::id::{IdGenerator, MsgId};

fn main() {
    divan::main();
}

/// One id: the clock read, the mutex, the bit packing.
#[divan::bench]
fn next_id(bencher: divan::Bencher) {
    let ids = IdGenerator::new(1);
    bencher.bench_local(|| ids.next_id());
}

/// 600 ids, one fan-out call's worth.
#[divan::bench]
fn next_id_x600(bencher: divan::Bencher) {
    let ids = IdGenerator::new(1);
    bencher.bench_local(|| {
        let mut last = MsgId(0);
        for _ in 0..600 {
            last = ids.next_id();
        }
        last
    });
}

/// The decimal string every REST answer carries per recipient.
#[divan::bench]
fn id_to_string(bencher: divan::Bencher) {
    let id = IdGenerator::new(1).next_id();
    bencher.bench_local(|| divan::black_box(id).to_string());
}
