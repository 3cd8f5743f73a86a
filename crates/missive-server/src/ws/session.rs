//! One MSYNC connection: login, then the pull/ack loop, uploads and hub events.
//!
//! Each queue (conversation) the device touches has a `QueueView`: what the device should
//! get and has not acked, held in memory. Stored messages arrive as hub events right after
//! their commit, so once a read of the store has found nothing more (the view is *live*), a
//! pull is answered from memory. Acks are handed to the store's group commit without waiting
//! for their fsync: an ack lost in a crash only means a redelivery.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::{App, DeviceInfo};
use missive_core::store::AckReceipt;
use missive_msync::pb;
use missive_msync::pb::m_sync::Command;
use missive_msync::pb::status::ErrorCode;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::delivery::Outgoing;
use crate::hub::{KickReason, LiveMessage, SessionEvent, SessionRegistration};
use crate::state::AppState;

use super::login::{Login, frame, login, status};

/// How long a kicked client gets to acknowledge its kick notice before the socket is closed
/// anyway. The SDK acknowledges at once; this only bounds a client that does not.
const KICK_GRACE: Duration = Duration::from_secs(2);
/// The queue name under which kick notices are delivered; no user id can contain `#`.
const SYSTEM_QUEUE: &str = "#missive";
const DOMAIN: &str = "easemob.com";
/// Ack receipts kept before the oldest is awaited: bounds memory, and paces a client that
/// acks faster than the disk commits.
const MAX_ACKS_IN_FLIGHT: usize = 32;

pub async fn serve(state: AppState, mut socket: WebSocket) {
    let Some(login) = login(&state, &mut socket).await else {
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    let Login { app, user, device, registration } = login;
    let session_id = registration.id;
    let mut session = Session {
        app_key: app.app_key(),
        app,
        user: user.username.clone(),
        device,
        state: state.clone(),
        queues: HashMap::new(),
        held: 0,
        acks: VecDeque::new(),
        noticed: HashSet::new(),
        kicked: None,
    };
    let reason = session.run(&mut socket, registration).await;
    tracing::debug!(user = %session.user, resource = %session.device.resource, reason, "session ended");
    state.hub.unregister(session.app.id, &session.user, session_id);
    let _ = socket.send(Message::Close(None)).await;
}

/// A logged-in connection.
struct Session {
    app: Arc<App>,
    app_key: String,
    user: String,
    device: DeviceInfo,
    state: AppState,
    queues: HashMap<String, QueueView>,
    /// Messages held in all views; bounded by `sessions.max_online_pending`.
    held: usize,
    /// Acks handed to the store whose commit has not been seen yet.
    acks: VecDeque<AckReceipt>,
    /// Queues we sent a NOTICE for and the client has not pulled yet: one NOTICE is enough.
    noticed: HashSet<String>,
    /// The kick notice that went out (its meta id) and when the socket closes regardless.
    kicked: Option<(u64, Instant)>,
}

/// This device's view of one queue (conversation).
#[derive(Default)]
struct QueueView {
    /// What the device should get and has not acked, by id: stored messages (announced after
    /// their commit, or read from the store) and online-only ones, which exist nowhere else.
    pending: BTreeMap<u64, Held>,
    /// Nothing stored for this device in this queue lies beyond `pending` and what was sent,
    /// so pulls are answered from memory. Set by a read that came back short; cleared when
    /// memory is spilled.
    live: bool,
    /// Every stored message of this queue with an id up to this one was sent to the device or
    /// is in `pending`: reads start after it (the durable cursor may lag, acks being async).
    read_pos: u64,
    /// The highest position handed to the store as this device's ack.
    acked: u64,
}

struct Held {
    msg: Arc<LiveMessage>,
    stored: bool,
    sent: bool,
}

/// A write to the client failed: the connection is gone.
struct Gone;

type Events = mpsc::Receiver<SessionEvent>;

impl QueueView {
    /// Drops stored messages not yet sent beyond `read_pos` (reads return them again) and
    /// leaves live mode. Returns how many were dropped.
    fn spill(&mut self) -> usize {
        let before = self.pending.len();
        let read_pos = self.read_pos;
        self.pending.retain(|id, h| !(h.stored && !h.sent && *id > read_pos));
        self.live = false;
        before - self.pending.len()
    }
}

fn jid(app_key: &str, name: &str) -> pb::Jid {
    pb::Jid {
        app_key: Some(app_key.to_owned()),
        name: Some(name.to_owned()),
        domain: Some(DOMAIN.into()),
        client_resource: None,
    }
}

fn meta(
    app_key: &str,
    id: u64,
    sender: &str,
    owner: &str,
    created: i64,
    ns: pb::meta::NameSpace,
    payload: Bytes,
) -> pb::Meta {
    pb::Meta {
        id: Some(id),
        from: Some(jid(app_key, sender)),
        to: Some(jid(app_key, owner)),
        timestamp: Some(created.max(0) as u64),
        ns: Some(ns as i32),
        payload: Some(payload),
        ..Default::default()
    }
}

fn live_meta(app_key: &str, m: &LiveMessage) -> pb::Meta {
    meta(app_key, m.id.0, &m.sender, &m.owner, m.created, pb::meta::NameSpace::Chat, m.payload.clone())
}

/// What a client frame means for the session.
enum Flow {
    Continue,
    /// End the session, for this reason.
    End(&'static str),
}

impl Session {
    fn jid(&self, name: &str) -> pb::Jid {
        jid(&self.app_key, name)
    }

    async fn run(&mut self, socket: &mut WebSocket, reg: SessionRegistration) -> &'static str {
        let SessionRegistration { mut events, cancel, .. } = reg;
        let events = &mut events;
        let idle = Duration::from_secs(self.state.config.sessions.idle_timeout_secs.max(1));
        let shutdown = self.state.shutdown.clone();
        let mut deadline = Instant::now() + idle;
        loop {
            let kick_deadline = self.kicked.map(|(_, at)| at);
            tokio::select! {
                incoming = socket.recv() => {
                    let msg = match incoming {
                        Some(Ok(m)) => m,
                        Some(Err(_)) => return "read error",
                        None => return "closed by client",
                    };
                    deadline = Instant::now() + idle;
                    match msg {
                        Message::Binary(b) => match self.on_frame(socket, events, &b).await {
                            Ok(Flow::Continue) => {}
                            Ok(Flow::End(reason)) => return reason,
                            Err(Gone) => return "write error",
                        },
                        Message::Text(_) => return "text frame",
                        Message::Close(_) => return "closed by client",
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { return "hub dropped session" };
                    if self.on_event(socket, event, None, None).await.is_err() {
                        return "write error";
                    }
                }
                _ = cancel.cancelled() => return "disconnected by hub",
                _ = shutdown.cancelled() => return "server shutting down",
                _ = tokio::time::sleep_until(deadline) => return "idle timeout",
                _ = async { tokio::time::sleep_until(kick_deadline.unwrap_or(deadline)).await }, if kick_deadline.is_some() => {
                    return "kicked (notice not acknowledged)";
                }
            }
        }
    }

    /// Handles one client frame.
    async fn on_frame(&mut self, socket: &mut WebSocket, events: &mut Events, bytes: &[u8]) -> Result<Flow, Gone> {
        let Ok(env) = pb::MSync::decode(bytes) else {
            // Not MSYNC at all: this connection is broken or hostile; close it alone.
            tracing::debug!(user = %self.user, "undecodable frame; closing");
            return Ok(Flow::End("undecodable frame"));
        };
        let payload = env.payload.unwrap_or_default();
        match env.command.and_then(|c| Command::try_from(c).ok()) {
            Some(Command::Unread) => self.on_unread(socket).await.map(|_| Flow::Continue),
            Some(Command::Sync) => {
                let Ok(ul) = pb::CommSyncUl::decode(payload) else { return Ok(Flow::Continue) };
                if let Some(meta) = ul.meta {
                    self.on_upload(socket, meta).await.map(|_| Flow::Continue)
                } else if let Some(queue) = ul.queue {
                    let queue = queue.name.unwrap_or_default();
                    if queue == SYSTEM_QUEUE {
                        return self.on_system_pull(socket, ul.key).await;
                    }
                    self.on_pull(socket, events, queue, ul.key).await.map(|_| Flow::Continue)
                } else {
                    Ok(Flow::Continue)
                }
            }
            Some(Command::Logout) => Ok(Flow::End("logout")),
            _ => Ok(Flow::Continue),
        }
    }

    /// A pull of the system queue: the client acknowledging its kick notice (`key` = the
    /// notice's id) ends the session. It is answered first, as any drained queue is.
    async fn on_system_pull(&mut self, socket: &mut WebSocket, key: Option<u64>) -> Result<Flow, Gone> {
        let dl = pb::CommSyncDl {
            status: Some(status(ErrorCode::Ok, None)),
            queue: Some(self.jid(SYSTEM_QUEUE)),
            is_last: Some(true),
            timestamp: Some(now_ms()),
            ..Default::default()
        };
        self.send(socket, frame(Command::Sync, &dl)).await?;
        match (self.kicked, key) {
            (Some((id, _)), Some(key)) if key >= id => Ok(Flow::End("kicked")),
            _ => Ok(Flow::Continue),
        }
    }

    async fn send(&mut self, socket: &mut WebSocket, msg: Message) -> Result<(), Gone> {
        socket.send(msg).await.map_err(|_| Gone)
    }

    /// `UNREAD`: per-queue counts of what this device has not acked (also the heartbeat).
    async fn on_unread(&mut self, socket: &mut WebSocket) -> Result<(), Gone> {
        // The counts come from the durable cursors: let this device's acks land first.
        while let Some(receipt) = self.acks.pop_front() {
            let _ = receipt.await;
        }
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        match self.state.store.pending_counts(self.app.id, &self.user, &self.device.resource).await {
            Ok(list) => {
                for c in list {
                    counts.insert(c.queue, c.pending);
                }
            }
            Err(e) => tracing::warn!(%e, "unread counts failed"),
        }
        for (q, view) in &self.queues {
            let online_only = view.pending.values().filter(|h| !h.stored).count() as u32;
            if online_only > 0 {
                *counts.entry(q.clone()).or_default() += online_only;
            }
        }
        let unread = counts.into_iter().map(|(q, n)| pb::MetaQueue { queue: Some(self.jid(&q)), n: Some(n) }).collect();
        let dl = pb::CommUnreadDl { status: Some(status(ErrorCode::Ok, None)), unread, timestamp: Some(now_ms()) };
        self.send(socket, frame(Command::Unread, &dl)).await
    }

    /// A pull (`CommSyncUL{queue, key}`): ack everything up to `key`, then return the next
    /// batch with `is_last:false`, or an empty `is_last:true` — never metas together with
    /// `is_last:true`, which sends the SDK into a pull loop (PROTOCOL.md §3.4 rule 3).
    async fn on_pull(
        &mut self,
        socket: &mut WebSocket,
        events: &mut Events,
        queue: String,
        key: Option<u64>,
    ) -> Result<(), Gone> {
        self.noticed.remove(&queue);
        let limit = self.state.config.queue.pull_batch.max(1) as usize;
        if let Some(key) = key.filter(|k| *k > 0) {
            self.ack(socket, events, &queue, key).await?;
        }
        if !self.queues.get(&queue).is_some_and(|v| v.live) {
            self.read_store(socket, events, &queue, limit).await?;
        }
        let view = self.queues.entry(queue.clone()).or_default();
        let mut metas: Vec<pb::Meta> = Vec::new();
        for (id, held) in view.pending.iter_mut().take(limit) {
            held.sent = true;
            if held.stored {
                view.read_pos = view.read_pos.max(*id);
            }
            metas.push(live_meta(&self.app_key, &held.msg));
        }
        if metas.is_empty() && view.pending.is_empty() && view.read_pos == 0 {
            // Nothing was ever sent from this queue: the view holds no state the store does
            // not, so it is dropped — a client pulling endless made-up queue names must not
            // grow the session. Its next message reads the store once more.
            self.queues.remove(&queue);
        }
        let dl = match metas.last().and_then(|m| m.id) {
            Some(next_key) => pb::CommSyncDl {
                status: Some(status(ErrorCode::Ok, None)),
                queue: Some(self.jid(&queue)),
                metas,
                next_key: Some(next_key),
                is_last: Some(false),
                timestamp: Some(now_ms()),
                ..Default::default()
            },
            None => pb::CommSyncDl {
                status: Some(status(ErrorCode::Ok, None)),
                queue: Some(self.jid(&queue)),
                is_last: Some(true),
                timestamp: Some(now_ms()),
                ..Default::default()
            },
        };
        self.send(socket, frame(Command::Sync, &dl)).await
    }

    /// The device has everything of `queue` up to `key`: drop what it acked from memory and
    /// move its durable cursor — never past a message it has not been sent. Ids are assigned
    /// before a message is stored, so a lower id can commit after a higher one was sent; such
    /// a message is either still being committed (`UncommittedIds`) or, once committed, its
    /// announcement is already queued for this session (the store announces before the
    /// sender's registration ends), which is why the queue is drained in between.
    async fn ack(&mut self, socket: &mut WebSocket, events: &mut Events, queue: &str, key: u64) -> Result<(), Gone> {
        let safe = self.state.uncommitted.safe_ack(self.app.id, &self.user, queue, key);
        self.drain(socket, events, queue, None).await?;
        let view = self.queues.entry(queue.to_owned()).or_default();
        let before = view.pending.len();
        view.pending.retain(|id, held| !(held.sent && *id <= key));
        self.held -= before - view.pending.len();
        let first_unsent = view.pending.iter().find(|(_, h)| h.stored && !h.sent).map(|(id, _)| id - 1);
        let cursor = safe.min(first_unsent.unwrap_or(u64::MAX));
        if cursor <= view.acked {
            return Ok(());
        }
        view.acked = cursor;
        let receipt =
            self.state.store.submit_ack(self.app.id, &self.user, &self.device.resource, queue, MsgId(cursor)).await;
        match receipt {
            Ok(r) => self.acks.push_back(r),
            // The messages stay unacked and will be delivered again: at-least-once.
            Err(e) => tracing::warn!(%e, "ack failed"),
        }
        while self.acks.len() > MAX_ACKS_IN_FLIGHT {
            if let Some(oldest) = self.acks.pop_front()
                && let Err(e) = oldest.await
            {
                tracing::warn!(%e, "ack failed");
            }
        }
        Ok(())
    }

    /// Reads the next stored messages of `queue` into its view. Every commit the read could
    /// see has been announced by the time it returns, so the announcements queued now are
    /// matched against the rows: the ones the read returned are dropped, the others kept. A
    /// short read means nothing more is stored: the view goes live.
    async fn read_store(
        &mut self,
        socket: &mut WebSocket,
        events: &mut Events,
        queue: &str,
        limit: usize,
    ) -> Result<(), Gone> {
        let after = self.queues.get(queue).map_or(0, |v| v.read_pos);
        let rows = match self
            .state
            .store
            .pending(self.app.id, &self.user, &self.device.resource, queue, MsgId(after), limit as u32)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(%e, "pull failed");
                return Ok(());
            }
        };
        let read: HashSet<u64> = rows.iter().map(|m| m.id.0).collect();
        self.drain(socket, events, queue, Some(&read)).await?;
        let full = rows.len() >= limit;
        let view = self.queues.entry(queue.to_owned()).or_default();
        for m in rows {
            view.read_pos = view.read_pos.max(m.id.0);
            if let std::collections::btree_map::Entry::Vacant(slot) = view.pending.entry(m.id.0) {
                slot.insert(Held { msg: Arc::new(LiveMessage::from(m)), stored: true, sent: false });
                self.held += 1;
            }
        }
        view.live = !full;
        if full {
            self.held -= view.spill();
        }
        self.within_bounds()
    }

    /// Handles every event already queued for this session. `quiet` is the queue being
    /// pulled (no NOTICE for it: the pull answers it); `read` the ids a store read just
    /// returned (see `read_store`).
    async fn drain(
        &mut self,
        socket: &mut WebSocket,
        events: &mut Events,
        quiet: &str,
        read: Option<&HashSet<u64>>,
    ) -> Result<(), Gone> {
        while let Ok(event) = events.try_recv() {
            self.on_event(socket, event, Some(quiet), read).await?;
        }
        Ok(())
    }

    /// Holds `msg` in its queue's view unless it is there already.
    fn hold(&mut self, msg: Arc<LiveMessage>, stored: bool) {
        let view = self.queues.entry(msg.queue.clone()).or_default();
        if let std::collections::btree_map::Entry::Vacant(slot) = view.pending.entry(msg.id.0) {
            slot.insert(Held { msg, stored, sent: false });
            self.held += 1;
        }
    }

    /// Keeps held messages under `sessions.max_online_pending`: stored ones not yet sent are
    /// dropped first (they are read again later); a client that holds that many sent but
    /// unacked, or online-only, messages is not pulling and is disconnected.
    fn within_bounds(&mut self) -> Result<(), Gone> {
        let max = self.state.config.sessions.max_online_pending;
        if self.held <= max {
            return Ok(());
        }
        for view in self.queues.values_mut() {
            self.held -= view.spill();
        }
        if self.held > max {
            tracing::info!(user = %self.user, resource = %self.device.resource, "client not pulling; disconnecting");
            return Err(Gone);
        }
        Ok(())
    }

    /// Handles a hub event. `quiet` and `read` as for `drain`.
    async fn on_event(
        &mut self,
        socket: &mut WebSocket,
        event: SessionEvent,
        quiet: Option<&str>,
        read: Option<&HashSet<u64>>,
    ) -> Result<(), Gone> {
        if self.kicked.is_some() {
            // Leaving: nothing more is delivered here; it stays queued for the other devices
            // and the next login.
            return Ok(());
        }
        match event {
            SessionEvent::Stored(msg) => {
                let queue = msg.queue.clone();
                let view = self.queues.entry(queue.clone()).or_default();
                let id = msg.id.0;
                // Outside a read's matching (which concerns only the queue just read), a message
                // is held if the view is live, or if its id is below where reads continue (it
                // committed late); otherwise the next read returns it.
                let read = read.filter(|_| quiet == Some(queue.as_str()));
                let keep = match read {
                    Some(ids) => !ids.contains(&id),
                    None => view.live || id <= view.read_pos,
                };
                if keep {
                    self.hold(msg, true);
                    self.within_bounds()?;
                }
                self.notice(socket, &queue, quiet).await
            }
            SessionEvent::Transient(msg) => {
                let queue = msg.queue.clone();
                self.hold(msg, false);
                self.within_bounds()?;
                self.notice(socket, &queue, quiet).await
            }
            SessionEvent::Withdrawn { queue, id } => {
                if let Some(view) = self.queues.get_mut(&queue)
                    && view.pending.get(&id.0).is_some_and(|h| !h.sent)
                {
                    view.pending.remove(&id.0);
                    self.held -= 1;
                }
                Ok(())
            }
            SessionEvent::Kick(reason) => self.kick(socket, reason).await,
        }
    }

    async fn notice(&mut self, socket: &mut WebSocket, queue: &str, quiet: Option<&str>) -> Result<(), Gone> {
        if quiet == Some(queue) || !self.noticed.insert(queue.to_owned()) {
            return Ok(());
        }
        let n = pb::CommNotice { queue: Some(self.jid(queue)) };
        self.send(socket, frame(Command::Notice, &n)).await
    }

    /// Tells the SDK why it is being disconnected, then closes once the SDK acknowledges.
    ///
    /// The notice is a STATISTIC meta (PROTOCOL.md §3.4) pushed as an unsolicited pull result
    /// of the system queue, not announced by a NOTICE: the SDK handles every pull result the
    /// same way (`metas` + `next_key` + `is_last:false`), and a NOTICE would wait behind any
    /// queue the client is still pulling. On the meta the SDK sets `logOut`, fires `onError`
    /// with the operation's error (USER_REMOVED → 207, USER_LOGIN_ANOTHER_DEVICE → 206,
    /// USER_KICKED_BY_CHANGE_PASSWORD → 216, USER_KICKED_BY_OTHER_DEVICE → 217) and acks the
    /// key; when the socket then closes it fires `onDisconnected` with that error and, because
    /// `logOut` is set, does not reconnect. A close without the notice would make it reconnect.
    async fn kick(&mut self, socket: &mut WebSocket, reason: KickReason) -> Result<(), Gone> {
        use pb::statistics_body::Operation;
        if self.kicked.is_some() {
            return Ok(());
        }
        let op = match reason {
            KickReason::ByAdmin => Operation::UserKickedByOtherDevice,
            KickReason::PasswordChanged => Operation::UserKickedByChangePassword,
            KickReason::UserRemoved => Operation::UserRemoved,
            KickReason::LoginElsewhere => Operation::UserLoginAnotherDevice,
        };
        let body = pb::StatisticsBody { operation: Some(op as i32), ..Default::default() };
        let id = self.state.ids.next_id().0;
        let meta = meta(
            &self.app_key,
            id,
            &self.user,
            &self.user,
            now_ms() as i64,
            pb::meta::NameSpace::Statistic,
            Bytes::from(body.encode_to_vec()),
        );
        self.kicked = Some((id, Instant::now() + KICK_GRACE));
        let dl = pb::CommSyncDl {
            status: Some(status(ErrorCode::Ok, None)),
            queue: Some(self.jid(SYSTEM_QUEUE)),
            metas: vec![meta],
            next_key: Some(id),
            is_last: Some(false),
            timestamp: Some(now_ms()),
            ..Default::default()
        };
        self.send(socket, frame(Command::Sync, &dl)).await
    }

    /// An upload (`CommSyncUL{meta}`): a chat message, receipt or recall from this device.
    /// Always answered with an ack carrying `meta_id` — an error status if refused — because
    /// the SDK reconnects when an upload goes unanswered for 15 s.
    async fn on_upload(&mut self, socket: &mut WebSocket, meta: pb::Meta) -> Result<(), Gone> {
        let meta_id = meta.id.unwrap_or(0);
        if meta.ns != Some(pb::meta::NameSpace::Chat as i32) {
            // STATISTIC (client telemetry) and namespaces we do not serve need no ack.
            return Ok(());
        }
        let ack = match self.accept_upload(&meta).await {
            Ok((server_id, ts)) => pb::CommSyncDl {
                status: Some(status(ErrorCode::Ok, None)),
                meta_id: Some(meta_id),
                server_id: Some(server_id),
                timestamp: Some(ts),
                ..Default::default()
            },
            Err((code, reason)) => pb::CommSyncDl {
                status: Some(status(code, Some(&reason))),
                meta_id: Some(meta_id),
                timestamp: Some(now_ms()),
                ..Default::default()
            },
        };
        self.send(socket, frame(Command::Sync, &ack)).await
    }

    async fn accept_upload(&self, meta: &pb::Meta) -> Result<(u64, u64), (ErrorCode, String)> {
        let payload = meta.payload.clone().unwrap_or_default();
        if payload.len() > self.state.config.limits.send_body_bytes {
            return Err((ErrorCode::PermissionDenied, "Sorry, data is too large".into()));
        }
        let mut body = pb::MessageBody::decode(payload)
            .map_err(|_| (ErrorCode::WrongParameter, "Sorry, message is malformed".into()))?;
        use pb::message_body::Type;
        let kind = body.r#type.and_then(|t| Type::try_from(t).ok()).unwrap_or(Type::Chat);
        match kind {
            Type::Chat | Type::ReadAck | Type::DeliverAck | Type::Recall | Type::Edit | Type::ChannelAck => {}
            Type::Groupchat | Type::Chatroom | Type::Normal => {
                return Err((ErrorCode::Fail, "Sorry, groups and chat rooms are not supported".into()));
            }
        }
        let to = meta
            .to
            .as_ref()
            .and_then(|j| j.name.clone())
            .or_else(|| body.to.as_ref().and_then(|j| j.name.clone()))
            .unwrap_or_default()
            .to_ascii_lowercase();
        if to.is_empty() {
            return Err((ErrorCode::WrongParameter, "Sorry, message has no recipient".into()));
        }
        if kind == Type::Recall
            && let Some(target) = body.ack_message_id
        {
            self.withdraw(target, &to).await;
        }
        // The sender is whoever logged in, whatever the body claims.
        body.from = None;
        let route_online = meta.routetype == Some(pb::meta::RouteType::RouteOnline as i32);
        let out = Outgoing {
            app: self.app.clone(),
            from: self.user.clone(),
            to: vec![to],
            body,
            route_online,
            sync_device: kind == Type::Chat,
            origin_resource: Some(self.device.resource.clone()),
            // A receipt for a message from someone who is not a user (REST sends without
            // `from` come from "admin") is accepted and dropped: the SDK sends delivery
            // receipts on its own and never handles their rejection.
            require_known_recipients: !matches!(kind, Type::ReadAck | Type::DeliverAck | Type::ChannelAck),
        };
        match self.state.send(out).await {
            Ok(Ok(sent)) => Ok((sent.ids[0].1.0, sent.timestamp as u64)),
            Ok(Err(unknown)) => Err((ErrorCode::Fail, format!("Sorry, username {} doesn't exist!", unknown.0))),
            Err(e) => Err((ErrorCode::Fail, format!("Sorry, {}", e.description))),
        }
    }

    /// A recall from the SDK: the recalled message is removed from the peer's queue if it
    /// is still there and was sent by this user.
    async fn withdraw(&self, target: u64, peer: &str) {
        let store = &self.state.store;
        if let Ok(Some(m)) = store.message(self.app.id, MsgId(target)).await
            && m.owner == peer
            && m.sender == self.user
        {
            let _ = store.recall(self.app.id, MsgId(target)).await;
        }
    }
}
