//! History over REST: message roaming for the SDK (`POST /users/{u}/messageroaming`), the
//! app server's hourly export (`GET /chatmessages/{yyyyMMddHH}` and its signed download),
//! the legacy chat-log query (`GET /chatmessages?ql=`) and roaming deletes.
//!
//! Parsing and rendering are `missive_api::{history, chatlog, conversations}`; the archive
//! is the store's (`HistoryStore`). An export file is not kept anywhere: its URL names the
//! hour and an expiry, signed with the app's client secret, and the download reads the
//! hour from the archive and gzips it on the way out, so it always matches the archive
//! (recalls included) and costs no storage.

use std::io::Write;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use missive_api::RoamingRequest;
use missive_api::chatlog::{ChatLogRequest, ExportHour, chat_log_page, chat_record};
use missive_api::conversations::{ChatType, DeleteTarget, RoamingDelete};
use missive_api::history::{Direction, Queue, roaming_data};
use missive_core::archive::ArchivedMessage;
use missive_core::id::{MsgId, now_ms};
use missive_core::model::App;
use missive_core::store::{ChatLogQuery, HistorySelection};
use ring::hmac;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::ctx::{Api, Envelope, JsonBody};
use super::openapi as doc;
use super::users::path_user_for_self_or_admin;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Rows read from the archive per query while an export file is written.
const EXPORT_PAGE: u32 = 1000;

/// A success envelope whose `data` is described only loosely (the SDK reads it field by
/// field; docs/protocol.md has the shapes).
#[derive(ToSchema, Serialize)]
pub struct DataResponse {
    #[serde(flatten)]
    pub envelope: doc::Envelope,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of the legacy chat-log query: records in `entities`, `count`, and `cursor` when
/// more follow.
#[derive(ToSchema, Serialize)]
pub struct ChatLogResponse {
    #[serde(flatten)]
    pub envelope: doc::Envelope,
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<Value>,
    pub count: u64,
    #[schema(required = false)]
    pub cursor: String,
}

/// `POST /{org}/{app}/users/{username}/messageroaming` — one page of the user's conversation
/// with a peer, as the Web SDK's `getHistoryMessages` reads it: base64 `Meta`s as live
/// delivery sends them, `is_last`, `next_key`. The user's own token, or the app's.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/messageroaming",
    tag = "history",
    params(doc::UserPath),
    request_body = RoamingBody,
    responses(
        (status = 200, description = "`data: {msgs: [{msg}], is_last, next_key?}`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn roaming(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    let user = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let req = RoamingRequest::parse(&body)?;
    let rows = match &req.queue {
        Queue::User(peer) => state.store.history(api.app.id, &user.username, peer, &req.query).await?,
        // Missive has no groups: their history is empty.
        Queue::Group(_) => Vec::new(),
    };
    let data = roaming_data(&api.app.app_key(), &rows, req.query.limit);
    Ok(api
        .envelope("get message roaming", "/users", &format!("/users/{}/messageroaming", user.username))
        .set("data", data))
}

/// The signature of an export download URL: HMAC-SHA256 under the app's client secret
/// (which only the app and the server know) of the app, the hour and the expiry.
fn export_signature(app: &App, hour: &str, expires: u64) -> String {
    let tag = hmac::sign(&export_key(app), export_message(app, hour, expires).as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn export_key(app: &App) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, app.client_secret.as_bytes())
}

fn export_message(app: &App, hour: &str, expires: u64) -> String {
    format!("{}:{hour}:{expires}", app.id)
}

/// Whether `signature` (hex) signs this download, compared in constant time.
fn export_signed(app: &App, hour: &str, expires: u64, signature: &str) -> bool {
    let bytes: Option<Vec<u8>> = signature
        .len()
        .is_multiple_of(2)
        .then(|| {
            (0..signature.len()).step_by(2).map(|i| u8::from_str_radix(signature.get(i..i + 2)?, 16).ok()).collect()
        })
        .flatten();
    bytes.is_some_and(|b| hmac::verify(&export_key(app), export_message(app, hour, expires).as_bytes(), &b).is_ok())
}

fn export_hour(state: &AppState, api: &Api, time: &str) -> ApiResult<ExportHour> {
    Ok(ExportHour::parse(time, &api.app.app_key(), now_ms(), state.config.history.retention_ms())?)
}

/// `GET /{org}/{app}/chatmessages/{time}` — the URL of one UTC hour's export (`yyyyMMddHH`):
/// a gzip file of JSON lines, one record per message, valid for
/// `history.export_url_ttl_secs`. App token.
#[utoipa::path(
    get,
    path = "/{org}/{app}/chatmessages/{time}",
    tag = "history",
    params(doc::AppPath, ("time" = String, Path, description = "The UTC hour, `yyyyMMddHH`.")),
    responses(
        (status = 200, description = "`data: [{url}]`.", body = DataResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn export(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, time)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    api.require_admin("/chatmessages")?;
    let hour = export_hour(&state, &api, &time)?;
    let probe =
        ChatLogQuery { window: hour.range().ids(), direction: Direction::Newer, from: None, to: None, limit: 1 };
    if state.store.chat_log(api.app.id, &probe).await?.is_empty() {
        return Err(hour.not_found(&api.app.app_key()).into());
    }
    let expires = now_ms() / 1000 + state.config.history.export_url_ttl_secs;
    let url = api.uri(&format!(
        "/chatmessages/{}/file?Expires={expires}&Signature={}",
        hour.label,
        export_signature(&api.app, &hour.label, expires)
    ));
    Ok(api
        .envelope("get", "/chatmessages", &format!("/chatmessages/{}", hour.label))
        .set("data", json!([{"url": url}])))
}

/// `GET /{org}/{app}/chatmessages/{time}/file?Expires&Signature` — the export file itself:
/// what `export` handed out, no token needed (the URL is the credential until it expires).
#[utoipa::path(
    get,
    path = "/{org}/{app}/chatmessages/{time}/file",
    tag = "history",
    params(
        doc::AppPath,
        ("time" = String, Path, description = "The UTC hour, `yyyyMMddHH`."),
        ("Expires" = u64, Query, description = "Unix seconds after which the URL is refused."),
        ("Signature" = String, Query, description = "As handed out by `GET /chatmessages/{time}`."),
    ),
    responses(
        (status = 200, description = "gzip of JSON lines, one chat-log record per message.", content_type = "application/gzip"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(()),
)]
pub async fn export_file(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, time)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let expires = api.query_value("Expires").and_then(|e| e.parse::<u64>().ok());
    let signature = api.query_value("Signature").unwrap_or("");
    let valid = expires.is_some_and(|e| e >= now_ms() / 1000 && export_signed(&api.app, &time, e, signature));
    if !valid {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "EasemobSecurityException",
            "the download URL is invalid or has expired",
        ));
    }
    let hour = export_hour(&state, &api, &time)?;
    let mut query = ChatLogQuery {
        window: hour.range().ids(),
        direction: Direction::Newer,
        from: None,
        to: None,
        limit: EXPORT_PAGE,
    };
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    let mut written = 0usize;
    loop {
        let rows = state.store.chat_log(api.app.id, &query).await?;
        for m in &rows {
            let mut line = serde_json::to_vec(&chat_record(m)).map_err(|_| ApiError::internal())?;
            line.push(b'\n');
            gz.write_all(&line).map_err(|_| ApiError::internal())?;
        }
        written += rows.len();
        match rows.last() {
            Some(last) if rows.len() == EXPORT_PAGE as usize => query.window.lo = MsgId(last.id.0 + 1),
            _ => break,
        }
    }
    if written == 0 {
        return Err(hour.not_found(&api.app.app_key()).into());
    }
    let bytes = gz.finish().map_err(|_| ApiError::internal())?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.gz\"", hour.label)),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /{org}/{app}/chatmessages?ql=…&limit=&cursor=` — the legacy chat-log query: the
/// app's archive in Easemob's record format, paged with `cursor`. App token.
#[utoipa::path(
    get,
    path = "/{org}/{app}/chatmessages",
    tag = "history",
    params(
        doc::AppPath,
        ("ql" = Option<String>, Query, description = "`select * [where cond {and cond}] [order by timestamp asc|desc]`, `cond := timestamp (<|>) N | (from|to) = 'user'`."),
        ("limit" = Option<u32>, Query, description = "Records per page, 1–1000 (default 10)."),
        ("cursor" = Option<String>, Query, description = "The `cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "`entities`, `count` and, when more follow, `cursor`.", body = ChatLogResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn chat_log(State(state): State<AppState>, api: Api) -> ApiResult<Envelope> {
    api.require_admin("/chatmessages")?;
    let req = ChatLogRequest::parse(api.query_value("ql"), api.query_value("limit"), api.query_value("cursor"))?;
    let query = ChatLogQuery {
        window: req.window(),
        direction: req.query.order.direction(),
        from: req.query.from.clone(),
        to: req.query.to.clone(),
        limit: req.limit + 1,
    };
    let rows: Vec<ArchivedMessage> = state.store.chat_log(api.app.id, &query).await?;
    let page = chat_log_page(&rows, req.limit);
    Ok(api
        .envelope("get", "/chatmessages", "/chatmessages")
        .set_opt("params", api.params())
        .set("count", page.entities.len())
        .set("entities", page.entities)
        .set_opt("cursor", page.cursor))
}

/// The roaming deletes: the admin's (`/rest/message/roaming/{chat|group}/user/{u}[/time]`,
/// app token) and the SDK's `removeHistoryMessages` (`/sdk/message/roaming/…`, the user's
/// token). Both hide the named messages from the user's history only; the peer keeps them.
async fn roaming_delete(state: &AppState, api: &Api, name: &str, chat_type: ChatType, by_time: bool) -> ApiResult<()> {
    let user = path_user_for_self_or_admin(state, api, name, "/users").await?;
    let req = RoamingDelete::parse(chat_type, by_time, api.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    if req.chat_type == ChatType::Group {
        return Ok(());
    }
    let which = match &req.target {
        DeleteTarget::Ids(ids) => HistorySelection::Ids(ids.clone()),
        target => target.window().map(HistorySelection::Window).ok_or_else(ApiError::internal)?,
    };
    state.store.hide_history(api.app.id, &user.username, &req.peer, &which).await?;
    Ok(())
}

/// The answer of a roaming delete.
#[derive(ToSchema, Serialize)]
pub struct RoamingDeleted {
    /// Always `ok`.
    #[serde(rename = "requestStatusCode")]
    pub request_status_code: String,
    pub timestamp: u64,
}

/// The body of `messageroaming` (every field optional but `queue`).
#[derive(ToSchema, Serialize)]
pub struct RoamingBody {
    /// `{peer}@easemob.com` (a group's `{id}@conference.easemob.com` answers an empty page).
    pub queue: String,
    /// `-1`/`null`/`""` from the newest (or oldest) message, else the previous `next_key`.
    #[schema(value_type = Option<String>)]
    pub start: Option<String>,
    /// Page size, 1–50 (default 20).
    pub pull_number: Option<u32>,
    /// `true`: oldest first; `false` (default): newest first.
    pub is_positive: Option<bool>,
    /// Comma-separated kinds: `txt,img,audio,video,file,loc,cmd,custom,combine`.
    #[serde(rename = "msgType")]
    pub msg_type: Option<String>,
    /// Inclusive bounds in Unix ms.
    #[serde(rename = "startTime")]
    pub start_time: Option<u64>,
    #[serde(rename = "endTime")]
    pub end_time: Option<u64>,
    /// Only messages sent by this user.
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
}

fn roaming_deleted() -> Response {
    axum::Json(json!({"requestStatusCode": "ok", "timestamp": now_ms()})).into_response()
}

macro_rules! roaming_delete_route {
    ($name:ident, $path:literal, $chat:expr, $by_time:expr, $what:literal) => {
        #[doc = concat!("`DELETE ", $path, "` — ", $what)]
        #[utoipa::path(
                                                    delete,
                                                    path = $path,
                                                    tag = "history",
                                                    params(doc::UserPath),
                                                    responses(
                                                        (status = 200, description = "Done.", body = RoamingDeleted),
                                                        (status = 400, response = doc::BadRequest),
                                                        (status = 401, response = doc::Unauthorized),
                                                        (status = 404, response = doc::NotFound),
                                                        (status = 503, response = doc::ServiceUnavailable),
                                                    ),
                                                    security(("bearer" = [])),
                                                )]
        pub async fn $name(
            State(state): State<AppState>,
            api: Api,
            Path((_, _, name)): Path<(String, String, String)>,
        ) -> ApiResult<Response> {
            roaming_delete(&state, &api, &name, $chat, $by_time).await?;
            Ok(roaming_deleted())
        }
    };
}

roaming_delete_route!(
    delete_chat_roaming,
    "/{org}/{app}/rest/message/roaming/chat/user/{username}",
    ChatType::Chat,
    false,
    "hides messages `msgIdList` (≤ 50) of the conversation with `userId` from the user's history."
);
roaming_delete_route!(
    delete_chat_roaming_before,
    "/{org}/{app}/rest/message/roaming/chat/user/{username}/time",
    ChatType::Chat,
    true,
    "hides the conversation with `userId` up to `delTime` (ms) from the user's history."
);
roaming_delete_route!(
    delete_group_roaming,
    "/{org}/{app}/rest/message/roaming/group/user/{username}",
    ChatType::Group,
    false,
    "groups have no history in Missive: accepted, nothing changes."
);
roaming_delete_route!(
    delete_group_roaming_before,
    "/{org}/{app}/rest/message/roaming/group/user/{username}/time",
    ChatType::Group,
    true,
    "groups have no history in Missive: accepted, nothing changes."
);
roaming_delete_route!(
    sdk_delete_chat_roaming,
    "/{org}/{app}/sdk/message/roaming/chat/user/{username}",
    ChatType::Chat,
    false,
    "the SDK's `removeHistoryMessages({messageIds})`."
);
roaming_delete_route!(
    sdk_delete_chat_roaming_before,
    "/{org}/{app}/sdk/message/roaming/chat/user/{username}/time",
    ChatType::Chat,
    true,
    "the SDK's `removeHistoryMessages({beforeTimeStamp})`."
);
