//! Contacts and blocklists (Easemob's 用户关系): the REST API app servers call, and the
//! calls the SDKs make for `getContacts`/`getAllContacts`/`getContactsWithCursor`,
//! `deleteContact`, `setContactRemark`, `getBlocklist`, `addUsersToBlocklist` and
//! `removeUserFromBlocklist`, over the store's `ContactStore`.
//!
//! Every call names an owner in the path and is made with the app token or the owner's own
//! token. Adding a contact over REST is mutual and immediate, as Easemob's is (no invitation);
//! removing one removes both directions. A blocklist is one-way: the blocked user's SDK
//! messages to the owner are refused (`ws/session.rs`), REST sends are not filtered
//! (Easemob's send API does not check it). SDK 5 learns the roster from the sync gateway
//! (`ws/gateway.rs`) and asks `roster/metadata/version` first; both read the same store.
//! Limits (docs/api.md): [`MAX_CONTACTS`] per user, [`MAX_BLOCKED`] blocked per user,
//! remarks of at most [`MAX_REMARK_CHARS`].
//!
//! The SDKs' invitations (`addContact`, `acceptContactInvite`, `declineContactInvite`) and a
//! removal tell the other user's devices with a ROSTER event (`RosterBody`: ADD, REMOTE_ACCEPT,
//! REMOTE_DECLINE, REMOVE), which the SDKs turn into `onContactInvited`, `onContactAgreed`,
//! `onContactRefuse` and `onContactDeleted`. Events are online-only messages in a
//! [`ROSTER_QUEUE`] of their own, sent as ROSTER metas (`ws/session.rs`): a device offline at that moment
//! does not get them (the invitation itself is stored, and the contact list is always read
//! from the store).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use missive_api::cursor::{CursorKind, PageCursor};
use std::sync::Arc;

use bytes::Bytes;
use missive_core::id::now_ms;
use missive_core::model::{QueuedMessage, User};
use missive_msync::pb;
use missive_msync::pb::roster_body::Operation;
use prost::Message as _;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::ctx::{Api, Envelope, JsonBody};
use super::openapi as doc;
use super::users::{path_user, path_user_for_self_or_admin, user_entity};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Contacts one user may have (Easemob's default plans allow 100 to 3,000).
pub const MAX_CONTACTS: u64 = 3_000;
/// Users one user may block (Easemob: 500).
pub const MAX_BLOCKED: u64 = 500;
/// Longest contact remark, in characters (Easemob: 100).
pub const MAX_REMARK_CHARS: usize = 100;
/// Contact events travel in queues named with this prefix, one queue per event
/// (`#roster:{id}`): no user id contains `#`, so they are never a conversation, and a fresh
/// queue each time keeps SDK 4.21.1's per-queue pull bookkeeping out of the way (with one
/// shared queue it stopped pulling after two events).
pub const ROSTER_QUEUE: &str = "#roster";

/// Whether `queue` carries contact events.
pub fn is_roster_queue(queue: &str) -> bool {
    queue.strip_prefix(ROSTER_QUEUE).is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// Tells `to`'s devices online now (but `except`, the device that acted) what `from` did.
fn roster_event(state: &AppState, api: &Api, to: &str, from: &str, op: Operation, reason: &str, except: Option<&str>) {
    let jid = |name: &str| pb::Jid { name: Some(name.to_owned()), ..Default::default() };
    let body = pb::RosterBody {
        operation: Some(op as i32),
        from: Some(jid(from)),
        // The SDKs read `to[0]` unchecked.
        to: vec![jid(to)],
        reason: Some(reason.to_owned()),
        ..Default::default()
    };
    let id = state.delivery.next_id();
    let msg = Arc::new(QueuedMessage {
        id,
        app_id: api.app.id,
        owner: to.to_owned(),
        queue: format!("{ROSTER_QUEUE}:{}", id.0),
        sender: from.to_owned(),
        created: now_ms() as i64,
        payload: Bytes::from(body.encode_to_vec()),
        seq: 0,
        delivered: false,
    });
    state.fanout.online(api.app.id, to, &msg, except);
}

/// `{org}/{app}`, the owner and the other user named in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PairPath {
    /// Organization name.
    pub org: String,
    /// App name.
    pub app: String,
    /// The owner of the contact list or blocklist.
    pub username: String,
    /// The contact or blocked user.
    pub peer: String,
}

/// A contact with its remark, as the SDKs read it.
#[derive(ToSchema, Serialize)]
pub struct ContactEntry {
    pub username: String,
    /// `null` until the owner sets one.
    pub remark: Option<String>,
}

/// The contact list: names in `data`; with `needReturnRemark=true` also `entities`.
#[derive(ToSchema, Serialize)]
pub struct ContactListResponse {
    #[serde(flatten)]
    pub envelope: doc::Envelope,
    pub data: Vec<String>,
    pub count: u64,
    pub entities: Vec<ContactEntry>,
}

#[derive(ToSchema, Serialize)]
pub struct ContactPage {
    pub contacts: Vec<ContactEntry>,
    /// Present while more contacts remain.
    #[schema(required = false)]
    pub cursor: String,
}

/// One page of contacts.
#[derive(ToSchema, Serialize)]
pub struct ContactPageResponse {
    #[serde(flatten)]
    pub envelope: doc::Envelope,
    pub data: ContactPage,
    /// The owner's number of contacts.
    pub count: u64,
}

/// A list of user names (the blocklist, the users just blocked).
#[derive(ToSchema, Serialize)]
pub struct NamesResponse {
    #[serde(flatten)]
    pub envelope: doc::Envelope,
    pub data: Vec<String>,
    #[schema(required = false)]
    pub count: u64,
    /// Paged listing: present while more remain.
    #[schema(required = false)]
    pub cursor: String,
}

/// `{"usernames": [...]}`.
#[derive(ToSchema, Serialize)]
pub struct Usernames {
    pub usernames: Vec<String>,
}

/// `{"remark": "..."}`.
#[derive(ToSchema, Serialize)]
pub struct Remark {
    pub remark: String,
}

#[derive(ToSchema, Serialize)]
pub struct RemarkResponse {
    pub action: String,
    /// `ok`.
    pub status: String,
    pub uri: String,
    pub timestamp: u64,
    pub duration: u64,
}

#[derive(ToSchema, Serialize)]
pub struct RosterVersion {
    /// The user's roster version; SDK 5 syncs when it differs from the one it has.
    pub version: String,
    /// Always true: the client sends no version to compare with.
    pub need_sync: bool,
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

/// 403 `forbidden_op` for a list at its limit.
fn over_limit(what: &str, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_op",
        "EasemobForbiddenOpException",
        format!("{what} exceeds the limit of {limit}"),
    )
}

/// The owner (app token or the owner's own) and the other user of a pair path; the other
/// user must exist (404 otherwise) and differ from the owner (400).
async fn pair(state: &AppState, api: &Api, owner: &str, peer: &str) -> ApiResult<(User, User)> {
    let owner = path_user_for_self_or_admin(state, api, owner, "/users").await?;
    let peer = path_user(state, api, peer).await?;
    if owner.uuid == peer.uuid {
        return Err(ApiError::illegal_argument(format!("{} can not be a contact of itself", owner.username)));
    }
    Ok((owner, peer))
}

/// The envelope of a contact operation: Easemob reports the owner's contacts collection.
fn contacts_envelope(api: &Api, action: &str, owner: &User, peer: &User) -> Envelope {
    let path = format!("/users/{}/contacts", owner.uuid);
    api.envelope(action, &path, &path).set("entities", vec![user_entity(peer)])
}

/// `POST /{org}/{app}/users/{username}/contacts/users/{peer}` — makes the two users contacts
/// of each other at once.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/contacts/users/{peer}",
    tag = "contacts",
    params(PairPath),
    responses(
        (status = 200, description = "They are contacts (also when they already were); `entities` holds the peer.", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn add_contact(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, peer)): Path<(String, String, String, String)>,
) -> ApiResult<Envelope> {
    let (owner, peer) = pair(&state, &api, &name, &peer).await?;
    let app = api.app.id;
    for u in [&owner, &peer] {
        if state.store.contact_count(app, &u.username).await? >= MAX_CONTACTS {
            let already = state.store.contacts(app, &owner.username, None, MAX_CONTACTS as u32).await?;
            if !already.iter().any(|c| c.peer == peer.username) {
                return Err(over_limit(&format!("the contacts of {}", u.username), MAX_CONTACTS));
            }
        }
    }
    state.store.add_contact(app, &owner.username, &peer.username, now_ms() as i64).await?;
    Ok(contacts_envelope(&api, "post", &owner, &peer))
}

/// `DELETE /{org}/{app}/users/{username}/contacts/users/{peer}` — ends the relation both ways
/// (SDK 4 and SDK 5 `deleteContact` call this too, with `?resource=`).
#[utoipa::path(
    delete,
    path = "/{org}/{app}/users/{username}/contacts/users/{peer}",
    tag = "contacts",
    params(PairPath),
    responses(
        (status = 200, description = "They are no longer contacts (also when they were not); `entities` holds the peer.", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn remove_contact(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, peer)): Path<(String, String, String, String)>,
) -> ApiResult<Envelope> {
    let (owner, peer) = pair(&state, &api, &name, &peer).await?;
    if state.store.remove_contact(api.app.id, &owner.username, &peer.username, now_ms() as i64).await? {
        roster_event(&state, &api, &peer.username, &owner.username, Operation::Remove, "", None);
    }
    Ok(contacts_envelope(&api, "delete", &owner, &peer))
}

/// `PUT /{org}/{app}/user/{username}/contacts/users/{peer}` (also under `/users/`) —
/// `{"remark": "…"}`, the owner's note about a contact (`setContactRemark`).
#[utoipa::path(
    put,
    path = "/{org}/{app}/user/{username}/contacts/users/{peer}",
    tag = "contacts",
    params(PairPath),
    request_body = Remark,
    responses(
        (status = 200, description = "Remark set.", body = RemarkResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn set_remark(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, peer)): Path<(String, String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let (owner, peer) = pair(&state, &api, &name, &peer).await?;
    let remark = match body.get("remark") {
        Some(Value::String(r)) if r.chars().count() <= MAX_REMARK_CHARS => r.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::illegal_argument(format!("remark must be at most {MAX_REMARK_CHARS} characters")));
        }
        _ => return Err(ApiError::illegal_argument("remark is required")),
    };
    if !state.store.set_remark(api.app.id, &owner.username, &peer.username, &remark, now_ms() as i64).await? {
        return Err(ApiError::entity_not_found(format!("{} is not a contact of {}", peer.username, owner.username)));
    }
    Ok(axum::Json(json!({
        "action": "put",
        "status": "ok",
        "uri": api.uri(&format!("/user/{}/contacts/users/{}", owner.username, peer.username)),
        "timestamp": now_ms(),
        "duration": api.started.elapsed().as_millis() as u64,
    }))
    .into_response())
}

/// Whether the query asks for remarks (`needReturnRemark=true`).
fn wants_remarks(api: &Api) -> bool {
    api.query_value("needReturnRemark").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn entry(c: &missive_core::store::Contact) -> Value {
    json!({"username": c.peer, "remark": c.remark})
}

/// `GET /{org}/{app}/users/{username}/contacts/users` — every contact's name in `data`
/// (SDK 4 `getContacts`); with `needReturnRemark=true` also `entities` with remarks
/// (`getAllContacts`).
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/contacts/users",
    tag = "contacts",
    params(doc::UserPath),
    responses(
        (status = 200, description = "The contacts, in name order.", body = ContactListResponse),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list_contacts(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let owner = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let all = state.store.contacts(api.app.id, &owner.username, None, MAX_CONTACTS as u32).await?;
    let path = format!("/users/{}/contacts/users", owner.username);
    let entities: Vec<Value> = if wants_remarks(&api) { all.iter().map(entry).collect() } else { Vec::new() };
    Ok(api
        .envelope("get", &path, &path)
        .set("data", all.iter().map(|c| c.peer.clone()).collect::<Vec<_>>())
        .set("count", all.len())
        .set("entities", entities)
        .set_opt("params", api.params()))
}

/// `limit` (or `pageSize`) in 1..=`max`, `default` when absent; 400 otherwise.
fn page_size(api: &Api, default: u32, max: u32) -> ApiResult<u32> {
    match api.query_value("limit").or_else(|| api.query_value("pageSize")) {
        None | Some("") => Ok(default),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| ApiError::illegal_argument(format!("limit must be between 1 and {max}"))),
    }
}

/// The name a listing's `cursor` resumes after; 400 for a cursor that is not this listing's.
fn cursor_after(api: &Api, kind: CursorKind) -> ApiResult<Option<String>> {
    match api.query_value("cursor") {
        None | Some("") => Ok(None),
        Some(c) => PageCursor::decode(c, kind)
            .map(|c| Some(c.name))
            .ok_or_else(|| ApiError::illegal_argument("cursor is invalid")),
    }
}

/// The cursor of a page of `limit` that ended at `last`: only when the page was full.
fn next_cursor(kind: CursorKind, page_len: usize, limit: u32, last: Option<&str>) -> Option<String> {
    (page_len == limit as usize).then(|| last.map(|l| PageCursor::new(0, l).encode(kind))).flatten()
}

/// `GET /{org}/{app}/user/{username}/contacts?limit=&cursor=&needReturnRemark=` (also under
/// `/users/`) — one page of contacts with their remarks (SDK `getContactsWithCursor`).
#[utoipa::path(
    get,
    path = "/{org}/{app}/user/{username}/contacts",
    tag = "contacts",
    params(doc::UserPath, doc::PageQuery),
    responses(
        (status = 200, description = "A page of contacts in name order; `data.cursor` while more remain.", body = ContactPageResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn page_contacts(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let owner = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let limit = page_size(&api, 10, 50)?;
    let after = cursor_after(&api, CursorKind::Contacts)?;
    let page = state.store.contacts(api.app.id, &owner.username, after.as_deref(), limit).await?;
    let total = state.store.contact_count(api.app.id, &owner.username).await?;
    let mut data = json!({"contacts": page.iter().map(entry).collect::<Vec<_>>()});
    if let Some(c) = next_cursor(CursorKind::Contacts, page.len(), limit, page.last().map(|c| c.peer.as_str())) {
        data["cursor"] = c.into();
    }
    let path = format!("/users/{}/contacts", owner.username);
    Ok(api
        .envelope("get", &path, &path)
        .set("data", data)
        .set("count", total)
        .set("entities", Vec::<Value>::new())
        .set_opt("params", api.params()))
}

/// `GET /{org}/{app}/users/{username}/blocks/users?pageSize=&cursor=` — the blocklist; without
/// `pageSize` all of it (at most 500).
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/blocks/users",
    tag = "contacts",
    params(doc::UserPath, doc::PageQuery),
    responses(
        (status = 200, description = "Blocked users in name order; `cursor` while more remain.", body = NamesResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list_blocked(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    let owner = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let limit = page_size(&api, MAX_BLOCKED as u32, MAX_BLOCKED as u32)?;
    let after = cursor_after(&api, CursorKind::Blocklist)?;
    let names = state.store.blocklist(api.app.id, &owner.username, after.as_deref(), limit).await?;
    let cursor = next_cursor(CursorKind::Blocklist, names.len(), limit, names.last().map(String::as_str));
    let path = format!("/users/{}/blocks/users", owner.username);
    Ok(api
        .envelope("get", &path, &path)
        .set("count", names.len())
        .set("data", names)
        .set("entities", Vec::<Value>::new())
        .set_opt("cursor", cursor)
        .set_opt("params", api.params()))
}

/// `{"usernames": [...]}` as normalized names (400 if missing, not strings, or over
/// [`MAX_BLOCKED`]); invalid names are dropped, as unknown users are.
fn usernames(body: &Value) -> ApiResult<Vec<String>> {
    let Some(list) = body.get("usernames").and_then(Value::as_array) else {
        return Err(ApiError::illegal_argument("usernames is required"));
    };
    if list.len() > MAX_BLOCKED as usize {
        return Err(ApiError::illegal_argument(format!("at most {MAX_BLOCKED} usernames at once")));
    }
    let mut names = Vec::with_capacity(list.len());
    for v in list {
        let name = v.as_str().ok_or_else(ApiError::invalid_body)?;
        if let Ok(n) = missive_core::model::normalize_username(name)
            && !names.contains(&n)
        {
            names.push(n);
        }
    }
    Ok(names)
}

/// Blocks those of `names` that are users of the app (not the owner); returns them.
async fn block_names(state: &AppState, api: &Api, owner: &User, names: Vec<String>) -> ApiResult<Vec<String>> {
    let mut known = state.store.existing_users(api.app.id, &names).await?;
    known.retain(|n| *n != owner.username);
    let have = state.store.blocked_count(api.app.id, &owner.username).await?;
    if have + known.len() as u64 > MAX_BLOCKED {
        return Err(over_limit(&format!("the blocklist of {}", owner.username), MAX_BLOCKED));
    }
    state.store.block(api.app.id, &owner.username, &known, now_ms() as i64).await?;
    // In request order, as the caller listed them.
    Ok(names.into_iter().filter(|n| known.contains(n)).collect())
}

/// `POST /{org}/{app}/users/{username}/blocks/users` — `{"usernames": [...]}`; `data` names
/// the users now blocked (unknown users are left out).
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/blocks/users",
    tag = "contacts",
    params(doc::UserPath),
    request_body = Usernames,
    responses(
        (status = 200, description = "The users blocked.", body = NamesResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn block_users(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    let owner = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let blocked = block_names(&state, &api, &owner, usernames(&body)?).await?;
    let path = format!("/users/{}/blocks/users", owner.username);
    Ok(api.envelope("post", &path, &path).set("entities", Vec::<Value>::new()).set("data", blocked))
}

/// `DELETE /{org}/{app}/users/{username}/blocks/users/{peer}` — unblocks one user; `entities`
/// holds them.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/users/{username}/blocks/users/{peer}",
    tag = "contacts",
    params(PairPath),
    responses(
        (status = 200, description = "Not blocked (also when they were not).", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn unblock_user(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, peer)): Path<(String, String, String, String)>,
) -> ApiResult<Envelope> {
    let (owner, peer) = pair(&state, &api, &name, &peer).await?;
    state.store.unblock(api.app.id, &owner.username, std::slice::from_ref(&peer.username)).await?;
    let path = format!("/users/{}/blocks", owner.uuid);
    Ok(api.envelope("delete", &path, &path).set("entities", vec![user_entity(&peer)]))
}

/// `POST /{org}/{app}/sdk/user/{username}/blocks?resource=` — SDK 5 `addUsersToBlocklist`,
/// `{"usernames": [...]}`.
#[utoipa::path(
    post,
    path = "/{org}/{app}/sdk/user/{username}/blocks",
    tag = "contacts",
    params(doc::UserPath),
    request_body = Usernames,
    responses(
        (status = 200, description = "The users blocked.", body = NamesResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn sdk_block(
    state: State<AppState>,
    api: Api,
    path: Path<(String, String, String)>,
    body: JsonBody,
) -> ApiResult<Envelope> {
    block_users(state, api, path, body).await
}

/// `DELETE /{org}/{app}/sdk/user/{username}/blocks?resource=` — SDK 5
/// `removeUserFromBlocklist`, `{"usernames": [...]}` in the body of the DELETE.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/sdk/user/{username}/blocks",
    tag = "contacts",
    params(doc::UserPath),
    request_body = Usernames,
    responses(
        (status = 200, description = "The users unblocked.", body = NamesResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn sdk_unblock(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    let owner = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let names = usernames(&body)?;
    state.store.unblock(api.app.id, &owner.username, &names).await?;
    let path = format!("/users/{}/blocks/users", owner.username);
    Ok(api.envelope("delete", &path, &path).set("entities", Vec::<Value>::new()).set("data", names))
}

/// `GET /{org}/{app}/user/{username}/roster/metadata/version` — the user's roster version
/// (SDK 5 asks at every login, then syncs the roster over the gateway).
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
    let user = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let version = state.store.roster_version(api.app.id, &user.username).await?;
    let now = now_ms();
    Ok(axum::Json(json!({
        "data": {"version": version.to_string(), "need_sync": true, "checkedAt": now},
        "timestamp": now,
        "duration": api.started.elapsed().as_millis() as u64,
    }))
    .into_response())
}

/// `PUT /{org}/{app}/users/{username}/contacts/users/{peer}?resource=` — the path the Web
/// SDK's `setContactRemark` uses for [`set_remark`].
#[utoipa::path(
    put,
    path = "/{org}/{app}/users/{username}/contacts/users/{peer}",
    tag = "contacts",
    params(PairPath),
    request_body = Remark,
    responses(
        (status = 200, description = "Remark set.", body = RemarkResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn sdk_set_remark(
    state: State<AppState>,
    api: Api,
    path: Path<(String, String, String, String)>,
    body: JsonBody,
) -> ApiResult<Response> {
    set_remark(state, api, path, body).await
}

/// `GET /{org}/{app}/users/{username}/contacts?needReturnRemark=true&limit=&cursor=` — the
/// path the Web SDK's `getContactsWithCursor` uses for [`page_contacts`].
#[utoipa::path(
    get,
    path = "/{org}/{app}/users/{username}/contacts",
    tag = "contacts",
    params(doc::UserPath, doc::PageQuery),
    responses(
        (status = 200, description = "A page of contacts in name order; `data.cursor` while more remain.", body = ContactPageResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn sdk_page_contacts(
    state: State<AppState>,
    api: Api,
    path: Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    page_contacts(state, api, path).await
}

/// `POST /{org}/{app}/users/{username}/contacts/apply?resource=` — `{"usernames": [peer],
/// "reason": "…"}`: the SDKs' `addContact`. The invitation is stored and the peer's devices
/// get `onContactInvited`; an unknown peer or oneself is reported in `data`, as Easemob does.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/contacts/apply",
    tag = "contacts",
    params(doc::UserPath),
    request_body = Usernames,
    responses(
        (status = 200, description = "Invited; `data.notExistUsers` / `data.applyYourselfUsers` name the refused.", body = Object),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn apply(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    let owner = path_user_for_self_or_admin(&state, &api, &name, "/users").await?;
    let names = usernames(&body)?;
    let reason = body.get("reason").and_then(Value::as_str).unwrap_or("");
    let known = state.store.existing_users(api.app.id, &names).await?;
    let (mut yourself, mut missing) = (Vec::new(), Vec::new());
    for peer in &names {
        if *peer == owner.username {
            yourself.push(json!({"username": peer, "failReason": "user cannot apply to become a new friend"}));
        } else if !known.contains(peer) {
            missing.push(json!({"username": peer, "failReason": "the users not exist"}));
        } else if !state.store.is_blocked(api.app.id, peer, &owner.username).await? {
            // A user who blocked the requester never hears of it (Easemob: a blocked user
            // cannot send friend requests); the requester is not told either.
            state.store.add_request(api.app.id, &owner.username, peer, reason, now_ms() as i64).await?;
            roster_event(&state, &api, peer, &owner.username, Operation::Add, reason, None);
        }
    }
    let mut data = serde_json::Map::new();
    if !yourself.is_empty() {
        data.insert("applyYourselfUsers".into(), yourself.into());
    }
    if !missing.is_empty() {
        data.insert("notExistUsers".into(), missing.into());
    }
    let path = format!("/users/{}/contacts/apply", owner.username);
    Ok(api.envelope("post", &path, &path).set("data", Value::Object(data)))
}

/// `POST /{org}/{app}/users/{username}/contacts/accept/users/{peer}?resource=` — the SDKs'
/// `acceptContactInvite`: `{peer}` invited `{username}`; they become contacts and the
/// requester's devices get `onContactAgreed`. 404 `entity_not_found` without an invitation.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/contacts/accept/users/{peer}",
    tag = "contacts",
    params(PairPath),
    responses(
        (status = 200, description = "They are contacts.", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn accept(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, peer)): Path<(String, String, String, String)>,
) -> ApiResult<Envelope> {
    let (owner, requester) = answer_invitation(&state, &api, &name, &peer).await?;
    state.store.add_contact(api.app.id, &owner.username, &requester.username, now_ms() as i64).await?;
    roster_event(&state, &api, &requester.username, &owner.username, Operation::RemoteAccept, "", None);
    // The owner's other devices learn that the contact was added.
    let here = api.query_value("resource");
    roster_event(&state, &api, &owner.username, &requester.username, Operation::Accept, "", here);
    Ok(contacts_envelope(&api, "post", &owner, &requester))
}

/// `POST /{org}/{app}/users/{username}/contacts/decline/users/{peer}?resource=` — the SDKs'
/// `declineContactInvite`: the invitation is dropped and the requester's devices get
/// `onContactRefuse`. 404 `entity_not_found` without an invitation.
#[utoipa::path(
    post,
    path = "/{org}/{app}/users/{username}/contacts/decline/users/{peer}",
    tag = "contacts",
    params(PairPath),
    responses(
        (status = 200, description = "Declined.", body = doc::UsersResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn decline(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, name, peer)): Path<(String, String, String, String)>,
) -> ApiResult<Envelope> {
    let (owner, requester) = answer_invitation(&state, &api, &name, &peer).await?;
    roster_event(&state, &api, &requester.username, &owner.username, Operation::RemoteDecline, "", None);
    Ok(contacts_envelope(&api, "post", &owner, &requester))
}

/// The owner and the requester of a pending invitation `{peer}` → `{username}`, taken.
async fn answer_invitation(state: &AppState, api: &Api, owner: &str, peer: &str) -> ApiResult<(User, User)> {
    let (owner, requester) = pair(state, api, owner, peer).await?;
    if state.store.take_request(api.app.id, &requester.username, &owner.username).await?.is_none() {
        return Err(ApiError::entity_not_found(format!(
            "no contact invitation from {} to {}",
            requester.username, owner.username
        )));
    }
    Ok((owner, requester))
}
