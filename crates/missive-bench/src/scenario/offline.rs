//! `offline`: M messages queued for each of U offline users, then all of them log in at once.
//!
//! Reports the drain rate, per user the time from login start to the first message (the
//! first page) and to the last, whether every queue arrived gap-free and in order, and the
//! time until the server counts no undelivered message for anyone. While the queues drain,
//! a probe message is sent to the first user every `--probe-ms`: its latency shows whether
//! real-time delivery waits behind the backlog. (The client pulls one queue at a time, as
//! the Web SDK does, so a probe in another conversation waits for the backlog's queue to
//! empty on the client side whatever the server does.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use missive_msync::{ClientOptions, Login, MsyncClient};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Common;
use crate::http::Conn;
use crate::load::{LoadSpec, MakeBody, Post, drive};
use crate::report::{Clock, Recorder};
use crate::setup::{Kind, Receivers, parallel, receive, reconcile, run_prefix, text, users_with_tokens};
use crate::target::{Target, round3};

#[derive(Args, Clone, Debug)]
pub struct OfflineArgs {
    #[command(flatten)]
    pub common: Common,
    /// Offline users (at most 600: each queued message is one call to all of them).
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Messages queued per user.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Calls in flight while queueing.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Milliseconds between real-time probe messages to the first user while draining (0: none).
    #[arg(long, default_value_t = 20)]
    pub probe_ms: u64,
    /// How long to wait for the queues to drain.
    #[arg(long, default_value_t = 120.0)]
    pub drain_timeout: f64,
}

pub async fn run(args: OfflineArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    anyhow::ensure!((1..=600).contains(&args.users), "--users must be 1..=600");
    let cap = args.messages.max(500) + 100;
    let env = [
        ("MISSIVE_QUEUE__MAX_OFFLINE_PER_USER".to_owned(), cap.to_string()),
        ("MISSIVE_LIMITS__SEND_BODY_BYTES".to_owned(), "1048576".to_owned()),
    ];
    let target = Target::open(&args.common.target, &env).await?;
    let admin = target.admin_auth().await?;
    let prefix = run_prefix();
    let names: Vec<String> = (0..args.users).map(|i| format!("{prefix}_o{i}")).collect();
    let tokens = users_with_tokens(&target, &admin, &names).await?;
    let clock = Clock::start();

    // Queue M messages for everyone while nobody is online.
    let to_json = Arc::new(serde_json::to_string(&names)?);
    let make: MakeBody = Arc::new(move |seq, start_us| {
        Bytes::from(format!(
            r#"{{"from":"offline-src","to":{to_json},"type":"txt","body":{{"msg":"{}"}}}}"#,
            text(seq, start_us)
        ))
    });
    let spec = LoadSpec {
        concurrency: args.concurrency,
        duration: Duration::from_secs(24 * 3600),
        warmup: Duration::ZERO,
        max: Some(args.messages),
        rate: None,
    };
    let path = target.path("/messages/users");
    let post = Post { addr: target.addr, path: path.clone(), auth: admin.clone() };
    let queued = drive(post, spec, clock, make, target.pid, "queue").await?;
    anyhow::ensure!(
        queued.accepted_seqs.len() as u64 == args.messages,
        "only {} of {} messages were accepted: {:?}",
        queued.accepted_seqs.len(),
        args.messages,
        queued.errors
    );
    let pending0 = offline_count(&target, &admin, &names[0]).await?;

    // Everyone logs in at once; each client is watched from the moment it is connected.
    let count = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let cpu0 = target.cpu_secs();
    let t0 = clock.us();
    let drained = Arc::new(AtomicBool::new(false));
    let probe = (args.probe_ms > 0).then(|| {
        let (addr, path, admin, to, drained) =
            (target.addr, path.clone(), admin.clone(), names[0].clone(), drained.clone());
        let every = Duration::from_millis(args.probe_ms);
        tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let mut sent = Vec::new();
            let mut seq = 0u64;
            while !drained.load(Ordering::Relaxed) {
                let start = clock.us();
                let body =
                    format!(r#"{{"from":"probe","to":["{to}"],"type":"txt","body":{{"msg":"p{seq}:{start}"}}}}"#);
                if let Ok((s, _)) = conn.send(Method::POST, &path, Some(&admin), Bytes::from(body)).await
                    && s.is_success()
                {
                    sent.push(seq);
                }
                seq += 1;
                tokio::time::sleep(every).await;
            }
            sent
        })
    });
    let logins: Arc<Vec<Login>> = Arc::new(
        names
            .iter()
            .zip(&tokens)
            .enumerate()
            .map(|(i, (n, t))| Login {
                url: target.ws_url_for(i, 1),
                app_key: target.app_key(),
                user: n.clone(),
                token: t.clone(),
                resource: Some(format!("bench{i}")),
            })
            .collect(),
    );
    let (count2, stop2) = (count.clone(), stop.clone());
    let started = parallel(args.users, 64, move |i| {
        let (logins, count, stop) = (logins.clone(), count2.clone(), stop2.clone());
        async move {
            let start = clock.us();
            let client = MsyncClient::connect(logins[i].clone(), ClientOptions::default())
                .await
                .map_err(|e| anyhow!("login failed: {e}"))?;
            Ok((start, tokio::spawn(receive(client, clock, count, stop))))
        }
    })
    .await?;
    let (login_starts, handles): (Vec<u64>, Vec<_>) = started.into_iter().unzip();
    let receivers = Receivers { handles, count, stop };
    let expected = args.users as u64 * args.messages;
    let all = receivers.wait_for(expected, Duration::from_secs_f64(args.drain_timeout), "drain").await;
    let t_all = clock.us();
    drained.store(true, Ordering::Relaxed);
    let probes_sent = match probe {
        Some(p) => p.await?,
        None => Vec::new(),
    };
    // The server's view: poll until no user has an undelivered message.
    let mut empty_at = None;
    let deadline = clock.us() + 30_000_000;
    'poll: while clock.us() < deadline {
        for n in &names {
            if offline_count(&target, &admin, n).await? > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue 'poll;
            }
        }
        empty_at = Some(clock.us());
        break;
    }
    let cpu = target.cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (clients, seen) = receivers.finish().await?;
    drop(clients);

    let mut first_page = Recorder::new();
    let mut all_in = Recorder::new();
    let mut gap_free = true;
    let mut out_of_order = 0;
    let seqs: Vec<u64> = (0..args.messages).collect();
    let mut per_user = Vec::new();
    for (i, r) in seen.iter().enumerate() {
        let peer: Vec<_> = r.receipts.iter().filter(|x| x.kind == Kind::Peer).collect();
        let start = login_starts[i];
        if let (Some(f), Some(l)) = (peer.iter().map(|x| x.at_us).min(), peer.iter().map(|x| x.at_us).max()) {
            first_page.record(f, f.saturating_sub(start));
            all_in.record(l, l.saturating_sub(start));
        }
        let rec = reconcile(std::slice::from_ref(r), Kind::Peer, &seqs, 1);
        if rec["missing"] != 0 || rec["duplicates"] != 0 || rec["unexpected"] != 0 {
            gap_free = false;
        }
        out_of_order += r.out_of_order;
        per_user.push(rec);
    }
    let mut probe_lat = Recorder::new();
    for x in seen.iter().flat_map(|s| s.receipts.iter()).filter(|x| x.kind == Kind::Probe) {
        probe_lat.record(x.start_us, x.at_us.saturating_sub(x.start_us));
    }
    let drain_s = (t_all - t0) as f64 / 1e6;
    let received = seen.iter().flat_map(|s| s.receipts.iter()).filter(|x| x.kind == Kind::Peer).count() as u64;
    let summary = json!({
        "scenario": "offline",
        "users": args.users,
        "messages_per_user": args.messages,
        "server": target.describe(),
        "queued": queued.summary(),
        "pending_first_user_before_login": pending0,
        "all_received": all,
        "received": received,
        "gap_free": gap_free,
        "out_of_order": out_of_order,
        "per_user_sample": per_user.first(),
        "drain_s": round3(drain_s),
        "drain_per_s": round3(received as f64 / drain_s.max(1e-9)),
        "server_cpu_s": cpu.map(round3),
        "drain_per_server_cpu_s": cpu.filter(|c| *c > 0.0).map(|c| round3(received as f64 / c)),
        "queues_empty_s": empty_at.map(|t| round3((t - t0) as f64 / 1e6)),
        "first_page": first_page.summary(),
        "all_in": all_in.summary(),
        "probes_sent": probes_sent.len(),
        "probe": probe_lat.summary(),
    });
    target.stop().await;
    Ok((summary, vec![("first-page".into(), first_page), ("all-in".into(), all_in), ("probe".into(), probe_lat)]))
}

async fn offline_count(target: &Target, admin: &hyper::header::HeaderValue, user: &str) -> anyhow::Result<u64> {
    let mut conn = Conn::new(target.addr);
    let v = conn.ok(Method::GET, &target.path(&format!("/users/{user}/offline_msg_count")), Some(admin), None).await?;
    v["data"][user].as_u64().ok_or_else(|| anyhow!("no count in {v}"))
}
