//! Every HTTP request (REST calls and the WebSocket upgrade) passes through [`observe`]:
//!
//! - it gets a request id: the client's `X-Request-Id` when it is a safe token, else a fresh
//!   one; the id is echoed in the response's `X-Request-Id` and put in the request's
//!   extensions ([`RequestId`]), where `/websocket` picks it up for the session's span;
//! - everything logged while the request is handled is inside a `request` span carrying
//!   `request_id`, `method` and `route` (the matched pattern, `/{org}/{app}/messages/users`,
//!   never the raw path: paths and queries can carry names and download secrets);
//! - one access line (target `missive::access`, level INFO) says how it ended: `status` and
//!   `latency_ms`. `MISSIVE_LOG=info,missive::access=warn` silences it;
//! - its latency goes to `missive_http_request_duration_seconds` by route, method and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::state::AppState;
use crate::telemetry::RequestIds;

/// The request's id, in its extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

const HEADER: &str = "x-request-id";
/// The `route` of requests no route matched (their paths are not labels).
const UNMATCHED: &str = "unmatched";

pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = match req.headers().get(HEADER).and_then(|v| v.to_str().ok()).and_then(RequestIds::accept) {
        Some(given) => given.to_owned(),
        None => state.telemetry.request_ids.next(),
    };
    let route = req.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    let status = res.status().as_u16();
    span.in_scope(|| {
        tracing::info!(target: "missive::access", status, latency_ms = took.as_secs_f64() * 1e3, "request");
    });
    state.telemetry.metrics.http_request(&route, &method, status, took);
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    res
}
