//! Conformance with the official, unmodified Easemob Web SDK (npm `easemob-websdk`, the
//! version pinned in `sdk-tests/package.json`) running in Node 20 against the real server.
//!
//! Each test starts a server, prepares users and messages over REST, and drives SDK
//! connections through `sdk-tests/driver.js`: commands go to its stdin as JSON lines, and
//! every SDK callback comes back as one JSON line on its stdout. One Node process hosts all
//! the connections of a test (starting Node costs about a second). Every wait is bounded;
//! checks that something did *not* happen are made after a later event that could only
//! arrive after it (same queue, same socket), never after a sleep.
//!
//! Needs `node` (20) and `npm ci --prefix sdk-tests`; without them these tests fail and say
//! so. `sdk_agora.rs` drives Agora's twin package through the same driver.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::common::{ProcessServer, TestServer};

/// Longest wait for one SDK event. Generous for a loaded 2-core CI machine; a passing run
/// never comes near it.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk-tests")
}

/// Fails the test with the fix when the SDK harness is not installed.
fn require_harness() -> PathBuf {
    let dir = sdk_dir();
    for module in ["easemob-websdk/Easemob-chat.js", "agora-chat/Agora-chat.js", "ws/package.json", "xhr2/package.json"]
    {
        let path = dir.join("node_modules").join(module);
        assert!(
            path.exists(),
            "the Web SDK test harness is not installed ({} is missing): run `npm ci --prefix sdk-tests` \
             in the repository root (Node 20 and npm required; CI does this in scripts/test.sh)",
            path.display()
        );
    }
    dir
}

/// One `node sdk-tests/driver.js` process and the events it has printed.
pub(crate) struct Sdk {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::UnboundedReceiver<Value>,
    /// Every event received, in order.
    log: Vec<Value>,
    /// Received but not yet claimed by `expect`.
    unclaimed: VecDeque<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Sdk {
    /// Starts the driver against the server at `base` (`http://127.0.0.1:port`) for `app_key`,
    /// hosting `easemob-websdk`.
    pub(crate) async fn start(base: &str, app_key: &str) -> Sdk {
        Sdk::start_package(base, app_key, "easemob-websdk", "4.21.1").await
    }

    /// Starts the driver hosting the npm `package` (`easemob-websdk` or `agora-chat`), which
    /// must be at `version`.
    pub(crate) async fn start_package(base: &str, app_key: &str, package: &str, version: &str) -> Sdk {
        let dir = require_harness();
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(&node)
            .arg(dir.join("driver.js"))
            .args([base, app_key])
            .env("SDK", package)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{node}` ({e}): the SDK tests need Node.js 20 on PATH"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut sdk = Sdk { child, stdin, rx, log: Vec::new(), unclaimed: VecDeque::new(), stderr };
        let ready = sdk.expect("the driver to start", |v| v["ev"] == "ready").await;
        assert_eq!((ready["package"].as_str(), ready["sdk"].as_str()), (Some(package), Some(version)), "{ready}");
        sdk
    }

    pub(crate) fn cmd(&mut self, cmd: Value) {
        let line = format!("{cmd}\n");
        self.stdin.write_all(line.as_bytes()).and_then(|_| self.stdin.flush()).expect("write to driver");
    }

    /// The first event (received earlier and not yet claimed, or arriving within
    /// `EVENT_TIMEOUT`) that matches `pred`; fails the test otherwise.
    pub(crate) async fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.unclaimed.iter().position(&pred) {
            return self.unclaimed.remove(i).expect("index");
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(v)) => {
                    self.log.push(v.clone());
                    if v["ev"] == "fatal" {
                        self.fail(&format!("the driver failed while waiting for {what}: {v}"));
                    }
                    if pred(&v) {
                        return v;
                    }
                    self.unclaimed.push_back(v);
                }
                Ok(None) => self.fail(&format!("the driver exited while waiting for {what}")),
                Err(_) => self.fail(&format!("no {what} within {EVENT_TIMEOUT:?}")),
            }
        }
    }

    pub(crate) fn fail(&self, why: &str) -> ! {
        let tail: Vec<String> = self.log.iter().rev().take(40).rev().map(Value::to_string).collect();
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        panic!("{why}\n--- last SDK events:\n{}\n--- driver stderr:\n{stderr}", tail.join("\n"));
    }

    /// Fails the test if the SDK reported an error or an unhandled rejection so far.
    pub(crate) fn assert_no_errors(&self) {
        let trouble = self.seen(|v| v["ev"] == "error" || v["ev"] == "unhandled_rejection");
        assert!(trouble.is_empty(), "SDK errors: {trouble:?}");
    }

    /// Calls a promise-returning connection method of client `c`; its settled event
    /// (`call_ok` with `r`, or `call_err`).
    pub(crate) async fn call(&mut self, c: &str, tag: &str, method: &str, args: Value) -> Value {
        self.cmd(json!({"op": "call", "c": c, "tag": tag, "method": method, "args": args}));
        self.expect(&format!("{c}: {method} ({tag})"), |v| v["tag"] == tag && v["c"] == c).await
    }

    /// Every event received so far that matches `pred`.
    pub(crate) fn seen(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.log.iter().filter(|v| pred(v)).cloned().collect()
    }

    /// Logs in with a token; waits for `onConnected` and the resolved `open()`.
    pub(crate) async fn open(&mut self, c: &str, user: &str, token: &str, extra: Value) {
        let mut cmd = json!({"op": "open", "c": c, "user": user, "token": token});
        merge(&mut cmd, extra);
        self.cmd(cmd);
        self.expect(&format!("{c}: onConnected"), |v| is(v, "connected", c)).await;
        self.expect(&format!("{c}: open() resolved"), |v| is(v, "open_ok", c)).await;
    }

    /// A message callback (`handler`) at client `c` for message `id`.
    pub(crate) async fn message(&mut self, c: &str, handler: &str, id: &str) -> Value {
        let ev = self
            .expect(&format!("{c}: {handler} for {id}"), |v| {
                is(v, "msg", c) && v["handler"] == handler && v["m"]["id"] == id
            })
            .await;
        ev["m"].clone()
    }

    /// Sends with `conn.send()`; returns the server id it resolved with.
    pub(crate) async fn send(&mut self, c: &str, tag: &str, msg: Value) -> String {
        self.cmd(json!({"op": "send", "c": c, "tag": tag, "msg": msg}));
        let ev = self
            .expect(&format!("{c}: send {tag} settled"), |v| {
                (is(v, "send_ok", c) || is(v, "send_err", c)) && v["tag"] == tag
            })
            .await;
        assert_eq!(ev["ev"], "send_ok", "send {tag} failed: {ev}");
        let id = ev["serverMsgId"].as_str().expect("serverMsgId").to_owned();
        assert!(id.len() == 19 && id.bytes().all(|b| b.is_ascii_digit()), "server id {id:?} in {ev}");
        id
    }

    pub(crate) async fn state(&mut self, c: &str) -> Value {
        self.cmd(json!({"op": "state", "c": c}));
        self.expect(&format!("{c}: state"), |v| is(v, "state", c)).await
    }

    /// `conn.close()` (LOGOUT) and the `onDisconnected` it causes.
    pub(crate) async fn close(&mut self, c: &str) {
        self.cmd(json!({"op": "close", "c": c}));
        self.expect(&format!("{c}: onDisconnected after close()"), |v| is(v, "disconnected", c)).await;
    }

    /// Ids of the messages client `c` has been handed so far, in order.
    pub(crate) fn message_ids(&self, c: &str) -> Vec<String> {
        self.seen(|v| is(v, "msg", c)).iter().filter_map(|v| v["m"]["id"].as_str().map(str::to_owned)).collect()
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn is(v: &Value, ev: &str, c: &str) -> bool {
    v["ev"] == ev && v["c"] == c
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

/// The URL the SDK shows for an attachment: our `apiUrl` + the path of `remote_path`
/// (`formatAttachUrl`), then `?em-redirect=true[&share-secret=…]`.
fn attachment_url(base: &str, remote: &str, secret: Option<&str>) -> String {
    let path = &remote[remote[9..].find('/').map(|i| i + 9).unwrap_or(remote.len())..];
    match secret {
        Some(s) => format!("{base}{path}?em-redirect=true&share-secret={s}"),
        None => format!("{base}{path}?em-redirect=true"),
    }
}

pub(crate) fn base(s: &TestServer) -> String {
    format!("http://{}", s.addr)
}

/// `POST /messages/users` with the JSON text as given; returns the id for `to`.
pub(crate) async fn rest_send(s: &TestServer, admin: &str, body: &str, to: &str) -> String {
    let (st, b) = s.post_raw("/messages/users", Some(admin), body).await;
    assert_eq!(st, StatusCode::OK, "{body} -> {b}");
    b["data"][to].as_str().unwrap_or_else(|| panic!("id for {to} in {b}")).to_owned()
}

pub(crate) async fn rest_text(s: &TestServer, admin: &str, from: &str, to: &str, text: &str) -> String {
    let body = json!({"from": from, "to": [to], "type": "txt", "body": {"msg": text}});
    rest_send(s, admin, &body.to_string(), to).await
}

/// Checks 1–3 and the REST recall: token and password login; a REST txt arrives with the
/// REST id, its text and its `ext` typed as the SDK types it; each of the eight message
/// types of the documentation's examples arrives at its own callback with its fields; a
/// delivered message recalled over REST becomes `onRecallMessage`.
#[tokio::test]
async fn sdk_logins_and_every_rest_message_type() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let token = s.user_token("user2").await;
    let base = base(&s);
    let mut sdk = Sdk::start(&base, &s.app_key()).await;

    // Token login: no HTTP at all. Password login: POST /{org}/{app}/token, and open()
    // resolves with the token it got.
    sdk.open("user2", "user2", &token, json!({})).await;
    sdk.cmd(json!({"op": "open", "c": "user1", "user": "user1", "pwd": "user1-pw"}));
    sdk.expect("user1: onConnected (password login)", |v| is(v, "connected", "user1")).await;
    let ok = sdk.expect("user1: open() resolved", |v| is(v, "open_ok", "user1")).await;
    assert!(ok["accessToken"].as_str().is_some_and(|t| t.starts_with("YWMt")), "{ok}");
    assert!(ok["duration"].as_u64().is_some_and(|d| d > 0), "{ok}");

    // A txt with every kind of ext value (PROTOCOL.md §5).
    let ext =
        json!({"s": "x", "i": 7, "neg": -3, "b": true, "f": false, "o": {"k": [1, 2], "n": {"deep": "y"}}, "d": 2.5});
    let body = json!({"from": "user1", "to": ["user2"], "type": "txt", "body": {"msg": "hello sdk"}, "ext": ext});
    let id = rest_send(&s, &admin, &body.to_string(), "user2").await;
    let m = sdk.message("user2", "onTextMessage", &id).await;
    assert_eq!(m["type"], "txt", "{m}");
    assert_eq!(m["chatType"], "singleChat", "{m}");
    assert_eq!(m["msg"], "hello sdk", "{m}");
    assert_eq!(m["from"], "user1", "{m}");
    assert_eq!(m["to"], "user2", "{m}");
    assert_eq!(m["ext"], ext, "{m}");
    assert!(m["time"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{m}");

    // The eight types, with the request bodies of the documentation's curl examples.
    let txt = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "txt","body": {"msg": "testmessages"},"ext": {"em_ignore_notification": true}}"#,
        "user2",
    )
    .await;
    let img = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "img","body": {"filename":"testimg.jpg","secret":"VfXXXXNb_","url":"https://XXXX/XXXX/XXXX/chatfiles/55f12940-XXXX-XXXX-8a5b-ff2336f03252","size": {"width":480,"height":720}}}"#,
        "user2",
    )
    .await;
    let audio = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "audio","body": {"url": "https://XXXX/XXXX/XXXX/chatfiles/1dfc7f50-XXXX-XXXX-8a07-7d75b8fb3d42","filename": "testaudio.amr","length": 10,"secret": "HfXXXXCjM"}}"#,
        "user2",
    )
    .await;
    let video = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "video","body": {"thumb" : "https://XXXX/XXXX/XXXX/chatfiles/67279b20-7f69-11e4-8eee-21d3334b3a97","length" : 0,"secret":"VfXXXXNb_","file_length" : 58103,"thumb_secret" : "ZyXXXX2I","url" : "https://XXXX/XXXX/XXXX/chatfiles/671dfe30-XXXX-XXXX-ba67-8fef0d502f46"}}"#,
        "user2",
    )
    .await;
    let file = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "file","body": {"filename":"test.txt","secret":"1-g0XXXXua","url": "https://XXXX/XXXX/XXXX/chatfiles/d7eXXXX7444"}}"#,
        "user2",
    )
    .await;
    let loc = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "loc","body": {"lat": "39.966","lng":"116.322","addr":"中国北京市海淀区中关村"}}"#,
        "user2",
    )
    .await;
    let cmd = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "cmd","body":{"action":"action1"}}"#,
        "user2",
    )
    .await;
    let custom = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "custom","body": {"customEvent": "custom_event"}}"#,
        "user2",
    )
    .await;
    let custom_exts = rest_send(
        &s,
        &admin,
        r#"{"from": "user1","to": ["user2"],"type": "custom","body": {"customEvent": "gift","customExts": {"name": "rose","n": "3"}}}"#,
        "user2",
    )
    .await;

    let m = sdk.message("user2", "onTextMessage", &txt).await;
    assert_eq!((m["msg"].clone(), m["ext"].clone()), (json!("testmessages"), json!({"em_ignore_notification": true})));

    let m = sdk.message("user2", "onImageMessage", &img).await;
    let url = attachment_url(
        &base,
        "https://XXXX/XXXX/XXXX/chatfiles/55f12940-XXXX-XXXX-8a5b-ff2336f03252",
        Some("VfXXXXNb_"),
    );
    assert_eq!(m["type"], "img", "{m}");
    assert_eq!(m["url"], url, "{m}");
    assert_eq!(m["thumb"], format!("{url}&thumbnail=true"), "{m}");
    assert_eq!((m["width"].clone(), m["height"].clone()), (json!(480), json!(720)), "{m}");
    assert_eq!(m["secret"], "VfXXXXNb_", "{m}");

    let m = sdk.message("user2", "onAudioMessage", &audio).await;
    assert_eq!(m["type"], "audio", "{m}");
    assert_eq!(m["length"], 10, "{m}");
    assert_eq!(m["filename"], "testaudio.amr", "{m}");
    assert_eq!(
        m["url"],
        attachment_url(
            &base,
            "https://XXXX/XXXX/XXXX/chatfiles/1dfc7f50-XXXX-XXXX-8a07-7d75b8fb3d42",
            Some("HfXXXXCjM")
        ),
        "{m}"
    );

    let m = sdk.message("user2", "onVideoMessage", &video).await;
    assert_eq!(m["type"], "video", "{m}");
    assert_eq!(m["length"], 0, "{m}");
    assert_eq!(m["file_length"], 58103, "{m}");
    assert_eq!(m["thumb"], format!("{base}/XXXX/XXXX/chatfiles/67279b20-7f69-11e4-8eee-21d3334b3a97"), "{m}");
    assert_eq!(m["thumb_secret"], "ZyXXXX2I", "{m}");
    assert_eq!(
        m["url"],
        attachment_url(
            &base,
            "https://XXXX/XXXX/XXXX/chatfiles/671dfe30-XXXX-XXXX-ba67-8fef0d502f46",
            Some("VfXXXXNb_")
        ),
        "{m}"
    );

    let m = sdk.message("user2", "onFileMessage", &file).await;
    assert_eq!(m["type"], "file", "{m}");
    assert_eq!(m["filename"], "test.txt", "{m}");
    assert_eq!(m["secret"], "1-g0XXXXua", "{m}");
    assert_eq!(
        m["url"],
        attachment_url(&base, "https://XXXX/XXXX/XXXX/chatfiles/d7eXXXX7444", Some("1-g0XXXXua")),
        "{m}"
    );

    let m = sdk.message("user2", "onLocationMessage", &loc).await;
    assert_eq!(m["type"], "loc", "{m}");
    assert_eq!((m["lat"].clone(), m["lng"].clone()), (json!(39.966), json!(116.322)), "{m}");
    assert_eq!(m["addr"], "中国北京市海淀区中关村", "{m}");

    let m = sdk.message("user2", "onCmdMessage", &cmd).await;
    assert_eq!((m["type"].clone(), m["action"].clone()), (json!("cmd"), json!("action1")), "{m}");

    let m = sdk.message("user2", "onCustomMessage", &custom).await;
    assert_eq!((m["type"].clone(), m["customEvent"].clone()), (json!("custom"), json!("custom_event")), "{m}");
    assert_eq!(m["customExts"], json!({}), "{m}");
    let m = sdk.message("user2", "onCustomMessage", &custom_exts).await;
    assert_eq!(m["customEvent"], "gift", "{m}");
    assert_eq!(m["customExts"], json!({"name": "rose", "n": "3"}), "{m}");

    // Every message went to its own callback exactly once, in the order sent. (Except that
    // the SDK calls onCmdMessage synchronously while decoding a pull result, but the other
    // callbacks a microtask later, so a cmd overtakes the messages before it in the same
    // batch: that order is the SDK's, not the wire's.)
    let got = sdk.message_ids("user2");
    assert_eq!(got.iter().filter(|i| **i == cmd).count(), 1, "cmd not delivered exactly once: {got:?}");
    let order = [id.clone(), txt.clone(), img, audio, video, file, loc, custom, custom_exts];
    let without_cmd: Vec<String> = got.into_iter().filter(|i| *i != cmd).collect();
    assert_eq!(without_cmd, order, "user2 got messages out of order or twice");

    // Recall over REST of a message the SDK has: onRecallMessage with the recalled id.
    let (st, b) = s
        .post(
            "/messages/msg_recall",
            Some(&admin),
            json!({"msg_id": txt, "to": "user2", "from": "user1", "chat_type": "chat"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let ev = sdk.expect("user2: onRecallMessage", |v| is(v, "msg", "user2") && v["handler"] == "onRecallMessage").await;
    assert_eq!(ev["m"]["mid"], txt, "{ev}");
    assert_eq!(ev["m"]["from"], "user1", "{ev}");
    assert_eq!(ev["m"]["to"], "user2", "{ev}");

    assert!(sdk.seen(|v| v["ev"] == "error").is_empty(), "SDK errors: {:?}", sdk.seen(|v| v["ev"] == "error"));
}

/// Checks 4 and 5: messages sent while offline arrive after login, in order, once, between
/// `onOfflineMessageSyncStart` and `…Finish`; the next login (same device, or a new one)
/// gets none of them again; a `ROUTE_ONLINE` message to an offline user never arrives, to an
/// online one it does.
#[tokio::test]
async fn sdk_offline_messages_and_route_online() {
    // Small pull batches, so the offline queue takes several pull/ack rounds.
    let s = TestServer::start_with(|c| c.queue.pull_batch = 2).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["carol", "dave", "ed"]).await;
    let token = s.user_token("carol").await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;

    // Two queues (senders), interleaved.
    let mut offline = Vec::new();
    let mut from_ed = Vec::new();
    for i in 0..3 {
        offline.push(rest_text(&s, &admin, "dave", "carol", &format!("offline {i}")).await);
        from_ed.push(rest_text(&s, &admin, "ed", "carol", &format!("ed {i}")).await);
    }
    let online_only = rest_send(
        &s,
        &admin,
        &json!({"from": "dave", "to": ["carol"], "type": "txt", "body": {"msg": "online only"}, "routetype": "ROUTE_ONLINE"})
            .to_string(),
        "carol",
    )
    .await;
    offline.push(rest_text(&s, &admin, "dave", "carol", "offline 3").await);

    // First login, on a device with a fixed resource (as a browser with localStorage).
    sdk.open("carol", "carol", &token, json!({"deviceId": "carol-web"})).await;
    sdk.expect("carol: onOfflineMessageSyncStart", |v| is(v, "offline_start", "carol")).await;
    for (i, id) in offline.iter().enumerate() {
        let m = sdk.message("carol", "onTextMessage", id).await;
        assert_eq!(m["msg"], format!("offline {i}"), "{m}");
    }
    for (i, id) in from_ed.iter().enumerate() {
        let m = sdk.message("carol", "onTextMessage", id).await;
        assert_eq!((m["msg"].clone(), m["from"].clone()), (json!(format!("ed {i}")), json!("ed")), "{m}");
    }
    sdk.expect("carol: onOfflineMessageSyncFinish", |v| is(v, "offline_finish", "carol")).await;
    let starts = sdk.seen(|v| is(v, "offline_start", "carol"));
    let finish_pos = sdk.log.iter().position(|v| is(v, "offline_finish", "carol")).expect("finish");
    let last_msg_pos = sdk.log.iter().rposition(|v| is(v, "msg", "carol")).expect("messages");
    assert!(last_msg_pos < finish_pos, "offline messages after onOfflineMessageSyncFinish");
    assert_eq!(starts.len(), 1);
    // Each queue in order, exactly once, and without the online-only one (sent before the
    // last one, in the same queue, so it would have come before it). Queues are pulled side
    // by side, so they interleave.
    let got = sdk.message_ids("carol");
    let of = |ids: &[String]| -> Vec<String> { got.iter().filter(|i| ids.contains(i)).cloned().collect() };
    assert_eq!(of(&offline), offline, "dave's messages: {got:?}");
    assert_eq!(of(&from_ed), from_ed, "ed's messages: {got:?}");
    assert_eq!(got.len(), offline.len() + from_ed.len(), "unexpected or repeated messages: {got:?}");
    sdk.close("carol").await;

    // Next login on a new device (what Node, without localStorage, does by default): none of
    // them again. The barrier: a message sent after login, in the same queue.
    sdk.open("carol-2", "carol", &token, json!({})).await;
    let fresh = rest_text(&s, &admin, "dave", "carol", "after login").await;
    sdk.message("carol-2", "onTextMessage", &fresh).await;
    // Only the barrier arrives. (Whether the SDK reports it inside an offline sync depends on
    // whether it lands before the SDK's first pull finishes: a race of the test, not a rule.)
    assert_eq!(sdk.message_ids("carol-2"), std::slice::from_ref(&fresh), "a new device was given old messages");
    sdk.close("carol-2").await;

    // Next login on the first device again: nothing it acknowledged comes back.
    sdk.open("carol-3", "carol", &token, json!({"deviceId": "carol-web"})).await;
    let last = rest_text(&s, &admin, "dave", "carol", "last").await;
    sdk.message("carol-3", "onTextMessage", &last).await;
    let again: Vec<String> =
        sdk.message_ids("carol-3").into_iter().filter(|id| offline.contains(id) || from_ed.contains(id)).collect();
    assert!(again.is_empty(), "redelivered on the next login: {again:?}");

    // ROUTE_ONLINE to a user who is online arrives; the one sent while offline never did.
    let live = rest_send(
        &s,
        &admin,
        &json!({"from": "dave", "to": ["carol"], "type": "txt", "body": {"msg": "online only 2"}, "routetype": "ROUTE_ONLINE"})
            .to_string(),
        "carol",
    )
    .await;
    let m = sdk.message("carol-3", "onTextMessage", &live).await;
    assert_eq!(m["msg"], "online only 2");
    let ghost = sdk.seen(|v| v["ev"] == "msg" && v["m"]["id"] == online_only.as_str());
    assert!(ghost.is_empty(), "a ROUTE_ONLINE message sent while offline arrived: {ghost:?}");
    assert!(sdk.seen(|v| v["ev"] == "error").is_empty(), "SDK errors: {:?}", sdk.seen(|v| v["ev"] == "error"));
}

/// Checks 6–8: `sync_device` reaches the sender's other device; SDK-to-SDK txt, cmd, custom
/// and loc arrive with the id `send()` resolved with, and reach the sender's other device;
/// automatic delivery receipts (`delivery: true`) and read receipts arrive; an SDK recall
/// arrives as `onRecallMessage`.
#[tokio::test]
async fn sdk_to_sdk_receipts_multi_device_and_recall() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let alice_token = s.user_token("alice").await;
    let bob_token = s.user_token("bob").await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;
    sdk.open("alice", "alice", &alice_token, json!({"deviceId": "alice-1", "delivery": true})).await;
    sdk.open("bob-1", "bob", &bob_token, json!({"deviceId": "bob-1"})).await;
    sdk.open("bob-2", "bob", &bob_token, json!({"deviceId": "bob-2"})).await;

    // REST with sync_device: the recipient and every device of the sender get it.
    let body = json!({"from": "bob", "to": ["alice"], "type": "txt", "body": {"msg": "synced"}, "sync_device": true});
    let id = rest_send(&s, &admin, &body.to_string(), "alice").await;
    let m = sdk.message("alice", "onTextMessage", &id).await;
    assert_eq!((m["from"].clone(), m["to"].clone()), (json!("bob"), json!("alice")));
    for dev in ["bob-1", "bob-2"] {
        let m = sdk.message(dev, "onTextMessage", &id).await;
        assert_eq!(
            (m["msg"].clone(), m["from"].clone(), m["to"].clone()),
            (json!("synced"), json!("bob"), json!("alice"))
        );
    }

    // A REST message without `from` comes from "admin", who is not a user: alice's SDK
    // still sends its automatic delivery receipt there, and must get an OK ack for it (an
    // error ack rejects a promise the SDK never handles: an unhandled rejection, which ends
    // a Node process).
    let from_admin = rest_send(
        &s,
        &admin,
        &json!({"to": ["alice"], "type": "txt", "body": {"msg": "from the system"}}).to_string(),
        "alice",
    )
    .await;
    let m = sdk.message("alice", "onTextMessage", &from_admin).await;
    assert_eq!(m["from"], "admin", "{m}");

    // SDK to SDK. Each send resolves with the server id; alice gets it under that id, and
    // bob's other device gets a copy; the sending device does not.
    let txt = sdk
        .send(
            "bob-1",
            "txt",
            json!({"type": "txt", "to": "alice", "msg": "hi alice", "ext": {"k": 1, "o": {"a": [true]}}}),
        )
        .await;
    let cmd = sdk.send("bob-1", "cmd", json!({"type": "cmd", "to": "alice", "action": "typing"})).await;
    let custom = sdk
        .send(
            "bob-1",
            "custom",
            json!({"type": "custom", "to": "alice", "customEvent": "gift", "customExts": {"n": 3, "name": "rose"}}),
        )
        .await;
    let loc = sdk
        .send(
            "bob-1",
            "loc",
            json!({"type": "loc", "to": "alice", "lat": 39.9, "lng": 116.4, "addr": "Beijing", "buildingName": "B1"}),
        )
        .await;
    for dev in ["alice", "bob-2"] {
        let m = sdk.message(dev, "onTextMessage", &txt).await;
        assert_eq!((m["msg"].clone(), m["ext"].clone()), (json!("hi alice"), json!({"k": 1, "o": {"a": [true]}})));
        assert_eq!((m["from"].clone(), m["to"].clone()), (json!("bob"), json!("alice")));
        let m = sdk.message(dev, "onCmdMessage", &cmd).await;
        assert_eq!(m["action"], "typing");
        let m = sdk.message(dev, "onCustomMessage", &custom).await;
        assert_eq!(
            (m["customEvent"].clone(), m["customExts"].clone()),
            (json!("gift"), json!({"n": 3, "name": "rose"}))
        );
        let m = sdk.message(dev, "onLocationMessage", &loc).await;
        assert_eq!(
            (m["lat"].clone(), m["lng"].clone(), m["addr"].clone()),
            (json!(39.9), json!(116.4), json!("Beijing"))
        );
        assert_eq!(m["buildingName"], "B1");
    }

    // alice runs with delivery:true: her SDK acknowledged each message from bob, and bob's
    // devices are told (the txt, cmd, custom and loc).
    for mid in [&id, &txt, &cmd, &custom, &loc] {
        for dev in ["bob-1", "bob-2"] {
            let ev = sdk
                .expect(&format!("{dev}: onDeliveredMessage for {mid}"), |v| {
                    is(v, "msg", dev) && v["handler"] == "onDeliveredMessage" && v["m"]["mid"] == mid.as_str()
                })
                .await;
            assert_eq!((ev["m"]["from"].clone(), ev["m"]["to"].clone()), (json!("alice"), json!("bob")), "{ev}");
        }
    }

    // A read receipt from alice's SDK reaches bob as onReadMessage.
    sdk.send("alice", "read", json!({"type": "read", "to": "bob", "id": txt})).await;
    let ev = sdk
        .expect("bob-1: onReadMessage", |v| {
            is(v, "msg", "bob-1") && v["handler"] == "onReadMessage" && v["m"]["mid"] == txt.as_str()
        })
        .await;
    assert_eq!((ev["m"]["from"].clone(), ev["m"]["to"].clone()), (json!("alice"), json!("bob")), "{ev}");

    // A send to a user who does not exist fails with the SDK's USER_NOT_FOUND (204).
    sdk.cmd(json!({"op": "send", "c": "bob-1", "tag": "nobody", "msg": {"type": "txt", "to": "nobody", "msg": "?"}}));
    let ev =
        sdk.expect("bob-1: send to nobody settled", |v| is(v, "send_err", "bob-1") || is(v, "send_ok", "bob-1")).await;
    assert_eq!((ev["ev"].clone(), ev["type"].clone()), (json!("send_err"), json!(204)), "{ev}");

    // bob recalls his txt from his SDK: alice gets onRecallMessage for it.
    sdk.cmd(json!({"op": "recall", "c": "bob-1", "tag": "r", "to": "alice", "mid": txt}));
    let ev = sdk.expect("bob-1: recall settled", |v| v["tag"] == "r").await;
    assert_eq!(ev["ev"], "recall_ok", "{ev}");
    let ev = sdk
        .expect("alice: onRecallMessage", |v| {
            is(v, "msg", "alice") && v["handler"] == "onRecallMessage" && v["m"]["mid"] == txt.as_str()
        })
        .await;
    assert_eq!(ev["m"]["from"], "bob", "{ev}");

    // The sending device never got its own messages back; nobody got anything twice.
    let own: Vec<String> = sdk.message_ids("bob-1");
    for mine in [&txt, &cmd, &custom, &loc] {
        assert!(!own.contains(mine), "bob-1 was sent its own message {mine}");
    }
    for dev in ["alice", "bob-2"] {
        let ids = sdk.message_ids(dev);
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "{dev} got a message twice: {ids:?}");
    }
    let trouble = sdk.seen(|v| v["ev"] == "error" || v["ev"] == "unhandled_rejection");
    assert!(trouble.is_empty(), "SDK errors: {trouble:?}");
}

/// Waits for client `c`'s kick: `onError` with `code`, then `onDisconnected` with the same
/// reason, and checks the SDK gave up (logged out, no reconnect, one socket ever).
async fn expect_kicked(sdk: &mut Sdk, c: &str, code: u64) {
    let err = sdk.expect(&format!("{c}: onError {code}"), |v| is(v, "error", c)).await;
    assert_eq!(err["type"], code, "{err}");
    let ev = sdk.expect(&format!("{c}: onDisconnected"), |v| is(v, "disconnected", c)).await;
    assert_eq!(ev["reason"]["type"], code, "{ev}");
    let st = sdk.state(c).await;
    assert_eq!(st["logOut"], true, "{st}");
    assert_eq!(st["reconnecting"], false, "{st}");
    assert_eq!(st["opened"], false, "{st}");
}

/// Check 10: server-side kicks end the SDK's session with the reason it maps, and it does not
/// reconnect: `GET /users/{u}/disconnect` (217), the same device logging in elsewhere (206),
/// a password change (216), deactivation (207); a deactivated user's next login is refused
/// with the SDK's auth error.
#[tokio::test]
async fn sdk_kicks_and_deactivated_login() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["erin", "frank"]).await;
    let token = s.user_token("erin").await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;

    // Forced logout by the admin.
    sdk.open("a", "erin", &token, json!({"deviceId": "erin-a"})).await;
    let (st, b) = s.get("/users/erin/disconnect", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    expect_kicked(&mut sdk, "a", 217).await;

    // The same device (resource) logging in again elsewhere: the old one is told and stays
    // out; the new one keeps working.
    sdk.open("b", "erin", &token, json!({"deviceId": "erin-b"})).await;
    sdk.open("c", "erin", &token, json!({"deviceId": "erin-b"})).await;
    expect_kicked(&mut sdk, "b", 206).await;
    let id = rest_text(&s, &admin, "frank", "erin", "still here").await;
    sdk.message("c", "onTextMessage", &id).await;
    // Neither kicked client opened another socket, while all of the above went on.
    for c in ["a", "b"] {
        let st = sdk.state(c).await;
        assert_eq!((st["sockets"].clone(), st["reconnects"].clone()), (json!(1), json!(0)), "{c} reconnected: {st}");
    }

    // A password change kicks every device.
    let (st, b) = s.put("/users/erin/password", Some(&admin), json!({"newpassword": "erin-new"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    expect_kicked(&mut sdk, "c", 216).await;

    // Deactivation kicks too, and then refuses logins: with a token (the SDK's auth error,
    // WEBIM_CONNCTION_AUTH_ERROR) and with a password (the REST token request fails).
    sdk.cmd(json!({"op": "open", "c": "d", "user": "erin", "pwd": "erin-new", "deviceId": "erin-d"}));
    sdk.expect("d: onConnected", |v| is(v, "connected", "d")).await;
    let ok = sdk.expect("d: open() resolved", |v| is(v, "open_ok", "d")).await;
    let fresh = ok["accessToken"].as_str().expect("token").to_owned();
    let (st, b) = s.post("/users/erin/deactivate", Some(&admin), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    expect_kicked(&mut sdk, "d", 207).await;

    sdk.cmd(json!({"op": "open", "c": "e", "user": "erin", "token": fresh, "deviceId": "erin-e"}));
    let err = sdk.expect("e: open() rejected", |v| is(v, "open_err", "e")).await;
    assert_eq!(err["type"], 2, "a deactivated user's token login: {err}");
    assert!(sdk.seen(|v| is(v, "connected", "e")).is_empty());
    // AUTH_ERROR is final for the SDK: one attempt, no retries.
    let st = sdk.state("e").await;
    assert_eq!(st["sockets"], 1, "{st}");

    sdk.cmd(json!({"op": "open", "c": "f", "user": "erin", "pwd": "erin-new", "deviceId": "erin-f"}));
    let err = sdk.expect("f: open() rejected", |v| is(v, "open_err", "f")).await;
    // The REST error (400 invalid_grant "user not activated") as the SDK reports it:
    // WEBIM_CONNCTION_OPEN_ERROR with the error_description as the message.
    assert_eq!(err["type"], 1, "a deactivated user's password login: {err}");
    assert_eq!(err["message"], "user not activated", "{err}");
    assert_eq!(sdk.state("f").await["sockets"], 0, "the socket is never opened");

    // Reactivated, the user logs in again.
    let (st, b) = s.post("/users/erin/activate", Some(&admin), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    sdk.cmd(json!({"op": "open", "c": "g", "user": "erin", "pwd": "erin-new", "deviceId": "erin-g"}));
    sdk.expect("g: onConnected after reactivation", |v| is(v, "connected", "g")).await;
}

/// `missive app create` on the test's store: (client_id, client_secret).
fn cli_create_app(data: &crate::common::TestData) -> (String, String) {
    let v = data.create_app("sdkorg", "sdkapp");
    (v["client_id"].as_str().expect("client_id").into(), v["client_secret"].as_str().expect("client_secret").into())
}

/// Check 9: a message REST accepted (200) before the server process was killed with SIGKILL
/// reaches the SDK after a restart on the same data directory.
#[tokio::test]
async fn sdk_receives_what_was_accepted_before_kill_9() {
    let dir = crate::common::TestData::new().await;
    let (client_id, client_secret) = cli_create_app(&dir);
    let mut server = ProcessServer::start(&dir).await;
    let http = crate::common::http();
    let api = |addr: std::net::SocketAddr, path: &str| format!("http://{addr}/sdkorg/sdkapp{path}");
    let post = |url: String, token: Option<String>, body: Value| {
        let mut r = http.post(url).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let res = r.send().await.expect("request");
            let st = res.status();
            (st, res.json::<Value>().await.expect("json"))
        }
    };
    let (st, b) = post(
        api(server.addr, "/token"),
        None,
        json!({"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let admin = b["access_token"].as_str().expect("token").to_owned();
    let (st, b) = post(
        api(server.addr, "/users"),
        Some(admin.clone()),
        json!([{"username": "gina", "password": "gina-pw"}, {"username": "hank", "password": "hank-pw"}]),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = post(
        api(server.addr, "/token"),
        None,
        json!({"grant_type": "password", "username": "gina", "password": "gina-pw"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let token = b["access_token"].as_str().expect("token").to_owned();
    let (st, b) = post(
        api(server.addr, "/messages/users"),
        Some(admin.clone()),
        json!({"from": "hank", "to": ["gina"], "type": "txt", "body": {"msg": "before the crash"}, "ext": {"n": 1}}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let id = b["data"]["gina"].as_str().expect("id").to_owned();

    server.kill9();
    let server = ProcessServer::start(&dir).await;
    let mut sdk = Sdk::start(&format!("http://{}", server.addr), "sdkorg#sdkapp").await;
    sdk.open("gina", "gina", &token, json!({})).await;
    sdk.expect("gina: onOfflineMessageSyncStart", |v| is(v, "offline_start", "gina")).await;
    let m = sdk.message("gina", "onTextMessage", &id).await;
    assert_eq!(
        (m["msg"].clone(), m["from"].clone(), m["ext"].clone()),
        (json!("before the crash"), json!("hank"), json!({"n": 1}))
    );
    sdk.expect("gina: onOfflineMessageSyncFinish", |v| is(v, "offline_finish", "gina")).await;
}

/// A PNG of deterministic noise: incompressible, so (at 400 × 300) well above the 10 KiB under
/// which an image is its own thumbnail, and far below the SDK's part-upload threshold
/// (1.5 × 5 MiB).
pub(crate) fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let pixels = (0..w * h * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect();
    let img = image::RgbImage::from_raw(w, h, pixels).expect("buffer size");
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).expect("encode png");
    out
}

/// Check 11 (issue 4): the SDK uploads an image itself (`message.create({type: 'img',
/// file})` + `send()`: `POST /chatfiles` with `restrict-access: true`, multipart `file`),
/// sends the img message, and the peer's SDK gets `url` and `thumb` that download from the
/// server: the original byte for byte and a real, smaller thumbnail; the restricted file is
/// refused without its share-secret. The SDK's `thumbnailWidth`/`thumbnailHeight` (form
/// fields after the file) size the thumbnail.
#[tokio::test]
async fn sdk_uploads_and_sends_an_image() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["ivy", "jack"]).await;
    let ivy_token = s.user_token("ivy").await;
    let jack_token = s.user_token("jack").await;
    let base = base(&s);
    let mut sdk = Sdk::start(&base, &s.app_key()).await;
    sdk.open("ivy", "ivy", &ivy_token, json!({})).await;
    sdk.open("jack", "jack", &jack_token, json!({})).await;

    let png = noisy_png(400, 300);
    assert!(png.len() > 300_000 && png.len() < 1_000_000, "{} bytes", png.len());
    let path = s.data_dir().join("photo.png");
    std::fs::write(&path, &png).expect("write the test image");

    // The SDK puts `size: {width, height}` from create()'s options (0 × 0 when absent) into
    // the message; an app passes what it knows.
    let msg = json!({"width": 400, "height": 300});
    sdk.cmd(json!({"op": "sendImage", "c": "ivy", "tag": "img", "to": "jack", "path": path, "msg": msg}));
    let up = sdk.expect("ivy: upload settled", |v| is(v, "upload_ok", "ivy") || is(v, "upload_err", "ivy")).await;
    assert_eq!(up["ev"], "upload_ok", "{up}");
    let entity = &up["r"]["entities"][0];
    let uuid = entity["uuid"].as_str().unwrap_or_else(|| panic!("uuid in {up}")).to_owned();
    let secret = entity["share-secret"].as_str().unwrap_or_else(|| panic!("share-secret in {up}")).to_owned();
    let file_url = format!("{base}/{}/{}/chatfiles/{uuid}", s.app.org, s.app.name);
    let url = format!("{file_url}?em-redirect=true&share-secret={secret}");
    assert_eq!(up["r"]["url"], url.as_str(), "{up}");

    let ev = sdk.expect("ivy: send img settled", |v| is(v, "send_ok", "ivy") || is(v, "send_err", "ivy")).await;
    assert_eq!(ev["ev"], "send_ok", "{ev}");
    let id = ev["serverMsgId"].as_str().expect("serverMsgId").to_owned();

    let m = sdk.message("jack", "onImageMessage", &id).await;
    assert_eq!((m["type"].clone(), m["from"].clone(), m["to"].clone()), (json!("img"), json!("ivy"), json!("jack")));
    assert_eq!(m["url"], url.as_str(), "{m}");
    assert_eq!(m["thumb"], format!("{url}&thumbnail=true"), "{m}");
    assert_eq!(m["secret"], secret.as_str(), "{m}");
    assert_eq!(m["file_length"], png.len(), "{m}");
    assert_eq!((m["width"].clone(), m["height"].clone()), (json!(400), json!(300)), "{m}");

    // The URLs the peer was given download from the server.
    let http = crate::common::http();
    let get = |u: String| {
        let http = http.clone();
        async move {
            let r = http.get(&u).send().await.unwrap_or_else(|e| panic!("GET {u}: {e}"));
            let status = r.status();
            let ctype = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            (status, ctype, r.bytes().await.expect("body").to_vec())
        }
    };
    let (st, ctype, body) = get(m["url"].as_str().expect("url").to_owned()).await;
    assert_eq!((st, ctype.as_str()), (StatusCode::OK, "image/png"));
    assert!(body == png, "the original came back changed ({} bytes, sent {})", body.len(), png.len());
    let (st, ctype, thumb) = get(m["thumb"].as_str().expect("thumb").to_owned()).await;
    assert_eq!((st, ctype.as_str()), (StatusCode::OK, "image/png"));
    assert_eq!(image::guess_format(&thumb).expect("an image"), image::ImageFormat::Png);
    let t = image::load_from_memory(&thumb).expect("a decodable thumbnail");
    assert_eq!(t.width(), 170, "thumbnail {}x{}", t.width(), t.height());
    assert!((127..=128).contains(&t.height()), "thumbnail {}x{}", t.width(), t.height());
    assert!(thumb.len() < png.len() / 4, "thumbnail of {} bytes", thumb.len());

    // Restricted: refused without the share-secret, or with a wrong one.
    for u in [
        format!("{file_url}?em-redirect=true"),
        format!("{file_url}?em-redirect=true&thumbnail=true"),
        format!("{file_url}?em-redirect=true&share-secret=not-{secret}"),
    ] {
        let (st, _, body) = get(u.clone()).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{u}: {}", String::from_utf8_lossy(&body));
    }

    // `thumbnailWidth` / `thumbnailHeight`: the SDK sends them as form fields after the
    // file, and the thumbnail fits that box.
    let msg = json!({"width": 400, "height": 300, "thumbnailWidth": 100, "thumbnailHeight": 100});
    sdk.cmd(json!({"op": "sendImage", "c": "ivy", "tag": "small", "to": "jack", "path": path, "msg": msg}));
    let ev =
        sdk.expect("ivy: send small settled", |v| v["tag"] == "small" && v["ev"].as_str() != Some("upload_ok")).await;
    assert_eq!(ev["ev"], "send_ok", "{ev}");
    let m = sdk.message("jack", "onImageMessage", ev["serverMsgId"].as_str().expect("serverMsgId")).await;
    let (st, _, thumb) = get(m["thumb"].as_str().expect("thumb").to_owned()).await;
    assert_eq!(st, StatusCode::OK);
    let t = image::load_from_memory(&thumb).expect("a decodable thumbnail");
    assert_eq!(t.width(), 100, "thumbnail {}x{}", t.width(), t.height());
    assert!((74..=75).contains(&t.height()), "thumbnail {}x{}", t.width(), t.height());

    let trouble = sdk.seen(|v| v["ev"] == "error" || v["ev"] == "unhandled_rejection");
    assert!(trouble.is_empty(), "SDK errors: {trouble:?}");
}

/// End-to-end latency, REST 200 → SDK callback, over 1,000 messages on loopback (median and
/// p99 printed; nothing asserted). Run with
/// `cargo test -p missive-server --test it sdk_latency -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
async fn sdk_latency() {
    let s = TestServer::start_with(|c| {
        c.limits.send_calls_per_second = 0;
        c.limits.send_messages_per_minute = 0;
    })
    .await;
    let dir = require_harness();
    let count = std::env::var("LATENCY_MESSAGES").unwrap_or_else(|_| "1000".into());
    let out = tokio::task::spawn_blocking({
        let base = base(&s);
        let (org, app, id, secret) =
            (s.app.org.clone(), s.app.name.clone(), s.app.client_id.clone(), s.app.client_secret.clone());
        move || {
            Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
                .arg(dir.join("latency.js"))
                .args([&base, &format!("{org}#{app}"), &id, &secret, &count])
                .current_dir(&dir)
                .output()
                .expect("run node latency.js")
        }
    })
    .await
    .expect("join");
    assert!(out.status.success(), "latency.js failed: {}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
