//! Acknowledged means durable: messages that got a 200 (REST) or an upload ack (MSYNC) are
//! delivered after the server process is killed with SIGKILL and started again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use missive_msync::client::text_body;
use missive_msync::{ClientEvent, ClientOptions, Login, MsyncClient};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{ProcessServer, TestData};

/// `missive app create` against the test's store; returns (client_id, client_secret).
fn create_app(data: &TestData) -> (String, String) {
    let v = data.create_app("durable", "app");
    assert_eq!(v["org"], "durable");
    assert!(v["application"].as_str().is_some_and(|a| a.len() == 36));
    (v["client_id"].as_str().unwrap().into(), v["client_secret"].as_str().unwrap().into())
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{}", self.base, path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        match r.send().await {
            Ok(res) => {
                let st = res.status().as_u16();
                (st, res.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let dir = TestData::new().await;
    let (cid, secret) = create_app(&dir);
    let mut server = ProcessServer::start(&dir).await;
    let api = Arc::new(Api { base: format!("http://{}/durable/app", server.addr), http: crate::common::http() });
    let (_, b) = api
        .post("/token", None, json!({"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}))
        .await;
    let admin = b["access_token"].as_str().expect("token").to_owned();
    let (st, b) = api
        .post(
            "/users",
            Some(&admin),
            json!([{"username": "alice", "password": "a"}, {"username": "bob", "password": "b"}]),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (_, b) =
        api.post("/token", None, json!({"grant_type": "password", "username": "alice", "password": "a"})).await;
    let alice_token = b["access_token"].as_str().unwrap().to_owned();

    // One message acked over MSYNC before the crash.
    let login = |addr: std::net::SocketAddr, user: &str, token: &str| Login {
        url: format!("ws://{addr}/websocket"),
        app_key: "durable#app".into(),
        user: user.into(),
        token: token.into(),
        resource: Some(format!("{user}-dev")),
    };
    let alice =
        MsyncClient::connect(login(server.addr, "alice", &alice_token), ClientOptions::default()).await.unwrap();
    let sdk_ack = alice.send("bob", text_body("alice", "bob", "via sdk", None)).await.expect("upload acked");

    // Four concurrent senders push REST messages; the process is killed while they run.
    let mut senders = Vec::new();
    for s in 0..4 {
        let api = api.clone();
        let admin = admin.clone();
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..1000 {
                let (st, b) = api
                    .post(
                        "/messages/users",
                        Some(&admin),
                        json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": format!("{s}-{i}")}}),
                    )
                    .await;
                match st {
                    200 => acked.push(b["data"]["bob"].as_str().unwrap().parse::<u64>().unwrap()),
                    0 => break, // connection refused or reset: the server is gone
                    other => panic!("unexpected status {other}: {b}"),
                }
            }
            acked
        }));
    }
    // Kill once a good number of sends have been acknowledged (count read from the server).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, b) = api
            .post(
                "/token",
                None,
                json!({"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}),
            )
            .await;
        let tok = b["access_token"].as_str().unwrap_or_default().to_owned();
        let res =
            api.http.get(format!("{}/users/bob/offline_msg_count", api.base)).bearer_auth(&tok).send().await.unwrap();
        let v: Value = res.json().await.unwrap();
        if v["data"]["bob"].as_u64().unwrap_or(0) >= 300 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "senders made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let mut acked = BTreeSet::new();
    // Which sender task each acknowledged id came from: a task sends one message after the
    // other, so its messages must arrive in the order it sent them. The four tasks send at
    // the same time, so between them there is no order to keep (delivery follows commit order).
    let mut task_of = std::collections::HashMap::new();
    for (task, s) in senders.into_iter().enumerate() {
        for id in s.await.unwrap() {
            task_of.insert(id, task);
            acked.insert(id);
        }
    }
    acked.insert(sdk_ack.server_id);
    assert!(acked.len() >= 300, "acked {}", acked.len());

    // Restart on the same data directory; bob drains his queue.
    let server = ProcessServer::start(&dir).await;
    let (_, b) = Api { base: format!("http://{}/durable/app", server.addr), http: crate::common::http() }
        .post("/token", None, json!({"grant_type": "password", "username": "bob", "password": "b"}))
        .await;
    let bob_token = b["access_token"].as_str().unwrap().to_owned();
    let mut bob = MsyncClient::connect(login(server.addr, "bob", &bob_token), ClientOptions::default()).await.unwrap();
    let mut received = BTreeSet::new();
    let mut last_of_task = std::collections::HashMap::new();
    while !acked.is_subset(&received) {
        match timeout(Duration::from_secs(10), bob.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) => {
                if let Some(task) = task_of.get(&m.id) {
                    let last = last_of_task.entry(*task).or_insert(0);
                    assert!(m.id > *last, "sender {task}'s messages out of order");
                    *last = m.id;
                }
                received.insert(m.id);
            }
            other => panic!("lost {} acknowledged messages; last event {other:?}", acked.difference(&received).count()),
        }
    }
    println!("kills: 1, acked: {}, delivered: {}, lost: 0", acked.len(), received.len());
}
