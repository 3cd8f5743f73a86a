//! `baseline`: the same senders against a trivial axum handler in a child process, so every
//! throughput figure can be read as a fraction of what the HTTP stack alone does on this
//! machine at this moment. Machines are shared and noisy; ratios taken in the same run are
//! what we trust.
//!
//! The handler sits on the same stack as Missive (axum 0.8 `serve`, HTTP/1.1, Tokio's
//! multi-threaded runtime with one worker per core), reads the body and answers a small
//! JSON object: everything a send costs except the work of sending.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::Args;
use hyper::header::HeaderValue;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::load::{LoadResult, LoadSpec, MakeBody, Post, drive};
use crate::report::{Clock, Recorder};
use crate::target::free_port;

#[derive(Args, Clone, Debug)]
pub struct BaselineArgs {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `serve-baseline`: the trivial server. Prints `ready` once listening.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    async fn answer(_body: Bytes) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
        ([(CONTENT_TYPE, "application/json")], r#"{"action":"post","data":{"u":"1"}}"#)
    }
    let app = axum::Router::new().fallback(answer);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("ready");
    axum::serve(listener, app).await?;
    Ok(())
}

/// A running baseline server (killed on drop).
pub struct BaselineServer {
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    _child: tokio::process::Child,
}

impl BaselineServer {
    pub async fn start() -> anyhow::Result<BaselineServer> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve-baseline", "--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting serve-baseline")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let line = tokio::time::timeout(Duration::from_secs(10), BufReader::new(stdout).lines().next_line())
            .await
            .map_err(|_| anyhow!("serve-baseline did not start"))??;
        anyhow::ensure!(line.as_deref() == Some("ready"), "serve-baseline said {line:?}");
        Ok(BaselineServer { addr, pid: child.id(), _child: child })
    }
}

/// Runs the senders against a fresh baseline server with the given request shape.
pub async fn measure(spec: LoadSpec, path: String, auth: HeaderValue, make: MakeBody) -> anyhow::Result<LoadResult> {
    let server = BaselineServer::start().await?;
    let clock = Clock::start();
    let result = drive(Post { addr: server.addr, path, auth }, spec, clock, make, server.pid, "baseline").await?;
    drop(server);
    Ok(result)
}

/// The user name for message `seq`.
pub type NameOf = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// The request every baseline and `send` run posts: one txt message to one user.
pub fn send_body(from: NameOf, to: NameOf, sync_device: bool) -> MakeBody {
    Arc::new(move |seq, start_us| {
        let (f, t) = (from(seq), to(seq));
        let sync = if sync_device { r#","sync_device":true"# } else { "" };
        Bytes::from(format!(
            r#"{{"from":"{f}","to":["{t}"],"type":"txt","body":{{"msg":"{}"}}{sync}}}"#,
            crate::setup::text(seq, start_us)
        ))
    })
}

/// A short baseline run inside another scenario (`--baseline-secs`); `None` when disabled.
pub async fn same_run(secs: f64, concurrency: usize, path: &str, make: MakeBody) -> anyhow::Result<Option<Value>> {
    if secs <= 0.0 {
        return Ok(None);
    }
    let spec = LoadSpec {
        concurrency,
        duration: Duration::from_secs_f64(secs),
        warmup: Duration::from_secs_f64((secs / 4.0).min(1.0)),
        max: None,
        rate: None,
    };
    let auth = HeaderValue::from_static("Bearer baseline");
    let r = measure(spec, path.to_owned(), auth, make).await?;
    Ok(Some(r.summary()))
}

/// `missive-bench baseline`.
pub async fn run(args: BaselineArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    let spec = LoadSpec {
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(if args.requests.is_some() { 0.0 } else { args.warmup }),
        max: args.requests,
        rate: None,
    };
    let make = send_body(Arc::new(|_| "loadgen".into()), Arc::new(|seq| format!("u{}", seq % 100)), false);
    let auth = HeaderValue::from_static("Bearer baseline");
    let r = measure(spec, "/demo/demo/messages/users".into(), auth, make).await?;
    let mut summary = json!({"scenario": "baseline", "concurrency": args.concurrency});
    merge(&mut summary, r.summary());
    Ok((summary, vec![("http".into(), r.latency)]))
}

/// Copies `extra`'s fields into `into` (both objects).
pub fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}
