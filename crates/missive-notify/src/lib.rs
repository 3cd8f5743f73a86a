//! Missive's outbound side: everything the server tells the outside world about messages.
//!
//! Easemob promises app servers two kinds of callbacks and promises users offline push;
//! this crate holds the rules and the clients for all three, with no storage and no part of
//! the delivery path. The server decides *when* (after a commit, per offline recipient, on
//! an SDK upload) and keeps the durable state (the outbox, rules, providers) in its store
//! (`missive_core::store::{outbox, notify}`); this crate decides *what* is sent, *whether*,
//! and *how*.
//!
//! # Layout
//!
//! - [`event`]: [`MessageEvent`], the neutral form of one message event (from an MSYNC
//!   `MessageBody`) that callbacks and pushes are built from.
//! - [`callback`]: post-send callbacks (easemob-api.md §6.3): rules and matching, the exact
//!   payload and its signature, the retry / backoff / ban state machine, the HTTP sender,
//!   and exception-storage date keys.
//! - [`presend`]: pre-send callbacks (§6.2): the synchronous check an SDK upload waits for.
//! - [`push`]: offline push: recipient settings (do-not-disturb), the notification built
//!   from a message and its push extension fields, and the providers (webhook, APNs, FCM).
//! - [`transport`]: the one HTTP client wrapper every outbound request goes through
//!   (bounded concurrency, deadlines, bounded response bodies).
//! - [`jwt`]: PEM keys and JWT signing with ring (ES256 for APNs, RS256 for Google OAuth).
//!
//! TLS: the HTTP client is built with `rustls-no-provider`; the process installs ring as
//! rustls's default provider before building a [`transport::Transport`] (the server does
//! at start, tests do in their setup).

pub mod callback;
pub mod event;
pub mod jwt;
pub mod presend;
pub mod push;
pub mod transport;

pub use event::{ChatType, EventKind, MessageEvent, Origin};
