//! Pre-send checks against a real local app server: pass, block with and without a code,
//! rewrite, the 200 ms timeout, broken answers, and the default policy.

mod support;

use std::time::Duration;

use missive_notify::callback::payload::security;
use missive_notify::presend::{
    DENIED, DENIED_EMPTY_CODE, INTERNAL_ERROR, PreSendChecker, PreSendRule, PreSendVerdict, Replacement,
};
use missive_notify::transport::Transport;
use missive_notify::{MessageEvent, Origin};
use serde_json::json;
use support::{Answer, TestServer, http1, transport_config};

fn sdk_text(text: &str) -> MessageEvent {
    support::event(json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": text}}), 77, Origin::Sdk)
}

fn checker() -> PreSendChecker {
    PreSendChecker::new(Transport::new(&transport_config()).unwrap())
}

fn rule(server: &TestServer) -> PreSendRule {
    PreSendRule::new("pre-1", &server.url("/check"), "psecret").unwrap()
}

async fn verdict(answer: Answer, msg: &MessageEvent) -> (PreSendVerdict, TestServer) {
    let server = http1(move |_| answer.clone()).await;
    let v = checker().check(&[rule(&server)], msg).await;
    (v, server)
}

#[tokio::test]
async fn valid_passes_and_the_request_is_signed() {
    let msg = sdk_text("hello");
    let (v, server) = verdict(Answer::json(200, json!({"valid": true, "code": "HX:10000"})), &msg).await;
    assert_eq!(v, PreSendVerdict::Pass { replacement: None });
    let body = server.requests()[0].json();
    let call_id = body["callId"].as_str().unwrap();
    assert!(
        call_id.starts_with("org#app_") && call_id.len() == "org#app_".len() + 36,
        "{{appkey}}_{{uuid}}: {call_id}"
    );
    assert_eq!(body["security"], security(call_id, "psecret", msg.timestamp));
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str(), body["msg_id"].as_str(), body["chat_type"].as_str()),
        (Some("alice"), Some("bob"), Some("77"), Some("chat"))
    );
    assert_eq!(body["payload"], json!({"ext": {}, "bodies": [{"msg": "hello", "type": "txt"}]}));
}

#[tokio::test]
async fn invalid_blocks_with_the_documented_texts() {
    let msg = sdk_text("spam");
    let block = |reason: &str| PreSendVerdict::Block { reason: reason.into(), report_error: true };
    assert_eq!(
        verdict(Answer::json(200, json!({"valid": false, "code": "HX:10001"})), &msg).await.0,
        block("HX:10001")
    );
    assert_eq!(verdict(Answer::json(200, json!({"valid": false})), &msg).await.0, block(DENIED));
    assert_eq!(verdict(Answer::json(200, json!({"valid": false, "code": ""})), &msg).await.0, block(DENIED_EMPTY_CODE));
}

#[tokio::test]
async fn payload_rewrites_the_text() {
    let answer = Answer::json(
        200,
        json!({"valid": true, "payload": {"ext": {"checked": true}, "bodies": [{"msg": "h***o", "type": "txt"}]}}),
    );
    let (v, _) = verdict(answer, &sdk_text("hello")).await;
    let ext = json!({"checked": true}).as_object().cloned();
    assert_eq!(v, PreSendVerdict::Pass { replacement: Some(Replacement { text: Some("h***o".into()), ext }) });
}

#[tokio::test]
async fn late_or_broken_answers_follow_the_default_policy() {
    let msg = sdk_text("hello");
    for answer in [
        Answer::json(200, json!({"valid": false})).after(Duration::from_millis(1_500)),
        Answer::status(500),
        Answer::text(200, "not json"),
        Answer::json(200, json!({"valid": "yes"})),
        Answer::text(200, &format!("{{\"valid\": false, \"code\": \"{}\"}}", "x".repeat(1_000))),
    ] {
        let server = http1(move |_| answer.clone()).await;
        let pass = rule(&server);
        // The late answer says `valid: false`: a pass means the 200 ms deadline cut it off.
        assert_eq!(
            checker().check(std::slice::from_ref(&pass), &msg).await,
            PreSendVerdict::Pass { replacement: None }
        );
        let block = PreSendRule { pass_on_failure: false, report_error: false, ..pass };
        assert_eq!(
            checker().check(&[block], &msg).await,
            PreSendVerdict::Block { reason: INTERNAL_ERROR.into(), report_error: false }
        );
    }
}

#[tokio::test]
async fn rest_messages_and_unmatched_types_are_not_checked() {
    let server = http1(|_| Answer::json(200, json!({"valid": false}))).await;
    let mut rest = sdk_text("x");
    rest.origin = Origin::Rest;
    assert_eq!(checker().check(&[rule(&server)], &rest).await, PreSendVerdict::Pass { replacement: None });
    let images_only = PreSendRule { msg_types: vec!["img".into()], ..rule(&server) };
    assert_eq!(checker().check(&[images_only], &sdk_text("x")).await, PreSendVerdict::Pass { replacement: None });
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn several_rules_are_asked_at_once_and_a_block_wins() {
    // One app server behind two rules, each answer held a while: both requests are in
    // flight together, so the sender waits for the slowest rule, not for the sum.
    let server = http1(|r| {
        let valid = r.path == "/pass";
        Answer::json(200, json!({"valid": valid, "code": "no"})).after(Duration::from_millis(300))
    })
    .await;
    let a = PreSendRule { timeout_ms: 2_000, ..PreSendRule::new("a", &server.url("/pass"), "s").unwrap() };
    let b = PreSendRule { timeout_ms: 2_000, ..PreSendRule::new("b", &server.url("/block"), "s").unwrap() };
    let v = checker().check(&[a, b], &sdk_text("x")).await;
    assert_eq!(v, PreSendVerdict::Block { reason: "no".into(), report_error: true });
    assert_eq!((server.count(), server.max_in_flight()), (2, 2));
}
