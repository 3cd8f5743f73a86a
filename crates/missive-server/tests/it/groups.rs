//! Groups and chat rooms before they exist (`http/groups.rs`): the listings the clients make
//! at start-up answer Easemob's envelope, empty, after the access checks a real listing
//! makes; creating a group or a chat room is 403 `forbidden_op` "… service is unopened". Over
//! REST, and through the unmodified `easemob-websdk` 4.21.1, whose calls must resolve (or
//! reject with the SDK's own error type) exactly as against a server with no groups.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::sdk::{Sdk, base, is};

fn assert_empty(st: StatusCode, b: &Value, uri_tail: &str) {
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!((b["data"].clone(), b["entities"].clone(), b["count"].clone()), (json!([]), json!([]), json!(0)), "{b}");
    assert_eq!(b["action"], "get", "{b}");
    assert!(b["uri"].as_str().is_some_and(|u| u.ends_with(uri_tail)), "uri of {b}");
    assert!(b["timestamp"].is_u64() && b["duration"].is_u64(), "{b}");
}

fn assert_unopened(st: StatusCode, b: &Value, service: &str) {
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"], "forbidden_op", "{b}");
    assert_eq!(b["exception"], "EasemobForbiddenOpException", "{b}");
    assert_eq!(b["error_description"], format!("{service} service is unopened"), "{b}");
}

#[tokio::test]
async fn group_listings_are_empty_and_creation_is_refused() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["gus", "hal"]).await;
    let gus = s.user_token("gus").await;

    // A user's groups and rooms: the user or the app may ask; `params` echoes the query.
    for path in ["joined_chatgroups", "joined_chatrooms"] {
        let (st, b) = s.get(&format!("/users/gus/{path}?pagenum=1&pagesize=20"), Some(&gus)).await;
        assert_empty(st, &b, &format!("/users/gus/{path}"));
        assert_eq!(b["params"], json!({"pagenum": ["1"], "pagesize": ["20"]}), "{b}");
        let (st, b) = s.get(&format!("/users/gus/{path}"), Some(&admin)).await;
        assert_empty(st, &b, &format!("/users/gus/{path}"));
        assert!(b.get("params").is_none(), "no query, no params: {b}");
        // Another user may not; nobody without a token; an unknown user is 404.
        let (st, b) = s.get(&format!("/users/hal/{path}"), Some(&gus)).await;
        assert_eq!((st, b["error"].clone()), (StatusCode::UNAUTHORIZED, json!("unauthorized")), "{b}");
        let (st, b) = s.get(&format!("/users/gus/{path}"), None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
        let (st, b) = s.get(&format!("/users/nobody/{path}"), Some(&admin)).await;
        assert_eq!((st, b["error"].clone()), (StatusCode::NOT_FOUND, json!("service_resource_not_found")), "{b}");
    }
    let (st, b) = s.get("/chatgroups/user/gus?pagenum=1&pagesize=20&needAffiliations=true", Some(&gus)).await;
    assert_empty(st, &b, "/chatgroups/user/gus");
    let (st, b) = s.get("/chatgroups/user/gus", Some(&s.user_token("hal").await)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");

    // App-wide listings: public groups and chat rooms for any token, all groups for the app.
    for path in ["/publicchatgroups", "/chatrooms"] {
        let (st, b) = s.get(path, Some(&gus)).await;
        assert_empty(st, &b, path);
        let (st, b) = s.get(path, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}: {b}");
    }
    let (st, b) = s.get("/chatgroups?limit=10", Some(&admin)).await;
    assert_empty(st, &b, "/chatgroups");
    let (st, b) = s.get("/chatgroups", Some(&gus)).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::UNAUTHORIZED, json!("unauthorized")), "{b}");

    // Creation, with the documented request bodies: refused, whoever asks.
    let group = json!({"groupname": "testgroup", "description": "test", "public": true, "maxusers": 300,
                       "owner": "gus", "members": ["hal"]});
    for token in [&admin, &gus] {
        let (st, b) = s.post("/chatgroups", Some(token), group.clone()).await;
        assert_unopened(st, &b, "chatgroup");
        let (st, b) = s.post("/chatrooms", Some(token), json!({"name": "room", "owner": "gus"})).await;
        assert_unopened(st, &b, "chatroom");
    }
    let (st, b) = s.post("/chatgroups", None, group).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
}

#[tokio::test]
async fn websdk_group_calls_resolve_empty_and_create_group_is_refused() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["ivy"]).await;
    let token = s.user_token("ivy").await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;
    sdk.open("ivy", "ivy", &token, json!({})).await;

    let calls = [
        ("joined", "getJoinedGroups", json!({"pageNum": 1, "pageSize": 20})),
        (
            "joined_roles",
            "getJoinedGroups",
            json!({"pageNum": 1, "pageSize": 20, "needAffiliations": true, "needRole": true}),
        ),
        ("public", "getPublicGroups", json!({"limit": 20})),
        ("rooms", "getChatRooms", json!({"pagenum": 1, "pagesize": 20})),
        ("joined_rooms", "getJoinedChatRooms", json!({"pageNum": 1, "pageSize": 20})),
    ];
    for (tag, method, args) in calls {
        sdk.cmd(json!({"op": "call", "c": "ivy", "tag": tag, "method": method, "args": [args]}));
        let ev = sdk
            .expect(&format!("ivy: {method} settled"), |v| {
                (is(v, "call_ok", "ivy") || is(v, "call_err", "ivy")) && v["tag"] == tag
            })
            .await;
        assert_eq!(ev["ev"], "call_ok", "{method}: {ev}");
        let r = &ev["r"];
        let empty = if tag == "joined_roles" { &r["entities"] } else { &r["data"] };
        assert_eq!(empty, &json!([]), "{method}: {ev}");
    }

    let group = json!({"data": {"groupname": "g", "desc": "d", "members": [], "public": true, "approval": false,
                                "allowinvites": true, "inviteNeedConfirm": false, "maxusers": 200}});
    sdk.cmd(json!({"op": "call", "c": "ivy", "tag": "create", "method": "createGroup", "args": [group]}));
    let ev = sdk.expect("ivy: createGroup settled", |v| v["tag"] == "create").await;
    assert_eq!(ev["ev"], "call_err", "{ev}");
    // The SDK's PERMISSION_DENIED, carrying the server's body.
    assert_eq!(ev["type"], 603, "{ev}");
    assert!(ev["data"].as_str().is_some_and(|d| d.contains("chatgroup service is unopened")), "{ev}");
    let trouble = sdk.seen(|v| v["ev"] == "error" || v["ev"] == "unhandled_rejection");
    assert!(trouble.is_empty(), "SDK errors: {trouble:?}");
}
