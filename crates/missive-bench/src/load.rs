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
//!
//! Every connection is opened before the clock starts. In open loop a request released
//! while every connection is busy waits in a backlog for the next free one; those are
//! counted (`waited_for_connection`) so a pool too small for the offered rate shows up as the
//! generator's fault, not the server's, and `service_latency` (sent → answered) is reported
//! beside the latency from the scheduled time. Refusals are timed too, and each non-2xx body is checked for Easemob's error
//! fields, since a server that sheds load must still answer the way clients parse.

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
use crate::setup::{bar, parallel};
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

/// Connections opened at once before a run: enough to be quick, few enough that the
/// server's accept backlog never overflows (an overflow costs a 1-s SYN retry).
const CONNECT_CONCURRENCY: usize = 64;

/// What the senders saw.
pub struct LoadResult {
    /// 200s for requests started in the measured window.
    pub accepted: u64,
    /// Requests sent (answered, refused or failed), warm-up included.
    pub offered: u64,
    /// Sequence numbers of every 200, warm-up included (to reconcile deliveries).
    pub accepted_seqs: Vec<u64>,
    /// Non-200 answers and transport errors (`io`), by status.
    pub errors: BTreeMap<String, u64>,
    /// Request start (or scheduled time) → 200, measured window only.
    pub latency: Recorder,
    /// Request sent → 200, measured window only: in open loop, without the time the request
    /// waited in the generator (for its scheduled time to be noticed, or for a connection).
    pub service_latency: Recorder,
    /// Request start (or scheduled time) → a non-2xx answer, measured window only.
    pub refused_latency: Recorder,
    /// Non-2xx answers whose body is not an Easemob error (see [`is_easemob_error`]).
    pub malformed: u64,
    /// The first such answer, `STATUS BODY` (body cut at 200 bytes), to say what it was.
    pub malformed_example: Option<String>,
    /// Open loop: requests released while every connection was busy (they waited).
    pub waited_for_connection: u64,
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
            "service_latency": if self.lateness.is_empty() { Value::Null } else { self.service_latency.summary() },
            "refused_latency": self.refused_latency.summary(),
            "malformed_error_bodies": self.malformed,
            "malformed_example": self.malformed_example,
            "lateness": if self.lateness.is_empty() { Value::Null } else { self.lateness.summary() },
            "waited_for_connection": if self.lateness.is_empty() { Value::Null } else { json!(self.waited_for_connection) },
        })
    }

    /// Answers by status: `200` (accepted), `429`, `503`, `other` (any other status) and `io`
    /// (transport errors), warm-up included.
    pub fn by_status(&self) -> Value {
        let get = |k: &str| self.errors.get(k).copied().unwrap_or(0);
        let other: u64 =
            self.errors.iter().filter(|(k, _)| !["429", "503", "io"].contains(&k.as_str())).map(|(_, v)| v).sum();
        json!({
            "200": self.accepted_seqs.len(),
            "429": get("429"),
            "503": get("503"),
            "other": other,
            "io": get("io"),
        })
    }
}

/// Whether `body` is an Easemob error body: a JSON object with string `error`, `exception`
/// and `error_description` and numeric `timestamp` and `duration` — the fields Easemob's
/// SDKs and server libraries read from every failed call.
pub fn is_easemob_error(body: &[u8]) -> bool {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else { return false };
    ["error", "exception", "error_description"].iter().all(|k| v.get(*k).is_some_and(Value::is_string))
        && ["timestamp", "duration"].iter().all(|k| v.get(*k).is_some_and(Value::is_number))
}

struct Worker {
    accepted: u64,
    seqs: Vec<u64>,
    errors: BTreeMap<String, u64>,
    latency: Recorder,
    service_latency: Recorder,
    refused_latency: Recorder,
    malformed: u64,
    malformed_example: Option<String>,
    lateness: Recorder,
}

/// Where the senders post, and as whom.
#[derive(Clone)]
pub struct Post {
    pub addr: SocketAddr,
    pub path: String,
    pub auth: HeaderValue,
}

/// When the measured run starts and ends, on the run clock (fixed once every worker is ready).
#[derive(Clone, Copy, Debug)]
struct Times {
    begin_us: u64,
    warm_us: u64,
    end_us: u64,
}

/// What every worker shares.
struct Shared {
    path: String,
    auth: HeaderValue,
    make: MakeBody,
    spec: LoadSpec,
    clock: Clock,
    /// Closed loop: the next sequence number.
    next: AtomicU64,
    accepted_now: AtomicU64,
    refused_now: AtomicU64,
    dispatch: Dispatch,
}

/// Open loop: who sends the next released request. The pacer hands it straight to an idle
/// worker through that worker's own channel, or, when every worker is busy, leaves it in a
/// backlog that workers empty before going idle again. One channel shared by thousands of
/// waiting workers would cost the generator time per request that grows with the pool.
struct Dispatch {
    state: std::sync::Mutex<DispatchState>,
    inboxes: Vec<flume::Sender<u64>>,
}

#[derive(Default)]
struct DispatchState {
    /// Workers waiting on their inbox.
    idle: Vec<usize>,
    /// Requests released while no worker was idle, oldest first.
    backlog: std::collections::VecDeque<u64>,
    /// The pacer is done: workers exit once the backlog is empty.
    closed: bool,
}

/// Sent to an idle worker's inbox when the pacer is done.
const STOP: u64 = u64::MAX;

impl Dispatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, DispatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pacer: hands `seq` to an idle worker; false if it had to wait in the backlog.
    fn release(&self, seq: u64) -> bool {
        let mut st = self.lock();
        match st.idle.pop() {
            Some(w) => {
                drop(st);
                let _ = self.inboxes[w].send(seq);
                true
            }
            None => {
                st.backlog.push_back(seq);
                false
            }
        }
    }

    /// Pacer: no more requests; idle workers are told to stop.
    fn close(&self) {
        let idle = {
            let mut st = self.lock();
            st.closed = true;
            std::mem::take(&mut st.idle)
        };
        for w in idle {
            let _ = self.inboxes[w].send(STOP);
        }
    }

    /// Worker `me`: the next request, from the backlog or (after going idle) its inbox;
    /// `None` when the run is over.
    async fn next(&self, me: usize, inbox: &flume::Receiver<u64>) -> Option<u64> {
        {
            let mut st = self.lock();
            if let Some(seq) = st.backlog.pop_front() {
                return Some(seq);
            }
            if st.closed {
                return None;
            }
            st.idle.push(me);
        }
        inbox.recv_async().await.ok().filter(|s| *s != STOP)
    }
}

/// Opens `n` keep-alive connections to `addr`, a few at a time.
pub async fn connect_pool(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Conn>> {
    parallel(n, CONNECT_CONCURRENCY, move |_| async move {
        let mut conn = Conn::new(addr);
        conn.connect().await?;
        Ok(conn)
    })
    .await
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
    let conns = connect_pool(post.addr, spec.concurrency.max(1)).await?;
    drive_on(conns, post, spec, clock, make, server_pid, what).await
}

/// [`drive`] on connections already open to `post.addr` (one sender each; `spec.concurrency`
/// is their number), for a caller that measures the server before and after the pool is up.
pub async fn drive_on(
    conns: Vec<Conn>,
    post: Post,
    spec: LoadSpec,
    clock: Clock,
    make: MakeBody,
    server_pid: Option<u32>,
    what: &str,
) -> anyhow::Result<LoadResult> {
    let n = conns.len();
    anyhow::ensure!(n > 0, "no connections to send on");
    let (inboxes, outs): (Vec<_>, Vec<_>) = (0..n).map(|_| flume::unbounded::<u64>()).unzip();
    let shared = Arc::new(Shared {
        path: post.path,
        auth: post.auth,
        make,
        spec: spec.clone(),
        clock,
        next: AtomicU64::new(0),
        accepted_now: AtomicU64::new(0),
        refused_now: AtomicU64::new(0),
        dispatch: Dispatch { state: Default::default(), inboxes },
    });
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Times>);
    let workers: Vec<_> = conns
        .into_iter()
        .zip(outs)
        .enumerate()
        .map(|(me, (conn, inbox))| tokio::spawn(worker(me, conn, shared.clone(), inbox, start_rx.clone())))
        .collect();
    // Open loop: the clock starts when every worker waits for work, so the first released
    // requests do not count as having waited for a connection.
    let ready_by = tokio::time::Instant::now() + Duration::from_secs(5);
    while spec.rate.is_some() && shared.dispatch.lock().idle.len() < n && tokio::time::Instant::now() < ready_by {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let begin_us = clock.us();
    let warm_us = begin_us + spec.warmup.as_micros() as u64;
    let times = Times { begin_us, warm_us, end_us: warm_us + spec.duration.as_micros() as u64 };
    start_tx.send_replace(Some(times));
    let done = Arc::new(AtomicBool::new(false));
    let waited = Arc::new(AtomicU64::new(0));
    let pacer = spec.rate.map(|rate| {
        let (max, done, shared, waited) = (spec.max, done.clone(), shared.clone(), waited.clone());
        std::thread::spawn(move || {
            for seq in 0.. {
                let sched = scheduled(times, rate, seq);
                if sched >= times.end_us || max.is_some_and(|m| seq >= m) || done.load(Ordering::Relaxed) {
                    break;
                }
                loop {
                    let now = clock.us();
                    if now >= sched {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(sched - now));
                }
                if !shared.dispatch.release(seq) {
                    waited.fetch_add(1, Ordering::Relaxed);
                }
            }
            shared.dispatch.close();
        })
    });

    // CPU at the start of the measured window.
    let cpu_start = tokio::spawn(async move {
        tokio::time::sleep_until(clock.instant_at(warm_us).into()).await;
        (server_pid.and_then(procfs::cpu_secs), procfs::own_cpu_secs())
    });

    let pb = match spec.max {
        Some(m) => bar(m, what),
        None => bar(spec.duration.as_millis() as u64 + spec.warmup.as_millis() as u64, what),
    };
    let ticker = {
        let (pb, shared, done) = (pb.clone(), shared.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let n = shared.accepted_now.load(Ordering::Relaxed);
                if shared.spec.max.is_some() {
                    pb.set_position(n);
                } else {
                    pb.set_position((clock.us() - begin_us) / 1000);
                    match shared.refused_now.load(Ordering::Relaxed) {
                        0 => pb.set_message(format!("{n} accepted")),
                        r => pb.set_message(format!("{n} accepted, {r} refused")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut result = LoadResult {
        accepted: 0,
        offered: 0,
        accepted_seqs: Vec::new(),
        errors: BTreeMap::new(),
        latency: Recorder::new(),
        service_latency: Recorder::new(),
        refused_latency: Recorder::new(),
        malformed: 0,
        malformed_example: None,
        waited_for_connection: 0,
        lateness: Recorder::new(),
        window_us: (warm_us, times.end_us),
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
        result.service_latency.merge(w.service_latency);
        result.refused_latency.merge(w.refused_latency);
        result.malformed += w.malformed;
        result.malformed_example = result.malformed_example.or(w.malformed_example);
        result.lateness.merge(w.lateness);
    }
    result.offered = result.accepted_seqs.len() as u64 + result.errors.values().sum::<u64>();
    let end = clock.us();
    done.store(true, Ordering::Relaxed);
    if let Some(p) = pacer {
        let _ = p.join();
    }
    result.waited_for_connection = waited.load(Ordering::Relaxed);
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

/// When open-loop request `seq` is due.
fn scheduled(t: Times, rate: f64, seq: u64) -> u64 {
    t.begin_us + (seq as f64 * 1e6 / rate.max(1e-3)) as u64
}

/// One sender: its own connection, one request at a time, until the run is over.
async fn worker(
    me: usize,
    mut conn: Conn,
    s: Arc<Shared>,
    inbox: flume::Receiver<u64>,
    mut start: tokio::sync::watch::Receiver<Option<Times>>,
) -> Worker {
    let mut w = Worker {
        accepted: 0,
        seqs: Vec::new(),
        errors: BTreeMap::new(),
        latency: Recorder::new(),
        service_latency: Recorder::new(),
        refused_latency: Recorder::new(),
        malformed: 0,
        malformed_example: None,
        lateness: Recorder::new(),
    };
    let clock = s.clock;
    // Closed loop: every worker starts at once, when the clock does.
    let closed_start = match s.spec.rate {
        Some(_) => None,
        None => match start.wait_for(Option::is_some).await {
            Ok(t) => *t,
            Err(_) => return w,
        },
    };
    loop {
        let (seq, start_us, t) = match s.spec.rate {
            Some(rate) => {
                let Some(seq) = s.dispatch.next(me, &inbox).await else { break };
                // Released requests exist only after the clock started.
                let t = (*start.borrow()).expect("the pacer runs after the start");
                let sched = scheduled(t, rate, seq);
                let now = clock.us();
                if sched >= t.warm_us {
                    w.lateness.record(now, now.saturating_sub(sched));
                }
                (seq, sched, t)
            }
            None => {
                let t = closed_start.expect("set for the closed loop");
                let seq = s.next.fetch_add(1, Ordering::Relaxed);
                let now = clock.us();
                if s.spec.max.is_some_and(|m| seq >= m) || now >= t.end_us {
                    break;
                }
                (seq, now, t)
            }
        };
        let body = (s.make)(seq, start_us);
        let sent_us = clock.us();
        let result = conn.send(Method::POST, &s.path, Some(&s.auth), body).await;
        let now = clock.us();
        let in_window = start_us >= t.warm_us;
        match result {
            Ok((status, _)) if status.is_success() => {
                w.seqs.push(seq);
                s.accepted_now.fetch_add(1, Ordering::Relaxed);
                if in_window {
                    w.accepted += 1;
                    w.latency.record(start_us, now.saturating_sub(start_us));
                    w.service_latency.record(sent_us, now.saturating_sub(sent_us));
                }
            }
            Ok((status, answer)) => {
                s.refused_now.fetch_add(1, Ordering::Relaxed);
                *w.errors.entry(status.as_u16().to_string()).or_default() += 1;
                if in_window {
                    w.refused_latency.record(start_us, now.saturating_sub(start_us));
                }
                if !is_easemob_error(&answer) {
                    w.malformed += 1;
                    w.malformed_example.get_or_insert_with(|| {
                        let cut = &answer[..answer.len().min(200)];
                        format!("{} {}", status.as_u16(), String::from_utf8_lossy(cut))
                    });
                }
            }
            Err(_) => {
                s.refused_now.fetch_add(1, Ordering::Relaxed);
                *w.errors.entry("io".into()).or_default() += 1;
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easemob_error_bodies() {
        let good = br#"{"error":"service_unavailable","exception":"ServiceUnavailableException","timestamp":1,"duration":0,"error_description":"busy"}"#;
        assert!(is_easemob_error(good));
        assert!(!is_easemob_error(br#"{"error":"x","exception":"y","timestamp":1,"duration":0}"#));
        assert!(!is_easemob_error(
            br#"{"error":"x","exception":"y","timestamp":"1","duration":0,"error_description":"z"}"#
        ));
        assert!(!is_easemob_error(b"Service Unavailable"));
        assert!(!is_easemob_error(b""));
    }
}
