-- Missive schema v13 (SQLite): each archived pair gets an integer id, and `archive_by_pair`
-- is keyed by it.
--
-- The index was `(app_id, lo, hi, id)`: every archived message inserted a 70–77-byte entry
-- (two user names and the app id as 36 characters), 45–48 to a leaf, at its pair's place —
-- the busiest index of the send path with `messages_by_queue` (migration 0012 says the
-- same of that one). `(pair, id)` entries are three small integers. The pair's id is its
-- row id in `archive_pairs`, which every archived message already looked up; pairs are
-- deleted never, so an id is never reused. Deleting a user finds the pairs where they are
-- `lo` through `archive_pairs_by_lo`, and those where they are `hi` through the table's
-- unique key, as before.

CREATE TABLE archive_pairs_by_id (
    id     INTEGER PRIMARY KEY,
    app_id TEXT NOT NULL,
    hi     TEXT NOT NULL,
    lo     TEXT NOT NULL,
    UNIQUE (app_id, hi, lo)
);
INSERT INTO archive_pairs_by_id (app_id, hi, lo) SELECT app_id, hi, lo FROM archive_pairs;
-- Every archived row's pair is recorded (the writer writes both in one transaction); should
-- one not be, it is now.
INSERT OR IGNORE INTO archive_pairs_by_id (app_id, hi, lo) SELECT DISTINCT app_id, hi, lo FROM archive;
DROP TABLE archive_pairs;
ALTER TABLE archive_pairs_by_id RENAME TO archive_pairs;
CREATE INDEX archive_pairs_by_lo ON archive_pairs (app_id, lo);

ALTER TABLE archive ADD COLUMN pair INTEGER NOT NULL DEFAULT 0;
UPDATE archive SET pair = (SELECT p.id FROM archive_pairs p
    WHERE p.app_id = archive.app_id AND p.hi = archive.hi AND p.lo = archive.lo);
DROP INDEX archive_by_pair;
CREATE INDEX archive_by_pair ON archive (pair, id);
