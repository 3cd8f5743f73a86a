//! Any bytes as the body of a REST send (`POST /messages/users` and the legacy
//! `POST /messages`): parsing and validating never panic, every refusal is a 400 with an
//! Easemob error, and what is accepted keeps the API's promises — 1 to `MAX` non-empty,
//! lower-case recipients, a known `type` whose content has that type, within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_api::{MAX_CUSTOM_EXTS, MESSAGE_TYPES, RequestError, SendForm, SendRequest, chat_body};
use missive_msync::pb;
use missive_msync::pb::message_body::content::Type;
use prost::Message;

/// The server's default `limits.max_recipients`.
const MAX: usize = 600;

fn refusal_is_easemob(e: &RequestError) {
    assert_eq!(e.status(), 400);
    assert!(!e.error().is_empty() && !e.exception().is_empty() && !e.description().is_empty());
}

fn lower(s: &str) -> bool {
    !s.bytes().any(|b| b.is_ascii_uppercase())
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for form in [SendForm::Users, SendForm::Legacy] {
        let req = match SendRequest::parse(&value, form, MAX) {
            Ok(req) => req,
            Err(e) => {
                assert_ne!(e, RequestError::TooLarge, "size is not the envelope's business");
                refusal_is_easemob(&e);
                continue;
            }
        };
        assert!(!req.to.is_empty() && req.to.len() <= MAX, "{} recipients", req.to.len());
        assert!(req.to.iter().all(|t| !t.is_empty() && lower(t)));
        assert!(!req.from.is_empty() && lower(&req.from));
        assert!(!req.msg_type.is_empty() && !req.body.contains_key("type"));
        assert!(!req.body.is_empty() || req.msg_type == "custom");
        // One recipient fewer allowed than sent: refused by the limit rule, and only by it.
        let n = req.to.len();
        assert_eq!(
            SendRequest::parse(&value, form, n - 1),
            Err(RequestError::send(format!("params to's size can't exceed limit {}", n - 1)))
        );
        assert_eq!(req.check_size(req.content_bytes), Ok(()));
        assert_eq!(req.check_size(req.content_bytes.wrapping_sub(1)).is_err(), req.content_bytes > 0);

        let content = match req.content() {
            Ok(c) => c,
            Err(e) => {
                refusal_is_easemob(&e);
                continue;
            }
        };
        let want = match req.msg_type.as_str() {
            "txt" => Type::Text,
            "img" => Type::Image,
            "audio" => Type::Voice,
            "video" => Type::Video,
            "file" => Type::File,
            "loc" => Type::Location,
            "cmd" => Type::Command,
            "custom" => Type::Custom,
            other => panic!("accepted type {other:?} is not one of {MESSAGE_TYPES:?}"),
        };
        assert!(MESSAGE_TYPES.contains(&req.msg_type.as_str()));
        assert_eq!(content.r#type(), want);
        match want {
            Type::Text => assert!(content.text.is_some()),
            Type::Image | Type::Voice | Type::Video | Type::File => {
                assert!(content.remote_path.as_ref().is_some_and(|u| !u.is_empty()))
            }
            Type::Location => assert!(content.latitude.is_some() && content.longitude.is_some()),
            Type::Command => assert!(content.action.as_ref().is_some_and(|a| !a.is_empty())),
            Type::Custom => {
                assert!(content.custom_exts.len() <= MAX_CUSTOM_EXTS);
                assert!(content.custom_event.as_ref().is_none_or(|e| (1..=32).contains(&e.len())));
            }
            Type::Combine => unreachable!("no REST type maps to a combined message"),
        }
        // What the SDK receives encodes and decodes (re-encoding compares bytes: NaN-safe).
        let bytes = chat_body(content, &req.ext).encode_to_vec();
        let back = pb::MessageBody::decode(bytes.as_slice()).expect("our own encoding decodes");
        assert_eq!(back.encode_to_vec(), bytes);
    }
});
