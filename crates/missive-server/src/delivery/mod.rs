//! The one path every message takes, whoever sent it, and the rule that makes it safe.
//!
//! 1. **validate** — the caller: REST rules in `missive-api` (applied by `http/messages.rs`),
//!    SDK rules in `ws/session.rs`;
//! 2. **admit** — at most `limits.max_inflight_sends` sends at once, else [`SendError::Overloaded`];
//! 3. **id** — one 19-digit snowflake per recipient (`missive_core::id`);
//! 4. **commit** — one row per recipient in its queue; the store assigns each queue a
//!    gap-free sequence inside the committing transaction (group commit, fsync'd) — the
//!    sequence rule of `missive_core::store::queues`;
//! 5. **announce** — the store tells its `CommitListener` (the hub, wired in `crate::run`)
//!    `(queue, seq, message)` in commit order, before the sender is answered;
//! 6. **deliver** — each online session keeps a [`view::SessionQueues`]: the next sequence is
//!    served from memory, a gap is filled from the store, a duplicate is dropped; the
//!    device's ack moves its per-queue cursor to the highest sequence it was sent.
//!
//! Late, lost or duplicated announcements cannot lose or reorder a message: a session only
//! sends a prefix it knows completely, and anything it missed it finds by sequence. REST
//! sends, SDK uploads, receipts and recall notices all come through [`Delivery::send`].
//!
//! The callbacks and pushes a message causes (`crate::notify`) are planned at step 3 and
//! committed at step 4 with the message, in one transaction.
//! Online-only traffic (`ROUTE_ONLINE`, copies to the sender's other devices) skips steps 4–5
//! and goes to the devices online at that moment.
//!
//! Chat messages that are stored are also archived (`missive_core::store::history`): step 4
//! writes each one's archive row with its queue row, so a message is in history exactly
//! when it was queued; `roam_ignore_users` hide it from those users' history.

pub mod view;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use missive_core::IdGenerator;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::{App, IdempotencyRecord, NewMessage, QueuedMessage};
use missive_core::store::{EnqueueRequest, NewArchived, QueuePolicy, Store, StoreError};
use missive_msync::pb;
use missive_msync::pb::status::ErrorCode;
use prost::Message;

use crate::cluster::Presence;
use crate::error::ApiError;
use crate::fanout::Fanout;
use crate::hub::Hub;
use crate::notify::Notifier;
use crate::telemetry::Metrics;

pub use missive_notify::Origin;

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Stored for every registered recipient and delivered now or when a device comes
    /// online (`ROUTE_ALL`).
    Stored,
    /// Only to devices online now; nothing is stored (`routetype: ROUTE_ONLINE`).
    OnlineOnly,
}

/// Copies of the message for the sender's own devices (multi-device sync).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderCopies {
    None,
    /// To every online device of the sender but `except` (the device that sent it).
    Online {
        except: Option<String>,
    },
}

/// What to do with a recipient that is not a registered user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownRecipients {
    /// Give it an id and store nothing (Easemob's REST send: nobody can receive it).
    Skip,
    /// Refuse the send (an SDK message to a user who does not exist).
    Refuse,
}

/// A validated message on its way to one or more recipients.
pub struct Outgoing {
    pub app: Arc<App>,
    /// Lower-cased sender id (`admin` for REST sends without `from`).
    pub from: String,
    /// Lower-cased recipients, in request order.
    pub to: Vec<String>,
    /// The body every recipient gets; `to` is filled in per recipient.
    pub body: pb::MessageBody,
    pub route: Route,
    pub copies: SenderCopies,
    pub unknown: UnknownRecipients,
    /// Who sent it: callback rules may leave out REST-sent messages.
    pub origin: Origin,
    /// The id of the (single) recipient's copy, when the caller already gave it out (a
    /// pre-send check named it); otherwise every copy gets a fresh one.
    pub id: Option<MsgId>,
    /// Users who do not see this message in their history (`roam_ignore_users`).
    pub roam_ignore: Vec<String>,
}

/// The id each recipient's copy got, in the order of `Outgoing::to` (duplicates removed).
pub struct Sent {
    pub ids: Vec<(String, MsgId)>,
    pub timestamp: i64,
}

/// Why a send failed. Each edge renders it its own way: REST as an Easemob error body
/// (`From<SendError> for ApiError`), MSYNC as an ack status (`SendError::msync_status`).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Past `limits.max_inflight_sends`: shed at once instead of queueing without bound.
    #[error("server is busy, retry later")]
    Overloaded,
    #[error("username {0} doesn't exist")]
    UnknownRecipient(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl SendError {
    /// The status and reason of an SDK upload's ack; the reasons are the strings the SDK
    /// maps to its error codes (PROTOCOL.md §3.5).
    pub fn msync_status(&self) -> (ErrorCode, String) {
        match self {
            SendError::UnknownRecipient(name) => (ErrorCode::Fail, format!("Sorry, username {name} doesn't exist!")),
            SendError::Overloaded => (ErrorCode::PermissionDenied, "Sorry, traffic limit".into()),
            SendError::Store(e) => (ErrorCode::Fail, format!("Sorry, {}", ApiError::from(e.clone()).description)),
        }
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> ApiError {
        match e {
            SendError::Overloaded => ApiError::unavailable("server is busy, retry later"),
            // REST sends skip unknown recipients; reaching here is a caller bug.
            SendError::UnknownRecipient(_) => ApiError::internal(),
            SendError::Store(e) => ApiError::from(e),
        }
    }
}

/// A message that exists only in memory, on its way to the devices online now.
fn online_message(
    app: &App,
    id: MsgId,
    owner: &str,
    queue: &str,
    sender: &str,
    created: i64,
    payload: Bytes,
) -> Arc<QueuedMessage> {
    Arc::new(QueuedMessage {
        id,
        app_id: app.id,
        owner: owner.to_owned(),
        queue: queue.to_owned(),
        sender: sender.to_owned(),
        created,
        payload,
        seq: 0,
        delivered: false,
    })
}

/// Owns the send path: admission, ids, the commit and online-only hand-off.
pub struct Delivery {
    store: Arc<dyn Store>,
    /// This node's sessions: a recipient online here needs no user lookup.
    hub: Arc<Hub>,
    /// Online-only messages go to a user's devices on every node.
    fanout: Arc<dyn Fanout>,
    notifier: Arc<Notifier>,
    /// Who is online on any node (for `chat_offline` callbacks and pushes).
    presence: Arc<Presence>,
    /// Counts online-only messages nobody was online for.
    metrics: Metrics,
    ids: IdGenerator,
    policy: QueuePolicy,
    archive: ArchivePolicy,
    /// Sends being processed now (REST and SDK); see `limits.max_inflight_sends`.
    inflight: tokio::sync::Semaphore,
}

/// Which messages the send path archives (`history.*` settings).
#[derive(Clone, Copy, Debug)]
pub struct ArchivePolicy {
    pub enabled: bool,
    /// REST-sent messages move the parties' conversation lists.
    pub rest_listed: bool,
}

/// What the send path talks to.
pub struct DeliveryLinks {
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub fanout: Arc<dyn Fanout>,
    pub notifier: Arc<Notifier>,
    pub presence: Arc<Presence>,
    pub metrics: Metrics,
}

impl Delivery {
    pub fn new(
        links: DeliveryLinks,
        node_id: u16,
        (policy, archive): (QueuePolicy, ArchivePolicy),
        max_inflight: usize,
    ) -> Delivery {
        let DeliveryLinks { store, hub, fanout, notifier, presence, metrics } = links;
        Delivery {
            store,
            hub,
            fanout,
            notifier,
            presence,
            metrics,
            ids: IdGenerator::new(node_id),
            policy,
            archive,
            inflight: tokio::sync::Semaphore::new(max_inflight),
        }
    }

    /// A fresh id from this node's generator (kick notices use one too).
    pub fn next_id(&self) -> MsgId {
        self.ids.next_id()
    }

    /// Whether a send would be admitted now, checked before a request body is even read.
    pub fn has_capacity(&self) -> bool {
        self.inflight.available_permits() > 0
    }

    /// Sends `out`; returns after every stored copy is durable. With `key`, the answer is
    /// recorded in the same transaction, so a retry with the same key (see `http::messages`)
    /// returns the same ids.
    pub async fn send(&self, out: Outgoing, key: Option<&str>) -> Result<Sent, SendError> {
        let _permit = self.inflight.try_acquire().map_err(|_| SendError::Overloaded)?;
        let mut seen = HashSet::with_capacity(out.to.len());
        let recipients: Vec<String> = out.to.into_iter().filter(|r| seen.insert(r.clone())).collect();
        // A recipient with a session on this node is a registered user (login checked, and
        // removing a user ends its sessions), so only the others are looked up: a send to
        // online users costs no read.
        let online: HashSet<String> =
            recipients.iter().filter(|r| self.hub.is_online(out.app.id, r)).cloned().collect();
        let mut known = online.clone();
        if known.len() < recipients.len() {
            let offline: Vec<String> = recipients.iter().filter(|r| !known.contains(*r)).cloned().collect();
            known.extend(self.store.existing_users(out.app.id, &offline).await?);
        }
        if out.unknown == UnknownRecipients::Refuse
            && let Some(r) = recipients.iter().find(|r| !known.contains(*r))
        {
            return Err(SendError::UnknownRecipient(r.clone()));
        }
        let created = now_ms() as i64;
        let watched = self.notifier.watches(out.app.id);
        // Callbacks and pushes need "offline" to mean no device on any node; only then is it
        // worth asking the shared presence about recipients not online here.
        let mut online = online;
        if watched && self.presence.is_shared() {
            let elsewhere: Vec<String> = recipients.iter().filter(|r| !online.contains(*r)).cloned().collect();
            if !elsewhere.is_empty() {
                online.extend(self.presence.online(out.app.id, &elsewhere).await?);
            }
        }
        let mut outbox = Vec::new();
        let mut given_id = out.id.filter(|_| recipients.len() == 1);
        let mut ids = Vec::with_capacity(recipients.len());
        let mut stored = Vec::new();
        let mut archive = Vec::new();
        let mut copies = Vec::new();
        let mut body = out.body;
        body.from = Some(pb::Jid { name: Some(out.from.clone()), ..Default::default() });
        // One-to-one chat messages that are stored are archived for both parties, in the
        // queue's transaction; receipts, recalls and online-only messages are not history.
        let archived_kind = match out.route {
            Route::Stored if self.archive.enabled => missive_api::history::archived_kind(&body),
            _ => None,
        };
        let listed = out.origin != Origin::Rest || self.archive.rest_listed;
        for recipient in recipients {
            let id = given_id.take().unwrap_or_else(|| self.ids.next_id());
            body.to = Some(pb::Jid { name: Some(recipient.clone()), ..Default::default() });
            let payload = Bytes::from(body.encode_to_vec());
            if out.copies != SenderCopies::None {
                copies.push(online_message(&out.app, id, &out.from, &recipient, &out.from, created, payload.clone()));
            }
            if known.contains(&recipient) {
                if watched {
                    let stored = out.route == Route::Stored;
                    let offline = stored && !online.contains(&recipient);
                    outbox.extend(
                        self.notifier.plan(&out.app, out.origin, id, created, &body, &recipient, offline, stored),
                    );
                }
                if let Some(kind) = archived_kind {
                    archive.push(NewArchived {
                        app_id: out.app.id,
                        id,
                        from: out.from.clone(),
                        to: recipient.clone(),
                        created,
                        kind,
                        payload: payload.clone(),
                        hidden_from_sender: out.roam_ignore.contains(&out.from),
                        hidden_from_recipient: out.roam_ignore.contains(&recipient),
                        listed,
                    });
                }
                match out.route {
                    Route::Stored => stored.push(NewMessage {
                        id,
                        app_id: out.app.id,
                        owner: recipient.clone(),
                        queue: out.from.clone(),
                        sender: out.from.clone(),
                        created,
                        payload,
                    }),
                    Route::OnlineOnly => {
                        // Only this node's sessions are known here; in a cluster a message
                        // nobody takes is not counted.
                        if !self.presence.is_shared() && !online.contains(&recipient) {
                            self.metrics.online_only_dropped(1);
                        }
                        let msg = online_message(&out.app, id, &recipient, &out.from, &out.from, created, payload);
                        self.fanout.online(out.app.id, &recipient, &msg, None);
                    }
                }
            }
            ids.push((recipient, id));
        }
        let record = key.map(|key| IdempotencyRecord {
            app_id: out.app.id,
            key: key.to_owned(),
            response: serde_json::Value::Object(
                ids.iter().map(|(u, id)| (u.clone(), id.0.to_string().into())).collect(),
            )
            .to_string(),
            created,
        });
        self.notifier.admit(out.app.id, &mut outbox);
        // Entries waiting out a ban are not due: no reason to wake the dispatcher for them.
        let wake = outbox.iter().any(|e| e.due_at <= created);
        // The store announces the commit to the hub before it answers.
        self.store.enqueue(EnqueueRequest { messages: stored, policy: self.policy, record, outbox, archive }).await?;
        if wake {
            self.notifier.wake();
        }
        if let SenderCopies::Online { except } = &out.copies {
            for copy in &copies {
                self.fanout.online(out.app.id, &out.from, copy, except.as_deref());
            }
        }
        Ok(Sent { ids, timestamp: created })
    }
}
