//! `overload`: REST sends offered open loop at a multiple (2×) of the rate the server
//! sustains, to see whether it sheds what it cannot take — 429/503 with Easemob error
//! bodies, answered at once — and stays responsive, instead of queueing without bound.
//!
//! The run has two phases on one server, with the same recipients online over MSYNC:
//! 1. **Sustainable rate**: a short closed-loop `send` with as many connections as the
//!    server admits sends at once, whose accepted/s is the most the server takes without
//!    shedding; `--sustainable N` skips it.
//! 2. **Overload**: `--factor` × that rate, open loop for `--duration` seconds, from a pool
//!    of keep-alive connections (`--connections`, default 4096) larger than the server's
//!    admission limit, so the generator's pool is never the queue: a request released
//!    while every connection is busy is counted (`waited_for_connection`), and latency runs
//!    from the scheduled time either way.
//!
//! Latency runs from each request's scheduled time; `admitted_service_latency` (sent →
//! 200) is given beside it, since on two shared cores the generator itself can be late.
//! Meanwhile a health probe asks `/health` every `--probe-ms` on its own connection and
//! thread, and the server's RSS, peak RSS, threads and fds are sampled every second. The
//! summary gives offered/s and accepted/s, answers by status, the count of non-200 answers
//! without an Easemob error body, latency of admitted (200) and refused requests, the
//! probe's latency and failures, memory before the pool connected and at start/peak/end of
//! the overload and after the drain, and the reconciliation of every
//! accepted message against what the recipients received.
//!
//! A started server gets the server's own admission limit (`limits.max_inflight_sends`,
//! which the other scenarios raise out of the way) unless `--max-inflight` says otherwise;
//! app quotas stay off unless set with `--server-env` (e.g.
//! `MISSIVE_LIMITS__SEND_CALLS_PER_SECOND=4000` for a run where the quota answers 429).

use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::Common;
use super::baseline::same_run;
use super::send::Online;
use crate::load::{LoadResult, LoadSpec, connect_pool, drive, drive_on};
use crate::probe::HealthProbe;
use crate::procfs::{self, ProcSample, Sampler};
use crate::report::{Recorder, write_memory_plot};
use crate::setup::{Kind, e2e_started, reconcile_started};
use crate::target::{Target, round3};

#[derive(Args, Clone, Debug)]
pub struct OverloadArgs {
    #[command(flatten)]
    pub common: Common,
    /// Recipients logged in over MSYNC; message N goes to recipient N mod R.
    #[arg(long, default_value_t = 100)]
    pub recipients: usize,
    /// The sustainable rate in messages per second; omit to measure it first (closed loop).
    #[arg(long)]
    pub sustainable: Option<f64>,
    /// Offered rate as a multiple of the sustainable one.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Seconds of overload.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Keep-alive connections offering the overload (more than the server admits at once).
    #[arg(long, default_value_t = 4096)]
    pub connections: usize,
    /// Measured seconds of the closed-loop phase that finds the sustainable rate (after a
    /// 1-s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub measure_secs: f64,
    /// Connections of that closed-loop phase (default: the server's admission limit, or
    /// 1024 for a running server). Throughput rises with concurrency, because the group
    /// commit takes more messages per fsync, so few connections would understate the rate.
    #[arg(long)]
    pub measure_concurrency: Option<usize>,
    /// `limits.max_inflight_sends` of a started server (default: the server's own default).
    #[arg(long)]
    pub max_inflight: Option<usize>,
    /// Milliseconds between health probes.
    #[arg(long, default_value_t = 100)]
    pub probe_ms: u64,
    /// A probe not answered within this many milliseconds fails.
    #[arg(long, default_value_t = 1000)]
    pub probe_timeout_ms: u64,
    /// How long to wait for the last deliveries after the overload.
    #[arg(long, default_value_t = 60.0)]
    pub drain_timeout: f64,
}

pub async fn run(args: OverloadArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    anyhow::ensure!(args.factor > 0.0 && args.duration > 0.0, "--factor and --duration must be positive");
    let limit = procfs::raise_nofile_limit();
    anyhow::ensure!(
        (args.connections + args.recipients + 200) as u64 <= limit,
        "{} connections need more than this process's {limit} file descriptors",
        args.connections
    );
    const INFLIGHT_KEY: &str = "MISSIVE_LIMITS__MAX_INFLIGHT_SENDS";
    let max_inflight = args.max_inflight.unwrap_or_else(|| missive_server::Config::default().limits.max_inflight_sends);
    let env = [(INFLIGHT_KEY.to_owned(), max_inflight.to_string())];
    // `--server-env` is applied last, so a limit given there is the one in force.
    let max_inflight = args
        .common
        .target
        .server_env
        .iter()
        .filter_map(|kv| kv.strip_prefix(INFLIGHT_KEY)?.strip_prefix('=')?.parse().ok())
        .next_back()
        .unwrap_or(max_inflight);
    let started = args.common.target.url.is_none();
    let target = Target::open(&args.common.target, &env).await?;
    let online = Online::start(&target, args.recipients).await?;
    let clock = online.clock;
    let make = online.body(false);
    let baseline = same_run(args.common.baseline_secs, 32, &online.post(&target).path, make.clone()).await?;

    // 1. The sustainable rate: what a closed loop gets accepted per second.
    let measure_concurrency = args.measure_concurrency.unwrap_or(if started { max_inflight } else { 1024 }).max(1);
    let measured = match args.sustainable {
        Some(_) => None,
        None => {
            let spec = LoadSpec {
                concurrency: measure_concurrency,
                duration: Duration::from_secs_f64(args.measure_secs),
                warmup: Duration::from_secs(1),
                max: None,
                rate: None,
            };
            Some(drive(online.post(&target), spec, clock, make.clone(), target.pid, "sustainable").await?)
        }
    };
    let sustainable = match (&measured, args.sustainable) {
        (_, Some(rate)) => rate,
        (Some(m), None) => m.accepted as f64 / m.window_s().max(1e-9),
        (None, None) => unreachable!("measured when not given"),
    };
    anyhow::ensure!(sustainable > 0.0, "nothing was accepted while measuring the sustainable rate");
    let measured_accepted = measured.as_ref().map_or(0, |m| m.accepted_seqs.len() as u64);
    let timeout = Duration::from_secs_f64(args.drain_timeout);
    let settled = online.wait_for(measured_accepted, timeout).await;

    // 2. The overload, watched by the probe and the sampler once the pool is up (what the
    // idle pool costs the server is reported apart).
    let rate = sustainable * args.factor;
    let before_pool = target.pid.map(|pid| ProcSample::read(pid, 0.0));
    let conns = connect_pool(target.addr, args.connections).await?;
    let sampler = target.pid.map(|pid| Sampler::start(pid, Duration::from_secs(1)));
    let probe = HealthProbe::start(
        target.addr,
        Duration::from_millis(args.probe_ms),
        Duration::from_millis(args.probe_timeout_ms),
        clock,
    );
    let spec = LoadSpec {
        concurrency: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::ZERO,
        max: None,
        rate: Some(rate),
    };
    let load = drive_on(conns, online.post(&target), spec, clock, make, target.pid, "overload").await?;
    let health = probe.finish()?;
    let samples = sampler.map(Sampler::finish).unwrap_or_default();

    let expected = measured_accepted + load.accepted_seqs.len() as u64;
    let all = online.wait_for(expected, timeout).await;
    let after_drain = target.pid.map(|pid| ProcSample::read(pid, 0.0));
    let seen = online.finish().await?;

    let (w0, w1) = load.window_us;
    let e2e = e2e_started(&seen, Kind::Peer, w0..w1 + 1);
    let window = load.window_s().max(1e-9);
    let offered_s = args.duration;
    let accepted_per_s = load.accepted_seqs.len() as f64 / window;
    let summary = json!({
        "scenario": "overload",
        "recipients": args.recipients,
        "connections": args.connections,
        "server": target.describe(),
        "max_inflight_sends": started.then_some(max_inflight),
        // Little's law: with the admission limit full, an admitted send waits about this long.
        "inflight_bound_ms": started.then(|| round3(max_inflight as f64 / accepted_per_s.max(1e-9) * 1e3)),
        "server_env": args.common.target.server_env,
        "sustainable": {
            "per_s": round3(sustainable),
            "concurrency": measured.is_some().then_some(measure_concurrency),
            "measured": measured.as_ref().map(LoadResult::summary),
            "deliveries": measured.as_ref().map(|m| reconcile_started(&seen, Kind::Peer, &m.accepted_seqs, 1, 0..w0)),
            "all_delivered_before_overload": settled,
        },
        "factor": args.factor,
        "offered_rate": round3(rate),
        "duration_s": args.duration,
        "offered": load.offered,
        "offered_per_s": round3(load.offered as f64 / offered_s),
        "accepted": load.accepted_seqs.len(),
        "accepted_per_s": round3(accepted_per_s),
        "window_s": round3(window),
        "responses": load.by_status(),
        "by_status": load.errors,
        "malformed_error_bodies": load.malformed,
        "malformed_example": load.malformed_example,
        "admitted_latency": load.latency.summary(),
        "admitted_service_latency": load.service_latency.summary(),
        "refused_latency": load.refused_latency.summary(),
        "admitted_by_second": load.latency.per_interval(w0, 1_000_000),
        "refused_by_second": load.refused_latency.per_interval(w0, 1_000_000),
        "late": {
            "waited_for_connection": load.waited_for_connection,
            "lateness": load.lateness.summary(),
        },
        "server_cpu_s": load.server_cpu_s.map(round3),
        "generator_cpu_s": round3(load.generator_cpu_s),
        "health": health.summary(),
        "memory": {
            "rss_kib_before_pool": before_pool.and_then(|s| s.rss_kib),
            "rss_kib": procfs::start_peak_end(&samples, |s| s.rss_kib),
            "rss_kib_after_drain": after_drain.and_then(|s| s.rss_kib),
            "hwm_kib_after_drain": after_drain.and_then(|s| s.hwm_kib),
            "fds": procfs::start_peak_end(&samples, |s| s.fds),
            "threads": procfs::start_peak_end(&samples, |s| s.threads),
            "samples": samples.iter().map(ProcSample::json).collect::<Vec<_>>(),
        },
        "all_delivered": all,
        "deliveries": reconcile_started(&seen, Kind::Peer, &load.accepted_seqs, 1, w0..u64::MAX),
        "closed_sessions": seen.iter().filter(|s| s.closed.is_some()).count(),
        "e2e": e2e.summary(),
        "baseline": baseline,
    });
    if let Some(dir) = &args.common.out {
        write_memory_plot(dir, "overload", &samples)?;
    }
    target.stop().await;
    let recorders = vec![
        ("admitted".to_owned(), load.latency),
        ("refused".to_owned(), load.refused_latency),
        ("health".to_owned(), health.latency),
        ("e2e".to_owned(), e2e),
    ];
    Ok((summary, recorders))
}
