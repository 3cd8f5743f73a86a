//! The dispatcher: claims due outbox entries and delivers them.
//!
//! One loop per node: when woken by a commit that wrote entries, or every
//! `callbacks.poll_interval_ms`, it claims as many due entries as it has free delivery
//! slots (`callbacks.max_in_flight`), leased for `callbacks.lease_secs`, and starts one task
//! per entry. A task delivers (a callback through `CallbackSender`, with the rule's ban
//! state; a push through the app's providers) and settles the entry: delivered entries are
//! completed in batches, the rest rescheduled or given up (into exception storage when the
//! rule keeps them). Nothing here runs on the send path: a receiver that is slow or down
//! only holds delivery slots and makes the outbox grow.

use std::sync::Arc;

use missive_core::id::now_ms;
use missive_core::store::{NewException, OutboxEntry, OutboxKind, UserPatch};
use missive_notify::MessageEvent;
use missive_notify::callback::exceptions::date_key;
use missive_notify::callback::policy::Next;
use missive_notify::callback::sender::{Delivery, unix_ms};
use missive_notify::push::provider::PushNext;
use missive_notify::push::{self, DeviceBinding, PushContext, PushOutcome, PushSettings, PushTarget, Recipient};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::Notifier;
use super::metrics::NotifyMetrics;

/// Completions written in one store call at most.
const MAX_COMPLETIONS_PER_WRITE: usize = 512;
/// How long a wake-up or a first completion waits for company. Every claim and every
/// completion is a write transaction (on SQLite, a turn of the one writer and an fsync):
/// gathering what arrives within a few milliseconds makes them a few per second instead of
/// one per message, for a few milliseconds of callback latency.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// What to do with a claimed entry after its delivery run.
enum Settle {
    Complete,
    Reschedule { due_at: i64, attempts: u32, error: String },
    GiveUp(Option<NewException>),
}

pub(super) async fn run(notifier: Arc<Notifier>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(notifier.settings.max_in_flight));
    let (done_tx, done_rx) = mpsc::channel::<(i64, i64)>(4 * MAX_COMPLETIONS_PER_WRITE);
    tokio::spawn(complete_batches(notifier.clone(), done_rx));
    loop {
        tokio::select! {
            _ = notifier.wake.notified() => tokio::time::sleep(GATHER).await,
            _ = tokio::time::sleep(notifier.settings.poll) => {}
            _ = shutdown.cancelled() => return,
        }
        // Claim until a claim comes back short: a backlog drains without waiting for polls.
        loop {
            if slots.available_permits() == 0 {
                // Wait for a slot, so nothing is claimed that cannot start at once.
                tokio::select! {
                    permit = slots.clone().acquire_owned() => drop(permit),
                    _ = shutdown.cancelled() => return,
                }
            }
            let want = (slots.available_permits() as u32).min(notifier.settings.claim_batch).max(1);
            let now = now_ms() as i64;
            let entries =
                match notifier.store.claim_outbox(&notifier.settings.node, want, notifier.settings.lease_ms, now).await
                {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(%e, "claiming outbox entries failed");
                        break;
                    }
                };
            let got = entries.len() as u32;
            for entry in entries {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                tokio::spawn(deliver(notifier.clone(), entry, slot, done_tx.clone()));
            }
            if got < want {
                break;
            }
        }
    }
}

/// Writes completions in batches: under load one store call settles hundreds of entries.
async fn complete_batches(notifier: Arc<Notifier>, mut done: mpsc::Receiver<(i64, i64)>) {
    let mut batch = Vec::with_capacity(MAX_COMPLETIONS_PER_WRITE);
    while done.recv_many(&mut batch, MAX_COMPLETIONS_PER_WRITE).await > 0 {
        tokio::time::sleep(GATHER).await;
        while batch.len() < MAX_COMPLETIONS_PER_WRITE
            && let Ok(next) = done.try_recv()
        {
            batch.push(next);
        }
        if let Err(e) = notifier.store.complete_outbox(&batch).await {
            // The entries stay leased and go out again when the lease ends: at least once.
            tracing::warn!(%e, entries = batch.len(), "completing delivered outbox entries failed");
        }
        batch.clear();
    }
}

async fn deliver(
    notifier: Arc<Notifier>,
    entry: OutboxEntry,
    _slot: OwnedSemaphorePermit,
    done: mpsc::Sender<(i64, i64)>,
) {
    let settle = match entry.kind {
        OutboxKind::Callback => notifier.deliver_callback(&entry).await,
        OutboxKind::Push => notifier.deliver_push(&entry).await,
    };
    let store = &notifier.store;
    let result = match settle {
        Settle::Complete => {
            let _ = done.send((entry.id, entry.claim)).await;
            Ok(true)
        }
        Settle::Reschedule { due_at, attempts, error } => {
            store.reschedule_outbox(entry.id, entry.claim, due_at, attempts, &error).await
        }
        Settle::GiveUp(exception) => store.give_up_outbox(entry.id, entry.claim, exception).await,
    };
    match result {
        Ok(true) => {}
        Ok(false) => tracing::debug!(id = entry.id, "outbox entry's lease was taken over before it settled"),
        Err(e) => {
            tracing::warn!(%e, id = entry.id, "settling an outbox entry failed; it goes out again after its lease")
        }
    }
}

impl Notifier {
    async fn deliver_callback(&self, entry: &OutboxEntry) -> Settle {
        let m = &self.metrics;
        let Some(rule_id) = entry.rule_id.as_deref() else { return Settle::GiveUp(None) };
        let mut rule =
            self.rules().apps.get(&entry.app_id).and_then(|a| a.callbacks.iter().find(|r| r.id == rule_id)).cloned();
        if rule.is_none() {
            // Another node may have written it under a rule this node has not loaded yet.
            let _ = self.refresh(false).await;
            rule = self
                .rules()
                .apps
                .get(&entry.app_id)
                .and_then(|a| a.callbacks.iter().find(|r| r.id == rule_id))
                .cloned();
        }
        let Some(mut rule) = rule else {
            NotifyMetrics::add(&m.callbacks_dropped, 1);
            return Settle::GiveUp(None);
        };
        if let Some(url) = &entry.url_override {
            rule.url = url.clone();
        }
        let Some(payload) = entry.payload.as_object() else {
            NotifyMetrics::add(&m.callbacks_dropped, 1);
            return Settle::GiveUp(None);
        };
        let health = self.health(&rule.id);
        let delivery = Delivery { rule: &rule, payload, attempts_made: entry.attempts, policy: &rule.retry };
        let report = self.callbacks.deliver(delivery, &health, &unix_ms).await;
        let failed =
            report.attempts_made.saturating_sub(entry.attempts).saturating_sub(u32::from(report.next == Next::Done));
        NotifyMetrics::add(&m.callbacks_failed, u64::from(failed));
        if let Some(ban) = report.ban {
            NotifyMetrics::add(&m.callback_bans, 1);
            let ban = missive_core::store::RuleBan {
                rule_id: rule.id.clone(),
                from: ban.from,
                until: ban.until,
                nth: ban.nth,
            };
            if let Err(e) = self.store.record_ban(&ban).await {
                tracing::warn!(%e, rule = %rule.id, "recording a ban failed; it holds on this node only");
            }
        }
        let reason = report.last_failure.as_ref().map_or_else(|| "endpoint banned".to_owned(), ToString::to_string);
        match report.next {
            Next::Done => {
                NotifyMetrics::add(&m.callbacks_delivered, 1);
                Settle::Complete
            }
            Next::RetryAt(_) | Next::RetryNow => {
                let due_at = match report.next {
                    Next::RetryAt(t) => t,
                    _ => unix_ms(),
                };
                NotifyMetrics::add(&m.callbacks_retried, 1);
                Settle::Reschedule { due_at, attempts: report.attempts_made, error: reason }
            }
            Next::Exception => {
                NotifyMetrics::add(&m.callbacks_exceptions, 1);
                let now = unix_ms();
                Settle::GiveUp(Some(NewException {
                    app_id: entry.app_id,
                    rule_id: rule.id.clone(),
                    date_key: date_key(now, self.settings.date_key_offset),
                    target_url: rule.url.clone(),
                    payload: entry.payload.clone(),
                    reason,
                    failed_at: now,
                }))
            }
            _ => {
                let call = payload.get("callId").and_then(|c| c.as_str()).unwrap_or_default();
                tracing::info!(rule = %rule.id, call, %reason, "callback dropped");
                NotifyMetrics::add(&m.callbacks_dropped, 1);
                Settle::GiveUp(None)
            }
        }
    }

    async fn deliver_push(&self, entry: &OutboxEntry) -> Settle {
        let m = &self.metrics;
        let drop = |why: &str| {
            tracing::debug!(id = entry.id, why, "push dropped");
            NotifyMetrics::add(&m.pushes_dropped, 1);
            Settle::GiveUp(None)
        };
        let event: Option<MessageEvent> =
            entry.payload.get("event").and_then(|e| serde_json::from_value(e.clone()).ok());
        let (Some(event), Some(user)) = (event, entry.payload.get("user").and_then(Value::as_str)) else {
            return drop("unreadable entry");
        };
        let providers = self.rules().apps.get(&entry.app_id).map(|a| a.providers.clone()).unwrap_or_default();
        if providers.is_empty() {
            return drop("the app has no push provider any more");
        }
        let store = &self.store;
        let recipient = match store.user_by_name(entry.app_id, user).await {
            Ok(Some(u)) => u,
            Ok(None) => return drop("the recipient is gone"),
            Err(e) => return self.push_retry_later(entry, format!("reading the recipient: {e}")),
        };
        let sender_name = match store.user_by_name(entry.app_id, &event.from).await {
            Ok(u) => u.and_then(|u| u.nickname),
            Err(_) => None,
        };
        let unread = store.offline_count(entry.app_id, user).await.ok().map(|n| n.min(u64::from(u32::MAX)) as u32);
        let settings = PushSettings::from_attributes(&recipient.attributes);
        let ctx = PushContext {
            sender_name: sender_name.as_deref(),
            now_ms: unix_ms(),
            utc_offset_minutes: self.settings.dnd_offset,
        };
        let notification = match push::build(&event, Recipient { user, settings: &settings, unread }, ctx) {
            Ok(n) => n,
            Err(skip) => {
                tracing::debug!(id = entry.id, ?skip, "push skipped");
                NotifyMetrics::add(&m.pushes_skipped, 1);
                return Settle::Complete;
            }
        };
        // The device bound through `PUT /users/{u}` (`notifier_name`, `device_token`).
        let text = |k: &str| recipient.attributes.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let binding = match (text("notifier_name"), text("device_token")) {
            (Some(n), Some(t)) => {
                Some(DeviceBinding { device_id: String::new(), device_token: t.into(), notifier_name: n.into() })
            }
            _ => None,
        };
        let mut outcomes = Vec::new();
        for p in &providers {
            let device = binding.as_ref().filter(|b| b.notifier_name == p.name);
            let target = match device {
                Some(d) if notification.filter.allows(d) => {
                    PushTarget { user: user.to_owned(), device: Some(d.clone()) }
                }
                Some(_) => continue,
                None if p.client.kind() == "webhook" => PushTarget { user: user.to_owned(), device: None },
                None => continue,
            };
            outcomes.push(p.client.push(&target, &notification).await);
        }
        if outcomes.is_empty() {
            return drop("no device bound to a provider of the app");
        }
        // The worst outcome decides: a retry re-sends to every provider (at least once).
        let worst = outcomes
            .iter()
            .find(|o| matches!(o, PushOutcome::Retry { .. }))
            .or_else(|| outcomes.iter().find(|o| matches!(o, PushOutcome::Unregistered)))
            .or_else(|| outcomes.iter().find(|o| matches!(o, PushOutcome::Delivered)))
            .unwrap_or(&outcomes[0])
            .clone();
        let attempts = entry.attempts + 1;
        match self.push_retry.after(attempts, &worst, unix_ms()) {
            PushNext::Done => {
                NotifyMetrics::add(&m.pushes_delivered, 1);
                Settle::Complete
            }
            PushNext::Unbind => {
                NotifyMetrics::add(&m.pushes_unregistered, 1);
                let mut patch = UserPatch::default();
                patch.attributes.insert("device_token".into(), Value::Null);
                if let Err(e) = store.update_user(entry.app_id, user, &patch).await {
                    tracing::warn!(%e, user, "removing a dead device token failed");
                }
                Settle::Complete
            }
            PushNext::RetryAt(due_at) => {
                NotifyMetrics::add(&m.pushes_retried, 1);
                let error = match &worst {
                    PushOutcome::Retry { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                Settle::Reschedule { due_at, attempts, error }
            }
            PushNext::Drop => {
                tracing::info!(id = entry.id, outcome = ?worst, "push dropped");
                NotifyMetrics::add(&m.pushes_dropped, 1);
                Settle::GiveUp(None)
            }
        }
    }

    /// A failure of our own (the store) before anything was sent: try again shortly,
    /// without counting an attempt.
    fn push_retry_later(&self, entry: &OutboxEntry, error: String) -> Settle {
        NotifyMetrics::add(&self.metrics.pushes_retried, 1);
        Settle::Reschedule { due_at: unix_ms() + 5_000, attempts: entry.attempts, error }
    }
}
