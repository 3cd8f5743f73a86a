-- Missive schema v7 (SQLite): contacts, contact invitations, blocklists, roster versions
-- (missive_core::store::contacts) and user attributes (missive_core::store::attributes).

-- One row per direction: a user's contact list is one range scan of the primary key.
CREATE TABLE contacts (
    app_id  TEXT    NOT NULL,
    owner   TEXT    NOT NULL,
    peer    TEXT    NOT NULL,
    remark  TEXT,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner, peer)
) WITHOUT ROWID;
-- Deleting a user finds the rows naming them as the contact.
CREATE INDEX contacts_by_peer ON contacts (app_id, peer);

CREATE TABLE contact_requests (
    app_id    TEXT    NOT NULL,
    requester TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    created   INTEGER NOT NULL,
    PRIMARY KEY (app_id, requester, target)
) WITHOUT ROWID;
CREATE INDEX contact_requests_by_target ON contact_requests (app_id, target);

CREATE TABLE blocks (
    app_id  TEXT    NOT NULL,
    owner   TEXT    NOT NULL,
    blocked TEXT    NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner, blocked)
) WITHOUT ROWID;
CREATE INDEX blocks_by_blocked ON blocks (app_id, blocked);

-- Absent = version 0 (contacts never changed).
CREATE TABLE roster_versions (
    app_id  TEXT    NOT NULL,
    owner   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner)
) WITHOUT ROWID;

-- attrs: a JSON object of strings; size: the bytes the 2 KB limit counts (keys + values).
CREATE TABLE user_attributes (
    app_id   TEXT    NOT NULL,
    username TEXT    NOT NULL,
    attrs    TEXT    NOT NULL,
    size     INTEGER NOT NULL,
    updated  INTEGER NOT NULL,
    PRIMARY KEY (app_id, username)
) WITHOUT ROWID;
