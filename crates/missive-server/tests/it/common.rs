//! Test harness: start a real Missive server (in-process on an ephemeral port, or as a child
//! process for crash tests) with a temporary data directory, plus small HTTP helpers.
//!
//! The suite runs on the embedded SQLite store by default, and on PostgreSQL with
//! `MISSIVE_TEST_BACKEND=postgres`: every server then gets a fresh database on
//! `MISSIVE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped
//! when the test ends. Tests about SQLite itself (its disk, its lock, its backup) call
//! `sqlite_only` and run in the SQLite pass.

#![allow(dead_code)]

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use missive_core::model::App;
use missive_core::store::Store;
use missive_server::{Config, create_app, open_store, run};
use missive_store::postgres::ScratchDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An HTTP client for tests (installs the TLS crypto provider reqwest is built without).
pub fn http() -> reqwest::Client {
    missive_server::install_crypto_provider();
    reqwest::Client::new()
}

/// A config suited to tests: cheap password hashing, everything else at the defaults.
pub fn test_config(data: &Path) -> Config {
    let mut c = Config { data: data.to_path_buf(), listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..Config::default() };
    c.security.argon2_memory_kib = 64;
    c.security.argon2_iterations = 1;
    c
}

/// Whether this run of the suite is on PostgreSQL (`MISSIVE_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("MISSIVE_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres"))
}

/// For tests about the embedded store itself: true (and a note) when the suite runs on
/// PostgreSQL, where the test does not apply; it ran in the SQLite pass.
pub fn sqlite_only(test: &str) -> bool {
    if on_postgres() {
        println!("{test}: about the embedded SQLite store; covered by the SQLite pass");
    }
    on_postgres()
}

/// Where one test's server keeps its state: a temporary data directory, and a fresh
/// PostgreSQL database when the suite runs on PostgreSQL.
pub struct TestData {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pg: Option<ScratchDatabase>,
    /// A database this data uses but does not own (another node's of the same cluster).
    shared_url: Option<String>,
}

impl TestData {
    pub async fn new() -> TestData {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pg = if on_postgres() {
            let admin = std::env::var("MISSIVE_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            Some(ScratchDatabase::create(&admin, "it").await.unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}")))
        } else {
            None
        };
        TestData { dir: tmp.path().to_path_buf(), _tmp: Some(tmp), pg, shared_url: None }
    }

    /// A fresh data directory on the PostgreSQL database at `url` (a cluster's next node).
    pub fn sharing(url: &str) -> TestData {
        let tmp = tempfile::tempdir().expect("tempdir");
        TestData { dir: tmp.path().to_path_buf(), _tmp: Some(tmp), pg: None, shared_url: Some(url.to_owned()) }
    }

    /// The embedded store in `dir` (which the caller owns), whatever the suite's backend.
    pub fn sqlite_at(dir: &Path) -> TestData {
        TestData { dir: dir.to_path_buf(), _tmp: None, pg: None, shared_url: None }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn database_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.url.as_str()).or(self.shared_url.as_deref())
    }

    /// Points `config` at this data.
    pub fn apply(&self, config: &mut Config) {
        config.data = self.dir.clone();
        config.storage.url = self.database_url().unwrap_or_default().to_owned();
    }

    /// `--data DIR [--database-url URL]`, for the `missive` binary.
    pub fn store_args(&self) -> Vec<OsString> {
        let mut args = vec![OsString::from("--data"), self.dir.clone().into_os_string()];
        if let Some(url) = self.database_url() {
            args.extend([OsString::from("--database-url"), OsString::from(url)]);
        }
        args
    }

    /// The `missive` binary with `args` and this store.
    pub fn missive(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_missive"));
        c.args(args).args(self.store_args());
        c
    }

    /// `missive app create ORG APP` on this store; its credentials JSON.
    pub fn create_app(&self, org: &str, app: &str) -> serde_json::Value {
        let out = self.missive(&["app", "create", org, app]).output().expect("run missive");
        assert!(out.status.success(), "app create: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("credentials JSON")
    }
}

/// A running in-process server with one app `testorg/testapp`.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: App,
    pub config: Config,
    pub http: reqwest::Client,
    store_data: Option<TestData>,
    data: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts with a config adjusted by `tune` (limits, retention, ...).
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let data = TestData::new().await;
        let mut config = test_config(data.path());
        data.apply(&mut config);
        tune(&mut config);
        let store = open_store(&config).await.expect("open store");
        let app =
            create_app(&*store, "testorg", "testapp", config.security.open_registration).await.expect("create app");
        let mut server = TestServer::boot(config, store.shared(), app).await;
        server.data = data.path().to_path_buf();
        server.store_data = Some(data);
        server
    }

    async fn boot(config: Config, store: Arc<dyn Store>, app: App) -> TestServer {
        let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            run(cfg, store, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server run");
        });
        TestServer {
            addr,
            app,
            data: config.data.clone(),
            config,
            http: http(),
            store_data: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and starts a new one on the same data directory (and a
    /// new port): what was acknowledged before must still be there.
    pub async fn restart(mut self) -> TestServer {
        self.shutdown().await;
        let mut config = self.config.clone();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let store = open_store(&config).await.expect("reopen store");
        let mut server = TestServer::boot(config, store.shared(), self.app.clone()).await;
        server.store_data = self.store_data.take();
        server.data = self.data.clone();
        server
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The `missive` binary with `args` on this server's store (`--data`, `--database-url`),
    /// for commands that work beside a running server.
    pub fn missive(&self, args: &[&str]) -> Command {
        self.store_data.as_ref().expect("a server started by TestServer::start").missive(args)
    }

    /// `http://addr/testorg/testapp{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}/{}{}", self.addr, self.app.org, self.app.name, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket", self.addr)
    }

    pub fn app_key(&self) -> String {
        format!("{}#{}", self.app.org, self.app.name)
    }

    /// Any method with an optional bearer token and JSON body; returns status and JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = if path.starts_with("http") { path.to_owned() } else { self.url(path) };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// An app token from the client credentials.
    pub async fn admin_token(&self) -> String {
        let (s, b) = self
            .post(
                "/token",
                None,
                json!({"grant_type": "client_credentials", "client_id": self.app.client_id, "client_secret": self.app.client_secret}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Registers users (password = name + "-pw") with the app token.
    pub async fn register(&self, admin: &str, names: &[&str]) {
        let body: Vec<Value> = names.iter().map(|n| json!({"username": n, "password": format!("{n}-pw")})).collect();
        let (s, b) = self.post("/users", Some(admin), Value::Array(body)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["data"], json!([]), "{b}");
    }

    /// A user token by password grant (password = name + "-pw").
    pub async fn user_token(&self, name: &str) -> String {
        let (s, b) = self
            .post("/token", None, json!({"grant_type": "password", "username": name, "password": format!("{name}-pw")}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["access_token"].as_str().expect("access_token").to_owned()
    }

    /// An MSYNC session of `user` (token by password grant) on device `resource`.
    pub async fn msync(&self, user: &str, resource: &str) -> missive_msync::MsyncClient {
        let login = missive_msync::Login {
            url: self.ws_url(),
            app_key: self.app_key(),
            user: user.into(),
            token: self.user_token(user).await,
            resource: Some(resource.into()),
        };
        missive_msync::MsyncClient::connect(login, missive_msync::ClientOptions::default()).await.expect("login")
    }

    /// Sends a txt message with the app token; returns the recipient -> id map.
    pub async fn send_text(&self, admin: &str, from: &str, to: &[&str], text: &str) -> Value {
        let (s, b) = self
            .post("/messages/users", Some(admin), json!({"from": from, "to": to, "type": "txt", "body": {"msg": text}}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["data"].clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts an Easemob error body: status, `error`, `error_description`, and that the other
/// envelope keys are present.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, error: &str, description: &str) {
    assert_eq!(status.as_u16(), want_status, "status for {body}");
    assert_eq!(body["error"], error, "error in {body}");
    assert_eq!(body["error_description"], description, "error_description in {body}");
    assert!(body["exception"].is_string(), "exception in {body}");
    assert!(body["timestamp"].is_u64(), "timestamp in {body}");
    assert!(body["duration"].is_u64(), "duration in {body}");
}

/// The `missive` binary as a child process, for crash (SIGKILL) tests.
pub struct ProcessServer {
    pub child: Child,
    pub addr: SocketAddr,
}

impl ProcessServer {
    /// Starts `missive serve` on `data` and a free port; waits until `/health` answers.
    pub async fn start(data: &TestData) -> ProcessServer {
        ProcessServer::start_wrapped(data, &[]).await
    }

    /// Like `start`, with extra environment (`MISSIVE_…` config).
    pub async fn start_env(data: &TestData, env: &[(&str, &str)]) -> ProcessServer {
        ProcessServer::spawn(data, &[], env).await
    }

    /// Like `start`, run through a wrapper command (e.g. `prlimit --nofile=64:64 --`).
    pub async fn start_wrapped(data: &TestData, wrapper: &[&str]) -> ProcessServer {
        ProcessServer::spawn(data, wrapper, &[]).await
    }

    async fn spawn(data: &TestData, wrapper: &[&str], env: &[(&str, &str)]) -> ProcessServer {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_missive"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_missive")),
        };
        let child = cmd
            .args(["serve", "--listen", &addr.to_string()])
            .args(data.store_args())
            .env("MISSIVE_SECURITY__ARGON2_MEMORY_KIB", "64")
            .env("MISSIVE_SECURITY__ARGON2_ITERATIONS", "1")
            // Crash tests push as fast as they can; quotas are tested elsewhere.
            .env("MISSIVE_LIMITS__SEND_CALLS_PER_SECOND", "0")
            .env("MISSIVE_LIMITS__SEND_MESSAGES_PER_MINUTE", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            // MISSIVE_TEST_SERVER_LOGS=1 shows the servers' logs when a test needs debugging.
            .stderr(if std::env::var_os("MISSIVE_TEST_SERVER_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn missive");
        let server = ProcessServer { child, addr };
        wait_healthy(addr).await;
        server
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Polls `/health` until it answers (bounded: 15 s).
pub async fn wait_healthy(addr: SocketAddr) {
    let client = http();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client.get(format!("http://{addr}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "server at {addr} never became healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A response read whole: status, headers and the body as JSON (or a JSON string when it is
/// not JSON).
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// Helpers for the REST conformance tests: other apps on the same data directory, exact raw
/// bodies, and a read-only look at what the server stored.
impl TestServer {
    /// Creates another app through a second handle on the server's database (WAL mode lets
    /// both write on SQLite; PostgreSQL takes any number of clients). The running server finds it on its first request; nothing is restarted.
    pub async fn create_app(&self, org: &str, name: &str, open_registration: bool) -> App {
        let store = open_store(&self.config).await.expect("open second store");
        let app = create_app(&*store, org, name, open_registration).await.expect("create app");
        store.close().await;
        app
    }

    /// `http://addr/{org}/{app}{path}` for any app of this server.
    pub fn app_url(&self, app: &App, path: &str) -> String {
        format!("http://{}/{}/{}{}", self.addr, app.org, app.name, path)
    }

    /// An app token for `app` from its client credentials.
    pub async fn admin_token_for(&self, app: &App) -> String {
        let (s, b) = self
            .post(
                &self.app_url(app, "/token"),
                None,
                json!({"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Sends `body` byte for byte (no re-serialization), with extra headers; `path` is
    /// relative to the test app unless it is a full URL.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> RawResponse {
        let url = if path.starts_with("http") { path.to_owned() } else { self.url(path) };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        RawResponse { status, headers, body }
    }

    /// POSTs a JSON text exactly as given, as the documentation's curl examples do.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: impl Into<Vec<u8>>) -> (StatusCode, Value) {
        let r = self
            .raw(
                reqwest::Method::POST,
                path,
                token,
                &[("content-type", "application/json"), ("accept", "application/json")],
                Some(body.into()),
            )
            .await;
        (r.status, r.body)
    }

    /// The stored copy of a message, read through a second read-only look at the database.
    pub async fn stored_message(&self, id: &str) -> Option<missive_core::model::QueuedMessage> {
        let id = missive_core::id::MsgId(id.parse().expect("numeric message id"));
        let store = open_store(&self.config).await.expect("open second store");
        let msg = store.message(self.app.id, id).await.expect("read message");
        store.close().await;
        msg
    }

    /// `data[user]` of `GET /users/{user}/offline_msg_count`.
    pub async fn offline_count(&self, admin: &str, user: &str) -> u64 {
        let (s, b) = self.get(&format!("/users/{user}/offline_msg_count"), Some(admin)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["data"][user].as_u64().unwrap_or_else(|| panic!("count in {b}"))
    }

    /// `data[id]` of `GET /users/{user}/offline_msg_status/{id}`.
    pub async fn offline_status(&self, admin: &str, user: &str, id: &str) -> String {
        let (s, b) = self.get(&format!("/users/{user}/offline_msg_status/{id}"), Some(admin)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["data"][id].as_str().unwrap_or_else(|| panic!("status in {b}")).to_owned()
    }
}

/// Asserts Easemob's success envelope: `action`, `application`, `applicationName`,
/// `organization`, `path`, `uri`, and a `timestamp` within [`after`, now] and a `duration`.
#[track_caller]
pub fn assert_envelope(s: &TestServer, body: &Value, action: &str, path: &str, uri: &str, after: u64) {
    assert_eq!(body["action"], action, "action in {body}");
    assert_eq!(body["application"], s.app.id.to_string(), "application in {body}");
    assert_eq!(body["applicationName"], s.app.name, "applicationName in {body}");
    assert_eq!(body["organization"], s.app.org, "organization in {body}");
    assert_eq!(body["path"], path, "path in {body}");
    assert_eq!(body["uri"], uri, "uri in {body}");
    let ts = body["timestamp"].as_u64().unwrap_or_else(|| panic!("timestamp in {body}"));
    assert!(ts >= after && ts <= missive_core::id::now_ms(), "timestamp {ts} not within the request in {body}");
    assert!(body["duration"].is_u64(), "duration in {body}");
}

/// Asserts a message id as Easemob hands it out: a 19-digit decimal string whose top bits
/// are the send time (ms) within [`after`, now]. Returns it as a number.
#[track_caller]
pub fn assert_msg_id(id: &Value, after: u64) -> u64 {
    let s = id.as_str().unwrap_or_else(|| panic!("message id {id} is not a string"));
    assert!(s.len() == 19 && s.bytes().all(|b| b.is_ascii_digit()), "message id {s:?} is not 19 digits");
    let n: u64 = s.parse().expect("u64 id");
    let ms = missive_core::id::MsgId(n).unix_ms();
    assert!(ms >= after && ms <= missive_core::id::now_ms(), "id {s} was made at {ms}, not during the request");
    n
}

/// Returns once the wall clock has left the millisecond `ms`, so that the next message
/// the server makes carries a later time in its id: for tests of windows that are
/// inclusive at the millisecond (`delTime`, a zero recall window).
pub async fn wait_past_ms(ms: u64) {
    while missive_core::id::now_ms() <= ms {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
}

/// Polls `f` until it is true, for at most 15 s: a wait on the server's own state (an ack
/// being written, a sweep running), never a sleep standing in for readiness.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
