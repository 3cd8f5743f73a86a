//! The user system's requests (easemob-api.md §3): registration, one user or a batch
//! ([`RegisterRequest`]), profile updates ([`parse_update`]), password changes
//! ([`PasswordChange`]), a batch of presences ([`BatchStatus`]) and the user listing's page
//! ([`UserPage`]), with the user id rule as the REST API words its refusals
//! ([`parse_username`]).
//!
//! Every check here is one the server used to make inline; the handler now calls the parser
//! at the point it made the check, so the order of the checks — and with it which error a
//! request with several faults gets — is unchanged. Rules whose place depends on I/O (the
//! password change's, between the token check and the old password's verification) are
//! separate calls for that reason.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use missive_core::model::{UsernameError, normalize_username};
pub use missive_core::store::UserPatch;
use serde_json::{Map, Value};

use crate::error::RequestError;

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// The longest nickname Easemob accepts, in characters.
pub const MAX_NICKNAME_CHARS: usize = 100;
/// The longest password Easemob accepts, in characters.
pub const MAX_PASSWORD_CHARS: usize = 64;
/// Users per page of `GET /users` when the request names no `limit`.
pub const DEFAULT_PAGE: u32 = 10;
/// Most users per page of `GET /users`.
pub const MAX_PAGE: u32 = 100;

/// Validates a user id from a request body (registration, tokens): lower-cased, or
/// Easemob's refusal.
pub fn parse_username(raw: &str) -> Result<String> {
    normalize_username(raw).map_err(|e| {
        RequestError::IllegalArgument(match e {
            UsernameError::Empty => "Entity user requires a property named username".into(),
            UsernameError::TooLong => "USERNAME_TOO_LONG".into(),
            UsernameError::Illegal => format!("username [{raw}] is not legal"),
        })
    })
}

/// A message id in a path (`offline_msg_status/{msg_id}`): a decimal `u64`.
pub fn parse_msg_id(raw: &str) -> Result<u64> {
    raw.parse().map_err(|_| RequestError::IllegalArgument("msg_id is illegal".into()))
}

/// The password rule, shared by registration and the password change.
pub fn check_password(password: &str) -> Result<()> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(RequestError::IllegalArgument("PASSWORD_TOO_LONG".into()));
    }
    Ok(())
}

fn check_nickname(nickname: &str) -> Result<()> {
    if nickname.chars().count() > MAX_NICKNAME_CHARS {
        return Err(RequestError::IllegalArgument("NICKNAME_TOO_LONG".into()));
    }
    Ok(())
}

/// One user to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Lower-cased.
    pub username: String,
    /// Non-empty, at most [`MAX_PASSWORD_CHARS`].
    pub password: String,
    pub nickname: Option<String>,
}

impl Registration {
    /// Validates `{username, password, nickname}`: the id, then the password, then the
    /// nickname.
    pub fn parse(v: &Value) -> Result<Registration> {
        let obj = v.as_object().ok_or(RequestError::InvalidBody)?;
        let raw = match obj.get("username") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(RequestError::InvalidBody),
        };
        let username = parse_username(raw)?;
        let password = match obj.get("password") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(RequestError::IllegalArgument("password or pin must provided".into()));
            }
            Some(_) => return Err(RequestError::InvalidBody),
        };
        check_password(&password)?;
        let nickname = match obj.get("nickname") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                check_nickname(s)?;
                Some(s.clone())
            }
            Some(_) => return Err(RequestError::InvalidBody),
        };
        Ok(Registration { username, password, nickname })
    }
}

/// `POST /users`: one object, or an array registered one by one with partial success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterRequest {
    One(Registration),
    Batch(Vec<BatchItem>),
}

/// One element of a batch registration. A malformed element does not fail the batch: its
/// refusal is reported next to the name it showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchItem {
    /// The `username` as sent (empty if it was not a string), for the failure report.
    pub shown: String,
    pub registration: Result<Registration>,
}

impl RegisterRequest {
    /// Validates a registration body; a batch holds 1 to `max_batch` elements.
    pub fn parse(body: &Value, max_batch: usize) -> Result<RegisterRequest> {
        match body {
            Value::Object(_) => Registration::parse(body).map(RegisterRequest::One),
            Value::Array(items) => {
                if items.len() > max_batch {
                    return Err(RequestError::IllegalArgument(format!(
                        "Request body array size[{}] had almost reached or been greater than the upper range value[{max_batch}]",
                        items.len()
                    )));
                }
                if items.is_empty() {
                    return Err(RequestError::InvalidBody);
                }
                Ok(RegisterRequest::Batch(
                    items
                        .iter()
                        .map(|item| BatchItem {
                            shown: item.get("username").and_then(Value::as_str).unwrap_or_default().to_owned(),
                            registration: Registration::parse(item),
                        })
                        .collect(),
                ))
            }
            _ => Err(RequestError::InvalidBody),
        }
    }
}

/// A field of `PUT /users/{u}` besides `nickname` (easemob-api.md §3.3): `Some(valid)` for
/// a known one, `None` for one that is ignored.
fn user_attribute(key: &str, value: &Value) -> Option<bool> {
    let ok = match key {
        "notification_display_style" => matches!(value.as_u64(), Some(0 | 1)),
        "notification_no_disturbing" => value.is_boolean(),
        "notification_no_disturbing_start" | "notification_no_disturbing_end" => value.is_string() || value.is_u64(),
        "notifier_name" | "device_token" => value.is_string(),
        k if k.starts_with("notification_ignore_") => value.is_boolean(),
        _ => return None,
    };
    Some(ok || value.is_null())
}

/// Validates `PUT /users/{u}`: `nickname` and the notification settings, each of its JSON
/// type (`null` clears a setting); unknown keys are ignored. The first faulty key in key
/// order decides the error.
pub fn parse_update(body: &Value) -> Result<UserPatch> {
    let obj = body.as_object().ok_or(RequestError::InvalidBody)?;
    let mut patch = UserPatch::default();
    for (k, v) in obj {
        if k == "nickname" {
            let n = v.as_str().ok_or(RequestError::InvalidBody)?;
            check_nickname(n)?;
            patch.nickname = Some(n.to_owned());
        } else if let Some(valid) = user_attribute(k, v) {
            if !valid {
                return Err(RequestError::InvalidBody);
            }
            patch.attributes.insert(k.clone(), v.clone());
        }
    }
    Ok(patch)
}

/// `PUT /users/{u}/password`: `newpassword`, and `oldpassword` when users change their
/// own. A field that is not a non-empty string counts as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordChange {
    new: Option<String>,
    old: Option<String>,
}

impl PasswordChange {
    /// Reads any body; what is missing is refused by the accessors, at the point of the
    /// handler where Easemob refuses it.
    pub fn parse(body: &Value) -> PasswordChange {
        let field = |k: &str| body.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        PasswordChange { new: field("newpassword"), old: field("oldpassword") }
    }

    /// The new password; its length is checked with [`check_password`], after the old one.
    pub fn new_password(&self) -> Result<String> {
        self.new.clone().ok_or_else(|| RequestError::IllegalArgument("newpassword is required".into()))
    }

    pub fn old_password(&self) -> Result<String> {
        self.old.clone().ok_or_else(|| RequestError::IllegalArgument("oldPassword is required".into()))
    }
}

/// A presence as the user APIs show it.
pub fn presence_word(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

/// One user of a presence batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AskedUser {
    /// As sent: the answer is keyed by it.
    pub raw: String,
    /// The user id, if `raw` is a legal one; an illegal id is simply offline.
    pub id: Option<String>,
}

/// `POST /users/batch/status`: `{"usernames": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchStatus {
    pub users: Vec<AskedUser>,
}

impl BatchStatus {
    /// Validates the body: an array of strings, at most `max`.
    pub fn parse(body: &Value, max: usize) -> Result<BatchStatus> {
        let names = body.get("usernames").and_then(Value::as_array).ok_or(RequestError::InvalidBody)?;
        if names.len() > max {
            return Err(RequestError::IllegalArgument(format!(
                "request body exceeds maximum limit, maximum limit is {max}"
            )));
        }
        let users = names
            .iter()
            .map(|n| {
                let raw = n.as_str().ok_or(RequestError::InvalidBody)?;
                Ok(AskedUser { raw: raw.to_owned(), id: normalize_username(raw).ok() })
            })
            .collect::<Result<_>>()?;
        Ok(BatchStatus { users })
    }

    /// The legal ids asked for, to look up.
    pub fn ids(&self) -> Vec<String> {
        self.users.iter().filter_map(|u| u.id.clone()).collect()
    }

    /// `[{raw: status}]` in the order asked, given which ids are online.
    pub fn answer(&self, online: impl Fn(&str) -> bool) -> Vec<Value> {
        self.users
            .iter()
            .map(|u| {
                let status = presence_word(u.id.as_deref().is_some_and(&online));
                Value::Object(Map::from_iter([(u.raw.clone(), Value::from(status))]))
            })
            .collect()
    }
}

/// A page of `GET /users` (and of `DELETE /users`, which deletes that page): `limit` and
/// the opaque `cursor` from the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserPage {
    /// 1 to [`MAX_PAGE`].
    pub limit: u32,
    /// The page starts after the user with this registration sequence (0: from the first).
    pub after: i64,
}

impl UserPage {
    /// Validates the query parameters (an empty one counts as absent).
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<UserPage> {
        let limit = match limit {
            None | Some("") => DEFAULT_PAGE,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=MAX_PAGE).contains(l))
                .ok_or_else(|| RequestError::IllegalArgument("limit must be between 1 and 100".into()))?,
        };
        let after = match cursor {
            None | Some("") => 0,
            Some(c) => URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("seq:").and_then(|n| n.parse().ok()))
                .ok_or_else(|| RequestError::IllegalArgument("cursor is invalid".into()))?,
        };
        Ok(UserPage { limit, after })
    }

    /// The cursor of the page that follows the user with registration sequence `seq`.
    pub fn cursor(seq: i64) -> String {
        URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
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
    fn usernames_refused_in_easemob_words() {
        assert_eq!(parse_username("Alice_1"), Ok("alice_1".into()));
        assert_eq!(parse_username(""), Err(illegal("Entity user requires a property named username")));
        assert_eq!(parse_username(&"a".repeat(65)), Err(illegal("USERNAME_TOO_LONG")));
        assert_eq!(parse_username("a b"), Err(illegal("username [a b] is not legal")));
    }

    #[test]
    fn message_ids_in_paths() {
        assert_eq!(parse_msg_id("1234567890123456789"), Ok(1_234_567_890_123_456_789));
        for bad in ["", "-1", "1.0", "x", "18446744073709551616"] {
            assert_eq!(parse_msg_id(bad), Err(illegal("msg_id is illegal")), "{bad}");
        }
    }

    #[test]
    fn registration_checks_id_then_password_then_nickname() {
        let reg = Registration::parse(&json!({"username": "Bob", "password": "p", "nickname": "B"})).unwrap();
        assert_eq!(reg, Registration { username: "bob".into(), password: "p".into(), nickname: Some("B".into()) });
        let err = |v: Value| Registration::parse(&v).unwrap_err();
        assert_eq!(err(json!({"password": "p"})), illegal("Entity user requires a property named username"));
        assert_eq!(err(json!({"username": 5, "password": "p"})), RequestError::InvalidBody);
        // The id is checked before the password.
        assert_eq!(err(json!({"username": "a b"})), illegal("username [a b] is not legal"));
        for missing in [json!({"username": "a"}), json!({"username": "a", "password": ""})] {
            assert_eq!(err(missing), illegal("password or pin must provided"));
        }
        assert_eq!(err(json!({"username": "a", "password": 1})), RequestError::InvalidBody);
        // 64 characters (not bytes) are allowed, 65 are not.
        assert!(Registration::parse(&json!({"username": "a", "password": "é".repeat(64)})).is_ok());
        assert_eq!(err(json!({"username": "a", "password": "p".repeat(65)})), illegal("PASSWORD_TOO_LONG"));
        assert_eq!(
            err(json!({"username": "a", "password": "p", "nickname": "n".repeat(101)})),
            illegal("NICKNAME_TOO_LONG")
        );
        assert_eq!(err(json!({"username": "a", "password": "p", "nickname": []})), RequestError::InvalidBody);
        assert_eq!(err(json!("a")), RequestError::InvalidBody);
    }

    #[test]
    fn batches_hold_one_to_max_items_and_keep_per_item_refusals() {
        let ok = json!({"username": "a", "password": "p"});
        assert!(matches!(RegisterRequest::parse(&ok, 2), Ok(RegisterRequest::One(_))));
        let batch = RegisterRequest::parse(&json!([ok, {"username": "B C", "password": "p"}, 7]), 3).unwrap();
        let RegisterRequest::Batch(items) = batch else { panic!("a batch") };
        assert_eq!(items.iter().map(|i| i.shown.as_str()).collect::<Vec<_>>(), ["a", "B C", ""]);
        assert!(items[0].registration.is_ok());
        assert_eq!(items[1].registration, Err(illegal("username [B C] is not legal")));
        assert_eq!(items[2].registration, Err(RequestError::InvalidBody));
        assert_eq!(
            RegisterRequest::parse(&json!([ok, ok, ok]), 2),
            Err(illegal("Request body array size[3] had almost reached or been greater than the upper range value[2]"))
        );
        for bad in [json!([]), json!("x"), json!(null)] {
            assert_eq!(RegisterRequest::parse(&bad, 2), Err(RequestError::InvalidBody));
        }
    }

    #[test]
    fn updates_keep_known_fields_of_their_type() {
        let patch = parse_update(&json!({
            "nickname": "N", "notification_display_style": 1, "notification_no_disturbing": true,
            "notification_no_disturbing_start": "10", "notification_no_disturbing_end": 12,
            "notification_ignore_123": false, "device_token": null, "unknown": [1],
        }))
        .unwrap();
        assert_eq!(patch.nickname.as_deref(), Some("N"));
        assert_eq!(patch.attributes.len(), 6, "unknown keys are dropped, null kept: {:?}", patch.attributes);
        assert_eq!(patch.attributes["device_token"], Value::Null);
        for bad in [
            json!({"nickname": 1}),
            json!({"nickname": null}),
            json!({"notification_display_style": 2}),
            json!({"notification_no_disturbing": "yes"}),
            json!({"notifier_name": 1}),
            json!({"notification_ignore_x": 0}),
            json!([]),
        ] {
            assert_eq!(parse_update(&bad).map(|_| ()), Err(RequestError::InvalidBody), "{bad}");
        }
        assert_eq!(parse_update(&json!({"nickname": "n".repeat(101)})).map(|_| ()), Err(illegal("NICKNAME_TOO_LONG")));
    }

    #[test]
    fn password_changes_name_what_is_missing() {
        let change = PasswordChange::parse(&json!({"newpassword": "n", "oldpassword": 5}));
        assert_eq!(change.new_password(), Ok("n".into()));
        assert_eq!(change.old_password(), Err(illegal("oldPassword is required")));
        let change = PasswordChange::parse(&json!({"newpassword": ""}));
        assert_eq!(change.new_password(), Err(illegal("newpassword is required")));
        assert_eq!(PasswordChange::parse(&json!([1])), PasswordChange::default());
        assert_eq!(check_password(&"p".repeat(64)), Ok(()));
        assert_eq!(check_password(&"p".repeat(65)), Err(illegal("PASSWORD_TOO_LONG")));
    }

    #[test]
    fn batch_status_answers_in_the_order_asked() {
        let req = BatchStatus::parse(&json!({"usernames": ["Alice", "bad id", "bob"]}), 3).unwrap();
        assert_eq!(req.ids(), ["alice", "bob"]);
        assert_eq!(
            req.answer(|u| u == "alice"),
            [json!({"Alice": "online"}), json!({"bad id": "offline"}), json!({"bob": "offline"})]
        );
        assert_eq!(
            BatchStatus::parse(&json!({"usernames": ["a", "b"]}), 1),
            Err(illegal("request body exceeds maximum limit, maximum limit is 1"))
        );
        for bad in [json!({}), json!({"usernames": "a"}), json!({"usernames": ["a", 1]}), json!([])] {
            assert_eq!(BatchStatus::parse(&bad, 5), Err(RequestError::InvalidBody), "{bad}");
        }
    }

    #[test]
    fn user_pages() {
        assert_eq!(UserPage::parse(None, Some("")), Ok(UserPage { limit: 10, after: 0 }));
        let cursor = UserPage::cursor(42);
        assert_eq!(UserPage::parse(Some("100"), Some(&cursor)), Ok(UserPage { limit: 100, after: 42 }));
        for bad in ["0", "101", "-1", "x"] {
            assert_eq!(UserPage::parse(Some(bad), None), Err(illegal("limit must be between 1 and 100")));
        }
        for bad in ["!", "c2VxOng", "eHh4"] {
            assert_eq!(UserPage::parse(None, Some(bad)), Err(illegal("cursor is invalid")), "{bad}");
        }
    }
}
