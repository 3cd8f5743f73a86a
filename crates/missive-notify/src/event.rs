//! [`MessageEvent`]: one message event in the neutral form callbacks and pushes are built
//! from.
//!
//! The server holds messages as encoded MSYNC `MessageBody`s; the outside world sees them as
//! Easemob's JSON (`{"ext", "bodies"}`). [`MessageEvent::from_body`] does that conversion
//! once (through `missive_api::body`, the inverse of the REST send model), so a callback, a
//! pre-send check and a push of the same message all show the same content. It serializes,
//! so the outbox can keep it as it was at accept time.

use missive_msync::pb;
use missive_msync::pb::message_body::Type as BodyType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The kind of conversation, as Easemob's callbacks name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatType {
    /// One-to-one.
    Chat,
    GroupChat,
    ChatRoom,
}

impl ChatType {
    /// The name rules and CLI flags use: `chat`, `groupchat`, `chatroom`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatType::Chat => "chat",
            ChatType::GroupChat => "groupchat",
            ChatType::ChatRoom => "chatroom",
        }
    }

    pub fn parse(s: &str) -> Option<ChatType> {
        match s {
            "chat" => Some(ChatType::Chat),
            "groupchat" => Some(ChatType::GroupChat),
            "chatroom" => Some(ChatType::ChatRoom),
            _ => None,
        }
    }
}

/// Who sent the message: Easemob lets post-send rules leave out REST-sent messages, and
/// pre-send callbacks never see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A client SDK over MSYNC.
    Sdk,
    /// The REST API (`/messages/users`, recall, …).
    Rest,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// A chat message.
    Message,
    /// A recall notice; `recalled` is the id of the message taken back.
    Recall { recalled: u64 },
    /// A read receipt; `acked` is the id of the message read.
    ReadAck { acked: u64 },
}

/// One message event of one app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    /// `org#app`.
    pub app_key: String,
    /// The event's own message id (a recall or receipt has its own id too).
    pub msg_id: u64,
    /// Unix ms when the server accepted it.
    pub timestamp: i64,
    pub from: String,
    /// The recipient user; for group and room messages the group or room id, until
    /// [`MessageEvent::for_recipient`] names one member.
    pub to: String,
    pub chat_type: ChatType,
    /// The group or room, for group and room messages.
    pub group_id: Option<String>,
    pub kind: EventKind,
    pub origin: Origin,
    /// The message as Easemob's JSON shows it: `{"ext": {…}, "bodies": [{"type": …}]}`.
    pub payload: Map<String, Value>,
}

impl MessageEvent {
    /// The event an accepted `body` is, or `None` for kinds nobody is told about (delivery
    /// and channel acks, edits).
    pub fn from_body(
        app_key: &str,
        msg_id: u64,
        timestamp: i64,
        origin: Origin,
        body: &pb::MessageBody,
    ) -> Option<MessageEvent> {
        let to = body.to.as_ref().and_then(|j| j.name.clone()).unwrap_or_default();
        let (chat_type, kind) = match body.r#type() {
            BodyType::Normal | BodyType::Chat => (ChatType::Chat, EventKind::Message),
            BodyType::Groupchat => (ChatType::GroupChat, EventKind::Message),
            BodyType::Chatroom => (ChatType::ChatRoom, EventKind::Message),
            BodyType::Recall => (ChatType::Chat, EventKind::Recall { recalled: body.ack_message_id? }),
            BodyType::ReadAck => (ChatType::Chat, EventKind::ReadAck { acked: body.ack_message_id? }),
            BodyType::DeliverAck | BodyType::ChannelAck | BodyType::Edit => return None,
        };
        let group_id = (chat_type != ChatType::Chat).then(|| to.clone());
        Some(MessageEvent {
            app_key: app_key.to_owned(),
            msg_id,
            timestamp,
            from: body.from.as_ref().and_then(|j| j.name.clone()).unwrap_or_default(),
            to,
            chat_type,
            group_id,
            kind,
            origin,
            payload: missive_api::body::message_json(body),
        })
    }

    /// The same event addressed to one member (group `chat_offline` callbacks and pushes
    /// name the member in `to`, not the group).
    pub fn for_recipient(&self, recipient: &str) -> MessageEvent {
        MessageEvent { to: recipient.to_owned(), ..self.clone() }
    }

    /// The message's `ext` object, when it has one.
    pub fn ext(&self) -> Option<&Map<String, Value>> {
        self.payload.get("ext").and_then(Value::as_object)
    }

    /// One key of `ext`.
    pub fn ext_get(&self, key: &str) -> Option<&Value> {
        self.ext()?.get(key)
    }

    /// The first body, where every single-content message keeps its content.
    pub fn first_body(&self) -> Option<&Map<String, Value>> {
        self.payload.get("bodies")?.as_array()?.first()?.as_object()
    }

    /// The REST type of the content (`txt`, `img`, …); `None` for recalls and receipts.
    pub fn body_type(&self) -> Option<&str> {
        match self.kind {
            EventKind::Message => self.first_body()?.get("type")?.as_str(),
            _ => None,
        }
    }

    /// A boolean flag in `ext`, as Easemob's SDKs write them (`true`, or sometimes `1`/"true").
    pub fn ext_flag(&self, key: &str) -> bool {
        truthy(self.ext_get(key))
    }
}

/// Easemob's SDKs and app servers write flags as booleans, numbers or strings; any of
/// `true`, non-zero, `"true"` or `"1"` means yes.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s == "1",
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use missive_api::send::{SendForm, SendRequest, chat_body};
    use serde_json::json;

    use super::*;

    /// The event of a REST send of `request` (the `/messages/users` JSON) from `from` to `to`.
    pub fn rest_event(request: Value, msg_id: u64) -> MessageEvent {
        let req = SendRequest::parse(&request, SendForm::Users, 600).unwrap();
        let mut body = chat_body(req.content().unwrap(), &req.ext);
        body.from = Some(pb::Jid { name: Some(req.from.clone()), ..Default::default() });
        body.to = Some(pb::Jid { name: Some(req.to[0].clone()), ..Default::default() });
        MessageEvent::from_body("org#app", msg_id, 1_600_060_847_294, Origin::Rest, &body).unwrap()
    }

    #[test]
    fn a_chat_body_becomes_a_message_event() {
        let ev =
            rest_event(json!({"from": "u1", "to": ["u2"], "type": "txt", "body": {"msg": "rr"}, "ext": {"k": 1}}), 7);
        assert_eq!(
            (ev.from.as_str(), ev.to.as_str(), ev.chat_type, ev.kind),
            ("u1", "u2", ChatType::Chat, EventKind::Message)
        );
        assert_eq!(
            Value::Object(ev.payload.clone()),
            json!({"ext": {"k": 1}, "bodies": [{"type": "txt", "msg": "rr"}]})
        );
        assert_eq!(ev.body_type(), Some("txt"));
        assert_eq!(ev.group_id, None);
        let back: MessageEvent = serde_json::from_value(serde_json::to_value(&ev).unwrap()).unwrap();
        assert_eq!(back, ev, "the outbox keeps events as JSON");
    }

    #[test]
    fn receipts_recalls_and_groups() {
        let jid = |n: &str| Some(pb::Jid { name: Some(n.into()), ..Default::default() });
        let mut body = pb::MessageBody { from: jid("a"), to: jid("b"), ack_message_id: Some(42), ..Default::default() };
        body.set_type(BodyType::Recall);
        let ev = MessageEvent::from_body("o#a", 9, 1, Origin::Sdk, &body).unwrap();
        assert_eq!(ev.kind, EventKind::Recall { recalled: 42 });
        assert_eq!(ev.body_type(), None);
        body.set_type(BodyType::ReadAck);
        assert_eq!(
            MessageEvent::from_body("o#a", 9, 1, Origin::Sdk, &body).unwrap().kind,
            EventKind::ReadAck { acked: 42 }
        );
        body.set_type(BodyType::DeliverAck);
        assert_eq!(MessageEvent::from_body("o#a", 9, 1, Origin::Sdk, &body), None);
        body.ack_message_id = None;
        body.set_type(BodyType::Recall);
        assert_eq!(MessageEvent::from_body("o#a", 9, 1, Origin::Sdk, &body), None, "a recall of nothing");
        body.set_type(BodyType::Groupchat);
        body.to = jid("g1");
        let ev = MessageEvent::from_body("o#a", 9, 1, Origin::Sdk, &body).unwrap();
        assert_eq!((ev.chat_type, ev.group_id.as_deref()), (ChatType::GroupChat, Some("g1")));
        assert_eq!(ev.for_recipient("m1").to, "m1");
    }

    #[test]
    fn flags_read_the_way_sdks_write_them() {
        for yes in [json!(true), json!(1), json!("true"), json!("TRUE"), json!("1")] {
            assert!(truthy(Some(&yes)), "{yes}");
        }
        for no in [json!(false), json!(0), json!("no"), json!(null), json!([])] {
            assert!(!truthy(Some(&no)), "{no}");
        }
        assert!(!truthy(None));
    }
}
