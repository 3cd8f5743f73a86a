//! `/{org}/{app}/users…`: registration, lookup, listing, deletion, passwords, activation,
//! presence, devices and offline counts. Easemob docs: "User system" pages; shapes and
//! errors in easemob-api.md §3.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use missive_api::users::{
    BatchStatus, PasswordChange, RegisterRequest, Registration, UserPage, check_password, parse_msg_id, parse_update,
    presence_word,
};
use missive_core::id::MsgId;
use missive_core::model::{NewUser, User, normalize_username};
use missive_core::store::StoreError;
use serde_json::{Map, Value, json};

use super::ctx::{Api, Credentials, Envelope, JsonBody};
use super::openapi as doc;
use crate::error::{ApiError, ApiResult};
use crate::fanout::{KickReason, KickTarget};
use crate::passwords::PasswordSlot;
use crate::state::AppState;

/// A user as Easemob's `entities[]` shows it.
pub fn user_entity(u: &User) -> Value {
    let mut m = Map::new();
    m.insert("uuid".into(), u.uuid.to_string().into());
    m.insert("type".into(), "user".into());
    m.insert("created".into(), u.created.into());
    m.insert("modified".into(), u.modified.into());
    m.insert("username".into(), u.username.clone().into());
    m.insert("activated".into(), u.activated.into());
    if let Some(n) = &u.nickname {
        m.insert("nickname".into(), n.clone().into());
    }
    for (k, v) in &u.attributes {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

/// Loads the user named in the path; any invalid or unknown name is 404.
pub(super) async fn path_user(state: &AppState, api: &Api, raw: &str) -> ApiResult<User> {
    let name = normalize_username(raw).map_err(|_| ApiError::resource_not_found())?;
    state.store.user_by_name(api.app.id, &name).await?.ok_or_else(ApiError::resource_not_found)
}

/// Loads the user named in the path for a call the user itself or the app may make: no token
/// or a bad one is 401 before the name is even looked at, then 404 for an unknown user, then
/// 401 for another user's token (naming `resource` in the refusal).
pub(super) async fn path_user_for_self_or_admin(
    state: &AppState,
    api: &Api,
    raw: &str,
    resource: &str,
) -> ApiResult<User> {
    api.require_any()?;
    let user = path_user(state, api, raw).await?;
    api.require_admin_or_self(&user, resource)?;
    Ok(user)
}

fn duplicate(api: &Api, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "duplicate_unique_property_exists",
        "org.apache.usergrid.persistence.exceptions.DuplicateUniquePropertyExistsException",
        format!(
            "Application {} Entity user requires that property named username be unique, value of {name} exists",
            api.app.id
        ),
    )
}

/// Hashes through `passwords` (the request's one slot, so a batch hashes its users one after
/// another instead of fanning out) and stores the user; `Err(())` if the name is taken.
async fn register_one(
    state: &AppState,
    api: &Api,
    passwords: &mut PasswordSlot,
    r: Registration,
) -> ApiResult<Result<User, ()>> {
    let hash = passwords.hash(r.password).await?;
    let new = NewUser { username: r.username, password_hash: hash, nickname: r.nickname };
    match state.store.create_user(api.app.id, &new).await {
        Ok(u) => Ok(Ok(u)),
        Err(StoreError::Conflict(_)) => Ok(Err(())),
        Err(e) => Err(e.into()),
    }
}

/// `POST /{org}/{app}/users` — one object (open registration, or with the app token) or an
/// array of up to 60 (app token) with partial success reported in `data`.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users",
    tag = "users",
    params(doc::AppPath),
    request_body = doc::RegisterBody,
    responses(
        (status = 200, description = "The users created; a batch reports failed registrations in `data`.", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security((), ("bearer" = [])),
)]
pub async fn create_users(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Response> {
    match (&api.credentials, &body) {
        (Credentials::None, Value::Object(_)) if api.app.open_registration => {}
        (Credentials::None, _) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "com.easemob.im.exceptions.EasemobSecurityException",
                "Open registration doesn't allow, so register user need token,",
            ));
        }
        _ => api.require_admin("/users")?,
    }
    let env = api.envelope("post", "/users", "/users");
    match RegisterRequest::parse(&body, state.config.limits.batch_register)? {
        RegisterRequest::One(reg) => {
            let name = reg.username.clone();
            let mut passwords = state.auth.passwords.admit()?;
            match register_one(&state, &api, &mut passwords, reg).await? {
                Ok(u) => Ok(env.set("entities", vec![user_entity(&u)]).into_response()),
                Err(()) => Err(duplicate(&api, &name)),
            }
        }
        RegisterRequest::Batch(items) => {
            let mut passwords = state.auth.passwords.admit()?;
            let mut entities = Vec::new();
            let mut failures = Vec::new();
            for item in items {
                match item.registration {
                    Err(e) => failures.push(json!({"username": item.shown, "registerUserFailReason": e.description()})),
                    Ok(reg) => {
                        let name = reg.username.clone();
                        match register_one(&state, &api, &mut passwords, reg).await? {
                            Ok(u) => entities.push(user_entity(&u)),
                            Err(()) => failures
                                .push(json!({"username": name, "registerUserFailReason": format!("the {name} already exists")})),
                        }
                    }
                }
            }
            Ok(env.set("entities", entities).set("data", failures).into_response())
        }
    }
}

/// `GET /{org}/{app}/users/{username}` — app token, or the user's own token.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The user.", body = doc::UsersResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn get_user(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    // A missing or bad token is 401 before the user is looked up: no probing for names.
    api.require_any()?;
    let user = path_user(&state, &api, &name).await?;
    api.require_admin_or_self(&user, &format!("/users/{}", user.uuid))?;
    Ok(api
        .envelope("get", "/users", &format!("/users/{}", user.username))
        .set("entities", vec![user_entity(&user)])
        .set("count", 1))
}

/// `PUT /{org}/{app}/users/{username}` — nickname and notification settings.
#[utoipa::path(
    put,
    path = "/{org}/{app}/users/{username}",
    tag = "users",
    params(doc::UserPath),
    request_body = doc::UserUpdate,
    responses(
        (status = 200, description = "The updated user.", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn update_user(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    api.require_any()?;
    let user = path_user(&state, &api, &name).await?;
    api.require_admin_or_self(&user, &format!("/users/{}", user.uuid))?;
    let patch = parse_update(&body)?;
    let user =
        state.store.update_user(api.app.id, &user.username, &patch).await?.ok_or_else(ApiError::resource_not_found)?;
    Ok(api.envelope("put", "/users", &format!("/users/{}", user.username)).set("entities", vec![user_entity(&user)]))
}

fn page_params(api: &Api) -> ApiResult<(u32, i64)> {
    let page = UserPage::parse(api.query_value("limit"), api.query_value("cursor"))?;
    Ok((page.limit, page.after))
}

/// `GET /{org}/{app}/users?limit=&cursor=` — oldest first; `cursor` only when more remain.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users",
    tag = "users",
    params(doc::AppPath, doc::PageQuery),
    responses(
        (status = 200, description = "A page of users, oldest first; `cursor` when more remain.", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list_users(State(state): State<AppState>, api: Api) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let (limit, after) = page_params(&api)?;
    let mut users = state.store.list_users(api.app.id, after, limit + 1).await?;
    let more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let cursor = more.then(|| UserPage::cursor(users.last().map(|u| u.seq).unwrap_or(after)));
    Ok(api
        .envelope("get", "/users", "/users")
        .set_opt("params", api.params())
        .set("count", users.len())
        .set("entities", users.iter().map(user_entity).collect::<Vec<_>>())
        .set_opt("cursor", cursor))
}

/// Removes a user's sessions and tokens: what deletion, deactivation and a password change
/// all require, effective at once.
async fn cut_off(state: &AppState, api: &Api, user: &User, reason: KickReason) -> ApiResult<()> {
    state.auth.revoke_user(api.app.id, user.uuid).await?;
    state.fanout.kick(api.app.id, &user.username, KickTarget::AllDevices, reason);
    Ok(())
}

/// `DELETE /{org}/{app}/users/{username}`
#[utoipa::path(
    delete,
    path = "/{org}/{app}/users/{username}",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The deleted user.", body = doc::UsersResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_user(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    let deleted =
        state.store.delete_user(api.app.id, &user.username).await?.ok_or_else(ApiError::resource_not_found)?;
    cut_off(&state, &api, &deleted, KickReason::UserRemoved).await?;
    Ok(api
        .envelope("delete", "/users", &format!("/users/{}", deleted.username))
        .set("entities", vec![user_entity(&deleted)]))
}

/// `DELETE /{org}/{app}/users?limit=N` — deletes the N oldest users.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/users",
    tag = "users",
    params(doc::AppPath, doc::PageQuery),
    responses(
        (status = 200, description = "The users deleted (the `limit` oldest).", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_users(State(state): State<AppState>, api: Api) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let (limit, after) = page_params(&api)?;
    let users = state.store.list_users(api.app.id, after, limit).await?;
    let mut deleted = Vec::with_capacity(users.len());
    for u in users {
        if let Some(d) = state.store.delete_user(api.app.id, &u.username).await? {
            cut_off(&state, &api, &d, KickReason::UserRemoved).await?;
            deleted.push(d);
        }
    }
    Ok(api
        .envelope("delete", "/users", "/users")
        .set_opt("params", api.params())
        .set("count", deleted.len())
        .set("entities", deleted.iter().map(user_entity).collect::<Vec<_>>()))
}

/// A body with only `action`, `timestamp` and `duration`, as several user operations answer.
fn bare(api: &Api, action: &str) -> Envelope {
    api.envelope(action, "", "").without(&["application", "applicationName", "organization", "path", "uri"])
}

/// `PUT /{org}/{app}/users/{username}/password` — `{"newpassword"}` with the app token; a
/// user changing their own password must also send `oldpassword`.
#[utoipa::path(
    method(put, post),
    path = "/{org}/{app}/users/{username}/password",
    tag = "users",
    params(doc::UserPath),
    request_body = doc::PasswordChange,
    responses(
        (status = 200, description = "Password set; the user's tokens are revoked and devices disconnected.", body = doc::BareResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn set_password(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    let user = match normalize_username(&name) {
        Ok(n) => state.store.user_by_name(api.app.id, &n).await?,
        Err(_) => None,
    };
    let Some(user) = user else {
        api.require_any()?;
        return Err(ApiError::entity_not_found("User null not found"));
    };
    let change = PasswordChange::parse(&body);
    let new = match change.new_password() {
        Ok(new) => new,
        Err(e) => {
            api.require_any()?;
            return Err(e.into());
        }
    };
    let is_self = matches!(api.credentials, Credentials::Valid(crate::auth::Principal::User(u)) if u == user.uuid);
    let mut passwords = if is_self {
        let old = change.old_password()?;
        // Checking the old password is a login attempt: the same per-account limit applies.
        let mut slot = state.auth.passwords.admit_login(api.app.id, &user.username)?;
        if !slot.verify(old, user.password_hash.clone()).await? {
            return Err(ApiError::illegal_argument("oldPassword is incorrect"));
        }
        slot
    } else {
        api.require_admin(&format!("/users/{}/password", user.uuid))?;
        state.auth.passwords.admit()?
    };
    check_password(&new)?;
    let hash = passwords.hash(new).await?;
    state.store.set_password(api.app.id, &user.username, &hash).await?;
    cut_off(&state, &api, &user, KickReason::PasswordChanged).await?;
    Ok(bare(&api, "set user password"))
}

/// `POST /{org}/{app}/users/{username}/deactivate` — bans the user: tokens revoked,
/// devices kicked, logins refused.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/deactivate",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The deactivated user.", body = doc::DeactivateResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn deactivate_user(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    let user =
        state.store.set_activated(api.app.id, &user.username, false).await?.ok_or_else(ApiError::resource_not_found)?;
    cut_off(&state, &api, &user, KickReason::UserRemoved).await?;
    Ok(bare(&api, "Deactivate user").set("entities", vec![user_entity(&user)]))
}

/// `POST /{org}/{app}/users/{username}/activate`
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/activate",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "Activated.", body = doc::BareResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn activate_user(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    state.store.set_activated(api.app.id, &user.username, true).await?;
    Ok(bare(&api, "activate user"))
}

/// The shape Easemob gives every per-user `GET` that answers with `data`: no entities,
/// `count: 0`, and the full request path in `uri`.
fn user_data(api: &Api, user: &User, suffix: &str, data: impl Into<Value>) -> Envelope {
    api.envelope("get", "/users", &format!("/users/{}/{suffix}", user.username))
        .set("entities", Vec::<Value>::new())
        .set("data", data)
        .set("count", 0)
}

/// `GET /{org}/{app}/users/{username}/status`
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/status",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The user's presence.", body = doc::UserStatusResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn user_status(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    let mut data = Map::new();
    let online = state.presence.online(api.app.id, std::slice::from_ref(&user.username)).await?;
    data.insert(user.username.clone(), presence_word(!online.is_empty()).into());
    Ok(user_data(&api, &user, "status", data))
}

/// `POST /{org}/{app}/users/batch/status` — `{"usernames": [...]}`, at most 100; unknown
/// ids are simply offline.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/batch/status",
    tag = "users",
    params(doc::AppPath),
    request_body = doc::BatchStatusRequest,
    responses(
        (status = 200, description = "Each user's presence.", body = doc::BatchStatusResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn batch_status(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let req = BatchStatus::parse(&body, state.config.limits.batch_status)?;
    let online = state.presence.online(api.app.id, &req.ids()).await?;
    let data = req.answer(|u| online.contains(u));
    Ok(bare(&api, "get batch user status").set("data", data))
}

/// `GET /{org}/{app}/users/{username}/offline_msg_count` — messages no device has acked.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/offline_msg_count",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "Messages waiting unacked.", body = doc::OfflineCountResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn offline_msg_count(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    let n = state.store.offline_count(api.app.id, &user.username).await?;
    let mut data = Map::new();
    data.insert(user.username.clone(), n.into());
    Ok(user_data(&api, &user, "offline_msg_count", data))
}

/// `GET /{org}/{app}/users/{username}/offline_msg_status/{msg_id}` — `undelivered` while
/// the message waits in the user's queue unacked, else `delivered`.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/offline_msg_status/{msg_id}",
    tag = "users",
    params(doc::UserPath, ("msg_id" = String, Path, description = "A message id (decimal).")),
    responses(
        (status = 200, description = "Whether the message still waits.", body = doc::OfflineStatusResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn offline_msg_status(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, msg_id)): Path<(String, String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    let id = parse_msg_id(&msg_id)?;
    let pending =
        state.store.message(api.app.id, MsgId(id)).await?.is_some_and(|m| m.owner == user.username && !m.delivered);
    let mut data = Map::new();
    data.insert(msg_id.clone(), if pending { "undelivered" } else { "delivered" }.into());
    Ok(user_data(&api, &user, &format!("offline_msg_status/{msg_id}"), data))
}

/// `GET /{org}/{app}/users/{username}/resources` — the devices online now.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/resources",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The devices online now.", body = doc::ResourcesResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn user_resources(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    let data: Vec<Value> = state
        .presence
        .devices(api.app.id, &user.username)
        .await?
        .into_iter()
        .map(|d| json!({"res": d.resource, "device_uuid": d.device_uuid, "device_name": d.device_name}))
        .collect();
    Ok(user_data(&api, &user, "resources", data))
}

/// `GET /{org}/{app}/users/{username}/disconnect` — logs out every device.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/disconnect",
    tag = "users",
    params(doc::UserPath),
    responses(
        (status = 200, description = "Every device logged out.", body = doc::DisconnectResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn disconnect_all(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await?;
    state.fanout.kick(api.app.id, &user.username, KickTarget::AllDevices, KickReason::ByAdmin);
    Ok(user_data(&api, &user, "disconnect", json!({"result": true})))
}

/// `DELETE /{org}/{app}/users/{username}/disconnect/{resource}` — logs out one device.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/users/{username}/disconnect/{resource}",
    tag = "users",
    params(doc::UserPath, ("resource" = String, Path, description = "The device's MSYNC resource.")),
    responses(
        (status = 200, description = "The device logged out (if it was online).", body = doc::DisconnectResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn disconnect_one(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, resource)): Path<(String, String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/users")?;
    let user = path_user(&state, &api, &name).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "service_resource_not_found",
                "UserNotFoundException",
                "Service resource not found",
            )
        } else {
            e
        }
    })?;
    state.fanout.kick(api.app.id, &user.username, KickTarget::Resource(resource.clone()), KickReason::ByAdmin);
    Ok(api
        .envelope("delete", "/users", &format!("/users/{}/disconnect/{resource}", user.username))
        .set("entities", Vec::<Value>::new())
        .set("data", json!({"result": true})))
}
