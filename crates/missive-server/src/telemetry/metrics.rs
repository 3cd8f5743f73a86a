//! Prometheus metrics: one registry per server, rendered by `GET /metrics` (see
//! `http::scrape` and docs/operations.md, which lists every name, type and label).
//!
//! The registry is the `metrics-exporter-prometheus` recorder, used directly rather than
//! installed as the `metrics` crate's global recorder: each server (tests run many in one
//! process) counts only its own traffic, and code records through [`Metrics`] methods named
//! for what happened (`login_failed`, `committed`, …), so every metric name, type and label
//! lives in this file. Label values come from small fixed sets (a route pattern, never a
//! raw URL; a status code; a reason), so the number of series stays bounded.
//!
//! Counters and histograms are recorded where things happen; gauges of state that exists
//! anyway (sessions online, queue depths, process memory and descriptors) are sampled when
//! a scrape renders ([`Sampled`]), so they cost nothing between scrapes.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::process::ProcessStats;
use crate::notify::metrics::NotifySnapshot;

// --- names: the metrics the REST side and the process record (wired) ----------------------
pub const HTTP_REQUEST_DURATION: &str = "missive_http_request_duration_seconds";
pub const LOGINS: &str = "missive_logins_total";
pub const LOGIN_FAILURES: &str = "missive_login_failures_total";
pub const FILE_UPLOADS: &str = "missive_file_uploads_total";
pub const FILE_UPLOAD_BYTES: &str = "missive_file_upload_bytes_total";
pub const THUMBNAILS: &str = "missive_thumbnails_total";
pub const PASSWORD_QUEUE_DEPTH: &str = "missive_password_queue_depth";
pub const PASSWORD_REQUESTS: &str = "missive_password_requests_admitted";
pub const THUMBNAIL_QUEUE_DEPTH: &str = "missive_thumbnail_queue_depth";
pub const SESSIONS_ONLINE: &str = "missive_sessions_online";
pub const BUILD_INFO: &str = "missive_build_info";
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_THREADS: &str = "process_threads";

// --- names: the delivery path (recorded through the methods below by the send path) ------
pub const SENDS: &str = "missive_sends_total";
pub const SEND_RECIPIENTS: &str = "missive_send_recipients";
pub const MESSAGES_COMMITTED: &str = "missive_messages_committed_total";
pub const COMMIT_BATCH_SIZE: &str = "missive_commit_batch_size";
pub const COMMIT_FSYNC: &str = "missive_commit_fsync_seconds";
pub const DELIVERIES: &str = "missive_deliveries_total";
pub const PULLS: &str = "missive_pulls_total";
pub const ACKS: &str = "missive_acks_total";
pub const ONLINE_ONLY_DROPPED: &str = "missive_online_only_dropped_total";
pub const OFFLINE_QUEUE_DEPTH: &str = "missive_offline_queue_depth";

// --- names: callbacks and push (counted by `crate::notify`, copied here at scrape time) ----
pub const CALLBACKS: &str = "missive_callbacks_total";
pub const CALLBACK_BANS: &str = "missive_callback_bans_total";
pub const PRESEND_CHECKS: &str = "missive_presend_checks_total";
pub const PUSHES: &str = "missive_pushes_total";
pub const OUTBOX_DROPPED_FULL: &str = "missive_outbox_dropped_full_total";
pub const OUTBOX_ENTRIES: &str = "missive_outbox_entries";
pub const OUTBOX_OLDEST_DUE: &str = "missive_outbox_oldest_due_seconds";

/// Latency buckets (seconds): sub-millisecond answers up to the 10-s tail of an overloaded
/// disk.
const SECONDS_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Recipients per send: 1 to Easemob's 600.
const RECIPIENT_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 600.0];
/// Operations per group commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// How often buffered histogram samples are folded into their buckets when nobody scrapes
/// (the exporter buffers samples until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Which API a send came through (`via` label of [`SENDS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendVia {
    Rest,
    Msync,
}

impl SendVia {
    fn label(self) -> &'static str {
        match self {
            SendVia::Rest => "rest",
            SendVia::Msync => "msync",
        }
    }
}

/// How a login was attempted (`grant` label of [`LOGINS`] and [`LOGIN_FAILURES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// `POST /token`, `grant_type: password`.
    Password,
    /// `POST /token`, `grant_type: client_credentials` (the app token).
    ClientCredentials,
    /// `POST /token`, `grant_type: inherit`.
    Inherit,
    /// An MSYNC PROVISION with a user token.
    Msync,
}

impl Grant {
    fn label(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::ClientCredentials => "client_credentials",
            Grant::Inherit => "inherit",
            Grant::Msync => "msync",
        }
    }
}

/// Why a login failed (`reason` label of [`LOGIN_FAILURES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// No such user (or client id).
    UnknownUser,
    /// Wrong password (or client secret).
    BadCredentials,
    /// The user is deactivated.
    NotActivated,
    /// The token presented to MSYNC is unknown or expired.
    BadToken,
    /// The password queue was full (503).
    Busy,
    /// Too many logins of one account at once (429).
    Flood,
    /// The request itself was malformed (400).
    Invalid,
    /// An MSYNC login past `sessions.max_devices_per_user`.
    TooManyDevices,
}

impl LoginFailure {
    fn label(self) -> &'static str {
        match self {
            LoginFailure::UnknownUser => "unknown_user",
            LoginFailure::BadCredentials => "bad_credentials",
            LoginFailure::NotActivated => "not_activated",
            LoginFailure::BadToken => "bad_token",
            LoginFailure::Busy => "busy",
            LoginFailure::Flood => "flood",
            LoginFailure::Invalid => "invalid_request",
            LoginFailure::TooManyDevices => "too_many_devices",
        }
    }
}

/// What became of an uploaded image's thumbnail (`outcome` label of [`THUMBNAILS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThumbnailOutcome {
    /// A thumbnail was made and stored.
    Made,
    /// The original serves (small, too large to decode, or undecodable).
    Original,
    /// Every thumbnail worker and queue place was taken: the original serves.
    Skipped,
}

/// Gauges read from the server's state at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sampled {
    pub sessions_online: usize,
    pub password_queue_depth: usize,
    pub password_requests_admitted: usize,
    pub thumbnail_queue_depth: usize,
    /// The callback/push counters and outbox gauges as last read.
    pub notify: NotifySnapshot,
}

/// One server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    file_uploads: Counter,
    file_upload_bytes: Counter,
    messages_committed: Counter,
    commit_batch_size: Histogram,
    commit_fsync: Histogram,
    send_recipients: Histogram,
    deliveries: Counter,
    pulls: Counter,
    acks: Counter,
    online_only_dropped: Counter,
    offline_queue_depth: Gauge,
    /// `missive_sends_total{status="200"}` per API, registered once: an accepted send is the
    /// hot path, and looking its series up by labels would allocate on every message.
    accepted_rest: Counter,
    accepted_msync: Counter,
}

/// Every handle is registered with the same metadata: the exporter ignores it.
fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

impl Metrics {
    /// A fresh registry with every metric described (`# HELP`/`# TYPE`) and the unlabelled
    /// ones registered, so they render as 0 before anything happens. Inside a tokio runtime,
    /// also starts the upkeep task that keeps unscraped histogram samples from piling up.
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(SEND_RECIPIENTS.into()), RECIPIENT_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMMIT_BATCH_SIZE.into()), BATCH_BUCKETS))
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        describe(&recorder);
        let handle = recorder.handle();
        let counter = |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &metadata());
        let histogram = |name: &'static str| recorder.register_histogram(&Key::from_static_name(name), &metadata());
        let inner = Arc::new(Inner {
            file_uploads: counter(FILE_UPLOADS),
            file_upload_bytes: counter(FILE_UPLOAD_BYTES),
            messages_committed: counter(MESSAGES_COMMITTED),
            commit_batch_size: histogram(COMMIT_BATCH_SIZE),
            commit_fsync: histogram(COMMIT_FSYNC),
            send_recipients: histogram(SEND_RECIPIENTS),
            deliveries: counter(DELIVERIES),
            pulls: counter(PULLS),
            acks: counter(ACKS),
            online_only_dropped: counter(ONLINE_ONLY_DROPPED),
            offline_queue_depth: recorder.register_gauge(&Key::from_static_name(OFFLINE_QUEUE_DEPTH), &metadata()),
            accepted_rest: sends_counter(&recorder, SendVia::Rest, 200),
            accepted_msync: sends_counter(&recorder, SendVia::Msync, 200),
            recorder,
            handle,
        });
        let version = Key::from_parts(BUILD_INFO, vec![Label::new("version", env!("CARGO_PKG_VERSION"))]);
        inner.recorder.register_gauge(&version, &metadata()).set(1.0);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(upkeep(Arc::downgrade(&inner)));
        }
        Metrics { inner }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.inner.recorder.register_counter(&Key::from_parts(name, labels), &metadata())
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.inner.recorder.register_gauge(&Key::from_static_name(name), &metadata())
    }

    // --- REST, files, logins -------------------------------------------------------------

    /// One REST call (or WebSocket upgrade) answered: `route` is the matched route pattern
    /// (`/{org}/{app}/messages/users`), never the raw path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = vec![
            Label::new("route", route.to_owned()),
            Label::new("method", method.to_owned()),
            Label::new("status", status.to_string()),
        ];
        self.inner
            .recorder
            .register_histogram(&Key::from_parts(HTTP_REQUEST_DURATION, labels), &metadata())
            .record(took.as_secs_f64());
    }

    /// A token was issued (or an MSYNC login accepted).
    pub fn login(&self, grant: Grant) {
        self.counter(LOGINS, vec![Label::new("grant", grant.label())]).increment(1);
    }

    /// A login was refused.
    pub fn login_failed(&self, grant: Grant, reason: LoginFailure) {
        self.counter(LOGIN_FAILURES, vec![Label::new("grant", grant.label()), Label::new("reason", reason.label())])
            .increment(1);
    }

    /// A chat file was stored.
    pub fn file_uploaded(&self, bytes: u64) {
        self.inner.file_uploads.increment(1);
        self.inner.file_upload_bytes.increment(bytes);
    }

    pub fn thumbnail(&self, outcome: ThumbnailOutcome) {
        let outcome = match outcome {
            ThumbnailOutcome::Made => "made",
            ThumbnailOutcome::Original => "original",
            ThumbnailOutcome::Skipped => "skipped",
        };
        self.counter(THUMBNAILS, vec![Label::new("outcome", outcome)]).increment(1);
    }

    // --- the delivery path -----------------------------------------------------------------

    /// A send answered, with the HTTP status it got (200 accepted; 400, 403, 429, 503, 507
    /// refused). MSYNC sends use the status their error maps to (accepted = 200).
    pub fn send(&self, via: SendVia, status: u16) {
        match (via, status) {
            (SendVia::Rest, 200) => self.inner.accepted_rest.increment(1),
            (SendVia::Msync, 200) => self.inner.accepted_msync.increment(1),
            _ => sends_counter(&self.inner.recorder, via, status).increment(1),
        }
    }

    /// Recipients of one accepted send.
    pub fn send_recipients(&self, recipients: usize) {
        self.inner.send_recipients.record(recipients as f64);
    }

    /// One group commit: how many operations it carried, how many of them were stored
    /// messages, and how long its fsync (the commit) took.
    pub fn committed(&self, batch_size: usize, messages: u64, fsync: Duration) {
        self.inner.commit_batch_size.record(batch_size as f64);
        self.inner.commit_fsync.record(fsync.as_secs_f64());
        self.inner.messages_committed.increment(messages);
    }

    /// Messages written to devices (pull answers, online-only deliveries).
    pub fn delivered(&self, messages: u64) {
        self.inner.deliveries.increment(messages);
    }

    /// A pull (`CommSyncUL`) answered.
    pub fn pulled(&self) {
        self.inner.pulls.increment(1);
    }

    /// An ack (`next_key`) received.
    pub fn acked(&self) {
        self.inner.acks.increment(1);
    }

    /// Online-only messages dropped (no session took them, or a session was cut off holding
    /// them).
    pub fn online_only_dropped(&self, messages: u64) {
        self.inner.online_only_dropped.increment(messages);
    }

    /// Messages stored and not yet acked by any device, from a periodic count (set it where
    /// it is sampled; it is not derived from the other counters).
    pub fn set_offline_queue_depth(&self, messages: u64) {
        self.inner.offline_queue_depth.set(messages as f64);
    }

    /// The notifier keeps its own atomics (it predates this registry and is read by
    /// `/health` too); its counters are copied in as absolute values.
    fn copy_notify(&self, n: &NotifySnapshot) {
        let labelled = |name: &'static str, label: &'static str, value: &'static str, v: u64| {
            self.counter(name, vec![Label::new(label, value)]).absolute(v)
        };
        for (outcome, v) in [
            ("delivered", n.callbacks_delivered),
            ("failed", n.callbacks_failed),
            ("retried", n.callbacks_retried),
            ("dropped", n.callbacks_dropped),
            ("exception", n.callbacks_exceptions),
        ] {
            labelled(CALLBACKS, "outcome", outcome, v);
        }
        for (verdict, v) in [("pass", n.presend_passed), ("block", n.presend_blocked)] {
            labelled(PRESEND_CHECKS, "verdict", verdict, v);
        }
        for (outcome, v) in [
            ("delivered", n.pushes_delivered),
            ("retried", n.pushes_retried),
            ("dropped", n.pushes_dropped),
            ("unregistered", n.pushes_unregistered),
            ("skipped", n.pushes_skipped),
        ] {
            labelled(PUSHES, "outcome", outcome, v);
        }
        self.counter(CALLBACK_BANS, vec![]).absolute(n.callback_bans);
        self.counter(OUTBOX_DROPPED_FULL, vec![]).absolute(n.outbox_dropped_full);
        for (state, v) in [("due", n.outbox_due), ("scheduled", n.outbox_scheduled), ("leased", n.outbox_leased)] {
            let key = Key::from_parts(OUTBOX_ENTRIES, vec![Label::new("state", state)]);
            self.inner.recorder.register_gauge(&key, &metadata()).set(v as f64);
        }
        self.gauge(OUTBOX_OLDEST_DUE).set(n.outbox_oldest_due_ms as f64 / 1000.0);
    }

    // --- rendering -----------------------------------------------------------------------

    /// The text exposition format, after setting the sampled gauges.
    pub fn render(&self, sampled: &Sampled) -> String {
        self.gauge(SESSIONS_ONLINE).set(sampled.sessions_online as f64);
        self.gauge(PASSWORD_QUEUE_DEPTH).set(sampled.password_queue_depth as f64);
        self.gauge(PASSWORD_REQUESTS).set(sampled.password_requests_admitted as f64);
        self.gauge(THUMBNAIL_QUEUE_DEPTH).set(sampled.thumbnail_queue_depth as f64);
        let process = ProcessStats::read();
        let set = |name: &'static str, value: Option<f64>| {
            if let Some(v) = value {
                self.gauge(name).set(v);
            }
        };
        set(PROCESS_RESIDENT_MEMORY, process.resident_bytes.map(|b| b as f64));
        set(PROCESS_OPEN_FDS, process.open_fds.map(|n| n as f64));
        set(PROCESS_MAX_FDS, process.max_fds.map(|n| n as f64));
        set(PROCESS_THREADS, process.threads.map(|n| n as f64));
        self.copy_notify(&sampled.notify);
        self.inner.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The `missive_sends_total` series of one API and status.
fn sends_counter(recorder: &PrometheusRecorder, via: SendVia, status: u16) -> Counter {
    let labels = vec![Label::new("via", via.label()), Label::new("status", status.to_string())];
    recorder.register_counter(&Key::from_parts(SENDS, labels), &metadata())
}

/// Folds buffered histogram samples into their buckets until the registry is dropped.
async fn upkeep(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(UPKEEP_EVERY).await;
        match inner.upgrade() {
            Some(inner) => inner.handle.run_upkeep(),
            None => return,
        }
    }
}

/// `# HELP` lines and units.
fn describe(r: &PrometheusRecorder) {
    let counter = |name: &'static str, help: &'static str| r.describe_counter(name.into(), None, help.into());
    let gauge =
        |name: &'static str, unit: Option<Unit>, help: &'static str| r.describe_gauge(name.into(), unit, help.into());
    let histogram = |name: &'static str, unit: Option<Unit>, help: &'static str| {
        r.describe_histogram(name.into(), unit, help.into())
    };
    histogram(
        HTTP_REQUEST_DURATION,
        Some(Unit::Seconds),
        "REST calls by matched route, method and status: time to the answer's head.",
    );
    counter(LOGINS, "Tokens issued and MSYNC logins accepted, by grant.");
    counter(LOGIN_FAILURES, "Logins refused, by grant and reason.");
    counter(FILE_UPLOADS, "Chat files stored.");
    counter(FILE_UPLOAD_BYTES, "Bytes of chat files stored.");
    counter(THUMBNAILS, "Thumbnails of uploaded images, by outcome (made, original, skipped).");
    gauge(PASSWORD_QUEUE_DEPTH, Some(Unit::Count), "Password hash/check jobs waiting for a worker.");
    gauge(PASSWORD_REQUESTS, Some(Unit::Count), "Requests holding a password slot (hashing or waiting).");
    gauge(THUMBNAIL_QUEUE_DEPTH, Some(Unit::Count), "Thumbnail jobs waiting for a worker.");
    gauge(SESSIONS_ONLINE, Some(Unit::Count), "MSYNC sessions (devices) connected to this node.");
    gauge(BUILD_INFO, None, "Always 1; the version is a label.");
    gauge(PROCESS_RESIDENT_MEMORY, Some(Unit::Bytes), "Resident set size.");
    gauge(PROCESS_OPEN_FDS, Some(Unit::Count), "Open file descriptors.");
    gauge(PROCESS_MAX_FDS, Some(Unit::Count), "Soft limit on open file descriptors.");
    gauge(PROCESS_THREADS, Some(Unit::Count), "OS threads.");
    counter(SENDS, "Sends answered, by API (rest, msync) and HTTP status (200 = accepted).");
    histogram(SEND_RECIPIENTS, Some(Unit::Count), "Recipients per accepted send.");
    counter(MESSAGES_COMMITTED, "Messages made durable by a group commit.");
    histogram(COMMIT_BATCH_SIZE, Some(Unit::Count), "Operations per group commit.");
    histogram(COMMIT_FSYNC, Some(Unit::Seconds), "Duration of a group commit's fsync.");
    counter(DELIVERIES, "Messages written to devices.");
    counter(PULLS, "Pulls (CommSyncUL) answered.");
    counter(ACKS, "Acks received from devices.");
    counter(ONLINE_ONLY_DROPPED, "Online-only messages dropped.");
    gauge(OFFLINE_QUEUE_DEPTH, Some(Unit::Count), "Messages stored and not yet acked by any device (sampled).");
    counter(CALLBACKS, "Post-send callback attempts and fates, by outcome.");
    counter(CALLBACK_BANS, "Callback endpoints banned by this node for failing.");
    counter(PRESEND_CHECKS, "Pre-send callback checks, by verdict.");
    counter(PUSHES, "Offline pushes, by outcome.");
    counter(OUTBOX_DROPPED_FULL, "Callback/push entries not written: the app's outbox was full.");
    gauge(OUTBOX_ENTRIES, Some(Unit::Count), "Callback/push outbox entries by state (due, scheduled, leased).");
    gauge(OUTBOX_OLDEST_DUE, Some(Unit::Seconds), "Age of the oldest due outbox entry (0: none due).");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_described_types_and_moving_counters() {
        let m = Metrics::new();
        m.login(Grant::Password);
        m.login_failed(Grant::Password, LoginFailure::BadCredentials);
        m.committed(3, 2, Duration::from_millis(2));
        m.send(SendVia::Rest, 200);
        m.send_recipients(3);
        m.http_request("/{org}/{app}/token", "POST", 200, Duration::from_millis(3));
        let text = m.render(&Sampled { sessions_online: 2, ..Sampled::default() });
        for line in [
            "# TYPE missive_logins_total counter",
            "missive_logins_total{grant=\"password\"} 1",
            "missive_login_failures_total{grant=\"password\",reason=\"bad_credentials\"} 1",
            "missive_messages_committed_total 2",
            "# TYPE missive_commit_fsync_seconds histogram",
            "missive_commit_batch_size_count 1",
            "missive_sends_total{via=\"rest\",status=\"200\"} 1",
            "missive_sessions_online 2",
            "missive_pulls_total 0",
            "missive_build_info{version=",
        ] {
            assert!(text.contains(line), "{line:?} missing in:\n{text}");
        }
        assert!(text.contains("missive_http_request_duration_seconds_bucket{route=\"/{org}/{app}/token\",method=\"POST\",status=\"200\",le=\"0.005\"} 1"), "{text}");
    }
}
