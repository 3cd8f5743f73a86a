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
    /// Node id embedded in message ids: unique per server sharing a store (0–1023).
    pub node_id: u16,
    pub limits: Limits,
    pub queue: QueueConfig,
    pub tokens: TokenConfig,
    pub sessions: SessionConfig,
    pub security: SecurityConfig,
    pub messages: MessagesConfig,
    pub files: FilesConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
}

/// The embedded store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// How long a write waits for a database locked by another process (a backup, the
    /// `app create` command) or a slow disk before the request fails with 503.
    pub busy_timeout_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { busy_timeout_ms: 5000 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./missive-data"),
            node_id: 0,
            limits: Limits::default(),
            queue: QueueConfig::default(),
            tokens: TokenConfig::default(),
            sessions: SessionConfig::default(),
            security: SecurityConfig::default(),
            messages: MessagesConfig::default(),
            files: FilesConfig::default(),
            storage: StorageConfig::default(),
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
    /// Online-only messages (`ROUTE_ONLINE`, `sync_device` copies) a session may hold
    /// unpulled; a client that stops pulling is disconnected past this.
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
            "listen", "data", "node_id", "limits", "queue", "tokens", "sessions", "security", "messages", "files",
            "storage", "log", "metrics",
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
