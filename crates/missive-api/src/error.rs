//! `RequestError`: why a request body was refused, as Easemob words it.
//!
//! Every variant carries what the server needs to render the exact Easemob error body —
//! HTTP status, `error`, `exception`, `error_description` and, for the size rule, the
//! numeric `error_code` — without this crate knowing about HTTP types. The server turns it
//! into its `ApiError` in one `From` impl, so the strings live here and only here.

/// A send request the API refuses. All are client errors (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Malformed JSON, or a field of the wrong JSON type (`invalid_request_body`).
    #[error("Request body is invalid. Please check body is correct.")]
    InvalidBody,
    /// A rule of the send API itself (`message_send_error`); the text is Easemob's.
    #[error("{0}")]
    Send(String),
    /// The Usergrid validation error (`illegal_argument`), e.g. an unknown `target_type`.
    #[error("{0}")]
    IllegalArgument(String),
    /// `body` + `ext` over the content limit: a `message_send_error` that newer Easemob
    /// servers also number (`error_code` 14007), so clients can tell it apart.
    #[error("message is too large")]
    TooLarge,
}

impl RequestError {
    /// A `message_send_error` with Easemob's description.
    pub fn send(description: impl Into<String>) -> RequestError {
        RequestError::Send(description.into())
    }

    /// The HTTP status. A `u16`, so this crate needs no HTTP library.
    pub fn status(&self) -> u16 {
        400
    }

    /// The body's `error` field.
    pub fn error(&self) -> &'static str {
        match self {
            RequestError::InvalidBody => "invalid_request_body",
            RequestError::Send(_) | RequestError::TooLarge => "message_send_error",
            RequestError::IllegalArgument(_) => "illegal_argument",
        }
    }

    /// The body's `exception` field (the Java class name Easemob's server reports).
    pub fn exception(&self) -> &'static str {
        match self {
            RequestError::InvalidBody => "InvalidRequestBodyException",
            RequestError::Send(_) | RequestError::TooLarge => "MessageSendException",
            RequestError::IllegalArgument(_) => "java.lang.IllegalArgumentException",
        }
    }

    /// The body's `error_description` field.
    pub fn description(&self) -> String {
        self.to_string()
    }

    /// The body's numeric `error_code`, for the errors newer Easemob servers number.
    pub fn error_code(&self) -> Option<u32> {
        match self {
            RequestError::TooLarge => Some(14007),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RequestError;

    #[test]
    fn easemob_bodies() {
        let e = RequestError::InvalidBody;
        assert_eq!(
            (e.status(), e.error(), e.exception()),
            (400, "invalid_request_body", "InvalidRequestBodyException")
        );
        assert_eq!(e.description(), "Request body is invalid. Please check body is correct.");
        let e = RequestError::send("param to can't be empty");
        assert_eq!((e.error(), e.exception(), e.error_code()), ("message_send_error", "MessageSendException", None));
        assert_eq!(e.description(), "param to can't be empty");
        let e = RequestError::TooLarge;
        assert_eq!(
            (e.error(), e.description(), e.error_code()),
            ("message_send_error", "message is too large".into(), Some(14007))
        );
        let e = RequestError::IllegalArgument("x".into());
        assert_eq!((e.error(), e.exception()), ("illegal_argument", "java.lang.IllegalArgumentException"));
    }
}
