-- Missive schema v10 (SQLite): each queue's delivered prefix replaces the per-message flag.
--
-- An ack marked every message of its queue up to its sequence delivered, so the delivered
-- messages of a queue were always a prefix of it. `queues.delivered` keeps where that
-- prefix ends: a message is undelivered exactly when its `seq` is above it. An ack now moves
-- one number in a row the send path writes anyway, where it updated every message it covered
-- and an entry of `messages_undelivered` per message; a send no longer writes that index.
-- The prefix of an existing queue is the highest it reached by either account: the flags
-- of its stored messages, or its devices' cursors (acks of messages since removed).

ALTER TABLE queues ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;

UPDATE queues SET delivered = MIN(head, MAX(
    COALESCE((SELECT MAX(m.seq) FROM messages m WHERE m.app_id = queues.app_id AND m.owner = queues.owner
              AND m.queue = queues.queue AND m.delivered = 1), 0),
    COALESCE((SELECT MAX(c.acked) FROM cursors c WHERE c.app_id = queues.app_id AND c.owner = queues.owner
              AND c.queue = queues.queue), 0)));

DROP INDEX messages_undelivered;
ALTER TABLE messages DROP COLUMN delivered;
