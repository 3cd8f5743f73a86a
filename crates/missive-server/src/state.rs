//! `AppState`: the one context every handler and session shares.
//!
//! One struct behind one `Arc` rather than many extractors: handlers take
//! `State<AppState>` and reach the store, the token authenticator, the send path, the
//! session hub and the quotas through it. Nothing here is global; tests run many servers in
//! one process.

use std::ops::Deref;
use std::sync::Arc;

use dashmap::DashMap;
use missive_core::model::{App, DeviceInfo};
use missive_core::store::{QueuePolicy, Store, StoreError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Authenticator;
use crate::blobs::BlobStore;
use crate::cluster::{NatsBus, NodeIdentity, Presence, TooManyDevices};
use crate::config::Config;
use crate::delivery::{ArchivePolicy, Delivery, DeliveryLinks};
use crate::error::{ApiError, ApiResult};
use crate::fanout::{Fanout, KickReason, KickTarget};
use crate::hub::{Hub, RegisterError, SessionRegistration};
use crate::notify::Notifier;
use crate::ratelimit::SendQuotas;
use crate::telemetry::Telemetry;
use crate::workers::WorkerPool;

/// What `crate::assemble` builds around the store before the state exists.
pub struct Parts {
    pub hub: Arc<Hub>,
    pub fanout: Arc<dyn Fanout>,
    pub presence: Arc<Presence>,
    pub bus: Option<Arc<NatsBus>>,
    pub identity: Arc<NodeIdentity>,
    pub quotas: SendQuotas,
    pub blobs: Arc<dyn BlobStore>,
    pub notifier: Arc<Notifier>,
    pub telemetry: Arc<Telemetry>,
}

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    /// The send path every message takes (`crate::delivery`).
    pub delivery: Delivery,
    /// Online sessions on this node.
    pub hub: Arc<Hub>,
    /// How events reach a user's sessions on any node: the hub alone, or the NATS bus in a
    /// cluster. Also the store's commit listener (wired in `crate::assemble`).
    pub fanout: Arc<dyn Fanout>,
    /// Who is online, on this node or cluster-wide.
    pub presence: Arc<Presence>,
    /// The NATS bus, in a cluster.
    pub bus: Option<Arc<NatsBus>>,
    /// This node's id and lease.
    pub identity: Arc<NodeIdentity>,
    /// Callbacks and push: rules, the pre-send check, the outbox dispatcher, metrics.
    pub notifier: Arc<Notifier>,
    pub apps: AppCache,
    /// Send calls per second and messages per minute, per app (node-local or via Redis).
    pub quotas: SendQuotas,
    /// Cancelled when the server shuts down; sessions watch it to close cleanly.
    pub shutdown: CancellationToken,
    /// One lock per idempotency key being processed, so concurrent retries of one request
    /// do not both send.
    pub idempotency_locks: DashMap<(uuid::Uuid, String), Arc<tokio::sync::Mutex<()>>>,
    /// Where chat file bytes live (local directory or S3).
    pub blobs: Arc<dyn BlobStore>,
    /// The thumbnail workers: each holds an image and its pixels in memory, so there are
    /// `files.thumbnail_workers` of them, and at most `files.thumbnail_queue` waiting.
    pub thumbnails: WorkerPool<()>,
    /// Metrics and request ids.
    pub telemetry: Arc<Telemetry>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>, parts: Parts, shutdown: CancellationToken) -> AppState {
        let Parts { hub, fanout, presence, bus, identity, quotas, blobs, notifier, telemetry } = parts;
        let auth = Arc::new(Authenticator::new(store.clone(), &config.security));
        let policy = QueuePolicy { max_offline_per_user: config.queue.max_offline_per_user };
        let links = DeliveryLinks {
            store: store.clone(),
            hub: hub.clone(),
            fanout: fanout.clone(),
            notifier: notifier.clone(),
            presence: presence.clone(),
            metrics: telemetry.metrics.clone(),
        };
        let archive =
            ArchivePolicy { enabled: config.history.enabled, rest_listed: config.history.rest_in_conversations };
        let delivery = Delivery::new(links, identity.node, (policy, archive), config.limits.max_inflight_sends);
        AppState(Arc::new(Shared {
            delivery,
            quotas,
            fanout,
            presence,
            bus,
            identity,
            apps: AppCache::new(store.clone()),
            idempotency_locks: DashMap::new(),
            thumbnails: crate::http::files::thumbnail::pool(&config.files),
            telemetry,
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

/// Why a session could not open.
#[derive(Debug)]
pub enum OpenSessionError {
    /// More devices than `sessions.max_devices_per_user`, on this node or cluster-wide.
    TooManyDevices,
    Store(StoreError),
}

impl AppState {
    /// Opens a device's session after its login was verified: in this node's hub, in the
    /// presence every node sees (the device limit is checked there; a session of the same
    /// resource on another node is told to leave), in the store's device list, and on the
    /// bus, so events for the user reach this node.
    pub async fn open_session(
        &self,
        app: Uuid,
        user: &str,
        device: &DeviceInfo,
    ) -> Result<SessionRegistration, OpenSessionError> {
        let reg = self
            .hub
            .register(app, user, device.clone())
            .map_err(|_: RegisterError| OpenSessionError::TooManyDevices)?;
        let presence = match self.presence.login(app, user, device, reg.id).await {
            Ok(Ok(replaced)) => Ok(replaced),
            Ok(Err(TooManyDevices)) => Err(OpenSessionError::TooManyDevices),
            Err(e) => Err(OpenSessionError::Store(e)),
        };
        let replaced = match presence {
            Ok(r) => r,
            Err(e) => {
                self.hub.unregister(app, user, reg.id);
                return Err(e);
            }
        };
        if let Some(old) = replaced {
            let target = KickTarget::Session { node: old.node, session: old.session };
            self.fanout.kick(app, user, target, KickReason::LoginElsewhere);
        }
        if let Err(e) = self.store.register_device(app, user, device).await {
            self.hub.unregister(app, user, reg.id);
            self.presence.logout(app, user, &device.resource, reg.id).await;
            return Err(OpenSessionError::Store(e));
        }
        if let Some(bus) = &self.bus {
            bus.watch(app, user).await;
        }
        Ok(reg)
    }

    /// Closes a session `open_session` opened.
    pub async fn close_session(&self, app: Uuid, user: &str, resource: &str, id: u64) {
        self.hub.unregister(app, user, id);
        self.presence.logout(app, user, resource, id).await;
        if let Some(bus) = &self.bus {
            bus.unwatch(app, user);
        }
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
