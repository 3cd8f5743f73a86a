-- Callbacks and push (issue 15): rules, bans, providers, the outbox and exception storage.
-- The same tables and meaning as SQLite's 0005; docs/notify-storage.md explains them.

CREATE TABLE notify_rules (
    id       text   PRIMARY KEY,
    app_id   uuid   NOT NULL,
    kind     text   NOT NULL CHECK (kind IN ('post', 'pre')),
    name     text   NOT NULL,
    rule     text   NOT NULL,
    created  bigint NOT NULL,
    modified bigint NOT NULL,
    UNIQUE (app_id, name)
);

-- One row, advanced in the transaction of every change to rules, bans and providers.
CREATE TABLE notify_generation (
    id         integer PRIMARY KEY CHECK (id = 1),
    generation bigint  NOT NULL
);
INSERT INTO notify_generation VALUES (1, 0);

CREATE TABLE notify_bans (
    rule_id      text   PRIMARY KEY,
    banned_from  bigint NOT NULL,
    banned_until bigint NOT NULL,
    nth          integer NOT NULL
);

CREATE TABLE push_providers (
    app_id   uuid   NOT NULL,
    name     text   NOT NULL,
    config   text   NOT NULL,
    modified bigint NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- While leased, `due_at` is the lease's end and `claim` the fencing token. Claims take rows
-- with FOR UPDATE SKIP LOCKED, so nodes claiming at once skip each other's rows.
CREATE TABLE notify_outbox (
    id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id       uuid    NOT NULL,
    kind         smallint NOT NULL,
    rule_id      text,
    dedup_key    text    NOT NULL,
    payload      text    NOT NULL,
    due_at       bigint  NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    lease_owner  text,
    claim        bigint,
    url_override text,
    exception_id bigint,
    last_error   text,
    created      bigint  NOT NULL,
    UNIQUE (app_id, kind, dedup_key)
);
CREATE INDEX notify_outbox_due ON notify_outbox (due_at, id);

CREATE TABLE notify_exceptions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id     uuid   NOT NULL,
    rule_id    text   NOT NULL,
    date_key   text   NOT NULL,
    target_url text   NOT NULL,
    payload    text   NOT NULL,
    reason     text   NOT NULL,
    failed_at  bigint NOT NULL
);
CREATE INDEX notify_exceptions_slice ON notify_exceptions (app_id, date_key);
CREATE INDEX notify_exceptions_age ON notify_exceptions (failed_at);

CREATE TABLE notify_exception_retries (
    app_id   uuid    NOT NULL,
    date_key text    NOT NULL,
    retries  integer NOT NULL,
    PRIMARY KEY (app_id, date_key)
);
