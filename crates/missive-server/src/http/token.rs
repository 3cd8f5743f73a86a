//! `POST /{org}/{app}/token`: app tokens (`client_credentials`) and user tokens
//! (`password`, `inherit`). Easemob docs: "App Token" and "User Token" pages; errors in
//! easemob-api.md §2.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use missive_api::RequestError;
use missive_api::token::{ClientCredentials, GrantRefusal, GrantType, InheritGrant, PasswordGrant, parse_ttl};
use missive_core::model::NewUser;
use missive_core::store::StoreError;
use serde_json::{Value, json};

use super::ctx::{Api, JsonBody};
use super::openapi as doc;
use super::users::user_entity;
use crate::auth::{Principal, constant_time_eq};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::telemetry::metrics::{Grant, LoginFailure};

fn refuse(refusal: GrantRefusal) -> ApiError {
    RequestError::InvalidGrant(refusal).into()
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
    let (grant, issued) = match GrantType::parse(&body)? {
        GrantType::ClientCredentials => (Grant::ClientCredentials, client_credentials(&state, &api, &body).await),
        GrantType::Password => (Grant::Password, password(&state, &api, &body).await),
        GrantType::Inherit => (Grant::Inherit, inherit(&state, &api, &body).await),
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
    use GrantRefusal::*;
    match (e.status, GrantRefusal::from_description(&e.description)) {
        (_, Some(UserNotFound | ClientIdMismatch)) => LoginFailure::UnknownUser,
        (_, Some(InvalidPassword | ClientSecretMismatch)) => LoginFailure::BadCredentials,
        (_, Some(NotActivated)) => LoginFailure::NotActivated,
        (StatusCode::SERVICE_UNAVAILABLE, _) => LoginFailure::Busy,
        (StatusCode::TOO_MANY_REQUESTS, _) => LoginFailure::Flood,
        _ => LoginFailure::Invalid,
    }
}

async fn client_credentials(state: &AppState, api: &Api, body: &Value) -> ApiResult<Response> {
    let creds = ClientCredentials::parse(body)?;
    if creds.client_id != api.app.client_id {
        return Err(refuse(GrantRefusal::ClientIdMismatch));
    }
    if !constant_time_eq(creds.client_secret.as_bytes(), api.app.client_secret.as_bytes()) {
        return Err(refuse(GrantRefusal::ClientSecretMismatch));
    }
    // Easemob reads `ttl` only once the credentials match.
    let ttl = parse_ttl(body)?.unwrap_or(state.config.tokens.app_ttl_secs);
    let token = state.auth.issue(api.app.id, Principal::App, ttl).await?;
    Ok(axum::Json(json!({
        "access_token": token.access_token,
        "expires_in": token.expires_in,
        "application": api.app.id.to_string(),
    }))
    .into_response())
}

async fn password(state: &AppState, api: &Api, body: &Value) -> ApiResult<Response> {
    let req = PasswordGrant::parse(body)?;
    let Some(user) = state.store.user_by_name(api.app.id, &req.username).await? else {
        return Err(refuse(GrantRefusal::UserNotFound));
    };
    let mut passwords = state.auth.passwords.admit_login(api.app.id, &user.username)?;
    if !passwords.verify(req.password, user.password_hash.clone()).await? {
        return Err(refuse(GrantRefusal::InvalidPassword));
    }
    drop(passwords);
    if !user.activated {
        return Err(refuse(GrantRefusal::NotActivated));
    }
    user_token_response(state, api, &user, req.ttl.unwrap_or(state.config.tokens.user_ttl_secs)).await
}

async fn inherit(state: &AppState, api: &Api, body: &Value) -> ApiResult<Response> {
    // Only the app token may mint tokens for users; a user token gets the permission 401.
    api.require_admin("/token")?;
    let req = InheritGrant::parse(body)?;
    let username = req.username;
    let user = match state.store.user_by_name(api.app.id, &username).await? {
        Some(u) => u,
        None if req.auto_create => {
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
        None => return Err(refuse(GrantRefusal::UserNotFound)),
    };
    if !user.activated {
        return Err(refuse(GrantRefusal::NotActivated));
    }
    user_token_response(state, api, &user, req.ttl.unwrap_or(state.config.tokens.user_ttl_secs)).await
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
