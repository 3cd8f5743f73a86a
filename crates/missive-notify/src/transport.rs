//! The HTTP client every outbound request goes through: callbacks, pre-send checks, push
//! providers and OAuth token endpoints.
//!
//! Three rules live here once, so no caller can forget one:
//! - **bounded concurrency**: at most `max_in_flight` requests at a time per transport; the
//!   others wait for a permit. A slow app server costs waiting tasks, never sockets or memory
//!   without bound;
//! - **deadlines**: every request has a whole-request timeout (connect, send, headers and
//!   body) and a connect timeout;
//! - **bounded replies**: at most `max_response_bytes` of a response body are read. Easemob
//!   counts an over-long answer (more than 1,000 characters) from an app server as a
//!   failure, and a hostile endpoint must not make the server buffer gigabytes.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

/// How a [`Transport`] talks to the outside world.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Whole-request deadline, body included. Easemob counts a callback that takes longer
    /// than 10 s as failed, hence the default.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight at once on this transport; further requests wait for a permit.
    pub max_in_flight: usize,
    /// Most response-body bytes read; a longer body is cut and marked `truncated`.
    pub max_response_bytes: usize,
    /// Speak only HTTP/2 (ALPN `h2` alone, or prior knowledge on `http://`). APNs accepts
    /// nothing else.
    pub http2_only: bool,
    /// PEM certificates to trust *instead of* the system roots: a private push gateway, or a
    /// test server's self-signed certificate. `None` uses the operating system's roots.
    pub trusted_roots_pem: Option<Vec<u8>>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_in_flight: 64,
            max_response_bytes: 16 * 1024,
            http2_only: false,
            trusted_roots_pem: None,
        }
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TransportError {
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Request(String),
    /// The client could not be built (bad root certificate, no TLS provider installed).
    #[error("http client setup failed: {0}")]
    Setup(String),
}

/// An HTTP answer, whatever its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// At most `max_response_bytes` of the body.
    pub body: Bytes,
    /// The body was longer than `max_response_bytes`; the rest was not read.
    pub truncated: bool,
    /// `Retry-After` in seconds, when the server sent one (throttling push services do).
    pub retry_after_secs: Option<u64>,
}

impl Reply {
    /// The body as text, lossy: for error messages and logs.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Retry-After` in ms, for [`PushOutcome::Retry`](crate::push::PushOutcome::Retry).
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after_secs.map(|s| s.saturating_mul(1_000))
    }
}

/// A pooled HTTP client with the limits above. Cheap to clone: clones share the pool and the
/// permits, so one transport per purpose bounds that purpose as a whole.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    /// One permit per request in flight (`max_in_flight`).
    permits: Arc<Semaphore>,
    max_response_bytes: usize,
    timeout: Duration,
}

impl Transport {
    /// Builds the client. Fails when a root certificate does not parse or no rustls crypto
    /// provider has been installed in the process.
    pub fn new(config: &TransportConfig) -> Result<Transport, TransportError> {
        // reqwest built with `rustls-no-provider` panics without one; say so instead.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(TransportError::Setup(
                "no rustls crypto provider installed (install ring's before building clients)".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("missive/", env!("CARGO_PKG_VERSION")));
        if config.http2_only {
            builder = builder.http2_prior_knowledge();
        }
        if let Some(pem) = &config.trusted_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| TransportError::Setup(chain(&e)))?;
            builder = builder.tls_certs_only(certs);
        }
        let client = builder.build().map_err(|e| TransportError::Setup(chain(&e)))?;
        Ok(Transport {
            client,
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            max_response_bytes: config.max_response_bytes,
            timeout: config.timeout,
        })
    }

    /// Starts a request; send it with [`Transport::execute`].
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` once a permit is free and reads at most `max_response_bytes` of the
    /// answer. `deadline` overrides the configured whole-request timeout (pre-send checks
    /// use their rule's 200 ms); waiting for a permit is not part of it, so callers with a
    /// hard deadline wrap the whole call in `tokio::time::timeout`.
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Option<Duration>,
    ) -> Result<Reply, TransportError> {
        let _permit = self.permits.acquire().await.map_err(|_| TransportError::Request("transport closed".into()))?;
        let mut response = request.timeout(deadline.unwrap_or(self.timeout)).send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let retry_after_secs =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let mut body = BytesMut::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
            let room = self.max_response_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, body: body.freeze(), truncated, retry_after_secs })
    }
}

fn classify(e: &reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_connect() {
        TransportError::Connect(chain(e))
    } else {
        TransportError::Request(chain(e))
    }
}

/// An error with its sources: reqwest's own message ("error sending request") says nothing
/// about the cause, which is what an operator reading the log needs.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
