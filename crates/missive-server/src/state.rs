//! `AppState`: the one context every handler and session shares.
//!
//! One struct behind one `Arc` rather than many extractors: handlers take
//! `State<AppState>` and reach the store, the token authenticator, the send path, the
//! session hub and the quotas through it. Nothing here is global; tests run many servers in
//! one process.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use missive_core::model::App;
use missive_core::store::{QueuePolicy, Store};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::error::{ApiError, ApiResult};
use crate::hub::Hub;
use crate::notify::Notifier;
use crate::ratelimit::Quota;

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    /// The send path every message takes (`crate::delivery`).
    pub delivery: Delivery,
    /// Online sessions on this node; also the store's commit listener (wired in `crate::run`).
    pub hub: Arc<Hub>,
    /// Callbacks and push: rules, the pre-send check, the outbox dispatcher, metrics.
    pub notifier: Arc<Notifier>,
    pub apps: AppCache,
    /// Send calls per second per app.
    pub send_calls: Quota,
    /// Messages (recipients) per minute per app.
    pub send_messages: Quota,
    /// Cancelled when the server shuts down; sessions watch it to close cleanly.
    pub shutdown: CancellationToken,
    /// One lock per idempotency key being processed, so concurrent retries of one request
    /// do not both send.
    pub idempotency_locks: DashMap<(uuid::Uuid, String), Arc<tokio::sync::Mutex<()>>>,
    /// Where chat file bytes live (local directory or S3).
    pub blobs: Arc<dyn BlobStore>,
    /// Thumbnails being generated; each holds an image and its pixels in memory, so the
    /// count is bounded (`files.thumbnail_workers`).
    pub thumbnail_permits: tokio::sync::Semaphore,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        notifier: Arc<Notifier>,
        blobs: Arc<dyn BlobStore>,
        shutdown: CancellationToken,
    ) -> AppState {
        let auth = Arc::new(Authenticator::new(
            store.clone(),
            config.security.argon2_memory_kib,
            config.security.argon2_iterations,
        ));
        let policy = QueuePolicy { max_offline_per_user: config.queue.max_offline_per_user };
        let delivery = Delivery::new(
            store.clone(),
            hub.clone(),
            notifier.clone(),
            config.node_id,
            policy,
            config.limits.max_inflight_sends,
        );
        AppState(Arc::new(Shared {
            delivery,
            send_calls: Quota::new(config.limits.send_calls_per_second, Duration::from_secs(1)),
            send_messages: Quota::new(config.limits.send_messages_per_minute, Duration::from_secs(60)),
            apps: AppCache::new(store.clone()),
            idempotency_locks: DashMap::new(),
            thumbnail_permits: tokio::sync::Semaphore::new(config.files.thumbnail_workers.max(1)),
            blobs,
            auth,
            hub,
            notifier,
            store,
            config,
            shutdown,
        }))
    }
}

/// Apps by `org/app`. Only hits are cached, so an app created by `missive app create` in
/// another process is found on its first request.
pub struct AppCache {
    store: Arc<dyn Store>,
    by_name: DashMap<(String, String), Arc<App>>,
}

impl AppCache {
    fn new(store: Arc<dyn Store>) -> AppCache {
        AppCache { store, by_name: DashMap::new() }
    }

    pub async fn get(&self, org: &str, name: &str) -> ApiResult<Option<Arc<App>>> {
        if let Some(app) = self.by_name.get(&(org.to_owned(), name.to_owned())) {
            return Ok(Some(app.clone()));
        }
        let Some(app) = self.store.app_by_name(org, name).await.map_err(ApiError::from)? else {
            return Ok(None);
        };
        let app = Arc::new(app);
        self.by_name.insert((org.to_owned(), name.to_owned()), app.clone());
        Ok(Some(app))
    }
}
