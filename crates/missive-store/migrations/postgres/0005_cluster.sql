-- Missive schema v5 (PostgreSQL): node id leases and presence, the state several nodes
-- share (see missive_core::store::cluster). Both are leases renewed by their node; rows of
-- a node that stopped renewing are ignored once `expires_at` passes.

CREATE TABLE nodes (
    node_id    integer PRIMARY KEY,
    owner      uuid NOT NULL,
    expires_at bigint NOT NULL
);

-- Presence changes on every login and logout and is rebuilt by renewals: no WAL needed for
-- it to be right after a crash, where every node reconnects its clients anyway.
CREATE UNLOGGED TABLE presence (
    app_id      uuid NOT NULL,
    username    text NOT NULL,
    resource    text NOT NULL,
    device_uuid text NOT NULL,
    device_name text NOT NULL,
    node_id     integer NOT NULL,
    session_id  bigint NOT NULL,
    owner       uuid NOT NULL,
    expires_at  bigint NOT NULL,
    PRIMARY KEY (app_id, username, resource)
);
CREATE INDEX presence_by_owner ON presence (owner);
