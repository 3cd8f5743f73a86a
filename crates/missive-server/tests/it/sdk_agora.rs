//! Smoke test of Agora's twin of the Web SDK, the unmodified npm `agora-chat` 1.4.0 (pinned in
//! `sdk-tests/package.json`), through the same Node driver as `sdk.rs` (`SDK=agora-chat`).
//! It speaks the same MSYNC as `easemob-websdk` (docs/protocol.md); this checks that the
//! server treats it the same: its three login forms, a REST text with `ext`, SDK text both
//! ways, offline messages, and custom and cmd messages from the SDK and from REST.

use serde_json::json;

use crate::common::TestServer;
use crate::sdk::{Sdk, base, is, rest_send, rest_text};

#[tokio::test]
async fn agora_chat_logs_in_sends_receives_and_syncs_offline() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["ana", "ben", "cid"]).await;
    let ana_token = s.user_token("ana").await;
    let ben_token = s.user_token("ben").await;

    // Offline first: sent before ben has ever logged in.
    let offline = rest_text(&s, &admin, "cid", "ben", "while you were away").await;

    let mut sdk = Sdk::start_package(&base(&s), &s.app_key(), "agora-chat", "1.4.0").await;
    // `accessToken` (the Easemob form) and `agoraToken` (Agora's own name for the same token).
    sdk.open("ana", "ana", &ana_token, json!({})).await;
    sdk.cmd(json!({"op": "open", "c": "ben", "user": "ben", "agoraToken": ben_token}));
    sdk.expect("ben: onConnected (agoraToken)", |v| is(v, "connected", "ben")).await;
    sdk.expect("ben: open() resolved", |v| is(v, "open_ok", "ben")).await;

    sdk.expect("ben: onOfflineMessageSyncStart", |v| is(v, "offline_start", "ben")).await;
    let m = sdk.message("ben", "onTextMessage", &offline).await;
    assert_eq!((m["msg"].clone(), m["from"].clone()), (json!("while you were away"), json!("cid")), "{m}");
    sdk.expect("ben: onOfflineMessageSyncFinish", |v| is(v, "offline_finish", "ben")).await;

    // REST txt with ext, typed as the SDK types it.
    let ext = json!({"s": "x", "i": 7, "b": true, "o": {"k": [1, 2]}, "d": 2.5});
    let body = json!({"from": "cid", "to": ["ana"], "type": "txt", "body": {"msg": "from REST"}, "ext": ext});
    let id = rest_send(&s, &admin, &body.to_string(), "ana").await;
    let m = sdk.message("ana", "onTextMessage", &id).await;
    assert_eq!(
        (m["msg"].clone(), m["ext"].clone(), m["chatType"].clone()),
        (json!("from REST"), ext, json!("singleChat"))
    );

    // SDK txt both ways, resolved with the id the peer receives.
    let a2b = sdk.send("ana", "a2b", json!({"type": "txt", "to": "ben", "msg": "hi ben"})).await;
    let m = sdk.message("ben", "onTextMessage", &a2b).await;
    assert_eq!((m["msg"].clone(), m["from"].clone(), m["to"].clone()), (json!("hi ben"), json!("ana"), json!("ben")));
    let b2a = sdk.send("ben", "b2a", json!({"type": "txt", "to": "ana", "msg": "hi ana", "ext": {"n": 1}})).await;
    let m = sdk.message("ana", "onTextMessage", &b2a).await;
    assert_eq!((m["msg"].clone(), m["ext"].clone()), (json!("hi ana"), json!({"n": 1})));

    // custom and cmd from the SDK.
    let custom = sdk
        .send(
            "ana",
            "custom",
            json!({"type": "custom", "to": "ben", "customEvent": "gift", "customExts": {"name": "rose"}}),
        )
        .await;
    let m = sdk.message("ben", "onCustomMessage", &custom).await;
    assert_eq!((m["customEvent"].clone(), m["customExts"].clone()), (json!("gift"), json!({"name": "rose"})));
    let cmd = sdk.send("ben", "cmd", json!({"type": "cmd", "to": "ana", "action": "refresh"})).await;
    let m = sdk.message("ana", "onCmdMessage", &cmd).await;
    assert_eq!(m["action"], "refresh", "{m}");

    // custom and cmd from REST.
    let body = json!({"from": "cid", "to": ["ben"], "type": "custom", "body": {"customEvent": "e1", "customExts": {"k": "v"}}});
    let id = rest_send(&s, &admin, &body.to_string(), "ben").await;
    let m = sdk.message("ben", "onCustomMessage", &id).await;
    assert_eq!((m["customEvent"].clone(), m["customExts"].clone()), (json!("e1"), json!({"k": "v"})));
    let body = json!({"from": "cid", "to": ["ben"], "type": "cmd", "body": {"action": "sync"}});
    let id = rest_send(&s, &admin, &body.to_string(), "ben").await;
    assert_eq!(sdk.message("ben", "onCmdMessage", &id).await["action"], "sync");

    // A password login goes through POST /token like the Easemob SDK's.
    sdk.cmd(json!({"op": "open", "c": "cid", "user": "cid", "pwd": "cid-pw"}));
    sdk.expect("cid: onConnected (password)", |v| is(v, "connected", "cid")).await;
    let ok = sdk.expect("cid: open() resolved", |v| is(v, "open_ok", "cid")).await;
    assert!(ok["accessToken"].as_str().is_some_and(|t| t.starts_with("YWMt")), "{ok}");
    assert!(ok["duration"].as_u64().is_some_and(|d| d > 0), "{ok}");

    let trouble = sdk.seen(|v| v["ev"] == "error" || v["ev"] == "unhandled_rejection");
    assert!(trouble.is_empty(), "SDK errors: {trouble:?}");
    // Nothing was delivered twice.
    for c in ["ana", "ben"] {
        let ids = sdk.message_ids(c);
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{c} got a message twice: {ids:?}");
    }
}
