//! The REST request model: parsing and validating requests and rendering answers, with no
//! I/O.
//!
//! A send request's JSON body (the current `POST /messages/users` form or the legacy
//! `POST /messages` form) becomes a [`SendRequest`] and then one MSYNC
//! [`Content`](missive_msync::pb::message_body::Content), checked in the order Easemob
//! checks it and failing with the exact Easemob error ([`RequestError`]). The history
//! endpoints work the same way in both directions: a request becomes a typed query a store
//! can answer with one indexed scan, and the rows it returns become the exact answer the
//! SDK or app server parses. Quotas, idempotency and storage stay in the server. Kept apart
//! from `missive-server` so the rules can be fuzzed and unit-tested without building the
//! server.
//!
//! # Layout
//!
//! - [`error`]: [`RequestError`], everything the server needs to render Easemob's error body.
//! - [`send`]: [`SendRequest`], [`SendForm`], the per-type body → content conversion and the
//!   content size rule.
//! - [`body`]: the way back, MSYNC content → Easemob's JSON body (`{"ext", "bodies"}`), for
//!   everything that shows a stored message as JSON (callbacks, push summaries, history).
//! - [`history`]: message roaming (`POST /users/{u}/messageroaming`): [`RoamingRequest`],
//!   the archived-message row every history listing renders, message kinds, id windows.
//! - [`conversations`]: the SDK's conversation lists, one-way delete, pinning, roaming
//!   delete, and the read position a channel ack sets.
//! - [`chatlog`]: Easemob's history record format, the hourly export's hour, and the legacy
//!   `GET /chatmessages?ql=` query language.
//! - [`cursor`]: the opaque page cursors of the listings.

pub mod body;
pub mod chatlog;
pub mod conversations;
pub mod cursor;
pub mod error;
pub mod history;
pub mod send;

pub use error::RequestError;
pub use history::{ArchivedMessage, RoamingRequest};
pub use send::{MAX_CUSTOM_EXTS, MESSAGE_TYPES, SendForm, SendRequest, chat_body, opt_bool};
