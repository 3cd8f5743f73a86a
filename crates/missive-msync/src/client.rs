//! A Rust MSYNC client that behaves on the wire like the Easemob Web SDK (PROTOCOL.md §2–§3),
//! for integration tests and load generation against our server.
//!
//! [`MsyncClient::connect`] logs in (PROVISION) on the caller's task, then hands the socket to
//! one background task that owns it for the rest of the session: it answers NOTICE and
//! CommUnreadDL by pulling queues and acking them by key, sends the UNREAD heartbeat, matches
//! upload acks to waiting [`MsyncClient::send`] calls, and turns everything it receives into
//! [`ClientEvent`]s. The handle talks to the task over a bounded channel, so every method takes
//! `&self` and many sends can be in flight at once.
//!
//! The client is deliberately stricter than the SDK where the SDK would break: a server frame
//! that would make the SDK throw or loop (a pull result without `status` or `queue`, `is_last`
//! together with metas, a PROVISION reply without `status` or `resource`) ends the session with
//! [`ClientEvent::Closed`] or fails the call with [`ClientError::Protocol`], so tests catch the
//! server bug instead of the SDK's users. Nothing a server sends can make it panic.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use crate::ext::json_to_key_values;
use crate::frame::{USER_DOMAIN, decode_frame, decode_payload, jid};
use crate::pb;
use crate::pb::m_sync::Command;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Capacity of the event channel. Bounded so a consumer that stops reading pushes back on the
/// socket (the task stops reading frames, like a slow SDK client) instead of buffering without
/// limit; 65 536 is far more than any test or load-generator burst needs before it is drained.
/// A consumer that never calls [`MsyncClient::next_event`] eventually stalls the session,
/// including its upload acks.
pub const EVENT_CAPACITY: usize = 65_536;

/// Requests from the handle to the socket task. Small, because each caller waits for its own
/// answer anyway.
const REQUEST_CAPACITY: usize = 1024;

/// `Provision.action_version` of easemob-websdk 4.21.1; servers may key behaviour on it.
const ACTION_VERSION: &str = "v5.2";
/// `Provision.device_name`: identifies this client in server logs, where the SDK says "webim".
const DEVICE_NAME: &str = "missive-rs";
/// `Provision.version`: the SDK sends its own version; we send ours.
const CLIENT_VERSION: &str = concat!("missive-rs-", env!("CARGO_PKG_VERSION"));
/// `Logout.reason` the SDK sends from `conn.close()`.
const LOGOUT_REASON: &str = "inner:logout";
/// Total time [`MsyncClient::close`] spends on LOGOUT and the closing handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// 2010-02-01T00:00:00Z in ms: the epoch of the SDK's client-local message ids.
const LOCAL_ID_EPOCH_MS: u64 = 1_264_982_400_000;

/// What a user presents to log in; the same inputs as the SDK's `conn.open()` with a token.
#[derive(Clone)]
pub struct Login {
    /// WebSocket URL, used verbatim, e.g. `ws://127.0.0.1:8080/websocket`.
    pub url: String,
    /// `org#app`; the whole string goes into every JID.
    pub app_key: String,
    /// User name (the JID `name`).
    pub user: String,
    /// Access token, without the `$t$` prefix the wire adds.
    pub token: String,
    /// Resource to propose; the server may assign another. `None` generates
    /// `missive_rs_<millis>_<random>`, unique per login like the SDK's without localStorage.
    pub resource: Option<String>,
}

impl fmt::Debug for Login {
    /// Redacts the token: logins end up in test failure output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("url", &self.url)
            .field("app_key", &self.app_key)
            .field("user", &self.user)
            .field("token", &"<redacted>")
            .field("resource", &self.resource)
            .finish()
    }
}

/// Knobs of a session. The defaults are the SDK's.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Idle time after which an UNREAD heartbeat is sent; checked at this period, so as in the
    /// SDK the effective period is one to two times this. SDK default `heartBeatWait`: 30 s.
    pub heartbeat: Duration,
    /// Ack each pulled batch with its `next_key` (the SDK always does). Turn off to leave
    /// messages unacked on the server and test redelivery: the client then pulls a queue once
    /// per NOTICE or UNREAD listing and moves on.
    pub auto_ack: bool,
    /// Bound on opening the socket, and separately on the PROVISION reply (SDK: 10 s each).
    pub login_timeout: Duration,
    /// Bound on an upload ack and on other request/reply calls (SDK: 15 s for a send).
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
            auto_ack: true,
            login_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// The server's acceptance of an upload (`CommSyncDL` with `meta_id` set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendAck {
    /// The client-local id the upload carried (`Meta.id` → `CommSyncDL.meta_id`).
    pub local_id: u64,
    /// The server message id, later seen as `Meta.id` by the recipient and used in receipts.
    pub server_id: u64,
    /// Server time of the message in ms since the epoch.
    pub timestamp: u64,
}

/// One `Meta` received from a queue pull.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// Server message id (`Meta.id`).
    pub id: u64,
    /// Sender name: `MessageBody.from.name` as the SDK reads it, else `Meta.from.name`.
    pub from: String,
    /// Recipient name: `MessageBody.to.name`, else `Meta.to.name`.
    pub to: String,
    /// `Meta.timestamp`, ms since the epoch.
    pub timestamp: u64,
    /// Name of the queue it was pulled from (for one-to-one chat, the peer).
    pub queue: String,
    /// `Meta.ns` as a raw number (see [`pb::meta::NameSpace`]).
    pub ns: i32,
    /// The decoded payload when `ns` is CHAT and it decodes; `None` otherwise.
    pub body: Option<pb::MessageBody>,
    /// The Meta as received, for assertions on fields not lifted above.
    pub raw: pb::Meta,
}

/// What the session reports, in arrival order.
#[derive(Clone, Debug, PartialEq)]
// Messages are the common case; boxing them would add an allocation per message to spare
// the rare small variants some bytes of channel slot.
#[allow(clippy::large_enum_variant)]
pub enum ClientEvent {
    /// A pulled Meta (chat message, receipt, or any other namespace).
    Message(Received),
    /// A STATISTIC Meta whose operation is not INFORMATION: how the server kicks a session
    /// (`USER_LOGIN_ANOTHER_DEVICE`, `USER_REMOVED`, …; see [`pb::statistics_body::Operation`]).
    Kicked {
        /// `StatisticsBody.operation` as a raw number.
        operation: i32,
        /// `StatisticsBody.reason`, if given.
        reason: Option<String>,
    },
    /// The session is over; no events follow.
    Closed {
        /// Why: the server's close, a socket error, or the protocol violation seen.
        reason: String,
    },
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The WebSocket could not be opened (bad URL, refused, HTTP error on upgrade).
    #[error("could not open the WebSocket")]
    Connect(#[source] Box<tungstenite::Error>),
    /// The socket failed during login.
    #[error("WebSocket error during login")]
    Socket(#[source] Box<tungstenite::Error>),
    /// A bounded wait ran out; the text names what was awaited.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The PROVISION reply carried a non-OK status (PROTOCOL.md §3.2).
    #[error("login refused: code {code}: {reason}")]
    Login {
        /// `Status.error_code` as a raw number (20 = RESOURCE_CHANGED is not in the enum).
        code: i32,
        /// `Status.reason`, empty if absent.
        reason: String,
    },
    /// The upload ack carried a non-OK status (PROTOCOL.md §3.5).
    #[error("message rejected: code {code}: {reason}")]
    Rejected {
        /// `Status.error_code` as a raw number.
        code: i32,
        /// `Status.reason`, empty if absent.
        reason: String,
    },
    /// The server sent something the SDK could not have handled.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The session has ended (see the [`ClientEvent::Closed`] event for why).
    #[error("the session is closed")]
    Closed,
}

/// A logged-in MSYNC session.
pub struct MsyncClient {
    requests: mpsc::Sender<Request>,
    events: mpsc::Receiver<ClientEvent>,
    task: JoinHandle<()>,
    /// Shared with the task: ids must be unique across everything this session uploads.
    ids: Arc<LocalIds>,
    app_key: String,
    user: String,
    /// Kept for the LOGOUT frame, which repeats the credentials like the SDK's.
    token: String,
    /// The resource the server confirmed or assigned.
    resource: String,
    session_id: String,
    request_timeout: Duration,
}

impl fmt::Debug for MsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsyncClient")
            .field("app_key", &self.app_key)
            .field("user", &self.user)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl Drop for MsyncClient {
    /// A dropped handle ends the session at once rather than leaving a task holding a socket.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MsyncClient {
    /// Opens the socket, logs in with PROVISION exactly like the SDK, sends the first UNREAD,
    /// and starts the session task.
    pub async fn connect(login: Login, options: ClientOptions) -> Result<Self, ClientError> {
        // Small buffers and no Nagle, as a browser's socket: tungstenite's default 128 KiB
        // read buffer is zeroed on the first read, and a load generator holding 18,000 of
        // them spent more time faulting in their pages than the server spent on the logins.
        let config = WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0);
        let connect = connect_async_with_config(login.url.as_str(), Some(config), true);
        let (mut ws, _response) = timeout(options.login_timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout("the WebSocket handshake"))?
            .map_err(|e| ClientError::Connect(Box::new(e)))?;

        let now = now_ms();
        let ids = Arc::new(LocalIds::starting_at(now));
        let device = device_suffix(now);
        let proposed = login.resource.clone().unwrap_or_else(|| format!("missive_rs_{device}"));
        let session_id = format!("{now}:");
        let provision = provision_frame(&login, &proposed, &format!("rs_{device}"), &session_id, ids.next());
        ws.send(WsMessage::Binary(provision.into())).await.map_err(|e| ClientError::Socket(Box::new(e)))?;
        let reply = timeout(options.login_timeout, provision_reply(&mut ws))
            .await
            .map_err(|_| ClientError::Timeout("the PROVISION reply"))??;
        let resource = check_provision_reply(reply)?;

        // Like the SDK: the first UNREAD right after login discovers offline queues.
        ws.send(WsMessage::Binary(client_frame(Command::Unread, pb::CommUnreadUl {}, ids.next()).into()))
            .await
            .map_err(|e| ClientError::Socket(Box::new(e)))?;

        let (requests, request_rx) = mpsc::channel(REQUEST_CAPACITY);
        let (event_tx, events) = mpsc::channel(EVENT_CAPACITY);
        let session = Session {
            ws,
            requests: request_rx,
            events: event_tx,
            ids: Arc::clone(&ids),
            user: login.user.clone(),
            resource: resource.clone(),
            auto_ack: options.auto_ack,
            heartbeat: options.heartbeat,
            last_rx: Instant::now(),
            acks: HashMap::new(),
            unread_waiters: Vec::new(),
            queues: VecDeque::new(),
            pulling: false,
            last_keys: HashMap::new(),
            close_reason: None,
        };
        let task = tokio::spawn(session.run());
        Ok(Self {
            requests,
            events,
            task,
            ids,
            app_key: login.app_key,
            user: login.user,
            token: login.token,
            resource,
            session_id,
            request_timeout: options.request_timeout,
        })
    }

    /// The resource the server confirmed or assigned at login.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The logged-in user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The `org#app` this session belongs to.
    pub fn app_key(&self) -> &str {
        &self.app_key
    }

    /// The next event; `None` once [`ClientEvent::Closed`] has been returned. It waits as long
    /// as it takes: wrap it in `tokio::time::timeout`.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// Sends a chat message body to user `to` (or `user/resource` to address one device) the
    /// way the SDK's `conn.send` does, and waits for the server's ack.
    pub async fn send(&self, to: &str, body: pb::MessageBody) -> Result<SendAck, ClientError> {
        let (name, resource) = match to.split_once('/') {
            Some((name, resource)) => (name, Some(resource.to_owned())),
            None => (to, None),
        };
        let meta = pb::Meta {
            to: Some(pb::Jid { client_resource: resource, ..jid(&self.app_key, name) }),
            ns: Some(pb::meta::NameSpace::Chat as i32),
            routetype: Some(pb::meta::RouteType::RouteAll as i32),
            payload: Some(body.encode_to_vec().into()),
            ..Default::default()
        };
        self.send_meta(meta).await
    }

    /// Uploads an arbitrary Meta (other namespaces, `ROUTE_ONLINE`, …) and waits for its ack.
    /// A missing or zero `id` is replaced by a fresh client-local id, because the ack's
    /// `meta_id` is how the reply is matched and 0 would read as a pull result.
    pub async fn send_meta(&self, mut meta: pb::Meta) -> Result<SendAck, ClientError> {
        let local_id = match meta.id {
            Some(id) if id != 0 => id,
            _ => *meta.id.insert(self.ids.next()),
        };
        let upload = pb::CommSyncUl { meta: Some(meta), ..Default::default() };
        let frame = client_frame(Command::Sync, upload, self.ids.next());
        let (reply, answer) = oneshot::channel();
        self.call(Request::Call(Call::Upload { local_id, frame, reply }), answer, "the upload ack").await?
    }

    /// Sends bytes as one binary frame, unchecked: for tests of the server's handling of
    /// malformed input.
    pub async fn send_raw_frame(&self, bytes: impl Into<Vec<u8>>) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Call(Call::Raw { frame: bytes.into(), reply });
        self.call(request, answer, "the raw frame to be written").await?
    }

    /// Sends UNREAD and returns the queues (name, count) of the next `CommUnreadDL`. The
    /// session also pulls those queues, as it does for every UNREAD reply. A reply still in
    /// flight for an earlier UNREAD (the one after login, a heartbeat) may be the one returned.
    pub async fn unread(&self) -> Result<Vec<(String, u32)>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.call(Request::Call(Call::Unread { reply }), answer, "the UNREAD reply").await
    }

    /// Logs out like the SDK's `conn.close()`: LOGOUT with the session id and
    /// `reason:"inner:logout"`, then the WebSocket closing handshake. Bounded by a few seconds;
    /// an unresponsive server just gets the socket dropped.
    pub async fn close(self) {
        let logout = pb::Logout {
            session_id: Some(self.session_id.clone()),
            reason: Some(LOGOUT_REASON.to_owned()),
            status: None,
        };
        let frame = pb::MSync {
            guid: Some(pb::Jid { client_resource: Some(self.resource.clone()), ..jid(&self.app_key, &self.user) }),
            auth: Some(format!("$t${}", self.token)),
            ..envelope(Command::Logout, logout, self.ids.next())
        }
        .encode_to_vec();
        let (done, finished) = oneshot::channel();
        let _ = timeout(CLOSE_TIMEOUT, async {
            if self.requests.send(Request::Logout { frame, done }).await.is_ok() {
                let _ = finished.await;
            }
        })
        .await;
        // `Drop` aborts the task in case it never got to the request.
    }

    /// Hands a request to the session task and waits for its answer, both within the request
    /// timeout.
    async fn call<T>(
        &self,
        request: Request,
        answer: oneshot::Receiver<T>,
        what: &'static str,
    ) -> Result<T, ClientError> {
        timeout(self.request_timeout, async {
            self.requests.send(request).await.map_err(|_| ClientError::Closed)?;
            answer.await.map_err(|_| ClientError::Closed)
        })
        .await
        .map_err(|_| ClientError::Timeout(what))?
    }
}

/// A one-to-one text message body as the SDK builds it for `type:'txt'`. `sub_type` stays
/// absent: present and 0 would mean a combined (forwarded) message to the SDK.
pub fn text_body(from: &str, to: &str, text: &str, ext: Option<&Map<String, Value>>) -> pb::MessageBody {
    pb::MessageBody {
        r#type: Some(pb::message_body::Type::Chat as i32),
        from: Some(name_only(from)),
        to: Some(name_only(to)),
        contents: vec![pb::message_body::Content {
            r#type: Some(pb::message_body::content::Type::Text as i32),
            text: Some(text.to_owned()),
            ..Default::default()
        }],
        ext: ext.map(json_to_key_values).unwrap_or_default(),
        ..Default::default()
    }
}

/// A read receipt for server message `msg_id`, as the SDK sends it (`contents:[{}]`, one empty
/// Content). It is uploaded and acked like a message.
pub fn read_ack_body(from: &str, to: &str, msg_id: u64) -> pb::MessageBody {
    pb::MessageBody {
        r#type: Some(pb::message_body::Type::ReadAck as i32),
        from: Some(name_only(from)),
        to: Some(name_only(to)),
        contents: vec![pb::message_body::Content::default()],
        ack_message_id: Some(msg_id),
        ..Default::default()
    }
}

/// Inside a MessageBody the SDK fills only the JID's name.
fn name_only(name: &str) -> pb::Jid {
    pb::Jid { name: Some(name.to_owned()), ..Default::default() }
}

/// The envelope fields the SDK sets on every client frame (PROTOCOL.md §3.1).
fn envelope(command: Command, payload: impl prost::Message, trace_id: u64) -> pb::MSync {
    pb::MSync {
        version: Some(pb::m_sync::Version::MsyncV1 as i32),
        command: Some(command as i32),
        encrypt_type: vec![pb::EncryptType::EncryptNone as i32],
        trace_id: Some(trace_id),
        payload: Some(payload.encode_to_vec().into()),
        ..Default::default()
    }
}

fn client_frame(command: Command, payload: impl prost::Message, trace_id: u64) -> Vec<u8> {
    envelope(command, payload, trace_id).encode_to_vec()
}

/// The login frame, field for field the SDK's (PROTOCOL.md §3.2) minus the LZ4 offer, which
/// this client cannot honour.
fn provision_frame(login: &Login, resource: &str, device_uuid: &str, session_id: &str, trace_id: u64) -> Vec<u8> {
    let auth = format!("$t${}", login.token);
    let provision = pb::Provision {
        os_type: Some(pb::provision::OsType::OsOther as i32),
        version: Some(CLIENT_VERSION.to_owned()),
        compress_type: vec![pb::provision::CompressType::CompressNone as i32],
        encrypt_type: vec![pb::EncryptType::EncryptNone as i32],
        device_uuid: Some(device_uuid.to_owned()),
        device_name: Some(DEVICE_NAME.to_owned()),
        resource: Some(resource.to_owned()),
        action_version: Some(ACTION_VERSION.to_owned()),
        auth_token: Some(serde_json::json!({ "token": auth }).to_string()),
        session_id: Some(session_id.to_owned()),
        ..Default::default()
    };
    pb::MSync {
        guid: Some(pb::Jid {
            app_key: Some(login.app_key.clone()),
            name: Some(login.user.clone()),
            domain: Some(USER_DOMAIN.to_owned()),
            client_resource: Some(resource.to_owned()),
        }),
        auth: Some(auth),
        device_id: Some(0),
        ..envelope(Command::Provision, provision, trace_id)
    }
    .encode_to_vec()
}

/// Reads until the PROVISION reply; anything else the server sends first is ignored.
async fn provision_reply(ws: &mut Socket) -> Result<pb::Provision, ClientError> {
    loop {
        match ws.next().await {
            None | Some(Ok(WsMessage::Close(_))) => return Err(ClientError::Closed),
            Some(Err(e)) => return Err(ClientError::Socket(Box::new(e))),
            Some(Ok(WsMessage::Binary(bytes))) => {
                let frame =
                    decode_frame(&bytes).map_err(|e| ClientError::Protocol(format!("undecodable frame: {e}")))?;
                if frame.command.unwrap_or_default() == Command::Provision as i32 {
                    return decode_payload(&frame)
                        .map_err(|e| ClientError::Protocol(format!("undecodable Provision reply: {e}")));
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Applies the SDK's rules to the PROVISION reply and returns the resource to adopt.
fn check_provision_reply(reply: pb::Provision) -> Result<String, ClientError> {
    // Raw codes: prost's `error_code()` getter maps unknown codes such as 20 to OK.
    let status =
        reply.status.ok_or_else(|| ClientError::Protocol("PROVISION reply without status (the SDK hangs)".into()))?;
    let code = status.error_code.unwrap_or_default();
    if code != pb::status::ErrorCode::Ok as i32 {
        return Err(ClientError::Login { code, reason: status.reason.unwrap_or_default() });
    }
    let none = pb::provision::CompressType::CompressNone as i32;
    if reply.protocol_compress_type.iter().any(|c| *c != none) {
        return Err(ClientError::Protocol(
            "PROVISION reply enables protocol compression the client did not offer".into(),
        ));
    }
    reply
        .resource
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ClientError::Protocol("PROVISION reply without resource".into()))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `<millis>_<random>`: unique per login even when many clients start in the same ms.
fn device_suffix(now: u64) -> String {
    let random = getrandom::u32()
        .unwrap_or_else(|_| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()));
    format!("{now}_{random:08x}")
}

/// Client-local ids, in the SDK's style (ms since 2010-02-01, with room for a counter), so
/// they look familiar in server logs and stay below 2^53 for JavaScript tools. Only
/// uniqueness within a session matters to the protocol.
#[derive(Debug)]
struct LocalIds(AtomicU64);

impl LocalIds {
    fn starting_at(now_ms: u64) -> Self {
        Self(AtomicU64::new(now_ms.saturating_sub(LOCAL_ID_EPOCH_MS).max(1) * 1000))
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Work the handle asks of the socket task.
enum Request {
    Call(Call),
    /// Ends the session; kept apart from [`Call`] because it ends the task's loop.
    Logout {
        frame: Vec<u8>,
        done: oneshot::Sender<()>,
    },
}

/// Requests that the session answers and then carries on.
enum Call {
    Upload { local_id: u64, frame: Vec<u8>, reply: oneshot::Sender<Result<SendAck, ClientError>> },
    Raw { frame: Vec<u8>, reply: oneshot::Sender<Result<(), ClientError>> },
    Unread { reply: oneshot::Sender<Vec<(String, u32)>> },
}

/// The socket task's state. Only this task touches the socket, so none of it is shared.
struct Session {
    ws: Socket,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<ClientEvent>,
    ids: Arc<LocalIds>,
    user: String,
    resource: String,
    auto_ack: bool,
    heartbeat: Duration,
    /// When the last binary frame arrived: the SDK's heartbeat only fires after silence.
    last_rx: Instant,
    /// Uploads waiting for their ack, by client-local id. Entries whose caller gave up are
    /// pruned at each heartbeat tick.
    acks: HashMap<u64, oneshot::Sender<Result<SendAck, ClientError>>>,
    unread_waiters: Vec<oneshot::Sender<Vec<(String, u32)>>>,
    /// Queues to pull, in arrival order, one at a time, deduplicated by name like the SDK.
    queues: VecDeque<pb::Jid>,
    /// A pull of `queues.front()` is outstanding.
    pulling: bool,
    /// The last `next_key` acked per queue: the SDK stops pulling a queue whose `next_key`
    /// repeats (PROTOCOL.md §3.4 rule 4), which also protects us from a server that ignores
    /// acks.
    last_keys: HashMap<String, u64>,
    /// Set when the server's Close frame or LOGOUT arrives; reported when the socket ends.
    close_reason: Option<String>,
}

/// Ends the session with this reason.
type Flow = Result<(), String>;

impl Session {
    async fn run(mut self) {
        // `interval` panics on a zero period; a zero heartbeat means "as often as possible".
        let period = self.heartbeat.max(Duration::from_millis(1));
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let reason = loop {
            let flow = tokio::select! {
                incoming = self.ws.next() => match incoming {
                    None => Err(self.close_reason.take().unwrap_or_else(|| {
                        "the server closed the connection".to_owned()
                    })),
                    Some(Err(e)) => Err(format!("WebSocket error: {e}")),
                    Some(Ok(message)) => self.on_message(message).await,
                },
                request = self.requests.recv() => match request {
                    // The handle is gone; nobody is listening.
                    None => return,
                    Some(Request::Logout { frame, done }) => {
                        self.logout(frame).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Request::Call(call)) => self.on_call(call).await,
                },
                _ = heartbeat.tick() => self.on_heartbeat().await,
            };
            if let Err(reason) = flow {
                break reason;
            }
        };
        tracing::debug!(user = %self.user, %reason, "MSYNC session ended");
        let _ = timeout(Duration::from_secs(1), self.ws.close(None)).await;
        let _ = self.events.send(ClientEvent::Closed { reason }).await;
        // Dropping `self.acks` fails the waiting sends with `ClientError::Closed`.
    }

    async fn on_message(&mut self, message: WsMessage) -> Flow {
        match message {
            WsMessage::Binary(bytes) => {
                self.last_rx = Instant::now();
                self.on_frame(&bytes).await
            }
            WsMessage::Text(_) => Err("protocol violation: text frame (MSYNC frames are binary)".to_owned()),
            WsMessage::Close(frame) => {
                // tungstenite replies to the Close; the stream ends right after.
                self.close_reason.get_or_insert_with(|| match frame {
                    Some(f) => {
                        format!("the server closed the connection ({} {})", f.code, f.reason)
                    }
                    None => "the server closed the connection".to_owned(),
                });
                Ok(())
            }
            // tungstenite answers pings itself; the SDK never sees them either.
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => Ok(()),
        }
    }

    async fn on_frame(&mut self, bytes: &[u8]) -> Flow {
        let frame = decode_frame(bytes).map_err(|e| format!("protocol violation: undecodable frame: {e}"))?;
        // A missing command is SYNC (0), as protobuf.js reads it.
        let command = frame.command.unwrap_or_default();
        match Command::try_from(command) {
            Ok(Command::Sync) => {
                let dl: pb::CommSyncDl =
                    decode_payload(&frame).map_err(|e| format!("protocol violation: undecodable CommSyncDL: {e}"))?;
                if dl.meta_id.unwrap_or_default() != 0 {
                    self.on_upload_ack(dl);
                    Ok(())
                } else {
                    self.on_pull_result(dl).await
                }
            }
            Ok(Command::Unread) => {
                let dl: pb::CommUnreadDl =
                    decode_payload(&frame).map_err(|e| format!("protocol violation: undecodable CommUnreadDL: {e}"))?;
                self.on_unread(dl).await
            }
            Ok(Command::Notice) => {
                let notice: pb::CommNotice =
                    decode_payload(&frame).map_err(|e| format!("protocol violation: undecodable CommNotice: {e}"))?;
                match notice.queue {
                    Some(queue) => self.enqueue(queue).await,
                    None => Ok(()),
                }
            }
            Ok(Command::Logout) => {
                // The SDK only logs it; the server is expected to close the socket next.
                let logout: pb::Logout = decode_payload(&frame).unwrap_or_default();
                self.close_reason = Some(format!("server LOGOUT: {}", logout.reason()));
                Ok(())
            }
            Ok(Command::Provision) | Err(_) => {
                tracing::debug!(command, "ignoring an unexpected MSYNC command");
                Ok(())
            }
        }
    }

    fn on_upload_ack(&mut self, dl: pb::CommSyncDl) {
        let local_id = dl.meta_id.unwrap_or_default();
        let Some(waiter) = self.acks.remove(&local_id) else {
            tracing::debug!(local_id, "ack for an upload nobody waits for");
            return;
        };
        let result = match dl.status {
            None => Err(ClientError::Protocol("upload ack without status".into())),
            Some(status) if status.error_code.unwrap_or_default() != 0 => Err(ClientError::Rejected {
                code: status.error_code.unwrap_or_default(),
                reason: status.reason.unwrap_or_default(),
            }),
            Some(_) => match dl.server_id.filter(|id| *id != 0) {
                Some(server_id) => Ok(SendAck { local_id, server_id, timestamp: dl.timestamp.unwrap_or_default() }),
                None => Err(ClientError::Protocol("OK upload ack without server_id".into())),
            },
        };
        let _ = waiter.send(result);
    }

    /// One pull result, by the rules of PROTOCOL.md §3.4.
    async fn on_pull_result(&mut self, dl: pb::CommSyncDl) -> Flow {
        let Some(status) = dl.status else {
            return Err("protocol violation: pull result without status (the SDK drops it)".into());
        };
        let Some(queue) = dl.queue else {
            return Err("protocol violation: pull result without queue (the SDK throws)".into());
        };
        let name = queue.name().to_owned();
        if status.error_code.unwrap_or_default() != 0 {
            tracing::warn!(queue = %name, code = ?status.error_code, reason = ?status.reason,
                "pull refused; moving to the next queue");
            return self.finish(&name).await;
        }
        let is_last = dl.is_last.unwrap_or_default();
        if is_last && !dl.metas.is_empty() {
            return Err("protocol violation: is_last:true together with metas (the SDK pulls forever)".into());
        }
        let had_metas = !dl.metas.is_empty();
        for meta in dl.metas {
            self.emit_meta(meta, &name).await;
        }
        match dl.next_key.filter(|k| *k != 0) {
            Some(key) if !is_last && had_metas && self.auto_ack && self.last_keys.get(&name) != Some(&key) => {
                self.last_keys.insert(name, key);
                let ack = pb::CommSyncUl { queue: Some(queue), key: Some(key), ..Default::default() };
                self.send_frame(Command::Sync, ack).await
            }
            _ => self.finish(&name).await,
        }
    }

    async fn on_unread(&mut self, dl: pb::CommUnreadDl) -> Flow {
        let listing: Vec<(String, u32)> = dl
            .unread
            .iter()
            .map(|q| {
                let name = q.queue.as_ref().map(|j| j.name()).unwrap_or_default();
                (name.to_owned(), q.n.unwrap_or_default())
            })
            .collect();
        for waiter in self.unread_waiters.drain(..) {
            let _ = waiter.send(listing.clone());
        }
        for queue in dl.unread.into_iter().filter_map(|q| q.queue) {
            self.enqueue(queue).await?;
        }
        Ok(())
    }

    async fn on_call(&mut self, call: Call) -> Flow {
        match call {
            Call::Upload { local_id, frame, reply } => {
                self.acks.insert(local_id, reply);
                self.write(frame).await
            }
            Call::Raw { frame, reply } => {
                let flow = self.write(frame).await;
                let _ = reply.send(match flow {
                    Ok(()) => Ok(()),
                    Err(_) => Err(ClientError::Closed),
                });
                flow
            }
            Call::Unread { reply } => {
                self.unread_waiters.push(reply);
                self.send_frame(Command::Unread, pb::CommUnreadUl {}).await
            }
        }
    }

    async fn on_heartbeat(&mut self) -> Flow {
        self.acks.retain(|_, waiter| !waiter.is_closed());
        self.unread_waiters.retain(|waiter| !waiter.is_closed());
        if self.last_rx.elapsed() >= self.heartbeat {
            self.send_frame(Command::Unread, pb::CommUnreadUl {}).await?;
        }
        Ok(())
    }

    /// Adds a queue to pull, with the SDK's filters: its own device's queue is ignored, and a
    /// queue already pending (by name) is not added twice.
    async fn enqueue(&mut self, queue: pb::Jid) -> Flow {
        if queue.name() == self.user && queue.client_resource() == self.resource {
            return Ok(());
        }
        if self.queues.iter().any(|q| q.name() == queue.name()) {
            return Ok(());
        }
        self.queues.push_back(queue);
        self.pull_next().await
    }

    /// Drops a queue from the pending list and moves on to the next one.
    async fn finish(&mut self, name: &str) -> Flow {
        let was_current = self.queues.front().is_some_and(|q| q.name() == name);
        self.queues.retain(|q| q.name() != name);
        self.last_keys.remove(name);
        if was_current {
            self.pulling = false;
        }
        self.pull_next().await
    }

    async fn pull_next(&mut self) -> Flow {
        if self.pulling {
            return Ok(());
        }
        let Some(queue) = self.queues.front().cloned() else {
            return Ok(());
        };
        self.pulling = true;
        let pull = pb::CommSyncUl { queue: Some(queue), ..Default::default() };
        self.send_frame(Command::Sync, pull).await
    }

    async fn emit_meta(&mut self, meta: pb::Meta, queue: &str) {
        let ns = meta.ns.unwrap_or_default();
        let payload = meta.payload.clone().unwrap_or_default();
        if ns == pb::meta::NameSpace::Statistic as i32
            && let Ok(stat) = pb::StatisticsBody::decode(payload.as_ref())
        {
            let operation = stat.operation.unwrap_or_default();
            if operation != pb::statistics_body::Operation::Information as i32 {
                self.emit(ClientEvent::Kicked { operation, reason: stat.reason }).await;
                return;
            }
        }
        let body =
            if ns == pb::meta::NameSpace::Chat as i32 { pb::MessageBody::decode(payload.as_ref()).ok() } else { None };
        let name_of = |j: Option<&pb::Jid>| j.map(|j| j.name().to_owned());
        let from = name_of(body.as_ref().and_then(|b| b.from.as_ref()))
            .or_else(|| name_of(meta.from.as_ref()))
            .unwrap_or_default();
        let to = name_of(body.as_ref().and_then(|b| b.to.as_ref()))
            .or_else(|| name_of(meta.to.as_ref()))
            .unwrap_or_default();
        self.emit(ClientEvent::Message(Received {
            id: meta.id.unwrap_or_default(),
            from,
            to,
            timestamp: meta.timestamp.unwrap_or_default(),
            queue: queue.to_owned(),
            ns,
            body,
            raw: meta,
        }))
        .await;
    }

    async fn emit(&mut self, event: ClientEvent) {
        // An error means the handle is gone; `run` notices through the request channel.
        let _ = self.events.send(event).await;
    }

    async fn send_frame(&mut self, command: Command, payload: impl prost::Message) -> Flow {
        let frame = client_frame(command, payload, self.ids.next());
        self.write(frame).await
    }

    async fn write(&mut self, frame: Vec<u8>) -> Flow {
        self.ws.send(WsMessage::Binary(frame.into())).await.map_err(|e| format!("WebSocket error: {e}"))
    }

    /// Sends LOGOUT, starts the closing handshake and reads until the server completes it.
    async fn logout(&mut self, frame: Vec<u8>) {
        let _ = self.write(frame).await;
        let _ = self.ws.close(None).await;
        let _ = timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = self.ws.next().await {} }).await;
    }
}

/// The MSYNC endpoint of a server named as a person would name it: its HTTP base URL
/// (`http://127.0.0.1:8080`, `https://im.example.com/prefix`: the SDK's `apiUrl`), a bare
/// `host:port`, or the WebSocket URL itself. `http` becomes `ws` and `https` `wss`; a URL
/// without a path (or whose path does not end in `/websocket`) gets `/websocket`
/// appended; a `ws`/`wss` URL with a path is taken as given. `None` for another scheme.
pub fn websocket_url(server: &str) -> Option<String> {
    let server = server.trim();
    let (scheme, rest) = match server.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_owned(), server),
    };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if host.is_empty() {
        return None;
    }
    let path = path.trim_end_matches('/');
    let ws_scheme = match scheme.as_str() {
        "ws" | "wss" if !path.is_empty() => return Some(format!("{scheme}://{host}/{path}")),
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return None,
    };
    Some(match path {
        "" => format!("{ws_scheme}://{host}/websocket"),
        p if p == "websocket" || p.ends_with("/websocket") => format!("{ws_scheme}://{host}/{p}"),
        p => format!("{ws_scheme}://{host}/{p}/websocket"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            url: "ws://127.0.0.1:1/websocket".into(),
            app_key: "testorg#testapp".into(),
            user: "bob".into(),
            token: "TESTTOKEN123".into(),
            resource: None,
        }
    }

    /// The PROVISION frame decodes to what PROTOCOL.md §3.2 captured from the SDK.
    #[test]
    fn provision_frame_matches_the_sdk() {
        let resource = "missive_rs_1795680689834_0000abcd";
        let bytes = provision_frame(&login(), resource, "rs_1795680689834_0000abcd", "1795680689841:", 7);
        let frame = decode_frame(&bytes).unwrap();
        assert_eq!(frame.version, Some(0));
        assert_eq!(frame.command, Some(Command::Provision as i32));
        assert_eq!(frame.device_id, Some(0));
        assert_eq!(frame.encrypt_type, vec![0]);
        assert_eq!(frame.trace_id, Some(7));
        assert_eq!(
            frame.guid,
            Some(pb::Jid {
                app_key: Some("testorg#testapp".into()),
                name: Some("bob".into()),
                domain: Some("easemob.com".into()),
                client_resource: Some(resource.into()),
            })
        );
        assert_eq!(frame.auth.as_deref(), Some("$t$TESTTOKEN123"));

        let p: pb::Provision = decode_payload(&frame).unwrap();
        assert_eq!(p.os_type, Some(pb::provision::OsType::OsOther as i32));
        assert_eq!(p.os_type, Some(16));
        assert_eq!(p.compress_type, vec![0]);
        assert_eq!(p.encrypt_type, vec![0]);
        assert_eq!(p.device_name.as_deref(), Some("missive-rs"));
        assert_eq!(p.resource.as_deref(), Some(resource));
        assert_eq!(p.action_version.as_deref(), Some("v5.2"));
        assert_eq!(p.auth_token.as_deref(), Some(r#"{"token":"$t$TESTTOKEN123"}"#));
        assert_eq!(p.session_id.as_deref(), Some("1795680689841:"));
        assert!(p.protocol_compress_type.is_empty());
        assert!(p.status.is_none());
    }

    /// proto2 repeated enums are unpacked unless declared packed, and the SDK writes
    /// `MSync.encrypt_type` unpacked: tag 11 varint (0x58) then 0.
    #[test]
    fn encrypt_type_is_written_unpacked_like_the_sdk() {
        let bytes = client_frame(Command::Unread, pb::CommUnreadUl {}, 1);
        assert!(bytes.windows(2).any(|w| w == [0x58, 0x00]));
    }

    #[test]
    fn text_body_has_no_sub_type() {
        let ext: Map<String, Value> = serde_json::from_str(r#"{"s":"x"}"#).unwrap();
        let body = text_body("bob", "alice", "hi alice", Some(&ext));
        assert_eq!(body.r#type, Some(pb::message_body::Type::Chat as i32));
        assert_eq!(body.from.as_ref().unwrap().name(), "bob");
        assert!(body.from.as_ref().unwrap().app_key.is_none());
        let content = &body.contents[0];
        assert_eq!(content.r#type, Some(0));
        assert_eq!(content.text.as_deref(), Some("hi alice"));
        assert!(content.sub_type.is_none());
        assert_eq!(body.ext.len(), 1);
        // And nothing with field number 22 (sub_type) reaches the wire.
        let reencoded = pb::MessageBody::decode(body.encode_to_vec().as_slice()).unwrap();
        assert!(reencoded.contents[0].sub_type.is_none());
    }

    #[test]
    fn read_ack_body_carries_one_empty_content() {
        let body = read_ack_body("bob", "alice", 42);
        assert_eq!(body.r#type, Some(pb::message_body::Type::ReadAck as i32));
        assert_eq!(body.ack_message_id, Some(42));
        assert_eq!(body.contents, vec![pb::message_body::Content::default()]);
    }

    #[test]
    fn provision_reply_rules() {
        let ok = |resource: Option<&str>| pb::Provision {
            status: Some(pb::Status::default()),
            resource: resource.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(check_provision_reply(ok(Some("r1"))).unwrap(), "r1");
        assert!(matches!(check_provision_reply(ok(None)), Err(ClientError::Protocol(_))));
        assert!(matches!(check_provision_reply(pb::Provision::default()), Err(ClientError::Protocol(_))));
        // 20 is not in the enum; it must not be mistaken for OK.
        let changed = pb::Provision {
            status: Some(pb::Status { error_code: Some(20), reason: None, redirect_info: vec![] }),
            ..ok(Some("r"))
        };
        assert!(matches!(check_provision_reply(changed), Err(ClientError::Login { code: 20, .. })));
        let lz4 = pb::Provision {
            protocol_compress_type: vec![pb::provision::CompressType::CompressLz4 as i32],
            ..ok(Some("r"))
        };
        assert!(matches!(check_provision_reply(lz4), Err(ClientError::Protocol(_))));
    }

    #[test]
    fn local_ids_are_unique_and_js_safe() {
        let ids = LocalIds::starting_at(now_ms());
        let a = ids.next();
        let b = ids.next();
        assert!(a > 0 && b > a);
        assert!(b < 1 << 53);
    }

    #[test]
    fn login_debug_hides_the_token() {
        assert!(!format!("{:?}", login()).contains("TESTTOKEN123"));
    }

    #[test]
    fn websocket_urls_from_what_people_type() {
        for (given, want) in [
            ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/websocket"),
            ("http://127.0.0.1:8080/", "ws://127.0.0.1:8080/websocket"),
            ("127.0.0.1:8080", "ws://127.0.0.1:8080/websocket"),
            ("https://im.example.com", "wss://im.example.com/websocket"),
            ("HTTPS://im.example.com/im/", "wss://im.example.com/im/websocket"),
            ("http://h:1/websocket", "ws://h:1/websocket"),
            ("ws://127.0.0.1:8080/websocket", "ws://127.0.0.1:8080/websocket"),
            ("ws://127.0.0.1:8080", "ws://127.0.0.1:8080/websocket"),
            ("wss://h/ws/other", "wss://h/ws/other"),
        ] {
            assert_eq!(websocket_url(given).as_deref(), Some(want), "{given}");
        }
        assert_eq!(websocket_url("ftp://h"), None);
        assert_eq!(websocket_url("http://"), None);
    }
}
