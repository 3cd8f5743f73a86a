//! `/{org}/{app}/callbacks…` and `/{org}/{app}/msghooks…`: the app's callback rules and
//! exception storage (easemob-api.md §6, docs/callbacks.md). App token only.
//!
//! Post-send rules use the shape Easemob's console sends (captured, §6.3): `name`,
//! `targetUrl`, `secret`, `msgTypes` (`chat`, `chat_offline`), `interested` (conversation
//! kinds and the events `recall`, `read_ack`), `acceptRestMessage`, `status`; Missive adds
//! `types` (message types) and `retry` (`backoff_ms`, `keep_exceptions`). Pre-send rules
//! (`/msghooks`, whose body Easemob never showed) take the CLI's fields. The storage
//! endpoints are Easemob's documented `storage/info` and `storage/retry`.

use axum::extract::{Path, State};
use missive_core::id::now_ms;
use missive_core::store::NotifyRuleKind;
use missive_notify::callback::exceptions::RetryRequest;
use missive_notify::callback::policy::RetryPolicy;
use missive_notify::callback::{CallbackEvent, CallbackRule, NewCallbackRule};
use missive_notify::event::ChatType;
use missive_notify::presend::PreSendRule;
use serde_json::{Map, Value, json};

use super::ctx::{Api, Envelope, JsonBody};
use super::openapi as doc;
use crate::error::{ApiError, ApiResult};
use crate::notify::admin::{self, AdminError, NewPreSendRule};
use crate::state::AppState;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Store(e) => ApiError::from(e),
            AdminError::NameTaken(_) => ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "duplicate_unique_property_exists",
                "DuplicateUniquePropertyExistsException",
                e.to_string(),
            ),
            other => ApiError::illegal_argument(other.to_string()),
        }
    }
}

/// `{org}/{app}` plus a rule's id or name.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RulePath {
    /// Organization name.
    pub org: String,
    /// App name.
    pub app: String,
    /// The rule's id or name.
    pub rule: String,
}

const CHAT_TYPES: [ChatType; 3] = [ChatType::Chat, ChatType::GroupChat, ChatType::ChatRoom];

/// A post-send rule as the console shows it.
fn callback_json(rule: &CallbackRule, created: i64, banned_until: Option<i64>) -> Value {
    let mut msg_types = Vec::new();
    let mut interested: Vec<&str> = if rule.chat_types.is_empty() {
        CHAT_TYPES.iter().map(|c| c.as_str()).collect()
    } else {
        rule.chat_types.iter().map(|c| c.as_str()).collect()
    };
    for e in &rule.events {
        match e {
            CallbackEvent::Chat | CallbackEvent::ChatOffline => msg_types.push(e.as_str()),
            CallbackEvent::Recall | CallbackEvent::ReadAck => interested.push(e.as_str()),
        }
    }
    json!({
        "id": rule.id, "name": rule.name, "targetUrl": rule.url, "secret": rule.secret,
        "msgTypes": msg_types, "interested": interested, "acceptRestMessage": rule.include_rest,
        "status": u8::from(rule.enabled), "types": rule.msg_types, "retry": rule.retry,
        "created": created, "bannedUntil": banned_until,
    })
}

fn strings(body: &Map<String, Value>, key: &str) -> ApiResult<Option<Vec<String>>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::illegal_argument(format!("{key} must hold strings")))
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::illegal_argument(format!("{key} must be an array"))),
    }
}

fn text(body: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::illegal_argument(format!("{key} must be a string"))),
    }
}

fn flag(body: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 1) => Ok(Some(n.as_u64() == Some(1))),
        Some(_) => Err(ApiError::illegal_argument(format!("{key} must be a boolean"))),
    }
}

/// Reads a console-shaped body into a new rule and whether it is enabled (`status`).
fn parse_callback(body: &Map<String, Value>) -> ApiResult<(NewCallbackRule, bool)> {
    let url = text(body, "targetUrl")?
        .or(text(body, "url")?)
        .ok_or_else(|| ApiError::illegal_argument("targetUrl is required"))?;
    let mut events: Vec<CallbackEvent> = Vec::new();
    for t in strings(body, "msgTypes")?.unwrap_or_else(|| vec!["chat".into(), "chat_offline".into()]) {
        match CallbackEvent::parse(&t) {
            Some(e @ (CallbackEvent::Chat | CallbackEvent::ChatOffline)) => events.push(e),
            _ => return Err(ApiError::illegal_argument(format!("msgTypes: unknown value {t:?} (chat, chat_offline)"))),
        }
    }
    let mut chat_types = Vec::new();
    match strings(body, "interested")? {
        None => events.extend([CallbackEvent::Recall, CallbackEvent::ReadAck]),
        Some(list) => {
            for i in list {
                if let Some(c) = ChatType::parse(&i) {
                    chat_types.push(c);
                } else if let Some(e @ (CallbackEvent::Recall | CallbackEvent::ReadAck)) = CallbackEvent::parse(&i) {
                    events.push(e);
                }
                // Easemob's other kinds (muc, roster, userStatus, …) are accepted and unused.
            }
        }
    }
    if CHAT_TYPES.iter().all(|c| chat_types.contains(c)) {
        chat_types.clear();
    }
    let retry = match body.get("retry") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<RetryPolicy>(v.clone())
                .map_err(|e| ApiError::illegal_argument(format!("retry: {e}")))?,
        ),
    };
    let enabled = match body.get("status") {
        None | Some(Value::Null) => true,
        Some(v) => match v.as_u64() {
            Some(s @ (0 | 1)) => s == 1,
            _ => return Err(ApiError::illegal_argument("status must be 0 or 1")),
        },
    };
    let new = NewCallbackRule {
        url,
        name: text(body, "name")?,
        secret: text(body, "secret")?,
        events: Some(events),
        msg_types: strings(body, "types")?,
        chat_types: Some(chat_types),
        include_rest: flag(body, "acceptRestMessage")?,
        retry,
    };
    Ok((new, enabled))
}

/// `POST /{org}/{app}/callbacks` — adds a post-send rule.
#[utoipa::path(
    post,
    path = "/{org}/{app}/callbacks",
    tag = "callbacks",
    params(doc::AppPath),
    request_body(content = Object, description = "`name`, `targetUrl` (required), `secret`, `msgTypes`, `interested`, `acceptRestMessage`, `status`, and Missive's `types` and `retry`."),
    responses(
        (status = 200, description = "`entities`: the rule, with its id and secret.", body = Object),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn add_callback(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Envelope> {
    api.require_admin("/callbacks")?;
    let (new, enabled) = parse_callback(body.as_object().ok_or_else(ApiError::invalid_body)?)?;
    let rule = admin::add_callback(&*state.store, api.app.id, new, enabled).await?;
    let entity = callback_json(&rule, now_ms() as i64, None);
    Ok(api.envelope("post", "/callbacks", "/callbacks").set("entities", vec![entity]).set("count", 1))
}

/// `GET /{org}/{app}/callbacks` — the app's post-send rules, oldest first.
#[utoipa::path(
    get,
    path = "/{org}/{app}/callbacks",
    tag = "callbacks",
    params(doc::AppPath),
    responses(
        (status = 200, description = "`entities`: every rule, with `bannedUntil` while its endpoint is banned.", body = Object),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list_callbacks(State(state): State<AppState>, api: Api) -> ApiResult<Envelope> {
    api.require_admin("/callbacks")?;
    let bans = admin::bans(&*state.store).await?;
    let rules: Vec<Value> = admin::callbacks(&*state.store, api.app.id)
        .await?
        .iter()
        .map(|(r, created)| callback_json(r, *created, bans.get(&r.id).copied()))
        .collect();
    let count = rules.len();
    Ok(api.envelope("get", "/callbacks", "/callbacks").set("entities", rules).set("count", count))
}

/// `PUT /{org}/{app}/callbacks/{rule}` — changes the fields given; the rest stay.
#[utoipa::path(
    put,
    path = "/{org}/{app}/callbacks/{rule}",
    tag = "callbacks",
    params(RulePath),
    request_body(content = Object, description = "Any fields of `POST /callbacks`."),
    responses(
        (status = 200, description = "`entities`: the changed rule.", body = Object),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn update_callback(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, key)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope> {
    api.require_admin("/callbacks")?;
    let changes = body.as_object().ok_or_else(ApiError::invalid_body)?;
    let rules = admin::callbacks(&*state.store, api.app.id).await?;
    let (old, created) =
        rules.into_iter().find(|(r, _)| r.id == key || r.name == key).ok_or_else(ApiError::resource_not_found)?;
    let mut merged = callback_json(&old, created, None).as_object().cloned().unwrap_or_default();
    merged.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
    let (new, enabled) = parse_callback(&merged)?;
    let mut rule = CallbackRule::create(new, &old.id).map_err(AdminError::from)?;
    rule.enabled = enabled;
    admin::save_callback(&*state.store, api.app.id, &rule, created).await?;
    let entity = callback_json(&rule, created, None);
    Ok(api.envelope("put", "/callbacks", &format!("/callbacks/{key}")).set("entities", vec![entity]))
}

/// `DELETE /{org}/{app}/callbacks/{rule}` — removes a post-send rule by id or name.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/callbacks/{rule}",
    tag = "callbacks",
    params(RulePath),
    responses(
        (status = 200, description = "Removed.", body = Object),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn remove_callback(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, key)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    remove(&state, &api, NotifyRuleKind::PostSend, "/callbacks", &key).await
}

/// Removes the app's rule of `kind` named `key` (id or name) under `resource`.
async fn remove(state: &AppState, api: &Api, kind: NotifyRuleKind, resource: &str, key: &str) -> ApiResult<Envelope> {
    api.require_admin(resource)?;
    if !admin::remove_rule(&*state.store, api.app.id, kind, key).await? {
        return Err(ApiError::resource_not_found());
    }
    Ok(api.envelope("delete", resource, &format!("{resource}/{key}")).set("data", json!({"deleted": key})))
}

/// `GET /{org}/{app}/callbacks/storage/info` — exception storage by 10-minute slice.
#[utoipa::path(
    get,
    path = "/{org}/{app}/callbacks/storage/info",
    tag = "callbacks",
    params(doc::AppPath),
    responses(
        (status = 200, description = "`data`: `[{date, size, retry}]`, oldest slice first.", body = Object),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn storage_info(State(state): State<AppState>, api: Api) -> ApiResult<Envelope> {
    api.require_admin("/callbacks/storage/info")?;
    let slices: Vec<Value> = state
        .store
        .exception_slices(api.app.id)
        .await?
        .into_iter()
        .map(|s| json!({"date": s.date_key, "size": s.size, "retry": s.retries}))
        .collect();
    Ok(api.envelope("get", "/callbacks/storage/info", "/callbacks/storage/info").set("data", slices))
}

/// `POST /{org}/{app}/callbacks/storage/retry` — re-sends one slice.
#[utoipa::path(
    post,
    path = "/{org}/{app}/callbacks/storage/retry",
    tag = "callbacks",
    params(doc::AppPath),
    request_body(content = Object, description = "`date` (a slice's `yyyyMMddHHmm`), `retry`, optional `targetUrl`."),
    responses(
        (status = 200, description = "`data`: `success`; the slice's callbacks are on their way.", body = Object),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn storage_retry(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Envelope> {
    api.require_admin("/callbacks/storage/retry")?;
    let offset = state.config.callbacks.date_key_utc_offset_minutes;
    let req = RetryRequest::parse(&body, offset).map_err(ApiError::illegal_argument)?;
    let n =
        state.store.retry_exception_slice(api.app.id, &req.date, req.target_url.as_deref(), now_ms() as i64).await?;
    if n == 0 {
        return Err(ApiError::illegal_argument(format!("no callbacks are stored for date {}", req.date)));
    }
    state.notifier.wake();
    Ok(api.envelope("post", "/callbacks/storage/retry", "/callbacks/storage/retry").set("data", "success"))
}

fn presend_json(rule: &PreSendRule) -> Value {
    json!({
        "id": rule.id, "name": rule.name, "targetUrl": rule.url, "secret": rule.secret,
        "types": rule.msg_types, "chatTypes": rule.chat_types, "timeoutMs": rule.timeout_ms,
        "onFailure": if rule.pass_on_failure { "pass" } else { "block" }, "reportError": rule.report_error,
        "status": u8::from(rule.enabled),
    })
}

/// `POST /{org}/{app}/msghooks` — adds a pre-send rule.
#[utoipa::path(
    post,
    path = "/{org}/{app}/msghooks",
    tag = "callbacks",
    params(doc::AppPath),
    request_body(content = Object, description = "`targetUrl` (required), `name`, `secret`, `types`, `chatTypes`, `timeoutMs` (default 200), `onFailure` (`pass`|`block`), `reportError`, `status`."),
    responses(
        (status = 200, description = "`entities`: the rule, with its id and secret.", body = Object),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn add_presend(State(state): State<AppState>, api: Api, JsonBody(body): JsonBody) -> ApiResult<Envelope> {
    api.require_admin("/msghooks")?;
    let b = body.as_object().ok_or_else(ApiError::invalid_body)?;
    let chat_types = match strings(b, "chatTypes")? {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|c| {
                    ChatType::parse(c).ok_or_else(|| ApiError::illegal_argument(format!("chatTypes: unknown {c:?}")))
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
    };
    let pass_on_failure = match text(b, "onFailure")?.as_deref() {
        None => None,
        Some("pass") => Some(true),
        Some("block") => Some(false),
        Some(_) => return Err(ApiError::illegal_argument("onFailure must be pass or block")),
    };
    let timeout_ms = match b.get("timeoutMs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| ApiError::illegal_argument("timeoutMs must be a number"))?),
    };
    let new = NewPreSendRule {
        url: text(b, "targetUrl")?
            .or(text(b, "url")?)
            .ok_or_else(|| ApiError::illegal_argument("targetUrl is required"))?,
        name: text(b, "name")?,
        secret: text(b, "secret")?,
        msg_types: strings(b, "types")?,
        chat_types,
        timeout_ms,
        pass_on_failure,
        report_error: flag(b, "reportError")?,
        enabled: flag(b, "status")?,
    };
    let rule = admin::add_presend(&*state.store, api.app.id, new).await?;
    Ok(api.envelope("post", "/msghooks", "/msghooks").set("entities", vec![presend_json(&rule)]).set("count", 1))
}

/// `GET /{org}/{app}/msghooks` — the app's pre-send rules.
#[utoipa::path(
    get,
    path = "/{org}/{app}/msghooks",
    tag = "callbacks",
    params(doc::AppPath),
    responses(
        (status = 200, description = "`entities`: every pre-send rule.", body = Object),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list_presend(State(state): State<AppState>, api: Api) -> ApiResult<Envelope> {
    api.require_admin("/msghooks")?;
    let rules: Vec<Value> = admin::presends(&*state.store, api.app.id).await?.iter().map(presend_json).collect();
    let count = rules.len();
    Ok(api.envelope("get", "/msghooks", "/msghooks").set("entities", rules).set("count", count))
}

/// `DELETE /{org}/{app}/msghooks/{rule}` — removes a pre-send rule by id or name.
#[utoipa::path(
    delete,
    path = "/{org}/{app}/msghooks/{rule}",
    tag = "callbacks",
    params(RulePath),
    responses(
        (status = 200, description = "Removed.", body = Object),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn remove_presend(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, key)): Path<(String, String, String)>,
) -> ApiResult<Envelope> {
    remove(&state, &api, NotifyRuleKind::PreSend, "/msghooks", &key).await
}
