//! One MSYNC connection after login: the pull/ack loop, uploads and hub events.
//!
//! What the device should get is decided by `crate::delivery::view::SessionQueues`, a state
//! machine free of I/O: this module feeds it hub events and client frames, performs the
//! store reads and acks it asks for, and writes the frames. Acks are handed to the store's
//! group commit without waiting for their fsync: an ack lost in a crash only means a
//! redelivery.
//!
//! An idle session is mostly its task, and a task is as large as the largest state its
//! future can be in: awaited inline, the login, the send path of an upload and the store
//! reads made every idle session 6.6 KiB. They are boxed (`Box::pin`) where they are
//! awaited, so each costs an allocation while it runs and nothing while the session waits
//! (2.3 KiB).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::{App, DeviceInfo, QueuedMessage};
use missive_core::store::AckReceipt;
use missive_msync::pb;
use missive_msync::pb::m_sync::Command;
use missive_msync::pb::status::ErrorCode;
use missive_notify::presend::PreSendVerdict;
use prost::Message as _;
use tokio::time::Instant;

use crate::delivery::view::{Batch, Pull, PullStep, SessionQueues};
use crate::delivery::{Origin, Outgoing, Route, SendError, SenderCopies, UnknownRecipients};
use crate::fanout::KickReason;
use crate::hub::{SessionEvent, SessionRegistration};
use crate::state::AppState;
use crate::telemetry::metrics::SendVia;

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
    let Some(login) = Box::pin(login(&state, &mut socket)).await else {
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    let Login { app, user, device, registration } = login;
    let session_id = registration.id;
    let sessions = &state.config.sessions;
    let mut session = Session {
        app_key: app.app_key(),
        app,
        user: user.username.clone(),
        device,
        queues: SessionQueues::new(sessions.max_online_pending, state.config.queue.pull_batch as usize),
        state: state.clone(),
        acks: VecDeque::new(),
        kicked: None,
    };
    let reason = session.run(&mut socket, registration).await;
    // Online-only messages still held (sent and unacked, or never sent) die with the session.
    let held: u64 = session.queues.online_counts().map(|(_, n)| u64::from(n)).sum();
    if held > 0 {
        state.telemetry.metrics.online_only_dropped(held);
    }
    tracing::debug!(user = %session.user, resource = %session.device.resource, reason, "session ended");
    Box::pin(state.close_session(session.app.id, &session.user, &session.device.resource, session_id)).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// The HTTP status a REST send refused for the same reason would get: the `status` label of
/// `missive_sends_total` means the same for both APIs.
fn http_equivalent(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Ok => 200,
        ErrorCode::PermissionDenied | ErrorCode::PermissionDeniedExternal => 403,
        ErrorCode::Fail | ErrorCode::WrongParameter => 400,
        _ => 500,
    }
}

/// A logged-in connection.
struct Session {
    app: Arc<App>,
    app_key: String,
    user: String,
    device: DeviceInfo,
    state: AppState,
    /// What the device should get, per queue (the delivery rule lives there).
    queues: SessionQueues,
    /// Acks handed to the store whose commit has not been seen yet.
    acks: VecDeque<AckReceipt>,
    /// The kick notice that went out (its meta id) and when the socket closes regardless.
    kicked: Option<(u64, Instant)>,
}

/// A write to the client failed, or the client must be dropped: the connection is over.
struct Gone;

/// The app server's pre-send callback refused a message.
struct Blocked {
    /// The id the message would have had (a hidden block answers with it).
    given: MsgId,
    /// What the sender's SDK shows (`MESSAGE_EXTERNAL_LOGIC_BLOCKED`).
    reason: String,
    report_error: bool,
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

/// A queued message as the device gets it: a chat message, or — in a contact event's queue
/// (`crate::http::contacts::ROSTER_QUEUE`) — a ROSTER meta.
fn message_meta(app_key: &str, m: &QueuedMessage) -> pb::Meta {
    let ns = if crate::http::contacts::is_roster_queue(&m.queue) {
        pb::meta::NameSpace::Roster
    } else {
        pb::meta::NameSpace::Chat
    };
    meta(app_key, m.id.0, &m.sender, &m.owner, m.created, ns, m.payload.clone())
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
        let idle = Duration::from_secs(self.state.config.sessions.idle_timeout_secs.max(1));
        let shutdown = self.state.shutdown.clone();
        // Created once, not per frame: each new timer or cancellation future registers (and,
        // dropped, deregisters) under a lock, twice per message at full load. The idle timer
        // is moved only when it fires early, from the time of the last frame.
        let (cancelled, stopping) = (cancel.cancelled(), shutdown.cancelled());
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(cancelled, stopping, idle_timer);
        let mut last_frame = Instant::now();
        loop {
            let kick_deadline = self.kicked.map(|(_, at)| at);
            tokio::select! {
                incoming = socket.recv() => {
                    let msg = match incoming {
                        Some(Ok(m)) => m,
                        Some(Err(_)) => return "read error",
                        None => return "closed by client",
                    };
                    last_frame = Instant::now();
                    match msg {
                        Message::Binary(b) => match Box::pin(self.on_frame(socket, &b)).await {
                            Ok(Flow::Continue) => {}
                            Ok(Flow::End(reason)) => return reason,
                            Err(Gone) => return "write error or client not pulling",
                        },
                        Message::Text(_) => return "text frame",
                        Message::Close(_) => return "closed by client",
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { return "hub dropped session" };
                    if Box::pin(self.on_event(socket, event)).await.is_err() {
                        return "write error or client not pulling";
                    }
                }
                _ = &mut cancelled => return "disconnected by hub",
                _ = &mut stopping => return "server shutting down",
                _ = &mut idle_timer => {
                    let due = last_frame + idle;
                    if Instant::now() >= due {
                        return "idle timeout";
                    }
                    idle_timer.as_mut().reset(due);
                }
                _ = async { tokio::time::sleep_until(kick_deadline.unwrap_or(last_frame)).await }, if kick_deadline.is_some() => {
                    return "kicked (notice not acknowledged)";
                }
            }
        }
    }

    /// Handles one client frame.
    async fn on_frame(&mut self, socket: &mut WebSocket, bytes: &[u8]) -> Result<Flow, Gone> {
        let Ok(env) = pb::MSync::decode(bytes) else {
            // Not MSYNC at all: this connection is broken or hostile; close it alone.
            tracing::debug!(user = %self.user, "undecodable frame; closing");
            return Ok(Flow::End("undecodable frame"));
        };
        let payload = env.payload.unwrap_or_default();
        match env.command.and_then(|c| Command::try_from(c).ok()) {
            Some(Command::Unread) => Box::pin(self.on_unread(socket)).await.map(|_| Flow::Continue),
            Some(Command::Sync) => {
                let Ok(ul) = pb::CommSyncUl::decode(payload) else { return Ok(Flow::Continue) };
                if let Some(meta) = ul.meta {
                    Box::pin(self.on_upload(socket, meta)).await.map(|_| Flow::Continue)
                } else if let Some(queue) = ul.queue {
                    let queue = queue.name.unwrap_or_default();
                    if queue == SYSTEM_QUEUE {
                        return Box::pin(self.on_system_pull(socket, ul.key)).await;
                    }
                    self.on_pull(socket, queue, ul.key).await.map(|_| Flow::Continue)
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

    /// Announcements may have been lost (the bus between nodes was down): the store's last
    /// sequence of each queue with something pending tells which views are behind; those go
    /// stale and get a NOTICE, so the device pulls and the pull reads the store.
    async fn resync(&mut self, socket: &mut WebSocket) -> Result<(), Gone> {
        let counts = match self.state.store.pending_counts(self.app.id, &self.user, &self.device.resource).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%e, "resync read failed; the next heartbeat tries again");
                return Ok(());
            }
        };
        for c in counts {
            if self.queues.head(&c.queue, c.last_seq) {
                let n = pb::CommNotice { queue: Some(self.jid(&c.queue)) };
                self.send(socket, frame(Command::Notice, &n)).await?;
            }
        }
        Ok(())
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
                    // The heartbeat doubles as the periodic check that no announcement was
                    // missed: a view behind the store's last sequence reads again on its
                    // next pull (the SDK pulls every queue the answer lists).
                    self.queues.head(&c.queue, c.last_seq);
                    counts.insert(c.queue, c.pending);
                }
            }
            Err(e) => tracing::warn!(%e, "unread counts failed"),
        }
        for (q, n) in self.queues.online_counts() {
            *counts.entry(q.to_owned()).or_default() += n;
        }
        let unread = counts.into_iter().map(|(q, n)| pb::MetaQueue { queue: Some(self.jid(&q)), n: Some(n) }).collect();
        let dl = pb::CommUnreadDl { status: Some(status(ErrorCode::Ok, None)), unread, timestamp: Some(now_ms()) };
        self.send(socket, frame(Command::Unread, &dl)).await
    }

    /// A pull (`CommSyncUL{queue, key}`): ack everything up to `key`, then return the next
    /// batch with `is_last:false`, or an empty `is_last:true` — never metas together with
    /// `is_last:true`, which sends the SDK into a pull loop (PROTOCOL.md §3.4 rule 3).
    async fn on_pull(&mut self, socket: &mut WebSocket, queue: String, key: Option<u64>) -> Result<(), Gone> {
        let Pull { ack, step } = self.queues.pull(&queue, key);
        if let Some(seq) = ack {
            self.ack(&queue, seq).await;
        }
        let batch = match step {
            PullStep::Answer(batch) => batch,
            PullStep::Read { after, limit } => {
                let read = self
                    .state
                    .store
                    .pending(self.app.id, &self.user, &self.device.resource, &queue, after, limit)
                    .await;
                match read {
                    Ok(page) => self.queues.read_done(&queue, page).map_err(|_| {
                        tracing::info!(user = %self.user, resource = %self.device.resource, "client not pulling; disconnecting");
                        Gone
                    })?,
                    Err(e) => {
                        tracing::warn!(%e, "pull failed");
                        self.queues.read_failed(&queue)
                    }
                }
            }
        };
        let metrics = &self.state.telemetry.metrics;
        metrics.pulled();
        metrics.delivered(batch.messages.len() as u64);
        let dl = self.sync_dl(&queue, batch);
        self.send(socket, frame(Command::Sync, &dl)).await
    }

    /// A pull's answer frame.
    fn sync_dl(&self, queue: &str, batch: Batch) -> pb::CommSyncDl {
        let Batch { messages, next_key } = batch;
        pb::CommSyncDl {
            status: Some(status(ErrorCode::Ok, None)),
            queue: Some(self.jid(queue)),
            metas: messages.iter().map(|m| message_meta(&self.app_key, m)).collect(),
            next_key,
            is_last: Some(next_key.is_none()),
            timestamp: Some(now_ms()),
            ..Default::default()
        }
    }

    /// Hands the device's new cursor to the store without waiting for its fsync; at most
    /// `MAX_ACKS_IN_FLIGHT` receipts are kept before the oldest is awaited.
    async fn ack(&mut self, queue: &str, seq: u64) {
        self.state.telemetry.metrics.acked();
        match self.state.store.submit_ack(self.app.id, &self.user, &self.device.resource, queue, seq).await {
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
    }

    /// Handles a hub event.
    async fn on_event(&mut self, socket: &mut WebSocket, event: SessionEvent) -> Result<(), Gone> {
        if self.kicked.is_some() {
            // Leaving: nothing more is delivered here; it stays queued for the other devices
            // and the next login.
            return Ok(());
        }
        let notice = match event {
            SessionEvent::Stored(msg) => {
                let queue = msg.queue.clone();
                self.queues.stored(msg).map(|n| n.then_some(queue))
            }
            SessionEvent::Online(msg) => {
                let queue = msg.queue.clone();
                self.queues.online(msg).map(|n| n.then_some(queue))
            }
            SessionEvent::Withdrawn(w) => {
                self.queues.withdrawn(&w.queue, w.seq);
                Ok(None)
            }
            SessionEvent::Kick(reason) => return Box::pin(self.kick(socket, reason)).await,
            SessionEvent::Resync => return Box::pin(self.resync(socket)).await,
        };
        match notice {
            Ok(Some(queue)) => {
                let n = pb::CommNotice { queue: Some(self.jid(&queue)) };
                self.send(socket, frame(Command::Notice, &n)).await
            }
            Ok(None) => Ok(()),
            Err(_) => {
                tracing::info!(user = %self.user, resource = %self.device.resource, "client not pulling; disconnecting");
                Err(Gone)
            }
        }
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
        let id = self.state.delivery.next_id().0;
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
        let accepted = self.accept_upload(&meta).await;
        let status_code = match &accepted {
            Ok(_) => 200,
            Err((code, _)) => http_equivalent(*code),
        };
        self.state.telemetry.metrics.send(SendVia::Msync, status_code);
        let ack = match accepted {
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
        // SDK 5 names the messages a read receipt covers in `ack_message_ids` only; SDK 4
        // (and agora-chat) read `ack_message_id`, so the first of them fills it.
        if kind == Type::ReadAck && body.ack_message_id.is_none() {
            body.ack_message_id = body.ack_message_ids.first().copied();
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
        if kind == Type::ChannelAck {
            return self.read_up_to(&body, &to).await;
        }
        // A user who blocked the sender gets none of their messages; the SDKs read the reason
        // "blocked" (SDK 4: PERMISSION_DENIED, SDK 5: MESSAGE_BLOCKED_BY_RECIPIENT). Receipts
        // and recalls of earlier messages still pass.
        if kind == Type::Chat {
            match self.state.store.is_blocked(self.app.id, &to, &self.user).await {
                Ok(false) => {}
                Ok(true) => return Err((ErrorCode::Fail, "blocked".into())),
                Err(e) => return Err(crate::delivery::SendError::Store(e).msync_status()),
            }
        }
        if kind == Type::Recall
            && let Some(target) = body.ack_message_id
        {
            self.withdraw(target, &to).await;
        }
        // The sender is whoever logged in, whatever the body claims.
        body.from = None;
        let mut id = None;
        if kind == Type::Chat && self.state.notifier.has_presend(self.app.id) {
            match self.presend(&mut body, &to).await {
                Ok(given) => id = Some(given),
                Err(Blocked { given, report_error: false, .. }) => {
                    // The rule hides the block: the sender sees a normal send of a message
                    // that goes nowhere.
                    return Ok((given.0, now_ms()));
                }
                Err(Blocked { reason, .. }) => return Err((ErrorCode::PermissionDeniedExternal, reason)),
            }
        }
        let route_online = meta.routetype == Some(pb::meta::RouteType::RouteOnline as i32);
        let out = Outgoing {
            app: self.app.clone(),
            from: self.user.clone(),
            to: vec![to],
            body,
            route: if route_online { Route::OnlineOnly } else { Route::Stored },
            copies: if kind == Type::Chat {
                SenderCopies::Online { except: Some(self.device.resource.clone()) }
            } else {
                SenderCopies::None
            },
            // A receipt for a message from someone who is not a user (REST sends without
            // `from` come from "admin") is accepted and dropped: the SDK sends delivery
            // receipts on its own and never handles their rejection.
            unknown: if matches!(kind, Type::ReadAck | Type::DeliverAck | Type::ChannelAck) {
                UnknownRecipients::Skip
            } else {
                UnknownRecipients::Refuse
            },
            origin: Origin::Sdk,
            id,
            roam_ignore: Vec::new(),
        };
        match self.state.delivery.send(out, None).await {
            Ok(sent) => Ok((sent.ids[0].1.0, sent.timestamp as u64)),
            Err(e) => Err(e.msync_status()),
        }
    }

    /// A channel ack ("I have read this conversation"): moves this user's read position in
    /// the conversation with `peer`, which every device of the user sees in its conversation
    /// list's unread counts. It is the user's own state, so it is not forwarded to the peer.
    async fn read_up_to(&self, body: &pb::MessageBody, peer: &str) -> Result<(u64, u64), (ErrorCode, String)> {
        let id = self.state.delivery.next_id();
        let position = missive_api::conversations::read_position(body, id);
        match self.state.store.mark_read(self.app.id, &self.user, peer, position).await {
            Ok(()) => Ok((id.0, now_ms())),
            Err(e) => Err(SendError::from(e).msync_status()),
        }
    }

    /// The app's pre-send check (easemob-api.md §6.2) of a chat message to `to`: the id the
    /// message will have, with `body` rewritten if the app server replaced its text or ext.
    async fn presend(&self, body: &mut pb::MessageBody, to: &str) -> Result<MsgId, Blocked> {
        let given = self.state.delivery.next_id();
        let mut probe = body.clone();
        probe.from = Some(pb::Jid { name: Some(self.user.clone()), ..Default::default() });
        probe.to = Some(pb::Jid { name: Some(to.to_owned()), ..Default::default() });
        match self.state.notifier.presend(&self.app, given, now_ms() as i64, &probe).await {
            None | Some(PreSendVerdict::Pass { replacement: None }) => Ok(given),
            Some(PreSendVerdict::Pass { replacement: Some(r) }) => {
                if let (Some(text), Some(content)) = (r.text, body.contents.first_mut()) {
                    content.text = Some(text);
                }
                if let Some(ext) = r.ext {
                    body.ext = missive_msync::json_to_key_values(&ext);
                }
                Ok(given)
            }
            Some(PreSendVerdict::Block { reason, report_error }) => Err(Blocked { given, reason, report_error }),
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
