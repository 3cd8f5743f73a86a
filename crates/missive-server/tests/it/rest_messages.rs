//! `POST /{org}/{app}/messages/users` as the "发送单聊消息" page shows it (every curl
//! example, verbatim), its error table (easemob-api.md §4.1), the legacy `POST /messages`,
//! recall (§4.4), persistence across a restart, and the router's 404 / 405 / CORS answers.

use missive_core::id::now_ms;
use missive_msync::pb;
use missive_msync::pb::message_body::content::Type as ContentType;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, assert_envelope, assert_error, assert_msg_id, wait_past_ms};

// The request bodies of the seed page's curl examples, byte for byte.

const TXT: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "txt",
"body": {
"msg": "testmessages"
},
"ext": {
"em_ignore_notification": true
}
}"#;

const TXT_ONLINE_SYNCED: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "txt",
"body": {
"msg": "testmessages"
},
"ext": {
"em_ignore_notification": true
},
"routetype":"ROUTE_ONLINE",
"sync_device":true
}"#;

const IMG: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "img",
"body": {
"filename":"testimg.jpg",
"secret":"VfXXXXNb_",
"url":"https://XXXX/XXXX/XXXX/chatfiles/55f12940-XXXX-XXXX-8a5b-ff2336f03252",
"size": {
"width":480,
"height":720
}
}
}"#;

const AUDIO: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "audio",
"body": {
"url": "https://XXXX/XXXX/XXXX/chatfiles/1dfc7f50-XXXX-XXXX-8a07-7d75b8fb3d42",
"filename": "testaudio.amr",
"length": 10,
"secret": "HfXXXXCjM"
}
}"#;

const VIDEO: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "video",
"body": {
"thumb" : "https://XXXX/XXXX/XXXX/chatfiles/67279b20-7f69-11e4-8eee-21d3334b3a97",
"length" : 0,
"secret":"VfXXXXNb_",
"file_length" : 58103,
"thumb_secret" : "ZyXXXX2I",
"url" : "https://XXXX/XXXX/XXXX/chatfiles/671dfe30-XXXX-XXXX-ba67-8fef0d502f46"
}
}"#;

const FILE: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "file",
"body": {
"filename":"test.txt",
"secret":"1-g0XXXXua",
"url": "https://XXXX/XXXX/XXXX/chatfiles/d7eXXXX7444"
}
}"#;

const LOC: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "loc",
"body": {
"lat": "39.966",
"lng":"116.322",
"addr":"中国北京市海淀区中关村"
}
}"#;

const CMD: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "cmd",
"body":{
"action":"action1"
}
}"#;

const CUSTOM: &str = r#"{
"from": "user1",
"to": ["user2"],
"type": "custom",
"body": {
"customEvent": "custom_event"
}
}"#;

/// Decodes the stored copy of message `id` (what the recipient's devices will pull).
async fn stored_body(s: &TestServer, id: &str) -> pb::MessageBody {
    let m = s.stored_message(id).await.unwrap_or_else(|| panic!("message {id} was not stored"));
    pb::MessageBody::decode(m.payload.as_ref()).expect("stored payload decodes")
}

fn ext_of(body: &pb::MessageBody) -> Value {
    Value::Object(missive_msync::key_values_to_json(&body.ext))
}

#[tokio::test]
async fn every_curl_example_of_the_seed_page_is_answered_as_documented() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let uri = format!("http://{}/testorg/testapp/messages/users", s.addr);

    let examples = [
        ("txt", TXT),
        ("txt ROUTE_ONLINE", TXT_ONLINE_SYNCED),
        ("img", IMG),
        ("audio", AUDIO),
        ("video", VIDEO),
        ("file", FILE),
        ("loc", LOC),
        ("cmd", CMD),
        ("custom", CUSTOM),
    ];
    let mut last = 0u64;
    let mut ids = Vec::new();
    for (what, body) in examples {
        let before = now_ms();
        let (st, b) = s.post_raw("/messages/users", Some(&admin), body).await;
        assert_eq!(st, StatusCode::OK, "{what}: {b}");
        assert_envelope(&s, &b, "post", "/messages/users", &uri, before);
        let data = b["data"].as_object().unwrap_or_else(|| panic!("{what}: data in {b}"));
        assert_eq!(data.len(), 1, "{what}: one id per recipient in {b}");
        let id = assert_msg_id(&data["user2"], before);
        assert!(id > last, "{what}: ids increase ({id} after {last})");
        last = id;
        ids.push((what, id.to_string()));
    }

    // What each example became on the wire (the MSYNC body the recipient pulls).
    for (what, id) in &ids {
        if *what == "txt ROUTE_ONLINE" {
            assert!(s.stored_message(id).await.is_none(), "online-only message to an offline user is not stored");
            continue;
        }
        let m = s.stored_message(id).await.expect("stored");
        assert_eq!((m.owner.as_str(), m.sender.as_str(), m.queue.as_str()), ("user2", "user1", "user1"), "{what}");
        assert!(!m.delivered, "{what}");
        let body = stored_body(&s, id).await;
        assert_eq!(body.r#type(), pb::message_body::Type::Chat, "{what}");
        assert_eq!(body.from.as_ref().and_then(|j| j.name.as_deref()), Some("user1"), "{what}");
        assert_eq!(body.to.as_ref().and_then(|j| j.name.as_deref()), Some("user2"), "{what}");
        assert_eq!(body.contents.len(), 1, "{what}");
        let c = &body.contents[0];
        match *what {
            "txt" => {
                assert_eq!(c.r#type(), ContentType::Text);
                assert_eq!(c.text.as_deref(), Some("testmessages"));
                assert_eq!(ext_of(&body), json!({"em_ignore_notification": true}));
            }
            "img" => {
                assert_eq!(c.r#type(), ContentType::Image);
                assert_eq!(c.display_name.as_deref(), Some("testimg.jpg"));
                assert_eq!(c.secret_key.as_deref(), Some("VfXXXXNb_"));
                assert_eq!(
                    c.remote_path.as_deref(),
                    Some("https://XXXX/XXXX/XXXX/chatfiles/55f12940-XXXX-XXXX-8a5b-ff2336f03252")
                );
                let size = c.size.as_ref().expect("size");
                assert_eq!((size.width, size.height), (Some(480.0), Some(720.0)));
            }
            "audio" => {
                assert_eq!(c.r#type(), ContentType::Voice);
                assert_eq!(c.display_name.as_deref(), Some("testaudio.amr"));
                assert_eq!(c.duration, Some(10));
                assert_eq!(c.secret_key.as_deref(), Some("HfXXXXCjM"));
            }
            "video" => {
                assert_eq!(c.r#type(), ContentType::Video);
                assert_eq!(
                    c.remote_path.as_deref(),
                    Some("https://XXXX/XXXX/XXXX/chatfiles/671dfe30-XXXX-XXXX-ba67-8fef0d502f46")
                );
                assert_eq!(
                    c.thumbnail_remote_path.as_deref(),
                    Some("https://XXXX/XXXX/XXXX/chatfiles/67279b20-7f69-11e4-8eee-21d3334b3a97")
                );
                assert_eq!(c.thumbnail_secret_key.as_deref(), Some("ZyXXXX2I"));
                assert_eq!(c.file_length, Some(58103));
                assert_eq!(c.duration, Some(0));
            }
            "file" => {
                assert_eq!(c.r#type(), ContentType::File);
                assert_eq!(c.display_name.as_deref(), Some("test.txt"));
                assert_eq!(c.secret_key.as_deref(), Some("1-g0XXXXua"));
                assert_eq!(c.remote_path.as_deref(), Some("https://XXXX/XXXX/XXXX/chatfiles/d7eXXXX7444"));
            }
            "loc" => {
                assert_eq!(c.r#type(), ContentType::Location);
                assert_eq!((c.latitude, c.longitude), (Some(39.966), Some(116.322)));
                assert_eq!(c.address.as_deref(), Some("中国北京市海淀区中关村"));
            }
            "cmd" => {
                assert_eq!(c.r#type(), ContentType::Command);
                assert_eq!(c.action.as_deref(), Some("action1"));
            }
            "custom" => {
                assert_eq!(c.r#type(), ContentType::Custom);
                assert_eq!(c.custom_event.as_deref(), Some("custom_event"));
                assert!(c.custom_exts.is_empty());
            }
            other => unreachable!("{other}"),
        }
    }
    // Eight stored, the ROUTE_ONLINE one went nowhere (user2 is offline).
    assert_eq!(s.offline_count(&admin, "user2").await, 8);
    assert_eq!(s.offline_count(&admin, "user1").await, 0, "sync_device never queues for the sender");
    for (what, id) in &ids {
        let want = if *what == "txt ROUTE_ONLINE" { "delivered" } else { "undelivered" };
        assert_eq!(s.offline_status(&admin, "user2", id).await, want, "{what}");
    }
}

#[tokio::test]
async fn uri_is_built_from_the_request_host() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let before = now_ms();
    let r = s
        .raw(
            Method::POST,
            "/messages/users",
            Some(&admin),
            &[("content-type", "application/json"), ("host", "im.example.com:8443"), ("x-forwarded-proto", "https")],
            Some(TXT.into()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_envelope(
        &s,
        &r.body,
        "post",
        "/messages/users",
        "https://im.example.com:8443/testorg/testapp/messages/users",
        before,
    );
    assert_msg_id(&r.body["data"]["user2"], before);
}

#[tokio::test]
async fn one_id_per_recipient_in_request_order_and_up_to_600() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user2", "user3", "user4"]).await;

    let before = now_ms();
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "user1", "to": ["user2", "user3", "user4"], "type": "txt", "body": {"msg": "hi"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let data = b["data"].as_object().expect("data");
    assert_eq!(data.len(), 3, "{b}");
    let a = assert_msg_id(&data["user2"], before);
    let c = assert_msg_id(&data["user3"], before);
    let d = assert_msg_id(&data["user4"], before);
    assert!(a < c && c < d, "ids follow the order of `to`: {b}");
    for u in ["user2", "user3", "user4"] {
        assert_eq!(s.offline_count(&admin, u).await, 1, "{u}");
    }

    // Without `from` the sender is "admin", which need not exist.
    let (st, b) =
        s.post("/messages/users", Some(&admin), json!({"to": ["user2"], "type": "txt", "body": {"msg": "x"}})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let id = b["data"]["user2"].as_str().expect("id").to_owned();
    assert_eq!(s.stored_message(&id).await.expect("stored").sender, "admin");

    // Exactly 600 recipients is allowed, each gets its own increasing id.
    let to: Vec<String> = (0..600).map(|i| format!("r{i:03}")).collect();
    let before = now_ms();
    let (st, b) =
        s.post("/messages/users", Some(&admin), json!({"to": to, "type": "txt", "body": {"msg": "all"}})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let data = b["data"].as_object().expect("data");
    assert_eq!(data.len(), 600);
    let mut last = 0;
    for name in &to {
        let id = assert_msg_id(&data[name.as_str()], before);
        assert!(id > last, "ids increase in the order of `to`");
        last = id;
    }
}

#[tokio::test]
async fn unknown_recipient_gets_an_id_but_no_user_is_created() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let before = now_ms();
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "nobody", "to": ["ghost"], "type": "txt", "body": {"msg": "boo"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let id = b["data"]["ghost"].clone();
    assert_msg_id(&id, before);
    let (st, b) = s.get("/users/ghost", Some(&admin)).await;
    assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    let (st, b) = s.get("/users/nobody", Some(&admin)).await;
    assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    let (st, b) = s.get("/users", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["count"], 0, "{b}");
    assert!(s.stored_message(id.as_str().expect("id")).await.is_none(), "nobody can receive it, nothing is stored");
}

#[tokio::test]
async fn send_errors_are_those_of_the_documented_table() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let send = |body: Value| {
        let s = &s;
        let admin = admin.clone();
        async move { s.post("/messages/users", Some(&admin), body).await }
    };
    let base = json!({"from": "user1", "to": ["user2"], "type": "txt", "body": {"msg": "m"}});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };

    let (st, b) = send(with("from", json!(""))).await;
    assert_error(st, &b, 400, "message_send_error", "param from can't be empty");
    assert_eq!(b["exception"], "MessageSendException");
    let (st, b) = send(with("to", json!([]))).await;
    assert_error(st, &b, 400, "message_send_error", "param to can't be empty");
    let mut no_to = base.clone();
    no_to.as_object_mut().expect("object").remove("to");
    let (st, b) = send(no_to).await;
    assert_error(st, &b, 400, "message_send_error", "param to can't be empty");
    for key in ["type", "body"] {
        let mut missing = base.clone();
        missing.as_object_mut().expect("object").remove(key);
        let (st, b) = send(missing).await;
        assert_error(st, &b, 400, "message_send_error", &format!("param {key} can't be empty"));
    }
    let (st, b) = send(with("type", json!(""))).await;
    assert_error(st, &b, 400, "message_send_error", "param type can't be empty");
    let (st, b) = send(with("body", json!({}))).await;
    assert_error(st, &b, 400, "message_send_error", "param body can't be empty");
    for ext in [json!("x"), json!([1]), json!(1), json!(null), json!(true)] {
        let (st, b) = send(with("ext", ext.clone())).await;
        assert_error(st, &b, 400, "message_send_error", "param ext must be JSONObject");
    }
    let to: Vec<String> = (0..601).map(|i| format!("r{i:03}")).collect();
    let (st, b) = send(with("to", json!(to))).await;
    assert_error(st, &b, 400, "message_send_error", "params to's size can't exceed limit 600");

    // Malformed JSON and fields of the wrong type.
    let (st, b) = s.post_raw("/messages/users", Some(&admin), r#"{"from": "user1", "to": ["user2"],"#).await;
    assert_error(st, &b, 400, "invalid_request_body", "Request body is invalid. Please check body is correct.");
    for bad in
        [with("to", json!("user2")), with("to", json!([1])), with("body", json!("m")), json!(["not", "an object"])]
    {
        let (st, b) = send(bad.clone()).await;
        assert_error(st, &b, 400, "invalid_request_body", "Request body is invalid. Please check body is correct.");
    }

    // Tokens.
    let (st, b) = s.post("/messages/users", None, base.clone()).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
    let (st, b) = s.post("/messages/users", Some("garbage"), base.clone()).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");

    // Any method but POST is 405 with an Easemob error body.
    for m in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let (st, b) = s.call(m.clone(), "/messages/users", Some(&admin), None).await;
        assert_error(st, &b, 405, "method_not_allowed", "HTTP 405 Method Not Allowed");
    }

    // Nothing above was sent.
    let (st, b) = s.get("/users", Some(&admin)).await;
    assert_eq!((st, b["count"].clone()), (StatusCode::OK, json!(0)), "{b}");
}

#[tokio::test]
async fn legacy_messages_endpoint() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["u1", "u2"]).await;
    let uri = format!("http://{}/testorg/testapp/messages", s.addr);
    let body = json!({
        "target_type": "users", "target": ["u1", "u2"],
        "msg": {"type": "txt", "msg": "hello from rest"},
        "from": "jma2", "ext": {"attr1": "v1"}
    });
    let before = now_ms();
    let (st, b) = s.post("/messages", Some(&admin), body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "post", "/messages", &uri, before);
    assert_eq!(b["data"], json!({"u1": "success", "u2": "success"}));
    assert_eq!(s.offline_count(&admin, "u1").await, 1);

    let before = now_ms();
    let (st, b) = s.post("/messages?useMsgId=true", Some(&admin), body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "post", "/messages", &uri, before);
    let u1 = assert_msg_id(&b["data"]["u1"], before);
    let u2 = assert_msg_id(&b["data"]["u2"], before);
    assert!(u1 < u2);
    let stored = stored_body(&s, &u1.to_string()).await;
    assert_eq!(stored.contents[0].text.as_deref(), Some("hello from rest"));
    assert_eq!(ext_of(&stored), json!({"attr1": "v1"}));
    assert_eq!(s.offline_count(&admin, "u2").await, 2);

    for target_type in [json!("chatgroups"), json!("chatrooms"), json!("nope"), json!(null)] {
        let mut b2 = body.clone();
        b2["target_type"] = target_type;
        let (st, b) = s.post("/messages", Some(&admin), b2).await;
        assert_error(st, &b, 400, "illegal_argument", "target_type can only be 'users' or 'chatgroups' or 'chatrooms'");
    }
    let (st, b) = s.post("/messages", None, body).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
}

/// Sends one txt message user1 → user2 with the app token; returns its id.
async fn send_one(s: &TestServer, admin: &str) -> String {
    let data = s.send_text(admin, "user1", &["user2"], "to be recalled").await;
    data["user2"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn recall_removes_an_undelivered_message() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let keep = send_one(&s, &admin).await;
    let id = send_one(&s, &admin).await;
    assert_eq!(s.offline_count(&admin, "user2").await, 2);
    assert_eq!(s.offline_status(&admin, "user2", &id).await, "undelivered");

    let uri = format!("http://{}/testorg/testapp/messages/msg_recall", s.addr);
    let before = now_ms();
    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": id, "to": "user2", "from": "user1", "chat_type": "chat", "force": false}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "post", "/messages/msg_recall", &uri, before);
    assert_eq!(b["data"], json!({"recalled": "yes", "chattype": "chat", "from": "user1", "to": "user2", "msg_id": id}));
    assert_eq!(s.offline_count(&admin, "user2").await, 1, "the recalled message left the queue");
    assert_eq!(s.offline_status(&admin, "user2", &id).await, "delivered", "no longer pending");
    assert_eq!(s.offline_status(&admin, "user2", &keep).await, "undelivered", "the other one stays");
    assert!(s.stored_message(&id).await.is_none());

    // Gone: a second recall finds nothing.
    let (st, b) =
        s.post("/messages/msg_recall", Some(&admin), json!({"msg_id": id, "to": "user2", "chat_type": "chat"})).await;
    assert_error(st, &b, 403, "message_recall_error", "not_found msg");

    // Parameter errors.
    let (st, b) = s.post("/messages/msg_recall", Some(&admin), json!({"to": "user2", "chat_type": "chat"})).await;
    assert_error(st, &b, 400, "message_recall_error", "param msg_id can't be empty");
    let (st, b) = s.post("/messages/msg_recall", Some(&admin), json!({"msg_id": keep, "chat_type": "chat"})).await;
    assert_error(st, &b, 400, "message_recall_error", "param to can't be empty");
    let (st, b) = s.post("/messages/msg_recall", Some(&admin), json!({"msg_id": keep, "to": "user2"})).await;
    assert_error(st, &b, 400, "message_recall_error", "param chat_type can't be empty");
    let (st, b) =
        s.post("/messages/msg_recall", Some(&admin), json!({"msg_id": keep, "to": "user1", "chat_type": "chat"})).await;
    assert_error(st, &b, 400, "message_recall_error", "can’t find msg to");
    let (st, b) =
        s.post("/messages/msg_recall", None, json!({"msg_id": keep, "to": "user2", "chat_type": "chat"})).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
    assert_eq!(s.offline_count(&admin, "user2").await, 1, "failed recalls removed nothing");
}

#[tokio::test]
async fn recall_window_and_force() {
    // A zero window: anything sent in an earlier millisecond is out of it.
    let s = TestServer::start_with(|c| c.messages.recall_window_secs = 0).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let id = send_one(&s, &admin).await;
    let sent_ms = missive_core::id::MsgId(id.parse().expect("id")).unix_ms();
    wait_past_ms(sent_ms).await;
    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": id, "to": "user2", "from": "user1", "chat_type": "chat"}),
        )
        .await;
    assert_error(st, &b, 403, "message_recall_error", "exceed recall time limit");
    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": id, "to": "user2", "from": "user1", "chat_type": "chat", "force": false}),
        )
        .await;
    assert_error(st, &b, 403, "message_recall_error", "exceed recall time limit");
    assert_eq!(s.offline_status(&admin, "user2", &id).await, "undelivered", "still queued");

    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": id, "to": "user2", "from": "user1", "chat_type": "chat", "force": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["recalled"], "yes", "{b}");
    assert_eq!(s.offline_count(&admin, "user2").await, 0);
}

#[tokio::test]
async fn batch_recall_reports_each_item() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let a = send_one(&s, &admin).await;
    let b_id = send_one(&s, &admin).await;
    let unknown = "1000000000000000000";
    let uri = format!("http://{}/testorg/testapp/messages/recall", s.addr);
    let before = now_ms();
    let (st, b) = s
        .post(
            "/messages/recall",
            Some(&admin),
            json!({"msgs": [
                {"msg_id": a, "to": "user2", "from": "user1", "chat_type": "chat", "force": true},
                {"msg_id": unknown, "to": "user2", "chat_type": "chat", "force": true},
                {"msg_id": b_id, "to": "user1", "chat_type": "chat", "force": true},
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "post", "/messages/recall", &uri, before);
    assert_eq!(
        b["data"],
        json!({"msgs": [
            {"recalled": "yes", "chattype": "chat", "from": "user1", "to": "user2", "msg_id": a},
            {"msg_id": unknown, "recalled": "not_found msg"},
            {"msg_id": b_id, "recalled": "can’t find msg to"},
        ]})
    );
    assert_eq!(s.offline_count(&admin, "user2").await, 1);
    assert_eq!(s.offline_status(&admin, "user2", &a).await, "delivered");
    assert_eq!(s.offline_status(&admin, "user2", &b_id).await, "undelivered");
}

#[tokio::test]
async fn queued_messages_survive_a_restart() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let first = send_one(&s, &admin).await;
    let second = send_one(&s, &admin).await;

    let s = s.restart().await;
    // The app token was stored too.
    assert_eq!(s.offline_count(&admin, "user2").await, 2);
    assert_eq!(s.offline_status(&admin, "user2", &first).await, "undelivered");
    assert_eq!(s.offline_status(&admin, "user2", &second).await, "undelivered");
    let third = send_one(&s, &admin).await;
    assert!(third.parse::<u64>().expect("id") > second.parse::<u64>().expect("id"), "ids keep increasing");
    assert_eq!(s.offline_count(&admin, "user2").await, 3);
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_cors_preflight() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    for path in [
        s.url("/nope"),
        s.url("/messages/users/extra"),
        format!("http://{}/nope", s.addr),
        format!("http://{}/a/b/c/d/e/f", s.addr),
    ] {
        let (st, b) = s.get(&path, Some(&admin)).await;
        assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    }
    let (st, b) = s.get(&format!("http://{}/nosuchorg/nosuchapp/users", s.addr), Some(&admin)).await;
    assert_error(
        st,
        &b,
        404,
        "organization_application_not_found",
        "Could not find application for nosuchorg/nosuchapp from URI: nosuchorg/nosuchapp/users",
    );
    let (st, b) = s.call(Method::GET, "/token", None, None).await;
    assert_error(st, &b, 405, "method_not_allowed", "HTTP 405 Method Not Allowed");
    let (st, b) = s.call(Method::PATCH, "/users/u1", Some(&admin), None).await;
    assert_error(st, &b, 405, "method_not_allowed", "HTTP 405 Method Not Allowed");

    let r = s
        .raw(
            Method::OPTIONS,
            "/messages/users",
            None,
            &[
                ("origin", "https://web.example.com"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization,restrict-access"),
            ],
            None,
        )
        .await;
    assert!(r.status.is_success(), "preflight status {}", r.status);
    let h = |k: &str| r.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    assert_eq!(h("access-control-allow-origin"), "https://web.example.com");
    let allowed = h("access-control-allow-headers");
    // `x-request-id`: the UIKit's SDK 5 sends it on every REST call.
    for want in ["authorization", "restrict-access", "content-type", "x-request-id"] {
        assert!(allowed.split(',').any(|x| x.trim() == want), "{want} not in allow-headers {allowed:?}");
    }
    assert!(h("access-control-allow-methods").contains("post"), "{:?}", r.headers);

    // A simple cross-origin request gets the origin echoed back too.
    let r = s.raw(Method::GET, "/users", Some(&admin), &[("origin", "https://web.example.com")], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://web.example.com")
    );
}
