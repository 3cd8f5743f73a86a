//! `sdk`: messages sent client to client over MSYNC, the way the Web SDK sends them: upload
//! (`CommSyncUL{meta}`) → the server stores it and acks with the server id → the peer gets a
//! NOTICE, pulls and acks.
//!
//! P sender clients each keep W uploads in flight to their own peer. Reports acked uploads
//! per wall second and per server CPU-second, upload-ack latency, and end-to-end latency
//! (upload start → the peer's client has the message).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use missive_msync::ClientError;
use missive_msync::client::text_body;
use serde_json::{Value, json};

use super::Common;
use super::baseline::{same_run, send_body};
use crate::procfs;
use crate::report::{Clock, Recorder, ratio};
use crate::setup::{Kind, LoginPlan, Receivers, bar, login_all, reconcile, run_prefix, text, users_with_tokens};
use crate::target::{Target, round3};

#[derive(Args, Clone, Debug)]
pub struct SdkArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sender → receiver pairs (2 users each).
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    /// Uploads each sender keeps in flight.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop after this many messages (disables the warm-up).
    #[arg(long)]
    pub messages: Option<u64>,
    /// How long to wait for the last deliveries.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
}

pub async fn run(args: SdkArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    anyhow::ensure!(args.pairs >= 1, "--pairs must be at least 1");
    let target = Target::open(&args.common.target, &[]).await?;
    let admin = target.admin_auth().await?;
    let prefix = run_prefix();
    let senders: Vec<String> = (0..args.pairs).map(|i| format!("{prefix}_a{i}")).collect();
    let peers: Vec<String> = (0..args.pairs).map(|i| format!("{prefix}_b{i}")).collect();
    let all: Vec<String> = senders.iter().chain(&peers).cloned().collect();
    let tokens = users_with_tokens(&target, &admin, &all).await?;
    let clock = Clock::start();
    let (mut clients, _) = login_all(&target, &all, &tokens, &LoginPlan::default(), clock).await?;
    let peer_clients = clients.split_off(args.pairs);
    let receivers = Receivers::spawn(peer_clients.into_iter().map(|c| c.client).collect(), clock);
    let sender_clients: Vec<Arc<missive_msync::MsyncClient>> =
        clients.into_iter().map(|c| Arc::new(c.client)).collect();

    // The bare-HTTP baseline gets a REST send of the same message, for the ratio.
    let make = send_body(Arc::new(|_| "loadgen".to_owned()), Arc::new(|_| "peer".to_owned()), false);
    let baseline =
        same_run(args.common.baseline_secs, args.pairs * args.in_flight, &target.path("/messages/users"), make).await?;

    let warmup = if args.messages.is_some() { Duration::ZERO } else { Duration::from_secs_f64(args.warmup) };
    let begin = clock.us();
    let warm_us = begin + warmup.as_micros() as u64;
    let end_us = warm_us + (args.duration * 1e6) as u64;
    let cpu_at_warm = {
        let pid = target.pid;
        tokio::spawn(async move {
            tokio::time::sleep_until(clock.instant_at(warm_us).into()).await;
            (pid.and_then(procfs::cpu_secs), procfs::own_cpu_secs())
        })
    };
    let next = Arc::new(AtomicU64::new(0));
    let pb = bar(args.messages.unwrap_or((args.duration + warmup.as_secs_f64()) as u64 * 1000), "sdk");
    let mut tasks = Vec::new();
    for (i, client) in sender_clients.iter().enumerate() {
        for _ in 0..args.in_flight.max(1) {
            let (client, next, pb) = (client.clone(), next.clone(), pb.clone());
            let (from, to, max, by_count) =
                (senders[i].clone(), peers[i].clone(), args.messages, args.messages.is_some());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut measured = 0u64;
                let mut latency = Recorder::new();
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    let start = clock.us();
                    if max.is_some_and(|m| seq >= m) || start >= end_us {
                        break;
                    }
                    let result = client.send(&to, text_body(&from, &to, &text(seq, start), None)).await;
                    let now = clock.us();
                    match result {
                        Ok(_) => {
                            acked.push(seq);
                            if start >= warm_us {
                                measured += 1;
                                latency.record(start, now - start);
                            }
                            if by_count {
                                pb.inc(1);
                            } else {
                                pb.set_position((now - begin) / 1000);
                            }
                        }
                        Err(e) => {
                            let key = match e {
                                ClientError::Rejected { code, .. } => format!("rejected {code}"),
                                ClientError::Timeout(_) => "timeout".into(),
                                ClientError::Closed => "closed".into(),
                                _ => "other".into(),
                            };
                            *errors.entry(key).or_default() += 1;
                        }
                    }
                }
                (acked, measured, latency, errors)
            }));
        }
    }
    let mut acked = Vec::new();
    let mut measured = 0;
    let mut ack_latency = Recorder::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let (a, m, l, e) = t.await?;
        acked.extend(a);
        measured += m;
        ack_latency.merge(l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let end = clock.us();
    pb.finish_and_clear();
    let cpu_end = (target.cpu_secs(), procfs::own_cpu_secs());
    let (cpu0, window_start) = if end > warm_us { (Some(cpu_at_warm.await?), warm_us) } else { (None, begin) };
    let server_cpu = cpu0.and_then(|c| c.0).zip(cpu_end.0).map(|(a, b)| b - a);
    let generator_cpu = cpu0.map(|c| cpu_end.1 - c.1);
    let measured = if cpu0.is_some() { measured } else { acked.len() as u64 };
    let window = (end - window_start) as f64 / 1e6;

    let all_in =
        receivers.wait_for(acked.len() as u64, Duration::from_secs_f64(args.drain_timeout), "deliveries").await;
    let (clients, seen) = receivers.finish().await?;
    drop(clients);
    drop(sender_clients);
    let mut e2e = Recorder::new();
    for x in seen.iter().flat_map(|s| s.receipts.iter()).filter(|x| x.kind == Kind::Peer && x.start_us >= window_start)
    {
        e2e.record(x.start_us, x.at_us.saturating_sub(x.start_us));
    }
    let per_cpu = server_cpu.filter(|c| *c > 0.0).map(|c| measured as f64 / c);
    let mut summary = json!({
        "scenario": "sdk",
        "pairs": args.pairs,
        "in_flight": args.in_flight,
        "server": target.describe(),
        "window_s": round3(window),
        "acked": measured,
        "acked_total": acked.len(),
        "errors": errors,
        "all_delivered": all_in,
        "deliveries": reconcile(&seen, Kind::Peer, &acked, 1),
        "per_s": round3(measured as f64 / window.max(1e-9)),
        "server_cpu_s": server_cpu.map(round3),
        "per_server_cpu_s": per_cpu.map(round3),
        "generator_cpu_s": generator_cpu.map(round3),
        "upload_ack": ack_latency.summary(),
        "e2e": e2e.summary(),
    });
    if let Some(b) = &baseline {
        summary["ratio_to_baseline"] = json!({
            "per_server_cpu_s": ratio(per_cpu.unwrap_or(0.0), b["per_server_cpu_s"].as_f64()),
        });
    }
    summary["baseline"] = baseline.unwrap_or(Value::Null);
    target.stop().await;
    Ok((summary, vec![("upload-ack".into(), ack_latency), ("e2e".into(), e2e)]))
}
