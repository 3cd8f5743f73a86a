//! The app server of `send --callback`: a local receiver for post-send callbacks, and the
//! rule that points Missive at it.
//!
//! `ok` answers 200 at once (the throughput of sends with callbacks on); `slow` holds every
//! callback for 5 s before answering; `down` is a port nobody listens on. The last two show
//! what a receiver in trouble costs the senders: nothing but outbox entries, which the rule's
//! backoff keeps waiting (`retry.backoff_ms`) instead of dropping, so the outbox grows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::Method;
use hyper::header::HeaderValue;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::http::Conn;
use crate::target::Target;

/// How the receiver behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sink {
    Ok,
    Slow,
    Down,
}

/// A running receiver and the count of callbacks it answered.
pub struct Receiver {
    pub url: String,
    pub received: Arc<AtomicU64>,
}

impl Receiver {
    pub async fn start(mode: Sink) -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/callback", listener.local_addr()?);
        let received = Arc::new(AtomicU64::new(0));
        if mode == Sink::Down {
            drop(listener);
            return Ok(Receiver { url, received });
        }
        let count = received.clone();
        let app = axum::Router::new().fallback(move || {
            let count = count.clone();
            async move {
                if mode == Sink::Slow {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                count.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { url, received })
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Adds a post-send rule for `chat` events to `url` (with an hour-long backoff, so callbacks
/// to a receiver in trouble wait in the outbox), and waits until the server has loaded it.
pub async fn add_rule(target: &Target, admin: &HeaderValue, url: &str) -> anyhow::Result<()> {
    let rule = json!({"name": "bench", "targetUrl": url, "secret": "bench", "msgTypes": ["chat"],
                      "retry": {"backoff_ms": [3_600_000], "keep_exceptions": true}});
    Conn::new(target.addr).ok(Method::POST, &target.path("/callbacks"), Some(admin), Some(&rule)).await?;
    // Servers reload rules every `callbacks.refresh_interval_ms` (500 ms by default).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    Ok(())
}

/// The outbox as the server's `/health` reports it.
pub async fn outbox(target: &Target) -> anyhow::Result<Value> {
    let health = Conn::new(target.addr).ok(Method::GET, "/health", None, None).await?;
    Ok(health["outbox"].clone())
}
