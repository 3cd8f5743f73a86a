//! What several nodes sharing one store must agree on: which node ids are taken (so two
//! live nodes never mint the same message ids) and which devices are online where (so any
//! node answers status, enforces the device limit and finds the session a login replaces).
//!
//! Both are leases: a node renews its own rows every few seconds, and rows of a node that
//! stopped renewing expire by themselves, so a crashed node's devices stop counting as online
//! within the lease time without anyone cleaning up after it. Times are the store's clock
//! (`now` is passed in, milliseconds), so nodes compare against one clock.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;

/// One online device, as every node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnlineDevice {
    pub resource: String,
    pub device_uuid: String,
    pub device_name: String,
    /// The node holding the connection.
    pub node: u16,
    /// The session on that node (unique per node).
    pub session: u64,
}

/// What registering a login found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresenceOutcome {
    /// Registered; `replaced` is the live session of the same resource this login took over
    /// (on this node or another), which must be told to leave.
    Registered { replaced: Option<OnlineDevice> },
    /// The user already has `max_devices` other live devices.
    TooManyDevices,
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Leases a node id for `owner` until `now + ttl_ms`: `wanted` if it is free (or already
    /// `owner`'s), else — when `wanted` is `None` — the lowest free id up to `max_id`.
    /// `None` when `wanted` is held by another live node, or no id is free.
    async fn lease_node_id(
        &self,
        wanted: Option<u16>,
        max_id: u16,
        owner: Uuid,
        now: i64,
        ttl_ms: i64,
    ) -> StoreResult<Option<u16>>;
    /// Extends `owner`'s lease on `node` and its devices' presence to `now + ttl_ms`.
    /// Returns false when the lease was lost (it expired and another node took the id).
    async fn renew_node(&self, node: u16, owner: Uuid, now: i64, ttl_ms: i64) -> StoreResult<bool>;
    /// Gives the id back and forgets the node's devices (a clean shutdown).
    async fn release_node(&self, node: u16, owner: Uuid) -> StoreResult<()>;

    /// Records a login of `device` (live until `now + ttl_ms`), unless the user already has
    /// `max_devices` other live resources. A live row of the same resource is replaced.
    async fn register_presence(
        &self,
        app: Uuid,
        user: &str,
        device: &OnlineDevice,
        max_devices: u32,
        now: i64,
        ttl_ms: i64,
    ) -> StoreResult<PresenceOutcome>;
    /// Forgets one session's presence (its connection ended); a newer session of the same
    /// resource is left alone.
    async fn unregister_presence(
        &self,
        app: Uuid,
        user: &str,
        resource: &str,
        node: u16,
        session: u64,
    ) -> StoreResult<()>;
    /// The live devices of each of `users` (users with none are absent).
    async fn online_devices(&self, app: Uuid, users: &[String], now: i64) -> StoreResult<Vec<(String, OnlineDevice)>>;
}
