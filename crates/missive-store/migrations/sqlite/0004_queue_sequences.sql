-- Missive schema v4 (SQLite): per-queue sequences (see missive_core::store::queues).
--
-- Every message gets its queue's sequence, assigned at commit from then on; for existing
-- rows it is their rank by id within the queue (ids were assigned in time order, and the
-- queue's order was id order). Device cursors become sequences: a cursor that acked id K
-- now holds the sequence of the last stored message of that queue with id <= K, which is
-- exactly what the device had (0 when nothing it acked is still stored).

ALTER TABLE messages ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;

CREATE TEMP TABLE message_seqs AS
    SELECT id, ROW_NUMBER() OVER (PARTITION BY app_id, owner, queue ORDER BY id) AS n FROM messages;
UPDATE messages SET seq = message_seqs.n FROM message_seqs WHERE message_seqs.id = messages.id;
DROP TABLE message_seqs;

-- Converted while the old by-id index still serves the lookup.
UPDATE cursors SET acked = COALESCE((
    SELECT MAX(m.seq) FROM messages m
    WHERE m.app_id = cursors.app_id AND m.owner = cursors.owner AND m.queue = cursors.queue AND m.id <= cursors.acked
), 0);

-- The last sequence each queue assigned. Kept when messages are deleted, so a sequence is
-- never handed out twice.
CREATE TABLE queues (
    app_id TEXT NOT NULL,
    owner  TEXT NOT NULL,
    queue  TEXT NOT NULL,
    head   INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner, queue)
) WITHOUT ROWID;
INSERT INTO queues (app_id, owner, queue, head)
    SELECT app_id, owner, queue, MAX(seq) FROM messages GROUP BY app_id, owner, queue;

DROP INDEX messages_by_queue;
DROP INDEX messages_undelivered;
CREATE UNIQUE INDEX messages_by_queue ON messages (app_id, owner, queue, seq);
CREATE INDEX messages_undelivered ON messages (app_id, owner, queue, seq) WHERE delivered = 0;
