//! The Missive server: Easemob's REST API and the MSYNC WebSocket on one listener.
//!
//! # Layout
//! - [`config`]: the `Config` struct and its layering (defaults, file, env, flags).
//! - [`state`]: `AppState`, shared by every handler and session.
//! - [`http`]: the REST API, one module per Easemob area.
//! - [`ws`]: `/websocket`, the MSYNC sessions of the client SDKs; `/ws`, the sync gateway of
//!   the SDK bundled in the UIKit.
//! - [`hub`]: online devices on this node and the channels that reach them.
//! - [`fanout`]: how events reach a user's sessions on any node; [`cluster`]: node leases,
//!   the NATS bus and shared presence for several nodes.
//! - [`delivery`]: the one path every message takes (id → commit with a queue sequence →
//!   announce → sessions deliver by sequence), and the per-session queue views.
//! - [`notify`]: callbacks and offline push — rules, the outbox a send writes with its
//!   messages, the pre-send check, the dispatcher.
//! - [`blobs`]: where chat file bytes live (a directory, or S3 for several nodes).
//! - [`media`]: what media messages learn from the chat files they point at.
//! - [`auth`]: tokens. [`passwords`]: Argon2 on a bounded pool ([`workers`], also the
//!   thumbnails'). [`ratelimit`]: per-app quotas. [`error`]: `ApiError`.
//! - [`telemetry`]: metrics, logs, request ids.
//!
//! [`run`] is the seam tests and `main` share: the caller owns the listener and the
//! shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::App;
use missive_core::store::{Store, StoreError};
use missive_store::{PgStore, PgStoreOptions, SqliteStore, SqliteStoreOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub mod auth;
pub mod blobs;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod error;
pub mod fanout;
pub mod http;
pub mod hub;
pub mod media;
pub mod notify;
pub mod passwords;
pub mod ratelimit;
pub mod state;
pub mod telemetry;
pub mod workers;
pub mod ws;

pub use config::{Config, StorageUrl};
pub use state::AppState;

/// Why the server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid app name {0:?}: use 1-64 letters, digits, '-' or '_'")]
    InvalidAppName(String),
    #[error("app {0} already exists")]
    AppExists(String),
    #[error("file storage: {0}")]
    Blobs(#[from] blobs::BlobError),
    #[error("data directory {0} is in use by another `missive serve` (lock held on missive.lock)")]
    Locked(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
}

/// An exclusive lock on the data directory, held for as long as `serve` runs, so two servers
/// never open the same embedded store. Commands that are safe beside a running server
/// (`app create`, `backup`) do not take it.
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Takes the data directory's lock, failing at once if another process holds it.
pub fn lock_data_dir(config: &Config) -> Result<DataDirLock, ServerError> {
    std::fs::create_dir_all(&config.data)
        .map_err(|source| ServerError::DataDir { path: config.data.display().to_string(), source })?;
    let path = config.data.join("missive.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServerError::DataDir { path: path.display().to_string(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::Locked(config.data.display().to_string())),
        Err(std::fs::TryLockError::Error(source)) => {
            Err(ServerError::DataDir { path: path.display().to_string(), source })
        }
    }
}

/// reqwest (the S3 blob store's HTTP client) is built with rustls but without a bundled
/// crypto provider, which keeps the slow aws-lc-rs C build out; every process that builds an
/// HTTP client installs ring once. Safe to call repeatedly.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An open store of either backend: `Deref`s to `dyn Store` for everything the server does,
/// and keeps what only one backend can do (SQLite's backup) reachable.
pub enum StoreHandle {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl std::ops::Deref for StoreHandle {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        match self {
            StoreHandle::Sqlite(s) => s,
            StoreHandle::Postgres(p) => p,
        }
    }
}

impl StoreHandle {
    /// The store as the server shares it.
    pub fn shared(self) -> Arc<dyn Store> {
        match self {
            StoreHandle::Sqlite(s) => Arc::new(s),
            StoreHandle::Postgres(p) => Arc::new(p),
        }
    }

    /// Waits for queued writes (SQLite) or closes the pool (PostgreSQL).
    pub async fn close(&self) {
        match self {
            StoreHandle::Sqlite(s) => s.close().await,
            StoreHandle::Postgres(p) => p.close().await,
        }
    }
}

/// Opens the store `storage.url` selects: the embedded SQLite database (under `--data`
/// unless the URL names a file) or PostgreSQL (migrations applied at start).
pub async fn open_store(config: &Config) -> Result<StoreHandle, ServerError> {
    match config.storage_url().map_err(ServerError::Config)? {
        StorageUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|source| ServerError::DataDir { path: dir.display().to_string(), source })?;
            }
            let options = SqliteStoreOptions {
                busy_timeout: Duration::from_millis(config.storage.busy_timeout_ms.max(1)),
                ..SqliteStoreOptions::default()
            };
            Ok(StoreHandle::Sqlite(SqliteStore::open(&path, options).await?))
        }
        StorageUrl::Postgres(url) => {
            let options = PgStoreOptions {
                max_connections: config.storage.pool_size.max(2),
                acquire_timeout: Duration::from_millis(config.storage.busy_timeout_ms.max(1)),
                ..PgStoreOptions::default()
            };
            Ok(StoreHandle::Postgres(PgStore::open(&url, options).await?))
        }
    }
}

/// The whole HTTP surface: REST, `/websocket`, CORS, error stamping, and (outermost) request
/// ids, access logs and latency metrics.
pub fn router(state: AppState) -> Router {
    let routes = http::router().route("/websocket", get(ws::upgrade)).route("/ws", get(ws::gateway::upgrade));
    http::with_error_stamps(routes)
        .layer(http::cors())
        .layer(axum::middleware::from_fn_with_state(state.clone(), http::observe::observe))
        .with_state(state)
}

/// Puts the server together around an open store, in the order the architecture reads:
/// this node's identity (a leased node id on PostgreSQL), the session hub, the fan-out —
/// the hub alone, or the NATS bus in a cluster — wired as the store's commit listener, so
/// every commit is announced in commit order (see [`delivery`]), the presence every node
/// sees, the send quotas, the notifier (callbacks and push; [`run`] starts its
/// dispatcher), and the shared state with the send path.
pub async fn assemble(
    config: Config,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<AppState, ServerError> {
    let blobs = blobs::open(&config)?;
    let on_postgres = matches!(config.storage_url().map_err(ServerError::Config)?, StorageUrl::Postgres(_));
    let clustered = !config.cluster.nats_url.trim().is_empty();
    if clustered && !on_postgres {
        return Err(ServerError::Config(
            "cluster.nats_url needs a PostgreSQL storage.url: the nodes of a cluster share their state there".into(),
        ));
    }
    let ttl = Duration::from_secs(config.cluster.presence_ttl_secs.max(3));
    let identity = if on_postgres {
        cluster::NodeIdentity::lease(store.clone(), config.node_id, ttl, shutdown.clone()).await?
    } else {
        cluster::NodeIdentity::fixed(config.node_id.unwrap_or(0))
    };
    let sessions = &config.sessions;
    let hub = Arc::new(hub::Hub::new(sessions.send_buffer_frames, sessions.max_devices_per_user, identity.node));
    let limits = &config.limits;
    let (fanout, bus, presence, quotas): (Arc<dyn fanout::Fanout>, _, _, _) = if clustered {
        if config.files.backend == config::BlobBackend::Local {
            tracing::warn!(
                "CLUSTER WITH LOCAL FILES: files.backend = \"local\" keeps uploads on this node only; \
                 other nodes answer 404 for them. Use files.backend = \"s3\" in a cluster (docs/cluster.md)."
            );
        }
        let bus = cluster::NatsBus::connect(&config.cluster, hub.clone(), identity.instance).await?;
        let presence = Arc::new(cluster::Presence::shared(
            hub.clone(),
            store.clone(),
            identity.clone(),
            sessions.max_devices_per_user as u32,
            ttl,
        ));
        let quotas = if config.cluster.redis_url.trim().is_empty() {
            tracing::warn!("cluster without cluster.redis_url: send quotas are enforced per node, not cluster-wide");
            ratelimit::SendQuotas::local(limits.send_calls_per_second, limits.send_messages_per_minute)
        } else {
            ratelimit::SendQuotas::redis(
                &config.cluster.redis_url,
                &config.cluster.name,
                limits.send_calls_per_second,
                limits.send_messages_per_minute,
            )
            .await
            .map_err(|e| ServerError::Config(format!("cluster.redis_url: {e}")))?
        };
        (bus.clone(), Some(bus), presence, quotas)
    } else {
        let quotas = ratelimit::SendQuotas::local(limits.send_calls_per_second, limits.send_messages_per_minute);
        (hub.clone(), None, Arc::new(cluster::Presence::local(hub.clone())), quotas)
    };
    let telemetry = Arc::new(telemetry::Telemetry::new());
    store.set_commit_listener(Arc::new(telemetry::MeteredCommits::new(fanout.clone(), telemetry.metrics.clone())));
    // Callback and push clients are rustls with ring, like the S3 client.
    install_crypto_provider();
    let notifier = Arc::new(notify::Notifier::new(&config, store.clone(), identity.node)?);
    let parts = state::Parts { hub, fanout, presence, bus, identity, quotas, blobs, notifier, telemetry };
    Ok(AppState::new(config, store, parts, shutdown))
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting, tells sessions to
/// close, and finishes in-flight requests.
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let token = CancellationToken::new();
    let state = assemble(config, store, token.clone()).await?;
    state.notifier.start(token.clone()).await;
    let metrics_stop = token.clone();
    http::scrape::serve_separately(&state, async move { metrics_stop.cancelled().await }).await?;
    let sweeper = tokio::spawn(sweep_forever(state.clone()));
    let file_sweeper = tokio::spawn(http::files::sweep_forever(state.clone()));
    let app = router(state.clone());
    let stop = token.clone();
    // TCP_NODELAY: MSYNC is small request/response frames; with Nagle on, a NOTICE written
    // while the previous frame's ACK is still delayed by the client waits ~40 ms for it.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // `into_make_service`: served as a plain `Router`, axum rebuilds the whole route table
    // (`with_state`, every route's layer stack cloned) for each new connection — a fifth of
    // the server's CPU during a login storm, where every session is a new connection. Built
    // once here, a connection costs an `Arc` clone.
    let result = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await;
    token.cancel();
    sweeper.abort();
    file_sweeper.abort();
    if let Some(bus) = &state.bus {
        bus.flush().await;
    }
    state.identity.finish().await;
    result.map_err(ServerError::from)
}

/// Deletes messages and archived history past retention, off the request path, every
/// `sweep_interval_secs`.
async fn sweep_forever(state: AppState) {
    let every = Duration::from_secs(state.config.queue.sweep_interval_secs.max(1));
    let retention_ms = state.config.queue.retention_secs.saturating_mul(1000);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.cancelled() => return,
        }
        let floor = MsgId::floor_at(now_ms().saturating_sub(retention_ms));
        match state.store.sweep(floor).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "swept expired messages and devices"),
            Ok(_) => {}
            Err(e) => tracing::warn!(%e, "sweep failed"),
        }
        sweep_history(&state).await;
        let keys_before = now_ms().saturating_sub(state.config.messages.idempotency_ttl_secs.saturating_mul(1000));
        if let Err(e) = state.store.sweep_idempotency(keys_before as i64).await {
            tracing::warn!(%e, "idempotency sweep failed");
        }
    }
}

/// Archived rows one sweep write removes: small enough that the store's writer is never
/// held for long, so sends keep flowing while a large backlog expires.
const HISTORY_SWEEP_CHUNK: u32 = 5_000;

/// Deletes archived messages past `history.retention_secs` (never, with 0), in chunks.
async fn sweep_history(state: &AppState) {
    let Some(retention_ms) = state.config.history.retention_ms() else { return };
    let floor = MsgId::floor_at(now_ms().saturating_sub(retention_ms));
    let mut removed = 0;
    loop {
        match state.store.sweep_history(floor, HISTORY_SWEEP_CHUNK).await {
            Ok(n) => {
                removed += n;
                if n < u64::from(HISTORY_SWEEP_CHUNK) || state.shutdown.is_cancelled() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(%e, "history sweep failed");
                break;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "swept expired history");
    }
}

fn valid_app_part(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn random_credential() -> Result<String, ServerError> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| ServerError::Io(std::io::Error::other(e.to_string())))?;
    Ok(format!("YXA6{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// Creates an app with fresh client credentials.
pub async fn create_app(store: &dyn Store, org: &str, name: &str, open_registration: bool) -> Result<App, ServerError> {
    if !valid_app_part(org) {
        return Err(ServerError::InvalidAppName(org.into()));
    }
    if !valid_app_part(name) {
        return Err(ServerError::InvalidAppName(name.into()));
    }
    let app = App {
        id: Uuid::new_v4(),
        org: org.into(),
        name: name.into(),
        client_id: random_credential()?,
        client_secret: random_credential()?,
        open_registration,
        created: now_ms() as i64,
    };
    match store.create_app(&app).await {
        Ok(()) => Ok(app),
        Err(StoreError::Conflict(_)) => Err(ServerError::AppExists(format!("{org}/{name}"))),
        Err(e) => Err(e.into()),
    }
}

/// The JSON `missive app create` prints, and `serve` prints for the demo app.
pub fn app_credentials_json(app: &App) -> serde_json::Value {
    serde_json::json!({
        "org": app.org,
        "app": app.name,
        "application": app.id.to_string(),
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    })
}
