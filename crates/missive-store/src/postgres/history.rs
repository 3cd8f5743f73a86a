//! `HistoryStore` on PostgreSQL: the archive's rows go in with their queue rows (one
//! `UNNEST` insert per batch, `writer`); reads and the other writes use the pool. The
//! statements are `crate::archive`'s.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use missive_core::archive::{ArchivedMessage, ConversationSummary, HistoryQuery, IdWindow, TimeRange};
use missive_core::id::MsgId;
use missive_core::store::{ChatLogQuery, ConversationQuery, HistorySelection, HistoryStore, NewArchived, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use super::PgStore;
use super::rows::PgResultExt;
use crate::archive::{self as sql, Backend, View, col};

fn archived_at(r: &PgRow, first: usize) -> Result<ArchivedMessage, sqlx::Error> {
    Ok(sql::archived(
        r.try_get(first)?,
        r.try_get(first + 1)?,
        r.try_get(first + 2)?,
        r.try_get(first + 3)?,
        r.try_get(first + 4)?,
        r.try_get(first + 5)?,
    ))
}

/// A batch's archive rows as arrays, for one `UNNEST` insert.
#[derive(Default)]
struct ArchiveColumns<'a> {
    id: Vec<i64>,
    app: Vec<Uuid>,
    lo: Vec<&'a str>,
    hi: Vec<&'a str>,
    flags: Vec<i32>,
    kind: Vec<i32>,
    created: Vec<i64>,
    payload: Vec<&'a [u8]>,
}

/// Archives a batch's messages and moves their parties' conversations, inside the batch's
/// transaction. Conversation rows are updated in one sorted statement, so concurrent
/// batches lock them in the same order.
pub(crate) async fn insert(tx: &mut PgConnection, entries: &[&NewArchived]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut cols = ArchiveColumns::default();
    let mut touched: BTreeMap<(Uuid, &str, &str), i64> = BTreeMap::new();
    let mut pairs: BTreeSet<(Uuid, &str, &str)> = BTreeSet::new();
    for m in entries {
        let (lo, hi, flags) = sql::new_row(m);
        pairs.insert((m.app_id, hi, lo));
        cols.id.push(col(m.id));
        cols.app.push(m.app_id);
        cols.lo.push(lo);
        cols.hi.push(hi);
        cols.flags.push(flags);
        cols.kind.push(i32::from(m.kind.code()));
        cols.created.push(m.created);
        cols.payload.push(m.payload.as_ref());
        if m.listed {
            let sides = [(&m.from, &m.to, m.hidden_from_sender), (&m.to, &m.from, m.hidden_from_recipient)];
            for (owner, peer, hidden) in sides {
                if !hidden {
                    let last = touched.entry((m.app_id, owner.as_str(), peer.as_str())).or_default();
                    *last = (*last).max(col(m.id));
                }
            }
        }
    }
    sqlx::query(
        "INSERT INTO archive (id, app_id, lo, hi, flags, kind, created, payload) \
         SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[], \
         $7::bigint[], $8::bytea[])",
    )
    .bind(cols.id)
    .bind(cols.app)
    .bind(cols.lo)
    .bind(cols.hi)
    .bind(cols.flags)
    .bind(cols.kind)
    .bind(cols.created)
    .bind(cols.payload)
    .execute(&mut *tx)
    .await?;
    // Sorted, like the conversation rows: concurrent batches adding one new pair wait for
    // each other in the same order.
    let (mut apps, mut his, mut los) = (Vec::new(), Vec::new(), Vec::new());
    for (app, hi, lo) in pairs {
        apps.push(app);
        his.push(hi);
        los.push(lo);
    }
    sqlx::query(AssertSqlSafe(
        sql::PAIR.replace("VALUES ($1, $2, $3)", "SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])"),
    ))
    .bind(apps)
    .bind(his)
    .bind(los)
    .execute(&mut *tx)
    .await?;
    if !touched.is_empty() {
        let (mut apps, mut owners, mut peers, mut ids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((app, owner, peer), id) in touched {
            apps.push(app);
            owners.push(owner);
            peers.push(peer);
            ids.push(id);
        }
        sqlx::query(AssertSqlSafe(sql::touch_sql(
            "UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS t(app_id, owner, peer, last_id)",
        )))
        .bind(apps)
        .bind(owners)
        .bind(peers)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Removes a recalled message, inside the caller's transaction.
pub(crate) async fn recall(tx: &mut PgConnection, app: Uuid, id: MsgId) -> Result<(), sqlx::Error> {
    let pair = sqlx::query(sql::RECALL).bind(app).bind(col(id)).fetch_optional(&mut *tx).await?;
    if let Some(row) = pair {
        let (lo, hi): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        recompute(tx, app, &lo, &hi).await?;
        recompute(tx, app, &hi, &lo).await?;
    }
    Ok(())
}

/// Hides `user`'s side of the archive and drops their conversations (deleting a user).
pub(crate) async fn forget_user(tx: &mut PgConnection, app: Uuid, user: &str) -> Result<(), sqlx::Error> {
    for stmt in sql::forget_user_sql(Backend::Postgres) {
        sqlx::query(AssertSqlSafe(stmt)).bind(app).bind(user).execute(&mut *tx).await?;
    }
    Ok(())
}

async fn recompute(tx: &mut PgConnection, app: Uuid, owner: &str, peer: &str) -> Result<(), sqlx::Error> {
    let v = View::new(owner, peer);
    sqlx::query(AssertSqlSafe(sql::recompute_sql(Backend::Postgres)))
        .bind(app)
        .bind(v.lo)
        .bind(v.hi)
        .bind(v.hidden)
        .bind(owner)
        .bind(peer)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn hide(
    tx: &mut PgConnection,
    app: Uuid,
    owner: &str,
    peer: &str,
    which: &HistorySelection,
) -> Result<u64, sqlx::Error> {
    let v = View::new(owner, peer);
    let windows: Vec<IdWindow> = match which {
        HistorySelection::All => vec![TimeRange::ALL.ids()],
        HistorySelection::Window(w) => vec![*w],
        HistorySelection::Ids(ids) => {
            ids.iter().map(|&id| IdWindow { lo: id, hi: MsgId(id.0.saturating_add(1)) }).collect()
        }
    };
    let mut n = 0;
    for w in windows {
        n += sqlx::query(AssertSqlSafe(sql::hide_window_sql(Backend::Postgres)))
            .bind(app)
            .bind(v.lo)
            .bind(v.hi)
            .bind(v.hidden)
            .bind(col(w.lo))
            .bind(col(w.hi))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    recompute(tx, app, owner, peer).await?;
    Ok(n)
}

#[async_trait]
impl HistoryStore for PgStore {
    async fn history(&self, app: Uuid, owner: &str, peer: &str, q: &HistoryQuery) -> StoreResult<Vec<ArchivedMessage>> {
        let v = View::new(owner, peer);
        let w = q.window();
        let Some(from) = sql::from_filter(&v, q) else { return Ok(Vec::new()) };
        if w.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(sql::history_sql(Backend::Postgres, q.direction)))
            .bind(app)
            .bind(v.lo)
            .bind(v.hi)
            .bind(col(w.lo))
            .bind(col(w.hi))
            .bind(v.hidden)
            .bind(sql::kind_mask(&q.kinds))
            .bind(from)
            .bind(i64::from(q.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .store()?;
        rows.iter().map(|r| archived_at(r, 0)).collect::<Result<Vec<_>, _>>().store()
    }

    async fn conversations(
        &self,
        app: Uuid,
        owner: &str,
        q: &ConversationQuery,
    ) -> StoreResult<Vec<ConversationSummary>> {
        let (key, after) =
            q.after.clone().map_or((i64::MAX, String::new()), |(k, p)| (k.min(i64::MAX as u64) as i64, p));
        let rows = sqlx::query(AssertSqlSafe(sql::list_sql(Backend::Postgres, q.order)))
            .bind(app)
            .bind(owner)
            .bind(q.include_empty)
            .bind(key)
            .bind(after)
            .bind(i64::from(q.limit))
            .bind(i64::from(q.offset))
            .fetch_all(&self.pool)
            .await
            .store()?;
        let summary = |r: &PgRow| -> Result<ConversationSummary, sqlx::Error> {
            let latest = match r.try_get::<Option<i64>, _>(2)? {
                Some(_) => Some(archived_at(r, 2)?),
                None => None,
            };
            Ok(ConversationSummary {
                peer: r.try_get(0)?,
                unread: r.try_get::<i64, _>(8)?.clamp(0, i64::from(u32::MAX)) as u32,
                pinned_at: r.try_get::<Option<i64>, _>(1)?.map(|p| p.max(0) as u64),
                latest,
            })
        };
        rows.iter().map(summary).collect::<Result<Vec<_>, _>>().store()
    }

    async fn mark_read(&self, app: Uuid, owner: &str, peer: &str, upto: MsgId) -> StoreResult<()> {
        sqlx::query(sql::MARK_READ)
            .bind(app)
            .bind(owner)
            .bind(peer)
            .bind(col(upto))
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }

    async fn pin_conversation(&self, app: Uuid, owner: &str, peer: &str, at: Option<u64>) -> StoreResult<Option<u64>> {
        let pinned: Option<Option<i64>> = sqlx::query_scalar(sql::PIN)
            .bind(app)
            .bind(owner)
            .bind(peer)
            .bind(at.map(|t| t as i64))
            .fetch_optional(&self.pool)
            .await
            .store()?;
        Ok(pinned.flatten().map(|t| t.max(0) as u64))
    }

    async fn delete_conversation(
        &self,
        app: Uuid,
        owner: &str,
        peer: &str,
        upto: MsgId,
        with_history: bool,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query(sql::CLEAR).bind(app).bind(owner).bind(peer).bind(col(upto)).execute(&mut *tx).await.store()?;
        if with_history {
            hide(&mut tx, app, owner, peer, &HistorySelection::All).await.store()?;
        }
        tx.commit().await.store()
    }

    async fn hide_history(&self, app: Uuid, owner: &str, peer: &str, which: &HistorySelection) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.store()?;
        let n = hide(&mut tx, app, owner, peer, which).await.store()?;
        tx.commit().await.store()?;
        Ok(n)
    }

    async fn chat_log(&self, app: Uuid, q: &ChatLogQuery) -> StoreResult<Vec<ArchivedMessage>> {
        if q.window.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(sql::chat_log_sql(q.direction)))
            .bind(app)
            .bind(col(q.window.lo))
            .bind(col(q.window.hi))
            .bind(q.from.clone().unwrap_or_default())
            .bind(q.to.clone().unwrap_or_default())
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await
            .store()?;
        rows.iter().map(|r| archived_at(r, 0)).collect::<Result<Vec<_>, _>>().store()
    }

    async fn sweep_history(&self, floor: MsgId, max_rows: u32) -> StoreResult<u64> {
        let max = i64::from(max_rows.max(1));
        let mut tx = self.pool.begin().await.store()?;
        let span = sqlx::query(sql::SWEEP_SPAN).bind(col(floor)).bind(max).fetch_one(&mut *tx).await.store()?;
        let (last, n): (Option<i64>, i64) = (span.try_get(0).store()?, span.try_get(1).store()?);
        let gone = match last {
            Some(last) if n >= max => last.saturating_add(1),
            _ => col(floor),
        };
        let [rows, convs, empty] = sql::SWEEP;
        if let Some(last) = last {
            sqlx::query(rows).bind(last).execute(&mut *tx).await.store()?;
        }
        sqlx::query(convs).bind(gone).execute(&mut *tx).await.store()?;
        sqlx::query(empty).bind(gone).execute(&mut *tx).await.store()?;
        tx.commit().await.store()?;
        Ok(n as u64)
    }
}
