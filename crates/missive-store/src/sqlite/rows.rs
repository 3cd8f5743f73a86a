//! Row mapping for SQLite: rusqlite rows to domain records, and rusqlite errors to
//! `StoreError`s callers can act on. Column lists are named once here and shared by every
//! query that reads a record, so a query and its mapping cannot drift apart.

use std::str::FromStr;

use bytes::Bytes;
use missive_core::id::MsgId;
use missive_core::model::{App, FileRecord, QueuedMessage, TokenRecord, User};
use missive_core::store::{StoreError, StoreResult};
use rusqlite::Row;
use uuid::Uuid;

/// The `users` columns `user` reads.
pub(crate) const USER_COLUMNS: &str =
    "seq, uuid, app_id, username, password_hash, nickname, activated, created, modified, attributes";
/// The `messages` columns `message` reads.
pub(crate) const MESSAGE_COLUMNS: &str = "id, app_id, owner, queue, sender, created, payload, seq";
/// The undelivered messages (`m`): those above their queue's delivered prefix (`q`), found
/// queue by queue through `messages_by_queue` (`CROSS JOIN` keeps the queues outside: the
/// other order walks every stored message, delivered ones included).
macro_rules! undelivered {
    () => {
        "FROM queues q CROSS JOIN messages m ON m.qid = q.id AND m.seq > q.delivered"
    };
}
/// Every undelivered message.
pub(crate) const UNDELIVERED: &str = undelivered!();
/// The undelivered messages of owner `?2` in app `?1`.
pub(crate) const UNDELIVERED_OF_OWNER: &str = concat!(undelivered!(), " WHERE q.app_id = ?1 AND q.owner = ?2");
/// The `files` columns `file` reads.
pub(crate) const FILE_COLUMNS: &str = "uuid, app_id, owner, content_type, filename, length, restricted, secret, \
     blob_key, thumbnail_key, thumbnail_content_type, thumbnail_length, width, height, created, expires";
/// The `apps` columns `app` reads.
pub(crate) const APP_COLUMNS: &str = "id, org, name, client_id, client_secret, open_registration, created";
/// The `tokens` columns `token` reads.
pub(crate) const TOKEN_COLUMNS: &str = "hash, app_id, user_uuid, expires_at, created";

/// Maps rusqlite errors to what callers can act on, keeping the rest as text for the log.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation
                if matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict("unique")
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy,
            ErrorCode::DiskFull => StoreError::Full,
            _ => StoreError::Backend(e.to_string()),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

fn uuid(row: &Row<'_>, col: &str) -> rusqlite::Result<Uuid> {
    let s: String = row.get(col)?;
    Uuid::from_str(&s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into()))
}

fn opt_uuid(row: &Row<'_>, col: &str) -> rusqlite::Result<Option<Uuid>> {
    let s: Option<String> = row.get(col)?;
    Ok(s.and_then(|s| Uuid::from_str(&s).ok()))
}

pub(crate) fn app(row: &Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        id: uuid(row, "id")?,
        org: row.get("org")?,
        name: row.get("name")?,
        client_id: row.get("client_id")?,
        client_secret: row.get("client_secret")?,
        open_registration: row.get("open_registration")?,
        created: row.get("created")?,
    })
}

pub(crate) fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    let attrs: String = row.get("attributes")?;
    Ok(User {
        uuid: uuid(row, "uuid")?,
        app_id: uuid(row, "app_id")?,
        username: row.get("username")?,
        password_hash: row.get("password_hash")?,
        nickname: row.get("nickname")?,
        activated: row.get("activated")?,
        created: row.get("created")?,
        modified: row.get("modified")?,
        seq: row.get("seq")?,
        attributes: serde_json::from_str(&attrs).unwrap_or_default(),
    })
}

pub(crate) fn token(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        hash: row.get("hash")?,
        app_id: uuid(row, "app_id")?,
        user: opt_uuid(row, "user_uuid")?,
        expires_at: row.get("expires_at")?,
        created: row.get("created")?,
    })
}

pub(crate) fn message(row: &Row<'_>) -> rusqlite::Result<QueuedMessage> {
    let id: i64 = row.get("id")?;
    let seq: i64 = row.get("seq")?;
    let payload: Vec<u8> = row.get("payload")?;
    Ok(QueuedMessage {
        id: MsgId(id as u64),
        app_id: uuid(row, "app_id")?,
        owner: row.get("owner")?,
        queue: row.get("queue")?,
        sender: row.get("sender")?,
        created: row.get("created")?,
        payload: Bytes::from(payload),
        seq: seq as u64,
        delivered: false,
    })
}

pub(crate) fn file(row: &Row<'_>) -> rusqlite::Result<FileRecord> {
    let length: i64 = row.get("length")?;
    let thumbnail_length: Option<i64> = row.get("thumbnail_length")?;
    let width: Option<i64> = row.get("width")?;
    let height: Option<i64> = row.get("height")?;
    Ok(FileRecord {
        uuid: uuid(row, "uuid")?,
        app_id: uuid(row, "app_id")?,
        owner: opt_uuid(row, "owner")?,
        content_type: row.get("content_type")?,
        filename: row.get("filename")?,
        length: length as u64,
        restricted: row.get("restricted")?,
        secret: row.get("secret")?,
        blob_key: row.get("blob_key")?,
        thumbnail_key: row.get("thumbnail_key")?,
        thumbnail_content_type: row.get("thumbnail_content_type")?,
        thumbnail_length: thumbnail_length.map(|n| n as u64),
        width: width.map(|n| n as u32),
        height: height.map(|n| n as u32),
        created: row.get("created")?,
        expires: row.get("expires")?,
    })
}

/// Shorthand for a mapped query result.
pub(crate) trait SqlResultExt<T> {
    fn store(self) -> StoreResult<T>;
}

impl<T> SqlResultExt<T> for rusqlite::Result<T> {
    fn store(self) -> StoreResult<T> {
        self.map_err(map_err)
    }
}
