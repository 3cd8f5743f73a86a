//! Post-send callbacks end to end: a local HTTP receiver stands in for the app server, rules
//! are managed with the CLI beside the running server and with the REST API, and what
//! arrives is checked field by field (easemob-api.md §6.3).
//!
//! Tests that check something did *not* arrive run the dispatcher one delivery at a time
//! (`callbacks.max_in_flight = 1`): entries then go out strictly in the order they were
//! written, so once a later message's callback has arrived, an earlier one that was never
//! sent is known never to have been written.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use missive_core::id::now_ms;
use missive_msync::client::text_body;
use missive_msync::{ClientOptions, Login, MsyncClient};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ProcessServer, TestData, TestServer, eventually};
use crate::receiver::{self, Answer, Receiver, signature};

/// How often `applied` sends a probe.
const PROBE_EVERY: Duration = Duration::from_millis(50);

async fn server(tune: impl FnOnce(&mut missive_server::Config)) -> (TestServer, String) {
    let s = TestServer::start_with(|c| {
        c.callbacks.max_in_flight = 1;
        tune(c);
    })
    .await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    (s, admin)
}

/// Runs the CLI; its stdout as JSON lines.
fn cli(s: &TestServer, args: &[&str]) -> Vec<Value> {
    let out = s.missive(args).output().expect("run missive");
    assert!(out.status.success(), "missive {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Callback bodies `rx` got at `path` for message `id`.
fn bodies_for(rx: &Receiver, path: &str, id: &str) -> Vec<Value> {
    rx.at(path).iter().map(|r| r.json()).filter(|b| b["msg_id"] == id).collect()
}

async fn sdk_client(s: &TestServer, user: &str) -> MsyncClient {
    let token = s.user_token(user).await;
    let login = Login {
        url: s.ws_url(),
        app_key: s.app_key(),
        user: user.into(),
        token,
        resource: Some(format!("{user}-dev")),
    };
    MsyncClient::connect(login, ClientOptions::default()).await.expect("login")
}

async fn post_rule(s: &TestServer, admin: &str, rule: Value) -> Value {
    let (st, b) = s.post("/callbacks", Some(admin), rule).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["entities"][0].clone()
}

/// Exception storage of the test app: (date, size, retry) per slice.
async fn slices(s: &TestServer, admin: &str) -> Vec<(String, u64, u64)> {
    let (st, b) = s.get("/callbacks/storage/info", Some(admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| (x["date"].as_str().unwrap().to_owned(), x["size"].as_u64().unwrap(), x["retry"].as_u64().unwrap()))
        .collect()
}

/// How long after `since` a rule that reports REST messages to `path` started working:
/// sends a probe (alice → carol) every 50 ms until one's callback arrives.
async fn applied(s: &TestServer, admin: &str, rx: &Receiver, path: &str, since: Instant) -> Duration {
    let mut probes: Vec<(String, Duration)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen: BTreeSet<String> =
            rx.at(path).iter().filter_map(|r| r.json()["msg_id"].as_str().map(str::to_owned)).collect();
        if let Some((_, at)) = probes.iter().find(|(id, _)| seen.contains(id)) {
            return *at;
        }
        assert!(Instant::now() < deadline, "the rule never took effect");
        let at = since.elapsed();
        let ids = s.send_text(admin, "alice", &["carol"], "probe").await;
        probes.push((ids["carol"].as_str().unwrap().to_owned(), at));
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

#[tokio::test]
async fn post_send_callbacks_carry_easemobs_payload_and_a_valid_signature() {
    let rx = receiver::http1(|_| Answer::ok()).await;
    let (s, admin) = server(|_| {}).await;

    // Added with the CLI beside the running server: in effect within a second.
    let url = rx.url("/cb");
    let args = ["app", "callback", "add", "testorg", "testapp", "--url", &url, "--secret", "s3cret"];
    let added = cli(&s, &[&args[..], &["--events", "chat,chat_offline", "--name", "main"]].concat());
    let since = Instant::now();
    assert_eq!(added.len(), 1);
    let rule = &added[0];
    assert!(rule["id"].as_str().is_some_and(|id| id.len() == 36), "{rule}");
    assert_eq!((&rule["name"], &rule["secret"], &rule["url"]), (&json!("main"), &json!("s3cret"), &json!(url)));
    assert_eq!((&rule["events"], &rule["include_rest"]), (&json!(["chat", "chat_offline"]), &json!(true)));
    let lag = applied(&s, &admin, &rx, "/cb", since).await;
    assert!(lag < Duration::from_secs(1) + PROBE_EVERY, "the running server took {lag:?} to apply the rule");

    // bob has no device online: `chat` and, once, `chat_offline`.
    let t0 = now_ms() as i64;
    let id = s.send_text(&admin, "alice", &["bob"], "hello").await["bob"].as_str().unwrap().to_owned();
    eventually("both callbacks of the message", || async { bodies_for(&rx, "/cb", &id).len() >= 2 }).await;
    let got = bodies_for(&rx, "/cb", &id);
    let of = |kind: &str| got.iter().filter(|b| b["eventType"] == kind).cloned().collect::<Vec<_>>();
    let (chat, offline) = (of("chat"), of("chat_offline"));
    assert_eq!((chat.len(), offline.len()), (1, 1), "{got:?}");
    for (body, event) in [(&chat[0], "chat"), (&offline[0], "chat_offline")] {
        let ts = body["timestamp"].as_i64().expect("timestamp");
        assert!(ts >= t0 && ts <= now_ms() as i64, "timestamp {ts}");
        let expected = json!({
            "callId": format!("testorg#testapp_{id}"), "eventType": event, "timestamp": ts, "chat_type": "chat",
            "from": "alice", "to": "bob", "msg_id": id,
            "payload": {"ext": {}, "bodies": [{"type": "txt", "msg": "hello"}]},
            "securityVersion": "1.0.0", "security": signature(body, "s3cret"),
            "appkey": "testorg#testapp", "host": "missive@0", "content_type": "chat:user:text",
        });
        assert_eq!(body, &expected);
    }
    let request = rx.at("/cb").into_iter().find(|r| r.json()["msg_id"] == id.as_str()).unwrap();
    assert_eq!((request.method.as_str(), request.header("content-type")), ("POST", "application/json"));

    // bob online: `chat` only. Then a message to carol, offline, whose callbacks come after.
    let _bob = sdk_client(&s, "bob").await;
    let online = s.send_text(&admin, "alice", &["bob"], "online").await["bob"].as_str().unwrap().to_owned();
    let marker = s.send_text(&admin, "alice", &["carol"], "marker").await["carol"].as_str().unwrap().to_owned();
    eventually("the marker's callbacks", || async { bodies_for(&rx, "/cb", &marker).len() >= 2 }).await;
    let events: Vec<Value> = bodies_for(&rx, "/cb", &online).iter().map(|b| b["eventType"].clone()).collect();
    assert_eq!(events, [json!("chat")], "no chat_offline for an online recipient");
    // One callback per message and event, however many attempts it took.
    let mut seen = BTreeSet::new();
    for b in rx.at("/cb").iter().map(|r| r.json()) {
        assert!(seen.insert((b["callId"].to_string(), b["eventType"].to_string())), "delivered twice: {b}");
    }

    // list and remove.
    let listed = cli(&s, &["app", "callback", "list", "testorg", "testapp"]);
    assert_eq!(listed, added);
    cli(&s, &["app", "callback", "remove", "testorg", "testapp", rule["id"].as_str().unwrap()]);
    let (st, b) = s.get("/callbacks", Some(&admin)).await;
    assert_eq!((st, &b["count"]), (StatusCode::OK, &json!(0)), "{b}");
    let out = s.missive(&["app", "callback", "remove", "testorg", "testapp", "main"]).output().unwrap();
    assert!(!out.status.success(), "removing what is gone fails");
}

#[tokio::test]
async fn rules_include_or_leave_out_rest_messages() {
    let rx = receiver::http1(|_| Answer::ok()).await;
    let (s, admin) = server(|_| {}).await;
    let sdk_only = post_rule(
        &s,
        &admin,
        json!({"name": "sdk-only", "targetUrl": rx.url("/sdk"), "secret": "b", "msgTypes": ["chat"], "acceptRestMessage": false}),
    )
    .await;
    assert_eq!((&sdk_only["acceptRestMessage"], &sdk_only["status"]), (&json!(false), &json!(1)), "{sdk_only}");
    assert_eq!(sdk_only["interested"], json!(["chat", "groupchat", "chatroom", "recall", "read_ack"]));
    post_rule(
        &s,
        &admin,
        json!({"name": "all", "targetUrl": rx.url("/all"), "secret": "a", "msgTypes": ["chat"], "acceptRestMessage": true}),
    )
    .await;
    let (_, list) = s.get("/callbacks", Some(&admin)).await;
    let flags: BTreeSet<(String, bool)> = list["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["acceptRestMessage"].as_bool().unwrap()))
        .collect();
    assert_eq!(flags, BTreeSet::from([("sdk-only".to_owned(), false), ("all".to_owned(), true)]));
    // A restart loads the rules before serving.
    let s = s.restart().await;

    let rest = s.send_text(&admin, "alice", &["bob"], "from rest").await["bob"].as_str().unwrap().to_owned();
    let alice = sdk_client(&s, "alice").await;
    let sdk = alice.send("bob", text_body("alice", "bob", "from sdk", None)).await.expect("upload acked");
    let sdk = sdk.server_id.to_string();
    eventually("the SDK message at both rules", || async {
        !bodies_for(&rx, "/sdk", &sdk).is_empty() && !bodies_for(&rx, "/all", &sdk).is_empty()
    })
    .await;
    assert_eq!(bodies_for(&rx, "/all", &rest).len(), 1, "REST messages reach a rule that accepts them");
    assert!(bodies_for(&rx, "/sdk", &rest).is_empty(), "and not one that leaves them out");
    let body = &bodies_for(&rx, "/sdk", &sdk)[0];
    assert_eq!(
        (&body["from"], &body["to"], &body["payload"]["bodies"][0]["msg"]),
        (&json!("alice"), &json!("bob"), &json!("from sdk"))
    );
    assert_eq!(body["security"], signature(body, "b"));

    // PUT changes only what it names; DELETE by name.
    let (st, b) = s.put("/callbacks/sdk-only", Some(&admin), json!({"acceptRestMessage": true})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let changed = &b["entities"][0];
    assert_eq!(
        (&changed["acceptRestMessage"], &changed["secret"], &changed["id"]),
        (&json!(true), &json!("b"), &sdk_only["id"])
    );
    let (st, b) = s.delete("/callbacks/all", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, _) = s.delete("/callbacks/all", Some(&admin)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, b) = s.post("/callbacks", Some(&admin), json!({"name": "sdk-only", "targetUrl": rx.url("/x")})).await;
    assert_eq!((st, &b["error"]), (StatusCode::BAD_REQUEST, &json!("duplicate_unique_property_exists")), "{b}");
    let (st, b) = s.post("/callbacks", Some(&admin), json!({"targetUrl": "ftp://nope"})).await;
    assert_eq!((st, &b["error"]), (StatusCode::BAD_REQUEST, &json!("illegal_argument")), "{b}");
    let user = s.user_token("alice").await;
    let (st, _) = s.get("/callbacks", Some(&user)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "rules are the app's, not a user's");
}

#[tokio::test]
async fn a_failing_receiver_gets_one_retry_then_exception_storage_which_retry_resends() {
    let rx = receiver::http1(|r| if r.path == "/fail" { Answer::json(500, "{}") } else { Answer::ok() }).await;
    let (s, admin) = server(|_| {}).await;
    post_rule(
        &s,
        &admin,
        json!({"name": "keep", "targetUrl": rx.url("/fail"), "secret": "k", "msgTypes": ["chat"],
               "retry": {"backoff_ms": [], "keep_exceptions": true}}),
    )
    .await;
    let s = s.restart().await;

    let id = s.send_text(&admin, "alice", &["bob"], "lost?").await["bob"].as_str().unwrap().to_owned();
    eventually("a slice in exception storage", || async { !slices(&s, &admin).await.is_empty() }).await;
    let attempts = bodies_for(&rx, "/fail", &id);
    assert_eq!(attempts.len(), 2, "the first attempt and Easemob's one immediate retry");
    assert_eq!(attempts[0], attempts[1], "the retry is the same callback");
    let stored = slices(&s, &admin).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (date, size, retry) = stored[0].clone();
    assert_eq!((size, retry), (1, 0));
    assert!(date.len() == 12 && date.ends_with('0'), "a 10-minute slice key: {date}");

    let (st, b) = s.post("/callbacks/storage/retry", Some(&admin), json!({"date": "209901010000", "retry": 0})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "no such slice: {b}");
    let (st, b) = s
        .post(
            "/callbacks/storage/retry",
            Some(&admin),
            json!({"date": date, "retry": 0, "targetUrl": rx.url("/replay")}),
        )
        .await;
    assert_eq!((st, &b["data"]), (StatusCode::OK, &json!("success")), "{b}");
    eventually("the re-sent callback", || async { !bodies_for(&rx, "/replay", &id).is_empty() }).await;
    let replayed = &bodies_for(&rx, "/replay", &id)[0];
    assert_eq!(replayed["callId"], format!("testorg#testapp_{id}"));
    assert_eq!(replayed["security"], signature(replayed, "k"));
    eventually("the delivered record to leave storage", || async { slices(&s, &admin).await.is_empty() }).await;
}

#[tokio::test]
async fn repeated_failures_ban_the_rule_and_nothing_is_sent_while_banned() {
    let rx = receiver::http1(|_| Answer::json(500, "{}")).await;
    let (s, admin) = server(|c| {
        c.callbacks.ban_max_failures = 4;
        c.callbacks.ban_window_ms = 600_000;
        c.callbacks.ban_step_ms = 600_000;
    })
    .await;
    let rule = post_rule(
        &s,
        &admin,
        json!({"name": "flaky", "targetUrl": rx.url("/cb"), "secret": "f", "msgTypes": ["chat"],
               "retry": {"backoff_ms": [], "keep_exceptions": true}}),
    )
    .await;
    assert_eq!(rule["bannedUntil"], Value::Null);
    let s = s.restart().await;

    for text in ["one", "two"] {
        s.send_text(&admin, "alice", &["bob"], text).await;
    }
    eventually("four failed attempts", || async { rx.requests().len() >= 4 }).await;
    let before = now_ms() as i64;
    eventually("the ban to show on the rule", || async {
        let (_, b) = s.get("/callbacks", Some(&admin)).await;
        b["entities"][0]["bannedUntil"].as_i64().is_some_and(|until| until > before)
    })
    .await;
    let third = s.send_text(&admin, "alice", &["bob"], "three").await["bob"].as_str().unwrap().to_owned();
    eventually("all three callbacks kept", || async {
        slices(&s, &admin).await.iter().map(|(_, size, _)| size).sum::<u64>() == 3
    })
    .await;
    assert_eq!(rx.requests().len(), 4, "nothing was sent to the banned endpoint");
    assert!(bodies_for(&rx, "/cb", &third).is_empty());
}

/// `kill -9` while callbacks are in flight: every accepted message's callback arrives after
/// the restart.
#[tokio::test]
async fn callbacks_survive_kill_9_between_accept_and_delivery() {
    // Until the crash the app server accepts requests and never answers.
    let rx = receiver::http1(|_| Answer::ok().after(Duration::from_secs(300))).await;
    let data = TestData::new().await;
    let creds = data.create_app("crash", "app");
    let url = rx.url("/cb");
    let out = data
        .missive(&["app", "callback", "add", "crash", "app", "--url", &url, "--secret", "x", "--events", "chat"])
        .output()
        .expect("run missive");
    assert!(out.status.success(), "callback add without a server: {}", String::from_utf8_lossy(&out.stderr));
    // Short leases, so the restarted server takes over the dead one's entries quickly.
    let env = [("MISSIVE_CALLBACKS__LEASE_SECS", "2"), ("MISSIVE_CALLBACKS__TIMEOUT_MS", "60000")];
    let mut server = ProcessServer::start_env(&data, &env).await;
    let http = crate::common::http();
    let base = |addr: std::net::SocketAddr| format!("http://{addr}/crash/app");
    let (_, b) = call(
        &http,
        &base(server.addr),
        "/token",
        None,
        json!({"grant_type": "client_credentials",
        "client_id": creds["client_id"], "client_secret": creds["client_secret"]}),
    )
    .await;
    let admin = b["access_token"].as_str().expect("token").to_owned();
    let users = json!([{"username": "alice", "password": "a"}, {"username": "bob", "password": "b"}]);
    let (st, b) = call(&http, &base(server.addr), "/users", Some(&admin), users).await;
    assert_eq!(st, 200, "{b}");
    let mut ids = Vec::new();
    for i in 0..20 {
        let msg = json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": format!("m{i}")}});
        let (st, b) = call(&http, &base(server.addr), "/messages/users", Some(&admin), msg).await;
        assert_eq!(st, 200, "{b}");
        ids.push(b["data"]["bob"].as_str().unwrap().to_owned());
    }
    eventually("callbacks in flight", || async { !rx.requests().is_empty() }).await;
    server.kill9();
    // Everything the receiver got so far is still waiting for its (never sent) answer.
    let before_crash = rx.requests().len();

    rx.answer_with(|_| Answer::ok());
    let _server = ProcessServer::start_env(&data, &env).await;
    let delivered = || {
        rx.requests()[before_crash..]
            .iter()
            .filter_map(|r| r.json()["msg_id"].as_str().map(str::to_owned))
            .collect::<BTreeSet<_>>()
    };
    eventually("every callback after the restart", || async { ids.iter().all(|id| delivered().contains(id)) }).await;
    for r in &rx.requests()[before_crash..] {
        let body = r.json();
        assert_eq!(body["security"], signature(&body, "x"));
    }
}

async fn call(http: &reqwest::Client, base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = http.post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or(Value::Null))
}
