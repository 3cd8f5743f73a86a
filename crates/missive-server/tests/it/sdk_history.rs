//! History and conversations through the unmodified Web SDK (`easemob-websdk` 4.21.1 in
//! Node, `sdk.rs`'s driver): `getHistoryMessages` pages a 250-message conversation of every
//! type both ways with types and ext intact, a second device sees the same history,
//! `roam_ignore_users` and recall take messages out of it, and `getServerConversations`
//! shows unread counts that a channel ack from another device clears, and forgets a deleted
//! conversation.

use serde_json::{Value, json};

use crate::history::{eight_types, send, server};
use crate::sdk::{Sdk, base, is};

/// Calls a promise-returning connection method; returns what it resolved to.
async fn call(sdk: &mut Sdk, c: &str, tag: &str, method: &str, args: Value) -> Value {
    sdk.cmd(json!({"op": "call", "c": c, "tag": tag, "method": method, "args": args}));
    let ev = sdk
        .expect(&format!("{c}: {method} ({tag}) settled"), |v| {
            (is(v, "call_ok", c) || is(v, "call_err", c)) && v["tag"] == tag
        })
        .await;
    assert_eq!(ev["ev"], "call_ok", "{method} failed: {ev}");
    ev["r"].clone()
}

/// Every message of `c`'s conversation with `peer`, following `cursor` page by page.
async fn history(sdk: &mut Sdk, c: &str, peer: &str, direction: &str, page: u32) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = Value::Null;
    for n in 0..100 {
        let mut opts =
            json!({"targetId": peer, "chatType": "singleChat", "pageSize": page, "searchDirection": direction});
        if !cursor.is_null() {
            opts["cursor"] = cursor.clone();
        }
        let r = call(sdk, c, &format!("h-{direction}-{n}"), "getHistoryMessages", json!([opts])).await;
        let msgs = r["messages"].as_array().expect("messages");
        assert!(msgs.len() <= page as usize, "page of {}", msgs.len());
        all.extend(msgs.iter().cloned());
        if r["isLast"] == json!(true) {
            return all;
        }
        assert_eq!(msgs.len(), page as usize, "only the last page is short");
        cursor = r["cursor"].clone();
    }
    panic!("history did not end");
}

fn ids(msgs: &[Value]) -> Vec<String> {
    msgs.iter().map(|m| m["id"].as_str().expect("id").to_owned()).collect()
}

async fn conversations(sdk: &mut Sdk, c: &str, tag: &str) -> Vec<Value> {
    let r = call(sdk, c, tag, "getServerConversations", json!([{"pageSize": 20, "cursor": ""}])).await;
    r["data"]["conversations"].as_array().expect("conversations").clone()
}

fn unread(list: &[Value], peer: &str) -> Option<u64> {
    list.iter().find(|c| c["conversationId"] == peer).map(|c| c["unReadCount"].as_u64().expect("unReadCount"))
}

#[tokio::test]
async fn the_web_sdk_reads_history_and_conversations() {
    let s = server().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    let types = eight_types();
    let mut sent = Vec::new();
    for i in 0..250usize {
        let (from, to) = if i % 2 == 0 { ("alice", "bob") } else { ("bob", "alice") };
        let (t, body, _) = &types[i % types.len()];
        let ext = json!({"i": i, "s": format!("ext-{i}"), "nested": {"k": [i]}});
        let id = send(&s, &admin, json!({"from": from, "to": [to], "type": t, "body": body, "ext": ext})).await;
        sent.push((id, *t, from, to, ext));
    }

    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;
    let bob = s.user_token("bob").await;
    sdk.open("b1", "bob", &bob, json!({"deviceId": "phone"})).await;
    let check = |msgs: &[Value]| {
        for (m, (id, t, from, to, ext)) in msgs.iter().zip(&sent) {
            assert_eq!(m["id"], json!(id));
            assert_eq!((&m["type"], &m["from"], &m["to"]), (&json!(t), &json!(from), &json!(to)), "{m}");
            assert_eq!((&m["chatType"], &m["ext"]), (&json!("singleChat"), ext), "{m}");
        }
    };
    let up = history(&mut sdk, "b1", "alice", "up", 20).await;
    let mut want: Vec<String> = sent.iter().map(|m| m.0.clone()).collect();
    want.reverse();
    assert_eq!(ids(&up), want, "newest first, pages of 20, every message once");
    let mut oldest_first = up.clone();
    oldest_first.reverse();
    check(&oldest_first);
    let down = history(&mut sdk, "b1", "alice", "down", 20).await;
    assert_eq!(ids(&down), ids(&oldest_first), "oldest first");
    check(&down);
    // Type-specific fields come through as live delivery shows them.
    assert_eq!(down[0]["msg"], "hello");
    assert_eq!((&down[5]["lat"], &down[5]["addr"]), (&json!(39.9053), &json!("西城区西便门桥")));
    assert_eq!((&down[6]["action"], &down[7]["customEvent"]), (&json!("run"), &json!("gift_1")));
    assert_eq!(down[7]["customExts"], json!({"name": "flower", "size": "16"}));

    // roam_ignore_users: not in bob's history; a recall: gone from it.
    let ignored = send(
        &s,
        &admin,
        json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "ignored"}, "roam_ignore_users": ["bob"]}),
    )
    .await;
    let recalled =
        sdk.send("b1", "r1", json!({"type": "txt", "chatType": "singleChat", "to": "alice", "msg": "oops"})).await;
    let kept =
        sdk.send("b1", "k1", json!({"type": "txt", "chatType": "singleChat", "to": "alice", "msg": "kept"})).await;
    sdk.cmd(json!({"op": "recall", "c": "b1", "tag": "rc", "to": "alice", "mid": recalled}));
    let ev = sdk.expect("b1: recall settled", |v| is(v, "recall_ok", "b1") || is(v, "recall_err", "b1")).await;
    assert_eq!(ev["ev"], "recall_ok", "{ev}");

    // A second device of bob, logging in later, sees the same history.
    sdk.open("b2", "bob", &bob, json!({"deviceId": "laptop"})).await;
    let later = history(&mut sdk, "b2", "alice", "up", 50).await;
    let mut want_later = vec![kept.clone()];
    want_later.extend(want.iter().cloned());
    assert_eq!(ids(&later), want_later, "no ignored, no recalled message");
    assert!(!ids(&later).contains(&ignored) && !ids(&later).contains(&recalled));
    assert_eq!(later[0]["msg"], "kept");

    // Conversations: unread counts, cleared by a channel ack from the other device.
    for n in 0..3 {
        send(&s, &admin, json!({"from": "carol", "to": ["bob"], "type": "txt", "body": {"msg": format!("c{n}")}}))
            .await;
    }
    let list = conversations(&mut sdk, "b2", "l1").await;
    assert_eq!(list[0]["conversationId"], "carol", "latest activity first: {list:?}");
    assert_eq!(list[0]["lastMessage"]["msg"], "c2");
    assert_eq!((unread(&list, "carol"), unread(&list, "alice")), (Some(3), Some(125)));
    let carol = s.user_token("carol").await;
    sdk.open("c1", "carol", &carol, json!({})).await;
    sdk.send("b1", "ack", json!({"type": "channel", "chatType": "singleChat", "to": "carol"})).await;
    let list = conversations(&mut sdk, "b2", "l2").await;
    assert_eq!((unread(&list, "carol"), unread(&list, "alice")), (Some(0), Some(125)));
    // The ack is bob's own state: carol gets the message sent after it, and no ack before it.
    let after =
        sdk.send("b1", "after", json!({"type": "txt", "chatType": "singleChat", "to": "carol", "msg": "after"})).await;
    sdk.message("c1", "onTextMessage", &after).await;
    assert!(sdk.seen(|v| is(v, "msg", "c1") && v["handler"] == "onChannelMessage").is_empty(), "not forwarded");

    // A deleted conversation is gone from the list (and, with deleteRoam, its history).
    call(
        &mut sdk,
        "b2",
        "del",
        "deleteConversation",
        json!([{"channel": "carol", "chatType": "singleChat", "deleteRoam": true}]),
    )
    .await;
    let list = conversations(&mut sdk, "b1", "l3").await;
    assert_eq!(list.iter().map(|c| c["conversationId"].as_str().unwrap()).collect::<Vec<_>>(), ["alice"]);
    let carols = conversations(&mut sdk, "c1", "l4").await;
    assert_eq!(carols[0]["conversationId"], "bob", "the peer keeps the conversation");
    assert!(history(&mut sdk, "b1", "carol", "up", 20).await.is_empty());
}
