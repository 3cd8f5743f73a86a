//! What an app configured for callbacks and push: its callback rules (post-send and
//! pre-send), the bans of failing callback endpoints, and its push providers.
//!
//! Rules and provider configs are JSON the store keeps but never looks into: their meaning
//! belongs to `missive-notify`. Every change to a rule, a ban or a provider advances one
//! **generation** counter in the same transaction; servers poll it and reload their caches
//! when it moved, which is how a change made by the CLI beside a running server (or by
//! another node) applies within a second.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::StoreResult;

/// Which kind of callback a rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyRuleKind {
    /// After a message is accepted (发送后回调).
    PostSend,
    /// Before an SDK message is accepted (发送前回调).
    PreSend,
}

impl NotifyRuleKind {
    /// The text stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyRuleKind::PostSend => "post",
            NotifyRuleKind::PreSend => "pre",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyRuleKind> {
        match s {
            "post" => Some(NotifyRuleKind::PostSend),
            "pre" => Some(NotifyRuleKind::PreSend),
            _ => None,
        }
    }
}

/// A callback rule as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyRule {
    /// Stable id (a UUID string).
    pub id: String,
    pub app_id: Uuid,
    pub kind: NotifyRuleKind,
    /// Unique per app, across both kinds.
    pub name: String,
    /// The rule itself (`missive_notify`'s `CallbackRule` or `PreSendRule`).
    pub rule: Value,
    pub created: i64,
    pub modified: i64,
}

/// A ban of a post-send rule's endpoint, so every node honours a ban one node started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleBan {
    pub rule_id: String,
    pub from: i64,
    pub until: i64,
    /// Which ban within the ban rule's memory this is.
    pub nth: u32,
}

/// A push provider of an app, named like an Easemob push certificate (`notifier_name`).
#[derive(Clone, PartialEq)]
pub struct PushProviderRecord {
    pub app_id: Uuid,
    pub name: String,
    /// The provider's config, secrets included (never log it).
    pub config: Value,
    pub modified: i64,
}

impl std::fmt::Debug for PushProviderRecord {
    /// Leaves the config out: it holds private keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushProviderRecord").field("app_id", &self.app_id).field("name", &self.name).finish()
    }
}

#[async_trait]
pub trait NotifyConfigStore: Send + Sync {
    /// Every rule of every app (a server caches them all; there are few).
    async fn notify_rules(&self) -> StoreResult<Vec<NotifyRule>>;
    /// Inserts the rule, or replaces the one with its id. Fails with `Conflict("rule name")`
    /// when another rule of the app has the name.
    async fn put_notify_rule(&self, rule: &NotifyRule) -> StoreResult<()>;
    /// Removes the app's rule of this kind with this id or name; `false` if there is none.
    async fn remove_notify_rule(&self, app: Uuid, kind: NotifyRuleKind, id_or_name: &str) -> StoreResult<bool>;

    /// Grows with every change to rules, bans and providers of any app.
    async fn notify_generation(&self) -> StoreResult<i64>;

    /// Records a ban, keeping the later end if the rule is banned already.
    async fn record_ban(&self, ban: &RuleBan) -> StoreResult<()>;
    /// Bans still running at `now`.
    async fn active_bans(&self, now: i64) -> StoreResult<Vec<RuleBan>>;

    /// Every push provider of every app.
    async fn push_providers(&self) -> StoreResult<Vec<PushProviderRecord>>;
    /// Inserts or replaces the app's provider of this name.
    async fn put_push_provider(&self, provider: &PushProviderRecord) -> StoreResult<()>;
    async fn remove_push_provider(&self, app: Uuid, name: &str) -> StoreResult<bool>;
}
