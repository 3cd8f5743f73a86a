//! Getting a run ready and watching it: users registered in batches over REST, user tokens,
//! MSYNC logins, and the receiver tasks that timestamp every message a client gets.
//!
//! Every message the generator sends carries `SEQ:START_US` as its text: the sequence
//! number and the microsecond (on this run's clock) the send started or was scheduled. A
//! receiver needs nothing else to compute end-to-end latency, spot duplicates and gaps, or
//! tell which call a fan-out delivery belongs to.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use hyper::Method;
use hyper::header::HeaderValue;
use indicatif::{ProgressBar, ProgressStyle};
use missive_msync::{ClientEvent, ClientOptions, Login, MsyncClient};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::http::Conn;
use crate::report::{Clock, Recorder};
use crate::target::Target;

/// A progress bar on stderr (drawn only when stderr is a terminal).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>12} [{elapsed_precise}] {bar:32} {pos}/{len} {per_sec} {msg}")
            .expect("valid template"),
    );
    pb.set_prefix(what.to_owned());
    pb
}

/// Runs `f(0..n)` with at most `concurrency` at once; results in index order.
pub async fn parallel<T, F, Fut>(n: usize, concurrency: usize, f: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let slots: Arc<Mutex<Vec<Option<T>>>> = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (f, next, slots) = (f.clone(), next.clone(), slots.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let v = f(i).await?;
                slots.lock().await[i] = Some(v);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let mut slots = slots.lock().await;
    Ok(slots.drain(..).map(|s| s.expect("every index ran")).collect())
}

/// A prefix unique to this run, so runs against one long-lived server never collide.
pub fn run_prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("b{:x}{:x}", std::process::id() % 4096, nanos % 65536)
}

/// Registers `names` (password `pw`) in batches of 60, the API's batch limit.
pub async fn register(target: &Target, admin: &HeaderValue, names: &[String]) -> anyhow::Result<()> {
    let batches: Vec<Vec<String>> = names.chunks(60).map(<[String]>::to_vec).collect();
    let pb = bar(names.len() as u64, "register");
    let (addr, path, admin, pb2) = (target.addr, target.path("/users"), admin.clone(), pb.clone());
    let batches = Arc::new(batches);
    let n = batches.len();
    parallel(n, 4, move |i| {
        let (batches, path, admin, pb) = (batches.clone(), path.clone(), admin.clone(), pb2.clone());
        async move {
            let body: Vec<Value> = batches[i].iter().map(|u| json!({"username": u, "password": "pw"})).collect();
            let mut conn = Conn::new(addr);
            let v = conn.ok(Method::POST, &path, Some(&admin), Some(&Value::Array(body))).await?;
            if v["data"].as_array().is_some_and(|f| !f.is_empty()) {
                return Err(anyhow!("registration failures: {}", v["data"]));
            }
            pb.inc(batches[i].len() as u64);
            Ok(())
        }
    })
    .await?;
    pb.finish_and_clear();
    Ok(())
}

/// One user token per name, minted with the app token (`grant_type: inherit`), so no
/// password hash is checked per user.
pub async fn tokens(target: &Target, admin: &HeaderValue, names: &[String]) -> anyhow::Result<Vec<String>> {
    let pb = bar(names.len() as u64, "tokens");
    let names = Arc::new(names.to_vec());
    let (addr, path, admin, pb2) = (target.addr, target.path("/token"), admin.clone(), pb.clone());
    let conns: Arc<Vec<Mutex<Conn>>> = Arc::new((0..16).map(|_| Mutex::new(Conn::new(addr))).collect());
    let out = parallel(names.len(), 16, move |i| {
        let (names, path, admin, pb, conns) = (names.clone(), path.clone(), admin.clone(), pb2.clone(), conns.clone());
        async move {
            let body = json!({"grant_type": "inherit", "username": names[i]});
            let v = conns[i % 16].lock().await.ok(Method::POST, &path, Some(&admin), Some(&body)).await?;
            pb.inc(1);
            v["access_token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no access_token in {v}"))
        }
    })
    .await?;
    pb.finish_and_clear();
    Ok(out)
}

/// Registers `names` and returns their tokens.
pub async fn users_with_tokens(target: &Target, admin: &HeaderValue, names: &[String]) -> anyhow::Result<Vec<String>> {
    register(target, admin, names).await?;
    tokens(target, admin, names).await
}

/// What a received message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A message from another user.
    Peer,
    /// A `sync_device` copy of the user's own message.
    Copy,
    /// A probe (text starting with `p`), e.g. real-time traffic during an offline drain.
    Probe,
}

/// One message as a receiver saw it.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub seq: u64,
    pub start_us: u64,
    pub at_us: u64,
    pub kind: Kind,
}

/// Everything one receiver saw.
#[derive(Default)]
pub struct Received {
    pub receipts: Vec<Receipt>,
    /// Messages whose id was not above the previous one in the same queue. A queue's order is
    /// its commit order (sequences), and ids are given before the commit: sends that overlap
    /// in time may commit in the other order, so this counts only for one sender at a time.
    pub out_of_order: u64,
    /// Messages without our `SEQ:START` text.
    pub foreign: u64,
    /// Why the session ended, if it did before the run stopped it.
    pub closed: Option<String>,
}

/// A logged-in client with its login time.
pub struct LoggedIn {
    pub client: MsyncClient,
    pub login_us: u64,
    /// When the login finished, on the run clock.
    pub at_us: u64,
}

/// How clients log in.
#[derive(Clone)]
pub struct LoginPlan {
    pub concurrency: usize,
    pub heartbeat: Duration,
    /// Spread sessions over this many 127.0.0.x destinations (the server must listen on
    /// 0.0.0.0).
    pub spread: usize,
}

impl Default for LoginPlan {
    fn default() -> Self {
        LoginPlan { concurrency: 32, heartbeat: Duration::from_secs(30), spread: 1 }
    }
}

/// Logs in every `(name, token)`; returns the clients in order and a login-latency recorder.
pub async fn login_all(
    target: &Target,
    names: &[String],
    tokens: &[String],
    plan: &LoginPlan,
    clock: Clock,
) -> anyhow::Result<(Vec<LoggedIn>, Recorder)> {
    let logins: Arc<Vec<Login>> = Arc::new(
        names
            .iter()
            .zip(tokens)
            .enumerate()
            .map(|(i, (n, t))| Login {
                url: target.ws_url_for(i, plan.spread),
                app_key: target.app_key(),
                user: n.clone(),
                token: t.clone(),
                resource: Some(format!("bench{i}")),
            })
            .collect(),
    );
    let options = ClientOptions { heartbeat: plan.heartbeat, ..ClientOptions::default() };
    let pb = bar(names.len() as u64, "login");
    let pb2 = pb.clone();
    let clients = parallel(names.len(), plan.concurrency, move |i| {
        let (logins, options, pb) = (logins.clone(), options.clone(), pb2.clone());
        async move {
            let start = clock.us();
            let client = MsyncClient::connect(logins[i].clone(), options)
                .await
                .map_err(|e| anyhow!("login of {} failed: {e}", logins[i].user))?;
            pb.inc(1);
            let at_us = clock.us();
            Ok(LoggedIn { client, login_us: at_us - start, at_us })
        }
    })
    .await?;
    pb.finish_and_clear();
    let mut rec = Recorder::new();
    for c in &clients {
        rec.record(c.at_us, c.login_us);
    }
    Ok((clients, rec))
}

/// Receivers running until `stop`; each returns its client (so the session stays up until
/// the caller drops it) and what it saw.
pub struct Receivers {
    pub handles: Vec<JoinHandle<(MsyncClient, Received)>>,
    /// Messages received so far, all receivers together.
    pub count: Arc<AtomicU64>,
    pub stop: CancellationToken,
}

impl Receivers {
    pub fn spawn(clients: Vec<MsyncClient>, clock: Clock) -> Receivers {
        let count = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let handles =
            clients.into_iter().map(|c| tokio::spawn(receive(c, clock, count.clone(), stop.clone()))).collect();
        Receivers { handles, count, stop }
    }

    /// Waits until `expected` messages arrived or `timeout` passed; returns whether all did.
    pub async fn wait_for(&self, expected: u64, timeout: Duration, what: &str) -> bool {
        let pb = bar(expected, what);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = self.count.load(Ordering::Relaxed);
            pb.set_position(n.min(expected));
            if n >= expected {
                pb.finish_and_clear();
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                pb.abandon();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops every receiver and collects what they saw (clients are returned in order).
    pub async fn finish(self) -> anyhow::Result<(Vec<MsyncClient>, Vec<Received>)> {
        self.stop.cancel();
        let mut clients = Vec::new();
        let mut seen = Vec::new();
        for h in self.handles {
            let (c, r) = h.await?;
            clients.push(c);
            seen.push(r);
        }
        Ok((clients, seen))
    }
}

/// One receiver: timestamps every message `client` gets until `stop`. Probes are not
/// counted in `count`, so waiting for a number of messages is not thrown off by them.
pub async fn receive(
    mut client: MsyncClient,
    clock: Clock,
    count: Arc<AtomicU64>,
    stop: CancellationToken,
) -> (MsyncClient, Received) {
    let mut out = Received::default();
    let mut last_id: HashMap<String, u64> = HashMap::new();
    let me = client.user().to_owned();
    loop {
        let event = tokio::select! {
            e = client.next_event() => e,
            _ = stop.cancelled() => break,
        };
        let at_us = clock.us();
        match event {
            Some(ClientEvent::Message(m)) => {
                let last = last_id.entry(m.queue.clone()).or_insert(0);
                if m.id <= *last {
                    out.out_of_order += 1;
                }
                *last = m.id.max(*last);
                let text = m.body.as_ref().and_then(|b| b.contents.first()).and_then(|c| c.text.as_deref());
                match text.and_then(parse_text) {
                    Some((probe, seq, start_us)) => {
                        let kind = if probe {
                            Kind::Probe
                        } else if m.from == me {
                            Kind::Copy
                        } else {
                            Kind::Peer
                        };
                        out.receipts.push(Receipt { seq, start_us, at_us, kind });
                        if kind != Kind::Probe {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => {
                        out.foreign += 1;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(ClientEvent::Kicked { operation, .. }) => {
                out.closed = Some(format!("kicked (operation {operation})"));
            }
            Some(ClientEvent::Closed { reason }) => {
                out.closed = Some(reason);
                break;
            }
            None => break,
        }
    }
    (client, out)
}

/// End-to-end latency (send start → received) of the `kind` receipts whose send started
/// within `started`.
pub fn e2e_started(seen: &[Received], kind: Kind, started: Range<u64>) -> Recorder {
    let mut r = Recorder::new();
    for x in seen.iter().flat_map(|s| s.receipts.iter()).filter(|x| x.kind == kind && started.contains(&x.start_us)) {
        r.record(x.start_us, x.at_us.saturating_sub(x.start_us));
    }
    r
}

/// `SEQ:START` or `pSEQ:START`.
fn parse_text(text: &str) -> Option<(bool, u64, u64)> {
    let (probe, text) = match text.strip_prefix('p') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (seq, start) = text.split_once(':')?;
    Some((probe, seq.parse().ok()?, start.parse().ok()?))
}

/// The text a generated message carries.
pub fn text(seq: u64, start_us: u64) -> String {
    format!("{seq}:{start_us}")
}

/// Duplicates, gaps and unexpected messages among `kind` receipts, given the sequence
/// numbers that were accepted.
pub fn reconcile(seen: &[Received], kind: Kind, accepted: &[u64], copies_per_seq: u64) -> Value {
    reconcile_started(seen, kind, accepted, copies_per_seq, 0..u64::MAX)
}

/// [`reconcile`] for one phase of a run: only receipts whose send started (or was
/// scheduled) within `started` count, so phases that reuse sequence numbers stay apart.
pub fn reconcile_started(
    seen: &[Received],
    kind: Kind,
    accepted: &[u64],
    copies_per_seq: u64,
    started: Range<u64>,
) -> Value {
    let mut got: Vec<u64> = seen
        .iter()
        .flat_map(|r| r.receipts.iter())
        .filter(|x| x.kind == kind && started.contains(&x.start_us))
        .map(|x| x.seq)
        .collect();
    got.sort_unstable();
    let total = got.len() as u64;
    let mut acc = accepted.to_vec();
    acc.sort_unstable();
    // Each accepted seq should appear `copies_per_seq` times (once per recipient).
    let mut missing = 0u64;
    let mut duplicates = 0u64;
    let mut unexpected = 0u64;
    let (mut i, mut j) = (0, 0);
    while i < acc.len() || j < got.len() {
        match (acc.get(i), got.get(j)) {
            (Some(a), Some(g)) if a == g => {
                let mut n = 0;
                while got.get(j) == Some(a) {
                    n += 1;
                    j += 1;
                }
                if n < copies_per_seq {
                    missing += copies_per_seq - n;
                } else {
                    duplicates += n - copies_per_seq;
                }
                i += 1;
            }
            (Some(a), Some(g)) if a < g => {
                missing += copies_per_seq;
                i += 1;
            }
            (Some(_), None) => {
                missing += copies_per_seq;
                i += 1;
            }
            (_, Some(_)) => {
                unexpected += 1;
                j += 1;
            }
            (None, None) => break,
        }
    }
    json!({"received": total, "missing": missing, "duplicates": duplicates, "unexpected": unexpected})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        assert_eq!(parse_text(&text(7, 123)), Some((false, 7, 123)));
        assert_eq!(parse_text("p7:1"), Some((true, 7, 1)));
        assert_eq!(parse_text("hello"), None);
    }

    #[test]
    fn reconcile_counts() {
        let r = |seq| Receipt { seq, start_us: 0, at_us: 0, kind: Kind::Peer };
        let seen = vec![Received { receipts: vec![r(1), r(2), r(2), r(9)], ..Default::default() }];
        let v = reconcile(&seen, Kind::Peer, &[1, 2, 3], 1);
        assert_eq!(v, json!({"received": 4, "missing": 1, "duplicates": 1, "unexpected": 1}));
        let late = |seq| Receipt { seq, start_us: 100, at_us: 150, kind: Kind::Peer };
        let seen = vec![Received { receipts: vec![r(1), late(1), late(2)], ..Default::default() }];
        let v = reconcile_started(&seen, Kind::Peer, &[1, 2], 1, 100..200);
        assert_eq!(v, json!({"received": 2, "missing": 0, "duplicates": 0, "unexpected": 0}));
        assert_eq!(e2e_started(&seen, Kind::Peer, 100..200).summary()["p50_ms"], 0.05);
    }
}
