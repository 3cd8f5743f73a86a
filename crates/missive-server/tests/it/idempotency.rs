//! `Idempotency-Key` on sends (a Missive extension): a retry within the window returns the
//! same ids and stores nothing new — concurrently, across a crash, and on the legacy API.

use serde_json::{Value, json};

use crate::common::{ProcessServer, TestServer, http};

async fn keyed_send(s: &TestServer, admin: &str, key: &str, path: &str, body: Value) -> (u16, Value) {
    let r =
        s.http.post(s.url(path)).bearer_auth(admin).header("Idempotency-Key", key).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn txt(to: &[&str]) -> Value {
    json!({"from": "a", "to": to, "type": "txt", "body": {"msg": "once"}})
}

async fn count(s: &TestServer, admin: &str, user: &str) -> u64 {
    let (_, b) = s.get(&format!("/users/{user}/offline_msg_count"), Some(admin)).await;
    b["data"][user].as_u64().unwrap()
}

#[tokio::test]
async fn a_retried_send_returns_the_same_ids_and_stores_nothing_new() {
    let s = TestServer::start_with(|c| c.messages.idempotency_ttl_secs = 2).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["a", "b", "c"]).await;

    let (st, first) = keyed_send(&s, &admin, "order-42", "/messages/users", txt(&["b", "c"])).await;
    assert_eq!(st, 200, "{first}");
    let (st, again) = keyed_send(&s, &admin, "order-42", "/messages/users", txt(&["b", "c"])).await;
    assert_eq!(st, 200);
    assert_eq!(again["data"], first["data"]);
    assert_eq!(count(&s, &admin, "b").await, 1);

    // Ten concurrent retries of a new key: one send, one set of ids.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (http, url, admin) = (s.http.clone(), s.url("/messages/users"), admin.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(admin)
                .header("Idempotency-Key", "burst")
                .json(&txt(&["b"]))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["data"].clone()
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(count(&s, &admin, "b").await, 2);

    // The legacy API honours keys too, and a different key is a different message.
    let legacy = json!({"target_type": "users", "target": ["c"], "msg": {"type": "txt", "msg": "hi"}, "from": "a"});
    let (_, l1) = keyed_send(&s, &admin, "legacy-1", "/messages?useMsgId=true", legacy.clone()).await;
    let (_, l2) = keyed_send(&s, &admin, "legacy-1", "/messages?useMsgId=true", legacy.clone()).await;
    assert_eq!(l1["data"], l2["data"]);
    let (_, other) = keyed_send(&s, &admin, "order-43", "/messages/users", txt(&["b"])).await;
    assert_ne!(other["data"]["b"], first["data"]["b"]);

    // Malformed keys are refused.
    let (st, b) = keyed_send(&s, &admin, &"k".repeat(256), "/messages/users", txt(&["b"])).await;
    assert_eq!(st, 400, "{b}");

    // After the window the key is forgotten: the same request sends again.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await; // let the 2 s window pass
    let before = count(&s, &admin, "b").await;
    let (_, late) = keyed_send(&s, &admin, "order-42", "/messages/users", txt(&["b", "c"])).await;
    assert_ne!(late["data"]["b"], first["data"]["b"]);
    assert_eq!(count(&s, &admin, "b").await, before + 1);
}

#[tokio::test]
async fn keys_survive_a_crash() {
    let dir = crate::common::TestData::new().await;
    let app: Value = dir.create_app("i", "i");
    let run = |server: &ProcessServer, key: &'static str| {
        let base = format!("http://{}/i/i", server.addr);
        let app = app.clone();
        async move {
            let client = http();
            let tok: Value = client
                .post(format!("{base}/token"))
                .json(&json!({"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let admin = tok["access_token"].as_str().unwrap().to_owned();
            client
                .post(format!("{base}/users"))
                .bearer_auth(&admin)
                .json(&json!([{"username": "a", "password": "p"}, {"username": "b", "password": "p"}]))
                .send()
                .await
                .unwrap();
            let sent: Value = client
                .post(format!("{base}/messages/users"))
                .bearer_auth(&admin)
                .header("Idempotency-Key", key)
                .json(&txt(&["b"]))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let n: Value = client
                .get(format!("{base}/users/b/offline_msg_count"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (sent["data"].clone(), n["data"]["b"].as_u64().unwrap())
        }
    };
    let mut server = ProcessServer::start(&dir).await;
    let (first, n1) = run(&server, "crash-key").await;
    assert_eq!(n1, 1);
    server.kill9();
    let server = ProcessServer::start(&dir).await;
    let (again, n2) = run(&server, "crash-key").await;
    assert_eq!(again, first, "the retry after the crash gets the original ids");
    assert_eq!(n2, 1, "and nothing new was stored");
}
