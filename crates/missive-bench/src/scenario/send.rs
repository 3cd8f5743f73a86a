//! `send`: C keep-alive senders call `POST /messages/users` (txt, one recipient) while R
//! recipients are logged in over MSYNC and ack what they receive.
//!
//! Reports accepted and delivered messages per wall second and per server CPU-second,
//! REST latency (send start → 200, which Missive answers only after the fsync covering the
//! message) and end-to-end latency (send start → the recipient's client has the frame),
//! errors by status, and a reconciliation of every accepted message against what arrived.
//! `--rate` switches to open loop, where both latencies run from the scheduled send time.
//! `--sync-device` sends from logged-in users with `sync_device: true`, so each message
//! also reaches the sender's own device: those copies are measured separately.
//! `--callback ok|slow|down` adds a post-send callback rule for every message, to a local
//! receiver that answers at once, answers after 5 s, or is not there (`crate::sink`); the
//! summary then reports the callbacks received and the outbox the server was left with.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use hyper::header::HeaderValue;

use super::Common;
use super::baseline::{NameOf, merge, same_run, send_body};
use crate::load::{LoadSpec, MakeBody, Post, drive};
use crate::report::{Clock, Recorder, ratio};
use crate::setup::{
    Kind, LoginPlan, Received, Receivers, e2e_started, login_all, reconcile, run_prefix, users_with_tokens,
};
use crate::sink::{self, Sink};
use crate::target::{Target, round3};

#[derive(Args, Clone, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent keep-alive HTTP connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Recipients logged in over MSYNC; message N goes to recipient N mod R.
    #[arg(long, default_value_t = 100)]
    pub recipients: usize,
    /// Offered rate in messages per second (open loop); omit for closed loop (maximum).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop after this many messages (warm-up included; disables the warm-up).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Send from logged-in users with `sync_device: true` (their devices get copies).
    #[arg(long)]
    pub sync_device: bool,
    /// How long to wait for the last deliveries after the senders stop.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// A post-send callback rule to a local receiver that is `ok`, `slow` or `down`.
    #[arg(long, value_enum)]
    pub callback: Option<Sink>,
}

/// R recipients logged in over MSYNC, each watched by a receiver that timestamps what it
/// gets: what `send` and `overload` set up before they post.
pub struct Online {
    pub admin: HeaderValue,
    pub names: Arc<Vec<String>>,
    pub clock: Clock,
    pub receivers: Receivers,
}

impl Online {
    /// Registers `recipients` users on `target` and logs them all in.
    pub async fn start(target: &Target, recipients: usize) -> anyhow::Result<Online> {
        anyhow::ensure!(recipients >= 1, "--recipients must be at least 1");
        let admin = target.admin_auth().await?;
        let prefix = run_prefix();
        let names: Vec<String> = (0..recipients).map(|i| format!("{prefix}_r{i}")).collect();
        let tokens = users_with_tokens(target, &admin, &names).await?;
        let clock = Clock::start();
        let (clients, _) = login_all(target, &names, &tokens, &LoginPlan::default(), clock).await?;
        let receivers = Receivers::spawn(clients.into_iter().map(|c| c.client).collect(), clock);
        Ok(Online { admin, names: Arc::new(names), clock, receivers })
    }

    /// The send call, as the app (admin token).
    pub fn post(&self, target: &Target) -> Post {
        Post { addr: target.addr, path: target.path("/messages/users"), auth: self.admin.clone() }
    }

    /// Message `seq` goes to recipient `seq mod R`, from `loadgen` or, with `sync_device`,
    /// from the next recipient (whose own device then gets a copy).
    pub fn body(&self, sync_device: bool) -> MakeBody {
        let r = self.names.len() as u64;
        let (to_names, from_names) = (self.names.clone(), self.names.clone());
        let to: NameOf = Arc::new(move |seq: u64| to_names[(seq % r) as usize].clone());
        let from: NameOf = if sync_device {
            Arc::new(move |seq: u64| from_names[((seq + 1) % r) as usize].clone())
        } else {
            Arc::new(|_| "loadgen".to_owned())
        };
        send_body(from, to, sync_device)
    }

    /// Waits up to `timeout` until `expected` messages arrived in all; whether they did.
    pub async fn wait_for(&self, expected: u64, timeout: Duration) -> bool {
        self.receivers.wait_for(expected, timeout, "deliveries").await
    }

    /// Stops the receivers and closes the sessions: what each receiver saw.
    pub async fn finish(self) -> anyhow::Result<Vec<Received>> {
        let (clients, seen) = self.receivers.finish().await?;
        drop(clients);
        Ok(seen)
    }
}

pub async fn run(args: SendArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    anyhow::ensure!(!args.sync_device || args.recipients >= 2, "--sync-device needs at least 2 recipients");
    let target = Target::open(&args.common.target, &[]).await?;
    let online = Online::start(&target, args.recipients).await?;
    let receiver = match args.callback {
        Some(mode) => {
            let r = sink::Receiver::start(mode).await?;
            sink::add_rule(&target, &online.admin, &r.url).await?;
            Some(r)
        }
        None => None,
    };
    let clock = online.clock;
    let make = online.body(args.sync_device);
    let post = online.post(&target);
    let baseline = same_run(args.common.baseline_secs, args.concurrency, &post.path, make.clone()).await?;

    let spec = LoadSpec {
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(if args.messages.is_some() { 0.0 } else { args.warmup }),
        max: args.messages,
        rate: args.rate,
    };
    let load = drive(post, spec, clock, make, target.pid, "send").await?;
    let copies = if args.sync_device { 2 } else { 1 };
    let expected = load.accepted_seqs.len() as u64 * copies;
    let all = online.wait_for(expected, Duration::from_secs_f64(args.drain_timeout)).await;
    let callbacks = match (&receiver, args.callback) {
        (Some(r), Some(mode)) => {
            let accepted = load.accepted_seqs.len() as u64;
            let stopped = std::time::Instant::now();
            let received_at_stop = r.received();
            if mode == Sink::Ok {
                let deadline = stopped + Duration::from_secs_f64(args.drain_timeout);
                while r.received() < accepted && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            } else {
                // `/health`'s outbox figures are refreshed about once a second.
                tokio::time::sleep(Duration::from_millis(1_500)).await;
            }
            json!({
                "mode": format!("{mode:?}").to_lowercase(),
                "received_when_senders_stopped": received_at_stop,
                "received": r.received(),
                "all_received": r.received() >= accepted,
                "drain_s": round3(stopped.elapsed().as_secs_f64()),
                "outbox": sink::outbox(&target).await?,
            })
        }
        _ => Value::Null,
    };
    let rss_kib = target.rss_kib();
    let seen = online.finish().await?;

    let (w0, w1) = load.window_us;
    let e2e = e2e_started(&seen, Kind::Peer, w0..w1 + 1);
    let copy = e2e_started(&seen, Kind::Copy, w0..w1 + 1);
    let delivered_in_window =
        seen.iter().flat_map(|s| s.receipts.iter()).filter(|x| (w0..=w1).contains(&x.at_us)).count() as u64;
    let window = load.window_s().max(1e-9);
    let mut summary = json!({
        "scenario": "send",
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "rate": args.rate,
        "concurrency": args.concurrency,
        "recipients": args.recipients,
        "sync_device": args.sync_device,
        "callbacks": callbacks,
        "server": target.describe(),
        "server_rss_kib": rss_kib,
        "all_delivered": all,
        "delivered_per_s": round3(delivered_in_window as f64 / window),
        "delivered_per_server_cpu_s": load.server_cpu_s.filter(|c| *c > 0.0).map(|c| round3(delivered_in_window as f64 / c)),
        "deliveries": reconcile(&seen, Kind::Peer, &load.accepted_seqs, 1),
        "sync_copies": if args.sync_device { reconcile(&seen, Kind::Copy, &load.accepted_seqs, 1) } else { Value::Null },
        "closed_sessions": seen.iter().filter(|s| s.closed.is_some()).count(),
        "e2e": e2e.summary(),
        "sync_copy_e2e": if args.sync_device { copy.summary() } else { Value::Null },
    });
    let rest = load.summary();
    if let Some(b) = &baseline {
        let mine_cpu = rest["per_server_cpu_s"].as_f64().unwrap_or(0.0);
        let mine_wall = rest["per_s"].as_f64().unwrap_or(0.0);
        summary["ratio_to_baseline"] = json!({
            "per_server_cpu_s": ratio(mine_cpu, b["per_server_cpu_s"].as_f64()),
            "per_s": ratio(mine_wall, b["per_s"].as_f64()),
        });
    }
    summary["baseline"] = baseline.unwrap_or(Value::Null);
    merge(&mut summary, json!({"rest": rest}));
    let mut recorders = vec![("rest".to_owned(), load.latency), ("e2e".to_owned(), e2e)];
    if args.sync_device {
        recorders.push(("sync-copy".into(), copy));
    }
    target.stop().await;
    Ok((summary, recorders))
}
