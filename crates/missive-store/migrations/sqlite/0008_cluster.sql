-- Missive schema v8 (SQLite): node id leases and presence (see missive_core::store::cluster).
-- A single embedded server does not use them (its data directory lock already makes it the
-- only node); they exist so both backends implement the same `Store`.

CREATE TABLE nodes (
    node_id    INTEGER PRIMARY KEY,
    owner      TEXT NOT NULL,     -- the running instance holding the id
    expires_at INTEGER NOT NULL   -- ms; free once past
);

CREATE TABLE presence (
    app_id      TEXT NOT NULL,
    username    TEXT NOT NULL,
    resource    TEXT NOT NULL,
    device_uuid TEXT NOT NULL,
    device_name TEXT NOT NULL,
    node_id     INTEGER NOT NULL,
    session_id  INTEGER NOT NULL,
    owner       TEXT NOT NULL,    -- the instance that renews the row
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, username, resource)
) WITHOUT ROWID;
CREATE INDEX presence_by_owner ON presence (owner);
