//! `POST /{org}/{app}/token` (Easemob "App Token" and "User Token" pages, easemob-api.md
//! §2): which grant a body asks for ([`GrantType`]) and each grant's fields
//! ([`ClientCredentials`], [`PasswordGrant`], [`InheritGrant`], [`parse_ttl`]).
//!
//! The grant is read first and each grant's fields afterwards, because the server checks
//! something in between: `inherit` is for the app token only (a user token gets 401 before
//! its body is read), and for `client_credentials` Easemob compares the credentials before
//! it reads `ttl`. The refusals the grant itself makes (unknown user, wrong password, …) are
//! [`GrantRefusal`]s, so their texts live here too.

use serde_json::Value;

pub use crate::error::GrantRefusal;
use crate::error::RequestError;
use crate::send::opt_bool;
use crate::users::parse_username;

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// The `grant_type` of a token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantType {
    /// The app token, from the app's client id and secret.
    ClientCredentials,
    /// A user token, from the user's password.
    Password,
    /// A user token minted with the app token (Missive and Easemob's `inherit`).
    Inherit,
}

impl GrantType {
    /// Validates the body's shape and its `grant_type`.
    pub fn parse(body: &Value) -> Result<GrantType> {
        if !body.is_object() {
            return Err(RequestError::InvalidBody);
        }
        match string_field(body, "grant_type")? {
            Some("client_credentials") => Ok(GrantType::ClientCredentials),
            Some("password") => Ok(GrantType::Password),
            Some("inherit") => Ok(GrantType::Inherit),
            Some(other) => Err(RequestError::IllegalArgument(format!("unsupported grant_type: {other}"))),
            None => Err(RequestError::IllegalArgument("grant_type must be provided".into())),
        }
    }
}

/// A string field: absent, `null` and `""` are `None`; any other type is an invalid body.
fn string_field<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

/// `username` of a user grant: missing is an unknown user, as Easemob answers.
fn grant_username(body: &Value) -> Result<&str> {
    string_field(body, "username")?.ok_or(RequestError::InvalidGrant(GrantRefusal::UserNotFound))
}

/// The token's lifetime in seconds: a number or a numeric string; `None` (absent) means the
/// configured default, `0` a token that never expires.
pub fn parse_ttl(body: &Value) -> Result<Option<u64>> {
    let invalid = || RequestError::IllegalArgument("ttl must be a non-negative integer".into());
    match body.get("ttl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(invalid),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

/// `grant_type: client_credentials`. Its `ttl` is read with [`parse_ttl`] once the
/// credentials matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl ClientCredentials {
    pub fn parse(body: &Value) -> Result<ClientCredentials> {
        let missing = |text: &str| RequestError::IllegalArgument(text.into());
        let client_id = string_field(body, "client_id")?.ok_or_else(|| missing("client_id must be provided."))?;
        let client_secret =
            string_field(body, "client_secret")?.ok_or_else(|| missing("client_secret must be provided"))?;
        Ok(ClientCredentials { client_id: client_id.to_owned(), client_secret: client_secret.to_owned() })
    }
}

/// `grant_type: password`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordGrant {
    /// Lower-cased.
    pub username: String,
    /// Possibly empty: a wrong password, not a malformed request.
    pub password: String,
    pub ttl: Option<u64>,
}

impl PasswordGrant {
    /// Checks `username`'s presence, `password`, `ttl`, then whether `username` is a legal id.
    pub fn parse(body: &Value) -> Result<PasswordGrant> {
        let raw = grant_username(body)?;
        let password = string_field(body, "password")?.unwrap_or_default().to_owned();
        let ttl = parse_ttl(body)?;
        Ok(PasswordGrant { username: parse_username(raw)?, password, ttl })
    }
}

/// `grant_type: inherit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InheritGrant {
    /// Lower-cased.
    pub username: String,
    /// `autoCreateUser`: register the user (with no usable password) if unknown.
    pub auto_create: bool,
    pub ttl: Option<u64>,
}

impl InheritGrant {
    /// Checks `username`'s presence, `autoCreateUser`, `ttl`, then whether `username` is a
    /// legal id.
    pub fn parse(body: &Value) -> Result<InheritGrant> {
        let raw = grant_username(body)?;
        let auto_create = opt_bool(body.get("autoCreateUser"))?;
        let ttl = parse_ttl(body)?;
        Ok(InheritGrant { username: parse_username(raw)?, auto_create, ttl })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn illegal(s: &str) -> RequestError {
        RequestError::IllegalArgument(s.into())
    }

    #[test]
    fn grant_types() {
        assert_eq!(GrantType::parse(&json!({"grant_type": "password"})), Ok(GrantType::Password));
        assert_eq!(GrantType::parse(&json!({"grant_type": "inherit"})), Ok(GrantType::Inherit));
        assert_eq!(GrantType::parse(&json!({"grant_type": "client_credentials"})), Ok(GrantType::ClientCredentials));
        assert_eq!(GrantType::parse(&json!({"grant_type": "code"})), Err(illegal("unsupported grant_type: code")));
        for missing in [json!({}), json!({"grant_type": ""}), json!({"grant_type": null})] {
            assert_eq!(GrantType::parse(&missing), Err(illegal("grant_type must be provided")));
        }
        for bad in [json!({"grant_type": 1}), json!([]), json!("password")] {
            assert_eq!(GrantType::parse(&bad), Err(RequestError::InvalidBody));
        }
    }

    #[test]
    fn ttl_is_a_number_or_a_numeric_string() {
        assert_eq!(parse_ttl(&json!({})), Ok(None));
        assert_eq!(parse_ttl(&json!({"ttl": 0})), Ok(Some(0)));
        assert_eq!(parse_ttl(&json!({"ttl": " 60 "})), Ok(Some(60)));
        for bad in [json!(-1), json!(1.5), json!("x"), json!("-1")] {
            assert_eq!(parse_ttl(&json!({"ttl": bad})), Err(illegal("ttl must be a non-negative integer")));
        }
        assert_eq!(parse_ttl(&json!({"ttl": true})), Err(RequestError::InvalidBody));
    }

    #[test]
    fn client_credentials_need_both_fields() {
        let creds = ClientCredentials::parse(&json!({"client_id": "i", "client_secret": "s", "ttl": "x"})).unwrap();
        assert_eq!((creds.client_id.as_str(), creds.client_secret.as_str()), ("i", "s"));
        assert_eq!(
            ClientCredentials::parse(&json!({"client_secret": "s"})),
            Err(illegal("client_id must be provided."))
        );
        assert_eq!(
            ClientCredentials::parse(&json!({"client_id": "i"})),
            Err(illegal("client_secret must be provided"))
        );
        assert_eq!(ClientCredentials::parse(&json!({"client_id": 1})), Err(RequestError::InvalidBody));
    }

    #[test]
    fn user_grants_check_presence_fields_then_the_id() {
        let g = PasswordGrant::parse(&json!({"username": "Ann", "password": "p", "ttl": 5})).unwrap();
        assert_eq!(g, PasswordGrant { username: "ann".into(), password: "p".into(), ttl: Some(5) });
        assert_eq!(PasswordGrant::parse(&json!({"username": "ann"})).unwrap().password, "");
        let not_found = RequestError::InvalidGrant(GrantRefusal::UserNotFound);
        assert_eq!(PasswordGrant::parse(&json!({"ttl": "x"})), Err(not_found.clone()));
        assert_eq!(InheritGrant::parse(&json!({"username": ""})), Err(not_found));
        // The fields' types before the id's legality.
        assert_eq!(
            PasswordGrant::parse(&json!({"username": "a b", "ttl": "x"})),
            Err(illegal("ttl must be a non-negative integer"))
        );
        assert_eq!(PasswordGrant::parse(&json!({"username": "a b"})), Err(illegal("username [a b] is not legal")));
        let g = InheritGrant::parse(&json!({"username": "B", "autoCreateUser": true})).unwrap();
        assert_eq!(g, InheritGrant { username: "b".into(), auto_create: true, ttl: None });
        assert_eq!(
            InheritGrant::parse(&json!({"username": "b", "autoCreateUser": "yes"})),
            Err(RequestError::InvalidBody)
        );
    }
}
