//! The NATS bus: how a commit, an online-only message or a kick on one node reaches the
//! sessions of the same user on the others.
//!
//! **Subjects are per user**: `{cluster.name}.u.{app}.{hex(user)}`. A node subscribes to a
//! user's subject while it holds at least one session of that user (the login awaits the
//! subscription) and drops it with the last one, so an event goes only to the nodes that
//! need it — NATS does the routing, and a message costs one publish however many nodes there
//! are. (Per-shard subjects would need far fewer subscriptions, but with more than a few
//! thousand users per node every node ends up subscribed to every shard and receives every
//! event: N× the traffic for N nodes.) The hex keeps user ids — which may contain `.` —
//! one subject token.
//!
//! Core NATS is at-most-once, and that is enough: announcements carry the queue sequence, so
//! a late or duplicated one is dropped by the receiving view and a lost one becomes a gap a
//! later read fills (`crate::delivery::view`). What NATS cannot tell a node — that it missed
//! events while disconnected, or while a subscription overflowed — is handled by telling
//! every local session to compare its views with the store (`Hub::resync_all`) when the
//! connection comes back or NATS reports a slow consumer. The SDK's own heartbeat (UNREAD,
//! every 30–60 s) does the same comparison for each session.
//!
//! Each event carries the instance that published it, and a node ignores its own: its local
//! sessions already had the event from its hub directly, without the round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use missive_core::id::MsgId;
use missive_core::model::QueuedMessage;
use missive_core::store::CommitListener;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::ServerError;
use crate::config::ClusterConfig;
use crate::fanout::{Fanout, KickReason, KickTarget};
use crate::hub::Hub;

/// Events waiting for the publisher task before new ones are dropped (and counted).
const PUBLISH_QUEUE: usize = 8192;

/// One event on the wire.
#[derive(Clone, PartialEq, prost::Message)]
struct BusEvent {
    /// The publishing instance (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    origin: Vec<u8>,
    #[prost(uint32, tag = "2")]
    kind: u32,
    #[prost(bytes = "vec", tag = "3")]
    app: Vec<u8>,
    #[prost(string, tag = "4")]
    owner: String,
    #[prost(string, tag = "5")]
    queue: String,
    #[prost(uint64, tag = "6")]
    seq: u64,
    #[prost(uint64, tag = "7")]
    id: u64,
    #[prost(string, tag = "8")]
    sender: String,
    #[prost(int64, tag = "9")]
    created: i64,
    #[prost(bytes = "bytes", tag = "10")]
    payload: Bytes,
    /// Online-only messages: a resource that must not get it (the sending device).
    #[prost(string, optional, tag = "11")]
    except: Option<String>,
    #[prost(uint32, tag = "12")]
    reason: u32,
    /// Kicks: 0 every device, 1 one resource, 2 one session of one node.
    #[prost(uint32, tag = "13")]
    target: u32,
    #[prost(string, tag = "14")]
    target_resource: String,
    #[prost(uint32, tag = "15")]
    target_node: u32,
    #[prost(uint64, tag = "16")]
    target_session: u64,
}

const STORED: u32 = 1;
const ONLINE: u32 = 2;
const WITHDRAWN: u32 = 3;
const KICK: u32 = 4;

fn reason_code(r: KickReason) -> u32 {
    match r {
        KickReason::ByAdmin => 1,
        KickReason::PasswordChanged => 2,
        KickReason::UserRemoved => 3,
        KickReason::LoginElsewhere => 4,
    }
}

fn reason_of(code: u32) -> KickReason {
    match code {
        2 => KickReason::PasswordChanged,
        3 => KickReason::UserRemoved,
        4 => KickReason::LoginElsewhere,
        _ => KickReason::ByAdmin,
    }
}

/// Work for the publisher task (listeners and fan-out calls must not block or await).
enum Publish {
    Stored(Vec<Arc<QueuedMessage>>),
    Event { app: Uuid, user: String, event: Box<BusEvent> },
}

/// A user's subscription on this node, shared by its local sessions.
struct Watch {
    sessions: usize,
    task: Option<JoinHandle<()>>,
}

pub struct NatsBus {
    client: async_nats::Client,
    hub: Arc<Hub>,
    /// `{cluster.name}.u`
    prefix: String,
    instance: Uuid,
    publish: mpsc::Sender<Publish>,
    watches: Mutex<HashMap<(Uuid, String), Watch>>,
    /// Events dropped because the publisher fell behind (sessions catch up by sequence).
    dropped: AtomicU64,
}

/// The subject of one user's events.
fn subject(prefix: &str, app: Uuid, user: &str) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(prefix.len() + 36 + user.len() * 2);
    let _ = write!(s, "{prefix}.{}.", app.simple());
    for b in user.bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl NatsBus {
    /// Connects to NATS (credentials, token and TLS as configured) and starts the publisher.
    /// The connection reconnects by itself; after each reconnect every local session compares
    /// its views with the store.
    pub async fn connect(config: &ClusterConfig, hub: Arc<Hub>, instance: Uuid) -> Result<Arc<NatsBus>, ServerError> {
        let name = config.name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(ServerError::Config(format!(
                "cluster.name {name:?}: use letters, digits, '-' or '_' (it prefixes NATS subjects)"
            )));
        }
        let mut options = match &config.nats_credentials {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| ServerError::Config(format!("cluster.nats_credentials {}: {e}", path.display())))?,
            None => async_nats::ConnectOptions::new(),
        };
        if !config.nats_token.is_empty() {
            options = options.token(config.nats_token.clone());
        }
        if let Some(ca) = &config.nats_ca {
            options = options.add_root_certificates(ca.clone());
        }
        let resync_hub = hub.clone();
        let was_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        options = options
            .name(format!("missive-{instance}"))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .subscription_capacity(16 * 1024)
            .event_callback(move |event| {
                let hub = resync_hub.clone();
                let was_down = was_down.clone();
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            was_down.store(true, Ordering::Relaxed);
                            tracing::warn!("NATS connection lost; sessions will catch up from the store");
                        }
                        async_nats::Event::Connected => {
                            if was_down.swap(false, Ordering::Relaxed) {
                                tracing::info!(
                                    "NATS connection back; every session compares its queues with the store"
                                );
                                hub.resync_all();
                            }
                        }
                        async_nats::Event::SlowConsumer(sid) => {
                            tracing::warn!(sid, "NATS dropped events for a slow subscription; resyncing sessions");
                            hub.resync_all();
                        }
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            });
        let urls: Vec<async_nats::ServerAddr> = config
            .nats_url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<_, _>>()
            .map_err(|e| ServerError::Config(format!("cluster.nats_url: {e}")))?;
        let client =
            options.connect(urls).await.map_err(|e| ServerError::Config(format!("connecting to NATS: {e}")))?;
        let (publish, rx) = mpsc::channel(PUBLISH_QUEUE);
        let bus = Arc::new(NatsBus {
            client,
            hub,
            prefix: format!("{name}.u"),
            instance,
            publish,
            watches: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(publisher(bus.clone(), rx));
        Ok(bus)
    }

    /// Whether the NATS connection is up now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Events dropped so far because publishing fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A session of `user` started on this node: make sure this node hears the user's events.
    /// Returns once the subscription is registered with NATS (or failed: the session still
    /// works, its views catching up from the store).
    pub async fn watch(self: &Arc<Self>, app: Uuid, user: &str) {
        let key = (app, user.to_owned());
        {
            let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(watch) = w.get_mut(&key) {
                watch.sessions += 1;
                return;
            }
            w.insert(key.clone(), Watch { sessions: 1, task: None });
        }
        let sub = match self.client.subscribe(subject(&self.prefix, app, user)).await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(%e, "subscribing to a user's events failed");
                return;
            }
        };
        // Make sure NATS has the subscription before the login is answered.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
        let task = tokio::spawn(forward(sub, self.hub.clone(), self.instance));
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        match w.get_mut(&key) {
            Some(watch) if watch.sessions > 0 && watch.task.is_none() => watch.task = Some(task),
            _ => task.abort(),
        }
    }

    /// A session of `user` on this node ended; the last one drops the subscription.
    pub fn unwatch(&self, app: Uuid, user: &str) {
        let key = (app, user.to_owned());
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = w.get_mut(&key) {
            watch.sessions = watch.sessions.saturating_sub(1);
            if watch.sessions == 0
                && let Some(task) = w.remove(&key).and_then(|w| w.task)
            {
                task.abort();
            }
        }
    }

    /// Waits for published events to reach the NATS server (a clean shutdown).
    pub async fn flush(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
    }

    fn enqueue(&self, p: Publish) {
        if self.publish.try_send(p).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "NATS publisher behind; events dropped (sessions catch up by sequence)"
                );
            }
        }
    }

    fn event(&self, kind: u32, app: Uuid) -> BusEvent {
        BusEvent { origin: self.instance.as_bytes().to_vec(), kind, app: app.as_bytes().to_vec(), ..Default::default() }
    }
}

fn message_event(origin: &[u8], kind: u32, m: &QueuedMessage) -> BusEvent {
    BusEvent {
        origin: origin.to_vec(),
        kind,
        app: m.app_id.as_bytes().to_vec(),
        owner: m.owner.clone(),
        queue: m.queue.clone(),
        seq: m.seq,
        id: m.id.0,
        sender: m.sender.clone(),
        created: m.created,
        payload: m.payload.clone(),
        ..Default::default()
    }
}

async fn publisher(bus: Arc<NatsBus>, mut rx: mpsc::Receiver<Publish>) {
    let origin = bus.instance.as_bytes().to_vec();
    while let Some(p) = rx.recv().await {
        let sends: Vec<(String, Bytes)> = match p {
            Publish::Stored(messages) => messages
                .iter()
                .map(|m| {
                    let ev = message_event(&origin, STORED, m);
                    (subject(&bus.prefix, m.app_id, &m.owner), Bytes::from(ev.encode_to_vec()))
                })
                .collect(),
            Publish::Event { app, user, event } => {
                vec![(subject(&bus.prefix, app, &user), Bytes::from(event.encode_to_vec()))]
            }
        };
        for (subject, payload) in sends {
            if let Err(e) = bus.client.publish(subject, payload).await {
                tracing::debug!(%e, "publishing to NATS failed; sessions catch up by sequence");
            }
        }
    }
}

/// Hands a subscribed user's events from other nodes to this node's hub.
async fn forward(mut sub: async_nats::Subscriber, hub: Arc<Hub>, me: Uuid) {
    while let Some(msg) = sub.next().await {
        let Ok(ev) = BusEvent::decode(msg.payload) else {
            tracing::warn!("undecodable cluster event ignored");
            continue;
        };
        if ev.origin.as_slice() == me.as_bytes() {
            continue;
        }
        let Ok(app) = Uuid::from_slice(&ev.app) else { continue };
        match ev.kind {
            STORED | ONLINE | WITHDRAWN => {
                let m = Arc::new(QueuedMessage {
                    id: MsgId(ev.id),
                    app_id: app,
                    owner: ev.owner,
                    queue: ev.queue,
                    sender: ev.sender,
                    created: ev.created,
                    payload: ev.payload,
                    seq: ev.seq,
                    delivered: false,
                });
                match ev.kind {
                    STORED => hub.committed(std::slice::from_ref(&m)),
                    ONLINE => {
                        hub.push_online(app, &m.owner, &m, ev.except.as_deref());
                    }
                    _ => hub.removed(&m),
                }
            }
            KICK => {
                let target = match ev.target {
                    1 => KickTarget::Resource(ev.target_resource),
                    2 => KickTarget::Session { node: ev.target_node as u16, session: ev.target_session },
                    _ => KickTarget::AllDevices,
                };
                hub.kick_local(app, &ev.owner, &target, reason_of(ev.reason));
            }
            _ => {}
        }
    }
}

impl CommitListener for NatsBus {
    fn committed(&self, messages: &[Arc<QueuedMessage>]) {
        self.hub.committed(messages);
        self.enqueue(Publish::Stored(messages.to_vec()));
    }

    fn removed(&self, m: &QueuedMessage) {
        self.hub.removed(m);
        let ev = message_event(self.instance.as_bytes(), WITHDRAWN, m);
        self.enqueue(Publish::Event { app: m.app_id, user: m.owner.clone(), event: Box::new(ev) });
    }
}

impl Fanout for NatsBus {
    fn online(&self, app: Uuid, user: &str, msg: &Arc<QueuedMessage>, except: Option<&str>) {
        self.hub.push_online(app, user, msg, except);
        let mut ev = message_event(self.instance.as_bytes(), ONLINE, msg);
        ev.except = except.map(str::to_owned);
        self.enqueue(Publish::Event { app, user: user.to_owned(), event: Box::new(ev) });
    }

    fn kick(&self, app: Uuid, user: &str, target: KickTarget, reason: KickReason) {
        self.hub.kick_local(app, user, &target, reason);
        let mut ev = self.event(KICK, app);
        ev.owner = user.to_owned();
        ev.reason = reason_code(reason);
        match target {
            KickTarget::AllDevices => {}
            KickTarget::Resource(r) => {
                ev.target = 1;
                ev.target_resource = r;
            }
            KickTarget::Session { node, session } => {
                ev.target = 2;
                ev.target_node = u32::from(node);
                ev.target_session = session;
            }
        }
        self.enqueue(Publish::Event { app, user: user.to_owned(), event: Box::new(ev) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_token_per_user_whatever_the_name() {
        let app = Uuid::nil();
        assert_eq!(subject("missive.u", app, "a.b"), format!("missive.u.{}.612e62", app.simple()));
        assert_ne!(subject("missive.u", app, "ab"), subject("other.u", app, "ab"));
    }

    #[test]
    fn kick_reasons_round_trip() {
        for r in [KickReason::ByAdmin, KickReason::PasswordChanged, KickReason::UserRemoved, KickReason::LoginElsewhere]
        {
            assert_eq!(reason_of(reason_code(r)), r);
        }
    }
}
