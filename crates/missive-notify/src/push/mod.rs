//! Offline push: when a stored message reaches a recipient with no device online, a
//! notification goes out through the app's push providers.
//!
//! The server decides the moment (a stored, not `ROUTE_ONLINE` message, recipient offline,
//! once per message and recipient) and keeps bindings and provider configs in the store;
//! this module decides whether and what ([`notification::build`]) and carries it out
//! ([`provider::PushProvider`]).
//!
//! # Layout
//!
//! - [`settings`]: the recipient's settings from the user entity (display style, DND).
//! - [`notification`]: the message + settings → [`Notification`] or a reason to skip.
//! - [`provider`]: the provider trait, outcomes, per-app provider configs, the retry rule,
//!   and the webhook provider.
//! - [`apns`]: Apple Push Notification service over HTTP/2 with token (ES256 JWT) auth.
//! - [`fcm`]: Firebase Cloud Messaging HTTP v1 with a service account (RS256 OAuth).

pub mod apns;
pub mod fcm;
pub mod notification;
pub mod provider;
pub mod settings;

pub use notification::{DeviceBinding, Notification, PushContext, Recipient, Skip, build};
pub use provider::{ProviderConfig, PushOutcome, PushProvider, PushTarget};
pub use settings::PushSettings;
