-- Missive schema v12 (SQLite): each queue gets an integer id, and `messages_by_queue` is
-- keyed by it.
--
-- The index was `(app_id, owner, queue, seq)`: 70–77-byte entries, half of each the app id as
-- 36 characters, 45–48 to a leaf. Every message inserts one entry at its queue's tail, and
-- full leaves were rebalanced with their siblings: ≈ 1.6 pages written to the WAL per insert,
-- and every lookup compared the same app id again on each level. `(qid, seq)` entries are
-- three small integers (≈ 15 bytes), so a leaf takes five times as many, and they compare
-- as integers. The id is the queue row's rowid; `(app_id, owner, queue)` stays unique, as
-- the primary key was. Queue rows are never deleted (a sequence is never handed out twice),
-- so an id is never reused.

CREATE TABLE queues_by_id (
    id        INTEGER PRIMARY KEY,
    app_id    TEXT NOT NULL,
    owner     TEXT NOT NULL,
    queue     TEXT NOT NULL,
    head      INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    UNIQUE (app_id, owner, queue)
);
INSERT INTO queues_by_id (app_id, owner, queue, head, delivered)
    SELECT app_id, owner, queue, head, delivered FROM queues;
-- Every stored message has its queue's row (the writer writes both in one transaction);
-- should one not, it gets one rather than lose its messages.
INSERT OR IGNORE INTO queues_by_id (app_id, owner, queue, head, delivered)
    SELECT app_id, owner, queue, MAX(seq), 0 FROM messages GROUP BY app_id, owner, queue;
DROP TABLE queues;
ALTER TABLE queues_by_id RENAME TO queues;

ALTER TABLE messages ADD COLUMN qid INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET qid = (SELECT q.id FROM queues q
    WHERE q.app_id = messages.app_id AND q.owner = messages.owner AND q.queue = messages.queue);
DROP INDEX messages_by_queue;
CREATE UNIQUE INDEX messages_by_queue ON messages (qid, seq);
