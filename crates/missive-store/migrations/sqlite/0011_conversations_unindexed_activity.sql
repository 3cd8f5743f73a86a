-- Missive schema v11 (SQLite): no index of conversations by activity.
--
-- Every message moved its conversation's entry in this index for both parties (a delete at
-- the old position, an insert at the new one): two B-tree pages per side on the send path,
-- for a list read a page at a time. A list page now sorts the owner's conversation rows,
-- found through the primary key, and computes the latest message and unread count for that
-- page only (`crate::archive::list_sql`).

DROP INDEX conversations_by_activity;
