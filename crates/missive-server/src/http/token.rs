//! `POST /{org}/{app}/token`: app tokens (`client_credentials`) and user tokens
//! (`password`, `inherit`). Easemob docs: "App Token" and "User Token" pages; errors in
//! easemob-api.md §2.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use missive_core::model::NewUser;
use missive_core::store::StoreError;
use serde_json::{Value, json};

use super::ctx::{Api, JsonBody};
use super::openapi as doc;
use super::users::{parse_username, user_entity};
use crate::auth::{Principal, constant_time_eq};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::telemetry::metrics::{Grant, LoginFailure};

// The `invalid_grant` descriptions, named so that [`failure_reason`] can classify them.
const USER_NOT_FOUND: &str = "user not found";
const INVALID_PASSWORD: &str = "invalid password";
const NOT_ACTIVATED: &str = "user not activated";
const CLIENT_ID_MISMATCH: &str = "client_id does not match";
const CLIENT_SECRET_MISMATCH: &str = "client_secret does not match";

fn invalid_grant(status: StatusCode, description: &str) -> ApiError {
    ApiError::new(
        status,
        "invalid_grant",
        "org.apache.usergrid.management.exceptions.InvalidGrantException",
        description,
    )
}

/// `ttl` may be a number or a numeric string; absent means the configured default.
fn parse_ttl(body: &Value, default: u64) -> ApiResult<u64> {
    match body.get("ttl") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => {
            n.as_u64().ok_or_else(|| ApiError::illegal_argument("ttl must be a non-negative integer"))
        }
        Some(Value::String(s)) => {
            s.trim().parse().map_err(|_| ApiError::illegal_argument("ttl must be a non-negative integer"))
        }
        Some(_) => Err(ApiError::invalid_body()),
    }
}

fn string_field<'a>(body: &'a Value, key: &str) -> ApiResult<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_body()),
    }
}

/// `POST /{org}/{app}/token`
#[utoipa::path(
    post,
    path = "/{org}/{app}/token",
    tag = "tokens",
    params(doc::AppPath),
    request_body = doc::TokenRequest,
    responses(
        (status = 200, description = "The token: `application` for client credentials, `user` otherwise.", body = doc::TokenResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security((), ("bearer" = [])),
)]
pub async fn issue_token(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Response> {
    if !body.is_object() {
        return Err(ApiError::invalid_body());
    }
    let (grant, issued) = match string_field(&body, "grant_type")? {
        Some("client_credentials") => (Grant::ClientCredentials, client_credentials(&state, &api, &body).await),
        Some("password") => (Grant::Password, password(&state, &api, &body).await),
        Some("inherit") => (Grant::Inherit, inherit(&state, &api, &body).await),
        Some(other) => return Err(ApiError::illegal_argument(format!("unsupported grant_type: {other}"))),
        None => return Err(ApiError::illegal_argument("grant_type must be provided")),
    };
    let metrics = &state.telemetry.metrics;
    match &issued {
        Ok(_) => metrics.login(grant),
        Err(e) => metrics.login_failed(grant, failure_reason(e)),
    }
    issued
}

/// Why a token request was refused, for `missive_login_failures_total`.
fn failure_reason(e: &ApiError) -> LoginFailure {
    match (e.status, e.description.as_str()) {
        (_, USER_NOT_FOUND | CLIENT_ID_MISMATCH) => LoginFailure::UnknownUser,
        (_, INVALID_PASSWORD | CLIENT_SECRET_MISMATCH) => LoginFailure::BadCredentials,
        (_, NOT_ACTIVATED) => LoginFailure::NotActivated,
        (StatusCode::SERVICE_UNAVAILABLE, _) => LoginFailure::Busy,
        (StatusCode::TOO_MANY_REQUESTS, _) => LoginFailure::Flood,
        _ => LoginFailure::Invalid,
    }
}

async fn client_credentials(state: &AppState, api: &Api, body: &Value) -> ApiResult<Response> {
    let id =
        string_field(body, "client_id")?.ok_or_else(|| ApiError::illegal_argument("client_id must be provided."))?;
    let secret = string_field(body, "client_secret")?
        .ok_or_else(|| ApiError::illegal_argument("client_secret must be provided"))?;
    if id != api.app.client_id {
        return Err(invalid_grant(StatusCode::BAD_REQUEST, CLIENT_ID_MISMATCH));
    }
    if !constant_time_eq(secret.as_bytes(), api.app.client_secret.as_bytes()) {
        return Err(invalid_grant(StatusCode::BAD_REQUEST, CLIENT_SECRET_MISMATCH));
    }
    let ttl = parse_ttl(body, state.config.tokens.app_ttl_secs)?;
    let token = state.auth.issue(api.app.id, Principal::App, ttl).await?;
    Ok(axum::Json(json!({
        "access_token": token.access_token,
        "expires_in": token.expires_in,
        "application": api.app.id.to_string(),
    }))
    .into_response())
}

async fn password(state: &AppState, api: &Api, body: &Value) -> ApiResult<Response> {
    let raw = string_field(body, "username")?.ok_or_else(|| invalid_grant(StatusCode::NOT_FOUND, USER_NOT_FOUND))?;
    let password = string_field(body, "password")?.unwrap_or_default().to_owned();
    let ttl = parse_ttl(body, state.config.tokens.user_ttl_secs)?;
    let username = parse_username(raw)?;
    let Some(user) = state.store.user_by_name(api.app.id, &username).await? else {
        return Err(invalid_grant(StatusCode::NOT_FOUND, USER_NOT_FOUND));
    };
    let mut passwords = state.auth.passwords.admit_login(api.app.id, &user.username)?;
    if !passwords.verify(password, user.password_hash.clone()).await? {
        return Err(invalid_grant(StatusCode::BAD_REQUEST, INVALID_PASSWORD));
    }
    drop(passwords);
    if !user.activated {
        return Err(invalid_grant(StatusCode::BAD_REQUEST, NOT_ACTIVATED));
    }
    user_token_response(state, api, &user, ttl).await
}

async fn inherit(state: &AppState, api: &Api, body: &Value) -> ApiResult<Response> {
    // Only the app token may mint tokens for users; a user token gets the permission 401.
    api.require_admin("/token")?;
    let raw = string_field(body, "username")?.ok_or_else(|| invalid_grant(StatusCode::NOT_FOUND, USER_NOT_FOUND))?;
    let auto_create = match body.get("autoCreateUser") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid_body()),
    };
    let ttl = parse_ttl(body, state.config.tokens.user_ttl_secs)?;
    let username = parse_username(raw)?;
    let user = match state.store.user_by_name(api.app.id, &username).await? {
        Some(u) => u,
        None if auto_create => {
            // A user created this way has no usable password until one is set.
            let mut random = [0u8; 24];
            getrandom::fill(&mut random).map_err(|_| ApiError::internal())?;
            let hash = state.auth.passwords.admit()?.hash(base64_random(&random)).await?;
            let new = NewUser { username: username.clone(), password_hash: hash, nickname: None };
            match state.store.create_user(api.app.id, &new).await {
                Ok(u) => u,
                Err(StoreError::Conflict(_)) => {
                    state.store.user_by_name(api.app.id, &username).await?.ok_or_else(|| {
                        ApiError::new(
                            StatusCode::CONFLICT,
                            "concurrent_operation_error",
                            "ConcurrentOperationException",
                            "concurrency create app user failed",
                        )
                    })?
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => return Err(invalid_grant(StatusCode::NOT_FOUND, USER_NOT_FOUND)),
    };
    if !user.activated {
        return Err(invalid_grant(StatusCode::BAD_REQUEST, NOT_ACTIVATED));
    }
    user_token_response(state, api, &user, ttl).await
}

async fn user_token_response(
    state: &AppState,
    api: &Api,
    user: &missive_core::model::User,
    ttl: u64,
) -> ApiResult<Response> {
    let token = state.auth.issue(api.app.id, Principal::User(user.uuid), ttl).await?;
    Ok(axum::Json(json!({
        "access_token": token.access_token,
        "expires_in": token.expires_in,
        "user": user_entity(user),
    }))
    .into_response())
}

fn base64_random(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
