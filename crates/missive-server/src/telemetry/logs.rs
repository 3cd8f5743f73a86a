//! The process's log subscriber: `log.format = "text"` (human-readable lines) or `"json"`
//! (one object per line with the fields of the event and of its span, so a line of a REST
//! call carries its `request_id`, `method` and `route`), on stderr; stdout carries only what
//! commands print. The filter is `MISSIVE_LOG` if set, else `log.filter`.
//!
//! What is never logged: tokens, passwords, share-secrets, message content. Nothing in the
//! server puts them in an event or span field, the access log names the matched route
//! instead of the URL (download URLs carry the share-secret in their query), and
//! `tests/it/logs.rs` greps a trace-level run's output for the secrets it used.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// The WebSocket library logs every frame with its payload (message content) at TRACE, and
/// handshake chatter at DEBUG: held at INFO unless the filter names it, so
/// `MISSIVE_LOG=trace` stays free of message content.
const PAYLOAD_LOGGERS: &str = "tungstenite=info,tokio_tungstenite=info";

/// Installs the subscriber for this process. Call once, early in `main`.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(directives(std::env::var("MISSIVE_LOG").ok(), &config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: in a file or a log shipper they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
    }
}

/// `MISSIVE_LOG` if set, else the configured filter, with the payload loggers capped.
fn directives(env: Option<String>, configured: &str) -> String {
    let chosen = env.filter(|e| !e.trim().is_empty()).unwrap_or_else(|| configured.to_owned());
    if chosen.contains("tungstenite") { chosen } else { format!("{chosen},{PAYLOAD_LOGGERS}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_and_frame_payloads_stay_capped() {
        assert_eq!(directives(None, "info"), "info,tungstenite=info,tokio_tungstenite=info");
        assert_eq!(directives(Some("trace".into()), "info"), "trace,tungstenite=info,tokio_tungstenite=info");
        assert_eq!(directives(Some("tungstenite=trace".into()), "info"), "tungstenite=trace");
        assert!(EnvFilter::try_new(directives(None, "warn,missive::access=off")).is_ok());
    }
}
