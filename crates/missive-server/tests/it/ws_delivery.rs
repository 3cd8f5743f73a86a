//! Real-time and offline delivery over MSYNC, with the Rust client (which follows the Web
//! SDK's wire behaviour): login errors, push and pull/ack, offline order, multi-device
//! delivery state, ROUTE_ONLINE, sync_device, SDK-to-SDK sends, kicks, stuck and malformed
//! clients, idle timeout.

use std::time::Duration;

use missive_msync::client::text_body;
use missive_msync::pb;
use missive_msync::{ClientError, ClientEvent, ClientOptions, Login, MsyncClient, Received};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{TestServer, eventually};

const WAIT: Duration = Duration::from_secs(10);

async fn connect(s: &TestServer, user: &str, token: &str, resource: &str) -> Result<MsyncClient, ClientError> {
    connect_with(s, user, token, resource, ClientOptions::default()).await
}

async fn connect_with(
    s: &TestServer,
    user: &str,
    token: &str,
    resource: &str,
    options: ClientOptions,
) -> Result<MsyncClient, ClientError> {
    let login = Login {
        url: s.ws_url(),
        app_key: s.app_key(),
        user: user.into(),
        token: token.into(),
        resource: Some(resource.into()),
    };
    MsyncClient::connect(login, options).await
}

/// The next chat message, skipping nothing else: any other event fails the test.
async fn next_message(c: &mut MsyncClient) -> Received {
    match timeout(WAIT, c.next_event()).await {
        Ok(Some(ClientEvent::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn text_of(m: &Received) -> String {
    let body = m.body.as_ref().expect("chat body");
    body.contents[0].text.clone().unwrap_or_default()
}

fn id_of(data: &Value, user: &str) -> u64 {
    data[user].as_str().expect("id").parse().expect("numeric id")
}

async fn offline_count(s: &TestServer, admin: &str, user: &str) -> u64 {
    let (_, b) = s.get(&format!("/users/{user}/offline_msg_count"), Some(admin)).await;
    b["data"][user].as_u64().expect("count")
}

#[tokio::test]
async fn login_errors_use_the_sdk_reason_strings() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let alice = s.user_token("alice").await;

    let err = connect(&s, "alice", "YWMtnotarealtokennotarealtokennotarealtokenxx", "r1").await.expect_err("refused");
    assert!(
        matches!(&err, ClientError::Login { code: 1, reason } if reason == "Sorry, token or password does not match login info"),
        "{err:?}"
    );

    let err = connect(&s, "nobody", &alice, "r1").await.expect_err("refused");
    assert!(matches!(&err, ClientError::Login { code: 1, reason } if reason == "Sorry, user not found"), "{err:?}");

    // Alice's token does not log in as Bob, and the app token logs in as nobody.
    let err = connect(&s, "bob", &alice, "r1").await.expect_err("refused");
    assert!(matches!(&err, ClientError::Login { code: 1, .. }), "{err:?}");
    let err = connect(&s, "alice", &admin, "r1").await.expect_err("refused");
    assert!(matches!(&err, ClientError::Login { code: 1, .. }), "{err:?}");

    // Tokens are checked again at every login: an expired one is refused as expired.
    let (st, b) = s
        .post("/token", None, json!({"grant_type": "password", "username": "bob", "password": "bob-pw", "ttl": 1}))
        .await;
    assert_eq!(st, 200, "{b}");
    let short = b["access_token"].as_str().unwrap().to_owned();
    let c = connect(&s, "bob", &short, "r1").await.expect("valid while fresh");
    c.close().await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // let the 1 s token expire
    let err = connect(&s, "bob", &short, "r1").await.expect_err("refused");
    assert!(matches!(&err, ClientError::Login { code: 1, reason } if reason == "Sorry, token expired"), "{err:?}");

    // A deactivated user cannot log in, even with a token issued before.
    let bob = s.user_token("bob").await;
    let (st, _) = s.post("/users/bob/deactivate", Some(&admin), json!({})).await;
    assert_eq!(st, 200);
    let err = connect(&s, "bob", &bob, "r1").await.expect_err("refused");
    assert!(matches!(err, ClientError::Login { code: 1, .. }), "{err:?}");
}

#[tokio::test]
async fn online_push_and_offline_pull_in_order_exactly_once() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let bob_token = s.user_token("bob").await;

    // Offline: five messages wait, in order.
    let mut sent = Vec::new();
    for i in 0..5 {
        let data = s.send_text(&admin, "alice", &["bob"], &format!("offline {i}")).await;
        sent.push(id_of(&data, "bob"));
    }
    assert_eq!(offline_count(&s, &admin, "bob").await, 5);

    let mut bob = connect(&s, "bob", &bob_token, "phone").await.expect("login");
    for (i, id) in sent.iter().enumerate() {
        let m = next_message(&mut bob).await;
        assert_eq!(m.id, *id);
        assert_eq!(m.from, "alice");
        assert_eq!(text_of(&m), format!("offline {i}"));
        assert_eq!(m.queue, "alice");
    }
    eventually("acks to be stored", || async { offline_count(&s, &admin, "bob").await == 0 }).await;

    // Online: pushed at once, with the id the REST call returned and ext intact.
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "live"}, "ext": {"k": "v", "n": 7, "o": {"a": [1]}}}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let m = next_message(&mut bob).await;
    assert_eq!(m.id, id_of(&b["data"], "bob"));
    let ext = missive_msync::key_values_to_json(&m.body.as_ref().unwrap().ext);
    assert_eq!(Value::Object(ext), json!({"k": "v", "n": 7, "o": {"a": [1]}}));
    bob.close().await;

    // Reconnecting the same device delivers nothing twice: the next message is the new one.
    let mut bob = connect(&s, "bob", &bob_token, "phone").await.expect("login");
    let data = s.send_text(&admin, "alice", &["bob"], "after reconnect").await;
    let m = next_message(&mut bob).await;
    assert_eq!(m.id, id_of(&data, "bob"));
    assert_eq!(text_of(&m), "after reconnect");
}

#[tokio::test]
async fn every_known_device_gets_every_message_and_new_devices_get_only_undelivered() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let tok = s.user_token("bob").await;

    // Two devices have logged in before.
    let phone = connect(&s, "bob", &tok, "phone").await.unwrap();
    let laptop = connect(&s, "bob", &tok, "laptop").await.unwrap();
    laptop.close().await;
    let mut phone = phone;

    // While the laptop is offline, the phone receives and acks m1.
    let m1 = id_of(&s.send_text(&admin, "alice", &["bob"], "m1").await, "bob");
    assert_eq!(next_message(&mut phone).await.id, m1);
    eventually("phone's ack", || async { offline_count(&s, &admin, "bob").await == 0 }).await;
    phone.close().await;

    // The laptop has been seen before: it still gets m1 on its next login.
    let mut laptop = connect(&s, "bob", &tok, "laptop").await.unwrap();
    assert_eq!(next_message(&mut laptop).await.id, m1);
    laptop.close().await;

    // A device never seen before gets only what no device has acked: m2, not m1.
    let m2 = id_of(&s.send_text(&admin, "alice", &["bob"], "m2").await, "bob");
    let mut tablet = connect(&s, "bob", &tok, "tablet").await.unwrap();
    let first = next_message(&mut tablet).await;
    assert_eq!(first.id, m2, "a new device must not replay acked history");
}

#[tokio::test]
async fn route_online_sync_device_and_sdk_to_sdk() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    let (ta, tb) = (s.user_token("alice").await, s.user_token("bob").await);

    // ROUTE_ONLINE to an offline user stores nothing and never arrives.
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "online only"}, "routetype": "ROUTE_ONLINE"}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(offline_count(&s, &admin, "bob").await, 0);

    let mut bob = connect(&s, "bob", &tb, "b1").await.unwrap();
    let mut alice1 = connect(&s, "alice", &ta, "a1").await.unwrap();
    let mut alice2 = connect(&s, "alice", &ta, "a2").await.unwrap();

    // ROUTE_ONLINE to an online user arrives; sync_device copies reach the sender's devices.
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "hi"}, "routetype": "ROUTE_ONLINE", "sync_device": true}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let id = id_of(&b["data"], "bob");
    let got = next_message(&mut bob).await;
    assert_eq!((got.id, text_of(&got).as_str()), (id, "hi"), "the first thing bob gets is the online message");
    for dev in [&mut alice1, &mut alice2] {
        let copy = next_message(dev).await;
        assert_eq!(copy.id, id);
        assert_eq!(copy.queue, "bob", "the copy sits in the conversation with bob");
    }

    // SDK to SDK: acked with a server id, delivered with that id, copied to the sender's
    // other device but not back to the sending one.
    let ack = alice1.send("bob", text_body("alice", "bob", "from sdk", None)).await.expect("ack");
    let got = next_message(&mut bob).await;
    assert_eq!(got.id, ack.server_id);
    assert_eq!(got.from, "alice");
    assert_eq!(text_of(&got), "from sdk");
    let copy = next_message(&mut alice2).await;
    assert_eq!(copy.id, ack.server_id);

    // Receipts are forwarded to the peer.
    bob.send("alice", missive_msync::client::read_ack_body("bob", "alice", ack.server_id)).await.expect("receipt ack");
    let receipt = next_message(&mut alice1).await;
    let body = receipt.body.expect("body");
    assert_eq!(body.r#type, Some(pb::message_body::Type::ReadAck as i32));
    assert_eq!(body.ack_message_id, Some(ack.server_id));
    // SDK 5's receipt names the message in `ack_message_ids` only; the peer (SDK 4 reads
    // `ack_message_id`) gets it filled from the first.
    let mut sdk5 = missive_msync::client::read_ack_body("bob", "alice", 0);
    (sdk5.ack_message_id, sdk5.ack_message_ids) = (None, vec![ack.server_id]);
    bob.send("alice", sdk5).await.expect("receipt ack");
    let body = next_message(&mut alice1).await.body.expect("body");
    assert_eq!((body.ack_message_id, body.ack_message_ids), (Some(ack.server_id), vec![ack.server_id]));

    // An upload to an unknown user is refused with the SDK's USER_NOT_FOUND wording.
    let err = alice1.send("nobody", text_body("alice", "nobody", "x", None)).await.expect_err("refused");
    assert!(matches!(&err, ClientError::Rejected { code: 1, reason } if reason.contains("doesn't exist!")), "{err:?}");

    // Too large: PERMISSION_DENIED "Sorry, data is too large", and the socket stays up.
    let big = "x".repeat(s.config.limits.send_body_bytes + 1);
    let err = alice1.send("bob", text_body("alice", "bob", &big, None)).await.expect_err("refused");
    assert!(
        matches!(&err, ClientError::Rejected { code: 7, reason } if reason == "Sorry, data is too large"),
        "{err:?}"
    );
    let ack = alice1.send("bob", text_body("alice", "bob", "still here", None)).await.expect("socket still up");
    assert_eq!(next_message(&mut bob).await.id, ack.server_id);
}

#[tokio::test]
async fn recall_of_a_delivered_message_reaches_the_device() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let mut bob = connect(&s, "bob", &s.user_token("bob").await, "b1").await.unwrap();
    let id = id_of(&s.send_text(&admin, "alice", &["bob"], "oops").await, "bob");
    assert_eq!(next_message(&mut bob).await.id, id);
    eventually("the ack", || async { offline_count(&s, &admin, "bob").await == 0 }).await;
    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": id.to_string(), "to": "bob", "from": "alice", "chat_type": "chat"}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let recall = next_message(&mut bob).await;
    let body = recall.body.expect("body");
    assert_eq!(body.r#type, Some(pb::message_body::Type::Recall as i32));
    assert_eq!(body.ack_message_id, Some(id));
}

#[tokio::test]
async fn kick_presence_and_resources() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["bob"]).await;
    let tok = s.user_token("bob").await;
    let (_, b) = s.get("/users/bob/status", Some(&admin)).await;
    assert_eq!(b["data"]["bob"], "offline");

    let mut phone = connect(&s, "bob", &tok, "phone_1").await.unwrap();
    let _laptop = connect(&s, "bob", &tok, "laptop_1").await.unwrap();
    let (_, b) = s.get("/users/bob/status", Some(&admin)).await;
    assert_eq!(b["data"]["bob"], "online");
    let (_, b) = s.post("/users/batch/status", Some(&admin), json!({"usernames": ["bob", "ghost"]})).await;
    assert_eq!(b["data"], json!([{"bob": "online"}, {"ghost": "offline"}]));
    let (_, b) = s.get("/users/bob/resources", Some(&admin)).await;
    let mut res: Vec<String> =
        b["data"].as_array().unwrap().iter().map(|d| d["res"].as_str().unwrap().to_owned()).collect();
    res.sort();
    assert_eq!(res, ["laptop_1", "phone_1"]);

    // Kicking one device: it is told why, then closed; the other stays.
    let (st, b) = s.delete("/users/bob/disconnect/phone_1", Some(&admin)).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["result"], true);
    match timeout(WAIT, phone.next_event()).await {
        Ok(Some(ClientEvent::Kicked { operation, .. })) => {
            assert_eq!(operation, pb::statistics_body::Operation::UserKickedByOtherDevice as i32)
        }
        other => panic!("expected a kick, got {other:?}"),
    }
    eventually("the kicked device to leave", || async {
        let (_, b) = s.get("/users/bob/resources", Some(&admin)).await;
        b["data"].as_array().unwrap().len() == 1
    })
    .await;

    // Changing the password kicks every device.
    let (st, _) = s.put("/users/bob/password", Some(&admin), json!({"newpassword": "new"})).await;
    assert_eq!(st, 200);
    eventually("all devices to leave", || async {
        let (_, b) = s.get("/users/bob/status", Some(&admin)).await;
        b["data"]["bob"] == "offline"
    })
    .await;
}

#[tokio::test]
async fn malformed_frames_and_idle_connections_are_closed_alone() {
    let s = TestServer::start_with(|c| c.sessions.idle_timeout_secs = 1).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let (ta, tb) = (s.user_token("alice").await, s.user_token("bob").await);
    let opts = || ClientOptions { heartbeat: Duration::from_millis(300), ..Default::default() };
    let mut bob = connect_with(&s, "bob", &tb, "b1", opts()).await.unwrap();
    let mut alice = connect_with(&s, "alice", &ta, "a1", opts()).await.unwrap();

    // Garbage closes only the connection that sent it.
    alice.send_raw_frame(vec![0xff, 0xff, 0xff, 0x01, 0x02]).await.unwrap();
    match timeout(WAIT, alice.next_event()).await {
        Ok(Some(ClientEvent::Closed { .. })) | Ok(None) => {}
        other => panic!("expected the malformed connection to close, got {other:?}"),
    }
    let id = id_of(&s.send_text(&admin, "alice", &["bob"], "bob is fine").await, "bob");
    assert_eq!(next_message(&mut bob).await.id, id);

    // A connection that heartbeats stays past the idle timeout; a silent one is closed.
    let silent = ClientOptions { heartbeat: Duration::from_secs(3600), ..Default::default() };
    let mut quiet = connect_with(&s, "alice", &ta, "a2", silent).await.unwrap();
    match timeout(WAIT, quiet.next_event()).await {
        Ok(Some(ClientEvent::Closed { .. })) | Ok(None) => {}
        other => panic!("expected the idle connection to close, got {other:?}"),
    }
    let id = id_of(&s.send_text(&admin, "alice", &["bob"], "still heartbeating").await, "bob");
    assert_eq!(next_message(&mut bob).await.id, id);
}

#[tokio::test]
async fn a_stuck_client_is_disconnected_and_never_slows_others() {
    let s = TestServer::start_with(|c| c.sessions.max_online_pending = 16).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "stuck"]).await;
    let mut bob = connect(&s, "bob", &s.user_token("bob").await, "b1").await.unwrap();
    // The stuck client logs in over a raw socket and then never reads or pulls again.
    let stuck = raw_login(&s, "stuck", &s.user_token("stuck").await).await;
    for i in 0..40 {
        let (st, b) = s
            .post(
                "/messages/users",
                Some(&admin),
                json!({"from": "alice", "to": ["stuck"], "type": "txt", "body": {"msg": format!("m{i}")}, "routetype": "ROUTE_ONLINE"}),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let mut last = 0;
    for i in 0..50 {
        last = id_of(&s.send_text(&admin, "alice", &["bob", "stuck"], &format!("n{i}")).await, "bob");
    }
    // Bob got everything, in order.
    let mut prev = 0;
    loop {
        let m = next_message(&mut bob).await;
        assert!(m.id > prev);
        prev = m.id;
        if m.id == last {
            break;
        }
    }
    // The stuck session was cut off instead of buffering without bound.
    eventually("the stuck session to be dropped", || async {
        let (_, b) = s.get("/users/stuck/status", Some(&admin)).await;
        b["data"]["stuck"] == "offline"
    })
    .await;
    drop(stuck);
}

/// Logs in with a bare WebSocket (the PROVISION frame the SDK sends) and returns the socket
/// unread: a client that stops reading.
async fn raw_login(
    s: &TestServer,
    user: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures_util::{SinkExt, StreamExt};
    use prost::Message as _;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.expect("ws connect");
    let provision = pb::Provision { resource: Some("raw".into()), ..Default::default() };
    let env = pb::MSync {
        command: Some(pb::m_sync::Command::Provision as i32),
        guid: Some(pb::Jid {
            app_key: Some(s.app_key()),
            name: Some(user.into()),
            domain: Some("easemob.com".into()),
            client_resource: Some("raw".into()),
        }),
        auth: Some(format!("$t${token}")),
        payload: Some(provision.encode_to_vec().into()),
        ..Default::default()
    };
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(env.encode_to_vec().into())).await.expect("send provision");
    let reply = timeout(WAIT, ws.next()).await.expect("provision reply in time").expect("frame").expect("ok frame");
    let env = pb::MSync::decode(reply.into_data()).expect("msync");
    let p = pb::Provision::decode(env.payload.unwrap_or_default()).expect("provision");
    assert_eq!(p.status.and_then(|s| s.error_code), Some(0), "raw login accepted");
    ws
}

#[tokio::test]
async fn offline_cap_evicts_oldest_and_retention_sweeps_and_unread_counts_per_queue() {
    let s = TestServer::start_with(|c| {
        c.queue.max_offline_per_user = 3;
        c.queue.retention_secs = 2;
        c.queue.sweep_interval_secs = 1;
    })
    .await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "carol", "bob"]).await;

    // Five offline messages, cap three: the oldest two are evicted.
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(id_of(&s.send_text(&admin, "alice", &["bob"], &format!("a{i}")).await, "bob"));
    }
    assert_eq!(offline_count(&s, &admin, "bob").await, 3);
    let carol = id_of(&s.send_text(&admin, "carol", &["bob"], "c0").await, "bob");
    // The cap is per user, across conversations: now alice's a2 is gone too.
    assert_eq!(offline_count(&s, &admin, "bob").await, 3);

    // UNREAD reports real per-queue counts for this device.
    let opts = ClientOptions { auto_ack: false, ..Default::default() };
    let bob = connect_with(&s, "bob", &s.user_token("bob").await, "counting", opts).await.unwrap();
    let mut unread = bob.unread().await.expect("unread");
    unread.sort();
    assert_eq!(unread, vec![("alice".to_owned(), 2), ("carol".to_owned(), 1)]);
    bob.close().await;

    let (_, b) = s.get(&format!("/users/bob/offline_msg_status/{}", sent[0]), Some(&admin)).await;
    assert_eq!(b["data"][sent[0].to_string()], "delivered", "evicted messages are no longer pending");
    let (_, b) = s.get(&format!("/users/bob/offline_msg_status/{carol}"), Some(&admin)).await;
    assert_eq!(b["data"][carol.to_string()], "undelivered");

    // Past retention the sweeper removes them.
    eventually("retention to sweep the queue", || async { offline_count(&s, &admin, "bob").await == 0 }).await;
}

#[tokio::test]
async fn concurrent_sends_in_one_conversation_all_reach_an_acking_device() {
    // Concurrent sends in one conversation commit in some order while the device acks by
    // key: no message may fall behind the device's ack position and be skipped.
    let s = TestServer::start_with(|c| {
        c.limits.send_calls_per_second = 0;
        c.limits.send_messages_per_minute = 0;
    })
    .await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let mut bob = connect(&s, "bob", &s.user_token("bob").await, "b1").await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (http, url, admin) = (s.http.clone(), s.url("/messages/users"), admin.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..40 {
                let r = http
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": format!("{t}-{i}")}}))
                    .send()
                    .await
                    .unwrap();
                let v: Value = r.json().await.unwrap();
                ids.push(id_of(&v["data"], "bob"));
            }
            ids
        }));
    }
    let mut sent = std::collections::BTreeSet::new();
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    let mut got = std::collections::BTreeSet::new();
    while got.len() < sent.len() {
        let m = next_message(&mut bob).await;
        got.insert(m.id);
    }
    assert_eq!(got, sent);
    eventually("every message acked", || async { offline_count(&s, &admin, "bob").await == 0 }).await;
}

type RawSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One pull over a raw socket: sends `CommSyncUL{queue, key}` and returns the ids of the
/// answer's metas and its `is_last`, skipping NOTICEs that arrive meanwhile.
async fn raw_pull(ws: &mut RawSocket, s: &TestServer, queue: &str, key: Option<u64>) -> (Vec<u64>, bool) {
    use futures_util::{SinkExt, StreamExt};
    use pb::m_sync::Command;
    use prost::Message as _;
    let jid = pb::Jid {
        app_key: Some(s.app_key()),
        name: Some(queue.into()),
        domain: Some("easemob.com".into()),
        ..Default::default()
    };
    let ul = pb::CommSyncUl { queue: Some(jid), key, ..Default::default() };
    let env = pb::MSync {
        command: Some(Command::Sync as i32),
        payload: Some(ul.encode_to_vec().into()),
        ..Default::default()
    };
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(env.encode_to_vec().into())).await.expect("send pull");
    loop {
        let frame = timeout(WAIT, ws.next()).await.expect("pull answer in time").expect("frame").expect("ok frame");
        let env = pb::MSync::decode(frame.into_data()).expect("msync");
        if env.command != Some(Command::Sync as i32) {
            continue;
        }
        let dl = pb::CommSyncDl::decode(env.payload.unwrap_or_default()).expect("sync dl");
        if dl.queue.as_ref().and_then(|q| q.name.as_deref()) != Some(queue) {
            continue;
        }
        return (dl.metas.iter().filter_map(|m| m.id).collect(), dl.is_last.unwrap_or(false));
    }
}

/// Pulls `queue` the way the SDK does (each pull acks the previous answer) until it is empty.
async fn raw_drain(ws: &mut RawSocket, s: &TestServer, queue: &str) -> Vec<u64> {
    let mut got = Vec::new();
    let mut key = None;
    loop {
        let (ids, last) = raw_pull(ws, s, queue, key).await;
        if last {
            assert!(ids.is_empty(), "metas never come with is_last:true");
            return got;
        }
        key = ids.last().copied();
        got.extend(ids);
    }
}

#[tokio::test]
async fn a_device_that_falls_behind_memory_is_served_from_the_store_in_order_exactly_once() {
    // An online device is served from memory once the store has nothing more for it; when
    // more arrives than a session may hold (here 8) while it is not pulling, the session
    // drops what it has not sent and reads it back from the store.
    let s = TestServer::start_with(|c| {
        c.sessions.max_online_pending = 8;
        c.queue.pull_batch = 5;
        c.limits.send_calls_per_second = 0;
        c.limits.send_messages_per_minute = 0;
    })
    .await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let mut ws = raw_login(&s, "bob", &s.user_token("bob").await).await;
    assert_eq!(raw_drain(&mut ws, &s, "alice").await, Vec::<u64>::new());

    // A few while it is caught up: answered from memory.
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(id_of(&s.send_text(&admin, "alice", &["bob"], &format!("a{i}")).await, "bob"));
    }
    assert_eq!(raw_drain(&mut ws, &s, "alice").await, sent);

    // Forty while it does not pull: more than the session holds.
    let mut more = Vec::new();
    for i in 0..40 {
        more.push(id_of(&s.send_text(&admin, "alice", &["bob"], &format!("b{i}")).await, "bob"));
    }
    assert_eq!(raw_drain(&mut ws, &s, "alice").await, more, "all forty, in order, once");

    // Caught up again: the next message arrives, and a recalled one never goes out.
    let kept = id_of(&s.send_text(&admin, "alice", &["bob"], "kept").await, "bob");
    let recalled = id_of(&s.send_text(&admin, "alice", &["bob"], "recalled").await, "bob");
    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": recalled.to_string(), "to": "bob", "from": "alice", "chat_type": "chat"}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(raw_drain(&mut ws, &s, "alice").await, vec![kept]);
    // Acks are committed in the background (the next pull does not wait for their fsync).
    eventually("every ack to reach the store", || async { offline_count(&s, &admin, "bob").await == 0 }).await;
}
