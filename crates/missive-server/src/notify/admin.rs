//! Adding, listing and removing an app's callback rules, pre-send rules and push providers:
//! what `missive app callback|presend|push` and the admin REST endpoints both do, so the two
//! cannot disagree. Every change goes to the store (which advances the generation counter);
//! running servers pick it up on their next refresh.

use std::collections::HashMap;

use missive_core::id::now_ms;
use missive_core::store::{NotifyRule, NotifyRuleKind, PushProviderRecord, Store, StoreError};
use missive_notify::callback::{CallbackRule, NewCallbackRule, RuleError};
use missive_notify::event::ChatType;
use missive_notify::presend::PreSendRule;
use missive_notify::push::ProviderConfig;
use missive_notify::transport::TransportConfig;
use serde_json::{Value, json};
use uuid::Uuid;

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("another rule of this app is named {0:?}")]
    NameTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        AdminError::Store(e)
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

fn stored(app: Uuid, kind: NotifyRuleKind, id: &str, name: &str, rule: Value, created: i64) -> NotifyRule {
    NotifyRule { id: id.to_owned(), app_id: app, kind, name: name.to_owned(), rule, created, modified: now_ms() as i64 }
}

async fn put(store: &dyn Store, rule: NotifyRule) -> AdminResult<()> {
    let name = rule.name.clone();
    match store.put_notify_rule(&rule).await {
        Err(StoreError::Conflict(_)) => Err(AdminError::NameTaken(name)),
        other => Ok(other?),
    }
}

async fn rules_of(store: &dyn Store, app: Uuid, kind: NotifyRuleKind) -> AdminResult<Vec<NotifyRule>> {
    Ok(store.notify_rules().await?.into_iter().filter(|r| r.app_id == app && r.kind == kind).collect())
}

/// Adds a post-send rule with a fresh id.
pub async fn add_callback(
    store: &dyn Store,
    app: Uuid,
    new: NewCallbackRule,
    enabled: bool,
) -> AdminResult<CallbackRule> {
    let mut rule = CallbackRule::create(new, &Uuid::new_v4().to_string())?;
    rule.enabled = enabled;
    save_callback(store, app, &rule, now_ms() as i64).await?;
    Ok(rule)
}

/// Stores `rule` (a new one, or a replacement keeping its id and `created`).
pub async fn save_callback(store: &dyn Store, app: Uuid, rule: &CallbackRule, created: i64) -> AdminResult<()> {
    let json = serde_json::to_value(rule).map_err(|e| AdminError::Invalid(e.to_string()))?;
    put(store, stored(app, NotifyRuleKind::PostSend, &rule.id, &rule.name, json, created)).await
}

/// The app's post-send rules with when each was created, oldest first.
pub async fn callbacks(store: &dyn Store, app: Uuid) -> AdminResult<Vec<(CallbackRule, i64)>> {
    Ok(rules_of(store, app, NotifyRuleKind::PostSend)
        .await?
        .into_iter()
        .filter_map(|r| Some((serde_json::from_value(r.rule).ok()?, r.created)))
        .collect())
}

/// Running bans by rule id (their end, Unix ms).
pub async fn bans(store: &dyn Store) -> AdminResult<HashMap<String, i64>> {
    Ok(store.active_bans(now_ms() as i64).await?.into_iter().map(|b| (b.rule_id, b.until)).collect())
}

/// Removes the app's rule of `kind` by id or name.
pub async fn remove_rule(store: &dyn Store, app: Uuid, kind: NotifyRuleKind, id_or_name: &str) -> AdminResult<bool> {
    Ok(store.remove_notify_rule(app, kind, id_or_name).await?)
}

/// What a pre-send rule is made from; `None` is Easemob's default.
#[derive(Clone, Debug, Default)]
pub struct NewPreSendRule {
    pub url: String,
    pub name: Option<String>,
    /// Generated when absent.
    pub secret: Option<String>,
    pub msg_types: Option<Vec<String>>,
    pub chat_types: Option<Vec<ChatType>>,
    /// Default 200 ms.
    pub timeout_ms: Option<u64>,
    /// Default: pass.
    pub pass_on_failure: Option<bool>,
    /// Default: the sender is told.
    pub report_error: Option<bool>,
    pub enabled: Option<bool>,
}

/// Longest wait a pre-send rule may set: the sender's SDK gives up on an upload after 15 s.
const MAX_PRESEND_TIMEOUT_MS: u64 = 10_000;

/// Validates `new` into a rule with the given id.
pub fn presend_rule(new: NewPreSendRule, id: &str) -> AdminResult<PreSendRule> {
    let secret = new.secret.unwrap_or_else(|| Uuid::new_v4().simple().to_string());
    let mut rule = PreSendRule::new(id, &new.url, &secret)?;
    // The same naming rule as post-send rules: one namespace per app.
    let probe =
        NewCallbackRule { url: new.url.clone(), name: new.name.clone(), secret: Some(secret), ..Default::default() };
    rule.name = CallbackRule::create(probe, id)?.name;
    let msg_types = new.msg_types.unwrap_or_default();
    if let Some(bad) = msg_types.iter().find(|t| !missive_api::MESSAGE_TYPES.contains(&t.as_str())) {
        return Err(RuleError::MessageType(bad.clone()).into());
    }
    rule.msg_types = msg_types;
    rule.chat_types = new.chat_types.unwrap_or_default();
    rule.timeout_ms = new.timeout_ms.unwrap_or(200);
    if !(1..=MAX_PRESEND_TIMEOUT_MS).contains(&rule.timeout_ms) {
        return Err(AdminError::Invalid(format!("timeout must be 1 to {MAX_PRESEND_TIMEOUT_MS} ms")));
    }
    rule.pass_on_failure = new.pass_on_failure.unwrap_or(true);
    rule.report_error = new.report_error.unwrap_or(true);
    rule.enabled = new.enabled.unwrap_or(true);
    Ok(rule)
}

/// Adds a pre-send rule with a fresh id.
pub async fn add_presend(store: &dyn Store, app: Uuid, new: NewPreSendRule) -> AdminResult<PreSendRule> {
    let rule = presend_rule(new, &Uuid::new_v4().to_string())?;
    let json = serde_json::to_value(&rule).map_err(|e| AdminError::Invalid(e.to_string()))?;
    put(store, stored(app, NotifyRuleKind::PreSend, &rule.id, &rule.name, json, now_ms() as i64)).await?;
    Ok(rule)
}

/// The app's pre-send rules, oldest first.
pub async fn presends(store: &dyn Store, app: Uuid) -> AdminResult<Vec<PreSendRule>> {
    Ok(rules_of(store, app, NotifyRuleKind::PreSend)
        .await?
        .into_iter()
        .filter_map(|r| serde_json::from_value(r.rule).ok())
        .collect())
}

/// Checks a provider name: like an Easemob certificate name, 1–64 of `A-Z a-z 0-9 _ - .`.
fn check_provider_name(name: &str) -> AdminResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { Ok(()) } else { Err(AdminError::Invalid("provider name must be 1 to 64 of A-Z a-z 0-9 _ - .".into())) }
}

/// Sets the app's provider `name` (replacing one of that name), after checking that it can
/// be built: a bad key or URL is refused here, not at the first push.
pub async fn set_provider(store: &dyn Store, app: Uuid, name: &str, config: &ProviderConfig) -> AdminResult<()> {
    check_provider_name(name)?;
    config.build(&TransportConfig::default()).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let json = serde_json::to_value(config).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let record = PushProviderRecord { app_id: app, name: name.to_owned(), config: json, modified: now_ms() as i64 };
    Ok(store.put_push_provider(&record).await?)
}

/// The app's providers, described without their secrets.
pub async fn providers(store: &dyn Store, app: Uuid) -> AdminResult<Vec<Value>> {
    Ok(store
        .push_providers()
        .await?
        .into_iter()
        .filter(|p| p.app_id == app)
        .map(|p| {
            let c = &p.config;
            let mut out = json!({"name": p.name, "provider": c["provider"], "modified": p.modified});
            // Only fields that are not secret: never the secret, the key or the service account's key.
            for key in ["url", "team_id", "key_id", "topic", "base_url", "data_only"] {
                if let Some(v) = c.get(key) {
                    out[key] = v.clone();
                }
            }
            if let Some(sa) = c.get("service_account") {
                out["project_id"] = sa["project_id"].clone();
                out["client_email"] = sa["client_email"].clone();
            }
            out
        })
        .collect())
}

pub async fn remove_provider(store: &dyn Store, app: Uuid, name: &str) -> AdminResult<bool> {
    Ok(store.remove_push_provider(app, name).await?)
}
