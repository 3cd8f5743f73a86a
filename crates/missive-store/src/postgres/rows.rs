//! Row mapping for PostgreSQL: sqlx rows to domain records, and sqlx errors to `StoreError`s
//! callers can act on. Column lists are the same names as SQLite's, named once here.

use bytes::Bytes;
use missive_core::id::MsgId;
use missive_core::model::{App, FileRecord, QueuedMessage, TokenRecord, User};
use missive_core::store::{StoreError, StoreResult};
use sqlx::Row;
use sqlx::postgres::PgRow;

pub(crate) const USER_COLUMNS: &str =
    "seq, uuid, app_id, username, password_hash, nickname, activated, created, modified, attributes";
pub(crate) const MESSAGE_COLUMNS: &str = "id, app_id, owner, queue, sender, created, payload, seq, delivered";
pub(crate) const FILE_COLUMNS: &str = "uuid, app_id, owner, content_type, filename, length, restricted, secret, \
     blob_key, thumbnail_key, thumbnail_content_type, thumbnail_length, width, height, created, expires";
pub(crate) const APP_COLUMNS: &str = "id, org, name, client_id, client_secret, open_registration, created";
pub(crate) const TOKEN_COLUMNS: &str = "hash, app_id, user_uuid, expires_at, created";

/// SQLSTATE classes a batch is retried on: the transaction lost a race, not a rule.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// Maps sqlx errors to what callers can act on, keeping the rest as text for the log.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("23505") => StoreError::Conflict("unique"),
            // Deadlock, serialization failure, lock or statement timeout, too many clients.
            Some("40P01" | "40001" | "55P03" | "57014" | "53300") => StoreError::Busy,
            Some("53100") => StoreError::Full,
            _ => StoreError::Backend(e.to_string()),
        },
        // The database is unreachable (down, restarting, network): the caller may retry,
        // so a 503, not a 500.
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => StoreError::Busy,
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Shorthand for a mapped query result.
pub(crate) trait PgResultExt<T> {
    fn store(self) -> StoreResult<T>;
}

impl<T> PgResultExt<T> for Result<T, sqlx::Error> {
    fn store(self) -> StoreResult<T> {
        self.map_err(map_err)
    }
}

pub(crate) fn app(row: &PgRow) -> StoreResult<App> {
    Ok(App {
        id: row.try_get("id").store()?,
        org: row.try_get("org").store()?,
        name: row.try_get("name").store()?,
        client_id: row.try_get("client_id").store()?,
        client_secret: row.try_get("client_secret").store()?,
        open_registration: row.try_get("open_registration").store()?,
        created: row.try_get("created").store()?,
    })
}

pub(crate) fn user(row: &PgRow) -> StoreResult<User> {
    let attrs: String = row.try_get("attributes").store()?;
    Ok(User {
        uuid: row.try_get("uuid").store()?,
        app_id: row.try_get("app_id").store()?,
        username: row.try_get("username").store()?,
        password_hash: row.try_get("password_hash").store()?,
        nickname: row.try_get("nickname").store()?,
        activated: row.try_get("activated").store()?,
        created: row.try_get("created").store()?,
        modified: row.try_get("modified").store()?,
        seq: row.try_get("seq").store()?,
        attributes: serde_json::from_str(&attrs).unwrap_or_default(),
    })
}

pub(crate) fn token(row: &PgRow) -> StoreResult<TokenRecord> {
    Ok(TokenRecord {
        hash: row.try_get("hash").store()?,
        app_id: row.try_get("app_id").store()?,
        user: row.try_get("user_uuid").store()?,
        expires_at: row.try_get("expires_at").store()?,
        created: row.try_get("created").store()?,
    })
}

pub(crate) fn message(row: &PgRow) -> StoreResult<QueuedMessage> {
    let id: i64 = row.try_get("id").store()?;
    let seq: i64 = row.try_get("seq").store()?;
    let payload: Vec<u8> = row.try_get("payload").store()?;
    Ok(QueuedMessage {
        id: MsgId(id as u64),
        app_id: row.try_get("app_id").store()?,
        owner: row.try_get("owner").store()?,
        queue: row.try_get("queue").store()?,
        sender: row.try_get("sender").store()?,
        created: row.try_get("created").store()?,
        payload: Bytes::from(payload),
        seq: seq as u64,
        delivered: row.try_get("delivered").store()?,
    })
}

pub(crate) fn file(row: &PgRow) -> StoreResult<FileRecord> {
    let length: i64 = row.try_get("length").store()?;
    let thumbnail_length: Option<i64> = row.try_get("thumbnail_length").store()?;
    let width: Option<i64> = row.try_get("width").store()?;
    let height: Option<i64> = row.try_get("height").store()?;
    Ok(FileRecord {
        uuid: row.try_get("uuid").store()?,
        app_id: row.try_get("app_id").store()?,
        owner: row.try_get("owner").store()?,
        content_type: row.try_get("content_type").store()?,
        filename: row.try_get("filename").store()?,
        length: length as u64,
        restricted: row.try_get("restricted").store()?,
        secret: row.try_get("secret").store()?,
        blob_key: row.try_get("blob_key").store()?,
        thumbnail_key: row.try_get("thumbnail_key").store()?,
        thumbnail_content_type: row.try_get("thumbnail_content_type").store()?,
        thumbnail_length: thumbnail_length.map(|n| n as u64),
        width: width.map(|n| n as u32),
        height: height.map(|n| n as u32),
        created: row.try_get("created").store()?,
        expires: row.try_get("expires").store()?,
    })
}
