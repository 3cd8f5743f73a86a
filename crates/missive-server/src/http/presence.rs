//! Presence (在线状态): `POST /users/{u}/presence/{expiry}` (subscribe) and
//! `POST /users/{u}/presence` (get the status), which the UIKit calls for every peer a
//! conversation shows. Both are answered from who is online now — the devices of each named
//! user, on this node or, in a cluster, any node — as Easemob's `result` list. Subscriptions
//! themselves (presence events pushed as users come and go, custom statuses) are not kept:
//! the answer is what a client needs to draw the peer's online dot when the chat opens.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use missive_core::id::now_ms;
use missive_core::model::normalize_username;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::contacts::Usernames;
use super::ctx::{Api, JsonBody};
use super::openapi as doc;
use super::users::path_user_for_self_or_admin;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most users one call names (Easemob: 100).
const MAX_USERS: usize = 100;

/// `{org}/{app}`, the subscriber and the subscription's lifetime.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PresencePath {
    pub org: String,
    pub app: String,
    /// The subscriber (the token's user).
    pub username: String,
    /// Seconds the subscription should last (echoed, not kept).
    pub expiry: u64,
}

/// One user's presence.
#[derive(ToSchema, Serialize)]
pub struct PresenceEntry {
    pub uid: String,
    /// Device (resource) → 1 while it is online.
    #[schema(value_type = Object)]
    pub status: Map<String, Value>,
    /// Custom status: always empty.
    pub ext: String,
    /// When this answer was made (s).
    pub last_time: u64,
    /// When the subscription would end (s).
    pub expiry: u64,
}

#[derive(ToSchema, Serialize)]
pub struct PresenceResponse {
    pub result: Vec<PresenceEntry>,
    pub timestamp: u64,
    pub duration: u64,
}

/// `POST /{org}/{app}/users/{username}/presence/{expiry}` — `{"usernames": [...]}`: the
/// presence of each named user that exists.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/presence/{expiry}",
    tag = "users",
    params(PresencePath),
    request_body = Usernames,
    responses(
        (status = 200, description = "Who is online, per device.", body = PresenceResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn subscribe(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, expiry)): Path<(String, String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expiry: u64 = expiry.parse().map_err(|_| ApiError::illegal_argument("expiry must be a number of seconds"))?;
    presence_of(&state, &api, &name, &body, expiry).await
}

/// `POST /{org}/{app}/users/{username}/presence` — `{"usernames": [...]}`: the presence of
/// each named user that exists (`getPresenceStatus`), as [`subscribe`] answers.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/presence",
    tag = "users",
    params(doc::UserPath),
    request_body = Usernames,
    responses(
        (status = 200, description = "Who is online, per device.", body = PresenceResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn status(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    presence_of(&state, &api, &name, &body, 0).await
}

/// The `result` list for the body's `usernames`, asked by `name` (the user or the app).
async fn presence_of(state: &AppState, api: &Api, name: &str, body: &Value, expiry: u64) -> ApiResult<Response> {
    path_user_for_self_or_admin(state, api, name, "/users").await?;
    let Some(list) = body.get("usernames").and_then(Value::as_array) else {
        return Err(ApiError::illegal_argument("usernames is required"));
    };
    if list.len() > MAX_USERS {
        return Err(ApiError::illegal_argument(format!("at most {MAX_USERS} usernames at once")));
    }
    let names: Vec<String> = list.iter().filter_map(Value::as_str).filter_map(|n| normalize_username(n).ok()).collect();
    let now = now_ms() / 1000;
    let mut result = Vec::new();
    for user in state.store.existing_users(api.app.id, &names).await? {
        let status: Map<String, Value> =
            state.presence.devices(api.app.id, &user).await?.into_iter().map(|d| (d.resource, json!(1))).collect();
        result.push(
            json!({"uid": user, "status": status, "ext": "", "last_time": now, "expiry": now.saturating_add(expiry)}),
        );
    }
    Ok(axum::Json(json!({
        "result": result,
        "timestamp": now_ms(),
        "duration": api.started.elapsed().as_millis() as u64,
    }))
    .into_response())
}
