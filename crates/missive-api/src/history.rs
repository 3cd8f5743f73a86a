//! Message roaming (消息漫游): one conversation's archive, paged for the SDK.
//!
//! `POST /{org}/{app}/users/{username}/messageroaming` is how the Web SDK's
//! `getHistoryMessages` (and the older `fetchHistoryMessages`) read history. This module
//! turns the JSON body the SDK sends into a [`RoamingRequest`] — the peer and a typed
//! [`HistoryQuery`] a store can answer with one indexed range scan — and renders the rows
//! the store returns as the answer the SDK decodes: each message a base64 `Meta`, exactly
//! the one live delivery sends, plus `is_last` and `next_key`. The body and answer shapes
//! are read from `easemob-websdk` 4.21.1; `docs/protocol.md` ("History and conversations
//! on the wire") has the details and byte-level examples.
//!
//! The domain types every history listing shares — [`ArchivedMessage`], [`MessageKind`],
//! [`IdWindow`], [`HistoryQuery`] — live in `missive_core::archive` (stores use them too)
//! and are re-exported here; this module adds what is MSYNC- or REST-specific.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
pub use missive_core::archive::{
    ArchivedMessage, Direction, HistoryQuery, IdWindow, KindSet, MAX_STORED_ID, MessageKind, TimeRange,
};
use missive_core::id::MsgId;
use missive_core::model::normalize_username;
use missive_msync::frame::{GROUP_DOMAIN, USER_DOMAIN, jid};
use missive_msync::pb;
use missive_msync::pb::message_body::content::Type as ContentType;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::body::is_combine;
use crate::error::RequestError;

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// Messages per page when the request names no `pull_number`, as in the SDK.
pub const DEFAULT_PULL: u32 = 20;
/// Most messages per page: the SDK documents `pageSize` in [1, 50].
pub const MAX_PULL: u32 = 50;

/// The kind of one content, read the way the SDK's decoder reads it.
pub fn content_kind(c: &pb::message_body::Content) -> MessageKind {
    if is_combine(c) {
        return MessageKind::Combine;
    }
    match c.r#type() {
        ContentType::Text => MessageKind::Text,
        ContentType::Image => MessageKind::Image,
        ContentType::Voice => MessageKind::Audio,
        ContentType::Video => MessageKind::Video,
        ContentType::File => MessageKind::File,
        ContentType::Location => MessageKind::Location,
        ContentType::Command => MessageKind::Command,
        ContentType::Custom => MessageKind::Custom,
        ContentType::Combine => MessageKind::Combine,
    }
}

/// Whether a message goes into the archive, and under which kind: one-to-one chat
/// messages only. Receipts, recalls, edits and channel acks are events about messages,
/// not history; a body without content has nothing to show.
pub fn archived_kind(body: &pb::MessageBody) -> Option<MessageKind> {
    use pb::message_body::Type;
    // An absent type is a chat message, as the session reads uploads.
    match body.r#type.map(Type::try_from) {
        None | Some(Ok(Type::Chat)) => body.contents.first().map(content_kind),
        Some(_) => None,
    }
}

/// The conversation a roaming request names (`queue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queue {
    /// A one-to-one conversation with this user (`{peer}@easemob.com`).
    User(String),
    /// A group or chat room (`{id}@conference.easemob.com`, also what the SDK sends when
    /// `chatType` is missing). Missive has neither, so its history is empty.
    Group(String),
}

/// A validated `messageroaming` request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoamingRequest {
    pub queue: Queue,
    pub query: HistoryQuery,
}

impl RoamingRequest {
    /// Validates the body `getHistoryMessages`/`fetchHistoryMessages` send:
    /// `{queue, start, pull_number, is_positive, msgType, end, startTime, endTime, userId}`.
    pub fn parse(body: &Value) -> Result<RoamingRequest> {
        let obj = body.as_object().ok_or(RequestError::InvalidBody)?;
        let queue = parse_queue(obj.get("queue"))?;
        let cursor = parse_start(obj.get("start"))?;
        let limit = match obj.get("pull_number") {
            None | Some(Value::Null) => DEFAULT_PULL,
            Some(v) => {
                let n = integer(v).ok_or(RequestError::InvalidBody)?;
                n.clamp(1, i64::from(MAX_PULL)) as u32
            }
        };
        let direction = match obj.get("is_positive") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Direction::Older,
            Some(Value::Bool(true)) => Direction::Newer,
            Some(_) => return Err(RequestError::InvalidBody),
        };
        let kinds = match obj.get("msgType") {
            None | Some(Value::Null) => KindSet::default(),
            Some(Value::String(s)) => parse_kinds(s)?,
            Some(_) => return Err(RequestError::InvalidBody),
        };
        // `end` is always -1 from the SDK; any id-like value is accepted and not used.
        match obj.get("end") {
            None | Some(Value::Null | Value::Number(_) | Value::String(_)) => {}
            Some(_) => return Err(RequestError::InvalidBody),
        }
        let start_ms = time_bound(obj.get("startTime"))?;
        let end_ms = time_bound(obj.get("endTime"))?;
        let time = TimeRange {
            start_ms: start_ms.unwrap_or(0),
            // `endTime` is inclusive in the SDK's words ("from the start time to the end time").
            end_ms: end_ms.map(|ms| ms.saturating_add(1)),
        };
        let from = match obj.get("userId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
            Some(_) => return Err(RequestError::InvalidBody),
        };
        Ok(RoamingRequest { queue, query: HistoryQuery { direction, cursor, time, kinds, from, limit } })
    }
}

fn field_invalid(name: &str) -> RequestError {
    RequestError::IllegalArgument(format!("field {name} is invalid"))
}

fn parse_queue(v: Option<&Value>) -> Result<Queue> {
    let raw = match v {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(RequestError::InvalidBody),
    };
    if raw.is_empty() {
        return Err(RequestError::IllegalArgument("field queue cannot be null or empty".into()));
    }
    let (name, domain) = raw.split_once('@').unwrap_or((raw, USER_DOMAIN));
    if domain.eq_ignore_ascii_case(GROUP_DOMAIN) && !name.is_empty() {
        return Ok(Queue::Group(name.to_owned()));
    }
    if !domain.eq_ignore_ascii_case(USER_DOMAIN) {
        return Err(field_invalid("queue"));
    }
    normalize_username(name).map(Queue::User).map_err(|_| field_invalid("queue"))
}

/// `start`: the cursor. `-1`, `"-1"`, `""` and `null` mean "from the end"; otherwise a
/// message id, as a decimal string (what `next_key` is) or a number.
fn parse_start(v: Option<&Value>) -> Result<Option<MsgId>> {
    let text = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(_) => return Err(RequestError::InvalidBody),
    };
    if text.is_empty() || text == "-1" {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field_invalid("start"));
    }
    text.parse::<u64>().map(|id| Some(MsgId(id))).map_err(|_| field_invalid("start"))
}

/// An integer from a JSON number or a numeric string; fractions are dropped.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `startTime`/`endTime`: ms, `null` or absent; zero and negatives (`-1` is the native
/// SDKs' "unset") mean no bound.
fn time_bound(v: Option<&Value>) -> Result<Option<u64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(_)) => Ok(integer(v).filter(|&ms| ms > 0).map(|ms| ms as u64)),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

/// `msgType`: comma-separated kind names, as the SDK joins `searchOptions.msgTypes`.
fn parse_kinds(s: &str) -> Result<KindSet> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).try_fold(KindSet::default(), |mut set, name| {
        let kind = MessageKind::from_name(name).ok_or_else(|| {
            let shown: String = name.chars().take(32).collect();
            RequestError::IllegalArgument(format!("msgType {shown} is not supported"))
        })?;
        set.insert(kind);
        Ok(set)
    })
}

/// The `Meta` an archived message travels in — the same fields live delivery sets: the
/// SDK reads `id`, `timestamp` and `ns` from it and everything else from the body.
/// `Meta.to.client_resource` stays unset (the SDK would append it to `to`) and `Meta.meta`
/// too (so `onlineState` is 3, as for live messages).
pub fn history_meta(app_key: &str, m: &ArchivedMessage) -> pb::Meta {
    pb::Meta {
        id: Some(m.id.0),
        from: Some(jid(app_key, &m.from)),
        to: Some(jid(app_key, &m.to)),
        timestamp: Some(m.timestamp),
        ns: Some(pb::meta::NameSpace::Chat as i32),
        payload: Some(m.payload.clone()),
        ..Default::default()
    }
}

/// The `data` of a `messageroaming` answer: `{msgs: [{msg}], is_last, next_key?}`.
///
/// `rows` is what the store returned for `query.limit + 1` rows in the query's direction;
/// at most `limit` are sent. `next_key` (the id of the last message sent, as a string) is
/// present only when more follow: the SDK hands it back as `start`, and documents its
/// `cursor` as undefined on the last page.
pub fn roaming_data(app_key: &str, rows: &[ArchivedMessage], limit: u32) -> Value {
    let limit = limit.clamp(1, MAX_PULL) as usize;
    let page = &rows[..rows.len().min(limit)];
    let msgs: Vec<Value> =
        page.iter().map(|m| json!({ "msg": STANDARD.encode(history_meta(app_key, m).encode_to_vec()) })).collect();
    let mut data = Map::new();
    data.insert("msgs".into(), Value::Array(msgs));
    let is_last = rows.len() <= limit;
    data.insert("is_last".into(), Value::Bool(is_last));
    if let (false, Some(last)) = (is_last, page.last()) {
        data.insert("next_key".into(), Value::String(last.id.to_string()));
    }
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use missive_msync::pb::message_body::content::SubType;
    use proptest::prelude::*;

    use super::*;

    fn req(v: Value) -> Result<RoamingRequest> {
        RoamingRequest::parse(&v)
    }

    fn ill(s: &str) -> RequestError {
        RequestError::IllegalArgument(s.into())
    }

    #[test]
    fn what_the_sdk_sends_by_default() {
        // getHistoryMessages({targetId:'alice', chatType:'singleChat'}) in 4.21.1:
        let r = req(json!({"queue":"alice@easemob.com","start":-1,"pull_number":20,"is_positive":false,
            "msgType":"","end":-1,"startTime":null,"endTime":null,"userId":null}))
        .unwrap();
        assert_eq!(r.queue, Queue::User("alice".into()));
        let q = r.query;
        assert_eq!((q.direction, q.cursor, q.limit, q.from), (Direction::Older, None, 20, None));
        assert!(q.kinds.is_all());
        assert_eq!(q.time, TimeRange::ALL);
        // fetchHistoryMessages sends only three fields.
        let r = req(json!({"queue":"alice@easemob.com","start":-1,"end":-1})).unwrap();
        assert_eq!((r.query.limit, r.query.direction), (DEFAULT_PULL, Direction::Older));
    }

    #[test]
    fn every_option() {
        let r = req(json!({"queue":"Alice@easemob.com","start":"1234567890123456789","pull_number":30,
            "is_positive":true,"msgType":"txt,img","end":-1,"startTime":1700000000000u64,
            "endTime":1800000000000u64,"userId":"Carol"}))
        .unwrap();
        assert_eq!(r.queue, Queue::User("alice".into()));
        let q = &r.query;
        assert_eq!((q.direction, q.cursor, q.limit), (Direction::Newer, Some(MsgId(1234567890123456789)), 30));
        assert_eq!(q.kinds.codes(), vec![1, 2]);
        assert!(q.kinds.contains(MessageKind::Image) && !q.kinds.contains(MessageKind::Custom));
        assert_eq!(q.time, TimeRange { start_ms: 1700000000000, end_ms: Some(1800000000001) });
        assert_eq!(q.from.as_deref(), Some("carol"));
    }

    #[test]
    fn cursors_limits_and_queues() {
        for none in [json!(null), json!(-1), json!("-1"), json!(""), json!(" ")] {
            assert_eq!(req(json!({"queue":"a","start":none})).unwrap().query.cursor, None, "{none}");
        }
        assert_eq!(req(json!({"queue":"a","start":42})).unwrap().query.cursor, Some(MsgId(42)));
        for bad in [json!("abc"), json!("-2"), json!(1.5), json!("99999999999999999999")] {
            assert_eq!(req(json!({"queue":"a","start":bad})), Err(ill("field start is invalid")), "{bad}");
        }
        assert_eq!(req(json!({"queue":"a","start":[1]})), Err(RequestError::InvalidBody));
        for (n, want) in [(json!(0), 1), (json!(-5), 1), (json!(500), 50), (json!("7"), 7), (json!(7.9), 7)] {
            assert_eq!(req(json!({"queue":"a","pull_number":n})).unwrap().query.limit, want);
        }
        assert_eq!(req(json!({"queue":"a","pull_number":"many"})), Err(RequestError::InvalidBody));
        assert_eq!(
            req(json!({"queue":"g1@conference.easemob.com"})).unwrap().queue,
            Queue::Group("g1".into()),
            "what the SDK sends for a group, or when chatType is missing"
        );
        for missing in [json!({}), json!({"queue":null}), json!({"queue":""})] {
            assert_eq!(req(missing), Err(ill("field queue cannot be null or empty")));
        }
        for bad in ["a@example.com", "@easemob.com", "a b@easemob.com", "@conference.easemob.com"] {
            assert_eq!(req(json!({"queue":bad})), Err(ill("field queue is invalid")), "{bad}");
        }
        assert_eq!(req(json!({"queue":7})), Err(RequestError::InvalidBody));
        assert_eq!(req(json!(["queue"])), Err(RequestError::InvalidBody));
    }

    #[test]
    fn filters() {
        assert_eq!(req(json!({"queue":"a","msgType":"txt,xml"})), Err(ill("msgType xml is not supported")));
        assert_eq!(req(json!({"queue":"a","msgType":" cmd , ,custom"})).unwrap().query.kinds.codes(), vec![7, 8]);
        assert_eq!(req(json!({"queue":"a","is_positive":"true"})), Err(RequestError::InvalidBody));
        assert_eq!(req(json!({"queue":"a","startTime":"1"})), Err(RequestError::InvalidBody));
        assert_eq!(req(json!({"queue":"a","startTime":-1,"endTime":0})).unwrap().query.time, TimeRange::ALL);
        assert_eq!(req(json!({"queue":"a","userId":5})), Err(RequestError::InvalidBody));
        assert_eq!(req(json!({"queue":"a","end":{}})), Err(RequestError::InvalidBody));
    }

    fn body(content: pb::message_body::Content, ty: Option<pb::message_body::Type>) -> pb::MessageBody {
        pb::MessageBody { r#type: ty.map(|t| t as i32), contents: vec![content], ..Default::default() }
    }

    fn content(t: ContentType) -> pb::message_body::Content {
        let mut c = pb::message_body::Content::default();
        c.set_type(t);
        c
    }

    #[test]
    fn only_chat_messages_are_archived() {
        use pb::message_body::Type;
        assert_eq!(archived_kind(&body(content(ContentType::Text), None)), Some(MessageKind::Text));
        assert_eq!(archived_kind(&body(content(ContentType::Voice), Some(Type::Chat))), Some(MessageKind::Audio));
        for t in [Type::ReadAck, Type::DeliverAck, Type::Recall, Type::ChannelAck, Type::Edit, Type::Groupchat] {
            assert_eq!(archived_kind(&body(content(ContentType::Text), Some(t))), None, "{t:?}");
        }
        assert_eq!(archived_kind(&pb::MessageBody::default()), None, "no content");
        let mut combined = content(ContentType::Text);
        combined.sub_type = Some(SubType::SubCombine as i32);
        assert_eq!(archived_kind(&body(combined, None)), Some(MessageKind::Combine));
        let mut gif = content(ContentType::Image);
        gif.sub_type = Some(SubType::Gif as i32);
        assert_eq!(archived_kind(&body(gif, None)), Some(MessageKind::Image));
    }

    fn archived(id: u64) -> ArchivedMessage {
        let mut c = content(ContentType::Text);
        c.text = Some(format!("m{id}"));
        let b = pb::MessageBody {
            r#type: Some(pb::message_body::Type::Chat as i32),
            from: Some(pb::Jid { name: Some("alice".into()), ..Default::default() }),
            to: Some(pb::Jid { name: Some("bob".into()), ..Default::default() }),
            contents: vec![c],
            ..Default::default()
        };
        ArchivedMessage {
            id: MsgId(id),
            from: "alice".into(),
            to: "bob".into(),
            timestamp: 1_700_000_000_000 + id,
            payload: b.encode_to_vec().into(),
        }
    }

    fn decode_page(data: &Value) -> Vec<pb::Meta> {
        data["msgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| pb::Meta::decode(STANDARD.decode(m["msg"].as_str().unwrap()).unwrap().as_slice()).unwrap())
            .collect()
    }

    #[test]
    fn a_page_is_metas_as_delivered() {
        let rows: Vec<_> = (1..=3).map(archived).collect();
        let data = roaming_data("org#app", &rows, 2);
        assert_eq!((data["is_last"].clone(), data["next_key"].clone()), (json!(false), json!("2")));
        let metas = decode_page(&data);
        assert_eq!(metas.len(), 2);
        let m = &metas[0];
        assert_eq!((m.id, m.timestamp, m.ns), (Some(1), Some(1_700_000_000_001), Some(1)));
        assert_eq!(m.from.as_ref().and_then(|j| j.name.as_deref()), Some("alice"));
        let to = m.to.as_ref().unwrap();
        assert_eq!(
            (to.app_key.as_deref(), to.domain.as_deref(), to.client_resource.as_deref()),
            (Some("org#app"), Some("easemob.com"), None)
        );
        assert_eq!(m.payload.as_ref(), Some(&rows[0].payload), "the body bytes are the delivered ones");
        assert_eq!(m.meta, None);
        // Exactly `limit` left: the last page, and no cursor.
        let data = roaming_data("org#app", &rows[..2], 2);
        assert_eq!(data, json!({"msgs": data["msgs"].clone(), "is_last": true}));
        assert_eq!(roaming_data("org#app", &[], 20), json!({"msgs": [], "is_last": true}));
    }

    proptest! {
        /// Paging a conversation with the renderer's `next_key` as the next cursor, in
        /// either direction, visits every message once, in order.
        #[test]
        fn pages_concatenate_to_the_archive(
            ids in proptest::collection::btree_set(1u64..10_000, 0..120),
            limit in 1u32..=50,
            newer: bool,
        ) {
            let direction = if newer { Direction::Newer } else { Direction::Older };
            let archive: Vec<ArchivedMessage> = ids.iter().map(|&i| archived(i)).collect();
            let mut cursor = None;
            let mut seen = Vec::new();
            for _ in 0..=archive.len() {
                let q = HistoryQuery { direction, cursor, time: TimeRange::ALL, kinds: KindSet::default(), from: None, limit };
                let w = q.window();
                let mut rows: Vec<ArchivedMessage> = archive.iter().filter(|m| w.contains(m.id)).cloned().collect();
                if direction == Direction::Older {
                    rows.reverse();
                }
                rows.truncate(limit as usize + 1);
                let data = roaming_data("o#a", &rows, limit);
                seen.extend(decode_page(&data).iter().map(|m| m.id.unwrap()));
                if data["is_last"] == json!(true) {
                    prop_assert!(data.get("next_key").is_none());
                    break;
                }
                cursor = Some(MsgId(data["next_key"].as_str().unwrap().parse().unwrap()));
            }
            let mut want: Vec<u64> = ids.into_iter().collect();
            if direction == Direction::Older {
                want.reverse();
            }
            prop_assert_eq!(seen, want);
        }
    }
}
