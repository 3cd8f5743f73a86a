//! `GET /ws?token=…`: the sync gateway of the SDK bundled in `easemob-chat-uikit` 3.x ("SDK
//! 5"). After login over `/websocket`, SDK 5 opens this second WebSocket and asks for its
//! conversation list, contacts and joined groups, one request each; it has no REST fallback
//! for them (docs/uikit.md has every message). Each binary frame is one protobuf message whose
//! field 1 is its type; every request names `org`, `app` and `username`, and is answered only
//! if the URL's token is that user's (else error 1002, as the SDK expects for a bad token).
//!
//! What Missive answers:
//! - joined groups: none (there are no groups yet), a complete, empty answer;
//! - contacts: the stored roster (`ContactStore`), in pages of [`ROSTER_PAGE`], each contact
//!   with its remark and the contact's user attributes, at the roster version REST reports;
//! - conversations: error 1503 "unsupported", on which SDK 5 keeps the list it has cached in
//!   the browser — an empty success would make it wipe that list. Issue 13's conversation
//!   store replaces this answer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use missive_core::id::now_ms;
use missive_core::model::{App, User};
use missive_msync::gateway::{joinedgroups, roster, sessionlist};
use prost::Message as _;
use serde::Deserialize;
use tokio::time::timeout;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::contacts::MAX_CONTACTS;
use crate::state::AppState;

/// Frame types (field 1 of every gateway message).
const ROSTER_REQUEST: i32 = 3;
const ROSTER_RESPONSE: i32 = 4;
const ERROR: i32 = 5;
const SESSION_LIST_REQUEST: i32 = 10;
const SESSION_LIST_RESPONSE_UNSUPPORTED: u32 = 1503;
const JOINED_GROUPS_REQUEST: i32 = 12;
const JOINED_GROUPS_RESPONSE: i32 = 13;
/// The error code SDK 5 reads as "token expired or not valid".
const AUTH_FAILED: u32 = 1002;
/// The error code SDK 5 reads as "server busy" (and retries).
const SERVER_BUSY: u32 = 1003;
/// Contacts per roster page.
const ROSTER_PAGE: usize = 200;

/// SDK 5 sends its first request right after the socket opens; a client that sends nothing
/// for this long is not one.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
pub struct GatewayQuery {
    #[serde(default)]
    token: String,
}

/// Upgrades when the URL carries a token; which app and user it belongs to is only known from
/// the requests, so it is checked on each of them.
pub async fn upgrade(State(state): State<AppState>, Query(q): Query<GatewayQuery>, ws: WebSocketUpgrade) -> Response {
    if q.token.trim().is_empty() {
        return ApiError::no_token().into_response();
    }
    let max_frame = state.config.sessions.max_frame_bytes;
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_frame_size(max_frame)
        .max_message_size(max_frame)
        .on_upgrade(move |socket| serve(state, socket, q.token))
}

/// Answers requests one by one until the client closes, sends something that is not a
/// gateway message, or goes quiet.
async fn serve(state: AppState, mut socket: WebSocket, token: String) {
    let idle = Duration::from_secs(state.config.sessions.idle_timeout_secs.max(1));
    let mut wait = FIRST_FRAME_TIMEOUT.min(idle);
    loop {
        let data = match timeout(wait, socket.recv()).await {
            Ok(Some(Ok(Message::Binary(b)))) => b,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return,
        };
        wait = idle;
        let Ok(base) = roster::BaseMessage::decode(data.as_ref()) else { return };
        let reply = match base.r#type {
            ROSTER_REQUEST => match roster::GetRosterRequest::decode(data.as_ref()) {
                Ok(req) => roster_reply(&state, &token, req).await,
                Err(_) => return,
            },
            SESSION_LIST_REQUEST => match sessionlist::GetSessionListRequest::decode(data.as_ref()) {
                Ok(req) => session_list_reply(&state, &token, req).await,
                Err(_) => return,
            },
            JOINED_GROUPS_REQUEST => match joinedgroups::GetJoinedGroupsRequest::decode(data.as_ref()) {
                Ok(req) => joined_groups_reply(&state, &token, req).await,
                Err(_) => return,
            },
            // PONG, and anything newer SDKs may send: nothing to answer.
            _ => continue,
        };
        if socket.send(Message::Binary(reply)).await.is_err() {
            return;
        }
    }
}

/// The app and user a request names, if the connection's token is that user's.
async fn authorize(state: &AppState, token: &str, org: &str, app: &str, username: &str) -> Option<(Arc<App>, User)> {
    let app = state.apps.get(org, app).await.ok()??;
    let Ok(Principal::User(uuid)) = state.auth.verify(app.id, token).await else { return None };
    let user = state.store.user_by_name(app.id, &username.to_ascii_lowercase()).await.ok()??;
    (user.uuid == uuid && user.activated).then_some((app, user))
}

async fn roster_reply(state: &AppState, token: &str, req: roster::GetRosterRequest) -> Bytes {
    let header = req.header.map(|h| roster::GatewayHeader { timestamp: now_ms() as i64, ..h });
    let fail = |code: u32, message: &str, header| {
        let err = roster::ErrorDetail { r#type: ERROR, code: code.to_string(), message: message.into(), header };
        Bytes::from(err.encode_to_vec())
    };
    let Some((app, user)) = authorize(state, token, &req.org, &req.app, &req.username).await else {
        return fail(AUTH_FAILED, "Sorry, token or password does not match login info", header);
    };
    match roster_page(state, &app, &user, req.cursor).await {
        Ok((data, cursor, version)) => roster::GetRosterResponse {
            r#type: ROSTER_RESPONSE,
            header,
            data,
            cursor,
            version: version.to_string(),
            response_type: roster::RosterResponseType::Full as i32,
        }
        .encode_to_vec()
        .into(),
        Err(e) => {
            tracing::warn!(%e, "roster read failed");
            fail(SERVER_BUSY, "Sorry, server busy, retry later", header)
        }
    }
}

/// The page of `user`'s roster starting at contact number `cursor` (name order), the cursor
/// of the next page (0 after the last) and the roster version.
async fn roster_page(
    state: &AppState,
    app: &App,
    user: &User,
    cursor: u64,
) -> Result<(Vec<roster::RosterItem>, u64, i64), missive_core::store::StoreError> {
    // The version is read first: a change after it makes the next sync fetch again.
    let version = state.store.roster_version(app.id, &user.username).await?;
    let all = state.store.contacts(app.id, &user.username, None, MAX_CONTACTS as u32).await?;
    let start = usize::try_from(cursor).unwrap_or(usize::MAX).min(all.len());
    let page = &all[start..(start + ROSTER_PAGE).min(all.len())];
    let peers: Vec<String> = page.iter().map(|c| c.peer.clone()).collect();
    let attrs = state.store.attributes_of(app.id, &peers).await?;
    let data = page
        .iter()
        .map(|c| roster::RosterItem {
            contact: c.peer.clone(),
            remark: c.remark.clone().unwrap_or_default(),
            metadata: attrs.get(&c.peer).map(sdk5_metadata).unwrap_or_default(),
            created_at: c.created,
            updated_at: c.updated,
            metadata_updated_at: 0,
        })
        .collect();
    let end = start + page.len();
    Ok((data, if end < all.len() { end as u64 } else { 0 }, version))
}

/// A user's attributes as SDK 5 reads them in roster and session-list items: JSON with
/// `nickname`, `avatarUrl` (stored as Easemob's `avatarurl`), `sign` and `ext`.
pub(crate) fn sdk5_metadata(attrs: &missive_core::store::Attributes) -> String {
    let mut m = serde_json::Map::new();
    for (key, as_key) in [("nickname", "nickname"), ("avatarurl", "avatarUrl"), ("sign", "sign"), ("ext", "ext")] {
        if let Some(v) = attrs.get(key) {
            m.insert(as_key.into(), v.clone().into());
        }
    }
    serde_json::Value::Object(m).to_string()
}

async fn session_list_reply(state: &AppState, token: &str, req: sessionlist::GetSessionListRequest) -> Bytes {
    let header = req.header.map(|h| sessionlist::GatewayHeader { timestamp: now_ms() as i64, ..h });
    let (code, message) = match authorize(state, token, &req.org, &req.app, &req.username).await {
        None => (AUTH_FAILED, "Sorry, token or password does not match login info"),
        Some(_) => (SESSION_LIST_RESPONSE_UNSUPPORTED, "Sorry, the conversation list is not supported yet"),
    };
    sessionlist::ErrorDetail { r#type: ERROR, header, code, message: message.into() }.encode_to_vec().into()
}

async fn joined_groups_reply(state: &AppState, token: &str, req: joinedgroups::GetJoinedGroupsRequest) -> Bytes {
    let now = now_ms() as i64;
    let header = req.header.map(|h| joinedgroups::GatewayHeader { timestamp: now, ..h });
    if authorize(state, token, &req.org, &req.app, &req.username).await.is_none() {
        let err = joinedgroups::ErrorDetail {
            r#type: ERROR,
            header,
            code: AUTH_FAILED,
            message: "Sorry, token or password does not match login info".into(),
        };
        return err.encode_to_vec().into();
    }
    joinedgroups::GetJoinedGroupsResponse {
        r#type: JOINED_GROUPS_RESPONSE,
        header,
        groups: Vec::new(),
        is_last_batch: true,
        last_sync_finished_ts: now,
        cursor: String::new(),
    }
    .encode_to_vec()
    .into()
}
