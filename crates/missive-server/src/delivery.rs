//! The one path every message takes, whoever sent it.
//!
//! validate (caller) → assign a time-ordered id per recipient → persist one row per
//! recipient (group-committed, fsync'd) → the store announces the commit to the hub, which
//! hands each message to its recipient's online devices → they pull and ack over MSYNC. REST sends, SDK uploads, receipts and recall notices all come through
//! `Delivery::send`, so ordering, durability and multi-device rules hold for all of them.
//!
//! Online-only traffic (`ROUTE_ONLINE`, `sync_device` copies) skips the store and goes to
//! the devices that are online at that moment.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::{App, IdempotencyRecord, QueuedMessage};
use missive_msync::pb;
use prost::Message;

use crate::error::{ApiError, ApiResult};
use crate::hub::LiveMessage;
use crate::state::AppState;

/// A validated message on its way to one or more recipients.
pub struct Outgoing {
    pub app: Arc<App>,
    /// Lower-cased sender id (`admin` for REST sends without `from`).
    pub from: String,
    /// Lower-cased recipients, in request order.
    pub to: Vec<String>,
    /// The body every recipient gets; `to` is filled in per recipient.
    pub body: pb::MessageBody,
    /// Deliver to devices online now, store nothing.
    pub route_online: bool,
    /// Also copy to the sender's other online devices.
    pub sync_device: bool,
    /// The sender's own device (SDK uploads), which must not get a copy of its own message.
    pub origin_resource: Option<String>,
    /// Store even for names that are not registered users (never for REST: Easemob returns
    /// an id for unknown recipients but nobody can receive it).
    pub require_known_recipients: bool,
}

/// The id each recipient's copy got, in the order of `Outgoing::to` (duplicates removed).
pub struct Sent {
    pub ids: Vec<(String, MsgId)>,
    pub timestamp: i64,
}

/// Recipients that are not registered users, when the caller asked for that to be an error.
#[derive(Debug)]
pub struct UnknownRecipient(pub String);

impl AppState {
    /// Sends `out`: returns after every stored copy is durable.
    pub async fn send(&self, out: Outgoing) -> ApiResult<Result<Sent, UnknownRecipient>> {
        self.send_with_key(out, None).await
    }

    /// `send`, recording the answer under `key` in the same transaction as the messages, so
    /// a retry with the same key (see `http::messages`) returns the same ids.
    pub async fn send_with_key(&self, out: Outgoing, key: Option<&str>) -> ApiResult<Result<Sent, UnknownRecipient>> {
        // Admission control: past `limits.max_inflight_sends` concurrent sends the server
        // sheds load with a 503 at once instead of queueing without bound.
        let _permit =
            self.inflight_sends.try_acquire().map_err(|_| ApiError::unavailable("server is busy, retry later"))?;
        let mut seen = HashSet::with_capacity(out.to.len());
        let recipients: Vec<String> = out.to.into_iter().filter(|r| seen.insert(r.clone())).collect();
        // A recipient with a session on this node is a registered user (login checked, and
        // removing a user ends its sessions), so only the others are looked up: a send to
        // online users costs no read query.
        let mut known: HashSet<String> =
            recipients.iter().filter(|r| self.hub.is_online(out.app.id, r)).cloned().collect();
        if known.len() < recipients.len() {
            let offline: Vec<String> = recipients.iter().filter(|r| !known.contains(*r)).cloned().collect();
            known.extend(self.store.existing_users(out.app.id, &offline).await?);
        }
        if out.require_known_recipients
            && let Some(r) = recipients.iter().find(|r| !known.contains(*r))
        {
            return Ok(Err(UnknownRecipient(r.clone())));
        }
        let created = now_ms() as i64;
        // Ids of copies that will be stored are registered until their commit returns (see
        // `UncommittedIds`); the others are just allocated.
        let will_store = |r: &String| known.contains(r) && !out.route_online;
        let (mut stored_ids, _uncommitted) = self.uncommitted.allocate(
            &self.ids,
            out.app.id,
            recipients.iter().filter(|r| will_store(r)).map(|r| (r.clone(), out.from.clone())),
        );
        stored_ids.reverse();
        let mut ids = Vec::with_capacity(recipients.len());
        let mut stored = Vec::new();
        let mut transient = Vec::new();
        let mut body = out.body;
        body.from = Some(pb::Jid { name: Some(out.from.clone()), ..Default::default() });
        for recipient in recipients {
            let id = if will_store(&recipient) {
                stored_ids.pop().expect("one registered id per stored copy")
            } else {
                self.ids.next_id()
            };
            body.to = Some(pb::Jid { name: Some(recipient.clone()), ..Default::default() });
            let payload = body.encode_to_vec();
            let wanted = known.contains(&recipient);
            if out.sync_device {
                transient.push(Arc::new(LiveMessage {
                    id,
                    queue: recipient.clone(),
                    sender: out.from.clone(),
                    owner: out.from.clone(),
                    created,
                    payload: Bytes::from(payload.clone()),
                }));
            }
            if wanted && out.route_online {
                if self.hub.is_online(out.app.id, &recipient) {
                    let msg = Arc::new(LiveMessage {
                        id,
                        queue: out.from.clone(),
                        sender: out.from.clone(),
                        owner: recipient.clone(),
                        created,
                        payload: Bytes::from(payload),
                    });
                    self.hub.push_transient(out.app.id, &recipient, &msg, None);
                }
            } else if wanted {
                stored.push(QueuedMessage {
                    id,
                    app_id: out.app.id,
                    owner: recipient.clone(),
                    queue: out.from.clone(),
                    sender: out.from.clone(),
                    created,
                    payload,
                    delivered: false,
                });
            }
            ids.push((recipient, id));
        }
        // The store tells the hub about these messages once they are committed; the guard
        // keeping their ids registered as uncommitted lives until this function returns.
        match key {
            None => self.store.enqueue(stored, self.queue_policy()).await?,
            Some(key) => {
                let data: serde_json::Map<String, serde_json::Value> =
                    ids.iter().map(|(u, id)| (u.clone(), id.0.to_string().into())).collect();
                let record = IdempotencyRecord {
                    app_id: out.app.id,
                    key: key.to_owned(),
                    response: serde_json::Value::Object(data).to_string(),
                    created,
                };
                self.store.enqueue_recorded(stored, self.queue_policy(), record).await?
            }
        }
        for copy in &transient {
            self.hub.push_transient(out.app.id, &out.from, copy, out.origin_resource.as_deref());
        }
        Ok(Ok(Sent { ids, timestamp: created }))
    }
}
