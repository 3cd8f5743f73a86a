//! User attributes (用户属性) over REST: `/metadata/user/…`, which app servers call and the
//! SDKs use for `updateUserInfo`/`updateOwnUserInfo` and `fetchUserInfoById` (the UIKit asks
//! for every user it shows, its own at login).
//!
//! A user's attributes are set by the user or the app (a form body merged into what is
//! stored, at most [`MAX_USER_BYTES`] in all) and read by the user or the app one by one, or
//! by any user of the app in batches of at most [`MAX_BATCH`] — a chat UI shows its peers'
//! nicknames. Errors are the ones Easemob documents for these calls (`FORBIDDEN` over the
//! size limit, `metadata_error` "auth error" for another user's token).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use missive_api::query::percent_decode;
use missive_core::id::now_ms;
use missive_core::model::normalize_username;
use missive_core::store::{AttributeWrite, Attributes};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::ctx::{Api, Credentials, JsonBody};
use super::openapi as doc;
use super::users::path_user;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Easemob's limit on one user's attributes: 2 KB of keys and values.
pub const MAX_USER_BYTES: usize = 2048;
/// Most users one batch read names.
pub const MAX_BATCH: usize = 100;
/// Largest body a set accepts (Easemob: 4 KB).
const MAX_BODY_BYTES: usize = 4096;

/// `{"timestamp", "data", "duration"}`, the body of every success here.
fn answer(api: &Api, data: Value) -> Response {
    axum::Json(json!({
        "timestamp": now_ms(),
        "data": data,
        "duration": api.started.elapsed().as_millis() as u64,
    }))
    .into_response()
}

/// 401 `metadata_error` "auth error": a user token other than the user's own.
fn auth_error() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "metadata_error", "MetadataException", "auth error")
}

/// The app token or `user`'s own; another user's token is Easemob's `auth error`.
fn require_admin_or_self(api: &Api, user: &missive_core::model::User) -> ApiResult<()> {
    match api.require_any()? {
        Principal::App => Ok(()),
        Principal::User(u) if u == user.uuid => Ok(()),
        Principal::User(_) => Err(auth_error()),
    }
}

fn to_json(attrs: &Attributes) -> Value {
    Value::Object(attrs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// The attributes a set request carries: a form body (`nickname=…&avatarurl=…`, what the
/// SDKs and Easemob's examples send) or a JSON object; non-string JSON values are kept as
/// their JSON text (the SDKs send `gender` as a number).
async fn read_patch(req: Request) -> ApiResult<Attributes> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bytes =
        axum::body::to_bytes(Body::new(req.into_body()), MAX_BODY_BYTES).await.map_err(|_| ApiError::too_large())?;
    if json {
        let Value::Object(m) = serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_body())? else {
            return Err(ApiError::invalid_body());
        };
        return Ok(m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::invalid_body())?;
    Ok(text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect())
}

#[derive(ToSchema, Serialize)]
pub struct AttributesResponse {
    /// Attribute name → value.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    pub timestamp: u64,
    pub duration: u64,
}

#[derive(ToSchema, Serialize)]
pub struct BatchRequest {
    /// User ids, at most 100.
    pub targets: Vec<String>,
    /// The attributes wanted; absent or empty = all.
    #[schema(required = false)]
    pub properties: Vec<String>,
}

#[derive(ToSchema, Serialize)]
pub struct BatchResponse {
    /// User id → attributes, for the users that have any.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    pub timestamp: u64,
    pub duration: u64,
}

#[derive(ToSchema, Serialize)]
pub struct DeleteResponse {
    /// Always true (also when there was nothing to delete), as Easemob answers.
    pub data: bool,
    pub timestamp: u64,
    pub duration: u64,
}

#[derive(ToSchema, Serialize)]
pub struct CapacityResponse {
    /// Bytes of every user's attributes in the app.
    pub data: u64,
    pub timestamp: u64,
    pub duration: u64,
}

/// `PUT /{org}/{app}/metadata/user/{username}` — merges the form's attributes into the user's;
/// `data` holds the pairs this request set.
#[utoipa::path(
    put,
    path = "/{org}/{app}/metadata/user/{username}",
    tag = "attributes",
    params(doc::UserPath),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Stored.", body = AttributesResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn set_attributes(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    req: Request,
) -> ApiResult<Response> {
    api.require_any()?;
    let user = path_user(&state, &api, &name).await?;
    require_admin_or_self(&api, &user)?;
    let patch = read_patch(req).await?;
    match state.store.merge_attributes(api.app.id, &user.username, &patch, MAX_USER_BYTES, now_ms() as i64).await? {
        AttributeWrite::Stored(_) => Ok(answer(&api, to_json(&patch))),
        AttributeWrite::TooLarge { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "MetadataException",
            format!("size of metadata for this single user exceeds the user defined limit, {MAX_USER_BYTES}Bytes"),
        )),
    }
}

/// `GET /{org}/{app}/metadata/user/{username}` — all of the user's attributes (`{}` if none,
/// also for a user that does not exist, as Easemob answers).
#[utoipa::path(
    get,
    path = "/{org}/{app}/metadata/user/{username}",
    tag = "attributes",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The attributes.", body = AttributesResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn get_attributes(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    api.require_any()?;
    let Ok(user) = path_user(&state, &api, &name).await else {
        return if matches!(api.credentials, Credentials::Valid(Principal::App)) {
            Ok(answer(&api, json!({})))
        } else {
            Err(auth_error())
        };
    };
    require_admin_or_self(&api, &user)?;
    let attrs = state.store.attributes(api.app.id, &user.username).await?;
    Ok(answer(&api, to_json(&attrs)))
}

/// `POST /{org}/{app}/metadata/user/get` — `{"targets": [...], "properties": [...]}`: the
/// named users' attributes (only `properties`, if given), for any token of the app; users
/// without attributes are left out.
#[utoipa::path(
    post,
    path = "/{org}/{app}/metadata/user/get",
    tag = "attributes",
    params(doc::AppPath),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "The attributes by user.", body = BatchResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn batch_get(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Response> {
    api.require_any()?;
    let Some(targets) = body.get("targets").and_then(Value::as_array) else {
        return Err(ApiError::illegal_argument("targets is required"));
    };
    if targets.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "MetadataException",
            format!("exceed allowed batch size {MAX_BATCH}"),
        ));
    }
    let users: Vec<String> =
        targets.iter().filter_map(Value::as_str).filter_map(|t| normalize_username(t).ok()).collect();
    let wanted: Option<Vec<&str>> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .filter(|p| !p.is_empty());
    let found = state.store.attributes_of(api.app.id, &users).await?;
    let data: Map<String, Value> = found
        .into_iter()
        .map(|(user, mut attrs)| {
            if let Some(wanted) = &wanted {
                attrs.retain(|k, _| wanted.contains(&k.as_str()));
            }
            (user, to_json(&attrs))
        })
        .collect();
    Ok(answer(&api, Value::Object(data)))
}

/// `DELETE /{org}/{app}/metadata/user/{username}` — deletes all of the user's attributes;
/// `data: true` also when there were none.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/metadata/user/{username}",
    tag = "attributes",
    params(doc::UserPath),
    responses(
        (status = 200, description = "Deleted.", body = DeleteResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_attributes(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    api.require_any()?;
    let user = path_user(&state, &api, &name).await?;
    require_admin_or_self(&api, &user)?;
    state.store.delete_attributes(api.app.id, &user.username).await?;
    Ok(answer(&api, json!(true)))
}

/// `GET /{org}/{app}/metadata/user/capacity` — bytes of all attributes in the app (app token).
#[utoipa::path(
    get,
    path = "/{org}/{app}/metadata/user/capacity",
    tag = "attributes",
    params(doc::AppPath),
    responses(
        (status = 200, description = "The app's attribute bytes.", body = CapacityResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn capacity(State(state): State<AppState>, api: Api) -> ApiResult<Response> {
    api.require_admin("/metadata/user/capacity")?;
    let bytes = state.store.attribute_bytes(api.app.id).await?;
    Ok(answer(&api, json!(bytes)))
}
