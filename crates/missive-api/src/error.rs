//! `RequestError`: why a request was refused, as Easemob words it.
//!
//! Every variant carries what the server needs to render the exact Easemob error body —
//! HTTP status, `error`, `exception`, `error_description` and, for the size rule, the
//! numeric `error_code` — without this crate knowing about HTTP types. The server turns it
//! into its `ApiError` in one `From` impl, so the strings live here and only here.

/// A request the API refuses. All are client errors: 400, except the export's 404, a
/// token request's unknown user (404) and a recall's refusals (403).
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
    /// A legacy chat-log `ql` outside the supported subset. Usergrid's parser error, whose
    /// `column` counts tokens (whitespace runs included) from 0, as Usergrid's does.
    #[error("The query cannot be parsed. The token '{token}' at column {column} on line 1 cannot be parsed")]
    QueryParse { token: String, column: usize },
    /// The hourly export has nothing for an hour it could hold (`storage_object_not_found`).
    #[error("{0}")]
    StorageObjectNotFound(String),
    /// A roaming-delete parameter out of range (`param exception`).
    #[error("{0}")]
    Param(String),
    /// A roaming-delete request missing a required parameter: Easemob answers with the bare
    /// HTTP reason phrase.
    #[error("Bad Request")]
    BadRequest,
    /// A token request the grant refuses (`invalid_grant`).
    #[error("{}", .0.description())]
    InvalidGrant(GrantRefusal),
    /// A recall refused (`message_recall_error`).
    #[error("{}", .0.description())]
    Recall(RecallRefusal),
}

/// Why `POST /token` refuses a grant. Named so the server can count login failures by
/// reason (`GrantRefusal::from_description`) without repeating Easemob's texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantRefusal {
    /// No `username`, or no such user: the one 404 of the token API.
    UserNotFound,
    InvalidPassword,
    NotActivated,
    ClientIdMismatch,
    ClientSecretMismatch,
}

impl GrantRefusal {
    const ALL: [GrantRefusal; 5] = [
        GrantRefusal::UserNotFound,
        GrantRefusal::InvalidPassword,
        GrantRefusal::NotActivated,
        GrantRefusal::ClientIdMismatch,
        GrantRefusal::ClientSecretMismatch,
    ];

    pub fn description(self) -> &'static str {
        match self {
            GrantRefusal::UserNotFound => "user not found",
            GrantRefusal::InvalidPassword => "invalid password",
            GrantRefusal::NotActivated => "user not activated",
            GrantRefusal::ClientIdMismatch => "client_id does not match",
            GrantRefusal::ClientSecretMismatch => "client_secret does not match",
        }
    }

    /// The refusal whose `error_description` this is, if any.
    pub fn from_description(description: &str) -> Option<GrantRefusal> {
        GrantRefusal::ALL.into_iter().find(|r| r.description() == description)
    }
}

/// Why a recall is refused. A malformed item is 400; a message that cannot be recalled
/// (unknown, not a one-to-one message, too old) is 403, as Easemob answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecallRefusal {
    MissingMsgId,
    MissingTo,
    MissingChatType,
    NotFound,
    TooLate,
    /// The message exists but was not sent to the `to` the request names.
    WrongRecipient,
}

impl RecallRefusal {
    pub fn description(self) -> &'static str {
        match self {
            RecallRefusal::MissingMsgId => "param msg_id can't be empty",
            RecallRefusal::MissingTo => "param to can't be empty",
            RecallRefusal::MissingChatType => "param chat_type can't be empty",
            RecallRefusal::NotFound => "not_found msg",
            RecallRefusal::TooLate => "exceed recall time limit",
            // Easemob's text, typographic apostrophe included.
            RecallRefusal::WrongRecipient => "can\u{2019}t find msg to",
        }
    }

    fn status(self) -> u16 {
        match self {
            RecallRefusal::NotFound | RecallRefusal::TooLate => 403,
            _ => 400,
        }
    }
}

impl RequestError {
    /// A `message_send_error` with Easemob's description.
    pub fn send(description: impl Into<String>) -> RequestError {
        RequestError::Send(description.into())
    }

    /// The HTTP status. A `u16`, so this crate needs no HTTP library.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::StorageObjectNotFound(_) | RequestError::InvalidGrant(GrantRefusal::UserNotFound) => 404,
            RequestError::Recall(r) => r.status(),
            _ => 400,
        }
    }

    /// The body's `error` field.
    pub fn error(&self) -> &'static str {
        match self {
            RequestError::InvalidBody => "invalid_request_body",
            RequestError::Send(_) | RequestError::TooLarge => "message_send_error",
            RequestError::IllegalArgument(_) => "illegal_argument",
            RequestError::QueryParse { .. } => "query_parse",
            RequestError::StorageObjectNotFound(_) => "storage_object_not_found",
            RequestError::Param(_) => "param exception",
            RequestError::BadRequest => "Bad Request",
            RequestError::InvalidGrant(_) => "invalid_grant",
            RequestError::Recall(_) => "message_recall_error",
        }
    }

    /// The body's `exception` field (the Java class name Easemob's server reports; for the
    /// last three, whose class Easemob's documentation does not show, a name of the same
    /// form).
    pub fn exception(&self) -> &'static str {
        match self {
            RequestError::InvalidBody => "InvalidRequestBodyException",
            RequestError::Send(_) | RequestError::TooLarge => "MessageSendException",
            RequestError::IllegalArgument(_) => "java.lang.IllegalArgumentException",
            RequestError::QueryParse { .. } => "org.apache.usergrid.persistence.exceptions.QueryParseException",
            RequestError::StorageObjectNotFound(_) => "StorageObjectNotFoundException",
            RequestError::Param(_) => "ParamException",
            RequestError::BadRequest => "BadRequestException",
            RequestError::InvalidGrant(_) => "org.apache.usergrid.management.exceptions.InvalidGrantException",
            RequestError::Recall(_) => "MessageRecallException",
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
    use super::{GrantRefusal, RecallRefusal, RequestError};

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
        // Usergrid's own wording for a query it cannot parse.
        let e = RequestError::QueryParse { token: "from".into(), column: 4 };
        assert_eq!((e.status(), e.error()), (400, "query_parse"));
        assert_eq!(
            e.description(),
            "The query cannot be parsed. The token 'from' at column 4 on line 1 cannot be parsed"
        );
        let e = RequestError::StorageObjectNotFound("none".into());
        assert_eq!((e.status(), e.error()), (404, "storage_object_not_found"));
        let e = RequestError::BadRequest;
        assert_eq!((e.status(), e.error(), e.description()), (400, "Bad Request", "Bad Request".into()));
        assert_eq!(RequestError::Param("p".into()).error(), "param exception");
        let e = RequestError::InvalidGrant(GrantRefusal::UserNotFound);
        assert_eq!((e.status(), e.error(), e.description()), (404, "invalid_grant", "user not found".into()));
        let e = RequestError::InvalidGrant(GrantRefusal::InvalidPassword);
        assert_eq!((e.status(), e.description()), (400, "invalid password".into()));
        let e = RequestError::Recall(RecallRefusal::TooLate);
        assert_eq!(
            (e.status(), e.error(), e.exception(), e.description()),
            (403, "message_recall_error", "MessageRecallException", "exceed recall time limit".into())
        );
        assert_eq!(RequestError::Recall(RecallRefusal::MissingTo).status(), 400);
        assert_eq!(RecallRefusal::WrongRecipient.description(), "can\u{2019}t find msg to");
    }

    #[test]
    fn grant_refusals_are_found_by_their_text() {
        for r in GrantRefusal::ALL {
            assert_eq!(GrantRefusal::from_description(r.description()), Some(r));
        }
        assert_eq!(GrantRefusal::from_description("Request body is invalid. Please check body is correct."), None);
    }
}
