//! Apple Push Notification service, HTTP/2 provider API with token authentication.
//!
//! `POST {base}/3/device/{token}` over HTTP/2 with
//! - `authorization: bearer <JWT>`: ES256, header `{alg, kid: key_id}`, claims
//!   `{iss: team_id, iat}`, signed with the `.p8` key. Apple rejects tokens older than an
//!   hour and throttles ones renewed more often than every 20 minutes, so one token is reused
//!   for 50 minutes, and renewed early when APNs says `ExpiredProviderToken`;
//! - `apns-topic` (the bundle id), `apns-push-type: alert`, `apns-priority: 10`;
//! - the payload Easemob's SDKs parse (`ios/push.md`): `{"aps": {"alert": {title, subtitle,
//!   body}, badge, sound, …}, "f": from, "t": to, "m": msg_id, "g": group, "e": custom}`.
//!
//! Answers: 200 delivered; 410 or 400 `BadDeviceToken`/`DeviceTokenNotForTopic` → the token
//! is dead; 429 and 5xx → retry; anything else is rejected with APNs's `reason`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::notification::Notification;
use super::provider::{ProviderError, PushOutcome, PushProvider, PushTarget, device_of, send_renewing};
use crate::jwt::Es256Key;
use crate::transport::{Reply, Transport, TransportConfig};

/// Apple's production endpoint; the sandbox is `https://api.sandbox.push.apple.com`.
pub const PRODUCTION: &str = "https://api.push.apple.com";

/// How long one provider token is reused.
const TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);

/// An app's APNs credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApnsConfig {
    /// The 10-character Team ID of the developer account.
    pub team_id: String,
    /// The key's 10-character Key ID.
    pub key_id: String,
    /// The `.p8` file's contents (PKCS#8 PEM).
    pub private_key_pem: String,
    /// The app's bundle id, sent as `apns-topic`.
    pub topic: String,
    /// `https://api.push.apple.com` (default), the sandbox, or a test server.
    #[serde(default = "production")]
    pub base_url: String,
}

fn production() -> String {
    PRODUCTION.to_owned()
}

/// An APNs client for one app's credentials.
pub struct ApnsProvider {
    config: ApnsConfig,
    key: Es256Key,
    transport: Transport,
    /// The current provider token and when it was made. A tokio mutex because renewing holds
    /// it while signing, so concurrent pushes wait for one new token instead of each making
    /// their own (Apple throttles token churn).
    token: Mutex<Option<(String, Instant)>>,
}

impl ApnsProvider {
    pub fn new(config: ApnsConfig, transport: &TransportConfig) -> Result<ApnsProvider, ProviderError> {
        let key = Es256Key::from_pem(&config.private_key_pem)?;
        crate::callback::rule::check_url(&config.base_url)?;
        let transport = Transport::new(&TransportConfig { http2_only: true, ..transport.clone() })?;
        Ok(ApnsProvider { config, key, transport, token: Mutex::new(None) })
    }

    /// The current token, or a new one if it is older than [`TOKEN_LIFETIME`] or `renew`.
    async fn token(&self, renew: bool) -> Result<String, String> {
        let mut slot = self.token.lock().await;
        if let Some((token, made)) = slot.as_ref()
            && !renew
            && made.elapsed() < TOKEN_LIFETIME
        {
            return Ok(token.clone());
        }
        let iat = crate::callback::sender::unix_ms() / 1_000;
        let token = self
            .key
            .sign(json!({"kid": self.config.key_id}), &json!({"iss": self.config.team_id, "iat": iat}))
            .map_err(|e| e.to_string())?;
        *slot = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    async fn send(&self, device_token: &str, payload: &Value, renew: bool) -> Result<Reply, PushOutcome> {
        let token = self.token(renew).await.map_err(|reason| PushOutcome::Rejected { reason })?;
        let url = format!("{}/3/device/{device_token}", self.config.base_url.trim_end_matches('/'));
        let request = self
            .transport
            .post(&url)
            .header("authorization", format!("bearer {token}"))
            .header("apns-topic", &self.config.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .json(payload);
        self.transport
            .execute(request, None)
            .await
            .map_err(|e| PushOutcome::Retry { after_ms: None, reason: e.to_string() })
    }
}

/// The JSON payload of `n`.
pub fn payload(n: &Notification) -> Value {
    let mut alert = Map::new();
    alert.insert("title".into(), n.title.clone().into());
    if let Some(s) = &n.subtitle {
        alert.insert("subtitle".into(), s.clone().into());
    }
    alert.insert("body".into(), n.body.clone().into());
    let mut aps = Map::new();
    aps.insert("alert".into(), Value::Object(alert));
    if let Some(b) = n.badge {
        aps.insert("badge".into(), b.into());
    }
    aps.insert("sound".into(), n.apns.sound.clone().unwrap_or_else(|| "default".into()).into());
    if n.apns.mutable_content {
        aps.insert("mutable-content".into(), 1.into());
    }
    if n.apns.content_available {
        aps.insert("content-available".into(), 1.into());
    }
    if let Some(c) = &n.apns.category {
        aps.insert("category".into(), c.clone().into());
    }
    if let Some(t) = &n.apns.thread_id {
        aps.insert("thread-id".into(), t.clone().into());
    }
    let mut root = Map::new();
    root.insert("aps".into(), Value::Object(aps));
    root.insert("f".into(), n.from.clone().into());
    root.insert("t".into(), n.to.clone().into());
    root.insert("m".into(), n.msg_id.clone().into());
    if let Some(g) = &n.group_id {
        root.insert("g".into(), g.clone().into());
    }
    if let Some(e) = &n.custom {
        root.insert("e".into(), e.clone());
    }
    Value::Object(root)
}

/// APNs's `reason` from an error answer (`{"reason": "BadDeviceToken"}`).
fn reason(reply: &Reply) -> String {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| reply.text())
}

#[async_trait]
impl PushProvider for ApnsProvider {
    fn kind(&self) -> &'static str {
        "apns"
    }

    async fn push(&self, target: &PushTarget, notification: &Notification) -> PushOutcome {
        let device = match device_of(target, "APNs") {
            Ok(device) => device,
            Err(outcome) => return outcome,
        };
        let body = payload(notification);
        let stale = |r: &Reply| {
            r.status == 403 && matches!(reason(r).as_str(), "ExpiredProviderToken" | "InvalidProviderToken")
        };
        let reply = match send_renewing(|renew| self.send(&device.device_token, &body, renew), stale).await {
            Ok(reply) => reply,
            Err(outcome) => return outcome,
        };
        let why = reason(&reply);
        match (reply.status, why.as_str()) {
            (200, _) => PushOutcome::Delivered,
            (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => PushOutcome::Unregistered,
            (429 | 500..=599, _) => {
                PushOutcome::Retry { after_ms: reply.retry_after_ms(), reason: format!("HTTP {}: {why}", reply.status) }
            }
            (status, _) => PushOutcome::Rejected { reason: format!("HTTP {status}: {why}") },
        }
    }
}
