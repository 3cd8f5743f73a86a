//! Callbacks and offline push on the server: what each app configured, what a send writes to
//! the outbox, the pre-send check of SDK uploads, and the dispatcher that sends the outbox.
//!
//! `missive-notify` decides what is sent and how; this module decides when, and keeps it
//! durable:
//!
//! - [`Notifier::plan`] — called by `Delivery::send` for every recipient's copy — turns the
//!   app's cached rules into outbox entries (`chat`, `chat_offline` for a recipient with no
//!   device online on this node, recall and read-ack events, and a push for an offline
//!   recipient of a stored, non-silent message). They are committed in the transaction of
//!   the message (`EnqueueRequest::outbox`), bounded per app (`callbacks.max_outbox_per_app`:
//!   past it they are dropped and counted, and the send goes on at full speed);
//! - the dispatcher (`dispatcher`) claims due entries under a lease, delivers them with
//!   bounded concurrency, and completes, reschedules or gives them up; a receiver that is
//!   down only makes the outbox grow;
//! - rules and providers are cached and reloaded when the store's generation counter moves
//!   (polled every `callbacks.refresh_interval_ms`), so the CLI beside a running server and
//!   other nodes change them within a second;
//! - [`admin`]: adding, listing and removing rules and providers, shared by the CLI and the
//!   REST endpoints; [`metrics`]: the counters.

pub mod admin;
mod dispatcher;
pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use missive_core::id::{MsgId, now_ms};
use missive_core::model::App;
use missive_core::store::{NewOutboxEntry, NotifyRuleKind, OutboxKind, Store, StoreResult};
use missive_msync::pb;
use missive_notify::callback::policy::{Ban, BanRule, EndpointHealth};
use missive_notify::callback::sender::CallbackSender;
use missive_notify::callback::{self, CallbackEvent, CallbackRule};
use missive_notify::presend::{PreSendChecker, PreSendRule, PreSendVerdict};
use missive_notify::push::provider::PushRetry;
use missive_notify::push::{self, PushContext, PushProvider, PushSettings, Recipient, Skip};
use missive_notify::transport::{Transport, TransportConfig};
use missive_notify::{MessageEvent, Origin};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use metrics::NotifyMetrics;

/// How often outbox depth and per-app counts are read.
const DEPTH_EVERY: Duration = Duration::from_secs(1);
/// At most one "outbox full" warning per app in this long.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// A push provider of an app, built from its stored config.
#[derive(Clone)]
pub(crate) struct Provider {
    pub name: String,
    /// The stored config's `modified`: an unchanged config keeps its client (and the
    /// client's cached credentials) across reloads.
    modified: i64,
    pub client: Arc<dyn PushProvider>,
}

/// What one app configured.
#[derive(Clone, Default)]
pub(crate) struct AppRules {
    pub callbacks: Vec<CallbackRule>,
    pub presend: Vec<PreSendRule>,
    pub providers: Vec<Provider>,
}

/// Every app's rules as of one generation.
#[derive(Default)]
pub(crate) struct RuleSet {
    generation: Option<i64>,
    pub apps: HashMap<Uuid, AppRules>,
}

/// The knobs the notifier runs with, from `[callbacks]` and `[push]`.
struct Settings {
    host: String,
    /// This node's name on its leases (diagnostics only; claims fence by token).
    node: String,
    lease_ms: i64,
    claim_batch: u32,
    max_in_flight: usize,
    poll: Duration,
    refresh: Duration,
    max_outbox_per_app: u64,
    date_key_offset: i32,
    dnd_offset: i32,
    sweep_every: Duration,
}

/// The server's side of callbacks and push. One per process, shared through `AppState`.
pub struct Notifier {
    store: Arc<dyn Store>,
    settings: Settings,
    rules: RwLock<Arc<RuleSet>>,
    /// Entries per app as last read from the store, plus what this node added since.
    outbox_counts: Mutex<HashMap<Uuid, u64>>,
    /// When each app's "outbox full" warning was last logged.
    full_warned: Mutex<HashMap<Uuid, Instant>>,
    /// Woken after a commit wrote entries, so they go out without waiting for the poll.
    wake: tokio::sync::Notify,
    /// Failure history of each post-send rule's endpoint on this node, by rule id.
    health: Mutex<HashMap<String, Arc<Mutex<EndpointHealth>>>>,
    callbacks: CallbackSender,
    presend: PreSendChecker,
    push_transport: TransportConfig,
    push_retry: PushRetry,
    pub metrics: NotifyMetrics,
}

/// Why the notifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("callbacks: {0}")]
    Transport(#[from] missive_notify::transport::TransportError),
    #[error("push.trusted_roots_pem_file: {0}")]
    Roots(std::io::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Notifier {
    /// Builds the HTTP clients (the process must have installed its rustls provider).
    pub fn new(config: &Config, store: Arc<dyn Store>, node: u16) -> Result<Notifier, NotifyError> {
        let c = &config.callbacks;
        let callback_transport = TransportConfig {
            timeout: Duration::from_millis(c.timeout_ms.max(1)),
            max_in_flight: c.max_in_flight.max(1),
            ..TransportConfig::default()
        };
        let trusted_roots_pem = match &config.push.trusted_roots_pem_file {
            Some(path) => Some(std::fs::read(path).map_err(NotifyError::Roots)?),
            None => None,
        };
        let push_transport = TransportConfig {
            timeout: Duration::from_millis(config.push.timeout_ms.max(1)),
            max_in_flight: c.max_in_flight.max(1),
            trusted_roots_pem,
            ..TransportConfig::default()
        };
        let ban_rule = BanRule {
            max_failures: c.ban_max_failures.max(1),
            window_ms: c.ban_window_ms.max(1),
            step_ms: c.ban_step_ms.max(1),
            ..BanRule::default()
        };
        let host = if c.host.is_empty() { format!("missive@{node}") } else { c.host.clone() };
        Ok(Notifier {
            settings: Settings {
                node: format!("{host}/{}", &Uuid::new_v4().simple().to_string()[..8]),
                host,
                lease_ms: (c.lease_secs.max(1) * 1000) as i64,
                claim_batch: c.claim_batch.max(1),
                max_in_flight: c.max_in_flight.max(1),
                poll: Duration::from_millis(c.poll_interval_ms.max(10)),
                refresh: Duration::from_millis(c.refresh_interval_ms.max(10)),
                max_outbox_per_app: c.max_outbox_per_app,
                date_key_offset: c.date_key_utc_offset_minutes,
                dnd_offset: config.push.dnd_utc_offset_minutes,
                sweep_every: Duration::from_secs(config.queue.sweep_interval_secs.max(1)),
            },
            callbacks: CallbackSender::new(Transport::new(&callback_transport)?, ban_rule),
            presend: PreSendChecker::new(Transport::new(&callback_transport)?),
            push_transport,
            push_retry: PushRetry { backoff_ms: config.push.retry_backoff_secs.iter().map(|s| s * 1000).collect() },
            rules: RwLock::new(Arc::new(RuleSet::default())),
            outbox_counts: Mutex::new(HashMap::new()),
            full_warned: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            health: Mutex::new(HashMap::new()),
            metrics: NotifyMetrics::default(),
            store,
        })
    }

    pub(crate) fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether anything is configured for `app`: without rules or providers a send plans
    /// nothing and pays nothing.
    pub fn watches(&self, app: Uuid) -> bool {
        self.rules().apps.get(&app).is_some_and(|r| !r.callbacks.is_empty() || !r.providers.is_empty())
    }

    /// Whether the app has a pre-send rule (a check costs an HTTP round trip per message).
    pub fn has_presend(&self, app: Uuid) -> bool {
        self.rules().apps.get(&app).is_some_and(|r| !r.presend.is_empty())
    }

    /// The outbox entries one recipient's copy of a message causes: a callback for each
    /// rule that wants the event, `chat_offline` when the recipient is `offline`, and a push
    /// when it is also `stored` and notifiable (not silent, not a `cmd`, a receipt or a
    /// recall, not to the sender). `body` is the copy as sent (`from` and `to` filled in).
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &self,
        app: &App,
        origin: Origin,
        id: MsgId,
        created: i64,
        body: &pb::MessageBody,
        recipient: &str,
        offline: bool,
        stored: bool,
    ) -> Vec<NewOutboxEntry> {
        let rules = self.rules();
        let Some(app_rules) = rules.apps.get(&app.id) else { return Vec::new() };
        let Some(event) = MessageEvent::from_body(&app.app_key(), id.0, created, origin, body) else {
            return Vec::new();
        };
        let offline_list = if offline { vec![recipient.to_owned()] } else { Vec::new() };
        let mut out = Vec::new();
        for p in callback::plan(&app_rules.callbacks, &event, &offline_list, &self.settings.host) {
            let Some(due_at) = self.due_at(&app_rules.callbacks, &p.rule_id, created) else { continue };
            let mut key = format!("{}/{}/{}", p.rule_id, p.event.as_str(), id.0);
            if p.event == CallbackEvent::ChatOffline {
                key = format!("{key}/{recipient}");
            }
            out.push(NewOutboxEntry {
                app_id: app.id,
                kind: OutboxKind::Callback,
                rule_id: Some(p.rule_id),
                dedup_key: key,
                payload: Value::Object(p.payload),
                due_at,
                url_override: None,
                exception_id: None,
            });
        }
        if stored && offline && !app_rules.providers.is_empty() && notifiable(&event, recipient) {
            out.push(NewOutboxEntry {
                app_id: app.id,
                kind: OutboxKind::Push,
                rule_id: None,
                dedup_key: format!("{}/{recipient}", id.0),
                payload: json!({"event": event, "user": recipient}),
                due_at: created,
                url_override: None,
                exception_id: None,
            });
        }
        out
    }

    /// When a new callback of `rule_id` is first due, or `None` when it is not worth writing.
    /// While the rule's endpoint is banned, a callback with a backoff schedule waits for the
    /// ban to end, and one that would be dropped unsent (Easemob's rule, no exception storage)
    /// is dropped now: a dead endpoint then costs the store nothing per message, instead of
    /// a claim and a settle for each.
    fn due_at(&self, rules: &[CallbackRule], rule_id: &str, created: i64) -> Option<i64> {
        let until = lock(&self.health).get(rule_id).and_then(|h| lock(h).banned_until(created));
        let Some(until) = until else { return Some(created) };
        let policy = &rules.iter().find(|r| r.id == rule_id)?.retry;
        if !policy.backoff_ms.is_empty() {
            Some(until)
        } else if policy.keep_exceptions {
            Some(created)
        } else {
            NotifyMetrics::add(&self.metrics.callbacks_dropped, 1);
            None
        }
    }

    /// Applies the per-app bound to a send's entries: all of them fit, or none are written
    /// (counted in `outbox_dropped_full`, logged at most every 10 s per app).
    pub fn admit(&self, app: Uuid, entries: &mut Vec<NewOutboxEntry>) {
        if entries.is_empty() {
            return;
        }
        let n = entries.len() as u64;
        {
            let mut counts = lock(&self.outbox_counts);
            let count = counts.entry(app).or_default();
            if *count + n <= self.settings.max_outbox_per_app {
                *count += n;
                return;
            }
        }
        entries.clear();
        NotifyMetrics::add(&self.metrics.outbox_dropped_full, n);
        let mut warned = lock(&self.full_warned);
        if warned.get(&app).is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY) {
            warned.insert(app, Instant::now());
            tracing::warn!(%app, max = self.settings.max_outbox_per_app, "callback/push outbox full for this app; dropping new entries");
        }
    }

    /// Entries were committed: the dispatcher looks now instead of at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The pre-send check of an SDK message, or `None` when the app has no pre-send rule.
    pub async fn presend(&self, app: &App, id: MsgId, created: i64, body: &pb::MessageBody) -> Option<PreSendVerdict> {
        let rules = self.rules();
        let presend = &rules.apps.get(&app.id)?.presend;
        if presend.is_empty() {
            return None;
        }
        let event = MessageEvent::from_body(&app.app_key(), id.0, created, Origin::Sdk, body)?;
        let verdict = self.presend.check(presend, &event).await;
        let counter = match verdict {
            PreSendVerdict::Pass { .. } => &self.metrics.presend_passed,
            PreSendVerdict::Block { .. } => &self.metrics.presend_blocked,
        };
        NotifyMetrics::add(counter, 1);
        Some(verdict)
    }

    /// The failure history of a rule's endpoint.
    fn health(&self, rule_id: &str) -> Arc<Mutex<EndpointHealth>> {
        lock(&self.health).entry(rule_id.to_owned()).or_default().clone()
    }

    /// Reloads rules, providers and bans when the store's generation moved (or `force`).
    pub async fn refresh(&self, force: bool) -> StoreResult<()> {
        let generation = self.store.notify_generation().await?;
        let current = self.rules();
        if !force && current.generation == Some(generation) {
            return Ok(());
        }
        let mut apps: HashMap<Uuid, AppRules> = HashMap::new();
        for rule in self.store.notify_rules().await? {
            let entry = apps.entry(rule.app_id).or_default();
            let parsed = match rule.kind {
                NotifyRuleKind::PostSend => {
                    serde_json::from_value(rule.rule).map(|r: CallbackRule| entry.callbacks.push(r))
                }
                NotifyRuleKind::PreSend => {
                    serde_json::from_value(rule.rule).map(|r: PreSendRule| entry.presend.push(r))
                }
            };
            if let Err(e) = parsed {
                tracing::warn!(rule = %rule.id, %e, "skipping a stored callback rule that does not parse");
            }
        }
        for record in self.store.push_providers().await? {
            let kept = current
                .apps
                .get(&record.app_id)
                .and_then(|a| a.providers.iter().find(|p| p.name == record.name && p.modified == record.modified));
            let provider = match kept {
                Some(p) => p.clone(),
                None => {
                    let built = serde_json::from_value::<push::ProviderConfig>(record.config)
                        .map_err(|e| e.to_string())
                        .and_then(|c| c.build(&self.push_transport).map_err(|e| e.to_string()));
                    match built {
                        Ok(client) => Provider { name: record.name, modified: record.modified, client },
                        Err(e) => {
                            tracing::warn!(app = %record.app_id, provider = %record.name, %e, "push provider unusable; skipped");
                            continue;
                        }
                    }
                }
            };
            apps.entry(record.app_id).or_default().providers.push(provider);
        }
        for ban in self.store.active_bans(now_ms() as i64).await? {
            lock(&self.health(&ban.rule_id)).observe_ban(Ban { from: ban.from, until: ban.until, nth: ban.nth });
        }
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(RuleSet { generation: Some(generation), apps });
        Ok(())
    }

    /// Reads the outbox's depth into the gauges and the per-app counts the bound uses.
    async fn observe_depth(&self) -> StoreResult<()> {
        let now = now_ms() as i64;
        let depth = self.store.outbox_depth(now).await?;
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.outbox_due.store(depth.due, Relaxed);
        self.metrics.outbox_scheduled.store(depth.scheduled, Relaxed);
        self.metrics.outbox_leased.store(depth.leased, Relaxed);
        self.metrics.outbox_oldest_due_ms.store(depth.oldest_due_created.map_or(0, |c| (now - c).max(0)), Relaxed);
        let counts = self.store.outbox_counts().await?;
        *lock(&self.outbox_counts) = counts.into_iter().collect();
        Ok(())
    }

    /// Loads the rules once, then starts the refresh loop and the dispatcher; both end with
    /// `shutdown`.
    pub async fn start(self: &Arc<Self>, shutdown: CancellationToken) {
        if let Err(e) = self.refresh(true).await {
            tracing::warn!(%e, "loading callback rules failed; retrying in the background");
        }
        tokio::spawn(self.clone().refresh_forever(shutdown.clone()));
        tokio::spawn(dispatcher::run(self.clone(), shutdown));
    }

    async fn refresh_forever(self: Arc<Self>, shutdown: CancellationToken) {
        let (mut depth_at, mut sweep_at) = (Instant::now(), Instant::now());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.refresh) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = self.refresh(false).await {
                tracing::warn!(%e, "reloading callback rules failed");
            }
            if depth_at.elapsed() >= DEPTH_EVERY {
                depth_at = Instant::now();
                if let Err(e) = self.observe_depth().await {
                    tracing::warn!(%e, "reading the outbox depth failed");
                }
            }
            if sweep_at.elapsed() >= self.settings.sweep_every {
                sweep_at = Instant::now();
                let older_than = now_ms() as i64 - callback::exceptions::RETENTION_MS;
                match self.store.sweep_exceptions(older_than).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "swept expired callback exceptions"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%e, "callback exception sweep failed"),
                }
            }
        }
    }
}

/// Whether a message would ever be pushed to `recipient`, settings aside: the parts of
/// `push::build`'s decision known at send time.
fn notifiable(event: &MessageEvent, recipient: &str) -> bool {
    let settings = PushSettings::default();
    let recipient = Recipient { user: recipient, settings: &settings, unread: None };
    let ctx = PushContext { sender_name: None, now_ms: event.timestamp, utc_offset_minutes: 0 };
    !matches!(push::build(event, recipient, ctx), Err(Skip::NotNotifiable | Skip::Sender | Skip::Silent))
}
