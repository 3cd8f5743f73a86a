//! Server configuration: one documented struct, layered defaults → TOML file → `MISSIVE_*`
//! environment (`__` separates sections) → command-line flags.
//!
//! Every default is Easemob's documented default, so an app moving from Easemob sees the
//! same limits; each can be changed for a private deployment or for tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything `missive serve` can be told.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address of the one listener serving REST and WebSocket.
    pub listen: SocketAddr,
    /// Data directory: the SQLite database and uploaded files live here.
    pub data: PathBuf,
    /// Node id embedded in message ids (0–1023), unique per server sharing a store. Unset:
    /// 0 on the embedded store; on PostgreSQL a free id is leased at start. Set on
    /// PostgreSQL, the id is leased and start-up fails if another live node holds it.
    pub node_id: Option<u16>,
    pub limits: Limits,
    pub queue: QueueConfig,
    pub history: HistoryConfig,
    pub tokens: TokenConfig,
    pub sessions: SessionConfig,
    pub security: SecurityConfig,
    pub messages: MessagesConfig,
    pub files: FilesConfig,
    pub storage: StorageConfig,
    pub callbacks: CallbacksConfig,
    pub push: PushConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
}

/// Several nodes as one server (docs/cluster.md): PostgreSQL for state, NATS between nodes.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// `nats://[user:password@]host:4222` or `tls://…` (several, comma-separated); empty: this
    /// node is alone. Also `--nats-url` / `MISSIVE_NATS_URL`.
    pub nats_url: String,
    /// Prefix of every NATS subject, so two clusters sharing one NATS never see each other.
    pub name: String,
    /// A NATS `.creds` file (JWT + NKey seed), if the NATS server uses decentralized auth.
    pub nats_credentials: Option<PathBuf>,
    /// A NATS auth token, if the server uses token auth.
    pub nats_token: String,
    /// PEM file of CA certificates trusted for `tls://` NATS servers (besides the system's).
    pub nats_ca: Option<PathBuf>,
    /// How long a crashed node's devices keep counting as online, and its node id leased.
    pub presence_ttl_secs: u64,
    /// `redis://host:6379/` for exact cluster-wide send quotas; empty: each node enforces
    /// the app's limits divided by the number of live nodes.
    pub redis_url: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: String::new(),
            name: "missive".into(),
            nats_credentials: None,
            nats_token: String::new(),
            nats_ca: None,
            presence_ttl_secs: 30,
            redis_url: String::new(),
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    /// URLs may carry passwords and the token is one: neither reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("nats_url", &redact_url(&self.nats_url))
            .field("name", &self.name)
            .field("nats_credentials", &self.nats_credentials)
            .field("nats_token", &if self.nats_token.is_empty() { "" } else { "<redacted>" })
            .field("nats_ca", &self.nats_ca)
            .field("presence_ttl_secs", &self.presence_ttl_secs)
            .field("redis_url", &redact_url(&self.redis_url))
            .finish()
    }
}

/// Where durable state lives.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// Empty or `sqlite://PATH`: the embedded SQLite store (default `<data>/missive.db`).
    /// `postgres://user[:password]@host[:port]/db[?sslmode=…]`: PostgreSQL, for several nodes.
    /// Also `--database-url` / `MISSIVE_DATABASE_URL`.
    pub url: String,
    /// How long a write waits for a database locked by another process (a backup, the
    /// `app create` command) or a slow disk before the request fails with 503.
    pub busy_timeout_ms: u64,
    /// PostgreSQL connections per node.
    pub pool_size: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { url: String::new(), busy_timeout_ms: 5000, pool_size: 16 }
    }
}

impl std::fmt::Debug for StorageConfig {
    /// The URL may carry a password: only its scheme and host part are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &redact_url(&self.url))
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:…@host/…`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:…@{host}"),
        None => url.to_owned(),
    }
}

/// Which store `storage.url` selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageUrl {
    /// The embedded SQLite database at this path.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./missive-data"),
            node_id: None,
            limits: Limits::default(),
            queue: QueueConfig::default(),
            history: HistoryConfig::default(),
            tokens: TokenConfig::default(),
            sessions: SessionConfig::default(),
            security: SecurityConfig::default(),
            messages: MessagesConfig::default(),
            files: FilesConfig::default(),
            storage: StorageConfig::default(),
            callbacks: CallbacksConfig::default(),
            push: PushConfig::default(),
            cluster: ClusterConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Request limits of the REST API (Easemob's documented defaults).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Raw body of a send request; more is 413.
    pub send_body_bytes: usize,
    /// Serialized `body` + `ext` of one message; more is 400 `message is too large`.
    pub message_content_bytes: usize,
    /// Recipients per send call.
    pub max_recipients: usize,
    /// Send calls per second per app (→ 429).
    pub send_calls_per_second: u32,
    /// Messages per minute per app, each recipient counting once (→ 403).
    pub send_messages_per_minute: u32,
    /// Raw body of any other JSON request.
    pub json_body_bytes: usize,
    /// Users per batch registration.
    pub batch_register: usize,
    /// Users per batch status query.
    pub batch_status: usize,
    /// Sends processed at once; more are shed with 503 instead of queueing (0 sheds all).
    pub max_inflight_sends: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            send_body_bytes: 5 * 1024,
            message_content_bytes: 3 * 1024,
            max_recipients: 600,
            send_calls_per_second: 100,
            send_messages_per_minute: 6000,
            json_body_bytes: 1024 * 1024,
            batch_register: 60,
            batch_status: 100,
            // Admitted sends wait at most about this many commits' worth: at ≈ 5,000 sends/s
            // on two cores, 512 bounds an admitted send's wait near 100 ms under overload.
            max_inflight_sends: 512,
        }
    }
}

/// Offline queues.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// How long a queued message is kept (Easemob: 7 days).
    pub retention_secs: u64,
    /// Undelivered messages kept per user; the oldest are evicted (Easemob: 500).
    pub max_offline_per_user: u32,
    /// Messages per pull batch (`CommSyncDL.metas`).
    pub pull_batch: u32,
    /// How often expired messages are swept.
    pub sweep_interval_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retention_secs: 7 * 24 * 3600,
            max_offline_per_user: 500,
            pull_batch: 100,
            sweep_interval_secs: 300,
        }
    }
}

/// The message archive: history, conversation lists, the hourly export and the legacy
/// chat-log query (docs/architecture.md, "Message archive").
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryConfig {
    /// Archive one-to-one messages at all. Off: history, conversation lists and exports
    /// are empty (the send path writes only the queue).
    pub enabled: bool,
    /// How long an archived message is kept (Easemob's basic plan: 7 days); 0 = forever.
    /// Swept every `queue.sweep_interval_secs`, off the request path.
    pub retention_secs: u64,
    /// Whether messages sent through the REST API move the parties' conversation lists
    /// (they are in history either way).
    pub rest_in_conversations: bool,
    /// How long a download URL of an hourly export stays valid.
    pub export_url_ttl_secs: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            retention_secs: 7 * 24 * 3600,
            rest_in_conversations: true,
            export_url_ttl_secs: 3600,
        }
    }
}

impl HistoryConfig {
    /// Retention in ms, `None` when kept forever.
    pub fn retention_ms(&self) -> Option<u64> {
        (self.retention_secs > 0).then(|| self.retention_secs.saturating_mul(1000))
    }
}

/// Token lifetimes when the request gives no `ttl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    pub app_ttl_secs: u64,
    pub user_ttl_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        // Easemob's console default and the documented `inherit` default: 60 days.
        TokenConfig { app_ttl_secs: 60 * 24 * 3600, user_ttl_secs: 60 * 24 * 3600 }
    }
}

/// MSYNC sessions.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    /// Concurrent devices per user; one more login is refused with TOO_MANY_DEVICES.
    pub max_devices_per_user: usize,
    /// A connection that sends nothing (not even the UNREAD heartbeat) for this long is closed.
    pub idle_timeout_secs: u64,
    /// Frames queued for one connection before it counts as stuck and is disconnected.
    pub send_buffer_frames: usize,
    /// Largest frame accepted from a client.
    pub max_frame_bytes: usize,
    /// Messages a session holds in memory for its device (stored ones not yet sent, sent
    /// ones not yet acked, online-only ones). Past it, unsent stored messages are dropped and
    /// read again later; a client holding this many unacked ones is not pulling and is
    /// disconnected.
    pub max_online_pending: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_devices_per_user: 8,
            idle_timeout_secs: 150,
            send_buffer_frames: 512,
            max_frame_bytes: 64 * 1024,
            max_online_pending: 1024,
        }
    }
}

/// Password hashing and registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// Argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Whether apps created without saying otherwise allow unauthenticated registration.
    pub open_registration: bool,
    /// Threads hashing and checking passwords; each holds one Argon2 memory block, so
    /// password work never takes more than this × `argon2_memory_kib`. 0: one per core.
    pub password_workers: usize,
    /// Requests waiting for a password worker; past this, 503 (a flood is refused at once,
    /// not queued). A batch registration is one request, hashing its users one by one.
    pub password_queue: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            open_registration: false,
            password_workers: 0,
            // At ≈ 30 ms a hash, 128 waiting requests on two workers wait ≈ 2 s at most.
            password_queue: 128,
        }
    }
}

/// Message behaviour.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MessagesConfig {
    /// How long after sending a message may be recalled without `force` (Easemob: 2 min).
    pub recall_window_secs: u64,
    /// How long a send's `Idempotency-Key` is remembered (a Missive extension).
    pub idempotency_ttl_secs: u64,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig { recall_window_secs: 120, idempotency_ttl_secs: 24 * 3600 }
    }
}

/// Chat files (`/chatfiles`): limits, retention, thumbnails and where the bytes live.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct FilesConfig {
    /// Largest upload in bytes (Easemob: 10 MB); more is 413 `file exceeding maximum limit`.
    pub max_bytes: u64,
    /// How long a file can be downloaded (Easemob: 7 days); then 404 `file_expired`.
    pub retention_secs: u64,
    /// How often expired files and their thumbnails are deleted.
    pub sweep_interval_secs: u64,
    /// Thumbnail box when the upload names none (Easemob: 170 px).
    pub thumbnail_px: u32,
    /// Images this small are their own thumbnail (Easemob: 10 KB).
    pub own_thumbnail_bytes: u64,
    /// Largest image (width × height) decoded for a thumbnail; bigger ones (or decompression
    /// bombs) keep the original as their thumbnail.
    pub max_image_pixels: u64,
    /// Threads making thumbnails; each holds one image and its decoded pixels in memory.
    pub thumbnail_workers: usize,
    /// Uploads waiting for a thumbnail worker; past this, the original serves as the
    /// thumbnail (the upload itself still succeeds).
    pub thumbnail_queue: usize,
    /// `local` (a directory) or `s3` (an S3-compatible bucket, for several nodes).
    pub backend: BlobBackend,
    /// Directory of the `local` backend; default `<data>/files`.
    pub dir: Option<PathBuf>,
    pub s3: S3Config,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_bytes: 10 * 1024 * 1024,
            retention_secs: 7 * 24 * 3600,
            sweep_interval_secs: 300,
            thumbnail_px: 170,
            own_thumbnail_bytes: 10 * 1024,
            max_image_pixels: 25_000_000,
            thumbnail_workers: 2,
            thumbnail_queue: 32,
            backend: BlobBackend::Local,
            dir: None,
            s3: S3Config::default(),
        }
    }
}

/// Post-send and pre-send callbacks, and the outbox both callbacks and pushes are sent from
/// (docs/callbacks.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CallbacksConfig {
    /// `host` in callback bodies; empty: `missive@{node_id}`.
    pub host: String,
    /// Whole-request deadline of one callback attempt (Easemob: 10 s).
    pub timeout_ms: u64,
    /// Callback and push deliveries in flight at once on this node.
    pub max_in_flight: usize,
    /// Outbox entries claimed at once.
    pub claim_batch: u32,
    /// How long claimed entries are this node's before another node may take them; longer
    /// than the slowest delivery (two attempts of `timeout_ms`).
    pub lease_secs: u64,
    /// How often the outbox is looked at when no send on this node woke the dispatcher.
    pub poll_interval_ms: u64,
    /// How often rule and provider changes (CLI, other nodes) are looked for.
    pub refresh_interval_ms: u64,
    /// Entries one app may have waiting; past it, that app's new callbacks and pushes are
    /// dropped (counted and logged) and sends go on at full speed.
    pub max_outbox_per_app: u64,
    /// Zone of exception-storage date keys, minutes east of UTC (Easemob: Beijing, 480).
    pub date_key_utc_offset_minutes: i32,
    /// The ban rule: this many failures within `ban_window_ms` ban a rule, the n-th ban
    /// within a day for n × `ban_step_ms` (Easemob: 90 in 30 s, 5 min).
    pub ban_max_failures: u32,
    pub ban_window_ms: i64,
    pub ban_step_ms: i64,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            host: String::new(),
            timeout_ms: 10_000,
            max_in_flight: 64,
            claim_batch: 256,
            lease_secs: 60,
            poll_interval_ms: 200,
            refresh_interval_ms: 500,
            max_outbox_per_app: 100_000,
            date_key_utc_offset_minutes: 480,
            ban_max_failures: 90,
            ban_window_ms: 30_000,
            ban_step_ms: 5 * 60_000,
        }
    }
}

/// Offline push (docs/push.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// Whole-request deadline of one request to a provider.
    pub timeout_ms: u64,
    /// Zone of do-not-disturb hours, minutes east of UTC (Easemob: Beijing, 480).
    pub dnd_utc_offset_minutes: i32,
    /// Delays of the attempts after a failed push; then it is dropped.
    pub retry_backoff_secs: Vec<u64>,
    /// PEM certificates to trust instead of the system's (a private push gateway).
    pub trusted_roots_pem_file: Option<PathBuf>,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            timeout_ms: 10_000,
            dnd_utc_offset_minutes: 480,
            retry_backoff_secs: vec![5, 30, 120, 600],
            trusted_roots_pem_file: None,
        }
    }
}

/// Server logs (stderr).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` (human-readable lines) or `json` (one object per line, for log shippers).
    pub format: LogFormat,
    /// What to log, in `tracing` filter syntax (`info`, `warn,missive::access=off`, …);
    /// the `MISSIVE_LOG` environment variable, when set, takes precedence.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, filter: "info".into() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `GET /metrics` (Prometheus text format). Off unless one of the two is set: metrics tell
/// an outsider how busy the server is and which routes exist.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve `/metrics` on the main listener to requests with `Authorization: Bearer TOKEN`.
    /// Empty: not served there.
    pub token: String,
    /// Serve `/metrics` (no token) on this separate address, e.g. `127.0.0.1:9090`, for a
    /// scraper on a private network.
    pub listen: Option<SocketAddr>,
}

impl std::fmt::Debug for MetricsConfig {
    /// Redacts the token: configs end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .field("listen", &self.listen)
            .finish()
    }
}

/// Where uploaded bytes are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    Local,
    S3,
}

/// An S3-compatible bucket (AWS, MinIO, Ceph, …). Empty strings mean "not set": credentials
/// and region then come from the standard `AWS_*` environment variables.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Config {
    pub bucket: String,
    /// e.g. `http://127.0.0.1:9000` for MinIO; empty for AWS.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Prepended to every object key, so one bucket can serve several deployments.
    pub prefix: String,
    /// Permit a plain-HTTP endpoint (a local MinIO or test server).
    pub allow_http: bool,
    /// `https://bucket.host/key` instead of `https://host/bucket/key`.
    pub virtual_hosted_style: bool,
}

impl std::fmt::Debug for S3Config {
    /// Redacts the secret key: configs end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &if self.secret_access_key.is_empty() { "" } else { "<redacted>" })
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .finish()
    }
}

impl Config {
    /// Layers defaults, then `file` (if given), then `MISSIVE_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        // Only our own sections: other MISSIVE_* variables (test settings, say) are not config.
        const SECTIONS: &[&str] = &[
            "listen",
            "data",
            "node_id",
            "limits",
            "queue",
            "history",
            "tokens",
            "sessions",
            "security",
            "messages",
            "files",
            "storage",
            "callbacks",
            "push",
            "cluster",
            "log",
            "metrics",
        ];
        fig = fig.merge(Env::prefixed("MISSIVE_").split("__").filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            // `MISSIVE_LOG` is the log filter (read by `telemetry::logs`), not the `[log]` table.
            k != "log"
                && SECTIONS
                    .iter()
                    .any(|s| k == *s || k.starts_with(&format!("{s}__")) || k.starts_with(&format!("{s}.")))
        }));
        fig.extract().map_err(Box::new)
    }

    /// The directory of the `local` file backend.
    pub fn files_dir(&self) -> PathBuf {
        self.files.dir.clone().unwrap_or_else(|| self.data.join("files"))
    }

    /// The SQLite database file inside the data directory.
    pub fn database_path(&self) -> PathBuf {
        self.data.join("missive.db")
    }

    /// The store `storage.url` names; an unknown scheme is an error that names it.
    pub fn storage_url(&self) -> Result<StorageUrl, String> {
        let url = self.storage.url.trim();
        if url.is_empty() {
            return Ok(StorageUrl::Sqlite(self.database_path()));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(StorageUrl::Sqlite(if path.is_empty() { self.database_path() } else { PathBuf::from(path) }));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StorageUrl::Postgres(url.to_owned()));
        }
        Err(format!(
            "storage.url {:?} is neither sqlite://PATH nor postgres://…",
            redact_url(url).split("://").next().unwrap_or_default()
        ))
    }

    /// A commented example configuration (`missive config example`).
    pub fn example() -> &'static str {
        include_str!("../../../config/example.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `missive config example` promises "shown values are the defaults": every key it shows
    /// parses, and together they are exactly `Config::default()`.
    #[test]
    fn the_example_file_states_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("example.toml");
        std::fs::write(&file, Config::example()).unwrap();
        let loaded = Config::load(Some(&file)).expect("the example parses");
        assert_eq!(serde_json::to_value(&loaded).unwrap(), serde_json::to_value(Config::default()).unwrap());
    }
}
