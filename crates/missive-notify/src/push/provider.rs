//! Push providers: the trait every delivery channel implements, its outcomes, the per-app
//! configuration that picks one, the retry rule, and the simplest provider, the webhook.
//!
//! An app names each provider config like Easemob names a push certificate
//! (`notifier_name`); a device binding's `notifier_name` picks the config its token belongs
//! to. The webhook is the app's own bridge: it gets every notification, with the binding when
//! there is one, and may push through services Missive has no client for (Huawei, Xiaomi, …,
//! whose fields travel in `android.ext`).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::apns::{ApnsConfig, ApnsProvider};
use super::fcm::{FcmConfig, FcmProvider};
use super::notification::{DeviceBinding, Notification};
use crate::callback::payload::{SECURITY_VERSION, call_id, security};
use crate::callback::rule::{RuleError, check_url};
use crate::jwt::KeyError;
use crate::transport::{Reply, Transport, TransportConfig, TransportError};

/// Where one notification goes: a user, and the device binding when the provider needs one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    pub user: String,
    pub device: Option<DeviceBinding>,
}

/// How a push ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The token is dead (app uninstalled, token rotated): remove the binding.
    Unregistered,
    /// Worth trying again (throttled, provider down, network); `after_ms` when the
    /// provider said how long to wait.
    Retry {
        after_ms: Option<u64>,
        reason: String,
    },
    /// Will never succeed as it is (bad payload, bad credentials): log and drop.
    Rejected {
        reason: String,
    },
}

/// The device a token-addressed provider (APNs, FCM) pushes to, or why it cannot.
pub(crate) fn device_of<'a>(target: &'a PushTarget, provider: &str) -> Result<&'a DeviceBinding, PushOutcome> {
    target.device.as_ref().ok_or_else(|| PushOutcome::Rejected { reason: format!("{provider} needs a device token") })
}

/// Sends with the cached credential (`send(false)`); when the answer says the credential is
/// stale, sends once more with a renewed one (`send(true)`). Both APNs provider tokens and
/// Google access tokens can be revoked or expire early, and one renewal is all it takes.
pub(crate) async fn send_renewing<F, Fut>(mut send: F, stale: impl Fn(&Reply) -> bool) -> Result<Reply, PushOutcome>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<Reply, PushOutcome>>,
{
    let reply = send(false).await?;
    if stale(&reply) { send(true).await } else { Ok(reply) }
}

/// A push delivery channel.
#[async_trait]
pub trait PushProvider: Send + Sync {
    /// `webhook`, `apns`, `fcm`: for logs and metrics labels.
    fn kind(&self) -> &'static str;
    async fn push(&self, target: &PushTarget, notification: &Notification) -> PushOutcome;
}

/// One provider config of an app, as stored (the secrets are in it: never log it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum ProviderConfig {
    Webhook(WebhookConfig),
    Apns(ApnsConfig),
    Fcm(FcmConfig),
}

impl std::fmt::Debug for ProviderConfig {
    /// Names the provider and nothing else: configs carry private keys and secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            ProviderConfig::Webhook(_) => "webhook",
            ProviderConfig::Apns(_) => "apns",
            ProviderConfig::Fcm(_) => "fcm",
        };
        write!(f, "ProviderConfig({kind}, <redacted>)")
    }
}

/// Why a provider config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Url(#[from] RuleError),
    #[error("private key: {0}")]
    Key(#[from] KeyError),
    #[error("service account: {0}")]
    ServiceAccount(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl ProviderConfig {
    /// A ready provider. `transport` sets deadlines and limits; APNs forces HTTP/2 on top.
    pub fn build(&self, transport: &TransportConfig) -> Result<Arc<dyn PushProvider>, ProviderError> {
        Ok(match self {
            ProviderConfig::Webhook(c) => Arc::new(WebhookProvider::new(c.clone(), transport)?),
            ProviderConfig::Apns(c) => Arc::new(ApnsProvider::new(c.clone(), transport)?),
            ProviderConfig::Fcm(c) => Arc::new(FcmProvider::new(c.clone(), transport)?),
        })
    }
}

/// How failed pushes are retried from the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRetry {
    /// Delays of the attempts after the first; then the push is dropped.
    pub backoff_ms: Vec<u64>,
}

impl Default for PushRetry {
    /// 5 s, 30 s, 2 min, 10 min: a provider outage of a quarter hour loses nothing.
    fn default() -> Self {
        PushRetry { backoff_ms: vec![5_000, 30_000, 120_000, 600_000] }
    }
}

/// What to do after a push attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushNext {
    Done,
    RetryAt(i64),
    /// Remove the device binding, then done.
    Unbind,
    Drop,
}

impl PushRetry {
    /// After attempt number `attempt` (1-based) ended with `outcome` at `now` (Unix ms).
    pub fn after(&self, attempt: u32, outcome: &PushOutcome, now: i64) -> PushNext {
        match outcome {
            PushOutcome::Delivered => PushNext::Done,
            PushOutcome::Unregistered => PushNext::Unbind,
            PushOutcome::Rejected { .. } => PushNext::Drop,
            PushOutcome::Retry { after_ms, .. } => match self.backoff_ms.get(attempt.max(1) as usize - 1) {
                Some(&delay) => PushNext::RetryAt(now.saturating_add(delay.max(after_ms.unwrap_or(0)) as i64)),
                None => PushNext::Drop,
            },
        }
    }
}

/// An HTTP(S) endpoint of the app that receives notifications as JSON.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    pub url: String,
    /// Signs each body like a callback: `security = md5_hex(callId + secret + timestamp)`.
    pub secret: String,
}

/// POSTs `{callId, timestamp, appkey, user, device?, notification, securityVersion,
/// security}`; 2xx is delivered, 410 means the device is gone, 429 and 5xx are retried.
pub struct WebhookProvider {
    config: WebhookConfig,
    transport: Transport,
}

impl WebhookProvider {
    pub fn new(config: WebhookConfig, transport: &TransportConfig) -> Result<WebhookProvider, ProviderError> {
        check_url(&config.url)?;
        Ok(WebhookProvider { transport: Transport::new(transport)?, config })
    }
}

#[async_trait]
impl PushProvider for WebhookProvider {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn push(&self, target: &PushTarget, notification: &Notification) -> PushOutcome {
        let call_id = call_id(&notification.app_key, &notification.msg_id);
        let timestamp = crate::callback::sender::unix_ms();
        let body = serde_json::json!({
            "callId": call_id,
            "timestamp": timestamp,
            "appkey": notification.app_key,
            "user": target.user,
            "device": target.device,
            "notification": notification,
            "securityVersion": SECURITY_VERSION,
            "security": security(&call_id, &self.config.secret, timestamp),
        });
        let request = self.transport.post(&self.config.url).json(&body);
        match self.transport.execute(request, None).await {
            Err(e) => PushOutcome::Retry { after_ms: None, reason: e.to_string() },
            Ok(reply) => match reply.status {
                200..=299 => PushOutcome::Delivered,
                410 => PushOutcome::Unregistered,
                429 | 500..=599 => {
                    PushOutcome::Retry { after_ms: reply.retry_after_ms(), reason: format!("HTTP {}", reply.status) }
                }
                status => PushOutcome::Rejected { reason: format!("HTTP {status}: {}", reply.text()) },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_retry_backs_off_then_drops() {
        let r = PushRetry::default();
        let retry = |after_ms| PushOutcome::Retry { after_ms, reason: String::new() };
        assert_eq!(r.after(1, &retry(None), 0), PushNext::RetryAt(5_000));
        assert_eq!(r.after(1, &retry(Some(60_000)), 0), PushNext::RetryAt(60_000), "the provider's Retry-After wins");
        assert_eq!(r.after(4, &retry(None), 0), PushNext::RetryAt(600_000));
        assert_eq!(r.after(5, &retry(None), 0), PushNext::Drop);
        assert_eq!(r.after(1, &PushOutcome::Unregistered, 0), PushNext::Unbind);
        assert_eq!(r.after(1, &PushOutcome::Rejected { reason: String::new() }, 0), PushNext::Drop);
        assert_eq!(r.after(3, &PushOutcome::Delivered, 0), PushNext::Done);
    }

    #[test]
    fn configs_never_print_their_secrets() {
        let c = ProviderConfig::Webhook(WebhookConfig { url: "http://h/".into(), secret: "hunter2".into() });
        assert!(!format!("{c:?}").contains("hunter2"));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["provider"], "webhook", "stored with its kind as a tag");
    }
}
