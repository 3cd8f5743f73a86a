//! The domain records Missive keeps: apps, users, tokens, queued messages and devices.
//!
//! These are storage-neutral: the SQL backends map rows to them and the HTTP layer maps them
//! to Easemob's JSON. Validation rules that Easemob documents (username charset and length)
//! live here so every entry point applies the same ones.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::id::MsgId;

/// An application, Easemob's `{org}/{app}` tenant. Everything else belongs to exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: Uuid,
    pub org: String,
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    /// Easemob's "open registration": unauthenticated `POST /users` is allowed only when set.
    pub open_registration: bool,
    pub created: i64,
}

impl App {
    /// Easemob's app key, `org#app`, as the client SDKs and JIDs carry it.
    pub fn app_key(&self) -> String {
        format!("{}#{}", self.org, self.name)
    }
}

/// A registered user of an app.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub uuid: Uuid,
    pub app_id: Uuid,
    /// Always lower-case: Easemob user ids are case-insensitive.
    pub username: String,
    pub password_hash: String,
    pub nickname: Option<String>,
    pub activated: bool,
    pub created: i64,
    pub modified: i64,
    /// Insertion order, the key of list cursors ("ordered by creation time").
    pub seq: i64,
    /// Optional entity properties (`notification_*`, `notifier_name`, `device_token`), stored
    /// as a JSON object so new Easemob fields need no migration.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// What registering a user stores; the password is already hashed.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub nickname: Option<String>,
}

/// An issued access token. Only the SHA-256 of the token is ever stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: Vec<u8>,
    pub app_id: Uuid,
    /// `None` for an app (admin) token.
    pub user: Option<Uuid>,
    /// Unix ms; `None` never expires (`ttl: 0`).
    pub expires_at: Option<i64>,
    pub created: i64,
}

/// One recipient's copy of a message, before the store gives it its place in the queue. A
/// send makes one per recipient, so acks, recalls and counts are per recipient and never
/// touch other recipients' copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MsgId,
    pub app_id: Uuid,
    /// The recipient.
    pub owner: String,
    /// The queue within the owner's inbox: the peer user of the conversation.
    pub queue: String,
    /// Who sent it (for REST sends `from`, default `admin`).
    pub sender: String,
    /// Unix ms when accepted.
    pub created: i64,
    /// The encoded MSYNC `MessageBody`, ready to be put in a `Meta` without re-encoding.
    pub payload: Bytes,
}

impl NewMessage {
    /// The message as stored at `seq`, not yet delivered.
    pub fn queued(self, seq: u64) -> QueuedMessage {
        let NewMessage { id, app_id, owner, queue, sender, created, payload } = self;
        QueuedMessage { id, app_id, owner, queue, sender, created, payload, seq, delivered: false }
    }
}

/// A message in one recipient's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: MsgId,
    pub app_id: Uuid,
    pub owner: String,
    pub queue: String,
    pub sender: String,
    pub created: i64,
    pub payload: Bytes,
    /// Its place in the queue, assigned at commit (see `store::queues`). 0 only for
    /// online-only messages, which are never stored.
    pub seq: u64,
    /// Acked by at least one device of the owner.
    pub delivered: bool,
}

/// The answer to a send that carried an `Idempotency-Key`, kept so a retry gets the same ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub app_id: Uuid,
    pub key: String,
    /// The response's `data` (recipient → message id), as JSON text.
    pub response: String,
    /// Unix ms; records older than the configured window are ignored and swept.
    pub created: i64,
}

/// A client device (Easemob "resource") that has logged in as a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub resource: String,
    pub device_uuid: String,
    pub device_name: String,
}

/// Why a username is refused; the HTTP layer turns these into Easemob's exact strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsernameError {
    Empty,
    TooLong,
    Illegal,
}

/// Easemob allows at most 64 bytes in a user id.
pub const MAX_USERNAME_BYTES: usize = 64;

/// Lower-cases and validates a user id: 1–64 bytes of `a-z 0-9 _ - .` (Easemob §3.1; upper
/// case is accepted and folded, as the service does).
pub fn normalize_username(raw: &str) -> Result<String, UsernameError> {
    if raw.is_empty() {
        return Err(UsernameError::Empty);
    }
    if raw.len() > MAX_USERNAME_BYTES {
        return Err(UsernameError::TooLong);
    }
    let lower = raw.to_ascii_lowercase();
    if lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')) {
        Ok(lower)
    } else {
        Err(UsernameError::Illegal)
    }
}

/// An uploaded chat file (`POST /chatfiles`): everything needed to serve it, check its
/// share-secret and expire it. The bytes live in the blob store under `blob_key`; no part of
/// a key comes from the request (the client's filename is only metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub uuid: Uuid,
    pub app_id: Uuid,
    /// The uploading user; `None` when the app token uploaded it.
    pub owner: Option<Uuid>,
    /// Served as `Content-Type`: the part's own type, or one guessed from the name or bytes.
    pub content_type: String,
    /// The part's filename as the client sent it, for display only.
    pub filename: Option<String>,
    /// Size in bytes of the original.
    pub length: u64,
    /// Uploaded with `restrict-access`: downloads need `secret`.
    pub restricted: bool,
    /// Easemob's `share-secret`, returned by every upload.
    pub secret: String,
    pub blob_key: String,
    /// A separate thumbnail, when one was made; otherwise the original serves as its own.
    pub thumbnail_key: Option<String>,
    pub thumbnail_content_type: Option<String>,
    pub thumbnail_length: Option<u64>,
    /// Pixel size, for images whose header could be read.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Unix ms.
    pub created: i64,
    /// Unix ms after which downloads answer `file_expired` and the sweeper removes it.
    pub expires: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_check_charset() {
        assert_eq!(normalize_username("User_1.a-b").unwrap(), "user_1.a-b");
        assert_eq!(normalize_username(""), Err(UsernameError::Empty));
        assert_eq!(normalize_username(&"a".repeat(65)), Err(UsernameError::TooLong));
        assert!(normalize_username(&"a".repeat(64)).is_ok());
        assert_eq!(normalize_username("a b"), Err(UsernameError::Illegal));
        assert_eq!(normalize_username("ü"), Err(UsernameError::Illegal));
        assert_eq!(normalize_username("../x"), Err(UsernameError::Illegal));
    }
}
