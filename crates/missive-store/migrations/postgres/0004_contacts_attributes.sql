-- Missive schema v4 (PostgreSQL): contacts, contact invitations, blocklists, roster versions
-- (missive_core::store::contacts) and user attributes (missive_core::store::attributes).

-- One row per direction: a user's contact list is one range scan of the primary key.
CREATE TABLE contacts (
    app_id  uuid   NOT NULL,
    owner   text   NOT NULL,
    peer    text   NOT NULL,
    remark  text,
    created bigint NOT NULL,
    updated bigint NOT NULL,
    PRIMARY KEY (app_id, owner, peer)
);
-- Deleting a user finds the rows naming them as the contact.
CREATE INDEX contacts_by_peer ON contacts (app_id, peer);

CREATE TABLE contact_requests (
    app_id    uuid   NOT NULL,
    requester text   NOT NULL,
    target    text   NOT NULL,
    reason    text   NOT NULL,
    created   bigint NOT NULL,
    PRIMARY KEY (app_id, requester, target)
);
CREATE INDEX contact_requests_by_target ON contact_requests (app_id, target);

CREATE TABLE blocks (
    app_id  uuid   NOT NULL,
    owner   text   NOT NULL,
    blocked text   NOT NULL,
    created bigint NOT NULL,
    PRIMARY KEY (app_id, owner, blocked)
);
CREATE INDEX blocks_by_blocked ON blocks (app_id, blocked);

-- Absent = version 0 (contacts never changed).
CREATE TABLE roster_versions (
    app_id  uuid   NOT NULL,
    owner   text   NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (app_id, owner)
);

-- attrs: a JSON object of strings; size: the bytes the 2 KB limit counts (keys + values).
CREATE TABLE user_attributes (
    app_id   uuid   NOT NULL,
    username text   NOT NULL,
    attrs    text   NOT NULL,
    size     bigint NOT NULL,
    updated  bigint NOT NULL,
    PRIMARY KEY (app_id, username)
);
