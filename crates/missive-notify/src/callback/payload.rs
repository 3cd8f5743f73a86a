//! The exact post-send callback body (easemob-api.md §6.3, `callback_message_send.md`,
//! `callback_message_recall.md`, `callback_single_read_ack.md`) and its signature.
//!
//! A message event:
//! `{callId, eventType, timestamp, chat_type, [group_id,] from, to, msg_id, payload: {ext,
//! bodies}, securityVersion, security, appkey, host, content_type}`.
//! A recall or read receipt has `chat_type: recall | read_ack`, `eventType: chat`,
//! `payload: {ext: {}, ack_message_id, bodies: []}`, and a recall also `recall_id`.
//!
//! `callId` is `{appkey}_{msg_id}` for message events (callback_configurations.md), so a
//! receiver can de-duplicate a callback that was delivered twice (the outbox delivers at
//! least once). `security = md5_hex(callId + secret + timestamp)` in lower-case hex, as Java's
//! `DigestUtils.md5Hex`, with `timestamp` the body's number as decimal text.

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use super::rule::CallbackEvent;
use crate::event::{ChatType, EventKind, MessageEvent};

/// `securityVersion`, fixed by Easemob.
pub const SECURITY_VERSION: &str = "1.0.0";

/// `{appkey}_{id}`.
pub fn call_id(app_key: &str, id: impl std::fmt::Display) -> String {
    format!("{app_key}_{id}")
}

/// `md5_hex(callId + secret + timestamp)`, lower case.
pub fn security(call_id: &str, secret: &str, timestamp: i64) -> String {
    let digest = Md5::digest(format!("{call_id}{secret}{timestamp}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The body of the `which` callback for `event`, without `securityVersion`/`security`
/// (added by [`sign`] when it is sent). `host` names this server.
pub fn post_send(event: &MessageEvent, which: CallbackEvent, host: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("callId".into(), call_id(&event.app_key, event.msg_id).into());
    m.insert("eventType".into(), if which == CallbackEvent::ChatOffline { "chat_offline" } else { "chat" }.into());
    m.insert("timestamp".into(), event.timestamp.into());
    m.insert("from".into(), event.from.clone().into());
    m.insert("to".into(), event.to.clone().into());
    m.insert("msg_id".into(), event.msg_id.to_string().into());
    m.insert("appkey".into(), event.app_key.clone().into());
    m.insert("host".into(), host.into());
    if let Some(g) = &event.group_id {
        m.insert("group_id".into(), g.clone().into());
    }
    match event.kind {
        EventKind::Message => {
            // Easemob reports groups and rooms alike as `groupchat`.
            let chat_type = if event.chat_type == ChatType::Chat { "chat" } else { "groupchat" };
            m.insert("chat_type".into(), chat_type.into());
            m.insert("payload".into(), Value::Object(event.payload.clone()));
            m.insert("content_type".into(), content_type(event).into());
        }
        EventKind::Recall { recalled } => {
            m.insert("chat_type".into(), "recall".into());
            m.insert("recall_id".into(), recalled.to_string().into());
            m.insert("payload".into(), ack_payload(recalled));
        }
        EventKind::ReadAck { acked } => {
            m.insert("chat_type".into(), "read_ack".into());
            m.insert("payload".into(), ack_payload(acked));
        }
    }
    m
}

fn ack_payload(id: u64) -> Value {
    serde_json::json!({"ext": {}, "ack_message_id": id.to_string(), "bodies": []})
}

/// Easemob's newer `content_type`: `chat:{user|group|room}:{kind}`, where a combined
/// message is `txt` and an unknown body `unknown`.
fn content_type(event: &MessageEvent) -> String {
    let scope = match event.chat_type {
        ChatType::Chat => "user",
        ChatType::GroupChat => "group",
        ChatType::ChatRoom => "room",
    };
    let combine = event.first_body().is_some_and(|b| b.contains_key("subType"));
    let kind = match event.body_type() {
        Some("txt") if combine => "txt",
        Some("txt") => "text",
        Some("img") => "image",
        Some("audio") => "voice",
        Some("loc") => "location",
        Some("video") => "video",
        Some("file") => "file",
        Some("cmd") => "command",
        Some("custom") => "custom",
        _ => "unknown",
    };
    format!("chat:{scope}:{kind}")
}

/// `payload` with `securityVersion` and `security` for `secret`, as the bytes to post.
pub fn sign(payload: &Map<String, Value>, secret: &str) -> Vec<u8> {
    let mut signed = payload.clone();
    let call_id = payload.get("callId").and_then(Value::as_str).unwrap_or_default();
    let timestamp = payload.get("timestamp").and_then(Value::as_i64).unwrap_or_default();
    signed.insert("securityVersion".into(), SECURITY_VERSION.into());
    signed.insert("security".into(), security(call_id, secret, timestamp).into());
    serde_json::to_vec(&signed).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::tests::rest_event;
    use crate::event::{MessageEvent, Origin};

    /// The value is computed independently (`printf %s … | md5sum`) so the test cannot pass
    /// by agreeing with itself.
    #[test]
    fn security_is_md5_of_call_id_secret_timestamp() {
        assert_eq!(security("org#app_123", "secret", 1600060847294), "a0927ecec83f2c70c8f4e1f6b05b2907");
        assert_eq!(security("", "", 0), "cfcd208495d565ef66e7dff9f98764da", "md5(\"0\")");
    }

    #[test]
    fn chat_payload_has_every_documented_field() {
        let ev =
            rest_event(json!({"from": "user1", "to": ["user2"], "type": "txt", "body": {"msg": "rr"}}), 8924312242322);
        let body: Value =
            serde_json::from_slice(&sign(&post_send(&ev, CallbackEvent::Chat, "missive@n1"), "s3")).unwrap();
        let ts = 1_600_060_847_294_i64;
        assert_eq!(
            body,
            json!({
                "callId": "org#app_8924312242322", "eventType": "chat", "timestamp": ts, "chat_type": "chat",
                "from": "user1", "to": "user2", "msg_id": "8924312242322",
                "payload": {"ext": {}, "bodies": [{"msg": "rr", "type": "txt"}]},
                "securityVersion": "1.0.0", "security": security("org#app_8924312242322", "s3", ts),
                "appkey": "org#app", "host": "missive@n1", "content_type": "chat:user:text",
            })
        );
        let offline = post_send(&ev, CallbackEvent::ChatOffline, "h");
        assert_eq!(offline["eventType"], "chat_offline");
    }

    #[test]
    fn recall_and_read_ack_payloads() {
        let mut ev = MessageEvent {
            app_key: "orgname#appname".into(),
            msg_id: 966475585536657404,
            timestamp: 1642589932646,
            from: "tst".into(),
            to: "170908972023810".into(),
            chat_type: ChatType::Chat,
            group_id: None,
            kind: EventKind::Recall { recalled: 966475220900644860 },
            origin: Origin::Sdk,
            payload: Map::new(),
        };
        let recall = Value::Object(post_send(&ev, CallbackEvent::Recall, "h"));
        assert_eq!(recall["chat_type"], "recall");
        assert_eq!(recall["eventType"], "chat");
        assert_eq!(recall["recall_id"], "966475220900644860");
        assert_eq!(recall["payload"], json!({"ext": {}, "ack_message_id": "966475220900644860", "bodies": []}));
        assert_eq!(recall["callId"], "orgname#appname_966475585536657404");
        assert!(recall.get("content_type").is_none());
        ev.kind = EventKind::ReadAck { acked: 968665323572037776 };
        let ack = Value::Object(post_send(&ev, CallbackEvent::ReadAck, "h"));
        assert_eq!(ack["chat_type"], "read_ack");
        assert_eq!(ack["payload"]["ack_message_id"], "968665323572037776");
        assert!(ack.get("recall_id").is_none());
    }

    #[test]
    fn groups_report_as_groupchat_with_group_id() {
        let mut ev = rest_event(json!({"from": "a", "to": ["b"], "type": "img", "body": {"url": "u"}}), 1);
        ev.chat_type = ChatType::ChatRoom;
        ev.group_id = Some("r1".into());
        let p = post_send(&ev.for_recipient("m"), CallbackEvent::ChatOffline, "h");
        assert_eq!(
            (p["chat_type"].as_str(), p["group_id"].as_str(), p["to"].as_str()),
            (Some("groupchat"), Some("r1"), Some("m"))
        );
        assert_eq!(p["content_type"], "chat:room:image");
    }
}
