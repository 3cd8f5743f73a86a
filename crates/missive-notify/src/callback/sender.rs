//! The HTTP side of one post-send callback delivery: sign, POST, judge the answer, and let
//! [`policy`](super::policy) decide what comes next.
//!
//! An attempt succeeds on HTTP 200 with a body of at most 1,000 characters (Easemob ignores
//! the body but counts an over-long one as a failure). Every attempt's outcome is recorded in
//! the rule's [`EndpointHealth`], so failures anywhere on this node count towards its ban,
//! and no attempt is made while the rule is banned.

use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::payload;
use super::policy::{Ban, BanRule, EndpointHealth, Next, Outcome, RetryPolicy};
use super::rule::CallbackRule;
use crate::transport::{Transport, TransportError};

/// Longest answer, in characters, an app server may give (Easemob: "响应内容不能超过 1,000
/// 个字符").
pub const MAX_RESPONSE_CHARS: usize = 1_000;

/// Why an attempt failed: logged, and kept with an exception record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answered with more than 1000 characters")]
    TooLong,
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// One delivery to carry out: an outbox entry and the rule it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    pub rule: &'a CallbackRule,
    /// The unsigned payload the outbox holds.
    pub payload: &'a Map<String, Value>,
    /// Attempts already made in earlier runs (the outbox keeps the count).
    pub attempts_made: u32,
    pub policy: &'a RetryPolicy,
}

/// How a run of attempts ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub next: Next,
    /// Attempts made so far, this run included.
    pub attempts_made: u32,
    pub last_failure: Option<Failure>,
    /// A ban this run started: the store records it so every node honours it.
    pub ban: Option<Ban>,
}

/// Sends callbacks over one [`Transport`] (whose permits bound how many are in flight).
#[derive(Clone)]
pub struct CallbackSender {
    transport: Transport,
    ban_rule: BanRule,
}

impl CallbackSender {
    pub fn new(transport: Transport, ban_rule: BanRule) -> CallbackSender {
        CallbackSender { transport, ban_rule }
    }

    /// One POST of a signed body.
    pub async fn attempt(&self, url: &str, body: Bytes) -> Result<(), Failure> {
        let request = self.transport.post(url).header("content-type", "application/json").body(body);
        let reply = self.transport.execute(request, None).await?;
        if reply.status != 200 {
            return Err(Failure::Status(reply.status));
        }
        if reply.truncated || String::from_utf8_lossy(&reply.body).chars().count() > MAX_RESPONSE_CHARS {
            return Err(Failure::TooLong);
        }
        Ok(())
    }

    /// Runs `delivery` until it is done, due again later, or given up on: the first attempt
    /// and Easemob's immediate retry happen here; later ones are the outbox's (`RetryAt`).
    /// `health` is the rule's, shared by every delivery of the rule on this node; `clock`
    /// gives Unix ms.
    pub async fn deliver(
        &self,
        delivery: Delivery<'_>,
        health: &Mutex<EndpointHealth>,
        clock: &(dyn Fn() -> i64 + Sync),
    ) -> Report {
        let body = Bytes::from(payload::sign(delivery.payload, &delivery.rule.secret));
        let mut report =
            Report { next: Next::Drop, attempts_made: delivery.attempts_made, last_failure: None, ban: None };
        loop {
            if let Some(until) = lock(health).banned_until(clock()) {
                report.next = delivery.policy.while_banned(until);
                return report;
            }
            report.attempts_made += 1;
            let result = self.attempt(&delivery.rule.url, body.clone()).await;
            let now = clock();
            let outcome = if result.is_ok() { Outcome::Delivered } else { Outcome::Failed };
            if let Some(ban) = lock(health).record(&self.ban_rule, outcome, now) {
                tracing::warn!(rule = %delivery.rule.id, url = %delivery.rule.url, minutes = (ban.until - ban.from) / 60_000, "callback rule banned after repeated failures");
                report.ban = Some(ban);
            }
            if let Err(failure) = result {
                tracing::debug!(rule = %delivery.rule.id, %failure, attempt = report.attempts_made, "callback attempt failed");
                report.last_failure = Some(failure);
            }
            match delivery.policy.after(report.attempts_made, outcome, now) {
                Next::RetryNow => continue,
                next => {
                    report.next = next;
                    return report;
                }
            }
        }
    }
}

/// The health lock is only held for a few comparisons, never across an await; a poisoned
/// lock (a panic mid-update) still holds a usable history.
fn lock(health: &Mutex<EndpointHealth>) -> std::sync::MutexGuard<'_, EndpointHealth> {
    health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The wall clock in Unix ms, the default `clock` for [`CallbackSender::deliver`].
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
