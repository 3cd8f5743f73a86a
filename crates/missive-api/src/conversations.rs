//! Conversations: a user's list of peers with the latest message and unread count, and the
//! requests that change it — one-way delete, pinning, roaming delete, and the read
//! position a channel ack sets.
//!
//! Two list endpoints serve the Web SDK (4.21.1): `getServerConversations` /
//! `getServerPinnedConversations` read `GET /sdk/user/{u}/user_channels/list` (cursor
//! paging), the older `getConversationlist`/`getSessionList` read `GET
//! /users/{u}/user_channels[/page]` (everything, or page numbers). Both answer
//! `channel_infos` items of one shape, rendered here by [`channel_info`]: the SDK reads
//! `session_to`, `session_type`, `is_top`, `update_top_status_time`, `unread_num`, `marks`
//! and `meta` (the latest message, its `payload` a JSON *string* of the record payload) from
//! the new list, and hands `channel_id`, `unread_num` and `meta` of the old one to the app.
//! `docs/protocol.md` ("History and conversations on the wire") has the captured requests.

use missive_core::id::MsgId;
use missive_msync::frame::USER_DOMAIN;
use missive_msync::pb;
use serde_json::{Map, Value, json};

pub use missive_core::archive::{ConversationSummary, ListOrder};

use crate::chatlog::record_payload;
use crate::cursor::{CursorKind, PageCursor};
use crate::error::RequestError;
use crate::history::{IdWindow, TimeRange};

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// Conversations per page when the request names no `limit` (the SDK's default).
pub const DEFAULT_PAGE: u32 = 20;
/// Most conversations per page: the SDK documents `pageSize` in [1, 50].
pub const MAX_PAGE: u32 = 50;
/// Most conversations per page of the page-numbered legacy list ("cannot exceed 20").
pub const MAX_LEGACY_PAGE: u32 = 20;
/// Most message ids one roaming delete may name (Easemob's limit).
pub const MAX_DELETE_IDS: usize = 50;

/// A validated `GET /sdk/user/{u}/user_channels/list?limit&cursor&need_mark&needEmptySession[&is_top]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationListRequest {
    /// Page size, 1 to [`MAX_PAGE`]; stores fetch `limit + 1` rows.
    pub limit: u32,
    pub cursor: Option<PageCursor>,
    /// `is_top=true`: pinned conversations only, by pin time.
    pub pinned_only: bool,
    /// `needEmptySession=true`: also conversations with no message left.
    pub include_empty: bool,
}

fn limit_param(v: &str, max: u32) -> Result<u32> {
    match v.trim().parse::<i64>() {
        Ok(n) => Ok(n.clamp(1, i64::from(max)) as u32),
        Err(_) => Err(RequestError::IllegalArgument("limit must be a number".into())),
    }
}

impl ConversationListRequest {
    /// Validates the query string's pairs (URL-decoded). Unknown keys — `_v`, the empty
    /// key of the SDK's `list?&limit=…`, `need_mark` — are ignored.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ConversationListRequest> {
        let mut req =
            ConversationListRequest { limit: DEFAULT_PAGE, cursor: None, pinned_only: false, include_empty: false };
        for (k, v) in pairs {
            match k {
                "limit" if !v.is_empty() => req.limit = limit_param(v, MAX_PAGE)?,
                "cursor" if !v.is_empty() => {
                    req.cursor = Some(
                        PageCursor::decode(v, CursorKind::Conversations)
                            .ok_or_else(|| RequestError::IllegalArgument("cursor is invalid".into()))?,
                    )
                }
                "is_top" => req.pinned_only = v.eq_ignore_ascii_case("true"),
                "needEmptySession" => req.include_empty = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        Ok(req)
    }

    pub fn order(&self) -> ListOrder {
        if self.pinned_only { ListOrder::Pinned } else { ListOrder::Activity }
    }
}

/// A validated `GET /users/{u}/user_channels` (everything) or `…/user_channels/page?pageNum&pageSize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyListRequest {
    /// Rows to skip, in activity order.
    pub offset: u32,
    /// Rows to return.
    pub limit: u32,
}

impl LegacyListRequest {
    /// `paged`: the request came to `…/page`. Without it, the whole list up to `max_list`
    /// conversations (the server's cap on a user's list).
    pub fn parse<'a>(
        paged: bool,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        max_list: u32,
    ) -> Result<LegacyListRequest> {
        if !paged {
            return Ok(LegacyListRequest { offset: 0, limit: max_list });
        }
        let (mut num, mut size) = (1u32, MAX_LEGACY_PAGE);
        for (k, v) in pairs {
            match k {
                "pageNum" => num = limit_param(v, u32::MAX)?,
                "pageSize" => size = limit_param(v, MAX_LEGACY_PAGE)?,
                _ => {}
            }
        }
        Ok(LegacyListRequest { offset: (num - 1).saturating_mul(size), limit: size })
    }
}

/// `{app_key}_{name}@{domain}`: the string JID the list's `channel_id` and `meta.from`/`to` use.
fn string_jid(app_key: &str, name: &str) -> String {
    format!("{app_key}_{name}@{USER_DOMAIN}")
}

/// One `channel_infos` item. `meta` is `{}` for a conversation with no message, which both
/// SDK list functions read as "no last message".
pub fn channel_info(app_key: &str, c: &ConversationSummary) -> Value {
    let meta = match &c.latest {
        None => json!({}),
        Some(m) => json!({
            "id": m.id.to_string(),
            "from": string_jid(app_key, &m.from),
            "to": string_jid(app_key, &m.to),
            "timestamp": m.timestamp,
            // A string: the SDK `JSON.parse`s it.
            "payload": Value::Object(record_payload(m)).to_string(),
        }),
    };
    json!({
        "channel_id": string_jid(app_key, &c.peer),
        "session_to": c.peer,
        "session_type": "chat",
        "is_top": c.pinned_at.is_some(),
        "update_top_status_time": c.pinned_at.unwrap_or(0),
        "unread_num": c.unread,
        "marks": [],
        "meta": meta,
    })
}

/// The `data` of the cursor-paged list: `{channel_infos, cursor?}`. `rows` is what the store
/// returned for `limit + 1` rows after the request's cursor in its order; `cursor` is
/// present only when more follow (the SDK documents it as empty on the last page).
pub fn conversation_list_data(app_key: &str, rows: &[ConversationSummary], req: &ConversationListRequest) -> Value {
    let limit = req.limit.clamp(1, MAX_PAGE) as usize;
    let page = &rows[..rows.len().min(limit)];
    let mut data = Map::new();
    data.insert("channel_infos".into(), page.iter().map(|c| channel_info(app_key, c)).collect());
    if let (true, Some(last)) = (rows.len() > limit, page.last()) {
        let cursor = PageCursor::new(last.key(req.order()), last.peer.clone());
        data.insert("cursor".into(), cursor.encode(CursorKind::Conversations).into());
    }
    Value::Object(data)
}

/// The `data` of the legacy list: `{channel_infos}`.
pub fn legacy_list_data(app_key: &str, rows: &[ConversationSummary]) -> Value {
    json!({ "channel_infos": rows.iter().map(|c| channel_info(app_key, c)).collect::<Vec<_>>() })
}

/// Whether a request names a one-to-one conversation or a group's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatType {
    Chat,
    /// `groupchat` (REST) or `groupChat` (the SDK's spelling). Missive has no groups, so
    /// such a request changes nothing and succeeds.
    Group,
}

fn chat_type(v: Option<&Value>) -> Result<ChatType> {
    match v {
        None | Some(Value::Null) => Err(RequestError::IllegalArgument("field type cannot be null or empty".into())),
        Some(Value::String(s)) => chat_type_text(s),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

fn chat_type_text(s: &str) -> Result<ChatType> {
    if s.is_empty() {
        Err(RequestError::IllegalArgument("field type cannot be null or empty".into()))
    } else if s.eq_ignore_ascii_case("chat") {
        Ok(ChatType::Chat)
    } else if s.eq_ignore_ascii_case("groupchat") {
        Ok(ChatType::Group)
    } else {
        Err(RequestError::IllegalArgument("field type is invalid".into()))
    }
}

/// A non-empty string field, lower-cased; `cannot be null or empty` otherwise.
fn name_field(obj: &Map<String, Value>, key: &str) -> Result<String> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(RequestError::IllegalArgument(format!("field {key} cannot be null or empty"))),
        Some(Value::String(s)) if s.is_empty() => {
            Err(RequestError::IllegalArgument(format!("field {key} cannot be null or empty")))
        }
        Some(Value::String(s)) => Ok(s.to_ascii_lowercase()),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

/// A validated one-way conversation delete: the body `{channel, type, delete_roam}` of
/// `DELETE /users/{u}/user_channel` (REST) and `DELETE /user/{u}/user_channel?resource=`
/// (the SDK's `deleteConversation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteConversation {
    pub peer: String,
    pub chat_type: ChatType,
    /// Also delete the owner's side of the conversation's history.
    pub delete_roam: bool,
}

impl DeleteConversation {
    /// Checks the fields in Easemob's order, with its errors.
    pub fn parse(body: &Value) -> Result<DeleteConversation> {
        let obj = body.as_object().ok_or(RequestError::InvalidBody)?;
        let peer = name_field(obj, "channel")?;
        let chat_type = chat_type(obj.get("type"))?;
        let delete_roam = match obj.get("delete_roam") {
            None | Some(Value::Null) => {
                return Err(RequestError::IllegalArgument("field delete_roam cannot be null".into()));
            }
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::InvalidBody),
        };
        Ok(DeleteConversation { peer, chat_type, delete_roam })
    }
}

/// A validated pin (`POST /sdk/user/{u}/user_channel/top?resource=`, body `{type, to}`) or
/// unpin (`DELETE` of the same path with `?type=&to=` in the query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRequest {
    pub peer: String,
    pub chat_type: ChatType,
}

impl PinRequest {
    pub fn from_body(body: &Value) -> Result<PinRequest> {
        let obj = body.as_object().ok_or(RequestError::InvalidBody)?;
        let chat_type = chat_type(obj.get("type"))?;
        Ok(PinRequest { peer: name_field(obj, "to")?, chat_type })
    }

    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<PinRequest> {
        let obj: Map<String, Value> = pairs
            .into_iter()
            .filter(|(k, _)| matches!(*k, "type" | "to"))
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        PinRequest::from_body(&Value::Object(obj))
    }
}

/// The `data` of a pin or unpin answer, which the SDK turns into `{isPinned, pinnedTime}`.
pub fn pin_data(pinned_at: Option<u64>) -> Value {
    json!({ "is_top": pinned_at.is_some(), "update_top_status_time": pinned_at.unwrap_or(0) })
}

/// Which of a conversation's messages a roaming delete removes from the owner's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteTarget {
    /// These messages (1 to [`MAX_DELETE_IDS`]).
    Ids(Vec<MsgId>),
    /// Everything sent at or before this Unix ms.
    UpTo(u64),
}

impl DeleteTarget {
    /// For `UpTo`, the ids it covers.
    pub fn window(&self) -> Option<IdWindow> {
        match self {
            DeleteTarget::Ids(_) => None,
            DeleteTarget::UpTo(ms) => Some(TimeRange { start_ms: 0, end_ms: Some(ms.saturating_add(1)) }.ids()),
        }
    }
}

/// A validated one-way roaming delete, from the admin API
/// (`DELETE /rest/message/roaming/chat/user/{owner}[/time]`) or the SDK's
/// `removeHistoryMessages` (`DELETE /sdk/message/roaming/chat/user/{owner}[/time]`); the
/// `group` forms name `groupId` instead of `userId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoamingDelete {
    /// The peer (`userId`) or group (`groupId`).
    pub peer: String,
    pub chat_type: ChatType,
    pub target: DeleteTarget,
    /// `isNotify` (default true): tell the owner's online devices.
    pub notify: bool,
}

impl RoamingDelete {
    /// `by_time`: the request came to the `…/time` path (`delTime`), else `msgIdList`.
    /// Missing parameters are Easemob's bare `Bad Request`.
    pub fn parse<'a>(
        chat_type: ChatType,
        by_time: bool,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RoamingDelete> {
        let peer_key = match chat_type {
            ChatType::Chat => "userId",
            ChatType::Group => "groupId",
        };
        let (mut peer, mut ids, mut time, mut notify) = (None, None, None, true);
        for (k, v) in pairs {
            match k {
                k if k == peer_key && !v.is_empty() => peer = Some(v.to_ascii_lowercase()),
                "msgIdList" => ids = Some(v),
                "delTime" => time = Some(v),
                "isNotify" => notify = !v.eq_ignore_ascii_case("false"),
                _ => {}
            }
        }
        let peer = peer.ok_or(RequestError::BadRequest)?;
        let target = if by_time {
            let ms = time.and_then(|t| t.trim().parse::<u64>().ok()).ok_or(RequestError::BadRequest)?;
            DeleteTarget::UpTo(ms)
        } else {
            let list: Vec<&str> = ids.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if list.is_empty() {
                return Err(RequestError::BadRequest);
            }
            if list.len() > MAX_DELETE_IDS {
                return Err(RequestError::Param("delete msg list limit can not greater than 50".into()));
            }
            let ids = list.iter().map(|s| s.parse::<u64>().map(MsgId)).collect::<std::result::Result<Vec<_>, _>>();
            DeleteTarget::Ids(ids.map_err(|_| RequestError::BadRequest)?)
        };
        Ok(RoamingDelete { peer, chat_type, target, notify })
    }
}

/// Where a channel ack (`MessageBody.type` CHANNEL_ACK, "I have read this conversation")
/// moves its sender's read position in the conversation with its recipient: up to the
/// message it names (`ack_message_id`, which native SDKs set) or else to the ack itself —
/// every message the server accepted before the ack has a smaller id, even one whose commit
/// is still in flight. Never beyond the ack: a client cannot mark the future read.
pub fn read_position(body: &pb::MessageBody, ack_id: MsgId) -> MsgId {
    body.ack_message_id.map_or(ack_id, |named| MsgId(named).min(ack_id))
}

#[cfg(test)]
mod tests {
    use missive_msync::pb::message_body::content::Type as ContentType;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::history::ArchivedMessage;

    fn latest(id: u64) -> ArchivedMessage {
        let mut c = pb::message_body::Content::default();
        c.set_type(ContentType::Text);
        c.text = Some("hi".into());
        let body = pb::MessageBody {
            r#type: Some(pb::message_body::Type::Chat as i32),
            contents: vec![c],
            ext: missive_msync::json_to_key_values(json!({"k": "v"}).as_object().unwrap()),
            ..Default::default()
        };
        ArchivedMessage {
            id: MsgId(id),
            from: "alice".into(),
            to: "bob".into(),
            timestamp: 1_700_000_000_000,
            payload: body.encode_to_vec().into(),
        }
    }

    fn row(peer: &str, id: u64, pinned: Option<u64>) -> ConversationSummary {
        ConversationSummary { peer: peer.into(), unread: 2, pinned_at: pinned, latest: (id > 0).then(|| latest(id)) }
    }

    #[test]
    fn list_parameters_as_the_sdk_sends_them() {
        // getServerConversations({pageSize: 10, cursor: ''}) in 4.21.1:
        let pairs = [
            ("", ""),
            ("limit", "10"),
            ("cursor", ""),
            ("need_mark", "true"),
            ("needEmptySession", "false"),
            ("_v", "1796466639886"),
        ];
        let r = ConversationListRequest::parse(pairs).unwrap();
        assert_eq!(r, ConversationListRequest { limit: 10, cursor: None, pinned_only: false, include_empty: false });
        assert_eq!(r.order(), ListOrder::Activity);
        let r = ConversationListRequest::parse([("limit", "20"), ("is_top", "true"), ("needEmptySession", "true")])
            .unwrap();
        assert_eq!((r.pinned_only, r.include_empty, r.order()), (true, true, ListOrder::Pinned));
        assert_eq!(ConversationListRequest::parse([("limit", "999")]).unwrap().limit, MAX_PAGE);
        assert_eq!(ConversationListRequest::parse([]).unwrap().limit, DEFAULT_PAGE);
        assert_eq!(
            ConversationListRequest::parse([("limit", "x")]),
            Err(RequestError::IllegalArgument("limit must be a number".into()))
        );
        assert_eq!(
            ConversationListRequest::parse([("cursor", "abc")]),
            Err(RequestError::IllegalArgument("cursor is invalid".into()))
        );
    }

    #[test]
    fn legacy_parameters() {
        assert_eq!(LegacyListRequest::parse(false, [], 100).unwrap(), LegacyListRequest { offset: 0, limit: 100 });
        let r = LegacyListRequest::parse(true, [("pageNum", "2"), ("pageSize", "5"), ("_v", "1")], 100).unwrap();
        assert_eq!(r, LegacyListRequest { offset: 5, limit: 5 });
        assert_eq!(LegacyListRequest::parse(true, [("pageSize", "50")], 100).unwrap().limit, MAX_LEGACY_PAGE);
        assert!(LegacyListRequest::parse(true, [("pageNum", "one")], 100).is_err());
    }

    #[test]
    fn a_channel_info_has_what_both_sdk_lists_read() {
        let info = channel_info("org#app", &row("alice", 42, Some(1_700_000_000_500)));
        assert_eq!(info["channel_id"], json!("org#app_alice@easemob.com"));
        assert_eq!((&info["session_to"], &info["session_type"]), (&json!("alice"), &json!("chat")));
        assert_eq!((&info["is_top"], &info["update_top_status_time"]), (&json!(true), &json!(1_700_000_000_500u64)));
        assert_eq!((&info["unread_num"], &info["marks"]), (&json!(2), &json!([])));
        let meta = &info["meta"];
        assert_eq!((&meta["id"], &meta["timestamp"]), (&json!("42"), &json!(1_700_000_000_000u64)));
        assert_eq!(
            (&meta["from"], &meta["to"]),
            (&json!("org#app_alice@easemob.com"), &json!("org#app_bob@easemob.com"))
        );
        let payload: Value = serde_json::from_str(meta["payload"].as_str().unwrap()).unwrap();
        assert_eq!(
            payload,
            json!({"bodies": [{"msg": "hi", "type": "txt"}], "ext": {"k": "v"}, "from": "alice", "to": "bob"})
        );
        let empty = channel_info("org#app", &row("carol", 0, None));
        assert_eq!(
            (&empty["meta"], &empty["is_top"], &empty["update_top_status_time"]),
            (&json!({}), &json!(false), &json!(0))
        );
        assert_eq!(legacy_list_data("org#app", &[row("carol", 0, None)])["channel_infos"][0], empty);
    }

    #[test]
    fn bodies_and_errors_of_delete_and_pin() {
        let del = |v: Value| DeleteConversation::parse(&v);
        fn ill<T>(s: &str) -> Result<T> {
            Err(RequestError::IllegalArgument(s.into()))
        }
        // The REST example, and what the SDK's deleteConversation sends.
        assert_eq!(
            del(json!({"channel": "U2", "type": "chat", "delete_roam": true})),
            Ok(DeleteConversation { peer: "u2".into(), chat_type: ChatType::Chat, delete_roam: true })
        );
        assert_eq!(
            del(json!({"channel": "g", "type": "groupChat", "delete_roam": false})).unwrap().chat_type,
            ChatType::Group
        );
        assert_eq!(del(json!({"type": "chat", "delete_roam": true})), ill("field channel cannot be null or empty"));
        assert_eq!(
            del(json!({"channel": "", "type": "", "delete_roam": true})),
            ill("field channel cannot be null or empty")
        );
        assert_eq!(
            del(json!({"channel": "u2", "type": "", "delete_roam": true})),
            ill("field type cannot be null or empty")
        );
        assert_eq!(del(json!({"channel": "u2", "type": "room", "delete_roam": true})), ill("field type is invalid"));
        assert_eq!(del(json!({"channel": "u2", "type": "chat"})), ill("field delete_roam cannot be null"));
        assert_eq!(del(json!({"channel": "u2", "type": "chat", "delete_roam": "yes"})), Err(RequestError::InvalidBody));
        assert_eq!(del(json!({"channel": 2, "type": "chat", "delete_roam": true})), Err(RequestError::InvalidBody));
        assert_eq!(del(json!("u2")), Err(RequestError::InvalidBody));

        let pin = PinRequest::from_body(&json!({"type": "chat", "to": "Alice"})).unwrap();
        assert_eq!(pin, PinRequest { peer: "alice".into(), chat_type: ChatType::Chat });
        assert_eq!(PinRequest::from_query([("type", "chat"), ("to", "Alice"), ("resource", "r")]), Ok(pin));
        assert_eq!(PinRequest::from_query([("type", "chat")]), ill("field to cannot be null or empty"));
        assert_eq!(pin_data(Some(5)), json!({"is_top": true, "update_top_status_time": 5}));
        assert_eq!(pin_data(None), json!({"is_top": false, "update_top_status_time": 0}));
    }

    #[test]
    fn roaming_deletes() {
        let chat = |by_time, q: &[(&str, &str)]| RoamingDelete::parse(ChatType::Chat, by_time, q.iter().copied());
        // removeHistoryMessages({messageIds: ['11','22']}) and ({beforeTimeStamp}) in 4.21.1:
        assert_eq!(
            chat(false, &[("userId", "Alice"), ("msgIdList", "11,22"), ("resource", "r")]),
            Ok(RoamingDelete {
                peer: "alice".into(),
                chat_type: ChatType::Chat,
                target: DeleteTarget::Ids(vec![MsgId(11), MsgId(22)]),
                notify: true
            })
        );
        let t = chat(
            true,
            &[("userId", "alice"), ("delTime", "1700000000000"), ("", ""), ("resource", "r"), ("isNotify", "false")],
        )
        .unwrap();
        assert_eq!((&t.target, t.notify), (&DeleteTarget::UpTo(1_700_000_000_000), false));
        assert_eq!(t.target.window().unwrap().hi, MsgId::floor_at(1_700_000_000_001), "at or before delTime");
        let fifty_one = (1..=51).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(
            chat(false, &[("userId", "a"), ("msgIdList", &fifty_one)]),
            Err(RequestError::Param("delete msg list limit can not greater than 50".into()))
        );
        for q in [
            &[("msgIdList", "1")][..],
            &[("userId", "a")],
            &[("userId", "a"), ("msgIdList", "x")],
            &[("userId", ""), ("msgIdList", "1")],
        ] {
            assert_eq!(chat(false, q), Err(RequestError::BadRequest), "{q:?}");
        }
        assert_eq!(chat(true, &[("userId", "a"), ("delTime", "soon")]), Err(RequestError::BadRequest));
        let g = RoamingDelete::parse(ChatType::Group, false, [("groupId", "123"), ("msgIdList", "9")]).unwrap();
        assert_eq!((g.peer.as_str(), g.chat_type), ("123", ChatType::Group));
    }

    #[test]
    fn channel_ack_read_positions() {
        let ack = |named: Option<u64>| pb::MessageBody {
            r#type: Some(pb::message_body::Type::ChannelAck as i32),
            ack_message_id: named,
            ..Default::default()
        };
        assert_eq!(read_position(&ack(None), MsgId(100)), MsgId(100), "the Web SDK names no message");
        assert_eq!(read_position(&ack(Some(40)), MsgId(100)), MsgId(40));
        assert_eq!(read_position(&ack(Some(400)), MsgId(100)), MsgId(100), "never past the ack");
    }

    proptest! {
        /// Following the rendered cursor through a list in either order returns every
        /// conversation once, in list order.
        #[test]
        fn cursor_paging_visits_every_conversation_once(
            rows in proptest::collection::btree_map("[a-z]{1,6}", (0u64..40, proptest::option::of(0u64..40)), 0..40),
            limit in 1u32..8,
            pinned: bool,
        ) {
            let all: Vec<ConversationSummary> = rows.iter().map(|(p, (id, pin))| row(p, *id, *pin)).collect();
            let mut req = ConversationListRequest { limit, cursor: None, pinned_only: pinned, include_empty: true };
            let order = req.order();
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| (b.key(order), &b.peer).cmp(&(a.key(order), &a.peer)));
            let mut seen = Vec::new();
            for _ in 0..=all.len() {
                let mut hit: Vec<ConversationSummary> =
                    sorted.iter().filter(|c| req.cursor.as_ref().is_none_or(|k| c.is_after(k.key, &k.name, order))).cloned().collect();
                hit.truncate(limit as usize + 1);
                let data = conversation_list_data("o#a", &hit, &req);
                seen.extend(data["channel_infos"].as_array().unwrap().iter().map(|c| c["session_to"].as_str().unwrap().to_owned()));
                match data.get("cursor").and_then(Value::as_str) {
                    Some(c) => {
                        let pairs = [("limit", limit.to_string()), ("cursor", c.to_owned()), ("is_top", pinned.to_string())];
                        req = ConversationListRequest::parse(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
                        req.include_empty = true;
                    }
                    None => break,
                }
            }
            prop_assert_eq!(seen, sorted.iter().map(|c| c.peer.clone()).collect::<Vec<_>>());
        }
    }
}
