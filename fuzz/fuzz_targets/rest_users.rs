//! Any bytes as the JSON body of a user, token or recall request (`POST /users`,
//! `PUT /users/{u}`, `PUT /users/{u}/password`, `POST /users/batch/status`, `GET /users`'s
//! page, `POST /token`, `POST /messages/msg_recall` and `/messages/recall`), and any JSON
//! string as a chat file request's header or query: parsing never panics, every refusal is
//! a 4xx with an Easemob error, and what is accepted keeps the API's promises — legal
//! lower-case ids, passwords and nicknames within their limits, batches within theirs,
//! ranges inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_api::files::{
    MAX_FILENAME_CHARS, MAX_THUMBNAIL_PX, RangeRequest, clean_filename, content_type_essence,
    parse_range, thumbnail_box,
};
use missive_api::token::{ClientCredentials, GrantType, InheritGrant, PasswordGrant, parse_ttl};
use missive_api::users::{
    BatchStatus, MAX_NICKNAME_CHARS, MAX_PASSWORD_CHARS, PasswordChange, RegisterRequest, Registration, UserPage,
    check_password, parse_update, parse_username,
};
use missive_api::{BatchRecall, RecallRequest, RequestError};
use missive_core::model::normalize_username;
use serde_json::Value;

/// The server's default `limits.batch_register` and `limits.batch_status`.
const MAX_REGISTER: usize = 60;
const MAX_STATUS: usize = 100;

fn refusal_is_easemob<T>(r: &Result<T, RequestError>) {
    if let Err(e) = r {
        assert!((400..500).contains(&e.status()), "{e:?} is {}", e.status());
        assert!(!e.error().is_empty() && !e.exception().is_empty() && !e.description().is_empty());
    }
}

/// An accepted user id is the one the core rule makes of it.
fn legal_id(id: &str) {
    assert_eq!(normalize_username(id).as_deref(), Ok(id));
}

fn registration(r: &Registration) {
    legal_id(&r.username);
    assert!(!r.password.is_empty() && r.password.chars().count() <= MAX_PASSWORD_CHARS);
    assert!(r.nickname.as_ref().is_none_or(|n| n.chars().count() <= MAX_NICKNAME_CHARS));
}

fn users(v: &Value) {
    let reg = RegisterRequest::parse(v, MAX_REGISTER);
    refusal_is_easemob(&reg);
    match reg {
        Ok(RegisterRequest::One(r)) => registration(&r),
        Ok(RegisterRequest::Batch(items)) => {
            assert!((1..=MAX_REGISTER).contains(&items.len()));
            for item in &items {
                refusal_is_easemob(&item.registration);
                if let Ok(r) = &item.registration {
                    registration(r);
                    assert_eq!(r.username, item.shown.to_ascii_lowercase());
                }
            }
        }
        Err(_) => {}
    }
    let patch = parse_update(v);
    refusal_is_easemob(&patch);
    if let Ok(p) = patch {
        assert!(p.nickname.is_none_or(|n| n.chars().count() <= MAX_NICKNAME_CHARS));
        assert!(!p.attributes.contains_key("nickname"));
    }
    let change = PasswordChange::parse(v);
    for password in [change.new_password(), change.old_password()] {
        refusal_is_easemob(&password);
        if let Ok(p) = password {
            assert!(!p.is_empty());
            assert_eq!(check_password(&p).is_ok(), p.chars().count() <= MAX_PASSWORD_CHARS);
        }
    }
    let status = BatchStatus::parse(v, MAX_STATUS);
    refusal_is_easemob(&status);
    if let Ok(s) = status {
        assert!(s.users.len() <= MAX_STATUS);
        s.ids().iter().for_each(|id| legal_id(id));
        assert_eq!(s.answer(|_| true).len(), s.users.len());
    }
    if let Value::String(s) = v {
        let id = parse_username(s);
        refusal_is_easemob(&id);
        if let Ok(id) = id {
            legal_id(&id);
        }
        let page = UserPage::parse(Some(s), Some(s));
        refusal_is_easemob(&page);
        if let Ok(p) = page {
            assert!((1..=100).contains(&p.limit));
            assert_eq!(UserPage::parse(None, Some(&UserPage::cursor(p.after))).map(|q| q.after), Ok(p.after));
        }
    }
}

fn token(v: &Value) {
    let grant = GrantType::parse(v);
    refusal_is_easemob(&grant);
    if grant.is_ok() {
        refusal_is_easemob(&ClientCredentials::parse(v));
        refusal_is_easemob(&parse_ttl(v));
    }
    let password = PasswordGrant::parse(v);
    refusal_is_easemob(&password);
    if let Ok(g) = password {
        legal_id(&g.username);
    }
    let inherit = InheritGrant::parse(v);
    refusal_is_easemob(&inherit);
    if let Ok(g) = inherit {
        legal_id(&g.username);
    }
}

fn recall(v: &Value) {
    let one = RecallRequest::parse(v);
    refusal_is_easemob(&one);
    if let Ok(r) = one {
        assert!(!r.to.is_empty() && !r.to.bytes().any(|b| b.is_ascii_uppercase()));
        assert_eq!(r.msg_id.parse::<u64>(), Ok(r.id.0));
        for now in [0, r.id.unix_ms(), u64::MAX] {
            refusal_is_easemob(&r.check_window(now, 120_000));
        }
        assert!(r.recalled().is_object());
    }
    let batch = BatchRecall::parse(v);
    refusal_is_easemob(&batch);
    if let Ok(b) = batch {
        for item in &b.items {
            refusal_is_easemob(&item.request);
            assert!(item.failed("x").is_object());
        }
    }
}

fn files(s: &str) {
    for len in [0, 1, 100, u64::MAX] {
        match parse_range(Some(s), len) {
            RangeRequest::Partial(r) => assert!(r.start < r.end && r.end <= len, "{r:?} of {len}"),
            RangeRequest::Full | RangeRequest::Unsatisfiable => {}
        }
    }
    let (w, h) = thumbnail_box([Some(s.as_bytes()), None], [None, None], 170);
    assert!((1..=MAX_THUMBNAIL_PX).contains(&w) && h == 170);
    assert!(clean_filename(s).chars().count() <= MAX_FILENAME_CHARS);
    if let Some(t) = content_type_essence(s) {
        assert!(t.contains('/') && !t.bytes().any(|b| b.is_ascii_uppercase() || b.is_ascii_control()));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    users(&value);
    token(&value);
    recall(&value);
    if let Value::String(s) = &value {
        files(s);
    }
});
