//! The process's log subscriber: `log.format = "text"` (human-readable lines) or `"json"`
//! (one object per line with the fields of the event and of its span, so a line of a REST
//! call carries its `request_id`, `method` and `route`), on stderr; stdout carries only what
//! commands print. The filter is `MISSIVE_LOG` if set, else `log.filter`.
//!
//! What is never logged: tokens, passwords, share-secrets, message content. Nothing in the
//! server puts them in an event or span field, the access log names the matched route
//! instead of the URL (download URLs carry the share-secret in their query), and
//! `tests/it/logs.rs` greps a debug-level run's output for the secrets it used.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the subscriber for this process. Call once, early in `main`.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_env("MISSIVE_LOG")
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
    }
}
