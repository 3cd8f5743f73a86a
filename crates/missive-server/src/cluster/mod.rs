//! Cluster mode: several nodes on one PostgreSQL and one NATS act as one server
//! (docs/cluster.md).
//!
//! # Layout
//! - [`lease`]: this node's identity — a node id leased from the shared store, renewed with
//!   the presence of the node's devices.
//! - [`bus`]: the NATS bus carrying commits, online-only messages and kicks between nodes,
//!   one subject per user.
//! - [`presence`]: who is online where, from the hub alone or from the store's shared rows.
//!
//! Quotas shared through Redis are in `crate::ratelimit`. None of this changes how a message
//! is delivered: the sequence rule (docs/architecture.md) makes late, lost or duplicated
//! cross-node events harmless, so the bus is only how nodes hear about commits sooner.

pub mod bus;
pub mod lease;
pub mod presence;

pub use bus::NatsBus;
pub use lease::NodeIdentity;
pub use presence::{Presence, TooManyDevices};
