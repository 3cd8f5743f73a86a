//! `fanout`: calls of `POST /messages/users` with N recipients (600, Easemob's maximum), all
//! of them online over MSYNC.
//!
//! Reports recipient-messages (deliveries) per wall second and per server CPU-second, and
//! per call the time from send start until the last recipient's client has the message.
//! Each delivery is a stored row (the call returns after the fsync covering all N) plus a
//! NOTICE, a pull and an ack on that recipient's socket. A 600-name body is larger than
//! Easemob's 5 KB send-body limit, so a started server gets a higher one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use serde_json::{Value, json};

use super::Common;
use super::baseline::same_run;
use crate::load::{LoadSpec, MakeBody, Post, drive};
use crate::report::{Clock, Recorder, ratio};
use crate::setup::{Kind, LoginPlan, Receivers, login_all, reconcile, run_prefix, text, users_with_tokens};
use crate::target::{Target, round3};

#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Recipients per call, all logged in.
    #[arg(long, default_value_t = 600)]
    pub recipients: usize,
    /// Calls to make.
    #[arg(long, default_value_t = 100)]
    pub calls: u64,
    /// Calls in flight at once (1 measures an unloaded call's completion time).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How long to wait for the last deliveries.
    #[arg(long, default_value_t = 60.0)]
    pub drain_timeout: f64,
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    anyhow::ensure!((1..=600).contains(&args.recipients), "--recipients must be 1..=600");
    let env = [("MISSIVE_LIMITS__SEND_BODY_BYTES".to_owned(), "1048576".to_owned())];
    let target = Target::open(&args.common.target, &env).await?;
    let admin = target.admin_auth().await?;
    let prefix = run_prefix();
    let names: Vec<String> = (0..args.recipients).map(|i| format!("{prefix}_f{i}")).collect();
    let tokens = users_with_tokens(&target, &admin, &names).await?;
    let clock = Clock::start();
    let (clients, _) = login_all(&target, &names, &tokens, &LoginPlan::default(), clock).await?;
    let receivers = Receivers::spawn(clients.into_iter().map(|c| c.client).collect(), clock);

    let to_json = Arc::new(serde_json::to_string(&names)?);
    let make: MakeBody = Arc::new(move |seq, start_us| {
        Bytes::from(format!(
            r#"{{"from":"fanout-src","to":{to_json},"type":"txt","body":{{"msg":"{}"}}}}"#,
            text(seq, start_us)
        ))
    });
    let path = target.path("/messages/users");
    let baseline = same_run(args.common.baseline_secs, args.concurrency.max(8), &path, make.clone()).await?;

    let spec = LoadSpec {
        concurrency: args.concurrency,
        duration: Duration::from_secs(24 * 3600),
        warmup: Duration::ZERO,
        max: Some(args.calls),
        rate: None,
    };
    let cpu0 = target.cpu_secs();
    let t0 = clock.us();
    let load = drive(Post { addr: target.addr, path, auth: admin }, spec, clock, make, target.pid, "fanout").await?;
    let expected = load.accepted_seqs.len() as u64 * args.recipients as u64;
    let all = receivers.wait_for(expected, Duration::from_secs_f64(args.drain_timeout), "deliveries").await;
    let cpu = target.cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    let (clients, seen) = receivers.finish().await?;
    drop(clients);

    let mut latency = Recorder::new();
    let mut last: HashMap<u64, (u64, u64, u64)> = HashMap::new();
    let mut t_last = t0;
    for x in seen.iter().flat_map(|s| s.receipts.iter()).filter(|x| x.kind == Kind::Peer) {
        latency.record(x.start_us, x.at_us.saturating_sub(x.start_us));
        let e = last.entry(x.seq).or_insert((x.start_us, x.at_us, 0));
        e.1 = e.1.max(x.at_us);
        e.2 += 1;
        t_last = t_last.max(x.at_us);
    }
    let mut completion = Recorder::new();
    let mut complete_calls = 0;
    for (start, end, n) in last.values() {
        if *n >= args.recipients as u64 {
            complete_calls += 1;
            completion.record(*start, end.saturating_sub(*start));
        }
    }
    let deliveries = latency.len();
    let wall = (t_last.saturating_sub(t0)) as f64 / 1e6;
    let per_cpu = cpu.filter(|c| *c > 0.0).map(|c| deliveries as f64 / c);
    let calls_per_cpu = cpu.filter(|c| *c > 0.0).map(|c| load.accepted_seqs.len() as f64 / c);
    let mut summary = json!({
        "scenario": "fanout",
        "recipients": args.recipients,
        "calls": args.calls,
        "concurrency": args.concurrency,
        "server": target.describe(),
        "accepted_calls": load.accepted_seqs.len(),
        "errors": load.errors,
        "all_delivered": all,
        "deliveries": reconcile(&seen, Kind::Peer, &load.accepted_seqs, args.recipients as u64),
        "complete_calls": complete_calls,
        "wall_s": round3(wall),
        "server_cpu_s": cpu.map(round3),
        "deliveries_per_s": round3(deliveries as f64 / wall.max(1e-9)),
        "deliveries_per_server_cpu_s": per_cpu.map(round3),
        "calls_per_server_cpu_s": calls_per_cpu.map(round3),
        "rest": load.latency.summary(),
        "call_completion": completion.summary(),
        "delivery": latency.summary(),
    });
    if let Some(b) = &baseline {
        // A delivery against a bare HTTP request: how many requests' worth of the stack's
        // capacity one recipient-message costs.
        summary["ratio_to_baseline"] = json!({
            "deliveries_per_server_cpu_s": ratio(per_cpu.unwrap_or(0.0), b["per_server_cpu_s"].as_f64()),
            "calls_per_server_cpu_s": ratio(calls_per_cpu.unwrap_or(0.0), b["per_server_cpu_s"].as_f64()),
        });
    }
    summary["baseline"] = baseline.unwrap_or(Value::Null);
    target.stop().await;
    Ok((summary, vec![("completion".into(), completion), ("delivery".into(), latency), ("rest".into(), load.latency)]))
}
