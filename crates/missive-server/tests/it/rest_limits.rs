//! The send API's limits at their exact boundaries (easemob-api.md §4.2, §7.3, §8): the raw
//! body limit (413), the `body`+`ext` content limit (400 `message is too large`, 14007),
//! recipients per call, calls per second (429) and messages per minute (403).
//!
//! The content rule: the compact JSON serialization of `body` plus that of `ext` (absent
//! `ext` counts 0), in UTF-8 bytes, may be at most `limits.message_content_bytes`. Whitespace
//! in the request does not count; escapes do, as serialized.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestServer, assert_error};

fn compact_len(v: &Value) -> usize {
    serde_json::to_string(v).expect("serialize").len()
}

/// A string whose JSON serialization (without the quotes) is `bytes` long: as many `unit`
/// as fit (a multi-byte character counts its UTF-8 bytes, `"` its escape `\"`), then `x`.
fn fill(bytes: usize, unit: char) -> String {
    let cost = compact_len(&json!(unit.to_string())) - 2;
    let n = bytes / cost;
    let mut s: String = std::iter::repeat_n(unit, n).collect();
    s.extend(std::iter::repeat_n('x', bytes - n * cost));
    assert_eq!(compact_len(&json!(s)) - 2, bytes);
    s
}

/// A txt send request whose `body` (+ `ext` when `with_ext`) serializes to exactly `total`
/// bytes, the padding made of `unit` characters.
fn send_of_content(total: usize, with_ext: bool, unit: char) -> Value {
    let empty_body = compact_len(&json!({"msg": ""}));
    let mut req = json!({"from": "user1", "to": ["user2"], "type": "txt"});
    if with_ext {
        let empty_ext = compact_len(&json!({"k": ""}));
        let ext_pad = 100;
        req["ext"] = json!({"k": fill(ext_pad, unit)});
        req["body"] = json!({"msg": fill(total - empty_body - empty_ext - ext_pad, unit)});
    } else {
        req["body"] = json!({"msg": fill(total - empty_body, unit)});
    }
    let measured = compact_len(&req["body"]) + req.get("ext").map_or(0, compact_len);
    assert_eq!(measured, total, "test helper builds the size it claims");
    req
}

fn assert_too_large(st: StatusCode, b: &Value) {
    assert_error(st, b, 400, "message_send_error", "message is too large");
    assert_eq!(b["error_code"], 14007, "{b}");
    assert_eq!(b["exception"], "MessageSendException", "{b}");
}

fn assert_413(st: StatusCode, b: &Value) {
    assert_error(st, b, 413, "Request Entity Too Large", "Request Entity Too Large");
}

/// A send request of exactly `len` bytes: a small valid request padded with whitespace
/// between tokens (so its content stays tiny and only the raw size varies).
fn raw_send_of_len(len: usize) -> Vec<u8> {
    let head = r#"{"from":"user1","to":["user2"],"type":"txt","#;
    let tail = r#""body":{"msg":"hi"}}"#;
    let pad = len - head.len() - tail.len();
    let text = format!("{head}{}{tail}", " ".repeat(pad));
    assert_eq!(text.len(), len);
    text.into_bytes()
}

/// POSTs `body` over a raw connection with `Transfer-Encoding: chunked` (no
/// Content-Length, so the server can only find the size by reading); returns the status.
async fn post_chunked(s: &TestServer, path: &str, token: &str, body: &[u8]) -> u16 {
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let mut req = format!(
        "POST /testorg/testapp{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr
    )
    .into_bytes();
    for chunk in body.chunks(1000) {
        req.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        req.extend(chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    conn.write_all(&req).await.expect("write");
    let mut res = Vec::new();
    let _ = conn.read_to_end(&mut res).await;
    let head = String::from_utf8_lossy(&res);
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status line in {head:?}"))
}

#[tokio::test]
async fn raw_send_body_limit_is_exact() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let limit = s.config.limits.send_body_bytes;
    assert_eq!(limit, 5120, "Easemob's documented 5 KB");

    let (st, b) = s.post_raw("/messages/users", Some(&admin), raw_send_of_len(limit)).await;
    assert_eq!(st, StatusCode::OK, "exactly the limit is accepted: {b}");
    let (st, b) = s.post_raw("/messages/users", Some(&admin), raw_send_of_len(limit + 1)).await;
    assert_413(st, &b);
    let (st, b) = s.post_raw("/messages/users", Some(&admin), raw_send_of_len(4 * limit)).await;
    assert_413(st, &b);

    // The same without Content-Length.
    assert_eq!(post_chunked(&s, "/messages/users", &admin, &raw_send_of_len(limit)).await, 200);
    assert_eq!(post_chunked(&s, "/messages/users", &admin, &raw_send_of_len(limit + 1)).await, 413);

    // The legacy endpoint has the same limit.
    let legacy = |len: usize| {
        let head = r#"{"target_type":"users","target":["user2"],"#;
        let tail = r#""msg":{"type":"txt","msg":"hi"}}"#;
        format!("{head}{}{tail}", " ".repeat(len - head.len() - tail.len())).into_bytes()
    };
    let (st, b) = s.post_raw("/messages", Some(&admin), legacy(limit)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s.post_raw("/messages", Some(&admin), legacy(limit + 1)).await;
    assert_413(st, &b);

    // Other JSON APIs are not held to the send limit.
    let big: Vec<Value> =
        (0..60).map(|i| json!({"username": format!("user{i:02}"), "password": "p".repeat(64)})).collect();
    let big = serde_json::to_vec(&big).expect("json");
    assert!(big.len() > limit);
    let (st, b) = s.post_raw("/users", Some(&admin), big).await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn content_limit_is_exact() {
    // Raw bodies up to 64 KB here, so only the content rule decides.
    let s = TestServer::start_with(|c| c.limits.send_body_bytes = 64 * 1024).await;
    let admin = s.admin_token().await;
    let limit = s.config.limits.message_content_bytes;
    assert_eq!(limit, 3072, "the brief's profile: 3 KB body+ext");

    for (with_ext, unit) in [(true, 'x'), (false, 'x'), (true, '中'), (false, 'é'), (true, '"')] {
        let what = format!("ext: {with_ext}, padding {unit:?}");
        let (st, b) = s.post("/messages/users", Some(&admin), send_of_content(limit, with_ext, unit)).await;
        assert_eq!(st, StatusCode::OK, "{what}: exactly the limit passes: {b}");
        let (st, b) = s.post("/messages/users", Some(&admin), send_of_content(limit + 1, with_ext, unit)).await;
        assert_too_large(st, &b);
    }

    // Whitespace in the request is not content: a pretty-printed request with exactly
    // `limit` bytes of compact content passes.
    let req = send_of_content(limit, true, 'x');
    let pretty = serde_json::to_string_pretty(&req).expect("json");
    assert!(pretty.len() > compact_len(&req));
    let (st, b) = s.post_raw("/messages/users", Some(&admin), pretty).await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // The legacy endpoint measures its `msg` (which carries `type`) and `ext` the same way.
    let msg_len = limit - compact_len(&json!({"type": "txt", "msg": ""}));
    let legacy =
        |n: usize| json!({"target_type": "users", "target": ["user2"], "msg": {"type": "txt", "msg": "x".repeat(n)}});
    let (st, b) = s.post("/messages", Some(&admin), legacy(msg_len)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s.post("/messages", Some(&admin), legacy(msg_len + 1)).await;
    assert_too_large(st, &b);
}

#[tokio::test]
async fn default_profile_content_over_3k_in_a_body_under_5k_is_400() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let req = send_of_content(3073, true, 'x');
    assert!(serde_json::to_vec(&req).expect("json").len() < 5120);
    let (st, b) = s.post("/messages/users", Some(&admin), req).await;
    assert_too_large(st, &b);
}

#[tokio::test]
async fn recipients_per_call_follow_the_configured_limit() {
    let s = TestServer::start_with(|c| c.limits.max_recipients = 3).await;
    let admin = s.admin_token().await;
    let send =
        |to: Value| s.post("/messages/users", Some(&admin), json!({"to": to, "type": "txt", "body": {"msg": "m"}}));
    let (st, b) = send(json!(["a", "b", "c"])).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = send(json!(["a", "b", "c", "d"])).await;
    assert_error(st, &b, 400, "message_send_error", "params to's size can't exceed limit 3");
}

#[tokio::test]
async fn send_calls_per_second_over_the_limit_are_429() {
    let s = TestServer::start_with(|c| c.limits.send_calls_per_second = 2).await;
    let admin = s.admin_token().await;
    let other = s.create_app("testorg", "otherapp", false).await;
    let other_admin = s.admin_token_for(&other).await;
    let msg = json!({"to": ["user2"], "type": "txt", "body": {"msg": "m"}});

    // A full bucket holds 2 calls; the third within the same half second is refused.
    for i in 0..2 {
        let (st, b) = s.post("/messages/users", Some(&admin), msg.clone()).await;
        assert_eq!(st, StatusCode::OK, "call {i}: {b}");
    }
    let (st, b) = s.post("/messages/users", Some(&admin), msg.clone()).await;
    assert_error(st, &b, 429, "reach_limit", "This request has reached api limit");

    // Another app has its own budget.
    let (st, b) = s.post(&s.app_url(&other, "/messages/users"), Some(&other_admin), msg.clone()).await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // The legacy endpoint draws from the same budget.
    let (st, b) = s
        .post(
            "/messages",
            Some(&admin),
            json!({"target_type": "users", "target": ["user2"], "msg": {"type": "txt", "msg": "m"}}),
        )
        .await;
    assert_error(st, &b, 429, "reach_limit", "This request has reached api limit");

    // The bucket refills at 2 calls per second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (st, b) = s.post("/messages/users", Some(&admin), msg.clone()).await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn send_messages_per_minute_count_recipients_and_over_the_limit_are_403() {
    let s = TestServer::start_with(|c| c.limits.send_messages_per_minute = 5).await;
    let admin = s.admin_token().await;
    let send =
        |to: Value| s.post("/messages/users", Some(&admin), json!({"to": to, "type": "txt", "body": {"msg": "m"}}));
    let reach = |st: StatusCode, b: &Value| assert_error(st, b, 403, "message_send_error", "message send reach limit");

    let (st, b) = send(json!(["a", "b", "c", "d", "e", "f"])).await;
    reach(st, &b); // 6 recipients never fit a budget of 5
    let (st, b) = send(json!(["a", "b", "c"])).await;
    assert_eq!(st, StatusCode::OK, "3 of 5: {b}");
    let (st, b) = send(json!(["a", "b", "c"])).await;
    reach(st, &b); // 3 more would be 6
    let (st, b) = send(json!(["a", "b"])).await;
    assert_eq!(st, StatusCode::OK, "5 of 5: {b}");
    let (st, b) = send(json!(["a"])).await;
    reach(st, &b);
}
