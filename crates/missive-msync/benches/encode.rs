//! Micro-benchmarks of the protobuf work of one delivery: the `MessageBody` encoded once per
//! recipient when a message is sent, the pull result (`CommSyncDL` with its `Meta`s inside an
//! `MSync` frame) encoded by the session, and the client's decode of that frame.
//! Run with `cargo bench -p missive-msync`.

use bytes::Bytes;
use missive_msync::client::text_body;
use missive_msync::pb;
use missive_msync::pb::m_sync::Command;
use prost::Message;

fn main() {
    divan::main();
}

fn jid(name: &str) -> pb::Jid {
    pb::Jid {
        app_key: Some("demo#demo".into()),
        name: Some(name.into()),
        domain: Some("easemob.com".into()),
        client_resource: None,
    }
}

/// A pull result with `n` stored messages, as the server's session builds it.
fn pull_result(n: usize) -> pb::MSync {
    let payload = Bytes::from(text_body("alice", "bob", "hello there, how are you?", None).encode_to_vec());
    let metas = (0..n as u64)
        .map(|i| pb::Meta {
            id: Some(1_234_567_890_123_456_789 + i),
            from: Some(jid("alice")),
            to: Some(jid("bob")),
            timestamp: Some(1_790_000_000_000),
            ns: Some(pb::meta::NameSpace::Chat as i32),
            payload: Some(payload.clone()),
            ..Default::default()
        })
        .collect();
    let dl = pb::CommSyncDl {
        status: Some(pb::Status { error_code: Some(0), ..Default::default() }),
        queue: Some(jid("alice")),
        metas,
        next_key: Some(1_234_567_890_123_456_789 + n as u64),
        is_last: Some(false),
        timestamp: Some(1_790_000_000_000),
        ..Default::default()
    };
    pb::MSync {
        command: Some(Command::Sync as i32),
        payload: Some(Bytes::from(dl.encode_to_vec())),
        ..Default::default()
    }
}

/// The per-recipient payload of a send (`delivery.rs`): the body with `to` filled in.
#[divan::bench]
fn message_body_encode(bencher: divan::Bencher) {
    let body = text_body("alice", "bob", "hello there, how are you?", None);
    bencher.bench_local(|| divan::black_box(&body).encode_to_vec());
}

/// A whole pull-result frame with 1 or 100 messages, inner payload encoded then the frame.
#[divan::bench(args = [1, 100])]
fn pull_result_encode(bencher: divan::Bencher, n: usize) {
    let frame = pull_result(n);
    let dl = pb::CommSyncDl::decode(frame.payload.clone().unwrap()).unwrap();
    bencher.bench_local(|| {
        let env = pb::MSync {
            command: Some(Command::Sync as i32),
            payload: Some(Bytes::from(divan::black_box(&dl).encode_to_vec())),
            ..Default::default()
        };
        env.encode_to_vec()
    });
}

/// The client side of the same frame: envelope, pull result, and each message body.
#[divan::bench(args = [1, 100])]
fn pull_result_decode(bencher: divan::Bencher, n: usize) {
    let bytes = pull_result(n).encode_to_vec();
    bencher.bench_local(|| {
        let env = pb::MSync::decode(divan::black_box(bytes.as_slice())).unwrap();
        let dl = pb::CommSyncDl::decode(env.payload.unwrap()).unwrap();
        dl.metas.iter().filter_map(|m| pb::MessageBody::decode(m.payload.clone().unwrap()).ok()).count()
    });
}
