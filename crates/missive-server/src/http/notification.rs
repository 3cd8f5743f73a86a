//! Per-conversation push settings (do-not-disturb, 免打扰), read side only:
//! `GET /users/{u}/notification?user=…&group=…`, which the UIKit calls for the conversations
//! it shows. Missive keeps no per-conversation settings yet, so every conversation has the
//! default — which Easemob expresses by leaving it out of `data.user` / `data.group`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use missive_core::id::now_ms;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::ctx::Api;
use super::openapi as doc;
use super::users::path_user_for_self_or_admin;
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(ToSchema, Serialize)]
pub struct ConversationSettings {
    /// Peer → setting: empty (every conversation has the default).
    #[schema(value_type = Object)]
    pub user: Map<String, Value>,
    /// Group → setting: empty.
    #[schema(value_type = Object)]
    pub group: Map<String, Value>,
}

#[derive(ToSchema, Serialize)]
pub struct ConversationSettingsResponse {
    pub data: ConversationSettings,
    pub timestamp: u64,
    pub duration: u64,
}

/// `GET /{org}/{app}/users/{username}/notification?user=&group=` — the push settings of the
/// named conversations: all default.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/notification",
    tag = "users",
    params(
        doc::UserPath,
        ("user" = Option<String>, Query, description = "Peers, comma-separated."),
        ("group" = Option<String>, Query, description = "Groups, comma-separated."),
    ),
    responses(
        (status = 200, description = "No conversation has settings of its own.", body = ConversationSettingsResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn conversation_settings(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    Ok(axum::Json(json!({
        "data": {"user": {}, "group": {}},
        "timestamp": now_ms(),
        "duration": api.started.elapsed().as_millis() as u64,
    }))
    .into_response())
}
