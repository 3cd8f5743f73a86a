//! The message archive's rows and statements, shared by both backends
//! (`missive_core::store::history` says what they mean).
//!
//! A row stores its two parties sorted (`lo` ≤ `hi`, compared bytewise: SQLite's default
//! collation, `COLLATE "C"` on PostgreSQL, `Ord` on `String`) and a `flags` word: [`LO_SENT`],
//! [`HIDDEN_LO`], [`HIDDEN_HI`]. Which bits mean "hidden from me" and "sent by my peer"
//! depends only on which side of the pair a user is, so every per-user query is "the pair's
//! index range, filtered by two bit tests" ([`View`]).
//!
//! The statements are written once, in PostgreSQL's `$n` placeholders; SQLite reads them
//! through [`sqlite`] (`?n`, the same numbering). Both dialects accept everything used here:
//! row-value comparisons, `CASE`, bitwise `&`/`>>`, correlated subqueries, `RETURNING`. The
//! one difference is how a pair's rows are found ([`Backend`]): the statements that select
//! them are built for the backend they run on.

use bytes::Bytes;
use missive_core::archive::{ArchivedMessage, Direction, HistoryQuery, KindSet};
use missive_core::id::MsgId;
use missive_core::store::NewArchived;

/// `lo` sent the message (else `hi` did).
pub(crate) const LO_SENT: i32 = 1;
/// Hidden from `lo`'s history.
pub(crate) const HIDDEN_LO: i32 = 2;
/// Hidden from `hi`'s history.
pub(crate) const HIDDEN_HI: i32 = 4;

/// The same statement with SQLite's `?n` placeholders.
pub(crate) fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Which backend a statement is built for. PostgreSQL indexes a pair's rows by
/// `(app_id, lo, hi, id)`; SQLite by `(pair, id)`, where `pair` is the row id of the pair in
/// `archive_pairs`: entries of three small integers instead of two names and the app id as
/// 36 characters, five times as many to a page on the send path's busiest index (SQLite
/// migration 0013).
#[derive(Clone, Copy)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// `sql` (written with `$n` placeholders) as this backend takes it.
    fn finish(self, sql: String) -> String {
        match self {
            Backend::Postgres => sql,
            Backend::Sqlite => sqlite(&sql),
        }
    }

    /// The condition selecting `rows`' part of the conversation between `lo` and `hi` in
    /// `app` (SQL expressions), as this backend's index finds it.
    fn pair_rows(self, rows: &str, app: &str, lo: &str, hi: &str) -> String {
        match self {
            Backend::Postgres => format!("{rows}.app_id = {app} AND {rows}.lo = {lo} AND {rows}.hi = {hi}"),
            Backend::Sqlite => format!(
                "{rows}.pair = (SELECT p.id FROM archive_pairs p WHERE p.app_id = {app} AND p.hi = {hi} AND p.lo = {lo})"
            ),
        }
    }

    /// The condition selecting the rows of app `$1` where user `$2` is on `side` of the
    /// pair. Rows where they are `hi` are found by pair (`archive_pairs`) on both backends,
    /// each pair one range of `archive_by_pair`.
    fn side_rows(self, side: Side) -> String {
        match (self, side) {
            (Backend::Postgres, Side::Lo) => "app_id = $1 AND lo = $2".to_owned(),
            (Backend::Postgres, Side::Hi) => {
                "app_id = $1 AND hi = $2 AND lo IN (SELECT p.lo FROM archive_pairs p WHERE p.app_id = $1 AND p.hi = $2)"
                    .to_owned()
            }
            (Backend::Sqlite, Side::Lo) => {
                "pair IN (SELECT p.id FROM archive_pairs p WHERE p.app_id = $1 AND p.lo = $2)".to_owned()
            }
            (Backend::Sqlite, Side::Hi) => {
                "pair IN (SELECT p.id FROM archive_pairs p WHERE p.app_id = $1 AND p.hi = $2)".to_owned()
            }
        }
    }
}

/// Which of a pair's two parties a user is.
#[derive(Clone, Copy)]
enum Side {
    Lo,
    Hi,
}

/// `(lo, hi)`.
pub(crate) fn pair<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

/// One user's view of their conversation with a peer.
pub(crate) struct View<'a> {
    pub lo: &'a str,
    pub hi: &'a str,
    /// The `flags` bit that hides a row from this user (both bits for a conversation with
    /// oneself).
    pub hidden: i32,
}

impl<'a> View<'a> {
    pub fn new(owner: &'a str, peer: &'a str) -> View<'a> {
        let (lo, hi) = pair(owner, peer);
        let hidden = match owner.cmp(peer) {
            std::cmp::Ordering::Equal => HIDDEN_LO | HIDDEN_HI,
            std::cmp::Ordering::Less => HIDDEN_LO,
            std::cmp::Ordering::Greater => HIDDEN_HI,
        };
        View { lo, hi, hidden }
    }

    /// The `flags & LO_SENT` value of rows sent by `from`; `None` if `from` is neither party.
    pub fn sent_by(&self, from: &str) -> Option<i32> {
        if from == self.lo {
            Some(LO_SENT)
        } else if from == self.hi {
            Some(0)
        } else {
            None
        }
    }
}

/// The row a new message is stored as: `(lo, hi, flags)`.
pub(crate) fn new_row(m: &NewArchived) -> (&str, &str, i32) {
    let (lo, hi) = pair(&m.from, &m.to);
    let lo_sent = m.from == lo;
    let (hide_lo, hide_hi) = if m.from == m.to {
        let h = m.hidden_from_sender || m.hidden_from_recipient;
        (h, h)
    } else if lo_sent {
        (m.hidden_from_sender, m.hidden_from_recipient)
    } else {
        (m.hidden_from_recipient, m.hidden_from_sender)
    };
    let bit = |on: bool, bit: i32| if on { bit } else { 0 };
    let flags = bit(lo_sent, LO_SENT) | bit(hide_lo, HIDDEN_LO) | bit(hide_hi, HIDDEN_HI);
    (lo, hi, flags)
}

/// An archive row's columns (`ROW_COLUMNS`) back into the domain row.
pub(crate) fn archived(id: i64, lo: String, hi: String, flags: i32, created: i64, payload: Vec<u8>) -> ArchivedMessage {
    let (from, to) = if flags & LO_SENT != 0 { (lo, hi) } else { (hi, lo) };
    ArchivedMessage { id: MsgId(id as u64), from, to, timestamp: created.max(0) as u64, payload: Bytes::from(payload) }
}

/// The kind filter as the bit mask `history_sql` tests (`($n >> kind) & 1`); 0 = any kind.
pub(crate) fn kind_mask(kinds: &KindSet) -> i32 {
    kinds.codes().into_iter().fold(0, |m, c| m | 1 << c)
}

/// An id as the signed column stores it (every id fits: `IdWindow` bounds are clamped).
pub(crate) fn col(id: MsgId) -> i64 {
    id.0.min(i64::MAX as u64) as i64
}

/// The `from` filter of a history query as `flags & LO_SENT`: `Some(-1)` for none,
/// `None` when `from` is neither party (nothing matches).
pub(crate) fn from_filter(view: &View<'_>, q: &HistoryQuery) -> Option<i32> {
    match &q.from {
        None => Some(-1),
        Some(f) => view.sent_by(f),
    }
}

/// `$1` app, `$2` lo, `$3` hi, `$4..$5` id window, `$6` hidden bit, `$7` kind mask,
/// `$8` sender filter (-1: any), `$9` limit.
pub(crate) fn history_sql(backend: Backend, direction: Direction) -> String {
    backend.finish(format!(
        "SELECT id, lo, hi, flags, created, payload FROM archive a \
         WHERE {} AND id >= $4 AND id < $5 AND (flags & $6) = 0 \
         AND ($7 = 0 OR (($7 >> kind) & 1) = 1) AND ($8 < 0 OR (flags & 1) = $8) ORDER BY id {} LIMIT $9",
        backend.pair_rows("a", "$1", "$2", "$3"),
        order(direction)
    ))
}

fn order(direction: Direction) -> &'static str {
    match direction {
        Direction::Newer => "ASC",
        Direction::Older => "DESC",
    }
}

/// A conversation list page. `$1` app, `$2` owner, `$3` include empty pinned rows,
/// `$4`/`$5` the cursor `(key, peer)`, `$6` limit, `$7` offset. Columns: peer, pinned_at,
/// the latest message (`ROW_COLUMNS`, NULL when none), unread.
///
/// The page is chosen first from the conversation rows alone, and only its rows get their
/// latest message and unread count: SQLite keeps no index by activity (it cost two entry
/// moves per message and side on the send path) and sorts the owner's rows instead, and
/// the correlated count would otherwise run for every row it sorts.
const LIST_PAGE: &str = "SELECT app_id, owner, peer, pinned_at, last_id, read_id FROM conversations c \
     WHERE c.app_id = $1 AND c.owner = $2 AND (c.last_id > 0 OR ($3 AND c.pinned_at IS NOT NULL)) ";
fn list_select(backend: Backend) -> String {
    let unread = backend.pair_rows(
        "u",
        "c.app_id",
        "CASE WHEN c.owner < c.peer THEN c.owner ELSE c.peer END",
        "CASE WHEN c.owner < c.peer THEN c.peer ELSE c.owner END",
    );
    format!(
        "SELECT c.peer, c.pinned_at, a.id, a.lo, a.hi, a.flags, a.created, a.payload, \
         (SELECT COUNT(*) FROM archive u WHERE {unread} AND u.id > c.read_id \
           AND (u.flags & CASE WHEN c.owner = c.peer THEN 6 WHEN c.owner < c.peer THEN 2 ELSE 4 END) = 0 \
           AND (u.flags & 1) = CASE WHEN c.peer < c.owner THEN 1 ELSE 0 END) \
         FROM page c LEFT JOIN archive a ON c.last_id > 0 AND a.id = c.last_id "
    )
}
pub(crate) fn list_sql(backend: Backend, order: missive_core::archive::ListOrder) -> String {
    use missive_core::archive::ListOrder;
    let (filter, key) = match order {
        ListOrder::Activity => ("AND (c.last_id, c.peer) < ($4, $5)", "c.last_id DESC, c.peer DESC"),
        ListOrder::Pinned => {
            ("AND c.pinned_at IS NOT NULL AND (c.pinned_at, c.peer) < ($4, $5)", "c.pinned_at DESC, c.peer DESC")
        }
    };
    let select = list_select(backend);
    backend
        .finish(format!("WITH page AS ({LIST_PAGE}{filter} ORDER BY {key} LIMIT $6 OFFSET $7) {select}ORDER BY {key}"))
}

/// Moves a conversation's latest message forward (never back, never into what its owner
/// cleared), for an owner who is a registered user: a REST send's `from` need not be one
/// (Easemob does not check it), and a list nobody can read is not worth a write per message.
/// The check is an index lookup in the same transaction; it writes nothing. `$1` app, `$2`
/// owner, `$3` peer, `$4` message id; `rows` is where the rows come from, as a source `t`
/// with columns `app_id, owner, peer, last_id` (SQLite: one row of parameters,
/// PostgreSQL: `UNNEST` of arrays).
pub(crate) fn touch_sql(rows: &str) -> String {
    format!(
        "INSERT INTO conversations (app_id, owner, peer, last_id) \
         SELECT t.app_id, t.owner, t.peer, t.last_id FROM {rows} \
         WHERE EXISTS (SELECT 1 FROM users u WHERE u.app_id = t.app_id AND u.username = t.owner) \
         ON CONFLICT (app_id, owner, peer) DO UPDATE SET last_id = CASE \
         WHEN excluded.last_id > conversations.last_id AND excluded.last_id > conversations.cleared_id \
         THEN excluded.last_id ELSE conversations.last_id END"
    )
}

/// Records that a pair has archived rows, keyed by `hi`: deleting a user finds the rows where
/// they are `hi` through here (`forget_user_sql`) instead of through an index entry per
/// message. Written once per pair, a lookup after that. `$1` app, `$2` hi, `$3` lo.
/// PostgreSQL's batches write it as is; SQLite needs the pair's id for the archive row, so it
/// looks the pair up and inserts only a new one (`sqlite::history::pair_id`).
pub(crate) const PAIR: &str = "INSERT INTO archive_pairs (app_id, hi, lo) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// `$1` app, `$2` owner, `$3` peer, `$4` read position.
pub(crate) const MARK_READ: &str =
    "UPDATE conversations SET read_id = $4 WHERE app_id = $1 AND owner = $2 AND peer = $3 AND read_id < $4";

/// `$1` app, `$2` owner, `$3` peer, `$4` pin time or NULL.
pub(crate) const PIN: &str =
    "UPDATE conversations SET pinned_at = $4 WHERE app_id = $1 AND owner = $2 AND peer = $3 RETURNING pinned_at";

/// One-way delete of a conversation up to `$4` (an id above everything accepted so far).
pub(crate) const CLEAR: &str = "UPDATE conversations SET last_id = 0, pinned_at = NULL, cleared_id = $4, \
     read_id = CASE WHEN read_id > $4 THEN read_id ELSE $4 END WHERE app_id = $1 AND owner = $2 AND peer = $3";

/// Sets a conversation's latest message to the newest its owner can still see. `$1` app,
/// `$2` lo, `$3` hi, `$4` the owner's hidden bit, `$5` owner, `$6` peer.
pub(crate) fn recompute_sql(backend: Backend) -> String {
    backend.finish(format!(
        "UPDATE conversations SET last_id = COALESCE((SELECT a.id FROM archive a \
         WHERE {} AND (a.flags & $4) = 0 AND a.id > conversations.cleared_id \
         ORDER BY a.id DESC LIMIT 1), 0) WHERE app_id = $1 AND owner = $5 AND peer = $6",
        backend.pair_rows("a", "$1", "$2", "$3")
    ))
}

/// Hides a conversation's rows in `[$5, $6)` from one side: `$1` app, `$2` lo, `$3` hi,
/// `$4` the hidden bit.
pub(crate) fn hide_window_sql(backend: Backend) -> String {
    backend.finish(format!(
        "UPDATE archive SET flags = flags | $4 WHERE {} AND (flags & $4) = 0 AND id >= $5 AND id < $6",
        backend.pair_rows("archive", "$1", "$2", "$3")
    ))
}

/// `$1` app, `$2` id; returns the pair.
pub(crate) const RECALL: &str = "DELETE FROM archive WHERE id = $2 AND app_id = $1 RETURNING lo, hi";

/// Deleting user `$2` of app `$1`: their side of every row is hidden, rows nobody can see
/// are deleted, and their conversation rows go.
pub(crate) fn forget_user_sql(backend: Backend) -> [String; 5] {
    let (lo, hi) = (backend.side_rows(Side::Lo), backend.side_rows(Side::Hi));
    [
        format!("UPDATE archive SET flags = flags | 2 WHERE {lo}"),
        format!("UPDATE archive SET flags = flags | 4 WHERE {hi}"),
        format!("DELETE FROM archive WHERE {lo} AND (flags & 6) = 6"),
        format!("DELETE FROM archive WHERE {hi} AND (flags & 6) = 6"),
        "DELETE FROM conversations WHERE app_id = $1 AND owner = $2".to_owned(),
    ]
    .map(|sql| backend.finish(sql))
}

/// The app's archive in `[$2, $3)`, sender `$4` and recipient `$5` ('' = any), `$6` rows.
const CHAT_LOG: &str = "SELECT id, lo, hi, flags, created, payload FROM archive \
     WHERE app_id = $1 AND id >= $2 AND id < $3 \
     AND ($4 = '' OR (CASE WHEN (flags & 1) = 1 THEN lo ELSE hi END) = $4) \
     AND ($5 = '' OR (CASE WHEN (flags & 1) = 1 THEN hi ELSE lo END) = $5) ";
pub(crate) fn chat_log_sql(direction: Direction) -> String {
    format!("{CHAT_LOG}ORDER BY id {} LIMIT $6", order(direction))
}

/// The last id and count of the oldest `$2` rows below `$1`.
pub(crate) const SWEEP_SPAN: &str =
    "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM archive WHERE id < $1 ORDER BY id LIMIT $2) t";
/// Then: the rows up to that id, and conversations whose messages are all gone
/// (`$1`: every id below it is gone).
pub(crate) const SWEEP: [&str; 3] = [
    "DELETE FROM archive WHERE id <= $1",
    "UPDATE conversations SET last_id = 0 WHERE last_id > 0 AND last_id < $1",
    "DELETE FROM conversations WHERE last_id = 0 AND pinned_at IS NULL AND cleared_id < $1",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_and_rows_agree() {
        let m = |from: &str, to: &str, hs: bool, hr: bool| NewArchived {
            app_id: uuid::Uuid::nil(),
            id: MsgId(1),
            from: from.into(),
            to: to.into(),
            created: 1,
            kind: missive_core::archive::MessageKind::Text,
            payload: Bytes::new(),
            hidden_from_sender: hs,
            hidden_from_recipient: hr,
            listed: true,
        };
        // bob → alice, hidden from alice (the recipient, `lo`).
        let row = m("bob", "alice", false, true);
        let (lo, hi, flags) = new_row(&row);
        assert_eq!((lo, hi, flags), ("alice", "bob", HIDDEN_LO));
        let alice = View::new("alice", "bob");
        let bob = View::new("bob", "alice");
        assert_ne!(flags & alice.hidden, 0);
        assert_eq!(flags & bob.hidden, 0);
        assert_eq!(Some(flags & LO_SENT), alice.sent_by("bob"));
        let back = archived(1, lo.into(), hi.into(), flags, 1, vec![]);
        assert_eq!((back.from.as_str(), back.to.as_str()), ("bob", "alice"));
        let own = new_row(&m("a", "a", true, false)).2;
        assert_eq!(own, LO_SENT | HIDDEN_LO | HIDDEN_HI);
        assert_eq!(sqlite("a = $1 AND b = $12"), "a = ?1 AND b = ?12");
    }
}
