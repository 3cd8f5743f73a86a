//! `NotifyConfigStore` on PostgreSQL: rules, bans and push providers, each change advancing
//! the generation counter in its own transaction.

use async_trait::async_trait;
use missive_core::store::{
    NotifyConfigStore, NotifyRule, NotifyRuleKind, PushProviderRecord, RuleBan, StoreError, StoreResult,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::PgStore;
use super::rows::PgResultExt;
use crate::conflict_as;

async fn bump(tx: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("UPDATE notify_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .store()
        .map(|_| ())
}

fn json(text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored JSON: {e}")))
}

#[async_trait]
impl NotifyConfigStore for PgStore {
    async fn notify_rules(&self) -> StoreResult<Vec<NotifyRule>> {
        let rows: Vec<(String, Uuid, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, app_id, kind, name, rule, created, modified FROM notify_rules ORDER BY created, id",
        )
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.into_iter()
            .map(|(id, app_id, kind, name, rule, created, modified)| {
                Ok(NotifyRule {
                    id,
                    app_id,
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
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query(
            "INSERT INTO notify_rules (id, app_id, kind, name, rule, created, modified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
             rule = EXCLUDED.rule, modified = EXCLUDED.modified",
        )
        .bind(&rule.id)
        .bind(rule.app_id)
        .bind(rule.kind.as_str())
        .bind(&rule.name)
        .bind(rule.rule.to_string())
        .bind(rule.created)
        .bind(rule.modified)
        .execute(&mut *tx)
        .await
        .store()
        .map_err(conflict_as("rule name"))?;
        bump(&mut tx).await?;
        tx.commit().await.store()
    }

    async fn remove_notify_rule(&self, app: Uuid, kind: NotifyRuleKind, id_or_name: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.store()?;
        let ids: Vec<String> = sqlx::query_scalar(
            "DELETE FROM notify_rules WHERE app_id = $1 AND kind = $2 AND (id = $3 OR name = $3) RETURNING id",
        )
        .bind(app)
        .bind(kind.as_str())
        .bind(id_or_name)
        .fetch_all(&mut *tx)
        .await
        .store()?;
        if ids.is_empty() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM notify_bans WHERE rule_id = ANY($1)").bind(&ids).execute(&mut *tx).await.store()?;
        bump(&mut tx).await?;
        tx.commit().await.store()?;
        Ok(true)
    }

    async fn notify_generation(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT generation FROM notify_generation WHERE id = 1").fetch_one(&self.pool).await.store()
    }

    async fn record_ban(&self, ban: &RuleBan) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query(
            "INSERT INTO notify_bans (rule_id, banned_from, banned_until, nth) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (rule_id) DO UPDATE SET banned_from = EXCLUDED.banned_from, \
             banned_until = EXCLUDED.banned_until, nth = EXCLUDED.nth \
             WHERE EXCLUDED.banned_until > notify_bans.banned_until",
        )
        .bind(&ban.rule_id)
        .bind(ban.from)
        .bind(ban.until)
        .bind(ban.nth.min(i32::MAX as u32) as i32)
        .execute(&mut *tx)
        .await
        .store()?;
        bump(&mut tx).await?;
        tx.commit().await.store()
    }

    async fn active_bans(&self, now: i64) -> StoreResult<Vec<RuleBan>> {
        let rows: Vec<(String, i64, i64, i32)> =
            sqlx::query_as("SELECT rule_id, banned_from, banned_until, nth FROM notify_bans WHERE banned_until > $1")
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .store()?;
        Ok(rows
            .into_iter()
            .map(|(rule_id, from, until, nth)| RuleBan { rule_id, from, until, nth: nth.max(0) as u32 })
            .collect())
    }

    async fn push_providers(&self) -> StoreResult<Vec<PushProviderRecord>> {
        let rows: Vec<(Uuid, String, String, i64)> =
            sqlx::query_as("SELECT app_id, name, config, modified FROM push_providers ORDER BY app_id, name")
                .fetch_all(&self.pool)
                .await
                .store()?;
        rows.into_iter()
            .map(|(app_id, name, config, modified)| {
                Ok(PushProviderRecord { app_id, name, config: json(&config)?, modified })
            })
            .collect()
    }

    async fn put_push_provider(&self, provider: &PushProviderRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query(
            "INSERT INTO push_providers (app_id, name, config, modified) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_id, name) DO UPDATE SET config = EXCLUDED.config, modified = EXCLUDED.modified",
        )
        .bind(provider.app_id)
        .bind(&provider.name)
        .bind(provider.config.to_string())
        .bind(provider.modified)
        .execute(&mut *tx)
        .await
        .store()?;
        bump(&mut tx).await?;
        tx.commit().await.store()
    }

    async fn remove_push_provider(&self, app: Uuid, name: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.store()?;
        let n = sqlx::query("DELETE FROM push_providers WHERE app_id = $1 AND name = $2")
            .bind(app)
            .bind(name)
            .execute(&mut *tx)
            .await
            .store()?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        bump(&mut tx).await?;
        tx.commit().await.store()?;
        Ok(true)
    }
}
