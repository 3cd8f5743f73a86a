-- Missive schema v2 (SQLite): uploaded chat files (`POST /chatfiles`).
-- The bytes live in the blob store; this is what serving, share-secrets and expiry need.

CREATE TABLE files (
    uuid                   TEXT PRIMARY KEY,
    app_id                 TEXT NOT NULL,
    owner                  TEXT,             -- uploading user's uuid; NULL for the app token
    content_type           TEXT NOT NULL,
    filename               TEXT,             -- as the client sent it; display only, never a path
    length                 INTEGER NOT NULL,
    restricted             INTEGER NOT NULL,
    secret                 TEXT NOT NULL,
    blob_key               TEXT NOT NULL,
    thumbnail_key          TEXT,             -- NULL: the original is its own thumbnail
    thumbnail_content_type TEXT,
    thumbnail_length       INTEGER,
    width                  INTEGER,
    height                 INTEGER,
    created                INTEGER NOT NULL,
    expires                INTEGER NOT NULL
);
-- The sweeper takes the soonest-expired first.
CREATE INDEX files_by_expiry ON files (expires);
