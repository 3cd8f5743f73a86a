//! The server under test: one already running (`--url`, credentials, optionally `--server-pid`)
//! or, by default, one this run starts as a child process with a temporary data directory.
//!
//! A child process, not a server in this process, so its CPU time and memory can be read
//! apart from the load generator's. The program is the `missive` binary built next to this
//! one (`cargo build --release -p missive-server -p missive-bench`), or this binary's own
//! `serve-missive` subcommand, which links the same server library, when there is none.
//! Quotas are disabled (0) and password hashing made cheap for the run, because the
//! benchmarks measure the message path, not Easemob's rate limits or Argon2.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use missive_store::postgres::ScratchDatabase;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http::{Conn, bearer};
use crate::procfs;

/// How to reach (or start) the server, shared by every scenario.
#[derive(Args, Clone, Debug)]
pub struct TargetArgs {
    /// Base URL of a running Missive (`http://127.0.0.1:8080`). Omit to start one.
    #[arg(long)]
    pub url: Option<String>,
    /// Organization of the app to use on a running server.
    #[arg(long, default_value = "demo")]
    pub org: String,
    /// App name on a running server.
    #[arg(long, default_value = "demo")]
    pub app: String,
    /// Client id of that app (`missive app create` prints it).
    #[arg(long, env = "MISSIVE_BENCH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret of that app.
    #[arg(long, env = "MISSIVE_BENCH_CLIENT_SECRET")]
    pub client_secret: Option<String>,
    /// PID of the running server, to read its CPU time and memory (same machine only).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Server program to start: a path to `missive`, or `self` for this binary's
    /// `serve-missive`. Default: `missive` beside this binary if present, else `self`.
    #[arg(long)]
    pub server_bin: Option<String>,
    /// Extra `MISSIVE_*` settings for a started server, as KEY=VALUE (repeatable).
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    pub server_env: Vec<String>,
    /// Let a started server listen on 0.0.0.0 instead of 127.0.0.1, so clients can spread
    /// over several 127.0.0.x destination addresses (`connections --spread`).
    #[arg(long)]
    pub listen_any: bool,
    /// Run a started server on PostgreSQL: a fresh database is made on the server this admin
    /// URL points at (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) and dropped after.
    #[arg(long, value_name = "ADMIN_URL")]
    pub postgres: Option<String>,
    /// MSYNC endpoints the clients log in to, round-robin (repeatable; default: the server's
    /// own `/websocket`). For a cluster: REST goes to `--url`, sessions to the other nodes,
    /// so every delivery crosses the bus (crates/missive-bench/cluster.sh).
    #[arg(long = "ws-url", value_name = "WS_URL")]
    pub ws_urls: Vec<String>,
}

/// How long a started server gets to exit after SIGTERM before it is killed.
const GRACEFUL_STOP: Duration = Duration::from_secs(10);

/// A server process this run started; killed when dropped.
struct Owned {
    child: Child,
    _data: tempfile::TempDir,
    /// Dropped after the child (fields drop in order), so the server goes first.
    _db: Option<ScratchDatabase>,
}

/// The server under test.
pub struct Target {
    pub addr: SocketAddr,
    pub org: String,
    pub app: String,
    client_id: String,
    client_secret: String,
    pub pid: Option<u32>,
    /// What was started (`missive` path or `self`), or `external`.
    pub program: String,
    /// Spawn → first `/health` 200, for a started server.
    pub startup_ms: Option<f64>,
    /// RSS right after start-up, before any setup traffic.
    pub idle_rss_kib: Option<u64>,
    /// `--ws-url`: where clients log in instead of this server's `/websocket`.
    ws_urls: Vec<String>,
    owned: Option<Owned>,
}

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Settings every started server gets: no quotas, cheap hashing, quiet logs, and no
/// admission-control shedding below what the load generator can offer.
const BASE_ENV: &[(&str, &str)] = &[
    ("MISSIVE_LIMITS__SEND_CALLS_PER_SECOND", "0"),
    ("MISSIVE_LIMITS__SEND_MESSAGES_PER_MINUTE", "0"),
    ("MISSIVE_LIMITS__MAX_INFLIGHT_SENDS", "100000"),
    ("MISSIVE_SECURITY__ARGON2_MEMORY_KIB", "64"),
    ("MISSIVE_SECURITY__ARGON2_ITERATIONS", "1"),
    ("MISSIVE_LOG", "warn"),
];

impl Target {
    /// Connects to `--url` or starts a server with `extra_env` on top of the base settings.
    pub async fn open(args: &TargetArgs, extra_env: &[(String, String)]) -> anyhow::Result<Target> {
        match &args.url {
            Some(url) => Target::external(args, url),
            None => Target::start(args, extra_env).await,
        }
    }

    fn external(args: &TargetArgs, url: &str) -> anyhow::Result<Target> {
        let hostport = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--url must be http://HOST:PORT (TLS is the proxy's job)"))?
            .trim_end_matches('/');
        let addr = hostport
            .to_socket_addrs()
            .with_context(|| format!("resolving {hostport}"))?
            .next()
            .ok_or_else(|| anyhow!("{hostport} resolves to nothing"))?;
        let (Some(id), Some(secret)) = (&args.client_id, &args.client_secret) else {
            bail!("--url needs --client-id and --client-secret of the app");
        };
        Ok(Target {
            addr,
            org: args.org.clone(),
            app: args.app.clone(),
            client_id: id.clone(),
            client_secret: secret.clone(),
            pid: args.server_pid,
            program: "external".into(),
            startup_ms: None,
            idle_rss_kib: None,
            ws_urls: args.ws_urls.clone(),
            owned: None,
        })
    }

    async fn start(args: &TargetArgs, extra_env: &[(String, String)]) -> anyhow::Result<Target> {
        let data = tempfile::Builder::new().prefix("missive-bench-").tempdir()?;
        let port = free_port()?;
        let host = if args.listen_any { "0.0.0.0" } else { "127.0.0.1" };
        let listen = format!("{host}:{port}");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let (program, mut cmd) = server_command(args.server_bin.as_deref())?;
        cmd.args(["--listen", &listen, "--data"]).arg(data.path());
        let db = match &args.postgres {
            Some(admin) => Some(ScratchDatabase::create(admin, "bench").await.context("creating a bench database")?),
            None => None,
        };
        if let Some(db) = &db {
            cmd.env("MISSIVE_STORAGE__URL", &db.url);
        }
        for (k, v) in BASE_ENV {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        for kv in &args.server_env {
            let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--server-env wants KEY=VALUE, got {kv}"))?;
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {program}"))?;
        let pid = child.id();
        // The first start on an empty data directory prints the demo app's credentials.
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| anyhow!("{program} printed no credentials within 30 s"))??
            .ok_or_else(|| anyhow!("{program} exited before printing credentials"))?;
        let creds: Value = serde_json::from_str(&line).with_context(|| format!("credentials line {line:?}"))?;
        let field = |k: &str| creds[k].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no {k} in {line}"));
        let startup = wait_healthy(addr, &mut child).await?;
        let startup_ms = startup.saturating_duration_since(spawned).as_secs_f64() * 1e3;
        let idle_rss_kib = pid.and_then(procfs::rss_kib);
        Ok(Target {
            addr,
            org: field("org")?,
            app: field("app")?,
            client_id: field("client_id")?,
            client_secret: field("client_secret")?,
            pid,
            program,
            startup_ms: Some(startup_ms),
            idle_rss_kib,
            ws_urls: args.ws_urls.clone(),
            owned: Some(Owned { child, _data: data, _db: db }),
        })
    }

    /// `/{org}/{app}{rest}`
    pub fn path(&self, rest: &str) -> String {
        format!("/{}/{}{}", self.org, self.app, rest)
    }

    /// Where client number `client` logs in: the `--ws-url`s round-robin if given, else this
    /// server over `spread` destination addresses (see [`Target::ws_url_on`]).
    pub fn ws_url_for(&self, client: usize, spread: usize) -> String {
        if self.ws_urls.is_empty() {
            self.ws_url_on(client % spread.max(1))
        } else {
            self.ws_urls[client % self.ws_urls.len()].clone()
        }
    }

    /// The MSYNC endpoint, on destination address `127.0.0.{1 + spread_index}`.
    pub fn ws_url_on(&self, spread_index: usize) -> String {
        if spread_index == 0 {
            return format!("ws://{}/websocket", self.addr);
        }
        format!("ws://127.0.0.{}:{}/websocket", 1 + spread_index % 254, self.addr.port())
    }

    pub fn app_key(&self) -> String {
        format!("{}#{}", self.org, self.app)
    }

    /// Server CPU seconds so far, if its PID is known.
    pub fn cpu_secs(&self) -> Option<f64> {
        self.pid.and_then(procfs::cpu_secs)
    }

    pub fn rss_kib(&self) -> Option<u64> {
        self.pid.and_then(procfs::rss_kib)
    }

    /// An app token from the client credentials, as an `Authorization` value.
    pub async fn admin_auth(&self) -> anyhow::Result<HeaderValue> {
        let mut conn = Conn::new(self.addr);
        let body = json!({"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret});
        let v = conn.ok(Method::POST, &self.path("/token"), None, Some(&body)).await?;
        bearer(v["access_token"].as_str().ok_or_else(|| anyhow!("no access_token in {v}"))?)
    }

    /// What the JSON summary says about the server.
    pub fn describe(&self) -> Value {
        json!({
            "program": self.program,
            "pid": self.pid,
            "startup_ms": self.startup_ms.map(round3),
            "idle_rss_kib": self.idle_rss_kib,
        })
    }

    /// Stops a started server as an operator would: SIGTERM, then SIGKILL if it has not
    /// exited within [`GRACEFUL_STOP`]. A clean exit is what lets an instrumented build
    /// (`scripts/build-pgo.sh`) write its profile; the data directory is thrown away anyway.
    pub async fn stop(mut self) {
        let Some(mut owned) = self.owned.take() else { return };
        let pid = owned.child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32));
        if let Some(pid) = pid
            && rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
            && tokio::time::timeout(GRACEFUL_STOP, owned.child.wait()).await.is_ok()
        {
            return;
        }
        let _ = owned.child.kill().await;
    }
}

/// The command that starts a server: an explicit path, `self`, or the automatic choice.
fn server_command(choice: Option<&str>) -> anyhow::Result<(String, Command)> {
    let me = std::env::current_exe()?;
    let beside = me.with_file_name(format!("missive{}", std::env::consts::EXE_SUFFIX));
    let program: PathBuf = match choice {
        Some("self") => return Ok(("self".into(), self_server(&me))),
        Some(path) => PathBuf::from(path),
        None if beside.is_file() => beside,
        None => return Ok(("self".into(), self_server(&me))),
    };
    let mut cmd = Command::new(&program);
    cmd.arg("serve");
    Ok((program.display().to_string(), cmd))
}

fn self_server(me: &std::path::Path) -> Command {
    let mut cmd = Command::new(me);
    cmd.arg("serve-missive");
    cmd
}

/// Polls `/health` until it answers 200; returns when it did.
async fn wait_healthy(addr: SocketAddr, child: &mut Child) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut conn = Conn::new(addr);
        if let Ok((StatusCode::OK, _)) = conn.send(Method::GET, "/health", None, Default::default()).await {
            return Ok(Instant::now());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the server exited with {status} before answering /health");
        }
        if Instant::now() > deadline {
            bail!("the server never answered /health on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Rounds to three decimals for the JSON summary.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
