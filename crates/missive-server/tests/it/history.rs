//! History over REST against the real server (either backend): message roaming as the SDK
//! calls it, conversation lists with unread counts, one-way deletes, roaming deletes, the
//! hourly export and the legacy chat-log query — all eight message types field by field —
//! and their documented errors. The Web SDK's view of the same is `sdk_history.rs`.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use missive_core::id::MsgId;
use missive_msync::pb;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, wait_past_ms};

/// The eight REST types with a body each, and the body a record shows for it.
pub(crate) fn eight_types() -> Vec<(&'static str, Value, Value)> {
    vec![
        ("txt", json!({"msg": "hello"}), json!({"msg": "hello", "type": "txt"})),
        (
            "img",
            json!({"url": "https://h/o/a/chatfiles/u1", "filename": "a.jpg", "secret": "s1", "size": {"width": 746, "height": 1325}}),
            json!({"url": "https://h/o/a/chatfiles/u1", "filename": "a.jpg", "secret": "s1", "size": {"width": 746, "height": 1325}, "type": "img"}),
        ),
        (
            "audio",
            json!({"url": "https://h/o/a/chatfiles/u2", "filename": "a.amr", "length": 10, "file_length": 6630}),
            json!({"url": "https://h/o/a/chatfiles/u2", "filename": "a.amr", "length": 10, "file_length": 6630, "type": "audio"}),
        ),
        (
            "video",
            json!({"url": "https://h/o/a/chatfiles/u3", "filename": "v.mp4", "length": 10, "file_length": 58103, "secret": "s3", "thumb": "https://h/o/a/chatfiles/u4", "thumb_secret": "s4"}),
            json!({"url": "https://h/o/a/chatfiles/u3", "filename": "v.mp4", "length": 10, "file_length": 58103, "secret": "s3", "thumb": "https://h/o/a/chatfiles/u4", "thumb_secret": "s4", "type": "video"}),
        ),
        (
            "file",
            json!({"url": "https://h/o/a/chatfiles/u5", "filename": "r.md"}),
            json!({"url": "https://h/o/a/chatfiles/u5", "filename": "r.md", "type": "file"}),
        ),
        (
            "loc",
            json!({"lat": "39.9053", "lng": 116.36302, "addr": "西城区西便门桥"}),
            json!({"lat": 39.9053, "lng": 116.36302, "addr": "西城区西便门桥", "type": "loc"}),
        ),
        ("cmd", json!({"action": "run"}), json!({"action": "run", "type": "cmd"})),
        (
            "custom",
            json!({"customEvent": "gift_1", "customExts": {"name": "flower", "size": "16"}}),
            json!({"customEvent": "gift_1", "customExts": [{"name": "flower"}, {"size": "16"}],
                   "v2:customExts": {"name": "flower", "size": "16"}, "type": "custom"}),
        ),
    ]
}

/// A server whose send quotas allow a few hundred quick sends.
pub(crate) async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.limits.send_calls_per_second = 100_000;
        c.limits.send_messages_per_minute = 1_000_000;
    })
    .await
}

/// Sends one REST message; returns its id.
pub(crate) async fn send(s: &TestServer, admin: &str, body: Value) -> String {
    let (st, b) = s.post("/messages/users", Some(admin), body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{body} -> {b}");
    let to = body["to"][0].as_str().expect("one recipient");
    b["data"][to].as_str().expect("id").to_owned()
}

async fn text(s: &TestServer, admin: &str, from: &str, to: &str, msg: &str) -> String {
    send(s, admin, json!({"from": from, "to": [to], "type": "txt", "body": {"msg": msg}})).await
}

/// `messageroaming` with `body`; returns the ids of the page, `is_last`, `next_key`.
async fn roam(s: &TestServer, token: &str, user: &str, body: Value) -> (Vec<String>, bool, Option<String>) {
    let (st, b) = s.post(&format!("/users/{user}/messageroaming"), Some(token), body).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let ids = b["data"]["msgs"]
        .as_array()
        .expect("msgs")
        .iter()
        .map(|m| {
            let raw = STANDARD.decode(m["msg"].as_str().expect("msg")).expect("base64");
            pb::Meta::decode(raw.as_slice()).expect("a Meta").id.expect("id").to_string()
        })
        .collect();
    (ids, b["data"]["is_last"] == json!(true), b["data"]["next_key"].as_str().map(str::to_owned))
}

async fn conversations(s: &TestServer, token: &str, user: &str) -> Vec<Value> {
    let (st, b) =
        s.get(&format!("/sdk/user/{user}/user_channels/list?&limit=20&cursor=&need_mark=true"), Some(token)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["data"]["channel_infos"].as_array().expect("channel_infos").clone()
}

#[tokio::test]
async fn roaming_pages_both_directions_for_the_owner_only() {
    let s = server().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    let mut sent = Vec::new();
    for i in 0..7 {
        let (from, to) = if i % 2 == 0 { ("alice", "bob") } else { ("bob", "alice") };
        sent.push(text(&s, &admin, from, to, &format!("m{i}")).await);
    }
    // ROUTE_ONLINE messages are not history.
    let (st, _) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "online"}, "routetype": "ROUTE_ONLINE"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let bob = s.user_token("bob").await;
    let mut seen = Vec::new();
    let mut start = json!(-1);
    loop {
        let (ids, last, next) =
            roam(&s, &bob, "bob", json!({"queue": "alice@easemob.com", "start": start, "pull_number": 3})).await;
        seen.extend(ids);
        if last {
            assert_eq!(next, None);
            break;
        }
        start = json!(next.expect("next_key"));
    }
    assert_eq!(seen, sent.iter().rev().cloned().collect::<Vec<_>>(), "newest first, every message once");
    let (ids, last, _) = roam(
        &s,
        &admin,
        "alice",
        json!({"queue": "bob@easemob.com", "start": sent[2], "pull_number": 50, "is_positive": true}),
    )
    .await;
    assert_eq!((ids, last), (sent[3..].to_vec(), true), "oldest first after the cursor, with the app token");
    // Another user's token may not read bob's history.
    let carol = s.user_token("carol").await;
    let (st, b) = s.post("/users/bob/messageroaming", Some(&carol), json!({"queue": "alice"})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    let (st, b) = s.post("/users/bob/messageroaming", Some(&bob), json!({"queue": ""})).await;
    assert_error(st, &b, 400, "illegal_argument", "field queue cannot be null or empty");
    let (ids, last, _) = roam(&s, &bob, "bob", json!({"queue": "g1@conference.easemob.com"})).await;
    assert!(ids.is_empty() && last, "groups have no history");
}

#[tokio::test]
async fn conversation_lists_deletes_and_roam_ignore() {
    let s = server().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    let b1 = text(&s, &admin, "bob", "alice", "b1").await;
    let hidden = send(
        &s,
        &admin,
        json!({"from": "bob", "to": ["alice"], "type": "txt", "body": {"msg": "not for alice's history"}, "roam_ignore_users": ["alice"]}),
    )
    .await;
    let c1 = text(&s, &admin, "carol", "alice", "c1").await;
    let alice = s.user_token("alice").await;
    let list = conversations(&s, &alice, "alice").await;
    let peers: Vec<(&str, u64, &str)> = list
        .iter()
        .map(|c| {
            (c["session_to"].as_str().unwrap(), c["unread_num"].as_u64().unwrap(), c["meta"]["id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(peers, [("carol", 1, c1.as_str()), ("bob", 1, b1.as_str())], "roam_ignore_users: not alice's");
    let payload: Value = serde_json::from_str(list[0]["meta"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["bodies"], json!([{"msg": "c1", "type": "txt"}]));
    let (ids, _, _) = roam(&s, &alice, "alice", json!({"queue": "bob"})).await;
    assert_eq!(ids, std::slice::from_ref(&b1));
    let bob = s.user_token("bob").await;
    let (ids, _, _) = roam(&s, &bob, "bob", json!({"queue": "alice"})).await;
    assert_eq!(ids, [hidden, b1.clone()], "the sender still has it");

    // The legacy list, whole and paged.
    let (st, b) = s.get("/users/alice/user_channels", Some(&alice)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["channel_infos"][0]["channel_id"], json!(format!("{}_carol@easemob.com", s.app_key())));
    let (_, b) = s.get("/users/alice/user_channels/page?pageNum=2&pageSize=1", Some(&alice)).await;
    assert_eq!(b["data"]["channel_infos"][0]["session_to"], "bob");

    // One-way delete (the SDK's path), with its history: gone for alice only.
    let (st, b) = s
        .call(
            Method::DELETE,
            "/user/alice/user_channel?resource=x",
            Some(&alice),
            Some(json!({"channel": "bob", "type": "chat", "delete_roam": true})),
        )
        .await;
    assert_eq!((st, &b["data"]), (StatusCode::OK, &json!({"result": "ok"})), "{b}");
    let list = conversations(&s, &alice, "alice").await;
    assert_eq!(list.iter().map(|c| c["session_to"].as_str().unwrap()).collect::<Vec<_>>(), ["carol"]);
    assert!(roam(&s, &alice, "alice", json!({"queue": "bob"})).await.0.is_empty());
    assert_eq!(roam(&s, &bob, "bob", json!({"queue": "alice"})).await.0.len(), 2);
    let (st, b) = s
        .call(
            Method::DELETE,
            "/users/alice/user_channel",
            Some(&admin),
            Some(json!({"channel": "carol", "type": "chat"})),
        )
        .await;
    assert_error(st, &b, 400, "illegal_argument", "field delete_roam cannot be null");

    // Pinning.
    let (st, b) = s
        .post("/sdk/user/alice/user_channel/top?resource=x", Some(&alice), json!({"type": "chat", "to": "carol"}))
        .await;
    assert_eq!((st, b["data"]["is_top"].clone()), (StatusCode::OK, json!(true)), "{b}");
    let (_, b) = s.get("/sdk/user/alice/user_channels/list?&limit=20&cursor=&is_top=true", Some(&alice)).await;
    assert_eq!(b["data"]["channel_infos"][0]["session_to"], "carol");
    let (_, b) = s.delete("/sdk/user/alice/user_channel/top?type=chat&to=carol&resource=x", Some(&alice)).await;
    assert_eq!(b["data"], json!({"is_top": false, "update_top_status_time": 0}));
}

#[tokio::test]
async fn recall_and_roaming_deletes_remove_history() {
    let s = server().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let m: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..5 {
            let id = text(&s, &admin, "alice", "bob", &format!("m{i}")).await;
            // Each message in a millisecond of its own, so the delete by time
            // below (at or before `delTime`) has exactly one right answer.
            wait_past_ms(MsgId(id.parse().unwrap()).unix_ms()).await;
            v.push(id);
        }
        v
    };
    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": m[4], "to": "bob", "from": "alice", "chat_type": "chat"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let all = json!({"queue": "alice", "is_positive": true});
    assert_eq!(roam(&s, &admin, "bob", all.clone()).await.0, &m[..4], "recalled: gone from the recipient");
    assert_eq!(
        roam(&s, &admin, "alice", json!({"queue": "bob", "is_positive": true})).await.0,
        &m[..4],
        "and the sender"
    );

    // Admin roaming delete by ids, then by time: bob's side only.
    let (st, b) =
        s.delete(&format!("/rest/message/roaming/chat/user/bob?userId=alice&msgIdList={}", m[0]), Some(&admin)).await;
    assert_eq!((st, &b["requestStatusCode"]), (StatusCode::OK, &json!("ok")), "{b}");
    assert_eq!(roam(&s, &admin, "bob", all.clone()).await.0, &m[1..4]);
    let ms = MsgId(m[2].parse().unwrap()).unix_ms();
    let (st, _) =
        s.delete(&format!("/rest/message/roaming/chat/user/bob/time?userId=alice&delTime={ms}"), Some(&admin)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(roam(&s, &admin, "bob", all.clone()).await.0, &m[3..4]);
    assert_eq!(roam(&s, &admin, "alice", json!({"queue": "bob"})).await.0.len(), 4, "alice keeps hers");
    let (st, b) = s.delete("/rest/message/roaming/chat/user/bob?userId=alice", Some(&admin)).await;
    assert_error(st, &b, 400, "Bad Request", "Bad Request");

    // Deleting a user deletes their history.
    let (st, _) = s.delete("/users/bob", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK);
    s.register(&admin, &["bob"]).await;
    assert!(roam(&s, &admin, "bob", all).await.0.is_empty());
}

fn gunzip(bytes: &[u8]) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).expect("gzip");
    text.lines().map(|l| serde_json::from_str(l).expect("one JSON record per line")).collect()
}

/// The UTC hour `yyyyMMddHH` of a Unix ms time.
fn hour_of(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}{:02}", rem / 3600)
}

#[tokio::test]
async fn export_and_legacy_query_show_every_type_field_by_field() {
    let s = server().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let ext = json!({"key1": "value1", "n": 2});
    // Taken before the first send: a message's timestamp is when the server accepted it,
    // which can be a millisecond before the time inside its id (the id is drawn after).
    let sending_from = missive_core::id::now_ms();
    let mut sent = Vec::new();
    for (t, body, want) in eight_types() {
        let id = send(&s, &admin, json!({"from": "alice", "to": ["bob"], "type": t, "body": body, "ext": ext})).await;
        sent.push((id, want));
    }
    let first_ms = MsgId(sent[0].0.parse().unwrap()).unix_ms();
    let check = |records: &[Value]| {
        assert_eq!(records.len(), sent.len(), "{records:?}");
        for (r, (id, body)) in records.iter().zip(&sent) {
            assert_eq!(r["msg_id"], json!(id));
            assert_eq!(
                (&r["from"], &r["to"], &r["chat_type"], &r["direction"]),
                (&json!("alice"), &json!("bob"), &json!("chat"), &json!("outgoing"))
            );
            assert_eq!(r["payload"]["bodies"], json!([body]), "{id}");
            assert_eq!(r["payload"]["ext"], ext);
            assert_eq!((&r["payload"]["from"], &r["payload"]["to"]), (&json!("alice"), &json!("bob")));
            assert!(r["timestamp"].as_u64().is_some_and(|t| t >= sending_from), "{r}");
        }
    };

    // The legacy query, ascending in pages of 3 with its cursor.
    let mut records = Vec::new();
    let mut cursor = String::new();
    loop {
        let ql = "select * where from='alice' and to='bob' order by timestamp asc";
        let (st, b) =
            s.get(&format!("/chatmessages?ql={}&limit=3&cursor={cursor}", ql.replace(' ', "+")), Some(&admin)).await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let page = b["entities"].as_array().expect("entities");
        assert_eq!(b["count"], json!(page.len()));
        assert!(page.iter().all(|e| e["type"] == "chatmessage" && e["uuid"].as_str().is_some_and(|u| u.len() == 36)));
        records.extend(page.iter().cloned());
        match b["cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    check(&records);
    let (_, b) = s.get("/chatmessages?ql=select+*+order+by+timestamp+desc&limit=1", Some(&admin)).await;
    assert_eq!(b["entities"][0]["msg_id"], json!(sent[7].0));
    let (st, b) = s.get("/chatmessages?ql=select+*+where+timestamp>1+or+timestamp<5", Some(&admin)).await;
    assert_error(
        st,
        &b,
        400,
        "query_parse",
        "The query cannot be parsed. The token 'or' at column 10 on line 1 cannot be parsed",
    );
    let bob = s.user_token("bob").await;
    let (st, _) = s.get("/chatmessages", Some(&bob)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // The export of the hour: a signed URL to a gzip of the same records.
    let hour = hour_of(first_ms);
    let (st, b) = s.get(&format!("/chatmessages/{hour}"), Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let url = b["data"][0]["url"].as_str().expect("data[0].url").to_owned();
    let res = s.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/gzip");
    let records = gunzip(&res.bytes().await.unwrap());
    let ours: Vec<Value> =
        records.into_iter().filter(|r| sent.iter().any(|(id, _)| r["msg_id"] == json!(id))).collect();
    if hour_of(MsgId(sent[7].0.parse().unwrap()).unix_ms()) == hour {
        check(&ours);
    }
    let tampered = url.replace("Signature=", "Signature=00");
    assert_eq!(s.http.get(&tampered).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // The documented errors.
    let key = s.app_key();
    let (st, b) = s.get("/chatmessages/2018-11-27", Some(&admin)).await;
    assert_error(st, &b, 400, "illegal_argument", &format!("illegal arguments: appkey: {key}, time: 2018-11-27"));
    let (st, b) = s.get("/chatmessages/2018112711", Some(&admin)).await;
    assert_error(
        st,
        &b,
        400,
        "illegal_argument",
        &format!(
            "illegal arguments: appkey: {key}, time: 2018112711, maybe chat message history is expired or unstored"
        ),
    );
    let empty = hour_of(first_ms - 3_600_000);
    let (st, b) = s.get(&format!("/chatmessages/{empty}"), Some(&admin)).await;
    assert_error(
        st,
        &b,
        404,
        "storage_object_not_found",
        &format!("Failed to find chat message history download url for appkey: {key}, time: {empty}"),
    );
}
