//! The chat log for app servers: Easemob's history record format, the hourly export's
//! hour, and the legacy `GET /chatmessages?ql=…` query.
//!
//! All three read the archive by id range ([`IdWindow`]), like roaming, but render each
//! message as a *record* — `msg_id`, `timestamp`, `direction`, `from`, `to`, `chat_type`
//! and a `payload` of `bodies` and `ext` in the REST API's own field names (easemob-api.md
//! §4.6, Easemob's `message_historical.md`; the bodies are [`crate::body`]'s). The same
//! `payload` object is what the conversation list carries, JSON-encoded, as a
//! conversation's latest message.
//!
//! The legacy query language is the part of Usergrid's `ql` that Easemob documented for
//! this endpoint, and nothing else:
//!
//! ```text
//! query := [ "select" "*" ] [ "where" cond { "and" cond } ] [ "order by" "timestamp" [ "asc" | "desc" ] ]
//! cond  := "timestamp" ( "<" | ">" ) integer  |  ( "from" | "to" ) "=" 'string'
//! ```
//!
//! Keywords are case-insensitive; `timestamp` bounds combine (all must hold); `from`/`to`
//! compare lower-cased user ids. Anything else is Usergrid's 400 `query_parse`, naming the
//! first token outside the subset.

use missive_core::id::MsgId;
use missive_msync::pb;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::body::message_json;
use crate::cursor::{CursorKind, PageCursor};
use crate::error::RequestError;
use crate::history::{ArchivedMessage, Direction, IdWindow, TimeRange};

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// Records per page when the request names no `limit` (Easemob's documented default).
pub const DEFAULT_LIMIT: u32 = 10;
/// Most records per page (Easemob: "最多 1000").
pub const MAX_LIMIT: u32 = 1000;
/// One hour, the span of one export file.
pub const HOUR_MS: u64 = 3_600_000;

// ---------------------------------------------------------------------------------------
// The record format
// ---------------------------------------------------------------------------------------

/// A record's `payload`: `{bodies, ext, from, to}`. A payload that does not decode (never
/// ours) renders with no bodies rather than failing the whole listing.
pub fn record_payload(m: &ArchivedMessage) -> Map<String, Value> {
    let body = pb::MessageBody::decode(m.payload.as_ref()).unwrap_or_default();
    let mut p = message_json(&body);
    p.insert("from".into(), Value::String(m.from.clone()));
    p.insert("to".into(), Value::String(m.to.clone()));
    p
}

/// One line of the hourly export: a message in Easemob's record format.
pub fn chat_record(m: &ArchivedMessage) -> Value {
    json!({
        "msg_id": m.id.to_string(),
        "timestamp": m.timestamp,
        // Records are written once, from the sender's side.
        "direction": "outgoing",
        "from": m.from,
        "to": m.to,
        "chat_type": "chat",
        "payload": record_payload(m),
    })
}

/// One entity of the legacy query: the record plus the Usergrid entity fields. `uuid` is
/// derived from the message id (the archive has no other identity), so it is stable.
pub fn chat_entity(m: &ArchivedMessage) -> Value {
    let mut v = chat_record(m);
    let id = m.id.0;
    let fields = [
        (
            "uuid",
            Value::String(format!(
                "{:08x}-{:04x}-{:04x}-8000-000000000000",
                id >> 32,
                (id >> 16) & 0xffff,
                id & 0xffff
            )),
        ),
        ("type", "chatmessage".into()),
        ("created", m.timestamp.into()),
        ("modified", m.timestamp.into()),
    ];
    if let Some(obj) = v.as_object_mut() {
        obj.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
    v
}

// ---------------------------------------------------------------------------------------
// The legacy query language
// ---------------------------------------------------------------------------------------

/// The order of a chat-log listing; Easemob's default is ascending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    pub fn direction(self) -> Direction {
        match self {
            Order::Asc => Direction::Newer,
            Order::Desc => Direction::Older,
        }
    }
}

/// A parsed `ql`: which records, in which order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatLogQuery {
    pub time: TimeRange,
    /// Only messages sent by this user (lower-cased).
    pub from: Option<String>,
    /// Only messages sent to this user (lower-cased).
    pub to: Option<String>,
    pub order: Order,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ws,
    Word,
    OrderBy,
    Star,
    Lt,
    Gt,
    Eq,
    Num,
    /// A quoted string, unescaped.
    Str(String),
    /// Anything else, including `<=`, `!=` and an unterminated string: never valid here.
    Other,
}

struct Token<'a> {
    tok: Tok,
    text: &'a str,
}

/// Splits `ql` into tokens the way Usergrid's lexer does for this subset: whitespace runs
/// are tokens too (they count in error columns) and `order by` is one token.
fn lex(ql: &str) -> Vec<Token<'_>> {
    let bytes = ql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word_end = |mut j: usize| {
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        j
    };
    let ws_end = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    while i < bytes.len() {
        let b = bytes[i];
        let (tok, end) = if b.is_ascii_whitespace() {
            (Tok::Ws, ws_end(i))
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let end = word_end(i);
            let after_ws = ws_end(end);
            if ql[i..end].eq_ignore_ascii_case("order") && after_ws > end {
                let by_end = word_end(after_ws);
                if ql[after_ws..by_end].eq_ignore_ascii_case("by") { (Tok::OrderBy, by_end) } else { (Tok::Word, end) }
            } else {
                (Tok::Word, end)
            }
        } else if b.is_ascii_digit() {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            (Tok::Num, j)
        } else if b == b'\'' {
            let mut value = String::new();
            let mut j = i + 1;
            let mut closed = false;
            while let Some(c) = ql[j..].chars().next() {
                j += c.len_utf8();
                match c {
                    '\'' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some(e) = ql[j..].chars().next() {
                            j += e.len_utf8();
                            value.push(e);
                        }
                    }
                    c => value.push(c),
                }
            }
            (if closed { Tok::Str(value) } else { Tok::Other }, j)
        } else {
            let two = bytes.get(i + 1).copied();
            match (b, two) {
                (b'<' | b'>' | b'!', Some(b'=')) => (Tok::Other, i + 2),
                (b'<', _) => (Tok::Lt, i + 1),
                (b'>', _) => (Tok::Gt, i + 1),
                (b'=', _) => (Tok::Eq, i + 1),
                (b'*', _) => (Tok::Star, i + 1),
                // One whole character, however many bytes it takes.
                _ => (Tok::Other, i + ql[i..].chars().next().map_or(1, char::len_utf8)),
            }
        };
        out.push(Token { tok, text: &ql[i..end] });
        i = end;
    }
    out
}

/// Longest piece of the query an error message repeats.
const MAX_SHOWN: usize = 40;

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    /// Index of the next token, whitespace included (Usergrid's error column).
    pos: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self.tokens.get(self.pos).is_some_and(|t| t.tok == Tok::Ws) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<&Token<'a>> {
        self.skip_ws();
        self.tokens.get(self.pos)
    }

    fn error(&mut self) -> RequestError {
        self.skip_ws();
        let token = self.tokens.get(self.pos).map_or("<EOF>".to_owned(), |t| t.text.chars().take(MAX_SHOWN).collect());
        RequestError::QueryParse { token, column: self.pos }
    }

    /// Consumes the next token if it is the keyword `word`.
    fn keyword(&mut self, word: &str) -> bool {
        let hit = self.peek().is_some_and(|t| t.tok == Tok::Word && t.text.eq_ignore_ascii_case(word));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_keyword(&mut self, word: &str) -> Result<()> {
        if self.keyword(word) { Ok(()) } else { Err(self.error()) }
    }

    fn expect(&mut self, tok: Tok) -> Result<&'a str> {
        match self.peek() {
            Some(t) if t.tok == tok => {
                let text = t.text;
                self.pos += 1;
                Ok(text)
            }
            _ => Err(self.error()),
        }
    }

    fn string(&mut self) -> Result<String> {
        match self.peek().map(|t| t.tok.clone()) {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(s.to_ascii_lowercase())
            }
            _ => Err(self.error()),
        }
    }

    fn condition(&mut self, q: &mut ChatLogQuery) -> Result<()> {
        if self.keyword("timestamp") {
            let op = self.peek().map(|t| t.tok.clone());
            if !matches!(op, Some(Tok::Lt | Tok::Gt)) {
                return Err(self.error());
            }
            self.pos += 1;
            let digits = self.expect(Tok::Num)?;
            let Ok(ms) = digits.parse::<u64>() else {
                self.pos -= 1;
                return Err(self.error());
            };
            if op == Some(Tok::Gt) {
                q.time.start_ms = q.time.start_ms.max(ms.saturating_add(1));
            } else {
                q.time.end_ms = Some(q.time.end_ms.map_or(ms, |e| e.min(ms)));
            }
            return Ok(());
        }
        for (name, is_from) in [("from", true), ("to", false)] {
            let start = self.pos;
            if self.keyword(name) {
                let slot = if is_from { &mut q.from } else { &mut q.to };
                if slot.is_some() {
                    // A second `from`/`to` is either redundant or contradictory.
                    self.pos = start;
                    return Err(self.error());
                }
                self.expect(Tok::Eq)?;
                let value = self.string()?;
                let slot = if is_from { &mut q.from } else { &mut q.to };
                *slot = Some(value);
                return Ok(());
            }
        }
        Err(self.error())
    }
}

impl ChatLogQuery {
    /// Parses a `ql` (already URL-decoded, `+` read as a space). An empty query selects
    /// everything in ascending order.
    pub fn parse(ql: &str) -> Result<ChatLogQuery> {
        let mut p = Parser { tokens: lex(ql), pos: 0 };
        let mut q = ChatLogQuery::default();
        if p.keyword("select") {
            p.expect(Tok::Star)?;
        }
        if p.keyword("where") {
            p.condition(&mut q)?;
            while p.keyword("and") {
                p.condition(&mut q)?;
            }
        }
        if p.peek().is_some_and(|t| t.tok == Tok::OrderBy) {
            p.pos += 1;
            p.expect_keyword("timestamp")?;
            if p.keyword("desc") {
                q.order = Order::Desc;
            } else {
                p.keyword("asc");
            }
        }
        match p.peek() {
            None => Ok(q),
            Some(_) => Err(p.error()),
        }
    }

    /// The query in its canonical spelling; parsing it gives this query back.
    pub fn to_ql(&self) -> String {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
        let mut conds = Vec::new();
        if self.time.start_ms > 0 {
            conds.push(format!("timestamp>{}", self.time.start_ms - 1));
        }
        if let Some(end) = self.time.end_ms {
            conds.push(format!("timestamp<{end}"));
        }
        if let Some(f) = &self.from {
            conds.push(format!("from='{}'", quote(f)));
        }
        if let Some(t) = &self.to {
            conds.push(format!("to='{}'", quote(t)));
        }
        let mut ql = String::from("select *");
        if !conds.is_empty() {
            ql.push_str(" where ");
            ql.push_str(&conds.join(" and "));
        }
        ql.push_str(match self.order {
            Order::Asc => " order by timestamp asc",
            Order::Desc => " order by timestamp desc",
        });
        ql
    }
}

/// A validated `GET /chatmessages?ql=&limit=&cursor=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatLogRequest {
    pub query: ChatLogQuery,
    /// Page size, 1 to [`MAX_LIMIT`]; stores fetch `limit + 1` rows.
    pub limit: u32,
    /// The last message of the previous page.
    pub cursor: Option<MsgId>,
}

impl ChatLogRequest {
    /// Validates the query parameters (each as the server received it, URL-decoded).
    pub fn parse(ql: Option<&str>, limit: Option<&str>, cursor: Option<&str>) -> Result<ChatLogRequest> {
        let query = ChatLogQuery::parse(ql.unwrap_or(""))?;
        let limit = match limit.map(str::trim).filter(|l| !l.is_empty()) {
            None => DEFAULT_LIMIT,
            // Usergrid truncates an oversized limit rather than refusing it.
            Some(l) => match l.parse::<i64>() {
                Ok(n) => n.clamp(1, i64::from(MAX_LIMIT)) as u32,
                Err(_) => return Err(RequestError::IllegalArgument("limit must be a number".into())),
            },
        };
        let cursor = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(MsgId(
                PageCursor::decode(c, CursorKind::ChatLog)
                    .ok_or_else(|| RequestError::IllegalArgument("cursor is invalid".into()))?
                    .key,
            )),
        };
        Ok(ChatLogRequest { query, limit, cursor })
    }

    /// The ids this page may come from; walk it in `query.order` and take `limit + 1`
    /// rows matching `from` and `to`.
    pub fn window(&self) -> IdWindow {
        self.query.time.ids().after(self.cursor, self.query.order.direction())
    }
}

/// One page of the legacy query: the envelope's `entities`, `count` (their number) and,
/// when more follow, `cursor`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatLogPage {
    pub entities: Vec<Value>,
    pub cursor: Option<String>,
}

/// Renders the rows a store returned for `limit + 1` rows in the request's order.
pub fn chat_log_page(rows: &[ArchivedMessage], limit: u32) -> ChatLogPage {
    let limit = limit.clamp(1, MAX_LIMIT) as usize;
    let page = &rows[..rows.len().min(limit)];
    let cursor = (rows.len() > limit)
        .then(|| page.last().map(|m| PageCursor::new(m.id.0, "").encode(CursorKind::ChatLog)))
        .flatten();
    ChatLogPage { entities: page.iter().map(chat_entity).collect(), cursor }
}

// ---------------------------------------------------------------------------------------
// The hourly export
// ---------------------------------------------------------------------------------------

/// The hour `GET /chatmessages/{yyyyMMddHH}` asks for (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportHour {
    /// Unix ms at the start of the hour.
    pub start_ms: u64,
    /// The hour as requested, for error texts and the file name.
    pub label: String,
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian), H. Hinnant's
/// algorithm; `None` for dates before 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl ExportHour {
    /// Validates `time` against the clock and the archive's retention (`None`: kept
    /// forever), with Easemob's errors: a malformed hour, and an hour outside what the
    /// archive can hold (expired, or not yet begun).
    pub fn parse(time: &str, app_key: &str, now_ms: u64, retention_ms: Option<u64>) -> Result<ExportHour> {
        let shown: String = time.chars().take(MAX_SHOWN).collect();
        let illegal = |suffix: &str| {
            RequestError::IllegalArgument(format!("illegal arguments: appkey: {app_key}, time: {shown}{suffix}"))
        };
        if time.len() != 10 || !time.bytes().all(|b| b.is_ascii_digit()) {
            return Err(illegal(""));
        }
        let num = |r: std::ops::Range<usize>| time[r].parse::<u64>().unwrap_or(0);
        let (y, m, d, h) = (num(0..4), num(4..6), num(6..8), num(8..10));
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || h > 23 {
            return Err(illegal(""));
        }
        let Some(days) = days_from_civil(y, m, d) else {
            return Err(illegal(""));
        };
        let start_ms = (days * 24 + h) * HOUR_MS;
        let expired = retention_ms.is_some_and(|r| start_ms + HOUR_MS <= now_ms.saturating_sub(r));
        if expired || start_ms > now_ms {
            return Err(illegal(", maybe chat message history is expired or unstored"));
        }
        Ok(ExportHour { start_ms, label: time.to_owned() })
    }

    /// The send times this hour covers.
    pub fn range(&self) -> TimeRange {
        TimeRange { start_ms: self.start_ms, end_ms: Some(self.start_ms + HOUR_MS) }
    }

    /// Easemob's 404 for an hour in which nothing was stored.
    pub fn not_found(&self, app_key: &str) -> RequestError {
        RequestError::StorageObjectNotFound(format!(
            "Failed to find chat message history download url for appkey: {app_key}, time: {}",
            self.label
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::send::{SendForm, SendRequest, chat_body};

    /// What the archive holds for a REST send of `type`/`body`/`ext` from alice to bob.
    fn archived_rest(msg_type: &str, body: Value, ext: Value) -> ArchivedMessage {
        let req = SendRequest::parse(
            &json!({"from": "alice", "to": ["bob"], "type": msg_type, "body": body, "ext": ext}),
            SendForm::Users,
            1,
        )
        .unwrap();
        let mut b = chat_body(req.content().unwrap(), &req.ext);
        b.from = Some(pb::Jid { name: Some("alice".into()), ..Default::default() });
        b.to = Some(pb::Jid { name: Some("bob".into()), ..Default::default() });
        ArchivedMessage {
            id: MsgId(1_170_000_000_000_000_001),
            from: "alice".into(),
            to: "bob".into(),
            timestamp: 1_700_000_000_123,
            payload: b.encode_to_vec().into(),
        }
    }

    #[test]
    fn records_of_all_eight_types_use_the_rest_field_names() {
        let cases = [
            ("txt", json!({"msg": "hello"}), json!({"msg": "hello", "type": "txt"})),
            (
                "img",
                json!({"url": "https://h/o/a/chatfiles/u1", "filename": "a.jpg", "secret": "s1", "size": {"width": 746, "height": 1325}}),
                json!({"url": "https://h/o/a/chatfiles/u1", "filename": "a.jpg", "secret": "s1", "size": {"width": 746, "height": 1325}, "type": "img"}),
            ),
            (
                "audio",
                json!({"url": "u2", "filename": "a.amr", "length": 10, "file_length": 6630}),
                json!({"url": "u2", "filename": "a.amr", "length": 10, "file_length": 6630, "type": "audio"}),
            ),
            (
                "video",
                json!({"url": "u3", "filename": "v.mp4", "length": 10, "file_length": 58103, "secret": "s3", "thumb": "u4", "thumb_secret": "s4"}),
                json!({"url": "u3", "filename": "v.mp4", "length": 10, "file_length": 58103, "secret": "s3", "thumb": "u4", "thumb_secret": "s4", "type": "video"}),
            ),
            (
                "file",
                json!({"url": "u5", "filename": "r.md"}),
                json!({"url": "u5", "filename": "r.md", "type": "file"}),
            ),
            (
                "loc",
                json!({"lat": "39.9053", "lng": 116.36302, "addr": "西城区西便门桥"}),
                json!({"lat": 39.9053, "lng": 116.36302, "addr": "西城区西便门桥", "type": "loc"}),
            ),
            ("cmd", json!({"action": "run"}), json!({"action": "run", "type": "cmd"})),
            (
                "custom",
                json!({"customEvent": "gift_1", "customExts": {"name": "flower", "size": "16"}}),
                json!({"customEvent": "gift_1", "customExts": [{"name": "flower"}, {"size": "16"}],
                       "v2:customExts": {"name": "flower", "size": "16"}, "type": "custom"}),
            ),
        ];
        for (t, body, want) in cases {
            let m = archived_rest(t, body, json!({"key1": "value1", "n": 2}));
            let r = chat_record(&m);
            assert_eq!(r["payload"]["bodies"], json!([want]), "{t}");
            assert_eq!(r["payload"]["ext"], json!({"key1": "value1", "n": 2}), "{t}");
            assert_eq!(
                (&r["msg_id"], &r["timestamp"], &r["direction"], &r["chat_type"]),
                (&json!("1170000000000000001"), &json!(1_700_000_000_123u64), &json!("outgoing"), &json!("chat"))
            );
            assert_eq!(
                (&r["from"], &r["to"], &r["payload"]["from"], &r["payload"]["to"]),
                (&json!("alice"), &json!("bob"), &json!("alice"), &json!("bob"))
            );
        }
    }

    #[test]
    fn an_undecodable_payload_renders_without_bodies() {
        let garbage = ArchivedMessage {
            payload: bytes::Bytes::from_static(&[0xff, 0xff]),
            ..archived_rest("txt", json!({"msg": "x"}), json!({}))
        };
        assert_eq!(chat_record(&garbage)["payload"], json!({"bodies": [], "ext": {}, "from": "alice", "to": "bob"}));
    }

    #[test]
    fn entities_add_the_usergrid_fields() {
        let e = chat_entity(&archived_rest("txt", json!({"msg": "m"}), json!({})));
        assert_eq!(
            (&e["type"], &e["created"], &e["modified"]),
            (&json!("chatmessage"), &json!(1_700_000_000_123u64), &json!(1_700_000_000_123u64))
        );
        assert_eq!(e["uuid"].as_str().map(str::len), Some(36));
        assert_eq!(e["msg_id"], json!("1170000000000000001"));
    }

    fn ql(s: &str) -> Result<ChatLogQuery> {
        ChatLogQuery::parse(s)
    }

    fn parse_err(token: &str, column: usize) -> Result<ChatLogQuery> {
        Err(RequestError::QueryParse { token: token.into(), column })
    }

    #[test]
    fn every_documented_form() {
        let all = ChatLogQuery::default();
        for q in ["", "  ", "select *", "select * order by timestamp asc", "SELECT * ORDER  BY TIMESTAMP"] {
            assert_eq!(ql(q), Ok(all.clone()), "{q:?}");
        }
        let desc = ChatLogQuery { order: Order::Desc, ..Default::default() };
        assert_eq!(ql("order by timestamp desc"), Ok(desc.clone()));
        assert_eq!(ql("select * order by timestamp desc"), Ok(desc));
        assert_eq!(
            ql("select * where timestamp>1403164734226"),
            Ok(ChatLogQuery { time: TimeRange { start_ms: 1403164734227, end_ms: None }, ..Default::default() })
        );
        assert_eq!(
            ql("select * where timestamp<1403164734226 and timestamp>1403163586000 order by timestamp desc"),
            Ok(ChatLogQuery {
                time: TimeRange { start_ms: 1403163586001, end_ms: Some(1403164734226) },
                order: Order::Desc,
                ..Default::default()
            })
        );
        // The official Java example, and a PHP client's spacing.
        assert_eq!(
            ql("select * where from='Zw123' and to='test2' and timestamp<2000 and timestamp>1000"),
            Ok(ChatLogQuery {
                time: TimeRange { start_ms: 1001, end_ms: Some(2000) },
                from: Some("zw123".into()),
                to: Some("test2".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            ql("select *  where  from = 'u1' and timestamp > 1000"),
            Ok(ChatLogQuery {
                time: TimeRange { start_ms: 1001, end_ms: None },
                from: Some("u1".into()),
                ..Default::default()
            })
        );
        // Bounds intersect.
        assert_eq!(
            ql("select * where timestamp>5 and timestamp>9 and timestamp<20 and timestamp<30").unwrap().time,
            TimeRange { start_ms: 10, end_ms: Some(20) }
        );
    }

    #[test]
    fn anything_else_names_the_token_and_its_column() {
        // Usergrid's own example: `from` right after `select *` (columns count whitespace).
        assert_eq!(ql("select * from where name = 'bob'"), parse_err("from", 4));
        assert_eq!(ql("select * where timestamp>1 or timestamp<5"), parse_err("or", 10));
        assert_eq!(ql("select * where timestamp>=1"), parse_err(">=", 7));
        assert_eq!(ql("select * where timestamp=1"), parse_err("=", 7));
        assert_eq!(ql("select * where name='bob'"), parse_err("name", 6));
        assert_eq!(ql("select msg where timestamp>1"), parse_err("msg", 2));
        assert_eq!(ql("select+*+timestamp>1"), parse_err("+", 1), "+ is a space only once URL-decoded");
        assert_eq!(ql("select * timestamp>1"), parse_err("timestamp", 4));
        assert_eq!(ql("select * where"), parse_err("<EOF>", 5));
        assert_eq!(ql("select * where timestamp>"), parse_err("<EOF>", 8));
        assert_eq!(ql("select * where timestamp>99999999999999999999"), parse_err("99999999999999999999", 8));
        assert_eq!(ql("select * where from='a"), parse_err("'a", 8));
        assert_eq!(ql("select * where from=a"), parse_err("a", 8));
        assert_eq!(ql("select * where from='a' and from='b'"), parse_err("from", 12));
        assert_eq!(ql("order by msg_id"), parse_err("msg_id", 2));
        assert_eq!(ql("order timestamp"), parse_err("order", 0));
        assert_eq!(ql("select * order by timestamp desc limit 5"), parse_err("limit", 10));
        assert_eq!(ql("select * where timestamp>-1"), parse_err("-", 8));
        assert_eq!(ql("é"), parse_err("é", 0));
        let long = format!("select * where from='{}' and x", "a".repeat(100));
        match ql(&long) {
            Err(RequestError::QueryParse { token, column }) => assert_eq!((token.as_str(), column), ("x", 12)),
            other => panic!("{other:?}"),
        }
        match ql(&format!("'{}", "b".repeat(100))) {
            Err(RequestError::QueryParse { token, .. }) => assert_eq!(token.chars().count(), MAX_SHOWN),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoted_values_unescape() {
        let q = ql(r"select * where from='o\'neil' and to='back\\slash'").unwrap();
        assert_eq!((q.from.as_deref(), q.to.as_deref()), (Some("o'neil"), Some("back\\slash")));
        assert_eq!(ql(&q.to_ql()), Ok(q));
    }

    #[test]
    fn request_parameters() {
        let r = ChatLogRequest::parse(None, None, None).unwrap();
        assert_eq!((r.limit, r.cursor, r.query), (DEFAULT_LIMIT, None, ChatLogQuery::default()));
        assert_eq!(ChatLogRequest::parse(None, Some("5000"), None).unwrap().limit, MAX_LIMIT);
        assert_eq!(ChatLogRequest::parse(None, Some("0"), None).unwrap().limit, 1);
        assert_eq!(
            ChatLogRequest::parse(None, Some("ten"), None),
            Err(RequestError::IllegalArgument("limit must be a number".into()))
        );
        let token = PageCursor::new(77, "").encode(CursorKind::ChatLog);
        assert_eq!(ChatLogRequest::parse(None, None, Some(&token)).unwrap().cursor, Some(MsgId(77)));
        let other = PageCursor::new(77, "").encode(CursorKind::Conversations);
        for bad in [other.as_str(), "zzz"] {
            assert_eq!(
                ChatLogRequest::parse(None, None, Some(bad)),
                Err(RequestError::IllegalArgument("cursor is invalid".into()))
            );
        }
        assert!(matches!(ChatLogRequest::parse(Some("drop table"), None, None), Err(RequestError::QueryParse { .. })));
        let r = ChatLogRequest::parse(
            Some("select * where timestamp<1500000000000 order by timestamp desc"),
            None,
            Some(&token),
        )
        .unwrap();
        assert_eq!(r.window(), IdWindow { lo: MsgId(0), hi: MsgId(77) });
    }

    #[test]
    fn export_hours() {
        let now = 1_543_320_000_000; // 2018-11-27T12:00:00Z
        let day = 24 * HOUR_MS;
        let ok = ExportHour::parse("2018112711", "o#a", now, Some(7 * day)).unwrap();
        assert_eq!(ok.start_ms, 1_543_316_400_000);
        assert_eq!(ok.range(), TimeRange { start_ms: 1_543_316_400_000, end_ms: Some(1_543_320_000_000) });
        // The current hour is allowed (it holds what has arrived so far).
        assert!(ExportHour::parse("2018112712", "o#a", now, Some(day)).is_ok());
        assert_eq!(ExportHour::parse("2016022923", "o#a", now, None).unwrap().start_ms, 1_456_786_800_000);
        let bad = |t: &str| Err(RequestError::IllegalArgument(format!("illegal arguments: appkey: o#a, time: {t}")));
        for t in [
            "",
            "201811271",
            "20181127111",
            "2018-11-27",
            "2018113012x",
            "2018130110",
            "2018022910",
            "2018112724",
            "2018110010",
            "1969123123",
        ] {
            assert_eq!(ExportHour::parse(t, "o#a", now, None), bad(t), "{t}");
        }
        let gone = |t: &str| {
            Err(RequestError::IllegalArgument(format!(
                "illegal arguments: appkey: o#a, time: {t}, maybe chat message history is expired or unstored"
            )))
        };
        assert_eq!(
            ExportHour::parse("2018112011", "o#a", now, Some(7 * day)),
            gone("2018112011"),
            "older than retention"
        );
        assert_eq!(ExportHour::parse("2018112713", "o#a", now, None), gone("2018112713"), "not begun");
        assert!(ExportHour::parse("2018112011", "o#a", now, None).is_ok(), "kept forever");
        assert!(ExportHour::parse("2018112012", "o#a", now, Some(7 * day)).is_ok(), "the oldest hour still held");
        assert_eq!(
            ok.not_found("o#a").description(),
            "Failed to find chat message history download url for appkey: o#a, time: 2018112711"
        );
        assert_eq!(ok.not_found("o#a").status(), 404);
    }

    fn page_rows(ids: &[u64]) -> Vec<ArchivedMessage> {
        let m = archived_rest("txt", json!({"msg": "m"}), json!({}));
        ids.iter().map(|&id| ArchivedMessage { id: MsgId(id), ..m.clone() }).collect()
    }

    #[test]
    fn pages_carry_a_cursor_only_when_more_follow() {
        let p = chat_log_page(&page_rows(&[1, 2, 3]), 2);
        assert_eq!(p.entities.len(), 2);
        let c = PageCursor::decode(p.cursor.as_deref().unwrap(), CursorKind::ChatLog).unwrap();
        assert_eq!(c.key, 2);
        assert_eq!(chat_log_page(&page_rows(&[1, 2]), 2).cursor, None);
    }

    proptest! {
        /// Canonical spelling round-trips for every query the parser can produce.
        #[test]
        fn canonical_ql_round_trips(
            start in proptest::option::of(any::<u64>()),
            end in proptest::option::of(any::<u64>()),
            from in proptest::option::of("[a-z0-9_.'\\\\-]{0,12}"),
            to in proptest::option::of("[a-z0-9_.-]{0,12}"),
            desc: bool,
        ) {
            let q = ChatLogQuery {
                time: TimeRange { start_ms: start.map_or(0, |s| s.saturating_add(1)), end_ms: end },
                from,
                to,
                order: if desc { Order::Desc } else { Order::Asc },
            };
            prop_assert_eq!(ChatLogQuery::parse(&q.to_ql()), Ok(q));
        }

        #[test]
        fn any_text_parses_or_is_a_query_parse_error(s in ".{0,80}") {
            match ChatLogQuery::parse(&s) {
                Ok(q) => prop_assert_eq!(ChatLogQuery::parse(&q.to_ql()), Ok(q)),
                Err(RequestError::QueryParse { column, .. }) => prop_assert!(column <= s.len()),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn paging_with_the_cursor_visits_everything_once(
            ids in proptest::collection::btree_set(1u64..5_000, 0..60),
            limit in 1u32..20,
            desc: bool,
        ) {
            let rows = page_rows(&ids.iter().copied().collect::<Vec<_>>());
            let order = if desc { "desc" } else { "asc" };
            let ql = format!("select * order by timestamp {order}");
            let mut cursor: Option<String> = None;
            let mut seen = Vec::new();
            for _ in 0..=rows.len() {
                let r = ChatLogRequest::parse(Some(&ql), Some(&limit.to_string()), cursor.as_deref()).unwrap();
                let w = r.window();
                let mut hit: Vec<ArchivedMessage> = rows.iter().filter(|m| w.contains(m.id)).cloned().collect();
                if desc {
                    hit.reverse();
                }
                hit.truncate(limit as usize + 1);
                let page = chat_log_page(&hit, limit);
                seen.extend(page.entities.iter().map(|e| e["msg_id"].as_str().unwrap().parse::<u64>().unwrap()));
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let mut want: Vec<u64> = ids.into_iter().collect();
            if desc {
                want.reverse();
            }
            prop_assert_eq!(seen, want);
        }
    }
}
