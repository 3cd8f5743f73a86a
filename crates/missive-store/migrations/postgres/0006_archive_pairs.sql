-- Missive schema v6 (PostgreSQL): the archive's pairs replace its index by `hi`; see the
-- SQLite migration 0009 for why.
CREATE TABLE archive_pairs (
    app_id uuid NOT NULL,
    hi     text COLLATE "C" NOT NULL,
    lo     text COLLATE "C" NOT NULL,
    PRIMARY KEY (app_id, hi, lo)
);
INSERT INTO archive_pairs (app_id, hi, lo) SELECT DISTINCT app_id, hi, lo FROM archive ON CONFLICT DO NOTHING;
DROP INDEX archive_by_hi;
