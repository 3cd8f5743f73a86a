-- Missive schema v1 (SQLite). Forward-only: later changes are new files, never edits.

CREATE TABLE apps (
    id                TEXT PRIMARY KEY,
    org               TEXT NOT NULL,
    name              TEXT NOT NULL,
    client_id         TEXT NOT NULL UNIQUE,
    client_secret     TEXT NOT NULL,
    open_registration INTEGER NOT NULL DEFAULT 0,
    created           INTEGER NOT NULL,
    UNIQUE (org, name)
);

CREATE TABLE users (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid          TEXT NOT NULL UNIQUE,
    app_id        TEXT NOT NULL,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    nickname      TEXT,
    activated     INTEGER NOT NULL DEFAULT 1,
    created       INTEGER NOT NULL,
    modified      INTEGER NOT NULL,
    attributes    TEXT NOT NULL DEFAULT '{}',
    UNIQUE (app_id, username)
);

CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY,
    app_id     TEXT NOT NULL,
    user_uuid  TEXT,
    expires_at INTEGER,
    created    INTEGER NOT NULL
);
CREATE INDEX tokens_by_user ON tokens (user_uuid) WHERE user_uuid IS NOT NULL;

-- One row per recipient. `id` is the Snowflake message id, so the table is clustered in
-- send order and retention is a range delete.
CREATE TABLE messages (
    id        INTEGER PRIMARY KEY,
    app_id    TEXT NOT NULL,
    owner     TEXT NOT NULL,
    queue     TEXT NOT NULL,
    sender    TEXT NOT NULL,
    created   INTEGER NOT NULL,
    payload   BLOB NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_by_queue ON messages (app_id, owner, queue, id);
CREATE INDEX messages_undelivered ON messages (app_id, owner, id) WHERE delivered = 0;

CREATE TABLE devices (
    app_id      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    resource    TEXT NOT NULL,
    device_uuid TEXT NOT NULL DEFAULT '',
    device_name TEXT NOT NULL DEFAULT '',
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner, resource)
) WITHOUT ROWID;

-- How far each device has acked each queue (CommSyncUL.key).
CREATE TABLE cursors (
    app_id   TEXT NOT NULL,
    owner    TEXT NOT NULL,
    resource TEXT NOT NULL,
    queue    TEXT NOT NULL,
    acked    INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner, resource, queue)
) WITHOUT ROWID;
