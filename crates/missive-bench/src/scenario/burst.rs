//! `burst`: the memory check of issue 12. Against a server with the **default** Argon2
//! settings (19 MiB, 2 passes: the other scenarios make hashing cheap), three bursts in a
//! row:
//! 1. `--users` registered as batches of `--batch` (Easemob's limit, 60), `--batches-at-once`
//!    (16) in flight;
//! 2. `--logins` password logins (`POST /token`, `grant_type: password`) released at once,
//!    each on its own connection;
//! 3. `--uploads` image uploads of `--upload-mb` MB each (a JPEG with a photo's pixel count
//!    for its size), all at once.
//!
//! The server's RSS is sampled every `--sample-ms` from just before the burst until
//! `--settle-secs` after it. The verdict compares against the RSS just before the burst:
//! peak ≤ idle + `--peak-mib`, and back to ≤ idle + `--settled-mib` within `--settle-secs`.
//! The peak is the larger of the sampled maximum and the kernel's own high-water mark
//! (`VmHWM`) growth, so a spike between two samples still counts. A refusal (503 with the
//! Easemob body when the hashing queue is full, 429 for one account's flood) is retried
//! after a short pause, as a client would: every user ends up registered and logged in, and
//! the summary says how many attempts were refused. `--check` makes a broken bound (or a
//! failed call) the exit status; `--stop-when-settled` ends the wait as soon as the memory
//! is back (the CI form).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use clap::Args;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::Common;
use crate::http::Conn;
use crate::load::is_easemob_error;
use crate::procfs::{self, ProcSample, Sampler};
use crate::report::{Recorder, write_memory_plot};
use crate::setup::{parallel, run_prefix};
use crate::target::{Target, round3};

#[derive(Args, Clone, Debug)]
pub struct BurstArgs {
    #[command(flatten)]
    pub common: Common,
    /// Users registered in the first burst.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Users per registration request.
    #[arg(long, default_value_t = 60)]
    pub batch: usize,
    /// Registration requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub batches_at_once: usize,
    /// Password logins released at once (users reused when more than `--users`).
    #[arg(long, default_value_t = 500)]
    pub logins: usize,
    /// Image uploads released at once.
    #[arg(long, default_value_t = 10)]
    pub uploads: usize,
    /// Size of each uploaded image in MB (10⁶ bytes).
    #[arg(long, default_value_t = 5.0)]
    pub upload_mb: f64,
    /// Seconds to watch the memory after the burst.
    #[arg(long, default_value_t = 30.0)]
    pub settle_secs: f64,
    /// Allowed RSS growth at the peak, MiB over the RSS before the burst.
    #[arg(long, default_value_t = 150)]
    pub peak_mib: u64,
    /// Allowed RSS growth once settled, MiB over the RSS before the burst.
    #[arg(long, default_value_t = 50)]
    pub settled_mib: u64,
    /// Milliseconds between RSS samples.
    #[arg(long, default_value_t = 100)]
    pub sample_ms: u64,
    /// Exit with an error when a bound is broken.
    #[arg(long)]
    pub check: bool,
    /// Stop watching as soon as the RSS is back within `--settled-mib`.
    #[arg(long)]
    pub stop_when_settled: bool,
    /// Give up on a refused call after this many seconds of retries.
    #[arg(long, default_value_t = 300.0)]
    pub retry_for_secs: f64,
}

/// The password every burst user gets.
const PASSWORD: &str = "burst-password";

pub async fn run(args: BurstArgs) -> anyhow::Result<(Value, Vec<(String, Recorder)>)> {
    anyhow::ensure!(args.users > 0 && args.batch > 0, "--users and --batch must be positive");
    let security = missive_server::Config::default().security;
    // The other scenarios make hashing cheap (target.rs BASE_ENV): this one is about the
    // default cost, so it puts it back (`--server-env` can still override it).
    let env = [
        ("MISSIVE_SECURITY__ARGON2_MEMORY_KIB".to_owned(), security.argon2_memory_kib.to_string()),
        ("MISSIVE_SECURITY__ARGON2_ITERATIONS".to_owned(), security.argon2_iterations.to_string()),
    ];
    let target = Target::open(&args.common.target, &env).await?;
    let pid = target.pid.ok_or_else(|| anyhow!("burst needs the server's PID (start one, or pass --server-pid)"))?;
    let admin = target.admin_auth().await?;
    let image = Bytes::from(test_jpeg((args.upload_mb * 1e6) as usize)?);
    let retry_for = Duration::from_secs_f64(args.retry_for_secs);

    let idle = ProcSample::read(pid, 0.0);
    let idle_rss = idle.rss_kib.ok_or_else(|| anyhow!("cannot read the server's RSS"))?;
    let idle_hwm = idle.hwm_kib.unwrap_or(idle_rss);
    let sampler = Sampler::start(pid, Duration::from_millis(args.sample_ms.max(10)));
    let t0 = Instant::now();

    let prefix = run_prefix();
    let names: Vec<String> = (0..args.users).map(|i| format!("{prefix}u{i}")).collect();
    let register = register_burst(&target, &admin, &names, args.batch, args.batches_at_once, retry_for).await?;
    let t_registered = t0.elapsed();
    let logins = login_burst(&target, &names, args.logins, retry_for).await?;
    let t_logged_in = t0.elapsed();
    let uploads = upload_burst(&target, &admin, image.clone(), args.uploads, retry_for).await?;
    let burst_s = t0.elapsed().as_secs_f64();
    let at_burst_end = ProcSample::read(pid, burst_s);

    // Settling: watch until `--settle-secs` after the burst (or until back, if asked).
    let settled_bound = idle_rss + args.settled_mib * 1024;
    let deadline = Instant::now() + Duration::from_secs_f64(args.settle_secs);
    let mut back_after_s = None;
    loop {
        let now = ProcSample::read(pid, t0.elapsed().as_secs_f64());
        match now.rss_kib {
            Some(rss) if rss <= settled_bound => {
                back_after_s.get_or_insert(now.t_s - burst_s);
            }
            _ => back_after_s = None,
        }
        if Instant::now() >= deadline || (args.stop_when_settled && back_after_s.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(args.sample_ms.max(10))).await;
    }
    let samples = sampler.finish();
    let end = samples.last().copied().unwrap_or(at_burst_end);
    let sampled_peak = samples.iter().filter_map(|s| s.rss_kib).max().unwrap_or(idle_rss);
    // VmHWM only grows: any growth during the run is a peak the samples may have missed.
    let hwm_end = end.hwm_kib.unwrap_or(idle_hwm);
    let peak = if hwm_end > idle_hwm { sampled_peak.max(hwm_end) } else { sampled_peak };
    let peak_growth = peak.saturating_sub(idle_rss);
    let end_growth = end.rss_kib.unwrap_or(u64::MAX).saturating_sub(idle_rss);
    let peak_ok = peak_growth <= args.peak_mib * 1024;
    let settled_ok = back_after_s.is_some();
    let mib = |kib: u64| round3(kib as f64 / 1024.0);

    let summary = json!({
        "scenario": "burst",
        "server": target.describe(),
        "argon2": {"memory_kib": security.argon2_memory_kib, "iterations": security.argon2_iterations},
        "server_env": args.common.target.server_env,
        "register": register.summary(args.users, t_registered.as_secs_f64()),
        "logins": logins.summary(args.logins, (t_logged_in - t_registered).as_secs_f64()),
        "uploads": uploads.summary(args.uploads, burst_s - t_logged_in.as_secs_f64()),
        "upload_bytes": image.len(),
        "burst_s": round3(burst_s),
        "memory_mib": {
            "idle": mib(idle_rss),
            "peak": mib(peak),
            "peak_sampled": mib(sampled_peak),
            "peak_growth": mib(peak_growth),
            "at_burst_end": at_burst_end.rss_kib.map(mib),
            "end": end.rss_kib.map(mib),
            "end_s_after_burst": round3(end.t_s - burst_s),
            "end_growth": mib(end_growth),
            "back_within_bound_after_s": back_after_s.map(round3),
            "threads": procfs::start_peak_end(&samples, |s| s.threads),
        },
        "bounds_mib": {"peak": args.peak_mib, "settled": args.settled_mib, "settle_secs": args.settle_secs},
        "peak_ok": peak_ok,
        "settled_ok": settled_ok,
        "samples": samples.iter().map(ProcSample::json).collect::<Vec<_>>(),
    });
    if let Some(dir) = &args.common.out {
        write_memory_plot(dir, "burst", &samples)?;
    }
    target.stop().await;
    if args.check && !(peak_ok && settled_ok) {
        crate::report::emit(&summary);
        bail!(
            "memory bound broken: peak +{} MiB (bound {}), {} (bound +{} MiB within {} s)",
            mib(peak_growth),
            args.peak_mib,
            match back_after_s {
                Some(s) => format!("back after {s:.1} s"),
                None => format!("still +{} MiB at the end", mib(end_growth)),
            },
            args.settled_mib,
            args.settle_secs
        );
    }
    let recorders = vec![
        ("register".to_owned(), register.latency),
        ("login".to_owned(), logins.latency),
        ("upload".to_owned(), uploads.latency),
    ];
    Ok((summary, recorders))
}

/// What one burst's calls got.
struct Outcome {
    /// Each call's latency from its first attempt to its 200.
    latency: Recorder,
    /// Attempts answered with a refusal (status → count), retried.
    refused: std::collections::BTreeMap<u16, u64>,
    /// Refusals without the Easemob error body.
    malformed: u64,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome { latency: Recorder::new(), refused: Default::default(), malformed: 0 }
    }

    fn merge(&mut self, other: Outcome) {
        self.latency.merge(other.latency);
        for (k, v) in other.refused {
            *self.refused.entry(k).or_default() += v;
        }
        self.malformed += other.malformed;
    }

    fn summary(&self, calls: usize, seconds: f64) -> Value {
        json!({
            "calls": calls,
            "seconds": round3(seconds),
            "refused_attempts": self.refused.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "refusals_without_easemob_body": self.malformed,
            "latency": self.latency.summary(),
        })
    }
}

/// One request, repeated until it is accepted.
#[derive(Clone)]
struct Call {
    path: String,
    auth: Option<HeaderValue>,
    content_type: HeaderValue,
    body: Bytes,
}

impl Call {
    fn json(path: &str, auth: Option<&HeaderValue>, body: &Value) -> Call {
        Call {
            path: path.to_owned(),
            auth: auth.cloned(),
            content_type: HeaderValue::from_static("application/json"),
            body: Bytes::from(body.to_string()),
        }
    }

    /// POSTs until the answer is 200, pausing after a 429/503 refusal (as a client backs
    /// off) for at most `retry_for`. Any other answer fails the run.
    async fn until_accepted(&self, conn: &mut Conn, retry_for: Duration) -> anyhow::Result<(Outcome, Bytes)> {
        let mut outcome = Outcome::new();
        let started = Instant::now();
        for attempt in 0u32.. {
            let (status, body) = conn
                .send_typed(Method::POST, &self.path, self.auth.as_ref(), self.content_type.clone(), self.body.clone())
                .await?;
            if status == StatusCode::OK {
                outcome.latency.record(0, (started.elapsed().as_micros() as u64).max(1));
                return Ok((outcome, body));
            }
            if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::TOO_MANY_REQUESTS {
                bail!("{} answered {status}: {}", self.path, String::from_utf8_lossy(&body));
            }
            *outcome.refused.entry(status.as_u16()).or_default() += 1;
            if !is_easemob_error(&body) {
                outcome.malformed += 1;
            }
            if started.elapsed() > retry_for {
                bail!("{} still refused ({status}) after {} attempts", self.path, attempt + 1);
            }
            // 100 ms, growing to 1 s: spreads the retries of a refused crowd.
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(9) + 1))).await;
        }
        unreachable!("the loop returns or fails")
    }
}

async fn register_burst(
    target: &Target,
    admin: &HeaderValue,
    names: &[String],
    batch: usize,
    at_once: usize,
    retry_for: Duration,
) -> anyhow::Result<Outcome> {
    let path = target.path("/users");
    let calls: Arc<Vec<Call>> = Arc::new(
        names
            .chunks(batch)
            .map(|c| {
                let users: Vec<Value> = c.iter().map(|u| json!({"username": u, "password": PASSWORD})).collect();
                Call::json(&path, Some(admin), &Value::Array(users))
            })
            .collect(),
    );
    let addr = target.addr;
    let outcomes = parallel(calls.len(), at_once, move |i| {
        let calls = calls.clone();
        async move {
            let mut conn = Conn::new(addr);
            let (outcome, body) = calls[i].until_accepted(&mut conn, retry_for).await?;
            let v: Value = serde_json::from_slice(&body)?;
            if v["data"].as_array().is_some_and(|f| !f.is_empty()) {
                bail!("registration failures: {}", v["data"]);
            }
            Ok(outcome)
        }
    })
    .await?;
    Ok(outcomes.into_iter().fold(Outcome::new(), |mut all, o| {
        all.merge(o);
        all
    }))
}

/// Sends every call on a connection of its own, opened beforehand, all released together;
/// each answer must have the JSON field at `pointer`.
async fn all_at_once(
    target: &Target,
    calls: Vec<Call>,
    pointer: &'static str,
    retry_for: Duration,
) -> anyhow::Result<Outcome> {
    let gate = Arc::new(tokio::sync::Barrier::new(calls.len() + 1));
    let mut tasks = Vec::with_capacity(calls.len());
    for call in calls {
        let mut conn = Conn::new(target.addr);
        conn.connect().await?;
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let (outcome, answer) = call.until_accepted(&mut conn, retry_for).await?;
            let v: Value = serde_json::from_slice(&answer)?;
            anyhow::ensure!(v.pointer(pointer).is_some_and(Value::is_string), "no {pointer} in {v}");
            Ok(outcome)
        }));
    }
    gate.wait().await;
    let mut all = Outcome::new();
    for t in tasks {
        all.merge(t.await??);
    }
    Ok(all)
}

/// `logins` password logins released together (users reused when there are fewer).
async fn login_burst(target: &Target, names: &[String], logins: usize, retry_for: Duration) -> anyhow::Result<Outcome> {
    let path = target.path("/token");
    let calls = (0..logins)
        .map(|i| {
            let body = json!({"grant_type": "password", "username": names[i % names.len()], "password": PASSWORD});
            Call::json(&path, None, &body)
        })
        .collect();
    all_at_once(target, calls, "/access_token", retry_for).await
}

/// `uploads` multipart uploads of `image`, released together.
async fn upload_burst(
    target: &Target,
    admin: &HeaderValue,
    image: Bytes,
    uploads: usize,
    retry_for: Duration,
) -> anyhow::Result<Outcome> {
    const BOUNDARY: &str = "missive-bench-burst-boundary";
    let mut body = Vec::with_capacity(image.len() + 256);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"burst.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&image);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let call = Call {
        path: target.path("/chatfiles"),
        auth: Some(admin.clone()),
        content_type: HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}"))?,
        body: Bytes::from(body),
    };
    all_at_once(target, vec![call; uploads], "/entities/0/uuid", retry_for).await
}

/// A JPEG of about `bytes` bytes with about as many pixels as a phone photo of that size
/// (a 5 MB photo is about 12 megapixels): decoding it costs what a real upload costs.
/// Smooth gradients plus noise, whose amplitude is searched until the size fits.
pub fn test_jpeg(bytes: usize) -> anyhow::Result<Vec<u8>> {
    // ≈ 2.4 pixels per byte at photo quality.
    let pixels = (bytes as f64 * 2.4).max(64.0 * 48.0);
    let width = ((pixels * 4.0 / 3.0).sqrt() as u32).max(64);
    let height = ((pixels / f64::from(width)) as u32).max(48);
    let encode = |amplitude: u32| -> anyhow::Result<Vec<u8>> {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = |shift: u32| ((seed >> shift) as u32 % (2 * amplitude + 1)) as i32 - amplitude as i32;
            let base = [x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)];
            image::Rgb(std::array::from_fn(|c| (base[c] as i32 + noise(8 * c as u32)).clamp(0, 255) as u8))
        });
        let mut out = Vec::new();
        img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90))?;
        Ok(out)
    };
    let (mut lo, mut hi) = (0u32, 128u32);
    let mut best = encode(hi)?;
    for _ in 0..6 {
        let mid = (lo + hi) / 2;
        let candidate = encode(mid)?;
        if candidate.len() >= bytes {
            hi = mid;
            best = candidate;
        } else {
            lo = mid;
        }
    }
    Ok(best)
}
