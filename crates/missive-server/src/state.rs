//! `AppState`: the one context every handler and session shares.
//!
//! One struct behind one `Arc` rather than many extractors: handlers take
//! `State<AppState>` and reach the store, the token authenticator, the id generator, the
//! session hub and the quotas through it. Nothing here is global; tests run many servers in
//! one process.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use missive_core::IdGenerator;
use missive_core::model::App;
use missive_core::store::{QueuePolicy, Store};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::hub::Hub;
use crate::ratelimit::Quota;
use crate::telemetry::Telemetry;
use crate::workers::WorkerPool;

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub ids: IdGenerator,
    /// Ids handed out for stored messages whose commit has not finished, per queue.
    pub uncommitted: UncommittedIds,
    /// Also the store's commit listener.
    pub hub: Arc<Hub>,
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
    /// Sends being processed now (REST and SDK); see `limits.max_inflight_sends`.
    pub inflight_sends: tokio::sync::Semaphore,
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
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        shutdown: CancellationToken,
    ) -> AppState {
        let auth = Arc::new(Authenticator::new(store.clone(), &config.security));
        let hub = Arc::new(Hub::new(config.sessions.send_buffer_frames, config.sessions.max_devices_per_user));
        store.set_commit_listener(hub.clone());
        AppState(Arc::new(Shared {
            ids: IdGenerator::new(config.node_id),
            uncommitted: UncommittedIds::default(),
            send_calls: Quota::new(config.limits.send_calls_per_second, Duration::from_secs(1)),
            send_messages: Quota::new(config.limits.send_messages_per_minute, Duration::from_secs(60)),
            apps: AppCache::new(store.clone()),
            idempotency_locks: DashMap::new(),
            inflight_sends: tokio::sync::Semaphore::new(config.limits.max_inflight_sends),
            thumbnails: crate::http::files::thumbnail::pool(&config.files),
            telemetry: Arc::new(Telemetry::new()),
            blobs,
            auth,
            hub,
            store,
            config,
            shutdown,
        }))
    }

    pub fn queue_policy(&self) -> QueuePolicy {
        QueuePolicy { max_offline_per_user: self.config.queue.max_offline_per_user }
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

/// Ids are assigned before a message is committed, so concurrent sends in one conversation
/// can commit out of id order. A device that acks key K moves its cursor past every id ≤ K;
/// if a lower id commits afterwards, that device would never get it. Ids of stored messages
/// are therefore registered here (in the same critical section that allocates them) until
/// their commit returns, and an ack never moves a cursor past an id still registered for
/// that queue: the device gets those messages again instead (at-least-once; the SDK drops
/// ids it has already seen).
#[derive(Default)]
pub struct UncommittedIds {
    /// A std `Mutex`: held for a few map operations, never across an await.
    by_queue:
        std::sync::Mutex<std::collections::HashMap<(uuid::Uuid, String, String), std::collections::BTreeSet<u64>>>,
}

/// A registration that ends (the ids are forgotten) when dropped, whether the commit
/// succeeded or failed.
pub struct UncommittedGuard<'a> {
    registry: &'a UncommittedIds,
    entries: Vec<((uuid::Uuid, String, String), u64)>,
}

impl UncommittedIds {
    /// Allocates one id per `(owner, queue)` from `ids`, registering each before the lock is
    /// released, so no id can be seen committed while a lower one of its queue is unknown.
    pub fn allocate<'a>(
        &'a self,
        ids: &IdGenerator,
        app: uuid::Uuid,
        slots: impl Iterator<Item = (String, String)>,
    ) -> (Vec<missive_core::MsgId>, UncommittedGuard<'a>) {
        let mut map = self.by_queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut entries = Vec::new();
        for (owner, queue) in slots {
            let id = ids.next_id();
            let key = (app, owner, queue);
            map.entry(key.clone()).or_default().insert(id.0);
            entries.push((key, id.0));
            out.push(id);
        }
        (out, UncommittedGuard { registry: self, entries })
    }

    /// The highest key an ack may record for `queue`: `key`, or just below the lowest id of
    /// that queue still being committed.
    pub fn safe_ack(&self, app: uuid::Uuid, owner: &str, queue: &str, key: u64) -> u64 {
        let map = self.by_queue.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&(app, owner.to_owned(), queue.to_owned())).and_then(|s| s.first()) {
            Some(&lowest) if lowest <= key => lowest.saturating_sub(1),
            _ => key,
        }
    }
}

impl Drop for UncommittedGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.registry.by_queue.lock().unwrap_or_else(|e| e.into_inner());
        for (key, id) in self.entries.drain(..) {
            if let Some(set) = map.get_mut(&key) {
                set.remove(&id);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_never_passes_an_uncommitted_id_of_its_queue() {
        let (reg, ids, app) = (UncommittedIds::default(), IdGenerator::new(1), uuid::Uuid::new_v4());
        let (first, guard) = reg.allocate(&ids, app, std::iter::once(("bob".into(), "alice".into())));
        let later = ids.next_id().0 + 10;
        assert_eq!(reg.safe_ack(app, "bob", "alice", later), first[0].0 - 1);
        // Other queues and owners are not held back.
        assert_eq!(reg.safe_ack(app, "bob", "carol", later), later);
        assert_eq!(reg.safe_ack(app, "dave", "alice", later), later);
        // Once the commit returned (guard dropped), acks go through.
        drop(guard);
        assert_eq!(reg.safe_ack(app, "bob", "alice", later), later);
    }
}
