-- Callbacks and push (issue 15): rules, bans, providers, the outbox and exception storage.
-- docs/notify-storage.md explains each table and the operations on it.

-- Post-send and pre-send rules; the rule itself is JSON owned by missive-notify. Names are
-- unique per app across both kinds.
CREATE TABLE notify_rules (
    id       TEXT    PRIMARY KEY,
    app_id   TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('post', 'pre')),
    name     TEXT    NOT NULL,
    rule     TEXT    NOT NULL,
    created  INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    UNIQUE (app_id, name)
);

-- One row, advanced in the transaction of every change to rules, bans and providers;
-- servers poll it and reload their caches when it moved.
CREATE TABLE notify_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO notify_generation VALUES (1, 0);

-- Running and recent bans of failing endpoints, so every node honours them.
CREATE TABLE notify_bans (
    rule_id      TEXT    PRIMARY KEY,
    banned_from  INTEGER NOT NULL,
    banned_until INTEGER NOT NULL,
    nth          INTEGER NOT NULL
);

-- Push providers of an app by notifier name; `config` holds private keys.
CREATE TABLE push_providers (
    app_id   TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    config   TEXT    NOT NULL,
    modified INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
) WITHOUT ROWID;

-- Callbacks (kind 1) and pushes (kind 2) waiting to be sent. While leased, `due_at` is the
-- lease's end and `claim` the fencing token of the claim holding it.
CREATE TABLE notify_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT    NOT NULL,
    kind         INTEGER NOT NULL,
    rule_id      TEXT,
    dedup_key    TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    claim        INTEGER,
    url_override TEXT,
    exception_id INTEGER,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    UNIQUE (app_id, kind, dedup_key)
);
CREATE INDEX notify_outbox_due ON notify_outbox (due_at, id);

-- Callbacks that ran out of attempts, in 10-minute slices (`date_key`), kept 3 days.
CREATE TABLE notify_exceptions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id     TEXT    NOT NULL,
    rule_id    TEXT    NOT NULL,
    date_key   TEXT    NOT NULL,
    target_url TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    failed_at  INTEGER NOT NULL
);
CREATE INDEX notify_exceptions_slice ON notify_exceptions (app_id, date_key);
CREATE INDEX notify_exceptions_age ON notify_exceptions (failed_at);

-- How many times each slice was re-sent (`storage/retry`).
CREATE TABLE notify_exception_retries (
    app_id   TEXT    NOT NULL,
    date_key TEXT    NOT NULL,
    retries  INTEGER NOT NULL,
    PRIMARY KEY (app_id, date_key)
) WITHOUT ROWID;
