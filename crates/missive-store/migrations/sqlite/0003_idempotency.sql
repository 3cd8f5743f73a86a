-- Idempotent sends (Missive extension): the answer given to a request carrying an
-- Idempotency-Key, written in the same transaction as the messages it queued, so a retry
-- after a crash gets the same ids and queues nothing new.
CREATE TABLE idempotency (
    app_id   TEXT NOT NULL,
    key      TEXT NOT NULL,
    response TEXT NOT NULL,
    created  INTEGER NOT NULL,
    PRIMARY KEY (app_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created);
