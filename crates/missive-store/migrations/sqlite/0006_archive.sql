-- Missive schema v6 (SQLite): the message archive and conversation lists
-- (missive_core::store::history).

-- One row per archived one-to-one message. `id` is the message id, so the table is
-- clustered in time order: retention and the hourly export are id-range scans. The two
-- parties are stored sorted (`lo` < `hi`), so one index serves a conversation in both
-- directions. `flags`: 1 = `lo` sent it, 2 = hidden from `lo`, 4 = hidden from `hi`.
CREATE TABLE archive (
    id      INTEGER PRIMARY KEY,
    app_id  TEXT NOT NULL,
    lo      TEXT NOT NULL,
    hi      TEXT NOT NULL,
    flags   INTEGER NOT NULL,
    kind    INTEGER NOT NULL,
    created INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX archive_by_pair ON archive (app_id, lo, hi, id);
-- Deleting a user hides their side wherever they are `hi`.
CREATE INDEX archive_by_hi ON archive (app_id, hi);

-- One row per (owner, peer) conversation. `last_id`: the newest message the owner can see
-- after `cleared_id` (0: none); `read_id`: the owner's read position (channel acks);
-- `cleared_id`: the owner deleted the conversation up to here; `pinned_at`: Unix ms.
CREATE TABLE conversations (
    app_id     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    peer       TEXT NOT NULL,
    last_id    INTEGER NOT NULL,
    read_id    INTEGER NOT NULL DEFAULT 0,
    cleared_id INTEGER NOT NULL DEFAULT 0,
    pinned_at  INTEGER,
    PRIMARY KEY (app_id, owner, peer)
) WITHOUT ROWID;
CREATE INDEX conversations_by_activity ON conversations (app_id, owner, last_id, peer);
CREATE INDEX conversations_pinned ON conversations (app_id, owner, pinned_at, peer) WHERE pinned_at IS NOT NULL;
