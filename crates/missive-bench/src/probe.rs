//! The health probe: `GET /health` on a connection of its own at a fixed period while a
//! scenario loads the server, recording each answer's latency and every failure.
//!
//! It is what a load balancer or orchestrator sees of an overloaded server, so it must not
//! be held up by the load generator itself: it runs on an OS thread with its own
//! single-threaded Tokio runtime, not among thousands of sender tasks. A probe that gets no
//! answer within the timeout is a failure (its connection is dropped and reopened, as a
//! health checker would); a probe still running when the next one is due delays it, and
//! the skipped periods are counted (`overran`), never queued.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::http::Conn;
use crate::report::{Clock, Recorder};

/// What the probe saw.
pub struct ProbeResult {
    /// Send → 200, for every probe answered 200 in time.
    pub latency: Recorder,
    pub probes: u64,
    /// Failed probes by cause: a status code, `timeout` or `io`.
    pub failures: BTreeMap<String, u64>,
    /// Periods skipped because the previous probe was still running.
    pub overran: u64,
}

impl ProbeResult {
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn summary(&self) -> Value {
        json!({
            "probes": self.probes,
            "failures": self.failed(),
            "failures_by_cause": self.failures,
            "overran": self.overran,
            "latency": self.latency.summary(),
        })
    }
}

/// A running probe; [`HealthProbe::finish`] stops it.
pub struct HealthProbe {
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<ProbeResult>>,
}

impl HealthProbe {
    /// Probes `addr` every `every` (the first at once), timestamps on `clock`.
    pub fn start(addr: SocketAddr, every: Duration, timeout: Duration, clock: Clock) -> HealthProbe {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            Ok(rt.block_on(probe(addr, every, timeout, clock, token)))
        });
        HealthProbe { stop, handle }
    }

    /// Stops probing (a probe in flight is abandoned, not counted) and returns the results.
    pub fn finish(self) -> anyhow::Result<ProbeResult> {
        self.stop.cancel();
        self.handle.join().map_err(|_| anyhow::anyhow!("the health probe panicked"))?
    }
}

async fn probe(
    addr: SocketAddr,
    every: Duration,
    timeout: Duration,
    clock: Clock,
    stop: CancellationToken,
) -> ProbeResult {
    let mut out = ProbeResult { latency: Recorder::new(), probes: 0, failures: BTreeMap::new(), overran: 0 };
    let mut conn = Conn::new(addr);
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut due = tokio::time::Instant::now();
    loop {
        tokio::select! {
            t = tick.tick() => {
                // `Skip` fires late ticks at once and then realigns: count the periods lost.
                let late = t.saturating_duration_since(due);
                out.overran += (late.as_nanos() / every.as_nanos().max(1)) as u64;
                due = t + every;
            }
            _ = stop.cancelled() => break,
        }
        let start = clock.us();
        let answer = tokio::select! {
            r = tokio::time::timeout(timeout, conn.send(Method::GET, "/health", None, Default::default())) => r,
            _ = stop.cancelled() => break,
        };
        out.probes += 1;
        let cause = match answer {
            Ok(Ok((StatusCode::OK, _))) => {
                let now = clock.us();
                out.latency.record(start, now.saturating_sub(start));
                continue;
            }
            Ok(Ok((status, _))) => status.as_u16().to_string(),
            Ok(Err(_)) => "io".to_owned(),
            Err(_) => {
                // The answer may still come on this socket: start over on a fresh one.
                conn = Conn::new(addr);
                "timeout".to_owned()
            }
        };
        *out.failures.entry(cause).or_default() += 1;
    }
    out
}
