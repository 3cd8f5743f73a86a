//! The HTTP senders: C keep-alive connections posting as fast as answers come back
//! (closed loop), or at a fixed offered rate (open loop).
//!
//! Open loop avoids coordinated omission: a pacer thread releases request N at
//! `start + N / rate` whatever happened to earlier requests, and latency is measured from
//! that scheduled instant, so a stall shows up in every request it delayed, not just the
//! one that hit it. The pacer is an OS thread sleeping with `nanosleep` because Tokio's
//! timer has a 1 ms granularity, which would add up to a millisecond of pacing error to
//! every sample at the rates we care about. How late the generator itself released each
//! request is recorded separately (`lateness`), so its own noise is visible.
//!
//! The first `warmup` is sent but not measured; throughput, CPU and latency cover the
//! window after it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use hyper::header::HeaderValue;
use serde_json::{Value, json};

use crate::http::Conn;
use crate::procfs;
use crate::report::{Clock, Recorder};
use crate::setup::bar;
use crate::target::round3;

/// Builds the body of request `seq`, whose latency clock starts at `start_us`.
pub type MakeBody = Arc<dyn Fn(u64, u64) -> Bytes + Send + Sync>;

/// What load to offer.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub concurrency: usize,
    /// Measured time after the warm-up (the run also stops at `max` requests).
    pub duration: Duration,
    pub warmup: Duration,
    /// Stop after this many requests (warm-up included).
    pub max: Option<u64>,
    /// Requests per second, open loop; `None` is closed loop.
    pub rate: Option<f64>,
}

/// What the senders saw.
pub struct LoadResult {
    /// 200s for requests started in the measured window.
    pub accepted: u64,
    /// Sequence numbers of every 200, warm-up included (to reconcile deliveries).
    pub accepted_seqs: Vec<u64>,
    /// Non-200 answers and transport errors (`io`), by status.
    pub errors: BTreeMap<String, u64>,
    /// Request start (or scheduled time) → 200, measured window only.
    pub latency: Recorder,
    /// Open loop: actual send start − scheduled time.
    pub lateness: Recorder,
    /// Start and end of the measured window on the run clock.
    pub window_us: (u64, u64),
    /// Server CPU seconds in the window, when its PID is known.
    pub server_cpu_s: Option<f64>,
    /// Load generator CPU seconds in the window.
    pub generator_cpu_s: f64,
}

impl LoadResult {
    pub fn window_s(&self) -> f64 {
        (self.window_us.1.saturating_sub(self.window_us.0)) as f64 / 1e6
    }

    /// Accepted requests per wall second and per server CPU-second, errors and latency.
    pub fn summary(&self) -> Value {
        let w = self.window_s().max(1e-9);
        json!({
            "window_s": round3(w),
            "accepted": self.accepted,
            "accepted_total": self.accepted_seqs.len(),
            "errors": self.errors,
            "per_s": round3(self.accepted as f64 / w),
            "server_cpu_s": self.server_cpu_s.map(round3),
            "per_server_cpu_s": self.server_cpu_s.filter(|c| *c > 0.0).map(|c| round3(self.accepted as f64 / c)),
            "generator_cpu_s": round3(self.generator_cpu_s),
            "latency": self.latency.summary(),
            "lateness": if self.lateness.is_empty() { Value::Null } else { self.lateness.summary() },
        })
    }
}

struct Worker {
    accepted: u64,
    seqs: Vec<u64>,
    errors: BTreeMap<String, u64>,
    latency: Recorder,
    lateness: Recorder,
}

/// Where the senders post, and as whom.
#[derive(Clone)]
pub struct Post {
    pub addr: SocketAddr,
    pub path: String,
    pub auth: HeaderValue,
}

/// Posts per `spec` until the duration or count runs out. `server_pid` is read for CPU at
/// the window's edges.
pub async fn drive(
    post: Post,
    spec: LoadSpec,
    clock: Clock,
    make: MakeBody,
    server_pid: Option<u32>,
    what: &str,
) -> anyhow::Result<LoadResult> {
    let Post { addr, path, auth } = post;
    let begin_us = clock.us();
    let warm_us = begin_us + spec.warmup.as_micros() as u64;
    let end_us = warm_us + spec.duration.as_micros() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let accepted_now = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    // Open loop: the pacer releases sequence numbers on a channel at their scheduled time.
    let (tx, rx) = flume::unbounded::<u64>();
    let pacer = match spec.rate {
        None => {
            drop(tx);
            None
        }
        Some(rate) => {
            let (max, done) = (spec.max, done.clone());
            Some(std::thread::spawn(move || {
                let interval = 1e6 / rate.max(1e-3);
                for seq in 0.. {
                    let sched = begin_us + (seq as f64 * interval) as u64;
                    if sched >= end_us || max.is_some_and(|m| seq >= m) || done.load(Ordering::Relaxed) {
                        break;
                    }
                    loop {
                        let now = clock.us();
                        if now >= sched {
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(sched - now));
                    }
                    if tx.send(seq).is_err() {
                        break;
                    }
                }
            }))
        }
    };

    // CPU at the start of the measured window.
    let cpu_start = {
        let pid = server_pid;
        tokio::spawn(async move {
            tokio::time::sleep_until(clock.instant_at(warm_us).into()).await;
            (pid.and_then(procfs::cpu_secs), procfs::own_cpu_secs())
        })
    };

    let pb = match spec.max {
        Some(m) => bar(m, what),
        None => bar(spec.duration.as_millis() as u64 + spec.warmup.as_millis() as u64, what),
    };
    let ticker = {
        let (pb, accepted_now, done) = (pb.clone(), accepted_now.clone(), done.clone());
        let by_count = spec.max.is_some();
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let n = accepted_now.load(Ordering::Relaxed);
                if by_count {
                    pb.set_position(n);
                } else {
                    pb.set_position((clock.us() - begin_us) / 1000);
                    pb.set_message(format!("{n} accepted"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut workers = Vec::new();
    for _ in 0..spec.concurrency.max(1) {
        let (path, auth, make, next, accepted_now, rx) =
            (path.clone(), auth.clone(), make.clone(), next.clone(), accepted_now.clone(), rx.clone());
        let (open, max) = (spec.rate, spec.max);
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let mut w = Worker {
                accepted: 0,
                seqs: Vec::new(),
                errors: BTreeMap::new(),
                latency: Recorder::new(),
                lateness: Recorder::new(),
            };
            loop {
                let (seq, start_us) = match open {
                    Some(rate) => match rx.recv_async().await {
                        Ok(seq) => {
                            let sched = begin_us + (seq as f64 * 1e6 / rate.max(1e-3)) as u64;
                            let now = clock.us();
                            if sched >= warm_us {
                                w.lateness.record(now, now.saturating_sub(sched));
                            }
                            (seq, sched)
                        }
                        Err(_) => break,
                    },
                    None => {
                        let seq = next.fetch_add(1, Ordering::Relaxed);
                        let now = clock.us();
                        if max.is_some_and(|m| seq >= m) || now >= end_us {
                            break;
                        }
                        (seq, now)
                    }
                };
                let body = make(seq, start_us);
                let result = conn.send(Method::POST, &path, Some(&auth), body).await;
                let now = clock.us();
                match result {
                    Ok((status, _)) if status.is_success() => {
                        w.seqs.push(seq);
                        accepted_now.fetch_add(1, Ordering::Relaxed);
                        if start_us >= warm_us {
                            w.accepted += 1;
                            w.latency.record(start_us, now.saturating_sub(start_us));
                        }
                    }
                    Ok((status, _)) => *w.errors.entry(status.as_u16().to_string()).or_default() += 1,
                    Err(_) => *w.errors.entry("io".into()).or_default() += 1,
                }
            }
            w
        }));
    }
    drop(rx);
    let mut result = LoadResult {
        accepted: 0,
        accepted_seqs: Vec::new(),
        errors: BTreeMap::new(),
        latency: Recorder::new(),
        lateness: Recorder::new(),
        window_us: (warm_us, end_us),
        server_cpu_s: None,
        generator_cpu_s: 0.0,
    };
    for w in workers {
        let w = w.await?;
        result.accepted += w.accepted;
        result.accepted_seqs.extend(w.seqs);
        for (k, v) in w.errors {
            *result.errors.entry(k).or_default() += v;
        }
        result.latency.merge(w.latency);
        result.lateness.merge(w.lateness);
    }
    let end = clock.us();
    done.store(true, Ordering::Relaxed);
    if let Some(p) = pacer {
        let _ = p.join();
    }
    let _ = ticker.await;
    pb.finish_and_clear();
    let cpu_end = (server_pid.and_then(procfs::cpu_secs), procfs::own_cpu_secs());
    // A run that ended (by count) before its warm-up did has no window: measure it all.
    let (cpu0, window_start) = if end <= warm_us {
        cpu_start.abort();
        (None, begin_us)
    } else {
        (Some(cpu_start.await?), warm_us)
    };
    result.window_us = (window_start, end);
    if let Some((server0, own0)) = cpu0 {
        result.server_cpu_s = server0.zip(cpu_end.0).map(|(a, b)| b - a);
        result.generator_cpu_s = cpu_end.1 - own0;
    }
    Ok(result)
}
