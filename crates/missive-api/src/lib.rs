//! The REST request model: parsing and validating send requests, with no I/O.
//!
//! A send request's JSON body (the current `POST /messages/users` form or the legacy
//! `POST /messages` form) becomes a [`SendRequest`] and then one MSYNC
//! [`Content`](missive_msync::pb::message_body::Content), checked in the order Easemob
//! checks it and failing with the exact Easemob error ([`RequestError`]). Quotas, idempotency
//! and storage stay in the server. Kept apart from `missive-server` so the rules can be
//! fuzzed and unit-tested without building the server.
//!
//! # Layout
//!
//! - [`error`]: [`RequestError`], everything the server needs to render Easemob's error body.
//! - [`send`]: [`SendRequest`], [`SendForm`], the per-type body → content conversion and the
//!   content size rule.
//! - [`body`]: the way back, MSYNC content → Easemob's JSON body (`{"ext", "bodies"}`), for
//!   everything that shows a stored message as JSON (callbacks, push summaries, history).

pub mod body;
pub mod error;
pub mod send;

pub use error::RequestError;
pub use send::{MAX_CUSTOM_EXTS, MESSAGE_TYPES, SendForm, SendRequest, chat_body, opt_bool};
