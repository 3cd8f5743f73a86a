//! Who is online, for the REST API and the device limit: this node's hub when the node is
//! alone, the shared store's presence rows (`missive_core::store::cluster`) in a cluster.
//!
//! In a cluster a login is registered in the store first — that is where the device limit
//! is checked against every node and where a login finds the session of the same resource it
//! replaces, on any node — and in the hub second. Rows are renewed with the node's lease
//! (`lease`), so a crashed node's devices stop counting within `cluster.presence_ttl_secs`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use missive_core::id::now_ms;
use missive_core::model::DeviceInfo;
use missive_core::store::{OnlineDevice, PresenceOutcome, Store, StoreResult};
use uuid::Uuid;

use super::lease::NodeIdentity;
use crate::hub::Hub;

/// A login the device limit refused.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyDevices;

pub struct Presence {
    hub: Arc<Hub>,
    /// Set in a cluster: presence lives in the store.
    shared: Option<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    identity: Arc<NodeIdentity>,
    max_devices: u32,
    ttl: Duration,
}

impl Presence {
    /// Presence from this node's hub alone.
    pub fn local(hub: Arc<Hub>) -> Presence {
        Presence { hub, shared: None }
    }

    /// Presence shared through the store by every node.
    pub fn shared(
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
        identity: Arc<NodeIdentity>,
        max_devices: u32,
        ttl: Duration,
    ) -> Presence {
        Presence { hub, shared: Some(Shared { store, identity, max_devices, ttl }) }
    }

    /// Whether presence is shared by several nodes (else it is this node's hub).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Registers session `session` (already in this node's hub) of `device`. Returns the
    /// session of the same resource it replaced on another node, if any: that one must be told
    /// to leave.
    pub async fn login(
        &self,
        app: Uuid,
        user: &str,
        device: &DeviceInfo,
        session: u64,
    ) -> StoreResult<Result<Option<OnlineDevice>, TooManyDevices>> {
        let Some(s) = &self.shared else { return Ok(Ok(None)) };
        let me = OnlineDevice {
            resource: device.resource.clone(),
            device_uuid: device.device_uuid.clone(),
            device_name: device.device_name.clone(),
            node: s.identity.node,
            session,
        };
        let outcome =
            s.store.register_presence(app, user, &me, s.max_devices, now_ms() as i64, s.ttl.as_millis() as i64).await?;
        Ok(match outcome {
            PresenceOutcome::TooManyDevices => Err(TooManyDevices),
            // Same node: the hub already replaced it when the new session registered.
            PresenceOutcome::Registered { replaced } => Ok(replaced.filter(|r| r.node != s.identity.node)),
        })
    }

    /// The session ended.
    pub async fn logout(&self, app: Uuid, user: &str, resource: &str, session: u64) {
        if let Some(s) = &self.shared
            && let Err(e) = s.store.unregister_presence(app, user, resource, s.identity.node, session).await
        {
            tracing::warn!(%e, "removing presence failed; it expires with the node's lease");
        }
    }

    /// Which of `users` have a device online anywhere.
    pub async fn online(&self, app: Uuid, users: &[String]) -> StoreResult<BTreeSet<String>> {
        match &self.shared {
            None => Ok(users.iter().filter(|u| self.hub.is_online(app, u)).cloned().collect()),
            Some(s) => {
                Ok(s.store.online_devices(app, users, now_ms() as i64).await?.into_iter().map(|(u, _)| u).collect())
            }
        }
    }

    /// The devices `user` has online, on every node.
    pub async fn devices(&self, app: Uuid, user: &str) -> StoreResult<Vec<DeviceInfo>> {
        match &self.shared {
            None => Ok(self.hub.resources(app, user)),
            Some(s) => {
                let mut by_resource: HashMap<String, DeviceInfo> = HashMap::new();
                for (_, d) in s.store.online_devices(app, &[user.to_owned()], now_ms() as i64).await? {
                    by_resource.insert(
                        d.resource.clone(),
                        DeviceInfo { resource: d.resource, device_uuid: d.device_uuid, device_name: d.device_name },
                    );
                }
                let mut devices: Vec<DeviceInfo> = by_resource.into_values().collect();
                devices.sort_by(|a, b| a.resource.cmp(&b.resource));
                Ok(devices)
            }
        }
    }
}
