//! MSYNC message content → Easemob's JSON message body: the inverse of [`crate::send`].
//!
//! Easemob shows a stored message the same way everywhere it leaves the server as JSON: the
//! callbacks' `payload` ("与通过 REST API 发送过来的一致"), the history export, the push
//! summary. That shape is `{"ext": {…}, "bodies": [{"type": "txt", "msg": "…"}]}`, with the
//! field names of the REST send API (`url`, `filename`, `length`, `lat`, …), so this module
//! maps each `Content` field back to the REST name [`crate::send`] read it from. The table
//! is PROTOCOL.md §5 read right to left; the examples it must reproduce are Easemob's
//! post-send callback samples (`callback_message_send.md`).
//!
//! Absent optional fields stay absent (no `null`s): a receiver that checks `"secret" in
//! body` sees what the sender sent. Whole-number floats (image sizes) are written as
//! integers, as Easemob's samples show them.

use missive_msync::ext::key_values_to_json;
use missive_msync::pb;
use missive_msync::pb::message_body::Content;
use missive_msync::pb::message_body::content::{Size, SubType, Type as ContentType};
use serde_json::{Map, Number, Value};

/// The REST `type` of a content: `txt`, `img`, `audio`, `video`, `file`, `loc`, `cmd`,
/// `custom`. A combined message (TEXT with a `sub_type`, or COMBINE) is `txt`, as Easemob
/// reports it (`chat:user:txt` with `subType: sub_combine`).
pub fn body_type(c: &Content) -> &'static str {
    match c.r#type() {
        ContentType::Text | ContentType::Combine => "txt",
        ContentType::Image => "img",
        ContentType::Voice => "audio",
        ContentType::Video => "video",
        ContentType::File => "file",
        ContentType::Location => "loc",
        ContentType::Command => "cmd",
        ContentType::Custom => "custom",
    }
}

/// Whether this content is a combined (merged-forward) message rather than plain text: the
/// SDK marks it with `sub_type` COMBINE (0); a TEXT with another sub-type (SUB_STREAM, 10)
/// is still text.
pub fn is_combine(c: &Content) -> bool {
    c.r#type() == ContentType::Combine
        || (c.r#type() == ContentType::Text && c.sub_type == Some(SubType::SubCombine as i32))
}

/// One entry of `bodies`: the content under its REST field names, `type` included.
pub fn content_json(c: &Content) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), body_type(c).into());
    let file = |m: &mut Map<String, Value>| {
        put_str(m, "url", &c.remote_path);
        put_str(m, "filename", &c.display_name);
        put_str(m, "secret", &c.secret_key);
        put(m, "file_length", c.file_length.map(Value::from));
    };
    match c.r#type() {
        _ if is_combine(c) => {
            m.insert("subType".into(), "sub_combine".into());
            put_str(&mut m, "msg", &c.text);
            put_str(&mut m, "title", &c.title);
            put_str(&mut m, "summary", &c.summary);
            put(&mut m, "combineLevel", c.combine_level.map(Value::from));
            file(&mut m);
        }
        ContentType::Text | ContentType::Combine => {
            m.insert("msg".into(), c.text.clone().unwrap_or_default().into());
        }
        ContentType::Image => {
            file(&mut m);
            put(&mut m, "size", c.size.as_ref().map(size));
            put_str(&mut m, "thumb", &c.thumbnail_remote_path);
            put_str(&mut m, "thumb_secret", &c.thumbnail_secret_key);
            // The SDKs show an animated GIF as `isGif` from this (the Web SDK's list decoder).
            if c.sub_type == Some(SubType::Gif as i32) {
                m.insert("subType".into(), "sub_gif".into());
            }
        }
        ContentType::Voice => {
            file(&mut m);
            put(&mut m, "length", c.duration.map(Value::from));
        }
        ContentType::Video => {
            file(&mut m);
            put(&mut m, "length", c.duration.map(Value::from));
            put_str(&mut m, "thumb", &c.thumbnail_remote_path);
            put_str(&mut m, "thumb_secret", &c.thumbnail_secret_key);
            // Easemob's video samples carry the thumbnail's size as `size`.
            put(&mut m, "size", c.thumbnail_size.as_ref().or(c.size.as_ref()).map(size));
        }
        ContentType::File => file(&mut m),
        ContentType::Location => {
            put(&mut m, "lat", c.latitude.map(number));
            put(&mut m, "lng", c.longitude.map(number));
            m.insert("addr".into(), c.address.clone().unwrap_or_default().into());
            put_str(&mut m, "buildingName", &c.building_name);
        }
        ContentType::Command => {
            m.insert("action".into(), c.action.clone().unwrap_or_default().into());
        }
        ContentType::Custom => {
            put_str(&mut m, "customEvent", &c.custom_event);
            if !c.custom_exts.is_empty() {
                let exts = key_values_to_json(&c.custom_exts);
                // Easemob sends both forms: the old list of one-key objects and the map.
                let list = exts.iter().map(|(k, v)| Value::Object(Map::from_iter([(k.clone(), v.clone())])));
                m.insert("customExts".into(), Value::Array(list.collect()));
                m.insert("v2:customExts".into(), Value::Object(exts));
            }
        }
    }
    m
}

/// A chat message as Easemob's JSON shows it: `{"ext": {…}, "bodies": […]}`.
pub fn message_json(body: &pb::MessageBody) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ext".into(), Value::Object(key_values_to_json(&body.ext)));
    m.insert("bodies".into(), Value::Array(body.contents.iter().map(|c| Value::Object(content_json(c))).collect()));
    m
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.into(), v);
    }
}

fn put_str(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    put(m, key, v.clone().map(Value::from));
}

fn size(s: &Size) -> Value {
    let mut m = Map::new();
    put(&mut m, "width", s.width.map(number));
    put(&mut m, "height", s.height.map(number));
    Value::Object(m)
}

/// A protobuf double as JSON: whole numbers as integers (`746`, not `746.0`), non-finite
/// values (which JSON cannot hold) as `null`.
fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return Value::from(f as i64);
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::send::{SendForm, SendRequest, chat_body};

    /// The REST body a send request carried, as the JSON side of the content.
    fn round_trip(msg_type: &str, body: Value) -> Value {
        let req =
            SendRequest::parse(&json!({"to": ["b"], "type": msg_type, "body": body}), SendForm::Users, 1).unwrap();
        Value::Object(content_json(&req.content().unwrap()))
    }

    /// Every REST body Easemob documents comes back out under the names it went in with.
    #[test]
    fn rest_bodies_round_trip() {
        let cases = [
            ("txt", json!({"msg": "hello"})),
            ("img", json!({"url": "u", "filename": "a.jpg", "secret": "s", "size": {"width": 480, "height": 720}})),
            ("audio", json!({"url": "u", "filename": "a.amr", "length": 10, "secret": "s"})),
            (
                "video",
                json!({"url": "u", "thumb": "t", "length": 3, "secret": "s", "file_length": 58103, "thumb_secret": "ts"}),
            ),
            ("file", json!({"url": "u", "filename": "test.txt", "secret": "s"})),
            ("loc", json!({"lat": 39.966, "lng": 116.322, "addr": "中关村"})),
            ("cmd", json!({"action": "action1"})),
            ("custom", json!({"customEvent": "custom_event"})),
        ];
        for (t, body) in cases {
            let mut expected = body.clone();
            expected["type"] = t.into();
            assert_eq!(round_trip(t, body), expected, "{t}");
        }
    }

    /// Easemob's custom-message callback sample: both `customExts` forms.
    #[test]
    fn custom_exts_in_both_forms() {
        let out = round_trip("custom", json!({"customEvent": "gift_1", "customExts": {"name": "flower"}}));
        assert_eq!(
            out,
            json!({"type": "custom", "customEvent": "gift_1", "customExts": [{"name": "flower"}], "v2:customExts": {"name": "flower"}})
        );
    }

    #[test]
    fn message_json_has_ext_and_bodies() {
        let req = SendRequest::parse(
            &json!({"to": ["b"], "type": "txt", "body": {"msg": "rr"}, "ext": {"k": 1}}),
            SendForm::Users,
            1,
        )
        .unwrap();
        let body = chat_body(req.content().unwrap(), &req.ext);
        assert_eq!(
            Value::Object(message_json(&body)),
            json!({"ext": {"k": 1}, "bodies": [{"msg": "rr", "type": "txt"}]})
        );
    }

    #[test]
    fn combine_and_fractional_numbers() {
        let c = Content {
            r#type: Some(ContentType::Text as i32),
            sub_type: Some(0),
            text: Some("old SDK text".into()),
            title: Some("聊天记录".into()),
            combine_level: Some(1),
            ..Default::default()
        };
        let out = Value::Object(content_json(&c));
        assert_eq!(out["type"], "txt");
        assert_eq!(out["subType"], "sub_combine");
        assert_eq!(out["combineLevel"], 1);
        assert_eq!(number(20.5), json!(20.5));
        assert_eq!(number(f64::NAN), Value::Null);
    }

    #[test]
    fn sub_types_other_than_combine() {
        let streamed = Content {
            r#type: Some(ContentType::Text as i32),
            sub_type: Some(SubType::SubStream as i32),
            text: Some("partial".into()),
            ..Default::default()
        };
        assert_eq!(Value::Object(content_json(&streamed)), json!({"type": "txt", "msg": "partial"}));
        let gif = Content {
            r#type: Some(ContentType::Image as i32),
            sub_type: Some(SubType::Gif as i32),
            remote_path: Some("u".into()),
            ..Default::default()
        };
        assert_eq!(Value::Object(content_json(&gif)), json!({"type": "img", "url": "u", "subType": "sub_gif"}));
    }
}
