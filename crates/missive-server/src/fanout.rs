//! Fan-out: how an event reaches the sessions of a user, wherever they are connected.
//!
//! On one node that is the hub itself ([`crate::hub::Hub`] implements [`Fanout`]). In a
//! cluster it is the NATS bus (`crate::cluster::bus`), which hands each event to this node's
//! hub and publishes it for the others. Every stored message's announcement goes through
//! here (as the store's `CommitListener`), as do online-only messages and kicks. Nothing here
//! is a delivery guarantee: a lost announcement is made good by sequence
//! (`crate::delivery::view`); a lost online-only message is lost, as `ROUTE_ONLINE` promises.

use std::sync::Arc;

use missive_core::model::QueuedMessage;
use missive_core::store::CommitListener;
use uuid::Uuid;

/// Why a session is being told to leave; maps to the SDK's StatisticsBody operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KickReason {
    /// `GET /users/{u}/disconnect` or `DELETE …/disconnect/{resource}`.
    ByAdmin,
    PasswordChanged,
    /// Deactivated or deleted.
    UserRemoved,
    /// The same resource logged in again elsewhere.
    LoginElsewhere,
}

/// Which sessions of a user a kick is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KickTarget {
    AllDevices,
    /// Every session of this device resource.
    Resource(String),
    /// One session of one node: the one a login of the same resource on another node took
    /// over (a resource target would also hit the new session).
    Session {
        node: u16,
        session: u64,
    },
}

pub trait Fanout: CommitListener {
    /// An online-only message for `user`'s devices online now, except `except` (a resource).
    fn online(&self, app: Uuid, user: &str, msg: &Arc<QueuedMessage>, except: Option<&str>);
    fn kick(&self, app: Uuid, user: &str, target: KickTarget, reason: KickReason);
}
