//! Cluster mode: three `missive serve` processes on one PostgreSQL database and one NATS
//! server act as one server. Every test starts its own NATS (`nats-server` on a free port, so
//! it can be killed and restarted) and its own database, and checks what a client sees:
//! messages cross nodes at once, offline queues drain anywhere, presence, kicks and device
//! replacement work whichever node answers, quotas hold for the cluster, and neither a
//! node's SIGKILL nor a NATS restart loses a message.
//!
//! Needs PostgreSQL (`MISSIVE_TEST_PG_URL`, default 127.0.0.1:5432), `nats-server` on the
//! PATH or at /usr/sbin, and Redis on 127.0.0.1:6379 for the quota test — all of which
//! `.ci/run` provides. These tests run in both passes of the suite (they choose their store).

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use missive_msync::client::text_body;
use missive_msync::{ClientEvent, ClientOptions, Login, MsyncClient, Received};
use missive_store::postgres::ScratchDatabase;
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{ProcessServer, TestData, free_port, http};

/// A NATS server of this test, on a port of its own.
struct Nats {
    port: u16,
    child: Option<Child>,
}

impl Nats {
    fn start() -> Nats {
        let mut n = Nats { port: free_port(), child: None };
        n.spawn();
        n
    }

    fn program() -> &'static str {
        if std::path::Path::new("/usr/sbin/nats-server").exists() { "/usr/sbin/nats-server" } else { "nats-server" }
    }

    fn spawn(&mut self) {
        let child = Command::new(Nats::program())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (apt-get install nats-server)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three nodes (or more) on one database and one NATS, with the app `c/c`.
struct Cluster {
    db: ScratchDatabase,
    nats: Nats,
    name: String,
    env: Vec<(String, String)>,
    data: Vec<TestData>,
    nodes: Vec<Option<ProcessServer>>,
    creds: Value,
}

impl Cluster {
    async fn start(n: usize, extra_env: &[(&str, &str)]) -> Cluster {
        let admin = std::env::var("MISSIVE_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db = ScratchDatabase::create(&admin, "cluster").await.expect("PostgreSQL for the cluster tests");
        let nats = Nats::start();
        let name = format!("t{}", uuid::Uuid::new_v4().simple());
        let mut env: Vec<(String, String)> = vec![
            ("MISSIVE_CLUSTER__NATS_URL".into(), nats.url()),
            ("MISSIVE_CLUSTER__NAME".into(), name.clone()),
            ("MISSIVE_CLUSTER__PRESENCE_TTL_SECS".into(), "3".into()),
        ];
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let data: Vec<TestData> = (0..n).map(|_| TestData::sharing(&db.url)).collect();
        let creds = data[0].create_app("c", "c");
        let mut cluster = Cluster { db, nats, name, env, data, nodes: Vec::new(), creds };
        for i in 0..n {
            let node = cluster.spawn(i).await;
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    async fn spawn(&self, i: usize) -> ProcessServer {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ProcessServer::start_env(&self.data[i], &env).await
    }

    fn node(&self, i: usize) -> &ProcessServer {
        self.nodes[i].as_ref().expect("node running")
    }

    fn base(&self, i: usize) -> String {
        format!("http://{}/c/c", self.node(i).addr)
    }

    async fn admin(&self, i: usize) -> String {
        let body = json!({"grant_type": "client_credentials", "client_id": self.creds["client_id"], "client_secret": self.creds["client_secret"]});
        let (st, b) = post(format!("{}/token", self.base(i)), None, body).await;
        assert_eq!(st, 200, "{b}");
        b["access_token"].as_str().unwrap().to_owned()
    }

    async fn user_token(&self, i: usize, user: &str) -> String {
        let body = json!({"grant_type": "password", "username": user, "password": "pw"});
        let (st, b) = post(format!("{}/token", self.base(i)), None, body).await;
        assert_eq!(st, 200, "{b}");
        b["access_token"].as_str().unwrap().to_owned()
    }

    async fn register(&self, admin: &str, users: &[&str]) {
        let body: Vec<Value> = users.iter().map(|u| json!({"username": u, "password": "pw"})).collect();
        let (st, b) = post(format!("{}/users", self.base(0)), Some(admin), Value::Array(body)).await;
        assert_eq!(st, 200, "{b}");
    }

    async fn connect(&self, i: usize, user: &str, resource: &str) -> MsyncClient {
        let token = self.user_token(i, user).await;
        let login = Login {
            url: format!("ws://{}/websocket", self.node(i).addr),
            app_key: "c#c".into(),
            user: user.into(),
            token,
            resource: Some(resource.into()),
        };
        MsyncClient::connect(login, ClientOptions::default()).await.expect("login")
    }

    /// A REST send of a text through node `i`; the message id.
    async fn send(&self, i: usize, admin: &str, from: &str, to: &str, text: &str) -> u64 {
        let body = json!({"from": from, "to": [to], "type": "txt", "body": {"msg": text}});
        let (st, b) = post(format!("{}/messages/users", self.base(i)), Some(admin), body).await;
        assert_eq!(st, 200, "{b}");
        b["data"][to].as_str().unwrap().parse().unwrap()
    }

    async fn get(&self, i: usize, admin: &str, path: &str) -> Value {
        let r = http().get(format!("{}{path}", self.base(i))).bearer_auth(admin).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

async fn post(url: String, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = http().post(url).json(&body);
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

/// The next chat message this client receives, within `within` (kicks and closes fail).
async fn next_message(c: &mut MsyncClient, within: Duration) -> Received {
    loop {
        match timeout(within, c.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) if m.body.is_some() => return m,
            Ok(Some(ClientEvent::Message(_))) => continue,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

fn text(m: &Received) -> String {
    m.body.as_ref().and_then(|b| b.contents.first()).and_then(|c| c.text.clone()).unwrap_or_default()
}

/// How long "at once" may take: far below the SDK heartbeat (30 s) through which a node
/// that missed an announcement would catch up, so passing proves the bus carried it.
const AT_ONCE: Duration = Duration::from_secs(3);

#[tokio::test]
async fn messages_cross_nodes_at_once_and_offline_queues_drain_anywhere() {
    let c = Cluster::start(3, &[]).await;
    let admin = c.admin(0).await;
    c.register(&admin, &["alice", "bob", "carol", "dave"]).await;

    // REST send on A, received on C at once.
    let mut bob = c.connect(2, "bob", "bob-phone").await;
    let id = c.send(0, &admin, "alice", "bob", "from node A").await;
    let m = next_message(&mut bob, AT_ONCE).await;
    assert_eq!((m.id, text(&m).as_str()), (id, "from node A"));

    // SDK to SDK across nodes: alice on B sends, bob on C receives; bob answers, alice gets it.
    let mut alice = c.connect(1, "alice", "alice-web").await;
    let ack = alice.send("bob", text_body("alice", "bob", "sdk across", None)).await.expect("upload acked");
    let m = next_message(&mut bob, AT_ONCE).await;
    assert_eq!((m.id, text(&m).as_str(), m.from.as_str()), (ack.server_id, "sdk across", "alice"));
    bob.send("alice", text_body("bob", "alice", "and back", None)).await.expect("acked");
    assert_eq!(text(&next_message(&mut alice, AT_ONCE).await), "and back");

    // Queued via A while dave is offline, drained by dave logging in on B, in order.
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(c.send(0, &admin, "carol", "dave", &format!("offline {i}")).await);
    }
    let mut dave = c.connect(1, "dave", "dave-tab").await;
    let mut got = Vec::new();
    while got.len() < sent.len() {
        got.push(next_message(&mut dave, AT_ONCE).await.id);
    }
    assert_eq!(got, sent, "every queued message, once, in order");

    // The unmodified Web SDK on C receives a REST send accepted by A.
    let mut sdk = crate::sdk::Sdk::start(&format!("http://{}", c.node(2).addr), "c#c").await;
    let carol_token = c.user_token(2, "carol").await;
    sdk.open("carol", "carol", &carol_token, json!({})).await;
    let id = c.send(0, &admin, "alice", "carol", "to the web sdk").await;
    let m = sdk.message("carol", "onTextMessage", &id.to_string()).await;
    assert_eq!(m["msg"], "to the web sdk");
}

#[tokio::test]
async fn presence_kicks_and_device_replacement_work_from_any_node() {
    let c = Cluster::start(3, &[("MISSIVE_SESSIONS__MAX_DEVICES_PER_USER", "2")]).await;
    let admin = c.admin(0).await;
    c.register(&admin, &["alice", "bob"]).await;

    let mut bob = c.connect(2, "bob", "bob-phone").await;
    // Status and resources answered by A and B about a session on C.
    let status = c.get(0, &admin, "/users/bob/status").await;
    assert_eq!(status["data"]["bob"], "online", "{status}");
    let res = c.get(1, &admin, "/users/bob/resources").await;
    assert_eq!(res["data"][0]["res"], "bob-phone", "{res}");
    let (st, batch) =
        post(format!("{}/users/batch/status", c.base(1)), Some(&admin), json!({"usernames": ["bob", "alice"]})).await;
    assert_eq!(st, 200);
    assert_eq!(batch["data"], json!([{"bob": "online"}, {"alice": "offline"}]));

    // ROUTE_ONLINE through A reaches bob on C.
    let (st, b) = post(
        format!("{}/messages/users", c.base(0)),
        Some(&admin),
        json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "online only"}, "routetype": "ROUTE_ONLINE"}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(text(&next_message(&mut bob, AT_ONCE).await), "online only");

    // The device limit counts every node: a third device anywhere is refused.
    let _laptop = c.connect(0, "bob", "bob-laptop").await;
    let token = c.user_token(1, "bob").await;
    let third = MsyncClient::connect(
        Login {
            url: format!("ws://{}/websocket", c.node(1).addr),
            app_key: "c#c".into(),
            user: "bob".into(),
            token,
            resource: Some("bob-tablet".into()),
        },
        ClientOptions::default(),
    )
    .await;
    assert!(third.is_err(), "a third device on another node must be refused");

    // The same resource reconnecting to B replaces its session on C, which is told why.
    let mut bob_again = c.connect(1, "bob", "bob-phone").await;
    expect_kicked(&mut bob, "replaced by the same resource on another node").await;
    let res = c.get(0, &admin, "/users/bob/resources").await;
    let resources: BTreeSet<&str> =
        res["data"].as_array().unwrap().iter().map(|d| d["res"].as_str().unwrap()).collect();
    assert_eq!(resources, BTreeSet::from(["bob-laptop", "bob-phone"]), "{res}");

    // A disconnect through A kicks the session on B.
    let r = http().get(format!("{}/users/bob/disconnect", c.base(0))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    expect_kicked(&mut bob_again, "disconnect through another node").await;

    // A password change through C kicks alice's session on A.
    let mut alice = c.connect(0, "alice", "alice-web").await;
    let r = http()
        .put(format!("{}/users/alice/password", c.base(2)))
        .bearer_auth(&admin)
        .json(&json!({"newpassword": "pw2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_kicked(&mut alice, "password changed through another node").await;
}

async fn expect_kicked(c: &mut MsyncClient, why: &str) {
    loop {
        match timeout(AT_ONCE, c.next_event()).await {
            Ok(Some(ClientEvent::Kicked { .. })) => return,
            Ok(Some(ClientEvent::Message(_))) => continue,
            other => panic!("{why}: expected a kick, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn send_quotas_hold_for_the_cluster_as_a_whole() {
    let c = Cluster::start(
        3,
        &[
            ("MISSIVE_CLUSTER__REDIS_URL", "redis://127.0.0.1:6379/"),
            ("MISSIVE_LIMITS__SEND_CALLS_PER_SECOND", "100"),
            ("MISSIVE_LIMITS__SEND_MESSAGES_PER_MINUTE", "0"),
        ],
    )
    .await;
    let admins = [c.admin(0).await, c.admin(1).await, c.admin(2).await];
    c.register(&admins[0], &["alice", "bob"]).await;
    // 150 calls at once, spread over the three nodes: about 100 pass (the bucket's capacity,
    // plus what refills while they run), the rest are 429 — not 150, as three nodes each
    // allowing 100 would.
    let mut calls = Vec::new();
    for i in 0..150 {
        let url = format!("{}/messages/users", c.base(i % 3));
        let admin = admins[i % 3].clone();
        calls.push(tokio::spawn(async move {
            post(url, Some(&admin), json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "q"}})).await
        }));
    }
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let started = std::time::Instant::now();
    for call in calls {
        let (st, b) = call.await.unwrap();
        if st == 429 {
            assert_eq!(b["error"], "reach_limit", "{b}");
        }
        *by_status.entry(st).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let ok = by_status.get(&200).copied().unwrap_or(0);
    let limited = by_status.get(&429).copied().unwrap_or(0);
    println!("cluster quota: {ok} accepted, {limited} refused in {elapsed:?} ({by_status:?})");
    assert_eq!(ok + limited, 150, "{by_status:?}");
    // Tokens refill at 100/s while the calls run; within 10 % of what one server would allow.
    let allowed = 100.0 + 100.0 * elapsed.as_secs_f64();
    assert!((ok as f64) <= allowed * 1.1 && ok >= 90, "accepted {ok}, one server would allow ≈ {allowed:.0}");
}

#[tokio::test]
async fn a_killed_node_and_a_restarted_nats_lose_nothing() {
    let mut c = Cluster::start(3, &[]).await;
    let admin = c.admin(0).await;
    c.register(&admin, &["alice", "bob"]).await;

    // bob on C receives while A sends; C is killed mid-stream; bob reconnects to B.
    let mut bob = c.connect(2, "bob", "bob-phone").await;
    let mut acked = Vec::new();
    for i in 0..30 {
        acked.push(c.send(0, &admin, "alice", "bob", &format!("before {i}")).await);
    }
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(next_message(&mut bob, AT_ONCE).await.id);
    }
    c.nodes[2].take().expect("node C").kill9();
    // What bob's device had received (and acked) on C before the kill is his: the client
    // library buffered it; read it all, up to the closed socket.
    loop {
        match timeout(AT_ONCE, bob.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) => seen.push(m.id),
            Ok(Some(ClientEvent::Closed { .. })) | Ok(None) => break,
            Ok(Some(_)) => {}
            Err(_) => panic!("the session on the killed node never closed"),
        }
    }
    for i in 0..30 {
        acked.push(c.send(0, &admin, "alice", "bob", &format!("while C is down {i}")).await);
    }
    let mut bob = c.connect(1, "bob", "bob-phone").await;
    drain(&mut bob, &acked, &mut seen).await;

    // NATS restarted mid-traffic: sends keep being accepted, and every one arrives.
    c.nats.kill();
    for i in 0..20 {
        acked.push(c.send(0, &admin, "alice", "bob", &format!("nats down {i}")).await);
    }
    c.nats.spawn();
    for i in 0..20 {
        acked.push(c.send(0, &admin, "alice", "bob", &format!("nats back {i}")).await);
    }
    drain(&mut bob, &acked, &mut seen).await;
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    println!(
        "node kill + NATS restart: acked {}, received {} ({} duplicates), lost 0",
        acked.len(),
        seen.len(),
        seen.len() - distinct.len()
    );
    let _ = &c.name;
    let _ = &c.db;
}

/// Receives until every id of `acked` was seen; first sightings must come in send order
/// (one sender, each send after the previous 200).
async fn drain(bob: &mut MsyncClient, acked: &[u64], seen: &mut Vec<u64>) {
    // Up to 35 s: the slowest way to learn of a missed announcement is the SDK heartbeat.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(35);
    while !acked.iter().all(|id| seen.contains(id)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = match timeout(left, bob.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) => m,
            Ok(Some(_)) => continue,
            other => {
                let missing: Vec<usize> =
                    acked.iter().enumerate().filter(|(_, id)| !seen.contains(id)).map(|(i, _)| i).collect();
                panic!(
                    "{} acknowledged messages never arrived (indices {missing:?}, {} received); last event {other:?}",
                    missing.len(),
                    seen.len()
                )
            }
        };
        if !seen.contains(&m.id)
            && let Some(prev) = seen.iter().rev().find(|id| acked.contains(id))
        {
            let (p, n) = (acked.iter().position(|a| a == prev), acked.iter().position(|a| *a == m.id));
            assert!(p < n, "out of order: {} after {prev}", m.id);
        }
        seen.push(m.id);
    }
}

/// The crash torture on a cluster: two senders post through random nodes, bob receives on a
/// random node, and each round a random node — bob's or another — is SIGKILLed and
/// restarted. Every send answered 200 reaches bob, each sender's messages in order.
/// `MISSIVE_CLUSTER_TORTURE_KILLS` sets the rounds (CI: 3; docs/reliability.md has 20).
#[tokio::test]
async fn cluster_torture_random_node_kills_lose_nothing() {
    let kills: usize = std::env::var("MISSIVE_CLUSTER_TORTURE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut seed: u64 = std::env::var("MISSIVE_TORTURE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("cluster torture seed {seed}");
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut c = Cluster::start(3, &[]).await;
    let admin = c.admin(0).await;
    c.register(&admin, &["alice", "carol", "bob"]).await;
    let mut acked: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut seen: Vec<u64> = Vec::new();
    let mut refused = 0;
    let mut bob_node = (rand() % 3) as usize;
    let mut bob = c.connect(bob_node, "bob", "bob-phone").await;
    for round in 0..=kills {
        // A burst of sends through random live nodes, alternating senders.
        for i in 0..40 {
            let sender = if i % 2 == 0 { "alice" } else { "carol" };
            let node = (rand() % 3) as usize;
            if c.nodes[node].is_none() {
                continue;
            }
            let body = json!({"from": sender, "to": ["bob"], "type": "txt", "body": {"msg": format!("{round}-{i}")}});
            match post(format!("{}/messages/users", c.base(node)), Some(&admin), body).await {
                (200, b) => acked.entry(sender).or_default().push(b["data"]["bob"].as_str().unwrap().parse().unwrap()),
                _ => refused += 1,
            }
        }
        // Bob reads a little, then a random node dies.
        for _ in 0..(rand() % 20) {
            match timeout(Duration::from_millis(500), bob.next_event()).await {
                Ok(Some(ClientEvent::Message(m))) => seen.push(m.id),
                _ => break,
            }
        }
        if round == kills {
            break;
        }
        let victim = (rand() % 3) as usize;
        c.nodes[victim].take().expect("live").kill9();
        if victim == bob_node {
            loop {
                match timeout(AT_ONCE, bob.next_event()).await {
                    Ok(Some(ClientEvent::Message(m))) => seen.push(m.id),
                    Ok(Some(ClientEvent::Closed { .. })) | Ok(None) => break,
                    Ok(Some(_)) => {}
                    Err(_) => panic!("bob's session on the killed node never closed"),
                }
            }
            bob_node = (victim + 1 + (rand() % 2) as usize) % 3;
            bob = c.connect(bob_node, "bob", "bob-phone").await;
        }
        c.nodes[victim] = Some(c.spawn(victim).await);
    }
    let all: Vec<u64> = acked.values().flatten().copied().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(35);
    while !all.iter().all(|id| seen.contains(id)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, bob.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) => seen.push(m.id),
            Ok(Some(_)) => {}
            other => {
                let lost = all.iter().filter(|id| !seen.contains(id)).count();
                panic!("lost {lost} of {} acknowledged messages; last event {other:?}", all.len());
            }
        }
    }
    // Each sender's messages, first sightings, in the order they were sent.
    for (sender, ids) in &acked {
        let order: Vec<u64> = {
            let mut firsts = Vec::new();
            for id in &seen {
                if ids.contains(id) && !firsts.contains(id) {
                    firsts.push(*id);
                }
            }
            firsts
        };
        assert_eq!(&order, ids, "{sender}'s messages out of order");
    }
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    println!(
        "cluster torture: kills {kills}, acked {}, refused {refused}, delivered {}, duplicates {}, lost 0",
        all.len(),
        distinct.len(),
        seen.len() - distinct.len()
    );
}
