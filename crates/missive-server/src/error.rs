//! `ApiError`: every way a REST call can fail, rendered as Easemob's error body.
//!
//! Easemob clients parse `error`, `exception`, `timestamp`, `duration` and
//! `error_description` (plus `error_code` on newer message errors), so every failure —
//! including a malformed body, an unknown route or a database fault — leaves through here.
//! Internal details are logged, never sent.

use std::borrow::Cow;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use missive_api::RequestError;
use missive_core::id::now_ms;
use missive_core::store::StoreError;

pub type ApiResult<T> = Result<T, ApiError>;

/// An Easemob error response. Constructors are named for the situation, so call sites read
/// as the API documentation does.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: Cow<'static, str>,
    pub exception: Cow<'static, str>,
    pub description: String,
    /// Newer message errors carry a numeric code (14007 = message too large).
    pub error_code: Option<u32>,
}

const SECURITY_EXCEPTION: &str = "com.easemob.im.exceptions.EasemobSecurityException";

impl ApiError {
    pub fn new(
        status: StatusCode,
        error: impl Into<Cow<'static, str>>,
        exception: impl Into<Cow<'static, str>>,
        description: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            exception: exception.into(),
            description: description.into(),
            error_code: None,
        }
    }

    pub fn with_code(mut self, code: u32) -> ApiError {
        self.error_code = Some(code);
        self
    }

    /// 400 `illegal_argument`, the Usergrid validation error.
    pub fn illegal_argument(description: impl Into<String>) -> ApiError {
        RequestError::IllegalArgument(description.into()).into()
    }

    /// 400 `invalid_request_body`: malformed JSON or a field of the wrong type.
    pub fn invalid_body() -> ApiError {
        RequestError::InvalidBody.into()
    }

    /// 400 `message_send_error`, the send API's validation error.
    pub fn send_error(description: impl Into<String>) -> ApiError {
        RequestError::Send(description.into()).into()
    }

    /// 413 for a request body over the configured limit.
    pub fn too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request Entity Too Large",
            "RequestEntityTooLargeException",
            "Request Entity Too Large",
        )
    }

    /// 401 without a token.
    pub fn no_token() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", SECURITY_EXCEPTION, "Unable to authenticate (OAuth)")
    }

    /// 401 for a token that is not in Missive's format at all.
    pub fn corrupt_token() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "auth_bad_access_token",
            SECURITY_EXCEPTION,
            "Unable to authenticate due to corrupt access token",
        )
    }

    /// 401 for a well-formed token this app never issued (or one revoked, or another app's).
    pub fn unknown_token() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "auth_bad_access_token", SECURITY_EXCEPTION, "Unable to authenticate")
    }

    pub fn expired_token() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            SECURITY_EXCEPTION,
            "Unable to authenticate due to expired access token",
        )
    }

    /// 401 for a user token on an operation that needs the app token (Shiro's wording).
    pub fn no_permission(permission: String) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "org.apache.shiro.authz.UnauthorizedException",
            format!("Subject does not have permission [{permission}]"),
        )
    }

    pub fn app_not_found(org: &str, app: &str, rest: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "organization_application_not_found",
            "org.apache.usergrid.rest.exceptions.OrganizationApplicationNotFoundException",
            format!("Could not find application for {org}/{app} from URI: {org}/{app}/{rest}"),
        )
    }

    /// 404 for a user (or other resource) named in the path that does not exist.
    pub fn resource_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "service_resource_not_found",
            "org.apache.usergrid.services.exceptions.ServiceResourceNotFoundException",
            "Service resource not found",
        )
    }

    pub fn entity_not_found(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "entity_not_found",
            "org.apache.usergrid.persistence.exceptions.EntityNotFoundException",
            description,
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "javax.ws.rs.NotAllowedException",
            "HTTP 405 Method Not Allowed",
        )
    }

    pub fn route_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "service_resource_not_found",
            "org.apache.usergrid.services.exceptions.ServiceResourceNotFoundException",
            "Service resource not found",
        )
    }

    /// 429 when an app exceeds its calls-per-second budget.
    pub fn reach_limit() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "reach_limit",
            "EasemobRateLimitException",
            "This request has reached api limit",
        )
    }

    /// 503 when the server sheds load or storage is unavailable.
    pub fn unavailable(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "ServiceUnavailableException",
            description,
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "InternalServerErrorException",
            "internal error",
        )
    }

    /// The JSON body, with `duration` measured by the caller.
    pub fn body(&self, duration: Duration) -> serde_json::Value {
        let mut body = serde_json::json!({
            "error": self.error,
            "exception": self.exception,
            "timestamp": now_ms(),
            "duration": duration.as_millis() as u64,
        });
        if let Some(code) = self.error_code {
            body["error_code"] = code.into();
        }
        body["error_description"] = self.description.clone().into();
        body
    }

    /// Renders the response; `duration` is the time since the request started.
    pub fn render(&self, duration: Duration) -> Response {
        let mut res = (self.status, axum::Json(self.body(duration))).into_response();
        res.extensions_mut().insert(RenderedError);
        res
    }
}

/// Marks a response whose body is an `ApiError` already rendered with its real duration.
#[derive(Clone, Copy, Debug)]
pub struct RenderedError;

impl IntoResponse for ApiError {
    /// Renders with `duration: 0` and leaves the error in the response extensions, where the
    /// timing middleware (`http::stamp_errors`) re-renders it with the measured duration.
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body(Duration::ZERO))).into_response();
        res.extensions_mut().insert(self);
        res
    }
}

/// The request model's refusals (`missive-api`) carry their whole Easemob body; the 400
/// validation constructors above go through here too, so each string exists once.
impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            error: e.error().into(),
            exception: e.exception().into(),
            description: e.description(),
            error_code: e.error_code(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Busy => ApiError::unavailable("storage busy, retry later"),
            StoreError::Full => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "StorageFullException",
                "storage is full, the request was not stored",
            ),
            StoreError::Conflict(what) => {
                tracing::error!(what, "unexpected storage conflict");
                ApiError::internal()
            }
            StoreError::Backend(msg) => {
                tracing::error!(error = %msg, "storage error");
                ApiError::internal()
            }
        }
    }
}
