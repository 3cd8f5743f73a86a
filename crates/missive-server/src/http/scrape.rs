//! `GET /metrics`: the Prometheus text format of this server's [`Metrics`], sampled gauges
//! included.
//!
//! Off by default. On the main listener it answers only when `metrics.token` is set, and
//! then only to `Authorization: Bearer <token>` (404 without a token configured, as if the
//! route did not exist; 401 with the Easemob body for a missing or wrong token). With
//! `metrics.listen` it is also served, without a token, on that separate address, which
//! keeps it off the public listener entirely (bind it to loopback or a private network).
//!
//! [`Metrics`]: crate::telemetry::Metrics

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::auth::constant_time_eq;
use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::Sampled;

/// Prometheus' text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` on the main listener.
pub async fn metrics_with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let expected = state.config.metrics.token.as_bytes();
    if expected.is_empty() {
        return ApiError::route_not_found().into_response();
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        None => ApiError::no_token().into_response(),
        Some(t) if !constant_time_eq(t.as_bytes(), expected) => ApiError::unknown_token().into_response(),
        Some(_) => render(&state).await,
    }
}

/// The rendered metrics, with the gauges sampled now. The offline queue depth is a count
/// in the store, cluster-wide; if it fails the last value stays.
async fn render(state: &AppState) -> Response {
    match state.store.queued_total().await {
        Ok(n) => state.telemetry.metrics.set_offline_queue_depth(n),
        Err(e) => tracing::warn!(%e, "offline queue depth not sampled"),
    }
    let sampled = Sampled {
        sessions_online: state.hub.session_count(),
        password_queue_depth: state.auth.passwords.queued(),
        password_requests_admitted: state.auth.passwords.admitted(),
        thumbnail_queue_depth: state.thumbnails.queued(),
        notify: state.notifier.metrics.snapshot(),
    };
    let body = state.telemetry.metrics.render(&sampled);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], body).into_response()
}

/// Binds `metrics.listen` if set and serves `/metrics` there (no token) until `shutdown`.
/// Returns the bound address, or `None` when no separate listener is configured.
pub async fn serve_separately(
    state: &AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Option<std::net::SocketAddr>> {
    let Some(addr) = state.config.metrics.listen else { return Ok(None) };
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(|State(state): State<AppState>| async move { render(&state).await }))
        .with_state(state.clone());
    tracing::info!(addr = %bound, "metrics listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::warn!(%e, "metrics listener failed");
        }
    });
    Ok(Some(bound))
}
