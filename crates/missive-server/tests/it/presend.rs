//! Pre-send callbacks (easemob-api.md §6.2) with the official Web SDK as the sender, driven
//! through `sdk-tests/driver.js` (see `sdk.rs`): the app server passes, blocks, rewrites, and
//! answers too late; the sending SDK sees what Easemob documents, the recipient gets only
//! what passed, and blocked messages fire no post-send callback.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, eventually};
use crate::receiver::{self, Answer, Captured, signature};
use crate::sdk::{Sdk, is};

/// The app server: decides by the message's text (or custom event).
fn app_server(r: &Captured) -> Answer {
    let body = r.json();
    let content = &body["payload"]["bodies"][0];
    let said = content["msg"].as_str().or(content["customEvent"].as_str()).unwrap_or_default();
    match said {
        "block me" => Answer::json(200, r#"{"valid": false, "code": "HX:10001"}"#),
        "rewrite this" => Answer::json(200, r#"{"valid": true, "payload": {"msg": "clean"}}"#),
        "slow" => Answer::json(200, r#"{"valid": true}"#).after(Duration::from_millis(1500)),
        _ => Answer::json(200, r#"{"valid": true}"#),
    }
}

/// Sends with `conn.send()` and returns the settled event (`send_ok` or `send_err`).
async fn try_send(sdk: &mut Sdk, tag: &str, msg: Value) -> Value {
    sdk.cmd(json!({"op": "send", "c": "alice", "tag": tag, "msg": msg}));
    sdk.expect(&format!("send {tag} settled"), |v| {
        (is(v, "send_ok", "alice") || is(v, "send_err", "alice")) && v["tag"] == tag
    })
    .await
}

#[tokio::test]
async fn web_sdk_sends_are_passed_blocked_rewritten_and_timed_out_by_the_app_server() {
    let rx = receiver::http1(|r| if r.path == "/check" { app_server(r) } else { Answer::ok() }).await;
    let s = TestServer::start_with(|c| c.callbacks.max_in_flight = 1).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let rules = [
        json!({"name": "text-check", "targetUrl": rx.url("/check"), "secret": "p", "types": ["txt"],
               "timeoutMs": 300, "onFailure": "block"}),
        json!({"name": "custom-check", "targetUrl": rx.url("/check"), "secret": "p", "types": ["custom"],
               "timeoutMs": 300, "onFailure": "pass"}),
    ];
    for rule in rules {
        let (st, b) = s.post("/msghooks", Some(&admin), rule).await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    let (_, listed) = s.get("/msghooks", Some(&admin)).await;
    assert_eq!(listed["count"], 2, "{listed}");
    let policies: std::collections::BTreeMap<String, String> = listed["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["onFailure"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(policies["text-check"], "block");
    assert_eq!(policies["custom-check"], "pass");
    let (st, b) = s
        .post(
            "/callbacks",
            Some(&admin),
            json!({"name": "post", "targetUrl": rx.url("/post"), "secret": "q", "msgTypes": ["chat"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let s = s.restart().await;

    let mut sdk = Sdk::start(&format!("http://{}", s.addr), &s.app_key()).await;
    let (alice, bob) = (s.user_token("alice").await, s.user_token("bob").await);
    sdk.open("alice", "alice", &alice, json!({})).await;
    sdk.open("bob", "bob", &bob, json!({})).await;

    // Passed: delivered as sent. The check carried the id the message then got.
    let hello = sdk.send("alice", "hello", json!({"type": "txt", "to": "bob", "msg": "hello"})).await;
    assert_eq!(sdk.message("bob", "onTextMessage", &hello).await["msg"], "hello");
    let check = rx.at("/check").iter().map(|r| r.json()).find(|b| b["msg_id"] == hello.as_str()).expect("the check");
    assert!(check["callId"].as_str().is_some_and(|c| c.starts_with("testorg#testapp_") && c.len() > 30), "{check}");
    assert_eq!(check["security"], signature(&check, "p"));
    assert_eq!((&check["chat_type"], &check["from"], &check["to"]), (&json!("chat"), &json!("alice"), &json!("bob")));
    assert_eq!(check["payload"]["bodies"][0], json!({"type": "txt", "msg": "hello"}));

    // Blocked: the SDK rejects the send with MESSAGE_EXTERNAL_LOGIC_BLOCKED and the code.
    let blocked = try_send(&mut sdk, "blocked", json!({"type": "txt", "to": "bob", "msg": "block me"})).await;
    assert_eq!(
        (&blocked["ev"], &blocked["type"], &blocked["message"]),
        (&json!("send_err"), &json!(502), &json!("HX:10001")),
        "{blocked}"
    );

    // Rewritten: the recipient gets the app server's text.
    let rewritten = sdk.send("alice", "rewrite", json!({"type": "txt", "to": "bob", "msg": "rewrite this"})).await;
    assert_eq!(sdk.message("bob", "onTextMessage", &rewritten).await["msg"], "clean");

    // Too late, for a rule that blocks on failure: `custom internal error`.
    let late = try_send(&mut sdk, "late", json!({"type": "txt", "to": "bob", "msg": "slow"})).await;
    assert_eq!(
        (&late["ev"], &late["type"], &late["message"]),
        (&json!("send_err"), &json!(502), &json!("custom internal error")),
        "{late}"
    );

    // Too late, for a rule that passes on failure: sent.
    let passed = sdk
        .send("alice", "late-pass", json!({"type": "custom", "to": "bob", "customEvent": "slow", "customExts": {}}))
        .await;
    sdk.message("bob", "onCustomMessage", &passed).await;
    let delivered: Vec<String> =
        sdk.seen(|v| is(v, "msg", "bob")).iter().filter_map(|v| v["m"]["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(delivered, [hello.clone(), rewritten.clone(), passed.clone()], "only what passed reached bob");

    // Post-send callbacks for what was sent, never for what was blocked.
    eventually("the last post-send callback", || async {
        rx.at("/post").iter().any(|r| r.json()["msg_id"] == passed.as_str())
    })
    .await;
    let posted: Vec<Value> = rx.at("/post").iter().map(|r| r.json()).collect();
    let ids: Vec<&str> = posted.iter().filter_map(|b| b["msg_id"].as_str()).collect();
    assert_eq!(ids, [hello.as_str(), rewritten.as_str(), passed.as_str()]);
    assert_eq!(posted[1]["payload"]["bodies"][0]["msg"], "clean", "callbacks see the rewritten text");
}
