//! Firebase Cloud Messaging, HTTP v1 API, authenticated as a Google service account.
//!
//! 1. OAuth 2.0 for server-to-server (RFC 7523): an RS256 JWT `{iss: client_email, scope:
//!    firebase.messaging, aud: token_uri, iat, exp: iat + 1 h}` with header `kid:
//!    private_key_id`, posted form-encoded to `token_uri` as
//!    `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`; the answer's
//!    `access_token` is reused until a minute before `expires_in` runs out;
//! 2. `POST {base}/v1/projects/{project_id}/messages:send` with `authorization: Bearer
//!    <access_token>` and `{"message": {token, notification?, android, data}}`.
//!
//! `data` carries what Easemob's Android SDK reads from an FCM message (`android/push.md`
//! §5): `alert` (the text), `f`, `t`, `m`, `g`, `e` — all strings, as FCM requires (`e` is
//! JSON text when it is not a string). With `data_only` (Easemob's "推送消息类型: 数据消息")
//! the `notification` block is left out and the app builds the notification itself.
//!
//! Answers: 200 delivered; `UNREGISTERED` (404) or an invalid-token 400 → the token is dead;
//! 401 → renew the access token once and resend; 429 and 5xx → retry after `Retry-After`
//! when given; anything else is rejected.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::notification::Notification;
use super::provider::{ProviderError, PushOutcome, PushProvider, PushTarget, device_of, send_renewing};
use crate::jwt::Rs256Key;
use crate::transport::{Reply, Transport, TransportConfig};

/// Google's FCM endpoint.
pub const FCM_BASE: &str = "https://fcm.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// The fields of a Google service-account key file (`…-firebase-adminsdk-….json`) that are
/// used; the rest of the file is ignored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key_id: String,
    /// PKCS#8 PEM, as in the key file.
    pub private_key: String,
    /// `https://oauth2.googleapis.com/token` in real key files; a test server in tests.
    pub token_uri: String,
}

/// An app's FCM credentials and options.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcmConfig {
    pub service_account: ServiceAccount,
    /// `https://fcm.googleapis.com` (default) or a test server.
    #[serde(default = "fcm_base")]
    pub base_url: String,
    /// Send data-only messages: the app shows the notification itself.
    #[serde(default)]
    pub data_only: bool,
}

fn fcm_base() -> String {
    FCM_BASE.to_owned()
}

/// An FCM client for one app's service account.
pub struct FcmProvider {
    config: FcmConfig,
    key: Rs256Key,
    transport: Transport,
    /// The current access token and when it stops being used. A tokio mutex: renewing is a
    /// request to Google, and concurrent pushes should wait for that one request.
    access: Mutex<Option<(String, Instant)>>,
}

impl FcmProvider {
    pub fn new(config: FcmConfig, transport: &TransportConfig) -> Result<FcmProvider, ProviderError> {
        let key = Rs256Key::from_pem(&config.service_account.private_key)?;
        crate::callback::rule::check_url(&config.base_url)?;
        crate::callback::rule::check_url(&config.service_account.token_uri)
            .map_err(|_| ProviderError::ServiceAccount("token_uri is not an http(s) URL".into()))?;
        Ok(FcmProvider { config, key, transport: Transport::new(transport)?, access: Mutex::new(None) })
    }

    async fn access_token(&self, renew: bool) -> Result<String, PushOutcome> {
        let mut slot = self.access.lock().await;
        if let Some((token, until)) = slot.as_ref()
            && !renew
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let sa = &self.config.service_account;
        let iat = crate::callback::sender::unix_ms() / 1_000;
        let assertion = self
            .key
            .sign(
                json!({"typ": "JWT", "kid": sa.private_key_id}),
                &json!({"iss": sa.client_email, "scope": SCOPE, "aud": sa.token_uri, "iat": iat, "exp": iat + 3_600}),
            )
            .map_err(|e| PushOutcome::Rejected { reason: e.to_string() })?;
        let request = self
            .transport
            .post(&sa.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type={GRANT_TYPE}&assertion={assertion}"));
        let reply = self
            .transport
            .execute(request, None)
            .await
            .map_err(|e| PushOutcome::Retry { after_ms: None, reason: format!("token endpoint: {e}") })?;
        if reply.status != 200 {
            let reason = format!("token endpoint answered HTTP {}: {}", reply.status, reply.text());
            return Err(if reply.status >= 500 {
                PushOutcome::Retry { after_ms: None, reason }
            } else {
                PushOutcome::Rejected { reason }
            });
        }
        let answer: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let Some(token) = answer.get("access_token").and_then(Value::as_str) else {
            return Err(PushOutcome::Rejected { reason: "token endpoint answered without access_token".into() });
        };
        let lifetime = answer.get("expires_in").and_then(Value::as_u64).unwrap_or(3_600);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60));
        *slot = Some((token.to_owned(), until));
        Ok(token.to_owned())
    }

    async fn send(&self, body: &Value, renew: bool) -> Result<Reply, PushOutcome> {
        let token = self.access_token(renew).await?;
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.config.base_url.trim_end_matches('/'),
            self.config.service_account.project_id
        );
        let request = self.transport.post(&url).header("authorization", format!("Bearer {token}")).json(body);
        self.transport
            .execute(request, None)
            .await
            .map_err(|e| PushOutcome::Retry { after_ms: None, reason: e.to_string() })
    }
}

/// The `messages:send` body of `n` for the registration token `token`.
pub fn message(n: &Notification, token: &str, data_only: bool) -> Value {
    let mut data = Map::new();
    data.insert("alert".into(), n.body.clone().into());
    data.insert("f".into(), n.from.clone().into());
    data.insert("t".into(), n.to.clone().into());
    data.insert("m".into(), n.msg_id.clone().into());
    if let Some(g) = &n.group_id {
        data.insert("g".into(), g.clone().into());
    }
    if let Some(e) = &n.custom {
        let text = match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        data.insert("e".into(), text.into());
    }
    let mut android_notification = Map::new();
    if let Some(c) = &n.android.channel_id {
        android_notification.insert("channel_id".into(), c.clone().into());
    }
    if let Some(s) = &n.android.sound {
        android_notification.insert("sound".into(), s.clone().into());
    }
    if let Some(b) = n.badge {
        android_notification.insert("notification_count".into(), b.into());
    }
    let mut android = Map::new();
    android.insert("priority".into(), "high".into());
    if !data_only && !android_notification.is_empty() {
        android.insert("notification".into(), Value::Object(android_notification));
    }
    if let Some(o) = &n.android.fcm_options {
        android.insert("fcm_options".into(), o.clone());
    }
    let mut msg = Map::new();
    msg.insert("token".into(), token.into());
    if !data_only {
        msg.insert("notification".into(), json!({"title": n.title, "body": n.body}));
    }
    msg.insert("android".into(), Value::Object(android));
    msg.insert("data".into(), Value::Object(data));
    json!({ "message": msg })
}

/// The `errorCode`s of an FCM error answer (`error.details[].errorCode`) and its status.
fn error_codes(reply: &Reply) -> (Vec<String>, String) {
    let v: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let codes = v["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["errorCode"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let message = v["error"]["message"].as_str().map_or_else(|| reply.text(), str::to_owned);
    (codes, message)
}

#[async_trait]
impl PushProvider for FcmProvider {
    fn kind(&self) -> &'static str {
        "fcm"
    }

    async fn push(&self, target: &PushTarget, notification: &Notification) -> PushOutcome {
        let device = match device_of(target, "FCM") {
            Ok(device) => device,
            Err(outcome) => return outcome,
        };
        let body = message(notification, &device.device_token, self.config.data_only);
        let reply = match send_renewing(|renew| self.send(&body, renew), |r| r.status == 401).await {
            Ok(reply) => reply,
            Err(outcome) => return outcome,
        };
        if reply.status == 200 {
            return PushOutcome::Delivered;
        }
        let (codes, message) = error_codes(&reply);
        let has = |c: &str| codes.iter().any(|x| x == c);
        let token_invalid = reply.status == 400 && has("INVALID_ARGUMENT") && message.contains("registration token");
        if has("UNREGISTERED") || reply.status == 404 || token_invalid {
            PushOutcome::Unregistered
        } else if matches!(reply.status, 429 | 500..=599) {
            PushOutcome::Retry { after_ms: reply.retry_after_ms(), reason: format!("HTTP {}: {message}", reply.status) }
        } else {
            PushOutcome::Rejected { reason: format!("HTTP {}: {message}", reply.status) }
        }
    }
}
