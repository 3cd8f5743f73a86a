//! `connections`: N idle authenticated MSYNC sessions held with heartbeats.
//!
//! Reports the login rate and latency, and what each session costs the server: its RSS
//! growth, plus kernel socket-buffer memory and slab growth, divided by N. The kernel
//! figures are machine-wide and include the client's end of each loopback connection, so
//! they are upper bounds for the server's share. Sessions are spread over 127.0.0.x
//! destinations with `--spread K` (and `--listen-any`) if one address pair's ephemeral
//! ports (about 28,000 here) are not enough.
//!
//! With `--hold`, `--churn-per-s` and `--send-rate` it is also the soak test: sessions stay
//! up while X others connect and disconnect every second and REST sends arrive at a fixed
//! rate; RSS, open fds and threads are sampled throughout, and the drift between the first
//! and the last sample is reported (each sample is `[s, RSS KiB, fds, threads, peak RSS KiB]`).

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hyper::Method;
use missive_msync::{ClientOptions, Login, MsyncClient};
use serde_json::{Value, json};

use super::Common;
use super::baseline::send_body;
use crate::http::Conn;
use crate::load::{LoadSpec, Post, drive};
use crate::procfs;
use crate::report::{Clock, Recorder};
use crate::setup::{Kind, LoginPlan, Receivers, login_all, run_prefix, users_with_tokens};
use crate::target::{Target, round3};

#[derive(Args, Clone, Debug)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sessions to open (one user each).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to hold the sessions after they are all up.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
    /// Client heartbeat (UNREAD) period in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat: f64,
    /// Spread sessions over this many 127.0.0.x destinations (needs --listen-any).
    #[arg(long, default_value_t = 1)]
    pub spread: usize,
    /// Soak: sessions connected and disconnected per second during the hold.
    #[arg(long, default_value_t = 0)]
    pub churn_per_s: usize,
    /// Soak: REST sends per second to the held sessions during the hold (open loop).
    #[arg(long, default_value_t = 0.0)]
    pub send_rate: f64,
    /// Seconds between memory samples during the hold.
    #[arg(long, default_value_t = 1.0)]
    pub sample_every: f64,
}

pub async fn run(args: ConnectionsArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    let limit = procfs::raise_nofile_limit();
    anyhow::ensure!(
        (args.connections + args.churn_per_s * 2 + 200) as u64 <= limit,
        "{} sessions need more than this process's {limit} file descriptors",
        args.connections
    );
    anyhow::ensure!(
        args.spread <= 1 || args.common.target.listen_any || args.common.target.url.is_some(),
        "--spread needs --listen-any (a server listening on 0.0.0.0)"
    );
    let target = Target::open(&args.common.target, &[]).await?;
    let admin = target.admin_auth().await?;
    let prefix = run_prefix();
    let names: Vec<String> = (0..args.connections).map(|i| format!("{prefix}_c{i}")).collect();
    let tokens = users_with_tokens(&target, &admin, &names).await?;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = (target.rss_kib(), procfs::tcp_mem_pages(), procfs::slab_kib(), target.pid.and_then(procfs::open_fds));
    let clock = Clock::start();
    let plan = LoginPlan {
        concurrency: args.concurrency,
        heartbeat: Duration::from_secs_f64(args.heartbeat),
        spread: args.spread.max(1),
    };
    let t_login = clock.us();
    let (clients, login_latency) = login_all(&target, &names, &tokens, &plan, clock).await?;
    let login_s = (clock.us() - t_login) as f64 / 1e6;
    let receivers = Receivers::spawn(clients.into_iter().map(|c| c.client).collect(), clock);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = (target.rss_kib(), procfs::tcp_mem_pages(), procfs::slab_kib(), target.pid.and_then(procfs::open_fds));
    let sessions = server_sessions(&target).await;

    // The hold: optional churn and send load, sampled.
    let hold = Duration::from_secs_f64(args.hold);
    let hold_start = clock.us();
    let sender = (args.send_rate > 0.0).then(|| {
        let n = names.len() as u64;
        let to_names = Arc::new(names.clone());
        let make = send_body(
            Arc::new(|_| "soak".to_owned()),
            Arc::new(move |seq| to_names[(seq % n) as usize].clone()),
            false,
        );
        let spec =
            LoadSpec { concurrency: 64, duration: hold, warmup: Duration::ZERO, max: None, rate: Some(args.send_rate) };
        let post = Post { addr: target.addr, path: target.path("/messages/users"), auth: admin.clone() };
        let pid = target.pid;
        tokio::spawn(async move { drive(post, spec, clock, make, pid, "soak sends").await })
    });
    let sampler =
        target.pid.map(|pid| procfs::Sampler::start(pid, Duration::from_secs_f64(args.sample_every.max(0.1))));
    let mut churn: Vec<Option<MsyncClient>> = (0..args.churn_per_s).map(|_| None).collect();
    let mut churned = 0u64;
    let mut churn_errors = 0u64;
    let mut round = 0usize;
    while clock.us() - hold_start < hold.as_micros() as u64 {
        for (k, slot) in churn.iter_mut().enumerate() {
            drop(slot.take());
            let i = (round * args.churn_per_s + k) % names.len();
            let login = Login {
                url: target.ws_url_for(i, plan.spread),
                app_key: target.app_key(),
                user: names[i].clone(),
                token: tokens[i].clone(),
                resource: Some("churn".into()),
            };
            match MsyncClient::connect(login, ClientOptions::default()).await {
                Ok(c) => {
                    *slot = Some(c);
                    churned += 1;
                }
                Err(_) => churn_errors += 1,
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_secs(1).min(hold)).await;
    }
    drop(churn);
    let samples = sampler.map(procfs::Sampler::finish).unwrap_or_default();
    let load = match sender {
        Some(s) => Some(s.await??),
        None => None,
    };
    let end = (target.rss_kib(), target.pid.and_then(procfs::open_fds), target.pid.and_then(procfs::threads));
    if let Some(l) = &load {
        receivers.wait_for(l.accepted_seqs.len() as u64, Duration::from_secs(30), "deliveries").await;
    }
    let (clients, seen) = receivers.finish().await?;
    let closed = seen.iter().filter(|s| s.closed.is_some()).count();
    drop(clients);

    let n = args.connections as f64;
    let per = |a: Option<u64>, b: Option<u64>, unit: u64| {
        a.zip(b).map(|(a, b)| round3(b.saturating_sub(a) as f64 * unit as f64 / n))
    };
    let mut e2e = Recorder::new();
    for x in seen.iter().flat_map(|s| s.receipts.iter()).filter(|x| x.kind == Kind::Peer) {
        e2e.record(x.start_us, x.at_us.saturating_sub(x.start_us));
    }
    let summary = json!({
        "scenario": "connections",
        "connections": args.connections,
        "server": target.describe(),
        "sessions_on_server": sessions,
        "login_s": round3(login_s),
        "logins_per_s": round3(n / login_s.max(1e-9)),
        "login": login_latency.summary(),
        "server_rss_kib_before": before.0,
        "server_rss_kib_after": after.0,
        "rss_bytes_per_session": per(before.0, after.0, 1024),
        "tcp_mem_bytes_per_session_both_ends": per(before.1, after.1, procfs::PAGE_BYTES),
        "slab_bytes_per_session_both_ends": per(before.2, after.2, 1024),
        "server_fds_before": before.3,
        "server_fds_after": after.3,
        "closed_during_hold": closed,
        "hold": {
            "seconds": args.hold,
            "churn_per_s": args.churn_per_s,
            "churned": churned,
            "churn_errors": churn_errors,
            "send_rate": args.send_rate,
            "sends": load.as_ref().map(|l| l.summary()),
            "e2e": e2e.summary(),
            "rss_kib_end": end.0,
            "fds_end": end.1,
            "threads_end": end.2,
            "rss_drift": procfs::drift(&samples, |s| s.rss_kib),
            "fd_drift": procfs::drift(&samples, |s| s.fds),
            "samples": samples.iter().map(procfs::ProcSample::json).collect::<Vec<_>>(),
        },
    });
    if let Some(dir) = &args.common.out {
        crate::report::write_memory_plot(dir, "connections", &samples)?;
    }
    target.stop().await;
    let mut recorders = vec![("login".to_owned(), login_latency)];
    if load.is_some() {
        recorders.push(("soak-e2e".into(), e2e));
    }
    Ok((summary, recorders))
}

/// `sessions` from the server's `/health`.
async fn server_sessions(target: &Target) -> Option<u64> {
    let mut conn = Conn::new(target.addr);
    let (_, v) = conn.json(Method::GET, "/health", None, None).await.ok()?;
    v["sessions"].as_u64()
}
