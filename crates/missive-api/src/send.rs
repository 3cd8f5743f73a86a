//! The one-to-one send request (Easemob "发送单聊消息", easemob-api.md §4): JSON body →
//! [`SendRequest`] → MSYNC content.
//!
//! Validation runs in the order Easemob checks a request, because the first failing rule
//! decides which error a client sees: envelope fields and recipient count
//! ([`SendRequest::parse`]), then the per-type body ([`SendRequest::content`]), then the
//! content size ([`SendRequest::check_size`]). The server interleaves its own steps
//! (idempotency, quotas) between these calls, which is why they are separate.

use missive_msync::ext::json_to_key_values;
use missive_msync::pb;
use missive_msync::pb::message_body::Content;
use missive_msync::pb::message_body::content::Type as ContentType;
use serde_json::{Map, Value};

use crate::error::RequestError;

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// The message `type`s the send API accepts; anything else is `param type … is not supported`.
pub const MESSAGE_TYPES: [&str; 8] = ["txt", "img", "audio", "video", "file", "loc", "cmd", "custom"];

/// Most `customExts` entries a custom message may carry (Easemob's limit).
pub const MAX_CUSTOM_EXTS: usize = 16;

/// Which of the two send APIs a body was posted to: they name the recipients and the
/// message body differently but share every rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendForm {
    /// `POST /messages/users`: `to`, `type`, `body`.
    Users,
    /// `POST /messages`, still used by the Java SDK: `target_type: "users"`, `target`, and
    /// `msg` carrying its own `type`.
    Legacy,
}

/// A send request whose envelope passed validation. The body is checked separately by
/// [`SendRequest::content`].
#[derive(Clone, Debug, PartialEq)]
pub struct SendRequest {
    /// Lower-cased sender; `admin` when the request names none.
    pub from: String,
    /// Lower-cased recipients, 1 to the configured limit, none empty.
    pub to: Vec<String>,
    /// The message `type`, from the envelope or else from the body; never empty.
    pub msg_type: String,
    /// The type-specific body, without its `type` key.
    pub body: Map<String, Value>,
    pub ext: Map<String, Value>,
    /// `routetype: ROUTE_ONLINE`: deliver only to devices online now, store nothing.
    pub route_online: bool,
    /// Also deliver to the sender's other devices.
    pub sync_device: bool,
    /// Lower-cased users (the sender or the recipients) from whose history the message is
    /// left out: they receive it, but it does not roam.
    pub roam_ignore_users: Vec<String>,
    /// What the content limit measures: the compact JSON of `body` (legacy: `msg`) as sent,
    /// plus that of `ext` when present, in bytes.
    pub content_bytes: usize,
}

impl SendRequest {
    /// Validates a send request's JSON body as posted to `form`, with at most
    /// `max_recipients` recipients.
    pub fn parse(body: &Value, form: SendForm, max_recipients: usize) -> Result<SendRequest> {
        let obj = body.as_object().ok_or(RequestError::InvalidBody)?;
        match form {
            SendForm::Users => parse_envelope(obj, "to", obj.get("body"), max_recipients),
            SendForm::Legacy => {
                match obj.get("target_type").and_then(Value::as_str) {
                    Some("users") => {}
                    _ => {
                        return Err(RequestError::IllegalArgument(
                            "target_type can only be 'users' or 'chatgroups' or 'chatrooms'".into(),
                        ));
                    }
                }
                parse_envelope(obj, "target", obj.get("msg"), max_recipients)
            }
        }
    }

    /// The MSYNC content of this request's `type` and `body`.
    pub fn content(&self) -> Result<Content> {
        content_for(&self.msg_type, &self.body)
    }

    /// The content rule: `body` + `ext` at most `max_bytes` (`message is too large`, 14007).
    pub fn check_size(&self, max_bytes: usize) -> Result<()> {
        if self.content_bytes > max_bytes { Err(RequestError::TooLarge) } else { Ok(()) }
    }
}

/// The `Idempotency-Key` header of a send (a Missive extension), as raw header bytes: 1 to
/// 255 visible ASCII characters, or absent.
pub fn idempotency_key(header: Option<&[u8]>) -> Result<Option<String>> {
    let Some(raw) = header else { return Ok(None) };
    if (1..=255).contains(&raw.len()) && raw.iter().all(u8::is_ascii_graphic) {
        // Visible ASCII is UTF-8.
        return Ok(Some(String::from_utf8_lossy(raw).into_owned()));
    }
    Err(RequestError::IllegalArgument("Idempotency-Key must be 1 to 255 visible ASCII characters".into()))
}

/// The chat message an SDK receives: one content plus the request's `ext`.
pub fn chat_body(content: Content, ext: &Map<String, Value>) -> pb::MessageBody {
    let mut body = pb::MessageBody { contents: vec![content], ext: json_to_key_values(ext), ..Default::default() };
    body.set_type(pb::message_body::Type::Chat);
    body
}

/// Characters allowed in `customEvent` (`[a-zA-Z0-9-_/\.]{1,32}`).
fn custom_event_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'.'))
}

/// Bytes of `v`'s compact JSON serialization (whitespace of the request does not count).
fn compact_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

/// An optional boolean flag: absent and `null` are `false`, anything but a boolean is an
/// invalid body. Shared with recall's `force` and the token request's `autoCreateUser`.
pub fn opt_bool(v: Option<&Value>) -> Result<bool> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

fn string_list(v: &Value) -> Result<Vec<String>> {
    v.as_array()
        .ok_or(RequestError::InvalidBody)?
        .iter()
        .map(|x| x.as_str().map(str::to_owned).ok_or(RequestError::InvalidBody))
        .collect()
}

/// Validates the common envelope: `from`, `to`, `type`, `body`, `ext`, `routetype`,
/// `sync_device`, `roam_ignore_users`.
fn parse_envelope(
    obj: &Map<String, Value>,
    to_key: &str,
    body: Option<&Value>,
    max_recipients: usize,
) -> Result<SendRequest> {
    let from = match obj.get("from") {
        None | Some(Value::Null) => "admin".to_owned(),
        Some(Value::String(s)) if s.is_empty() => return Err(RequestError::send("param from can't be empty")),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(_) => return Err(RequestError::InvalidBody),
    };
    let to = match obj.get(to_key) {
        None | Some(Value::Null) => return Err(RequestError::send("param to can't be empty")),
        Some(v) => string_list(v)?,
    };
    if to.is_empty() {
        return Err(RequestError::send("param to can't be empty"));
    }
    let content_bytes = body.map_or(0, compact_len) + obj.get("ext").map_or(0, compact_len);
    if to.len() > max_recipients {
        return Err(RequestError::send(format!("params to's size can't exceed limit {max_recipients}")));
    }
    if to.iter().any(|t| t.is_empty()) {
        return Err(RequestError::send("param to can't be empty"));
    }
    let (msg_type, body) = match body {
        Some(Value::Object(b)) => {
            let t = match obj.get("type").or_else(|| b.get("type")) {
                Some(Value::String(t)) => t.clone(),
                None | Some(Value::Null) => String::new(),
                Some(_) => return Err(RequestError::InvalidBody),
            };
            let mut b = b.clone();
            b.remove("type");
            (t, b)
        }
        None | Some(Value::Null) => {
            (obj.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(), Map::new())
        }
        Some(_) => return Err(RequestError::InvalidBody),
    };
    if msg_type.is_empty() {
        return Err(RequestError::send("param type can't be empty"));
    }
    if body.is_empty() && msg_type != "custom" {
        return Err(RequestError::send("param body can't be empty"));
    }
    let ext = match obj.get("ext") {
        None => Map::new(),
        Some(Value::Object(e)) => e.clone(),
        Some(_) => return Err(RequestError::send("param ext must be JSONObject")),
    };
    let route_online = match obj.get("routetype") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "ROUTE_ONLINE" => true,
        Some(Value::String(s)) if s.is_empty() || s == "ROUTE_ALL" => false,
        Some(_) => return Err(RequestError::InvalidBody),
    };
    let sync_device = opt_bool(obj.get("sync_device"))?;
    let roam_ignore_users = match obj.get("roam_ignore_users").filter(|v| !v.is_null()) {
        Some(v) => string_list(v)?.into_iter().map(|u| u.to_ascii_lowercase()).collect(),
        None => Vec::new(),
    };
    Ok(SendRequest {
        from,
        to: to.into_iter().map(|t| t.to_ascii_lowercase()).collect(),
        msg_type,
        body,
        ext,
        route_online,
        sync_device,
        roam_ignore_users,
        content_bytes,
    })
}

fn str_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

fn required_str(body: &Map<String, Value>, key: &str) -> Result<String> {
    str_field(body, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RequestError::send(format!("param body.{key} can't be empty")))
}

/// Numbers that Easemob's examples send either as JSON numbers or as strings.
fn number_field(body: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| RequestError::InvalidBody),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

/// A number field the protocol holds as `int32`: saturated, fractions dropped.
fn int_field(body: &Map<String, Value>, key: &str) -> Result<Option<i32>> {
    Ok(number_field(body, key)?.map(|n| n.clamp(i32::MIN as f64, i32::MAX as f64) as i32))
}

/// Converts a REST `body` of the given `type` into the MSYNC content the SDKs decode
/// (PROTOCOL.md §5: `url`→`remote_path`, `filename`→`display_name`, `length`→`duration`, …).
fn content_for(msg_type: &str, body: &Map<String, Value>) -> Result<Content> {
    let mut c = Content::default();
    let file_fields = |c: &mut Content| -> Result<()> {
        c.remote_path = Some(required_str(body, "url")?);
        c.display_name = str_field(body, "filename")?;
        c.secret_key = str_field(body, "secret")?;
        c.file_length = int_field(body, "file_length")?;
        Ok(())
    };
    match msg_type {
        "txt" => {
            c.set_type(ContentType::Text);
            c.text = Some(str_field(body, "msg")?.ok_or_else(|| RequestError::send("param body.msg can't be empty"))?);
        }
        "img" => {
            c.set_type(ContentType::Image);
            file_fields(&mut c)?;
            if let Some(size) = body.get("size").filter(|v| !v.is_null()) {
                let size = size.as_object().ok_or(RequestError::InvalidBody)?;
                c.size = Some(pb::message_body::content::Size {
                    width: number_field(size, "width")?,
                    height: number_field(size, "height")?,
                });
            }
        }
        "audio" => {
            c.set_type(ContentType::Voice);
            file_fields(&mut c)?;
            c.duration = int_field(body, "length")?.or(int_field(body, "Length")?);
        }
        "video" => {
            c.set_type(ContentType::Video);
            file_fields(&mut c)?;
            c.duration = int_field(body, "length")?;
            c.thumbnail_remote_path = str_field(body, "thumb")?;
            c.thumbnail_secret_key = str_field(body, "thumb_secret")?;
        }
        "file" => {
            c.set_type(ContentType::File);
            file_fields(&mut c)?;
        }
        "loc" => {
            c.set_type(ContentType::Location);
            c.latitude =
                Some(number_field(body, "lat")?.ok_or_else(|| RequestError::send("param body.lat can't be empty"))?);
            c.longitude =
                Some(number_field(body, "lng")?.ok_or_else(|| RequestError::send("param body.lng can't be empty"))?);
            c.address = Some(str_field(body, "addr")?.unwrap_or_default());
            c.building_name = str_field(body, "buildingName")?;
        }
        "cmd" => {
            c.set_type(ContentType::Command);
            c.action = Some(required_str(body, "action")?);
        }
        "custom" => {
            c.set_type(ContentType::Custom);
            if let Some(ev) = str_field(body, "customEvent")? {
                if !custom_event_ok(&ev) {
                    return Err(RequestError::send("param customEvent must match [a-zA-Z0-9-_/\\.]{1,32}"));
                }
                c.custom_event = Some(ev);
            }
            match body.get("customExts") {
                None | Some(Value::Null) => {}
                Some(Value::Object(exts)) => {
                    if exts.len() > MAX_CUSTOM_EXTS {
                        return Err(RequestError::send("param customExts can't have more than 16 entries"));
                    }
                    if exts.values().any(|v| !v.is_string()) {
                        return Err(RequestError::send("param customExts must be Map<String,String>"));
                    }
                    c.custom_exts = json_to_key_values(exts);
                }
                Some(_) => return Err(RequestError::send("param customExts must be Map<String,String>")),
            }
        }
        _ => return Err(RequestError::send(format!("param type {msg_type} is not supported"))),
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const MAX: usize = 600;

    fn parse(v: Value) -> Result<SendRequest> {
        SendRequest::parse(&v, SendForm::Users, MAX)
    }

    fn send_err(s: &str) -> RequestError {
        RequestError::send(s)
    }

    fn txt_to(to: Value) -> Value {
        json!({"to": to, "type": "txt", "body": {"msg": "m"}})
    }

    #[test]
    fn recipients_from_one_to_the_limit() {
        let names = |n: usize| Value::from((0..n).map(|i| format!("U{i}")).collect::<Vec<_>>());
        let req = parse(txt_to(names(MAX))).unwrap();
        assert_eq!(req.to.len(), MAX);
        assert_eq!(req.to[0], "u0", "recipients are lower-cased");
        assert_eq!(parse(txt_to(names(MAX + 1))), Err(send_err("params to's size can't exceed limit 600")));
        assert_eq!(
            SendRequest::parse(&txt_to(names(4)), SendForm::Users, 3).unwrap_err().description(),
            "params to's size can't exceed limit 3"
        );
        for empty in [json!([]), json!([""]), json!(["a", ""]), Value::Null] {
            assert_eq!(parse(txt_to(empty.clone())), Err(send_err("param to can't be empty")), "{empty}");
        }
        assert_eq!(parse(json!({"type": "txt", "body": {"msg": "m"}})), Err(send_err("param to can't be empty")));
        for wrong in [json!("bob"), json!([1]), json!({"a": "b"})] {
            assert_eq!(parse(txt_to(wrong)), Err(RequestError::InvalidBody));
        }
    }

    #[test]
    fn envelope_fields() {
        let req = parse(txt_to(json!(["bob"]))).unwrap();
        assert_eq!((req.from.as_str(), req.route_online, req.sync_device), ("admin", false, false));
        let req = parse(json!({"from": "Alice", "to": ["b"], "type": "txt", "body": {"msg": "m"}, "routetype": "ROUTE_ONLINE", "sync_device": true})).unwrap();
        assert_eq!((req.from.as_str(), req.route_online, req.sync_device), ("alice", true, true));
        let with = |k: &str, v: Value| {
            let mut r = txt_to(json!(["b"]));
            r[k] = v;
            parse(r)
        };
        assert_eq!(with("from", json!("")), Err(send_err("param from can't be empty")));
        assert_eq!(with("from", json!(1)), Err(RequestError::InvalidBody));
        assert_eq!(with("ext", json!([])), Err(send_err("param ext must be JSONObject")));
        assert_eq!(with("routetype", json!("ROUTE_SOME")), Err(RequestError::InvalidBody));
        assert!(with("routetype", json!("")).is_ok_and(|r| !r.route_online));
        assert_eq!(with("sync_device", json!("true")), Err(RequestError::InvalidBody));
        assert_eq!(with("roam_ignore_users", json!([1])), Err(RequestError::InvalidBody));
        assert_eq!(with("roam_ignore_users", json!(["Bob", "carol"])).unwrap().roam_ignore_users, ["bob", "carol"]);
        assert!(with("roam_ignore_users", json!(null)).unwrap().roam_ignore_users.is_empty());
        assert_eq!(parse(json!(["not", "an", "object"])), Err(RequestError::InvalidBody));
    }

    #[test]
    fn type_and_body() {
        // `type` may sit in the body (the legacy form's habit); it is not part of the content.
        let req = parse(json!({"to": ["b"], "body": {"type": "txt", "msg": "m"}})).unwrap();
        assert_eq!(req.msg_type, "txt");
        assert!(!req.body.contains_key("type"));
        assert_eq!(parse(json!({"to": ["b"], "body": {"msg": "m"}})), Err(send_err("param type can't be empty")));
        assert_eq!(parse(json!({"to": ["b"], "type": "txt", "body": {}})), Err(send_err("param body can't be empty")));
        assert_eq!(parse(json!({"to": ["b"], "type": "txt", "body": "m"})), Err(RequestError::InvalidBody));
        // Only custom messages may have no body at all.
        let req = parse(json!({"to": ["b"], "type": "custom"})).unwrap();
        assert_eq!(req.content().unwrap().r#type(), ContentType::Custom);
        let req = parse(json!({"to": ["b"], "type": "xml", "body": {"x": 1}})).unwrap();
        assert_eq!(req.content(), Err(send_err("param type xml is not supported")));
    }

    #[test]
    fn legacy_form() {
        let legacy = json!({"target_type": "users", "target": ["B"], "msg": {"type": "txt", "msg": "m"}});
        let req = SendRequest::parse(&legacy, SendForm::Legacy, MAX).unwrap();
        assert_eq!((req.to, req.msg_type), (vec!["b".to_owned()], "txt".to_owned()));
        let groups = json!({"target_type": "chatgroups", "target": ["g"], "msg": {"type": "txt", "msg": "m"}});
        let err = SendRequest::parse(&groups, SendForm::Legacy, MAX).unwrap_err();
        assert_eq!(err.error(), "illegal_argument");
        assert_eq!(err.description(), "target_type can only be 'users' or 'chatgroups' or 'chatrooms'");
        // The current form's field names mean nothing to the legacy API, and vice versa.
        assert_eq!(SendRequest::parse(&legacy, SendForm::Users, MAX), Err(send_err("param to can't be empty")));
    }

    #[test]
    fn every_type_maps_to_its_content() {
        let content =
            |t: &str, body: Value| parse(json!({"to": ["b"], "type": t, "body": body})).and_then(|r| r.content());
        assert_eq!(content("txt", json!({"msg": ""})).unwrap().text.as_deref(), Some(""));
        assert_eq!(content("txt", json!({"x": 1})), Err(send_err("param body.msg can't be empty")));
        let img = content("img", json!({"url": "u", "size": {"width": "10", "height": 20.5}})).unwrap();
        assert_eq!(img.size.map(|s| (s.width, s.height)), Some((Some(10.0), Some(20.5))));
        assert_eq!(content("img", json!({"url": ""})), Err(send_err("param body.url can't be empty")));
        assert_eq!(content("img", json!({"url": "u", "size": 3})), Err(RequestError::InvalidBody));
        let audio = content("audio", json!({"url": "u", "Length": "7", "file_length": 1e12})).unwrap();
        assert_eq!((audio.duration, audio.file_length), (Some(7), Some(i32::MAX)), "int32 fields saturate");
        let video = content("video", json!({"url": "u", "thumb": "t", "length": -3.9})).unwrap();
        assert_eq!((video.duration, video.thumbnail_remote_path.as_deref()), (Some(-3), Some("t")));
        assert_eq!(content("file", json!({"url": "u", "filename": 5})), Err(RequestError::InvalidBody));
        let loc = content("loc", json!({"lat": " 39.9 ", "lng": 116})).unwrap();
        assert_eq!((loc.latitude, loc.longitude, loc.address.as_deref()), (Some(39.9), Some(116.0), Some("")));
        assert_eq!(content("loc", json!({"lat": "", "lng": 1})), Err(send_err("param body.lat can't be empty")));
        assert_eq!(content("loc", json!({"lat": "north", "lng": 1})), Err(RequestError::InvalidBody));
        assert_eq!(content("cmd", json!({"x": 1})), Err(send_err("param body.action can't be empty")));
        assert_eq!(content("cmd", json!({"action": "a"})).unwrap().r#type(), ContentType::Command);
    }

    #[test]
    fn custom_event_and_exts_at_their_limits() {
        let custom =
            |body: Value| parse(json!({"to": ["b"], "type": "custom", "body": body})).and_then(|r| r.content());
        let pattern = send_err("param customEvent must match [a-zA-Z0-9-_/\\.]{1,32}");
        assert!(custom(json!({"customEvent": "a".repeat(32)})).is_ok());
        assert!(custom(json!({"customEvent": "a-_/.Z9"})).is_ok());
        assert_eq!(custom(json!({"customEvent": "a".repeat(33)})), Err(pattern.clone()));
        assert_eq!(custom(json!({"customEvent": ""})), Err(pattern.clone()));
        assert_eq!(custom(json!({"customEvent": "a b"})), Err(pattern));
        let exts = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect());
        assert_eq!(custom(json!({"customExts": exts(MAX_CUSTOM_EXTS)})).unwrap().custom_exts.len(), 16);
        assert_eq!(
            custom(json!({"customExts": exts(MAX_CUSTOM_EXTS + 1)})),
            Err(send_err("param customExts can't have more than 16 entries"))
        );
        let not_strings = send_err("param customExts must be Map<String,String>");
        assert_eq!(custom(json!({"customExts": {"k": 1}})), Err(not_strings.clone()));
        assert_eq!(custom(json!({"customExts": ["k"]})), Err(not_strings));
    }

    #[test]
    fn content_size_is_compact_body_plus_ext() {
        let req = json!({"to": ["b"], "type": "txt", "body": {"msg": "héllo"}, "ext": {"k": "\""}});
        let expected = serde_json::to_vec(&req["body"]).unwrap().len() + serde_json::to_vec(&req["ext"]).unwrap().len();
        // Whitespace in the request does not count.
        let pretty = serde_json::to_string_pretty(&req).unwrap();
        let parsed = parse(serde_json::from_str(&pretty).unwrap()).unwrap();
        assert_eq!(parsed.content_bytes, expected);
        assert_eq!(parsed.check_size(expected), Ok(()));
        assert_eq!(parsed.check_size(expected - 1), Err(RequestError::TooLarge));
        // The legacy form measures `msg`, which still holds its `type`.
        let legacy = json!({"target_type": "users", "target": ["b"], "msg": {"type": "txt", "msg": "m"}});
        let parsed = SendRequest::parse(&legacy, SendForm::Legacy, MAX).unwrap();
        assert_eq!(parsed.content_bytes, serde_json::to_vec(&legacy["msg"]).unwrap().len());
    }

    #[test]
    fn chat_body_carries_content_and_ext() {
        let req = parse(json!({"to": ["b"], "type": "txt", "body": {"msg": "m"}, "ext": {"a": 1}})).unwrap();
        let body = chat_body(req.content().unwrap(), &req.ext);
        assert_eq!(body.r#type(), pb::message_body::Type::Chat);
        assert_eq!(body.contents.len(), 1);
        assert_eq!(body.ext.len(), 1);
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(idempotency_key(Some(b"k-1")), Ok(Some("k-1".into())));
        assert_eq!(idempotency_key(Some("k".repeat(255).as_bytes())).map(|k| k.map(|k| k.len())), Ok(Some(255)));
        let refused =
            Err(RequestError::IllegalArgument("Idempotency-Key must be 1 to 255 visible ASCII characters".into()));
        for bad in [&b""[..], b"a b", b"\xc3\xa9", "k".repeat(256).as_bytes()] {
            assert_eq!(idempotency_key(Some(bad)), refused, "{bad:?}");
        }
    }
}
