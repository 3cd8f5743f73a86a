-- Missive schema v1 (PostgreSQL). Forward-only: later changes are new files, never edits.
-- The same tables and meaning as the SQLite schema at its version 4 (queue sequences).

CREATE TABLE apps (
    id                uuid PRIMARY KEY,
    org               text NOT NULL,
    name              text NOT NULL,
    client_id         text NOT NULL UNIQUE,
    client_secret     text NOT NULL,
    open_registration boolean NOT NULL DEFAULT false,
    created           bigint NOT NULL,
    UNIQUE (org, name)
);

CREATE TABLE users (
    seq           bigserial PRIMARY KEY,
    uuid          uuid NOT NULL UNIQUE,
    app_id        uuid NOT NULL,
    username      text NOT NULL,
    password_hash text NOT NULL,
    nickname      text,
    activated     boolean NOT NULL DEFAULT true,
    created       bigint NOT NULL,
    modified      bigint NOT NULL,
    attributes    text NOT NULL DEFAULT '{}',
    UNIQUE (app_id, username)
);

CREATE TABLE tokens (
    hash       bytea PRIMARY KEY,
    app_id     uuid NOT NULL,
    user_uuid  uuid,
    expires_at bigint,
    created    bigint NOT NULL
);
CREATE INDEX tokens_by_user ON tokens (user_uuid) WHERE user_uuid IS NOT NULL;

-- One row per recipient; `seq` is the message's place in its queue (app, owner, queue),
-- assigned at commit from `queues.head` (see missive_core::store::queues).
CREATE TABLE messages (
    id        bigint PRIMARY KEY,
    app_id    uuid NOT NULL,
    owner     text NOT NULL,
    queue     text NOT NULL,
    sender    text NOT NULL,
    created   bigint NOT NULL,
    payload   bytea NOT NULL,
    seq       bigint NOT NULL,
    delivered boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX messages_by_queue ON messages (app_id, owner, queue, seq);
CREATE INDEX messages_undelivered ON messages (app_id, owner, queue, seq) WHERE NOT delivered;

-- The last sequence each queue assigned. Writers update it in the transaction that inserts
-- the messages, so concurrent writers to one queue serialize on this row and commit in
-- sequence order.
CREATE TABLE queues (
    app_id uuid NOT NULL,
    owner  text NOT NULL,
    queue  text NOT NULL,
    head   bigint NOT NULL,
    PRIMARY KEY (app_id, owner, queue)
);

CREATE TABLE devices (
    app_id      uuid NOT NULL,
    owner       text NOT NULL,
    resource    text NOT NULL,
    device_uuid text NOT NULL DEFAULT '',
    device_name text NOT NULL DEFAULT '',
    first_seen  bigint NOT NULL,
    last_seen   bigint NOT NULL,
    PRIMARY KEY (app_id, owner, resource)
);

-- How far each device has acked each queue, as a sequence.
CREATE TABLE cursors (
    app_id   uuid NOT NULL,
    owner    text NOT NULL,
    resource text NOT NULL,
    queue    text NOT NULL,
    acked    bigint NOT NULL,
    PRIMARY KEY (app_id, owner, resource, queue)
);

CREATE TABLE files (
    uuid                   uuid PRIMARY KEY,
    app_id                 uuid NOT NULL,
    owner                  uuid,
    content_type           text NOT NULL,
    filename               text,
    length                 bigint NOT NULL,
    restricted             boolean NOT NULL,
    secret                 text NOT NULL,
    blob_key               text NOT NULL,
    thumbnail_key          text,
    thumbnail_content_type text,
    thumbnail_length       bigint,
    width                  bigint,
    height                 bigint,
    created                bigint NOT NULL,
    expires                bigint NOT NULL
);
CREATE INDEX files_by_expiry ON files (expires);

CREATE TABLE idempotency (
    app_id   uuid NOT NULL,
    key      text NOT NULL,
    response text NOT NULL,
    created  bigint NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created);
