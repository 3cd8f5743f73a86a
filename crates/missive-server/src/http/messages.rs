//! `/{org}/{app}/messages…`: the one-to-one send API, its legacy form, and recall.
//! Easemob docs: "发送单聊消息" (seed page) and easemob-api.md §4.
//!
//! A request is validated in the order Easemob checks it (size, envelope fields, recipient
//! count, per-type body, content size, quotas), turned into one MSYNC `MessageBody`, and
//! handed to `Delivery::send`, the path every message takes. The rules that need no I/O
//! (envelope, body, content size; a recall item and the recall window) live in
//! `missive-api`, where they are unit-tested and fuzzed; this module adds the idempotency
//! key, the quotas, the store lookups and the send itself.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use missive_api::{BatchRecall, RecallRefusal, RecallRequest, RequestError, SendForm, SendRequest, chat_body};
use missive_core::id::{MsgId, now_ms};
use missive_core::model::App;
use missive_core::store::RecallOutcome;
use missive_msync::pb;
use serde_json::{Map, Value};

use super::ctx::{Api, Envelope, JsonBody, SendBody, SendCapacity};
use super::openapi as doc;
use crate::delivery::{Origin, Outgoing, Route, SenderCopies, UnknownRecipients};
use crate::error::{ApiError, ApiResult};
use crate::ratelimit::QuotaVerdict;
use crate::state::AppState;
use crate::telemetry::metrics::SendVia;

/// Reads the optional `Idempotency-Key` header (a Missive extension).
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    Ok(missive_api::send::idempotency_key(headers.get("idempotency-key").map(|v| v.as_bytes()))?)
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

/// Validates the body, checks the content size, applies quotas and sends; returns the
/// per-recipient ids.
async fn send_request(
    state: &AppState,
    app: &Arc<App>,
    req: SendRequest,
    key: Option<&str>,
) -> ApiResult<Vec<(String, MsgId)>> {
    let content = req.content()?;
    req.check_size(state.config.limits.message_content_bytes)?;
    match state.quotas.check(app.id, req.to.len() as u32).await {
        QuotaVerdict::Allowed => {}
        QuotaVerdict::TooManyCalls => return Err(ApiError::reach_limit()),
        QuotaVerdict::TooManyMessages => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "message_send_error",
                "MessageSendException",
                "message send reach limit",
            ));
        }
    }
    // Last, as it may read the store: refused requests cost no I/O.
    let content = crate::media::enrich_media(state, app, content).await;
    let body = chat_body(content, &req.ext);
    let out = Outgoing {
        app: app.clone(),
        from: req.from,
        to: req.to,
        body,
        route: if req.route_online { Route::OnlineOnly } else { Route::Stored },
        copies: if req.sync_device { SenderCopies::Online { except: None } } else { SenderCopies::None },
        unknown: UnknownRecipients::Skip,
        origin: Origin::Rest,
        id: None,
        roam_ignore: req.roam_ignore_users,
    };
    Ok(state.delivery.send(out, key).await?.ids)
}

/// A REST send and its metrics: the status it is answered with, its recipients if accepted.
async fn counted(
    state: &AppState,
    send: impl Future<Output = ApiResult<Vec<(String, MsgId)>>>,
) -> ApiResult<Vec<(String, MsgId)>> {
    let result = send.await;
    let metrics = &state.telemetry.metrics;
    match &result {
        Ok(ids) => {
            metrics.send(SendVia::Rest, 200);
            metrics.send_recipients(ids.len());
        }
        Err(e) => metrics.send(SendVia::Rest, e.status.as_u16()),
    }
    result
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
    _: SendCapacity,
    headers: HeaderMap,
    SendBody(body): SendBody,
) -> ApiResult<Envelope> {
    api.require_admin("/messages/users")?;
    let key = idempotency_key(&headers)?;
    let ids = counted(&state, async {
        let req = SendRequest::parse(&body, SendForm::Users, state.config.limits.max_recipients)?;
        send_once(&state, &api.app, req, key).await
    })
    .await?;
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
    _: SendCapacity,
    headers: HeaderMap,
    SendBody(body): SendBody,
) -> ApiResult<Envelope> {
    api.require_admin("/messages")?;
    let key = idempotency_key(&headers)?;
    let ids = counted(&state, async {
        let req = SendRequest::parse(&body, SendForm::Legacy, state.config.limits.max_recipients)?;
        send_once(&state, &api.app, req, key).await
    })
    .await?;
    let with_ids = api.query_value("useMsgId").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let data: Map<String, Value> =
        ids.into_iter().map(|(u, id)| (u, if with_ids { id.to_string().into() } else { "success".into() })).collect();
    Ok(api.envelope("post", "/messages", "/messages").set("data", data))
}

fn recall_error(refusal: RecallRefusal) -> ApiError {
    RequestError::Recall(refusal).into()
}

/// One validated recall, as both recall APIs describe it. `Ok(data)` or the failure text
/// Easemob puts in the batch response (`not_found msg`, `exceed recall time limit`, …).
async fn recall_one(state: &AppState, app: &Arc<App>, req: RecallRequest) -> ApiResult<Result<Value, ApiError>> {
    let window = state.config.messages.recall_window_secs.saturating_mul(1000);
    if let Err(e) = req.check_window(now_ms(), window) {
        return Ok(Err(e.into()));
    }
    let id = req.id;
    match state.store.message(app.id, id).await? {
        None => return Ok(Err(recall_error(RecallRefusal::NotFound))),
        Some(m) if m.owner != req.to => return Ok(Err(recall_error(RecallRefusal::WrongRecipient))),
        Some(_) => {}
    }
    match state.store.recall(app.id, id).await? {
        RecallOutcome::NotFound => return Ok(Err(recall_error(RecallRefusal::NotFound))),
        RecallOutcome::RemovedUndelivered(_) => {}
        RecallOutcome::RemovedDelivered(m) => {
            // Devices already have it: tell them, in the same conversation queue.
            let mut body = pb::MessageBody { ack_message_id: Some(id.0), ..Default::default() };
            body.set_type(pb::message_body::Type::Recall);
            let notice = Outgoing {
                app: app.clone(),
                from: m.sender.clone(),
                to: vec![m.owner.clone()],
                body,
                route: Route::Stored,
                copies: SenderCopies::None,
                unknown: UnknownRecipients::Skip,
                origin: Origin::Rest,
                id: None,
                roam_ignore: Vec::new(),
            };
            state.delivery.send(notice, None).await?;
        }
    }
    Ok(Ok(req.recalled()))
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
    let req = RecallRequest::parse(&body)?;
    let data = recall_one(&state, &api.app, req).await??;
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
    let batch = BatchRecall::parse(&body)?;
    let mut results = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let outcome = match &item.request {
            Ok(req) => recall_one(&state, &api.app, req.clone()).await,
            Err(e) => Ok(Err(e.clone().into())),
        };
        let entry = match outcome {
            Ok(Ok(data)) => data,
            Ok(Err(e)) | Err(e) if e.status.is_client_error() => item.failed(&e.description),
            Ok(Err(_)) | Err(_) => item.failed("internal error"),
        };
        results.push(entry);
    }
    Ok(api.envelope("post", "/messages/recall", "/messages/recall").set("data", BatchRecall::answer(results)))
}
