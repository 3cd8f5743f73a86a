//! Conversation lists over REST: the Web SDK's `getServerConversations` /
//! `getServerPinnedConversations` (`GET /sdk/user/{u}/user_channels/list`, cursor paging),
//! the older `getConversationlist` (`GET /users/{u}/user_channels[/page]`), one-way delete
//! (`DELETE /users/{u}/user_channel`, and the SDK's `DELETE /user/{u}/user_channel`) and
//! pinning (`/sdk/user/{u}/user_channel/top`).
//!
//! Every call is the user's own token or the app's. Requests and answers are
//! `missive_api::conversations`; the rows, unread counts and read positions are the store's
//! (`HistoryStore`).

use axum::extract::{Path, State};
use missive_api::conversations::{
    ChatType, ConversationListRequest, DeleteConversation, LegacyListRequest, PinRequest, conversation_list_data,
    legacy_list_data, pin_data,
};
use missive_core::archive::ListOrder;
use missive_core::id::now_ms;
use missive_core::model::User;
use missive_core::store::ConversationQuery;
use serde_json::json;

use super::ctx::{Api, Envelope, JsonBody};
use super::history::DataResponse;
use super::openapi as doc;
use super::users::path_user_for_self_or_admin;
use crate::error::ApiResult;
use crate::state::AppState;

/// Conversations a user's legacy list returns at most (Easemob keeps 100 per user).
const MAX_LEGACY_LIST: u32 = 100;

fn pairs(api: &Api) -> impl Iterator<Item = (&str, &str)> {
    api.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

async fn owner(state: &AppState, api: &Api, name: &str) -> ApiResult<User> {
    path_user_for_self_or_admin(state, api, name, "/users").await
}

/// `GET /{org}/{app}/sdk/user/{username}/user_channels/list?limit&cursor[&is_top][&needEmptySession]`
/// — the user's conversations, latest activity (or latest pin) first, with the latest
/// message and the unread count of each.
#[utoipa::path(
    get,
    path = "/{org}/{app}/sdk/user/{username}/user_channels/list",
    tag = "conversations",
    params(
        doc::UserPath,
        ("limit" = Option<u32>, Query, description = "Conversations per page, 1–50 (default 20)."),
        ("cursor" = Option<String>, Query, description = "The `cursor` of the previous page."),
        ("is_top" = Option<bool>, Query, description = "`true`: pinned conversations only, latest pin first."),
        ("needEmptySession" = Option<bool>, Query, description = "`true`: also pinned conversations with no message left."),
    ),
    responses(
        (status = 200, description = "`data: {channel_infos, cursor?}`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let user = owner(&state, &api, &name).await?;
    let req = ConversationListRequest::parse(pairs(&api))?;
    let query = ConversationQuery {
        order: req.order(),
        after: req.cursor.as_ref().map(|c| (c.key, c.name.clone())),
        include_empty: req.include_empty,
        offset: 0,
        limit: req.limit + 1,
    };
    let rows = state.store.conversations(api.app.id, &user.username, &query).await?;
    let data = conversation_list_data(&api.app.app_key(), &rows, &req);
    Ok(api.envelope("get", "/sdk/user", &format!("/sdk/user/{}/user_channels/list", user.username)).set("data", data))
}

async fn legacy(state: &AppState, api: &Api, name: &str, paged: bool) -> ApiResult<Envelope> {
    let user = owner(state, api, name).await?;
    let req = LegacyListRequest::parse(paged, pairs(api), MAX_LEGACY_LIST)?;
    let query = ConversationQuery {
        order: ListOrder::Activity,
        after: None,
        include_empty: false,
        offset: req.offset,
        limit: req.limit,
    };
    let rows = state.store.conversations(api.app.id, &user.username, &query).await?;
    Ok(api
        .envelope("get", "/users", &format!("/users/{}/user_channels", user.username))
        .set("data", legacy_list_data(&api.app.app_key(), &rows)))
}

/// `GET /{org}/{app}/users/{username}/user_channels` — the user's whole conversation list
/// (up to 100), latest activity first.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/user_channels",
    tag = "conversations",
    params(doc::UserPath),
    responses(
        (status = 200, description = "`data: {channel_infos}`.", body = DataResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn legacy_list(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    legacy(&state, &api, &name, false).await
}

/// `GET /{org}/{app}/users/{username}/user_channels/page?pageNum&pageSize` — one page of it.
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/user_channels/page",
    tag = "conversations",
    params(
        doc::UserPath,
        ("pageNum" = Option<u32>, Query, description = "1-based page number (default 1)."),
        ("pageSize" = Option<u32>, Query, description = "Conversations per page, 1–20 (default 20)."),
    ),
    responses(
        (status = 200, description = "`data: {channel_infos}`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn legacy_page(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    legacy(&state, &api, &name, true).await
}

/// `DELETE /{org}/{app}/users/{username}/user_channel` (REST) and
/// `DELETE /{org}/{app}/user/{username}/user_channel` (the SDK's `deleteConversation`), body
/// `{channel, type, delete_roam}` — one-way delete: the conversation leaves the user's list
/// (and, with `delete_roam`, the user's side of its history); the peer sees no change.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/users/{username}/user_channel",
    tag = "conversations",
    params(doc::UserPath),
    request_body(content = Object, description = "`{\"channel\": \"u2\", \"type\": \"chat\", \"delete_roam\": true}`"),
    responses(
        (status = 200, description = "`data: {result: \"ok\"}`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn delete(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    let user = owner(&state, &api, &name).await?;
    let req = DeleteConversation::parse(&body)?;
    if req.chat_type == ChatType::Chat {
        // An id from this node's generator: every message accepted before now is below it.
        let upto = state.delivery.next_id();
        state.store.delete_conversation(api.app.id, &user.username, &req.peer, upto, req.delete_roam).await?;
    }
    Ok(api
        .envelope("delete", "/users/user_channel", &format!("/users/{}/user_channel", user.username))
        .set("entities", json!([]))
        .set("data", json!({"result": "ok"})))
}

/// The SDK's path for the same delete.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/user/{username}/user_channel",
    tag = "conversations",
    params(doc::UserPath, ("resource" = Option<String>, Query, description = "The SDK's device; ignored.")),
    request_body(content = Object, description = "`{\"channel\": \"u2\", \"type\": \"chat\", \"delete_roam\": true}`"),
    responses(
        (status = 200, description = "`data: {result: \"ok\"}`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn sdk_delete(
    state: State<AppState>,
    api: Api,
    path: Path<(String, String, String)>,
    body: JsonBody,
) -> ApiResult<Envelope> {
    delete(state, api, path, body).await
}

async fn pin_to(state: &AppState, api: &Api, name: &str, req: PinRequest, pin: bool) -> ApiResult<Envelope> {
    let user = owner(state, api, name).await?;
    let pinned = match req.chat_type {
        ChatType::Chat => {
            let at = pin.then(now_ms);
            state.store.pin_conversation(api.app.id, &user.username, &req.peer, at).await?
        }
        ChatType::Group => None,
    };
    Ok(api
        .envelope(
            if pin { "post" } else { "delete" },
            "/sdk/user",
            &format!("/sdk/user/{}/user_channel/top", user.username),
        )
        .set("data", pin_data(pinned)))
}

/// `POST /{org}/{app}/sdk/user/{username}/user_channel/top` `{type, to}` — pins a
/// conversation (the SDK's `pinConversation({isPinned: true})`).
#[utoipa::path(
    post,
    path = "/{org}/{app}/sdk/user/{username}/user_channel/top",
    tag = "conversations",
    params(doc::UserPath),
    request_body(content = Object, description = "`{\"type\": \"chat\", \"to\": \"u2\"}`"),
    responses(
        (status = 200, description = "`data: {is_top, update_top_status_time}`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn pin(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    let req = PinRequest::from_body(&body)?;
    pin_to(&state, &api, &name, req, true).await
}

/// `DELETE /{org}/{app}/sdk/user/{username}/user_channel/top?type&to` — unpins it.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/sdk/user/{username}/user_channel/top",
    tag = "conversations",
    params(
        doc::UserPath,
        ("type" = String, Query, description = "`chat`."),
        ("to" = String, Query, description = "The peer."),
    ),
    responses(
        (status = 200, description = "`data: {is_top, update_top_status_time}`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn unpin(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let req = PinRequest::from_query(pairs(&api))?;
    pin_to(&state, &api, &name, req, false).await
}
