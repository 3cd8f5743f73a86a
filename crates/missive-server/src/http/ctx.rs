//! What every REST handler starts from: the app named in the path, the caller's token, and
//! Easemob's success envelope.
//!
//! `Api` resolves `{org}/{app}` (404 `organization_application_not_found` if unknown) and
//! reads the bearer token, but leaves the access decision to the handler: `POST /token` and
//! open registration need no token, most calls need the app token, some accept the user's
//! own token. `Envelope` builds the Usergrid-style body (`action`, `application`, `path`,
//! `uri`, `timestamp`, `duration`, …) so handlers only say what differs.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use missive_api::query::percent_decode;
use missive_core::id::now_ms;
use missive_core::model::{App, User};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::{Principal, TokenError};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The caller's credentials, checked but not yet judged.
#[derive(Clone, Copy, Debug)]
pub enum Credentials {
    None,
    Valid(Principal),
    Invalid(TokenError),
}

/// The resolved app plus the request facts every envelope needs.
pub struct Api {
    pub app: Arc<App>,
    pub credentials: Credentials,
    pub started: Instant,
    method: Method,
    /// `scheme://host/org/app`, the base of every `uri` field.
    base_uri: String,
    /// The query string's pairs, echoed as `params` where Easemob echoes them.
    pub query: Vec<(String, String)>,
}

/// Refuses a send at once, before its body is read or parsed, when every send slot
/// (`limits.max_inflight_sends`) is taken: under overload a refusal must cost far less than
/// a send, or refusing alone eats the CPU the admitted sends need (docs/benchmarks.md,
/// "Overload"). The slot itself is taken later, in `Delivery::send`.
pub struct SendCapacity;

impl FromRequestParts<AppState> for SendCapacity {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<SendCapacity, ApiError> {
        if !state.delivery.has_capacity() {
            return Err(ApiError::unavailable("server is busy, retry later"));
        }
        Ok(SendCapacity)
    }
}

impl FromRequestParts<AppState> for Api {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Api, ApiError> {
        let started = Instant::now();
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| ApiError::route_not_found())?;
        let (mut org, mut name) = (String::new(), String::new());
        for (k, v) in &params {
            match k {
                "org" => org = v.to_owned(),
                "app" => name = v.to_owned(),
                _ => {}
            }
        }
        let Some(app) = state.apps.get(&org, &name).await? else {
            let rest = parts.uri.path().trim_start_matches('/').splitn(3, '/').nth(2).unwrap_or("");
            return Err(ApiError::app_not_found(&org, &name, rest));
        };
        let credentials = match bearer(parts) {
            None => Credentials::None,
            Some(token) => match state.auth.verify(app.id, token).await {
                Ok(p) => Credentials::Valid(p),
                Err(e) => Credentials::Invalid(e),
            },
        };
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let scheme = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|s| *s == "https" || *s == "http")
            .unwrap_or("http");
        let query = parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Api {
            base_uri: format!("{scheme}://{host}/{}/{}", app.org, app.name),
            app,
            credentials,
            started,
            method: parts.method.clone(),
            query,
        })
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
    (!token.is_empty()).then_some(token)
}

impl Api {
    /// Requires the app token. A user token gets Easemob's "Subject does not have permission"
    /// 401, naming the permission it lacked.
    pub fn require_admin(&self, resource: &str) -> ApiResult<()> {
        match self.credentials {
            Credentials::Valid(Principal::App) => Ok(()),
            Credentials::Valid(Principal::User(u)) => Err(self.permission_error(u, resource)),
            Credentials::Invalid(e) => Err(e.into()),
            Credentials::None => Err(ApiError::no_token()),
        }
    }

    /// Requires the app token or the token of `user` itself.
    pub fn require_admin_or_self(&self, user: &User, resource: &str) -> ApiResult<()> {
        match self.credentials {
            Credentials::Valid(Principal::User(u)) if u == user.uuid => Ok(()),
            _ => self.require_admin(resource),
        }
    }

    /// Requires any valid token of this app (app or user).
    pub fn require_any(&self) -> ApiResult<Principal> {
        match self.credentials {
            Credentials::Valid(p) => Ok(p),
            Credentials::Invalid(e) => Err(e.into()),
            Credentials::None => Err(ApiError::no_token()),
        }
    }

    fn permission_error(&self, user: Uuid, resource: &str) -> ApiError {
        let verb = self.method.as_str().to_ascii_lowercase();
        let resource = if resource.is_empty() { format!("/users/{user}") } else { resource.to_owned() };
        ApiError::no_permission(format!("applications:{verb}:{}:{resource}", self.app.id))
    }

    /// A success envelope for this request. `path` is the collection path Easemob reports
    /// (`/users` even for `/users/{u}`); `uri_suffix` is appended to the app's base URI.
    pub fn envelope(&self, action: &str, path: &str, uri_suffix: &str) -> Envelope {
        let mut m = Map::new();
        m.insert("action".into(), action.into());
        m.insert("application".into(), self.app.id.to_string().into());
        m.insert("applicationName".into(), self.app.name.clone().into());
        m.insert("organization".into(), self.app.org.clone().into());
        m.insert("path".into(), path.into());
        m.insert("uri".into(), format!("{}{uri_suffix}", self.base_uri).into());
        Envelope { fields: m, started: self.started }
    }

    /// An absolute URL under this app, as the caller reached it (`/chatmessages/…`).
    pub fn url(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base_uri)
    }

    /// The query parameters in Easemob's echo form: every value an array of strings.
    pub fn params(&self) -> Option<Value> {
        if self.query.is_empty() {
            return None;
        }
        let mut m = Map::new();
        for (k, v) in &self.query {
            match m.entry(k.clone()).or_insert_with(|| Value::Array(vec![])) {
                Value::Array(a) => a.push(v.clone().into()),
                _ => unreachable!("params entries are arrays"),
            }
        }
        Some(Value::Object(m))
    }

    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A Usergrid-style success body. `timestamp` and `duration` are stamped when it is turned
/// into a response, so they cover the handler's whole work.
pub struct Envelope {
    fields: Map<String, Value>,
    started: Instant,
}

impl Envelope {
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Envelope {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    pub fn set_opt(self, key: &str, value: Option<impl Into<Value>>) -> Envelope {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Drops keys this endpoint's documented response does not carry.
    pub fn without(mut self, keys: &[&str]) -> Envelope {
        for k in keys {
            self.fields.remove(*k);
        }
        self
    }
}

impl IntoResponse for Envelope {
    fn into_response(mut self) -> Response {
        self.fields.insert("timestamp".into(), now_ms().into());
        self.fields.insert("duration".into(), (self.started.elapsed().as_millis() as u64).into());
        axum::Json(Value::Object(self.fields)).into_response()
    }
}

/// A JSON request body read under the general size limit (`limits.json_body_bytes`).
pub struct JsonBody(pub Value);

/// A send request's body, read under the send limit (`limits.send_body_bytes`, 5 KB): the
/// 413 of Easemob's send API is about the raw body, before any parsing.
pub struct SendBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<JsonBody, ApiError> {
        read_json(req, state.config.limits.json_body_bytes).await.map(JsonBody)
    }
}

impl FromRequest<AppState> for SendBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<SendBody, ApiError> {
        read_json(req, state.config.limits.send_body_bytes).await.map(SendBody)
    }
}

/// Reads at most `limit` bytes (413 past that, refusing early on a larger Content-Length)
/// and parses JSON (400 `invalid_request_body` if malformed).
pub async fn read_json(req: Request, limit: usize) -> ApiResult<Value> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large());
    }
    let bytes = axum::body::to_bytes(Body::new(req.into_body()), limit).await.map_err(|_| ApiError::too_large())?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_body())
}
