//! `/{org}/{app}/messages…`: the one-to-one send API, its legacy form, and recall.
//! Easemob docs: "发送单聊消息" (seed page) and easemob-api.md §4.
//!
//! A request is validated in the order Easemob checks it (size, envelope fields, recipient
//! count, per-type body, content size, quotas), turned into one MSYNC `MessageBody`, and
//! handed to `AppState::send`, the path every message takes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use missive_core::id::{MsgId, now_ms};
use missive_core::model::App;
use missive_core::store::RecallOutcome;
use missive_msync::ext::json_to_key_values;
use missive_msync::pb;
use missive_msync::pb::message_body::content::Type as ContentType;
use serde_json::{Map, Value, json};

use super::ctx::{Api, Envelope, JsonBody, SendBody};
use super::openapi as doc;
use crate::delivery::Outgoing;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Characters allowed in `customEvent` (`[a-zA-Z0-9-_/\.]{1,32}`).
fn custom_event_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'.'))
}

const MAX_CUSTOM_EXTS: usize = 16;

/// The parts of a send request shared by the current and the legacy API.
struct SendRequest {
    from: String,
    to: Vec<String>,
    msg_type: String,
    body: Map<String, Value>,
    ext: Map<String, Value>,
    route_online: bool,
    sync_device: bool,
    /// What the content limit measures: the compact JSON of `body` (legacy: `msg`) as sent,
    /// plus that of `ext` when present, in bytes.
    content_bytes: usize,
}

/// Bytes of `v`'s compact JSON serialization (whitespace of the request does not count).
fn compact_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

fn opt_bool(v: Option<&Value>) -> ApiResult<bool> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid_body()),
    }
}

fn string_list(v: &Value) -> ApiResult<Vec<String>> {
    v.as_array()
        .ok_or_else(ApiError::invalid_body)?
        .iter()
        .map(|x| x.as_str().map(str::to_owned).ok_or_else(ApiError::invalid_body))
        .collect()
}

/// Validates the common envelope: `from`, `to`, `type`, `body`, `ext`, `routetype`,
/// `sync_device`, `roam_ignore_users`.
fn parse_envelope(
    obj: &Map<String, Value>,
    to_key: &str,
    body: Option<&Value>,
    state: &AppState,
) -> ApiResult<SendRequest> {
    let from = match obj.get("from") {
        None | Some(Value::Null) => "admin".to_owned(),
        Some(Value::String(s)) if s.is_empty() => return Err(ApiError::send_error("param from can't be empty")),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(_) => return Err(ApiError::invalid_body()),
    };
    let to = match obj.get(to_key) {
        None | Some(Value::Null) => return Err(ApiError::send_error("param to can't be empty")),
        Some(v) => string_list(v)?,
    };
    if to.is_empty() {
        return Err(ApiError::send_error("param to can't be empty"));
    }
    let content_bytes = body.map_or(0, compact_len) + obj.get("ext").map_or(0, compact_len);
    let max = state.config.limits.max_recipients;
    if to.len() > max {
        return Err(ApiError::send_error(format!("params to's size can't exceed limit {max}")));
    }
    if to.iter().any(|t| t.is_empty()) {
        return Err(ApiError::send_error("param to can't be empty"));
    }
    let (msg_type, body) = match body {
        Some(Value::Object(b)) => {
            let t = match obj.get("type").or_else(|| b.get("type")) {
                Some(Value::String(t)) => t.clone(),
                None | Some(Value::Null) => String::new(),
                Some(_) => return Err(ApiError::invalid_body()),
            };
            let mut b = b.clone();
            b.remove("type");
            (t, b)
        }
        None | Some(Value::Null) => {
            (obj.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(), Map::new())
        }
        Some(_) => return Err(ApiError::invalid_body()),
    };
    if msg_type.is_empty() {
        return Err(ApiError::send_error("param type can't be empty"));
    }
    if body.is_empty() && msg_type != "custom" {
        return Err(ApiError::send_error("param body can't be empty"));
    }
    let ext = match obj.get("ext") {
        None => Map::new(),
        Some(Value::Object(e)) => e.clone(),
        Some(_) => return Err(ApiError::send_error("param ext must be JSONObject")),
    };
    let route_online = match obj.get("routetype") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "ROUTE_ONLINE" => true,
        Some(Value::String(s)) if s.is_empty() || s == "ROUTE_ALL" => false,
        Some(_) => return Err(ApiError::invalid_body()),
    };
    let sync_device = opt_bool(obj.get("sync_device"))?;
    if let Some(v) = obj.get("roam_ignore_users").filter(|v| !v.is_null()) {
        string_list(v)?;
    }
    Ok(SendRequest {
        from,
        to: to.into_iter().map(|t| t.to_ascii_lowercase()).collect(),
        msg_type,
        body,
        ext,
        route_online,
        sync_device,
        content_bytes,
    })
}

fn str_field(body: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_body()),
    }
}

fn required_str(body: &Map<String, Value>, key: &str) -> ApiResult<String> {
    str_field(body, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::send_error(format!("param body.{key} can't be empty")))
}

/// Numbers that Easemob's examples send either as JSON numbers or as strings.
fn number_field(body: &Map<String, Value>, key: &str) -> ApiResult<Option<f64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ApiError::invalid_body()),
        Some(_) => Err(ApiError::invalid_body()),
    }
}

fn int_field(body: &Map<String, Value>, key: &str) -> ApiResult<Option<i32>> {
    Ok(number_field(body, key)?.map(|n| n.clamp(i32::MIN as f64, i32::MAX as f64) as i32))
}

/// Converts a REST `body` of the given `type` into the MSYNC content the SDKs decode
/// (PROTOCOL.md §5: `url`→`remote_path`, `filename`→`display_name`, `length`→`duration`, …).
fn content_for(msg_type: &str, body: &Map<String, Value>) -> ApiResult<pb::message_body::Content> {
    let mut c = pb::message_body::Content::default();
    let file_fields = |c: &mut pb::message_body::Content| -> ApiResult<()> {
        c.remote_path = Some(required_str(body, "url")?);
        c.display_name = str_field(body, "filename")?;
        c.secret_key = str_field(body, "secret")?;
        c.file_length = int_field(body, "file_length")?;
        Ok(())
    };
    match msg_type {
        "txt" => {
            c.set_type(ContentType::Text);
            c.text =
                Some(str_field(body, "msg")?.ok_or_else(|| ApiError::send_error("param body.msg can't be empty"))?);
        }
        "img" => {
            c.set_type(ContentType::Image);
            file_fields(&mut c)?;
            if let Some(size) = body.get("size").filter(|v| !v.is_null()) {
                let size = size.as_object().ok_or_else(ApiError::invalid_body)?;
                c.size = Some(pb::message_body::content::Size {
                    width: number_field(size, "width")?,
                    height: number_field(size, "height")?,
                });
            }
        }
        "audio" => {
            c.set_type(ContentType::Voice);
            file_fields(&mut c)?;
            c.duration = int_field(body, "length")?.or(int_field(body, "Length")?);
        }
        "video" => {
            c.set_type(ContentType::Video);
            file_fields(&mut c)?;
            c.duration = int_field(body, "length")?;
            c.thumbnail_remote_path = str_field(body, "thumb")?;
            c.thumbnail_secret_key = str_field(body, "thumb_secret")?;
        }
        "file" => {
            c.set_type(ContentType::File);
            file_fields(&mut c)?;
        }
        "loc" => {
            c.set_type(ContentType::Location);
            c.latitude =
                Some(number_field(body, "lat")?.ok_or_else(|| ApiError::send_error("param body.lat can't be empty"))?);
            c.longitude =
                Some(number_field(body, "lng")?.ok_or_else(|| ApiError::send_error("param body.lng can't be empty"))?);
            c.address = Some(str_field(body, "addr")?.unwrap_or_default());
            c.building_name = str_field(body, "buildingName")?;
        }
        "cmd" => {
            c.set_type(ContentType::Command);
            c.action = Some(required_str(body, "action")?);
        }
        "custom" => {
            c.set_type(ContentType::Custom);
            if let Some(ev) = str_field(body, "customEvent")? {
                if !custom_event_ok(&ev) {
                    return Err(ApiError::send_error("param customEvent must match [a-zA-Z0-9-_/\\.]{1,32}"));
                }
                c.custom_event = Some(ev);
            }
            match body.get("customExts") {
                None | Some(Value::Null) => {}
                Some(Value::Object(exts)) => {
                    if exts.len() > MAX_CUSTOM_EXTS {
                        return Err(ApiError::send_error("param customExts can't have more than 16 entries"));
                    }
                    if exts.values().any(|v| !v.is_string()) {
                        return Err(ApiError::send_error("param customExts must be Map<String,String>"));
                    }
                    c.custom_exts = json_to_key_values(exts);
                }
                Some(_) => return Err(ApiError::send_error("param customExts must be Map<String,String>")),
            }
        }
        _ => return Err(ApiError::send_error(format!("param type {msg_type} is not supported"))),
    }
    Ok(c)
}

/// Validates a parsed request, applies quotas and sends it; returns per-recipient ids.
/// Reads the optional `Idempotency-Key` header (a Missive extension).
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    match v.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(k.to_owned())),
        _ => Err(ApiError::illegal_argument("Idempotency-Key must be 1 to 255 visible ASCII characters")),
    }
}

/// `send_request`, made idempotent by `key`: the first request with a key sends and records
/// its ids in the same transaction as its messages; a retry within
/// `messages.idempotency_ttl_secs` (also after a restart) gets the same ids and sends
/// nothing. Concurrent requests with one key are serialized on this node.
async fn send_once(
    state: &AppState,
    app: &Arc<App>,
    req: SendRequest,
    key: Option<String>,
) -> ApiResult<Vec<(String, MsgId)>> {
    let Some(key) = key else { return send_request(state, app, req, None).await };
    let slot = (app.id, key.clone());
    let lock = state.idempotency_locks.entry(slot.clone()).or_default().clone();
    let result = {
        let _guard = lock.lock().await;
        let window_start =
            now_ms().saturating_sub(state.config.messages.idempotency_ttl_secs.saturating_mul(1000)) as i64;
        match state.store.idempotency_record(app.id, &key).await? {
            Some(record) if record.created >= window_start => {
                let data: Map<String, Value> =
                    serde_json::from_str(&record.response).map_err(|_| ApiError::internal())?;
                Ok(data.into_iter().filter_map(|(u, id)| Some((u, MsgId(id.as_str()?.parse().ok()?)))).collect())
            }
            _ => send_request(state, app, req, Some(&key)).await,
        }
    };
    drop(lock);
    state.idempotency_locks.remove_if(&slot, |_, l| Arc::strong_count(l) == 1);
    result
}

async fn send_request(
    state: &AppState,
    app: &Arc<App>,
    req: SendRequest,
    key: Option<&str>,
) -> ApiResult<Vec<(String, MsgId)>> {
    let content = content_for(&req.msg_type, &req.body)?;
    if req.content_bytes > state.config.limits.message_content_bytes {
        return Err(ApiError::send_error("message is too large").with_code(14007));
    }
    if !state.send_calls.try_take(app.id, 1) {
        return Err(ApiError::reach_limit());
    }
    if !state.send_messages.try_take(app.id, req.to.len() as u32) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "message_send_error",
            "MessageSendException",
            "message send reach limit",
        ));
    }
    // Last, as it may read the store: refused requests cost no I/O.
    let content = super::chatfiles::enrich_media(state, app, content).await;
    let mut body = pb::MessageBody { contents: vec![content], ext: json_to_key_values(&req.ext), ..Default::default() };
    body.set_type(pb::message_body::Type::Chat);
    let out = Outgoing {
        app: app.clone(),
        from: req.from,
        to: req.to,
        body,
        route_online: req.route_online,
        sync_device: req.sync_device,
        origin_resource: None,
        require_known_recipients: false,
    };
    let sent = state.send_with_key(out, key).await?.map_err(|_| ApiError::internal())?;
    Ok(sent.ids)
}

/// `POST /{org}/{app}/messages/users` — one message to up to 600 users, one id each.
#[utoipa::path(
    post,
    path = "/{org}/{app}/messages/users",
    tag = "messages",
    params(doc::AppPath, ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Missive extension: a retry with the same key within 24 h returns the same ids and sends nothing.")),
    request_body = doc::SendMessage,
    responses(
        (status = 200, description = "One message id per recipient; stored copies are on disk.", body = doc::SendResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn send_user_messages(
    State(state): State<AppState>,
    api: Api,
    headers: HeaderMap,
    SendBody(body): SendBody,
) -> ApiResult<Envelope> {
    api.require_admin("/messages/users")?;
    let key = idempotency_key(&headers)?;
    let obj = body.as_object().ok_or_else(ApiError::invalid_body)?;
    let req = parse_envelope(obj, "to", obj.get("body"), &state)?;
    let ids = send_once(&state, &api.app, req, key).await?;
    let data: Map<String, Value> = ids.into_iter().map(|(u, id)| (u, id.to_string().into())).collect();
    Ok(api.envelope("post", "/messages/users", "/messages/users").set("data", data))
}

/// `POST /{org}/{app}/messages[?useMsgId=true]` — the legacy form (`target_type`, `target`,
/// `msg`) still used by the Java SDK: `data[user]` is `"success"`, or the id with
/// `useMsgId=true`.
#[utoipa::path(
    post,
    path = "/{org}/{app}/messages",
    tag = "messages",
    params(doc::AppPath, ("useMsgId" = Option<bool>, Query, description = "`true`: `data` carries the ids instead of `success`."), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Missive extension: a retry with the same key within 24 h returns the same ids and sends nothing.")),
    request_body = doc::LegacySendMessage,
    responses(
        (status = 200, description = "`success` (or the id with `useMsgId=true`) per recipient.", body = doc::SendResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn send_legacy(
    State(state): State<AppState>,
    api: Api,
    headers: HeaderMap,
    SendBody(body): SendBody,
) -> ApiResult<Envelope> {
    api.require_admin("/messages")?;
    let key = idempotency_key(&headers)?;
    let obj = body.as_object().ok_or_else(ApiError::invalid_body)?;
    match obj.get("target_type").and_then(Value::as_str) {
        Some("users") => {}
        _ => {
            return Err(ApiError::illegal_argument("target_type can only be 'users' or 'chatgroups' or 'chatrooms'"));
        }
    }
    let req = parse_envelope(obj, "target", obj.get("msg"), &state)?;
    let ids = send_once(&state, &api.app, req, key).await?;
    let with_ids = api.query_value("useMsgId").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let data: Map<String, Value> =
        ids.into_iter().map(|(u, id)| (u, if with_ids { id.to_string().into() } else { "success".into() })).collect();
    Ok(api.envelope("post", "/messages", "/messages").set("data", data))
}

fn recall_error(status: StatusCode, description: &str) -> ApiError {
    ApiError::new(status, "message_recall_error", "MessageRecallException", description)
}

/// One recall, as both recall APIs describe it. `Ok(data)` or the failure text Easemob puts
/// in the batch response (`not_found msg`, `exceed recall time limit`, …).
async fn recall_one(state: &AppState, app: &Arc<App>, item: &Map<String, Value>) -> ApiResult<Result<Value, ApiError>> {
    let text = |k: &str| -> ApiResult<Option<String>> {
        match item.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::invalid_body()),
        }
    };
    let msg_id = text("msg_id")?.ok_or_else(|| recall_error(StatusCode::BAD_REQUEST, "param msg_id can't be empty"))?;
    let to = text("to")?
        .ok_or_else(|| recall_error(StatusCode::BAD_REQUEST, "param to can't be empty"))?
        .to_ascii_lowercase();
    let chat_type =
        text("chat_type")?.ok_or_else(|| recall_error(StatusCode::BAD_REQUEST, "param chat_type can't be empty"))?;
    let from = text("from")?.map(|f| f.to_ascii_lowercase()).unwrap_or_else(|| "admin".into());
    let force = opt_bool(item.get("force"))?;
    let Ok(id) = msg_id.parse::<u64>().map(MsgId) else {
        return Ok(Err(recall_error(StatusCode::FORBIDDEN, "not_found msg")));
    };
    if chat_type != "chat" {
        return Ok(Err(recall_error(StatusCode::FORBIDDEN, "not_found msg")));
    }
    let window = state.config.messages.recall_window_secs.saturating_mul(1000);
    if !force && now_ms().saturating_sub(id.unix_ms()) > window {
        return Ok(Err(recall_error(StatusCode::FORBIDDEN, "exceed recall time limit")));
    }
    match state.store.message(app.id, id).await? {
        None => return Ok(Err(recall_error(StatusCode::FORBIDDEN, "not_found msg"))),
        Some(m) if m.owner != to => return Ok(Err(recall_error(StatusCode::BAD_REQUEST, "can’t find msg to"))),
        Some(_) => {}
    }
    match state.store.recall(app.id, id).await? {
        RecallOutcome::NotFound => return Ok(Err(recall_error(StatusCode::FORBIDDEN, "not_found msg"))),
        RecallOutcome::RemovedUndelivered(_) => {}
        RecallOutcome::RemovedDelivered(m) => {
            // Devices already have it: tell them, in the same conversation queue.
            let mut body = pb::MessageBody { ack_message_id: Some(id.0), ..Default::default() };
            body.set_type(pb::message_body::Type::Recall);
            state
                .send(Outgoing {
                    app: app.clone(),
                    from: m.sender.clone(),
                    to: vec![m.owner.clone()],
                    body,
                    route_online: false,
                    sync_device: false,
                    origin_resource: None,
                    require_known_recipients: false,
                })
                .await?
                .map_err(|_| ApiError::internal())?;
        }
    }
    Ok(Ok(json!({"recalled": "yes", "chattype": chat_type, "from": from, "to": to, "msg_id": msg_id})))
}

/// `POST /{org}/{app}/messages/msg_recall` — recall one message.
#[utoipa::path(
    post,
    path = "/{org}/{app}/messages/msg_recall",
    tag = "messages",
    params(doc::AppPath),
    request_body = doc::RecallRequest,
    responses(
        (status = 200, description = "Recalled.", body = doc::RecallResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn recall_message(State(state): State<AppState>, api: Api, SendBody(body): SendBody) -> ApiResult<Envelope> {
    api.require_admin("/messages/msg_recall")?;
    let obj = body.as_object().ok_or_else(ApiError::invalid_body)?;
    let data = recall_one(&state, &api.app, obj).await??;
    Ok(api.envelope("post", "/messages/msg_recall", "/messages/msg_recall").set("data", data))
}

/// `POST /{org}/{app}/messages/recall` — batch recall, `{"msgs": [...]}`; each item reports
/// `recalled: "yes"` or why not.
#[utoipa::path(
    post,
    path = "/{org}/{app}/messages/recall",
    tag = "messages",
    params(doc::AppPath),
    request_body = doc::BatchRecallRequest,
    responses(
        (status = 200, description = "One result per item: `recalled` is `yes` or why not.", body = doc::BatchRecallResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn recall_messages(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Envelope> {
    api.require_admin("/messages/recall")?;
    let msgs = body.get("msgs").and_then(Value::as_array).ok_or_else(ApiError::invalid_body)?;
    let mut results = Vec::with_capacity(msgs.len());
    for item in msgs {
        let obj = item.as_object().ok_or_else(ApiError::invalid_body)?;
        let msg_id = obj.get("msg_id").map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
        let entry = match recall_one(&state, &api.app, obj).await {
            Ok(Ok(data)) => data,
            Ok(Err(e)) | Err(e) if e.status.is_client_error() => json!({"msg_id": msg_id, "recalled": e.description}),
            Ok(Err(_)) | Err(_) => json!({"msg_id": msg_id, "recalled": "internal error"}),
        };
        results.push(entry);
    }
    Ok(api.envelope("post", "/messages/recall", "/messages/recall").set("data", json!({"msgs": results})))
}
