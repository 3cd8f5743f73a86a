//! `HistoryStore` on SQLite: the archive's reads on the reader threads, its writes through
//! the group commit — archive rows with their queue rows (`writer`), everything else as a
//! closure job. The statements are `crate::archive`'s.

use async_trait::async_trait;
use missive_core::archive::{ArchivedMessage, ConversationSummary, HistoryQuery, IdWindow};
use missive_core::id::MsgId;
use missive_core::store::{ChatLogQuery, ConversationQuery, HistorySelection, HistoryStore, NewArchived, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::SqlResultExt;
use crate::archive::{self as sql, Backend, View, col, sqlite};

fn archived_at(r: &Row<'_>, first: usize) -> rusqlite::Result<ArchivedMessage> {
    let (id, lo, hi) = (r.get(first)?, r.get(first + 1)?, r.get(first + 2)?);
    Ok(sql::archived(id, lo, hi, r.get(first + 3)?, r.get(first + 4)?, r.get(first + 5)?))
}

/// Archives `entries` and moves their parties' conversations, inside the caller's
/// transaction (the group commit's enqueue).
pub(crate) fn insert(c: &Connection, entries: &[NewArchived]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let touch = sqlite(&sql::touch_sql("(SELECT ?1 AS app_id, ?2 AS owner, ?3 AS peer, ?4 AS last_id) AS t"));
    for m in entries {
        let (lo, hi, flags) = sql::new_row(m);
        let app = m.app_id.to_string();
        let pair = pair_id(c, &app, hi, lo)?;
        c.prepare_cached(
            "INSERT INTO archive (id, app_id, lo, hi, flags, kind, created, payload, pair) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .store()?
        .execute(params![col(m.id), app, lo, hi, flags, m.kind.code(), m.created, m.payload.as_ref(), pair])
        .store()?;
        if !m.listed {
            continue;
        }
        let sides = [(&m.from, &m.to, m.hidden_from_sender), (&m.to, &m.from, m.hidden_from_recipient)];
        for (owner, peer, hidden) in sides.into_iter().take(if m.from == m.to { 1 } else { 2 }) {
            if !hidden {
                c.prepare_cached(&touch).store()?.execute(params![app, owner, peer, col(m.id)]).store()?;
            }
        }
    }
    Ok(())
}

/// The id of the pair `(lo, hi)` in `archive_pairs` (`crate::archive::PAIR`), recording the
/// pair if it is new: one index lookup for every message after a pair's first.
fn pair_id(c: &Connection, app: &str, hi: &str, lo: &str) -> StoreResult<i64> {
    let found: Option<i64> = c
        .prepare_cached("SELECT id FROM archive_pairs WHERE app_id = ?1 AND hi = ?2 AND lo = ?3")
        .store()?
        .query_row(params![app, hi, lo], |r| r.get(0))
        .optional()
        .store()?;
    if let Some(id) = found {
        return Ok(id);
    }
    c.prepare_cached("INSERT INTO archive_pairs (app_id, hi, lo) VALUES (?1, ?2, ?3) RETURNING id")
        .store()?
        .query_row(params![app, hi, lo], |r| r.get(0))
        .store()
}

/// Removes a recalled message, inside the caller's transaction (the group commit's recall).
pub(crate) fn recall(c: &Connection, app: Uuid, id: MsgId) -> StoreResult<()> {
    let app_s = app.to_string();
    let pair: Option<(String, String)> = c
        .prepare_cached(&sqlite(sql::RECALL))
        .store()?
        .query_row(params![app_s, col(id)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .store()?;
    if let Some((lo, hi)) = pair {
        recompute(c, &app_s, &lo, &hi)?;
        recompute(c, &app_s, &hi, &lo)?;
    }
    Ok(())
}

/// Hides `user`'s side of the archive and drops their conversations (deleting a user).
pub(crate) fn forget_user(c: &Connection, app: &str, user: &str) -> StoreResult<()> {
    for stmt in sql::forget_user_sql(Backend::Sqlite) {
        c.prepare_cached(&stmt).store()?.execute(params![app, user]).store()?;
    }
    Ok(())
}

fn recompute(c: &Connection, app: &str, owner: &str, peer: &str) -> StoreResult<()> {
    let v = View::new(owner, peer);
    c.prepare_cached(&sql::recompute_sql(Backend::Sqlite))
        .store()?
        .execute(params![app, v.lo, v.hi, v.hidden, owner, peer])
        .store()?;
    Ok(())
}

fn hide(c: &Connection, app: &str, owner: &str, peer: &str, which: &HistorySelection) -> StoreResult<u64> {
    let v = View::new(owner, peer);
    let windows: Vec<IdWindow> = match which {
        HistorySelection::All => vec![missive_core::archive::TimeRange::ALL.ids()],
        HistorySelection::Window(w) => vec![*w],
        HistorySelection::Ids(ids) => {
            ids.iter().map(|&id| IdWindow { lo: id, hi: MsgId(id.0.saturating_add(1)) }).collect()
        }
    };
    let mut n = 0;
    for w in windows {
        n += c
            .prepare_cached(&sql::hide_window_sql(Backend::Sqlite))
            .store()?
            .execute(params![app, v.lo, v.hi, v.hidden, col(w.lo), col(w.hi)])
            .store()? as u64;
    }
    recompute(c, app, owner, peer)?;
    Ok(n)
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn history(
        &self,
        app: Uuid,
        owner: &str,
        peer: &str,
        query: &HistoryQuery,
    ) -> StoreResult<Vec<ArchivedMessage>> {
        let (owner, peer, q) = (owner.to_owned(), peer.to_owned(), query.clone());
        self.read(move |c| {
            let v = View::new(&owner, &peer);
            let w = q.window();
            let Some(from) = sql::from_filter(&v, &q) else { return Ok(Vec::new()) };
            if w.is_empty() {
                return Ok(Vec::new());
            }
            c.prepare_cached(&sql::history_sql(Backend::Sqlite, q.direction))
                .store()?
                .query_map(
                    params![
                        app.to_string(),
                        v.lo,
                        v.hi,
                        col(w.lo),
                        col(w.hi),
                        v.hidden,
                        sql::kind_mask(&q.kinds),
                        from,
                        i64::from(q.limit) + 1
                    ],
                    |r| archived_at(r, 0),
                )
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()
        })
        .await
    }

    async fn conversations(
        &self,
        app: Uuid,
        owner: &str,
        query: &ConversationQuery,
    ) -> StoreResult<Vec<ConversationSummary>> {
        let (owner, q) = (owner.to_owned(), query.clone());
        self.read(move |c| {
            let (key, after) =
                q.after.clone().map_or((i64::MAX, String::new()), |(k, p)| (k.min(i64::MAX as u64) as i64, p));
            c.prepare_cached(&sql::list_sql(Backend::Sqlite, q.order))
                .store()?
                .query_map(
                    params![
                        app.to_string(),
                        owner,
                        q.include_empty,
                        key,
                        after,
                        i64::from(q.limit),
                        i64::from(q.offset)
                    ],
                    |r| {
                        let latest = match r.get::<_, Option<i64>>(2)? {
                            Some(_) => Some(archived_at(r, 2)?),
                            None => None,
                        };
                        Ok(ConversationSummary {
                            peer: r.get(0)?,
                            unread: r.get::<_, i64>(8)?.clamp(0, i64::from(u32::MAX)) as u32,
                            pinned_at: r.get::<_, Option<i64>>(1)?.map(|p| p.max(0) as u64),
                            latest,
                        })
                    },
                )
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()
        })
        .await
    }

    async fn mark_read(&self, app: Uuid, owner: &str, peer: &str, upto: MsgId) -> StoreResult<()> {
        let (owner, peer) = (owner.to_owned(), peer.to_owned());
        self.write(move |c| {
            c.prepare_cached(&sqlite(sql::MARK_READ))
                .store()?
                .execute(params![app.to_string(), owner, peer, col(upto)])
                .store()
                .map(drop)
        })
        .await
    }

    async fn pin_conversation(&self, app: Uuid, owner: &str, peer: &str, at: Option<u64>) -> StoreResult<Option<u64>> {
        let (owner, peer) = (owner.to_owned(), peer.to_owned());
        self.write(move |c| {
            let pinned: Option<Option<i64>> = c
                .prepare_cached(&sqlite(sql::PIN))
                .store()?
                .query_row(params![app.to_string(), owner, peer, at.map(|t| t as i64)], |r| r.get(0))
                .optional()
                .store()?;
            Ok(pinned.flatten().map(|t| t.max(0) as u64))
        })
        .await
    }

    async fn delete_conversation(
        &self,
        app: Uuid,
        owner: &str,
        peer: &str,
        upto: MsgId,
        with_history: bool,
    ) -> StoreResult<()> {
        let (owner, peer) = (owner.to_owned(), peer.to_owned());
        self.write(move |c| {
            let app = app.to_string();
            c.prepare_cached(&sqlite(sql::CLEAR)).store()?.execute(params![app, owner, peer, col(upto)]).store()?;
            if with_history {
                hide(c, &app, &owner, &peer, &HistorySelection::All)?;
            }
            Ok(())
        })
        .await
    }

    async fn hide_history(&self, app: Uuid, owner: &str, peer: &str, which: &HistorySelection) -> StoreResult<u64> {
        let (owner, peer, which) = (owner.to_owned(), peer.to_owned(), which.clone());
        self.write(move |c| hide(c, &app.to_string(), &owner, &peer, &which)).await
    }

    async fn chat_log(&self, app: Uuid, query: &ChatLogQuery) -> StoreResult<Vec<ArchivedMessage>> {
        let q = query.clone();
        self.read(move |c| {
            if q.window.is_empty() {
                return Ok(Vec::new());
            }
            c.prepare_cached(&sqlite(&sql::chat_log_sql(q.direction)))
                .store()?
                .query_map(
                    params![
                        app.to_string(),
                        col(q.window.lo),
                        col(q.window.hi),
                        q.from.unwrap_or_default(),
                        q.to.unwrap_or_default(),
                        i64::from(q.limit)
                    ],
                    |r| archived_at(r, 0),
                )
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()
        })
        .await
    }

    async fn sweep_history(&self, floor: MsgId, max_rows: u32) -> StoreResult<u64> {
        self.write(move |c| {
            let (last, n): (Option<i64>, i64) = c
                .prepare_cached(&sqlite(sql::SWEEP_SPAN))
                .store()?
                .query_row(params![col(floor), i64::from(max_rows.max(1))], |r| Ok((r.get(0)?, r.get(1)?)))
                .store()?;
            // Every id below `gone` is deleted once this chunk is.
            let gone = match last {
                Some(last) if n >= i64::from(max_rows.max(1)) => last.saturating_add(1),
                _ => col(floor),
            };
            let [rows, convs, empty] = sql::SWEEP;
            if let Some(last) = last {
                c.prepare_cached(&sqlite(rows)).store()?.execute([last]).store()?;
            }
            c.prepare_cached(&sqlite(convs)).store()?.execute([gone]).store()?;
            c.prepare_cached(&sqlite(empty)).store()?.execute([gone]).store()?;
            Ok(n as u64)
        })
        .await
    }
}
