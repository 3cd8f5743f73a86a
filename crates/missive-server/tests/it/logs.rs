//! Logs an operator can ship: the `missive` binary at trace level (every crate) in both
//! formats, driven through logins, sends (REST and MSYNC), uploads and downloads of a
//! restricted file, a password change and a metrics scrape. Its whole stderr must contain
//! none of the secrets used (passwords, tokens, the client secret, the share-secret, the
//! metrics token) nor any message or file content; and in JSON, the access line of a REST
//! send must carry its request id, route, status and latency, and a session's lines the
//! id of its upgrade.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use missive_msync::client::text_body;
use missive_msync::{ClientEvent, ClientOptions, Login, MsyncClient};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{eventually, http};

const ALICE_PW: &str = "alice-pw-Zq81xR";
const BOB_PW: &str = "bob-pw-Mv27pL";
const BOB_NEW_PW: &str = "bob-new-pw-Ke55wD";
const WRONG_PW: &str = "wrong-pw-Tt90aS";
const REST_TEXT: &str = "rest-text-Hh34nB";
const SDK_TEXT: &str = "sdk-text-Yy62cF";
const FILE_BYTES: &str = "file-bytes-Ug48eJ";
const METRICS_TOKEN: &str = "metrics-token-Pp13sV";
const SEND_REQUEST_ID: &str = "leak-check-send-1";

/// `missive serve` with its stdout (the demo app's credentials) and stderr (the logs) read
/// by threads as they come.
struct LoggedServer {
    child: Child,
    addr: SocketAddr,
    credentials: Value,
    lines: mpsc::Receiver<String>,
}

impl LoggedServer {
    fn start(data: &Path, format: &str) -> LoggedServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("MISSIVE_LOG", "trace")
            .env("MISSIVE_LOG__FORMAT", format)
            .env("MISSIVE_METRICS__TOKEN", METRICS_TOKEN)
            .env("MISSIVE_SECURITY__ARGON2_MEMORY_KIB", "64")
            .env("MISSIVE_SECURITY__ARGON2_ITERATIONS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn missive");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).expect("credentials line");
        let credentials: Value = serde_json::from_str(&first).expect("credentials JSON");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // The address is in the "missive listening" line, the port being the kernel's choice.
        let addr = loop {
            let line = lines.recv_timeout(Duration::from_secs(15)).expect("a log line before listening");
            if let Some(addr) = listening_addr(&line) {
                break addr;
            }
        };
        LoggedServer { child, addr, credentials, lines }
    }

    /// Stops the server and returns every line it logged.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines.iter().collect()
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("missive listening") {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        return v["addr"].as_str()?.parse().ok();
    }
    let rest = &line[line.find("addr=")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

async fn post(url: String, token: Option<&str>, body: Value, headers: &[(&str, &str)]) -> Value {
    let mut req = http().post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    res.json().await.unwrap_or(Value::Null)
}

/// Everything the run does; returns the secrets it used that only the server made (tokens,
/// the share-secret, the client secret).
async fn traffic(s: &LoggedServer) -> Vec<String> {
    let api = format!("http://{}/demo/demo", s.addr);
    let c = &s.credentials;
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    let admin = post(
        format!("{api}/token"),
        None,
        json!({"grant_type": "client_credentials", "client_id": c["client_id"], "client_secret": secret}),
        &[],
    )
    .await["access_token"]
        .as_str()
        .expect("app token")
        .to_owned();
    let users = json!([{"username": "alice", "password": ALICE_PW}, {"username": "bob", "password": BOB_PW}]);
    post(format!("{api}/users"), Some(&admin), users, &[]).await;
    let login = |user: &str, pw: &str| json!({"grant_type": "password", "username": user, "password": pw});
    let alice = post(format!("{api}/token"), None, login("alice", ALICE_PW), &[]).await["access_token"]
        .as_str()
        .expect("alice's token")
        .to_owned();
    let bob = post(format!("{api}/token"), None, login("bob", BOB_PW), &[]).await["access_token"]
        .as_str()
        .expect("bob's token")
        .to_owned();
    post(format!("{api}/token"), None, login("bob", WRONG_PW), &[]).await;

    // A REST send, with a request id to find its access line by.
    let send = json!({"from": "bob", "to": ["alice"], "type": "txt", "body": {"msg": REST_TEXT}});
    let sent = post(format!("{api}/messages/users"), Some(&admin), send, &[("x-request-id", SEND_REQUEST_ID)]).await;
    assert!(sent["data"]["alice"].is_string(), "{sent}");

    // A restricted upload, downloaded with its secret in the query (the Web SDK's way) and
    // in the header.
    let part = Part::bytes(FILE_BYTES.as_bytes().to_vec()).file_name("notes.txt");
    let up: Value = http()
        .post(format!("{api}/chatfiles"))
        .bearer_auth(&alice)
        .header("restrict-access", "true")
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uuid = up["entities"][0]["uuid"].as_str().expect("uuid").to_owned();
    let share = up["entities"][0]["share-secret"].as_str().expect("share-secret").to_owned();
    let got = http().get(format!("{api}/chatfiles/{uuid}?share-secret={share}")).send().await.unwrap();
    assert_eq!(got.text().await.unwrap(), FILE_BYTES);
    let got = http().get(format!("{api}/chatfiles/{uuid}")).header("share-secret", &share).send().await.unwrap();
    assert_eq!(got.status(), 200);

    // MSYNC: both log in with their tokens; bob sends alice a message from the "SDK".
    let connect = |user: &str, token: &str| Login {
        url: format!("ws://{}/websocket", s.addr),
        app_key: "demo#demo".into(),
        user: user.into(),
        token: token.into(),
        resource: Some("web".into()),
    };
    let mut a = MsyncClient::connect(connect("alice", &alice), ClientOptions::default()).await.expect("alice online");
    let b = MsyncClient::connect(connect("bob", &bob), ClientOptions::default()).await.expect("bob online");
    b.send("alice", text_body("bob", "alice", SDK_TEXT, None)).await.expect("sdk send");
    let mut texts = Vec::new();
    while texts.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), a.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) => {
                texts.push(m.body.and_then(|b| b.contents.first().and_then(|c| c.text.clone())).unwrap_or_default())
            }
            other => panic!("expected alice's two messages, got {other:?}"),
        }
    }
    assert_eq!(texts, [REST_TEXT, SDK_TEXT]);
    a.close().await;
    b.close().await;

    // Bob changes his password with his own token (old and new in the body).
    let change = json!({"oldpassword": BOB_PW, "newpassword": BOB_NEW_PW});
    http().put(format!("{api}/users/bob/password")).bearer_auth(&bob).json(&change).send().await.unwrap();

    // A scrape with the metrics token.
    let res = http().get(format!("http://{}/metrics", s.addr)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    vec![secret, admin, alice, bob, share]
}

/// Runs the traffic against a server logging in `format`; returns its lines, after checking
/// that no secret is among them.
async fn run(format: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let server = LoggedServer::start(dir.path(), format);
    let mut secrets = traffic(&server).await;
    // Wait for the sessions' last lines (`session ended`) before stopping.
    let addr = server.addr;
    eventually("the sessions to end", || async move {
        let v: Value = http().get(format!("http://{addr}/health")).send().await.unwrap().json().await.unwrap();
        v["sessions"] == 0
    })
    .await;
    let lines = server.stop();
    assert!(lines.len() > 20, "a trace run logs more than {} lines", lines.len());
    secrets.extend(
        [ALICE_PW, BOB_PW, BOB_NEW_PW, WRONG_PW, REST_TEXT, SDK_TEXT, FILE_BYTES, METRICS_TOKEN].map(String::from),
    );
    for secret in &secrets {
        // Tokens are long; a prefix that is unique to this run is enough to find a leak.
        let needle = &secret[..secret.len().min(24)];
        let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert!(leaks.is_empty(), "{format} logs contain {needle:?}:\n{leaks:#?}");
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let lines = run("json").await;
    let events: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    // The REST send's access line: request id, route, status, latency.
    let send = events
        .iter()
        .find(|e| e["target"] == "missive::access" && e["span"]["request_id"] == SEND_REQUEST_ID)
        .expect("the send's access line");
    assert_eq!(send["span"]["route"], "/{org}/{app}/messages/users", "{send}");
    assert_eq!(send["span"]["method"], "POST", "{send}");
    assert_eq!(send["status"], 200, "{send}");
    assert!(send["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{send}");
    // Every line logged inside a request or session span carries that span's id.
    let in_sessions: Vec<&Value> = events.iter().filter(|e| e["span"]["name"] == "session").collect();
    assert!(!in_sessions.is_empty(), "no line of a WebSocket session at debug level");
    for e in
        in_sessions.iter().chain(events.iter().filter(|e| e["span"]["name"] == "request").collect::<Vec<_>>().iter())
    {
        assert!(e["span"]["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_carry_request_ids_and_no_secrets() {
    let lines = run("text").await;
    let send = lines
        .iter()
        .find(|l| l.contains("missive::access") && l.contains(SEND_REQUEST_ID))
        .expect("the send's access line");
    for part in ["route=/{org}/{app}/messages/users", "status=200", "latency_ms="] {
        assert!(send.contains(part), "{part} in {send}");
    }
}
