//! `NotifyConfigStore` on SQLite: rules, bans and push providers, each change advancing the
//! generation counter in its own transaction.

use std::str::FromStr;

use async_trait::async_trait;
use missive_core::store::{
    NotifyConfigStore, NotifyRule, NotifyRuleKind, PushProviderRecord, RuleBan, StoreError, StoreResult,
};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::SqlResultExt;
use crate::conflict_as;

fn bump(c: &Connection) -> StoreResult<()> {
    c.prepare_cached("UPDATE notify_generation SET generation = generation + 1 WHERE id = 1")
        .store()?
        .execute([])
        .store()
        .map(|_| ())
}

fn json(text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored JSON: {e}")))
}

fn app_id(text: &str) -> StoreResult<Uuid> {
    Uuid::from_str(text).map_err(|e| StoreError::Backend(format!("stored app id: {e}")))
}

#[async_trait]
impl NotifyConfigStore for SqliteStore {
    async fn notify_rules(&self) -> StoreResult<Vec<NotifyRule>> {
        let rows = self
            .read(|c| {
                c.prepare_cached(
                    "SELECT id, app_id, kind, name, rule, created, modified FROM notify_rules ORDER BY created, id",
                )
                .store()?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()
            })
            .await?;
        rows.into_iter()
            .map(|(id, app, kind, name, rule, created, modified)| {
                Ok(NotifyRule {
                    id,
                    app_id: app_id(&app)?,
                    kind: NotifyRuleKind::parse(&kind)
                        .ok_or_else(|| StoreError::Backend(format!("stored rule kind {kind:?}")))?,
                    name,
                    rule: json(&rule)?,
                    created,
                    modified,
                })
            })
            .collect()
    }

    async fn put_notify_rule(&self, rule: &NotifyRule) -> StoreResult<()> {
        let rule = rule.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO notify_rules (id, app_id, kind, name, rule, created, modified) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 rule = excluded.rule, modified = excluded.modified",
            )
            .store()?
            .execute(params![
                rule.id,
                rule.app_id.to_string(),
                rule.kind.as_str(),
                rule.name,
                rule.rule.to_string(),
                rule.created,
                rule.modified
            ])
            .store()
            .map_err(conflict_as("rule name"))?;
            bump(c)
        })
        .await
    }

    async fn remove_notify_rule(&self, app: Uuid, kind: NotifyRuleKind, id_or_name: &str) -> StoreResult<bool> {
        let key = id_or_name.to_owned();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "DELETE FROM notify_rules WHERE app_id = ?1 AND kind = ?2 AND (id = ?3 OR name = ?3) RETURNING id",
                )
                .store()?
                .query_map(params![app.to_string(), kind.as_str(), key], |r| r.get::<_, String>(0))
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()?;
            for id in &n {
                c.prepare_cached("DELETE FROM notify_bans WHERE rule_id = ?1").store()?.execute([id]).store()?;
            }
            if !n.is_empty() {
                bump(c)?;
            }
            Ok(!n.is_empty())
        })
        .await
    }

    async fn notify_generation(&self) -> StoreResult<i64> {
        self.read(|c| {
            c.prepare_cached("SELECT generation FROM notify_generation WHERE id = 1")
                .store()?
                .query_row([], |r| r.get(0))
                .store()
        })
        .await
    }

    async fn record_ban(&self, ban: &RuleBan) -> StoreResult<()> {
        let ban = ban.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO notify_bans (rule_id, banned_from, banned_until, nth) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (rule_id) DO UPDATE SET banned_from = excluded.banned_from, \
                 banned_until = excluded.banned_until, nth = excluded.nth \
                 WHERE excluded.banned_until > notify_bans.banned_until",
            )
            .store()?
            .execute(params![ban.rule_id, ban.from, ban.until, i64::from(ban.nth)])
            .store()?;
            bump(c)
        })
        .await
    }

    async fn active_bans(&self, now: i64) -> StoreResult<Vec<RuleBan>> {
        self.read(move |c| {
            c.prepare_cached("SELECT rule_id, banned_from, banned_until, nth FROM notify_bans WHERE banned_until > ?1")
                .store()?
                .query_map([now], |r| {
                    Ok(RuleBan {
                        rule_id: r.get(0)?,
                        from: r.get(1)?,
                        until: r.get(2)?,
                        nth: r.get::<_, i64>(3)?.max(0) as u32,
                    })
                })
                .store()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .store()
        })
        .await
    }

    async fn push_providers(&self) -> StoreResult<Vec<PushProviderRecord>> {
        let rows = self
            .read(|c| {
                c.prepare_cached("SELECT app_id, name, config, modified FROM push_providers ORDER BY app_id, name")
                    .store()?
                    .query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?))
                    })
                    .store()?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .store()
            })
            .await?;
        rows.into_iter()
            .map(|(app, name, config, modified)| {
                Ok(PushProviderRecord { app_id: app_id(&app)?, name, config: json(&config)?, modified })
            })
            .collect()
    }

    async fn put_push_provider(&self, provider: &PushProviderRecord) -> StoreResult<()> {
        let p = provider.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO push_providers (app_id, name, config, modified) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (app_id, name) DO UPDATE SET config = excluded.config, modified = excluded.modified",
            )
            .store()?
            .execute(params![p.app_id.to_string(), p.name, p.config.to_string(), p.modified])
            .store()?;
            bump(c)
        })
        .await
    }

    async fn remove_push_provider(&self, app: Uuid, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM push_providers WHERE app_id = ?1 AND name = ?2")
                .store()?
                .execute(params![app.to_string(), name])
                .store()?;
            if n > 0 {
                bump(c)?;
            }
            Ok(n > 0)
        })
        .await
    }
}
