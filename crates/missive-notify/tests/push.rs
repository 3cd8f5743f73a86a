//! Push providers against real local servers: the webhook over HTTP/1.1, APNs and FCM over
//! HTTP/2 with TLS. The servers check what the real services check: path, headers, the JWT's
//! signature against the test key, and the JSON body.

mod support;

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use missive_notify::Origin;
use missive_notify::callback::payload::security;
use missive_notify::jwt::der_to_pem;
use missive_notify::push::apns::ApnsConfig;
use missive_notify::push::fcm::{FcmConfig, ServiceAccount};
use missive_notify::push::provider::WebhookConfig;
use missive_notify::push::{
    DeviceBinding, Notification, ProviderConfig, PushContext, PushOutcome, PushSettings, PushTarget, Recipient, build,
};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256,
    RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm,
};
use serde_json::{Value, json};
use support::{Answer, Captured, http1, http2, now_ms, pem_block, transport_config};

/// A notification for bob of a text from alice with push extension fields.
fn notification() -> Notification {
    let ext = json!({
        "em_apns_ext": {"em_push_title": "New order", "em_push_badge": 2, "em_push_sound": "ring.caf", "extern": {"order": 7}},
        "em_android_push_ext": {"fcm_channel_id": "orders"},
    });
    let ev = support::event(
        json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "hi"}, "ext": ext}),
        4242,
        Origin::Rest,
    );
    let settings = PushSettings::default();
    let recipient = Recipient { user: "bob", settings: &settings, unread: Some(5) };
    build(&ev, recipient, PushContext { sender_name: Some("Alice"), now_ms: now_ms(), utc_offset_minutes: 480 })
        .unwrap()
}

fn target(notifier: &str) -> PushTarget {
    PushTarget {
        user: "bob".into(),
        device: Some(DeviceBinding {
            device_id: "dev-1".into(),
            device_token: "a1b2c3".into(),
            notifier_name: notifier.into(),
        }),
    }
}

/// The header and claims of a compact JWT whose signature `alg` accepts under `public_key`.
fn verified_jwt(token: &str, alg: &'static dyn VerificationAlgorithm, public_key: &[u8]) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWT: {token}");
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    UnparsedPublicKey::new(alg, public_key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the JWT verifies with the test key");
    let decode = |p: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

#[tokio::test]
async fn webhook_posts_the_signed_notification() {
    let server = http1(|_| Answer::status(200)).await;
    let config = ProviderConfig::Webhook(WebhookConfig { url: server.url("/push"), secret: "whs".into() });
    let provider = config.build(&transport_config()).unwrap();
    assert_eq!(provider.kind(), "webhook");
    assert_eq!(provider.push(&target("any"), &notification()).await, PushOutcome::Delivered);

    let body = server.requests()[0].json();
    let ts = body["timestamp"].as_i64().unwrap();
    assert_eq!(body["callId"], "org#app_4242");
    assert_eq!(body["security"], security("org#app_4242", "whs", ts));
    assert_eq!(body["device"], json!({"device_id": "dev-1", "device_token": "a1b2c3", "notifier_name": "any"}));
    let n = &body["notification"];
    assert_eq!(
        (n["title"].as_str(), n["body"].as_str(), n["badge"].as_u64()),
        (Some("New order"), Some("请点击查看"), Some(2))
    );
    assert_eq!(n["android"]["ext"]["fcm_channel_id"], "orders", "vendor fields reach the app's bridge");

    let gone = http1(|_| Answer::status(410)).await;
    let p = ProviderConfig::Webhook(WebhookConfig { url: gone.url("/"), secret: "s".into() })
        .build(&transport_config())
        .unwrap();
    assert_eq!(p.push(&target("any"), &notification()).await, PushOutcome::Unregistered);
    let down = http1(|_| Answer::status(503)).await;
    let p = ProviderConfig::Webhook(WebhookConfig { url: down.url("/"), secret: "s".into() })
        .build(&transport_config())
        .unwrap();
    assert!(matches!(p.push(&target("any"), &notification()).await, PushOutcome::Retry { .. }));
}

/// An APNs provider for `server`, and the public half of its freshly made key.
fn apns(server: &support::TestServer) -> (Arc<dyn missive_notify::push::PushProvider>, Vec<u8>) {
    let rng = SystemRandom::new();
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let public = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let config = ProviderConfig::Apns(ApnsConfig {
        team_id: "TEAM123456".into(),
        key_id: "KEY1234567".into(),
        private_key_pem: der_to_pem("PRIVATE KEY", der.as_ref()),
        topic: "com.example.chat".into(),
        base_url: server.base_url.clone(),
    });
    (config.build(&transport_config()).unwrap(), public)
}

#[tokio::test]
async fn apns_gets_an_http2_request_with_a_valid_provider_token() {
    let server = http2(|_| Answer::status(200)).await;
    let (provider, public) = apns(&server);
    assert_eq!(provider.push(&target("apns"), &notification()).await, PushOutcome::Delivered);
    assert_eq!(provider.push(&target("apns"), &notification()).await, PushOutcome::Delivered);

    let requests = server.requests();
    let r = &requests[0];
    assert_eq!((r.version.as_str(), r.method.as_str(), r.path.as_str()), ("HTTP/2.0", "POST", "/3/device/a1b2c3"));
    assert_eq!(
        (r.header("apns-topic"), r.header("apns-push-type"), r.header("apns-priority")),
        ("com.example.chat", "alert", "10")
    );
    let token = r.header("authorization").strip_prefix("bearer ").expect("a bearer token");
    let (header, claims) = verified_jwt(token, &ECDSA_P256_SHA256_FIXED, &public);
    assert_eq!(header, json!({"alg": "ES256", "kid": "KEY1234567"}));
    assert_eq!(claims["iss"], "TEAM123456");
    assert!((claims["iat"].as_i64().unwrap() - now_ms() / 1_000).abs() < 60);
    assert_eq!(
        r.json(),
        json!({
            "aps": {"alert": {"title": "New order", "body": "请点击查看"}, "badge": 2, "sound": "ring.caf"},
            "f": "alice", "t": "bob", "m": "4242", "e": {"order": 7},
        })
    );
    assert_eq!(requests[1].header("authorization"), r.header("authorization"), "the token is reused");
}

#[tokio::test]
async fn apns_answers_map_to_outcomes() {
    let expired = Arc::new(Mutex::new(true));
    let flag = expired.clone();
    // The first request finds the provider token expired; the retry with a new one succeeds.
    let server = http2(move |_| {
        if std::mem::replace(&mut *flag.lock().unwrap(), false) {
            Answer::json(403, json!({"reason": "ExpiredProviderToken"}))
        } else {
            Answer::status(200)
        }
    })
    .await;
    let (provider, _) = apns(&server);
    assert_eq!(provider.push(&target("apns"), &notification()).await, PushOutcome::Delivered);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_ne!(requests[0].header("authorization"), requests[1].header("authorization"), "a new token");

    for (answer, expected) in [
        (Answer::json(410, json!({"reason": "Unregistered"})), "unregistered"),
        (Answer::json(400, json!({"reason": "BadDeviceToken"})), "unregistered"),
        (Answer::json(429, json!({"reason": "TooManyRequests"})), "retry"),
        (Answer::json(400, json!({"reason": "PayloadTooLarge"})), "rejected"),
    ] {
        let server = http2(move |_| answer.clone()).await;
        let outcome = apns(&server).0.push(&target("apns"), &notification()).await;
        let kind = match outcome {
            PushOutcome::Unregistered => "unregistered",
            PushOutcome::Retry { .. } => "retry",
            PushOutcome::Rejected { .. } => "rejected",
            PushOutcome::Delivered => "delivered",
        };
        assert_eq!(kind, expected, "{outcome:?}");
    }
    let no_device = PushTarget { user: "bob".into(), device: None };
    assert!(matches!(apns(&server).0.push(&no_device, &notification()).await, PushOutcome::Rejected { .. }));
}

/// A fake Google: `/token` checks the assertion and issues `ya29.test-N`; `messages:send`
/// answers with `send_answer` when the bearer is a token it issued.
fn google(send_answer: Answer) -> impl Fn(&Captured) -> Answer + Send + Sync {
    let issued = Mutex::new(0u32);
    move |r: &Captured| {
        if r.path == "/token" {
            let mut n = issued.lock().unwrap();
            *n += 1;
            return Answer::json(
                200,
                json!({"access_token": format!("ya29.test-{n}"), "expires_in": 3599, "token_type": "Bearer"}),
            );
        }
        if !r.header("authorization").starts_with("Bearer ya29.test-") {
            return Answer::json(401, json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}));
        }
        send_answer.clone()
    }
}

fn fcm(server: &support::TestServer, data_only: bool) -> Arc<dyn missive_notify::push::PushProvider> {
    ProviderConfig::Fcm(FcmConfig {
        service_account: ServiceAccount {
            project_id: "missive-test".into(),
            client_email: "push@missive-test.iam.gserviceaccount.com".into(),
            private_key_id: "kid-1".into(),
            private_key: support::SERVICE_ACCOUNT_KEY_PEM.into(),
            token_uri: server.url("/token"),
        },
        base_url: server.base_url.clone(),
        data_only,
    })
    .build(&transport_config())
    .unwrap()
}

#[tokio::test]
async fn fcm_signs_in_with_the_service_account_then_sends() {
    let server = http2(google(Answer::json(200, json!({"name": "projects/missive-test/messages/1"})))).await;
    let provider = fcm(&server, false);
    assert_eq!(provider.kind(), "fcm");
    assert_eq!(provider.push(&target("fcm"), &notification()).await, PushOutcome::Delivered);
    assert_eq!(provider.push(&target("fcm"), &notification()).await, PushOutcome::Delivered);

    let requests = server.requests();
    assert_eq!(
        requests.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/token", "/v1/projects/missive-test/messages:send", "/v1/projects/missive-test/messages:send"],
        "one access token serves both sends"
    );

    let token_request = &requests[0];
    assert_eq!(token_request.header("content-type"), "application/x-www-form-urlencoded");
    let form = String::from_utf8(token_request.body.clone()).unwrap();
    let assertion = form
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .expect("the JWT-bearer grant");
    let key = RsaKeyPair::from_pkcs8(&pem_block(support::SERVICE_ACCOUNT_KEY_PEM, "PRIVATE KEY")).unwrap();
    let (header, claims) = verified_jwt(assertion, &RSA_PKCS1_2048_8192_SHA256, key.public().as_ref());
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"}));
    assert_eq!(claims["iss"], "push@missive-test.iam.gserviceaccount.com");
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/firebase.messaging");
    assert_eq!(claims["aud"], server.url("/token"));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3_600);

    let send = &requests[1];
    assert_eq!((send.version.as_str(), send.header("authorization")), ("HTTP/2.0", "Bearer ya29.test-1"));
    assert_eq!(
        send.json(),
        json!({"message": {
            "token": "a1b2c3",
            "notification": {"title": "New order", "body": "请点击查看"},
            "android": {"priority": "high", "notification": {"channel_id": "orders", "notification_count": 2}},
            "data": {"alert": "请点击查看", "f": "alice", "t": "bob", "m": "4242", "e": "{\"order\":7}"},
        }})
    );

    let data_only = http2(google(Answer::json(200, json!({})))).await;
    fcm(&data_only, true).push(&target("fcm"), &notification()).await;
    let message = &data_only.requests()[1].json()["message"];
    assert!(message.get("notification").is_none() && message["android"].get("notification").is_none());
    assert_eq!(message["data"]["alert"], "请点击查看");
}

#[tokio::test]
async fn fcm_answers_map_to_outcomes() {
    let unregistered = json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
    let server = http2(google(Answer::json(404, unregistered))).await;
    assert_eq!(fcm(&server, false).push(&target("fcm"), &notification()).await, PushOutcome::Unregistered);

    let server = http2(google(Answer::json(503, json!({"error": {"code": 503, "message": "busy"}})))).await;
    assert!(matches!(fcm(&server, false).push(&target("fcm"), &notification()).await, PushOutcome::Retry { .. }));

    // An access token the server stopped accepting is renewed once.
    let rejected_once = Mutex::new(false);
    let inner = google(Answer::json(200, json!({})));
    let server = http2(move |r| {
        if r.path != "/token" && !std::mem::replace(&mut *rejected_once.lock().unwrap(), true) {
            return Answer::json(401, json!({"error": {"code": 401}}));
        }
        inner(r)
    })
    .await;
    assert_eq!(fcm(&server, false).push(&target("fcm"), &notification()).await, PushOutcome::Delivered);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.iter().filter(|p| *p == "/token").count(), 2);
}
