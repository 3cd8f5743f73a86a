//! A tiny in-process MSYNC server, modelled on `websdk-harness/mock-server.js`, so the client's
//! login, pull/ack and upload/ack behaviour can be tested without the real server.
//!
//! It binds `127.0.0.1:0` before returning, registers a session before answering its
//! PROVISION, and records every client frame (decoded envelope plus the user it came from) in
//! arrival order, so tests wait on observable facts instead of sleeping. Valid token for user
//! `u` is `tok-u`. Uploads are acked, stored in the recipient's queue named after the sender,
//! and announced with NOTICE, so two clients can talk through it.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use missive_msync::frame::{decode_frame, decode_payload, encode_frame, jid};
use missive_msync::pb;
use missive_msync::pb::m_sync::Command;
use prost::Message as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

pub const APP_KEY: &str = "testorg#testapp";
/// Bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Resource the server assigns instead of echoing the client's.
    pub assign_resource: Option<String>,
    /// Metas per pull result.
    pub batch: usize,
    /// Break PROTOCOL.md §3.4 rule 3: send `is_last:true` together with the metas.
    pub is_last_with_metas: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self { assign_resource: None, batch: 10, is_last_with_metas: false }
    }
}

/// One frame the mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The logged-in user of the connection ("" before PROVISION succeeded).
    pub user: String,
    pub frame: pb::MSync,
}

impl Seen {
    pub fn command(&self) -> Command {
        Command::try_from(self.frame.command.unwrap_or_default()).expect("known command")
    }

    /// The SYNC payload, if this is a SYNC.
    pub fn sync_ul(&self) -> Option<pb::CommSyncUl> {
        (self.command() == Command::Sync).then(|| decode_payload(&self.frame).unwrap())
    }

    /// `(queue, key)` if this is a pull (SYNC without meta).
    pub fn pull(&self) -> Option<(String, Option<u64>)> {
        let ul = self.sync_ul()?;
        if ul.meta.is_some() {
            return None;
        }
        Some((ul.queue?.name().to_owned(), ul.key))
    }
}

enum Out {
    Frame(Vec<u8>),
    Close,
}

struct State {
    next_id: u64,
    /// (recipient, queue name) → metas not yet acked.
    pending: HashMap<(String, String), Vec<pb::Meta>>,
    sessions: HashMap<String, mpsc::UnboundedSender<Out>>,
}

struct Shared {
    config: MockConfig,
    state: Mutex<State>,
    seen: mpsc::UnboundedSender<Seen>,
}

pub struct Mock {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn ok() -> Option<pb::Status> {
    Some(pb::Status::default())
}

fn fail(reason: &str) -> Option<pb::Status> {
    Some(pb::Status {
        error_code: Some(pb::status::ErrorCode::Fail as i32),
        reason: Some(reason.to_owned()),
        redirect_info: vec![],
    })
}

impl Mock {
    pub async fn start(config: MockConfig) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State { next_id: now_ms() * 1000, pending: HashMap::new(), sessions: HashMap::new() }),
            seen: seen_tx,
        });
        let accept_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&accept_shared)));
            }
        });
        Mock { addr, shared, seen }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/websocket", self.addr)
    }

    /// Queues a text message from `from` to `to` and NOTICEs `to` if online; returns its id.
    pub fn push_text(&self, from: &str, to: &str, text: &str) -> u64 {
        let body = missive_msync::client::text_body(from, to, text, None);
        self.push(to, from, pb::meta::NameSpace::Chat, body.encode_to_vec())
    }

    /// Queues a STATISTIC meta with `operation` for `to` (a kick when not INFORMATION).
    pub fn push_kick(&self, to: &str, operation: pb::statistics_body::Operation) -> u64 {
        let body = pb::StatisticsBody {
            operation: Some(operation as i32),
            reason: Some("kicked by test".into()),
            ..Default::default()
        };
        self.push(to, "admin", pb::meta::NameSpace::Statistic, body.encode_to_vec())
    }

    fn push(&self, to: &str, from: &str, ns: pb::meta::NameSpace, payload: Vec<u8>) -> u64 {
        let mut state = self.shared.state.lock().unwrap();
        let meta = pb::Meta {
            from: Some(jid(APP_KEY, from)),
            to: Some(jid(APP_KEY, to)),
            timestamp: Some(now_ms()),
            ns: Some(ns as i32),
            payload: Some(payload.into()),
            ..Default::default()
        };
        store_and_notify(&mut state, to, from, meta)
    }

    /// Sends raw bytes to `to`'s session as one binary frame.
    pub fn push_raw(&self, to: &str, bytes: Vec<u8>) {
        let state = self.shared.state.lock().unwrap();
        state.sessions[to].send(Out::Frame(bytes)).ok();
    }

    /// Closes `to`'s socket from the server side.
    pub fn close_session(&self, to: &str) {
        let state = self.shared.state.lock().unwrap();
        state.sessions[to].send(Out::Close).ok();
    }

    /// Number of unacked metas for `user` in `queue`.
    pub fn pending(&self, user: &str, queue: &str) -> usize {
        let state = self.shared.state.lock().unwrap();
        state.pending.get(&(user.to_owned(), queue.to_owned())).map_or(0, Vec::len)
    }

    /// The next client frame, within [`WAIT`].
    pub async fn next_frame(&mut self) -> Seen {
        timeout(WAIT, self.seen.recv()).await.expect("timed out waiting for a client frame").expect("mock gone")
    }

    /// Skips client frames until one matches, all within [`WAIT`]; returns it and the frames
    /// skipped.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&Seen) -> bool) -> (Seen, Vec<Seen>) {
        let mut skipped = Vec::new();
        timeout(WAIT, async {
            loop {
                let seen = self.seen.recv().await.expect("mock gone");
                if pred(&seen) {
                    return (seen, skipped);
                }
                skipped.push(seen);
            }
        })
        .await
        .expect("timed out waiting for a matching client frame")
    }

    /// Frames received so far and not yet consumed, without waiting.
    pub fn drain(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        while let Ok(seen) = self.seen.try_recv() {
            out.push(seen);
        }
        out
    }
}

fn store_and_notify(state: &mut State, to: &str, queue: &str, mut meta: pb::Meta) -> u64 {
    state.next_id += 1;
    let id = state.next_id;
    meta.id = Some(id);
    state.pending.entry((to.to_owned(), queue.to_owned())).or_default().push(meta);
    if let Some(session) = state.sessions.get(to) {
        let notice = pb::CommNotice { queue: Some(jid(APP_KEY, queue)) };
        session.send(Out::Frame(encode_frame(Command::Notice, notice))).ok();
    }
    id
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (push, mut pushed) = mpsc::unbounded_channel();
    let mut user: Option<String> = None;
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let Some(Ok(message)) = incoming else { break };
                let Message::Binary(bytes) = message else { continue };
                let Ok(frame) = decode_frame(&bytes) else { continue };
                let replies = shared.handle(&mut user, &frame, &push);
                shared.seen.send(Seen { user: user.clone().unwrap_or_default(), frame }).ok();
                for reply in replies {
                    if ws.send(Message::Binary(reply.into())).await.is_err() {
                        break;
                    }
                }
            }
            out = pushed.recv() => match out {
                Some(Out::Frame(bytes)) => { ws.send(Message::Binary(bytes.into())).await.ok(); }
                Some(Out::Close) => { ws.close(None).await.ok(); }
                None => break,
            },
        }
    }
    if let Some(user) = user {
        shared.state.lock().unwrap().sessions.remove(&user);
    }
}

impl Shared {
    fn handle(&self, user: &mut Option<String>, frame: &pb::MSync, push: &mpsc::UnboundedSender<Out>) -> Vec<Vec<u8>> {
        let mut state = self.state.lock().unwrap();
        match Command::try_from(frame.command.unwrap_or_default()) {
            Ok(Command::Provision) => {
                let name = frame.guid.as_ref().map(|g| g.name().to_owned()).unwrap_or_default();
                let provision: pb::Provision = decode_payload(frame).unwrap();
                if frame.auth() != format!("$t$tok-{name}") {
                    let reply = pb::Provision {
                        status: fail("Sorry, token or password does not match login info"),
                        ..Default::default()
                    };
                    return vec![encode_frame(Command::Provision, reply)];
                }
                state.sessions.insert(name.clone(), push.clone());
                *user = Some(name);
                let reply = pb::Provision {
                    status: ok(),
                    resource: self.config.assign_resource.clone().or(provision.resource),
                    ..Default::default()
                };
                vec![encode_frame(Command::Provision, reply)]
            }
            Ok(Command::Unread) => {
                let me = user.clone().unwrap_or_default();
                let unread = state
                    .pending
                    .iter()
                    .filter(|((to, _), metas)| *to == me && !metas.is_empty())
                    .map(|((_, queue), metas)| pb::MetaQueue {
                        queue: Some(jid(APP_KEY, queue)),
                        n: Some(metas.len() as u32),
                    })
                    .collect();
                let reply = pb::CommUnreadDl { status: ok(), unread, timestamp: Some(now_ms()) };
                vec![encode_frame(Command::Unread, reply)]
            }
            Ok(Command::Sync) => {
                let me = user.clone().unwrap_or_default();
                let ul: pb::CommSyncUl = decode_payload(frame).unwrap();
                if let Some(meta) = ul.meta {
                    if meta.ns() != pb::meta::NameSpace::Chat {
                        return vec![];
                    }
                    let body = pb::MessageBody::decode(meta.payload()).unwrap();
                    let to = meta.to.as_ref().map(|j| j.name().to_owned()).unwrap_or_default();
                    if body.contents.first().map(|c| c.text()) == Some("reject me") {
                        let ack = pb::CommSyncDl { status: fail("blocked"), meta_id: meta.id, ..Default::default() };
                        return vec![encode_frame(Command::Sync, ack)];
                    }
                    let delivered = pb::Meta {
                        from: Some(jid(APP_KEY, &me)),
                        to: Some(jid(APP_KEY, &to)),
                        timestamp: Some(now_ms()),
                        ..meta.clone()
                    };
                    let server_id = store_and_notify(&mut state, &to, &me, delivered);
                    let ack = pb::CommSyncDl {
                        status: ok(),
                        meta_id: meta.id,
                        server_id: Some(server_id),
                        timestamp: Some(now_ms()),
                        ..Default::default()
                    };
                    return vec![encode_frame(Command::Sync, ack)];
                }
                let Some(queue) = ul.queue else { return vec![] };
                let list = state.pending.entry((me, queue.name().to_owned())).or_default();
                if let Some(key) = ul.key.filter(|k| *k != 0) {
                    list.retain(|m| m.id() > key);
                }
                let metas: Vec<pb::Meta> = list.iter().take(self.config.batch).cloned().collect();
                let reply = if metas.is_empty() {
                    pb::CommSyncDl {
                        status: ok(),
                        queue: Some(jid(APP_KEY, queue.name())),
                        is_last: Some(true),
                        timestamp: Some(now_ms()),
                        ..Default::default()
                    }
                } else {
                    pb::CommSyncDl {
                        status: ok(),
                        queue: Some(jid(APP_KEY, queue.name())),
                        next_key: metas.last().and_then(|m| m.id),
                        is_last: Some(self.config.is_last_with_metas),
                        timestamp: Some(now_ms()),
                        metas,
                        ..Default::default()
                    }
                };
                vec![encode_frame(Command::Sync, reply)]
            }
            Ok(Command::Logout) | Ok(Command::Notice) | Err(_) => vec![],
        }
    }
}
