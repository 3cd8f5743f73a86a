//! Post-send callback delivery against a real local HTTP server: the exact body and its
//! signature, the immediate retry, give-up into exceptions or backoff, slow and over-long
//! answers, the ban, and the bound on requests in flight.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use missive_notify::Origin;
use missive_notify::callback::policy::{BanRule, EndpointHealth, Next, RetryPolicy};
use missive_notify::callback::sender::{CallbackSender, Delivery, Failure};
use missive_notify::callback::{CallbackEvent, CallbackRule, NewCallbackRule, payload, plan};
use missive_notify::transport::{Transport, TransportConfig, TransportError};
use serde_json::{Value, json};
use support::{Answer, http1, now_ms, transport_config};

fn rule(url: String, retry: RetryPolicy) -> CallbackRule {
    CallbackRule::create(
        NewCallbackRule { url, secret: Some("s3cret".into()), retry: Some(retry), ..Default::default() },
        "rule-1",
    )
    .unwrap()
}

fn sender(config: &TransportConfig) -> CallbackSender {
    CallbackSender::new(Transport::new(config).unwrap(), BanRule::default())
}

fn message(msg_id: u64) -> missive_notify::MessageEvent {
    support::event(
        json!({"from": "user1", "to": ["user2"], "type": "txt", "body": {"msg": "hi"}, "ext": {"k": "v"}}),
        msg_id,
        Origin::Rest,
    )
}

async fn deliver(
    s: &CallbackSender,
    rule: &CallbackRule,
    health: &Mutex<EndpointHealth>,
    msg_id: u64,
) -> missive_notify::callback::sender::Report {
    let planned = plan(std::slice::from_ref(rule), &message(msg_id), &[], "missive@test");
    assert_eq!(planned.len(), 1);
    let delivery = Delivery { rule, payload: &planned[0].payload, attempts_made: 0, policy: &rule.retry };
    s.deliver(delivery, health, &now_ms).await
}

#[tokio::test]
async fn one_post_with_the_exact_payload_and_a_valid_signature() {
    let server = http1(|_| Answer::text(200, "ok")).await;
    let rule = rule(server.url("/hook"), RetryPolicy::default());
    let report = deliver(&sender(&transport_config()), &rule, &Mutex::default(), 1029457500870543736).await;
    assert_eq!((report.next, report.attempts_made, report.last_failure), (Next::Done, 1, None));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("content-type"), "application/json");
    let body = r.json();
    let ts = body["timestamp"].as_i64().unwrap();
    assert_eq!(
        body,
        json!({
            "callId": "org#app_1029457500870543736", "eventType": "chat", "timestamp": ts, "chat_type": "chat",
            "from": "user1", "to": "user2", "msg_id": "1029457500870543736",
            "payload": {"ext": {"k": "v"}, "bodies": [{"msg": "hi", "type": "txt"}]},
            "securityVersion": "1.0.0", "security": payload::security("org#app_1029457500870543736", "s3cret", ts),
            "appkey": "org#app", "host": "missive@test", "content_type": "chat:user:text",
        })
    );
}

#[tokio::test]
async fn a_500_is_retried_once_at_once_then_given_up_or_kept_or_scheduled() {
    let server = http1(|_| Answer::status(500)).await;
    let s = sender(&transport_config());

    let easemob = rule(server.url("/"), RetryPolicy::default());
    let report = deliver(&s, &easemob, &Mutex::default(), 1).await;
    assert_eq!((report.next, report.attempts_made), (Next::Drop, 2));
    assert_eq!(report.last_failure, Some(Failure::Status(500)));
    assert_eq!(server.count(), 2, "the first attempt and one immediate retry");

    let keep = rule(server.url("/"), RetryPolicy { keep_exceptions: true, ..Default::default() });
    assert_eq!(deliver(&s, &keep, &Mutex::default(), 2).await.next, Next::Exception);

    let backoff = rule(server.url("/"), RetryPolicy { backoff_ms: vec![30_000], keep_exceptions: true });
    let before = now_ms();
    let Next::RetryAt(due) = deliver(&s, &backoff, &Mutex::default(), 3).await.next else { panic!("scheduled") };
    assert!(due >= before + 30_000 && due <= now_ms() + 30_000);
    assert_eq!(server.count(), 6);
}

#[tokio::test]
async fn over_long_and_late_answers_are_failures() {
    let long = http1(|_| Answer::text(200, &"x".repeat(1_001))).await;
    let s = sender(&transport_config());
    let report = deliver(&s, &rule(long.url("/"), RetryPolicy::default()), &Mutex::default(), 1).await;
    assert_eq!(report.last_failure, Some(Failure::TooLong));
    let exactly = http1(|_| Answer::text(200, &"字".repeat(1_000))).await;
    let report = deliver(&s, &rule(exactly.url("/"), RetryPolicy::default()), &Mutex::default(), 1).await;
    assert_eq!(report.next, Next::Done, "1,000 characters are allowed, whatever their bytes");

    let slow = http1(|_| Answer::status(200).after(Duration::from_secs(3))).await;
    let quick = TransportConfig { timeout: Duration::from_millis(200), ..transport_config() };
    let report = tokio::time::timeout(
        Duration::from_secs(2),
        deliver(&sender(&quick), &rule(slow.url("/"), RetryPolicy::default()), &Mutex::default(), 1),
    )
    .await
    .expect("two attempts of 200 ms each end well within 2 s");
    assert_eq!((report.next, report.last_failure), (Next::Drop, Some(Failure::Transport(TransportError::Timeout))));
}

#[tokio::test]
async fn a_refused_connection_is_a_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let report = deliver(&sender(&transport_config()), &rule(url, RetryPolicy::default()), &Mutex::default(), 1).await;
    assert!(matches!(report.last_failure, Some(Failure::Transport(TransportError::Connect(_)))), "{report:?}");
}

#[tokio::test]
async fn ninety_failures_ban_the_rule_and_nothing_is_sent_while_banned() {
    let server = http1(|_| Answer::status(503)).await;
    let s = sender(&transport_config());
    let health = Mutex::default();
    let waiting = rule(server.url("/"), RetryPolicy { backoff_ms: vec![1_000], keep_exceptions: false });
    let mut ban = None;
    for id in 0..45 {
        let report = deliver(&s, &waiting, &health, id).await;
        assert!(ban.is_none() || report.ban.is_none(), "one ban");
        ban = ban.or(report.ban);
    }
    let ban = ban.expect("45 deliveries × 2 attempts = 90 failures");
    assert_eq!((ban.nth, ban.until - ban.from), (1, 5 * 60_000));
    assert_eq!(server.count(), 90);

    // While banned: no request; with a backoff schedule the callback waits for the ban's end.
    let report = deliver(&s, &waiting, &health, 100).await;
    assert_eq!((report.next, report.attempts_made), (Next::RetryAt(ban.until), 0));
    let easemob = rule(server.url("/"), RetryPolicy { keep_exceptions: true, ..Default::default() });
    assert_eq!(deliver(&s, &easemob, &health, 101).await.next, Next::Exception);
    assert_eq!(server.count(), 90);
}

#[tokio::test]
async fn requests_in_flight_never_exceed_the_transport_bound() {
    // Each answer is held long enough that the two permitted requests overlap.
    let server = http1(|_| Answer::status(200).after(Duration::from_millis(500))).await;
    let config = TransportConfig { max_in_flight: 2, ..transport_config() };
    let s = sender(&config);
    let rule = rule(server.url("/"), RetryPolicy::default());
    let health = Mutex::default();
    let runs = (0..6).map(|id| deliver(&s, &rule, &health, id));
    let reports = futures_util::future::join_all(runs).await;
    assert!(reports.iter().all(|r| r.next == Next::Done));
    assert_eq!(server.count(), 6);
    assert_eq!(server.max_in_flight(), 2);
}

#[tokio::test]
async fn a_rotated_secret_signs_what_is_still_queued() {
    let server = http1(|_| Answer::status(200)).await;
    let mut r = rule(server.url("/"), RetryPolicy::default());
    let planned = plan(std::slice::from_ref(&r), &message(5), &[], "h");
    r.secret = "rotated".into();
    let delivery = Delivery { rule: &r, payload: &planned[0].payload, attempts_made: 0, policy: &r.retry };
    sender(&transport_config()).deliver(delivery, &Mutex::default(), &now_ms).await;
    let body: Value = server.requests()[0].json();
    let ts = body["timestamp"].as_i64().unwrap();
    assert_eq!(body["security"], payload::security("org#app_5", "rotated", ts));
    assert_eq!(planned[0].event, CallbackEvent::Chat);
}
