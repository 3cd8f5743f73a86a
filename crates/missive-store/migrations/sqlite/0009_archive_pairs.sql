-- Missive schema v9 (SQLite): the archive's pairs replace its index by `hi`.
--
-- `archive_by_hi` had an entry per archived message only so that deleting a user could find
-- the rows where they are `hi`; it cost a B-tree write per message on the send path. A
-- pair's row is written once (later messages find it and write nothing), and deleting a user
-- walks their pairs, each one range of `archive_by_pair`.
CREATE TABLE archive_pairs (
    app_id TEXT NOT NULL,
    hi     TEXT NOT NULL,
    lo     TEXT NOT NULL,
    PRIMARY KEY (app_id, hi, lo)
) WITHOUT ROWID;
INSERT OR IGNORE INTO archive_pairs (app_id, hi, lo) SELECT DISTINCT app_id, hi, lo FROM archive;
DROP INDEX archive_by_hi;
