-- Missive schema v3 (PostgreSQL): the message archive and conversation lists
-- (missive_core::store::history). User names are compared bytewise (COLLATE "C") so the
-- sorted pair and list order are the same in SQL and in Rust.

-- One row per archived one-to-one message, keyed by the time-ordered message id:
-- retention and the hourly export are id-range scans. The parties are stored sorted
-- (`lo` < `hi`), so one index serves a conversation in both directions.
-- `flags`: 1 = `lo` sent it, 2 = hidden from `lo`, 4 = hidden from `hi`.
CREATE TABLE archive (
    id      bigint PRIMARY KEY,
    app_id  uuid NOT NULL,
    lo      text COLLATE "C" NOT NULL,
    hi      text COLLATE "C" NOT NULL,
    flags   integer NOT NULL,
    kind    integer NOT NULL,
    created bigint NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX archive_by_pair ON archive (app_id, lo, hi, id);
CREATE INDEX archive_by_hi ON archive (app_id, hi);

-- One row per (owner, peer) conversation; see the SQLite migration 0006 for the columns.
CREATE TABLE conversations (
    app_id     uuid NOT NULL,
    owner      text COLLATE "C" NOT NULL,
    peer       text COLLATE "C" NOT NULL,
    last_id    bigint NOT NULL,
    read_id    bigint NOT NULL DEFAULT 0,
    cleared_id bigint NOT NULL DEFAULT 0,
    pinned_at  bigint,
    PRIMARY KEY (app_id, owner, peer)
);
CREATE INDEX conversations_by_activity ON conversations (app_id, owner, last_id, peer);
CREATE INDEX conversations_pinned ON conversations (app_id, owner, pinned_at, peer) WHERE pinned_at IS NOT NULL;
