//! The REST API: one module per Easemob area, assembled into one router.
//!
//! Every route lives under `/{org}/{app}`, resolved by the `Api` extractor. Unknown routes
//! and wrong methods answer with Easemob error bodies (404 / 405), and a middleware stamps
//! every error body with the request's real duration.

use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::{ApiError, RenderedError};
use crate::state::AppState;

/// `/callbacks` and `/msghooks`: callback rules and exception storage.
pub mod callbacks;
/// Contacts before they exist: SDK 5's roster version.
pub mod contacts;
/// Conversation lists, one-way delete and pinning.
pub mod conversations;
/// Request-scoped context: the app from the path, credentials, the success envelope.
pub mod ctx;
/// `/chatfiles`: upload, download, thumbnails, expiry.
pub mod files;
/// Groups and chat rooms before they exist: empty listings, creation refused.
pub mod groups;
/// Message roaming, the hourly export, the legacy chat-log query and roaming deletes.
pub mod history;
/// The send API, its legacy form and recall.
pub mod messages;
/// Request ids, the request span and access log line, request latency metrics.
pub mod observe;
/// The OpenAPI description of these routes, served at `/openapi.json`.
pub mod openapi;
/// `GET /metrics` (Prometheus), behind `metrics.token` or on `metrics.listen`.
pub mod scrape;
/// `POST /token`.
pub mod token;
/// The user system.
pub mod users;

/// All REST routes plus `/health`; the WebSocket route is added by `crate::router`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(scrape::metrics_with_token))
        .route("/{org}/{app}/token", post(token::issue_token))
        .route("/{org}/{app}/users", post(users::create_users).get(users::list_users).delete(users::delete_users))
        .route("/{org}/{app}/users/batch/status", post(users::batch_status))
        .route("/{org}/{app}/users/{username}", get(users::get_user).put(users::update_user).delete(users::delete_user))
        .route("/{org}/{app}/users/{username}/password", put(users::set_password).post(users::set_password))
        .route("/{org}/{app}/users/{username}/deactivate", post(users::deactivate_user))
        .route("/{org}/{app}/users/{username}/activate", post(users::activate_user))
        .route("/{org}/{app}/users/{username}/status", get(users::user_status))
        .route("/{org}/{app}/users/{username}/offline_msg_count", get(users::offline_msg_count))
        .route("/{org}/{app}/users/{username}/offline_msg_status/{msg_id}", get(users::offline_msg_status))
        .route("/{org}/{app}/users/{username}/resources", get(users::user_resources))
        .route("/{org}/{app}/users/{username}/disconnect", get(users::disconnect_all))
        .route("/{org}/{app}/users/{username}/disconnect/{resource}", axum::routing::delete(users::disconnect_one))
        .route("/{org}/{app}/users/{username}/joined_chatgroups", get(groups::joined_chatgroups))
        .route("/{org}/{app}/users/{username}/joined_chatrooms", get(groups::joined_chatrooms))
        .route("/{org}/{app}/user/{username}/roster/metadata/version", get(contacts::roster_version))
        .route("/{org}/{app}/users/{username}/messageroaming", post(history::roaming))
        .route("/{org}/{app}/users/{username}/user_channels", get(conversations::legacy_list))
        .route("/{org}/{app}/users/{username}/user_channels/page", get(conversations::legacy_page))
        .route("/{org}/{app}/users/{username}/user_channel", delete(conversations::delete))
        .route("/{org}/{app}/user/{username}/user_channel", delete(conversations::sdk_delete))
        .route("/{org}/{app}/sdk/user/{username}/user_channels/list", get(conversations::list))
        .route(
            "/{org}/{app}/sdk/user/{username}/user_channel/top",
            post(conversations::pin).delete(conversations::unpin),
        )
        .route("/{org}/{app}/chatmessages", get(history::chat_log))
        .route("/{org}/{app}/chatmessages/{time}", get(history::export))
        .route("/{org}/{app}/chatmessages/{time}/file", get(history::export_file))
        .route("/{org}/{app}/rest/message/roaming/chat/user/{username}", delete(history::delete_chat_roaming))
        .route(
            "/{org}/{app}/rest/message/roaming/chat/user/{username}/time",
            delete(history::delete_chat_roaming_before),
        )
        .route("/{org}/{app}/rest/message/roaming/group/user/{username}", delete(history::delete_group_roaming))
        .route(
            "/{org}/{app}/rest/message/roaming/group/user/{username}/time",
            delete(history::delete_group_roaming_before),
        )
        .route("/{org}/{app}/sdk/message/roaming/chat/user/{username}", delete(history::sdk_delete_chat_roaming))
        .route(
            "/{org}/{app}/sdk/message/roaming/chat/user/{username}/time",
            delete(history::sdk_delete_chat_roaming_before),
        )
        .route("/{org}/{app}/publicchatgroups", get(groups::public_chatgroups))
        .route("/{org}/{app}/chatgroups", get(groups::list_chatgroups).post(groups::create_chatgroup))
        .route("/{org}/{app}/chatgroups/user/{username}", get(groups::user_chatgroups))
        .route("/{org}/{app}/chatrooms", get(groups::list_chatrooms).post(groups::create_chatroom))
        .route("/{org}/{app}/messages", post(messages::send_legacy))
        .route("/{org}/{app}/messages/users", post(messages::send_user_messages))
        .route("/{org}/{app}/messages/msg_recall", post(messages::recall_message))
        .route("/{org}/{app}/messages/recall", post(messages::recall_messages))
        // Uploads stream under their own limit (`files.max_bytes`), not axum's 2 MB default.
        .route("/{org}/{app}/chatfiles", post(files::upload::upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/{org}/{app}/chatfiles/{file}", get(files::download::download))
        .route("/{org}/{app}/callbacks", get(callbacks::list_callbacks).post(callbacks::add_callback))
        .route("/{org}/{app}/callbacks/{rule}", put(callbacks::update_callback).delete(callbacks::remove_callback))
        .route("/{org}/{app}/callbacks/storage/info", get(callbacks::storage_info))
        .route("/{org}/{app}/callbacks/storage/retry", post(callbacks::storage_retry))
        .route("/{org}/{app}/msghooks", get(callbacks::list_presend).post(callbacks::add_presend))
        .route("/{org}/{app}/msghooks/{rule}", axum::routing::delete(callbacks::remove_presend))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Browser clients (the Web SDK in a page) call the REST API cross-origin with
/// `Authorization` and, for uploads, `restrict-access` and thumbnail headers; the SDK bundled
/// in `easemob-chat-uikit` (SDK 5) adds `X-Request-Id` to every request.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("restrict-access"),
            HeaderName::from_static("thumbnail-width"),
            HeaderName::from_static("thumbnail-height"),
            HeaderName::from_static("thumbnail"),
            HeaderName::from_static("share-secret"),
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        // A page's script may read the id to quote it in a bug report.
        .expose_headers([HeaderName::from_static("x-request-id")])
        .max_age(std::time::Duration::from_secs(86400))
}

/// Re-renders `ApiError` bodies with the time the request actually took.
pub async fn stamp_errors(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut res = next.run(req).await;
    if res.extensions().get::<RenderedError>().is_some() {
        return res;
    }
    match res.extensions_mut().remove::<ApiError>() {
        Some(err) => err.render(started.elapsed()),
        None => res,
    }
}

/// Installs `stamp_errors` (outermost, so it also stamps `limit_headers`' refusals).
pub fn with_error_stamps(r: Router<AppState>) -> Router<AppState> {
    r.layer(middleware::from_fn(limit_headers)).layer(middleware::from_fn(stamp_errors))
}

/// Request headers larger than this in total are refused with 431: no Easemob call needs
/// more, and it bounds what one request can make the server hold and parse.
const MAX_HEADER_BYTES: usize = 16 * 1024;

async fn limit_headers(req: Request, next: Next) -> Response {
    let size: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_too_large",
            "RequestHeaderTooLargeException",
            "Request header fields too large",
        )
        .into_response();
    }
    next.run(req).await
}

/// Liveness, the MSYNC sessions on this node, and the callback/push outbox as last read
/// (about once a second; no token needed).
#[utoipa::path(
    get,
    path = "/health",
    tag = "server",
    responses((status = 200, description = "Serving.", body = openapi::Health)),
    security(()),
)]
async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let notify = state.notifier.metrics.snapshot();
    axum::Json(serde_json::json!({
        "status": "ok",
        "sessions": state.hub.session_count(),
        "outbox": {
            "due": notify.outbox_due,
            "scheduled": notify.outbox_scheduled,
            "leased": notify.outbox_leased,
            "oldest_due_ms": notify.outbox_oldest_due_ms,
            "dropped_full": notify.outbox_dropped_full,
        },
    }))
    .into_response()
}

/// Readiness: whether this node should get traffic. 200 when the store answers, the NATS
/// connection is up (in a cluster) and the node id lease is live; otherwise 503 with the
/// failing parts, so a load balancer stops routing to this node until they recover.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "server",
    responses(
        (status = 200, description = "Ready for traffic.", body = openapi::Readiness),
        (status = 503, description = "Not ready: a dependency is down.", body = openapi::Readiness),
    ),
    security(()),
)]
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let store_ok =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.app_count()).await.is_ok_and(|r| r.is_ok());
    let nats = state.bus.as_ref().map(|b| b.connected());
    let lease_ok = state.identity.healthy();
    let ok = store_ok && nats != Some(false) && lease_ok;
    let body = axum::Json(serde_json::json!({
        "status": if ok { "ready" } else { "not_ready" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "nats": match nats { None => "none", Some(true) => "connected", Some(false) => "disconnected" },
        "node_id": state.identity.node,
        "lease": if !state.identity.leased() { "none" } else if lease_ok { "ok" } else { "lost" },
    }));
    let status = if ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (status, body).into_response()
}

async fn not_found() -> ApiError {
    ApiError::route_not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
