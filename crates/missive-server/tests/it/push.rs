//! Offline push end to end, against a local HTTP/2 server standing in for APNs (the APNs
//! client speaks only HTTP/2; here without TLS, by prior knowledge). The provider is set
//! with the CLI; devices are bound with Easemob's `PUT /users/{u}` (`notifier_name`,
//! `device_token`).
//!
//! One delivery at a time (`callbacks.max_in_flight = 1`): pushes go out in the order their
//! messages were accepted, so when the last message's push has arrived, every earlier
//! message that should have caused none is known to have caused none.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use missive_msync::{ClientOptions, Login, MsyncClient};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, eventually};
use crate::receiver::{self, Answer};

/// An EC P-256 key in PKCS#8 PEM, the format of an APNs `.p8` file.
fn apns_key_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../missive-notify/tests/fixtures/localhost.key").display().to_string()
}

async fn send(s: &TestServer, admin: &str, body: Value) -> String {
    let (st, b) = s.post("/messages/users", Some(admin), body).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["data"]["bob"].as_str().or(b["data"]["carol"].as_str()).expect("an id").to_owned()
}

#[tokio::test]
async fn offline_recipients_get_a_push_and_nobody_else_does() {
    let apns = receiver::h2c(|_| Answer::ok()).await;
    let s = TestServer::start_with(|c| c.callbacks.max_in_flight = 1).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    // Devices bound the legacy way, and push settings, on the user entity (§3.3).
    for (user, token) in [("alice", "alice-token"), ("bob", "bob-token"), ("carol", "carol-token")] {
        let (st, b) = s
            .put(&format!("/users/{user}"), Some(&admin), json!({"notifier_name": "ios", "device_token": token}))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    let (st, b) = s.put("/users/alice", Some(&admin), json!({"nickname": "Alice"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s.put("/users/carol", Some(&admin), json!({"notification_no_disturbing": true})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let out = s
        .missive(&[
            "app",
            "push",
            "set",
            "testorg",
            "testapp",
            "ios",
            "--provider",
            "apns",
            "--team-id",
            "TEAM123456",
            "--key-id",
            "KEY1234567",
            "--key-file",
            &apns_key_file(),
            "--topic",
            "com.example.chat",
            "--base-url",
            &apns.url(""),
        ])
        .output()
        .expect("run missive");
    assert!(out.status.success(), "push set: {}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((&shown["provider"], &shown["topic"]), (&json!("apns"), &json!("com.example.chat")));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"), "the key is never printed");
    let s = s.restart().await;

    let txt = |text: &str| json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": text}});
    let mut quiet = Vec::new();
    // A silent message.
    let mut silent = txt("silent");
    silent["ext"] = json!({"em_ignore_notification": true});
    quiet.push(send(&s, &admin, silent).await);
    // Online-only.
    let mut online_only = txt("online only");
    online_only["routetype"] = json!("ROUTE_ONLINE");
    quiet.push(send(&s, &admin, online_only).await);
    // A cmd message is a signal for a running app.
    quiet.push(
        send(&s, &admin, json!({"from": "alice", "to": ["bob"], "type": "cmd", "body": {"action": "sync"}})).await,
    );
    // bob online.
    let token = s.user_token("bob").await;
    let login =
        Login { url: s.ws_url(), app_key: s.app_key(), user: "bob".into(), token, resource: Some("bob-phone".into()) };
    let bob = MsyncClient::connect(login, ClientOptions::default()).await.expect("bob logs in");
    quiet.push(send(&s, &admin, txt("while online")).await);
    bob.close().await;
    // carol is in do-not-disturb (all day: no hours set).
    quiet
        .push(send(&s, &admin, json!({"from": "alice", "to": ["carol"], "type": "txt", "body": {"msg": "dnd"}})).await);

    // The one that is pushed: bob offline, with Easemob's push extension fields.
    let mut loud = txt("ping");
    loud["ext"] = json!({"em_apns_ext": {"em_push_title": "Order", "em_push_content": "Your order shipped",
                                        "em_push_sound": "ping.caf", "extern": {"order": 7}}});
    let loud = send(&s, &admin, loud).await;
    eventually("the push", || async { apns.requests().iter().any(|r| r.json()["m"] == loud.as_str()) }).await;

    let pushes = apns.requests();
    let pushed: BTreeSet<String> = pushes.iter().filter_map(|r| r.json()["m"].as_str().map(str::to_owned)).collect();
    for id in &quiet {
        assert!(!pushed.contains(id), "message {id} should not have been pushed");
    }
    assert_eq!(pushes.len(), 1, "exactly one push: {pushes:?}");
    let push = &pushes[0];
    assert_eq!(push.path, "/3/device/bob-token", "to the recipient's device, never the sender's");
    assert_eq!((push.method.as_str(), push.header(":version")), ("POST", "HTTP/2.0"));
    assert_eq!(
        (push.header("apns-topic"), push.header("apns-push-type"), push.header("apns-priority")),
        ("com.example.chat", "alert", "10")
    );
    let jwt = push.header("authorization").strip_prefix("bearer ").expect("a bearer token");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        (&header["alg"], &header["kid"], &claims["iss"]),
        (&json!("ES256"), &json!("KEY1234567"), &json!("TEAM123456"))
    );
    let body = push.json();
    assert_eq!(body["aps"]["alert"], json!({"title": "Order", "body": "Your order shipped"}));
    assert_eq!(body["aps"]["sound"], "ping.caf");
    assert!(body["aps"]["badge"].as_u64().is_some_and(|b| b >= 1), "the unread count: {body}");
    assert_eq!(
        (&body["f"], &body["t"], &body["m"], &body["e"]),
        (&json!("alice"), &json!("bob"), &json!(loud), &json!({"order": 7}))
    );

    // The provider can be listed and removed.
    let out = s.missive(&["app", "push", "list", "testorg", "testapp"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("\"ios\"") && !listed.contains("PRIVATE KEY"), "{listed}");
    let out = s.missive(&["app", "push", "remove", "testorg", "testapp", "ios"]).output().unwrap();
    assert!(out.status.success());
}
