//! Groups and chat rooms, before they exist: Missive has neither yet (a later issue), but
//! the official clients ask about them at start-up — `easemob-websdk` 4.x `getJoinedGroups`
//! (`GET /users/{u}/joined_chatgroups`, or `GET /chatgroups/user/{u}` when it asks for roles),
//! `getPublicGroups`, `getChatRooms`, the joined chat rooms — and a UI
//! built on them must load without errors. So every listing answers Easemob's envelope with
//! an empty `data` and `count: 0`, after the same access checks a real listing would make,
//! and creating a group or a chat room is refused with Easemob's "service not open" error
//! (403 `forbidden_op`), so an app sees clearly that the feature is off.
//!
//! The SDK bundled in `easemob-chat-uikit` 3.x asks for its joined groups over the sync
//! gateway WebSocket instead (docs/uikit.md), not here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::ctx::{Api, Envelope};
use super::openapi as doc;
use super::users::path_user_for_self_or_admin;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// An empty listing at `path` (Easemob's collection path), echoing the query's `params`.
fn empty_list(api: &Api, path: &str, uri_suffix: &str) -> Envelope {
    api.envelope("get", path, uri_suffix)
        .set("entities", Vec::<Value>::new())
        .set("data", Vec::<Value>::new())
        .set("count", 0)
        .set_opt("params", api.params())
}

/// 403 `forbidden_op`, the error Easemob gives for a service the app has not opened
/// (`message recall service is unopened`, …), naming the service.
fn service_unopened(service: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_op",
        "EasemobForbiddenOpException",
        format!("{service} service is unopened"),
    )
}

/// The body of every listing here: the envelope with nothing in it.
#[derive(ToSchema, Serialize)]
pub struct EmptyListResponse {
    #[serde(flatten)]
    pub envelope: doc::Envelope,
    /// Always empty.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub entities: Vec<Value>,
    /// Always empty: Missive has no groups or chat rooms yet.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    pub data: Vec<Value>,
    /// Always 0.
    pub count: u64,
    /// The query string, every value as an array of strings (absent without a query).
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

/// `GET /{org}/{app}/users/{username}/joined_chatgroups` — the groups a user is in: none.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/joined_chatgroups",
    tag = "groups",
    params(doc::UserPath),
    responses(
        (status = 200, description = "No groups (Missive has none yet).", body = EmptyListResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn joined_chatgroups(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let user = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    Ok(empty_list(&api, "/users", &format!("/users/{}/joined_chatgroups", user.username)))
}

/// `GET /{org}/{app}/chatgroups/user/{username}` — the groups a user is in, with roles and
/// member counts (`getJoinedGroups` with `needAffiliations`/`needRole`; the SDK reads
/// `entities`): none.
#[utoipa::path(
    get,
    path = "/{org}/{app}/chatgroups/user/{username}",
    tag = "groups",
    params(doc::UserPath),
    responses(
        (status = 200, description = "No groups (Missive has none yet).", body = EmptyListResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn user_chatgroups(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let user = path_user_for_self_or_admin(&state, &api, &name, "/chatgroups").await?;
    Ok(empty_list(&api, "/chatgroups", &format!("/chatgroups/user/{}", user.username)))
}

/// `GET /{org}/{app}/users/{username}/joined_chatrooms` — the chat rooms a user is in: none.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/joined_chatrooms",
    tag = "groups",
    params(doc::UserPath),
    responses(
        (status = 200, description = "No chat rooms (Missive has none yet).", body = EmptyListResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn joined_chatrooms(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let user = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    Ok(empty_list(&api, "/users", &format!("/users/{}/joined_chatrooms", user.username)))
}

/// `GET /{org}/{app}/publicchatgroups` — the public groups anyone may join (the SDK's
/// `getPublicGroups`, any token of the app): none.
#[utoipa::path(
    get,
    path = "/{org}/{app}/publicchatgroups",
    tag = "groups",
    params(doc::AppPath),
    responses(
        (status = 200, description = "No public groups (Missive has none yet).", body = EmptyListResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn public_chatgroups(api: Api) -> ApiResult<Envelope> {
    api.require_any()?;
    Ok(empty_list(&api, "/publicchatgroups", "/publicchatgroups"))
}

/// `GET /{org}/{app}/chatgroups` — every group of the app (app token): none.
#[utoipa::path(
    get,
    path = "/{org}/{app}/chatgroups",
    tag = "groups",
    params(doc::AppPath),
    responses(
        (status = 200, description = "No groups (Missive has none yet).", body = EmptyListResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list_chatgroups(api: Api) -> ApiResult<Envelope> {
    api.require_admin("/chatgroups")?;
    Ok(empty_list(&api, "/chatgroups", "/chatgroups"))
}

/// `GET /{org}/{app}/chatrooms` — the app's chat rooms (any token: the SDK's `getChatRooms`
/// lists them with the user's): none.
#[utoipa::path(
    get,
    path = "/{org}/{app}/chatrooms",
    tag = "groups",
    params(doc::AppPath),
    responses(
        (status = 200, description = "No chat rooms (Missive has none yet).", body = EmptyListResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list_chatrooms(api: Api) -> ApiResult<Envelope> {
    api.require_any()?;
    Ok(empty_list(&api, "/chatrooms", "/chatrooms"))
}

/// `POST /{org}/{app}/chatgroups` — creating a group: refused with 403 `forbidden_op`
/// `chatgroup service is unopened`. The body is not read: whatever it says, the answer is the
/// same.
#[utoipa::path(
    post,
    path = "/{org}/{app}/chatgroups",
    tag = "groups",
    params(doc::AppPath),
    responses(
        (status = 200, description = "Never: groups are not open on this server."),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn create_chatgroup(api: Api) -> ApiResult<Envelope> {
    api.require_any()?;
    Err(service_unopened("chatgroup"))
}

/// `POST /{org}/{app}/chatrooms` — creating a chat room: refused with 403 `forbidden_op`
/// `chatroom service is unopened`.
#[utoipa::path(
    post,
    path = "/{org}/{app}/chatrooms",
    tag = "groups",
    params(doc::AppPath),
    responses(
        (status = 200, description = "Never: chat rooms are not open on this server."),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn create_chatroom(api: Api) -> ApiResult<Envelope> {
    api.require_any()?;
    Err(service_unopened("chatroom"))
}
