//! Contacts, before they exist: the one contact call SDK 5 (the SDK bundled in
//! `easemob-chat-uikit` 3.x) makes at every login, `GET /user/{u}/roster/metadata/version`,
//! answered with the version of an empty roster, so its contact sync goes on to the sync
//! gateway (`ws/gateway.rs`) and finishes cleanly instead of failing on a 404. The contact
//! API itself (add, remove, list, blocklist) needs storage and is specified in docs/uikit.md;
//! when it lands, `roster_version` returns the stored version and the gateway the stored
//! contacts.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use missive_core::id::now_ms;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::ctx::Api;
use super::openapi as doc;
use super::users::path_user_for_self_or_admin;
use crate::error::ApiResult;
use crate::state::AppState;

/// The roster version of a user with no contacts: every user, until contacts are stored.
/// SDK 5 keeps the last version it synced and skips the roster sync while it is unchanged.
pub const EMPTY_ROSTER_VERSION: &str = "0";

#[derive(ToSchema, Serialize)]
pub struct RosterVersion {
    /// The user's roster version; SDK 5 syncs when it differs from the one it has.
    pub version: String,
    /// When this answer was made (ms).
    #[serde(rename = "checkedAt")]
    pub checked_at: u64,
}

#[derive(ToSchema, Serialize)]
pub struct RosterVersionResponse {
    pub data: RosterVersion,
    pub timestamp: u64,
    pub duration: u64,
}

/// `GET /{org}/{app}/user/{username}/roster/metadata/version` — the user's roster version
/// (the user's own token, or the app's).
#[utoipa::path(
    get,
    path = "/{org}/{app}/user/{username}/roster/metadata/version",
    tag = "contacts",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The roster version.", body = RosterVersionResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn roster_version(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let now = now_ms();
    Ok(axum::Json(json!({
        "data": {"version": EMPTY_ROSTER_VERSION, "checkedAt": now},
        "timestamp": now,
        "duration": api.started.elapsed().as_millis() as u64,
    }))
    .into_response())
}
