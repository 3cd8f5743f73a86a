//! The client against the in-process mock server (`support`): login, the NOTICE → pull → ack
//! loop, offline pulls after UNREAD, upload acks, redelivery without acks, kicks, heartbeat,
//! logout, and the ways a broken server ends a session. Every wait is bounded by `WAIT`.

mod support;

use std::time::Duration;

use missive_msync::client::{read_ack_body, text_body};
use missive_msync::pb;
use missive_msync::pb::m_sync::Command;
use missive_msync::{ClientError, ClientEvent, ClientOptions, Login, MsyncClient, Received};
use support::{APP_KEY, Mock, MockConfig, WAIT};
use tokio::time::timeout;

fn login(mock: &Mock, user: &str) -> Login {
    Login { url: mock.url(), app_key: APP_KEY.into(), user: user.into(), token: format!("tok-{user}"), resource: None }
}

async fn connect(mock: &Mock, user: &str) -> MsyncClient {
    connect_with(mock, user, ClientOptions::default()).await
}

async fn connect_with(mock: &Mock, user: &str, options: ClientOptions) -> MsyncClient {
    MsyncClient::connect(login(mock, user), options).await.expect("login")
}

async fn next_event(client: &mut MsyncClient) -> ClientEvent {
    timeout(WAIT, client.next_event()).await.expect("timed out waiting for an event").expect("event channel closed")
}

async fn next_message(client: &mut MsyncClient) -> Received {
    match next_event(client).await {
        ClientEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn text_of(m: &Received) -> &str {
    m.body.as_ref().expect("chat body").contents[0].text()
}

#[tokio::test]
async fn login_adopts_the_assigned_resource_then_sends_unread() {
    let mut mock =
        Mock::start(MockConfig { assign_resource: Some("server-chosen".into()), ..Default::default() }).await;
    let client = connect(&mock, "bob").await;
    assert_eq!(client.resource(), "server-chosen");

    let provision = mock.next_frame().await;
    assert_eq!(provision.command(), Command::Provision);
    assert_eq!(provision.frame.auth(), "$t$tok-bob");
    let proposed = provision.frame.guid.unwrap().client_resource.unwrap();
    assert!(proposed.starts_with("missive_rs_"), "{proposed}");

    let unread = mock.next_frame().await;
    assert_eq!(unread.command(), Command::Unread);
    assert_eq!(unread.user, "bob");
}

#[tokio::test]
async fn a_wrong_token_is_a_login_error() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut bad = login(&mock, "bob");
    bad.token = "nope".into();
    match MsyncClient::connect(bad, ClientOptions::default()).await {
        Err(ClientError::Login { code, reason }) => {
            assert_eq!(code, pb::status::ErrorCode::Fail as i32);
            assert_eq!(reason, "Sorry, token or password does not match login info");
        }
        other => panic!("expected a login error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let login = Login {
        url: format!("ws://127.0.0.1:{port}/websocket"),
        app_key: APP_KEY.into(),
        user: "bob".into(),
        token: "tok-bob".into(),
        resource: None,
    };
    let result = MsyncClient::connect(login, ClientOptions::default()).await;
    assert!(matches!(result, Err(ClientError::Connect(_))), "{result:?}");
}

/// PROTOCOL.md §3.4, as captured: NOTICE → pull (no key) → metas + next_key, is_last:false →
/// ack with the key → is_last:true.
#[tokio::test]
async fn notice_pull_and_key_ack() {
    let mut mock = Mock::start(MockConfig { batch: 1, ..Default::default() }).await;
    let mut bob = connect(&mock, "bob").await;
    mock.wait_for(|s| s.command() == Command::Unread).await;

    let first = mock.push_text("alice", "bob", "one");
    let second = mock.push_text("alice", "bob", "two");

    let m1 = next_message(&mut bob).await;
    assert_eq!((m1.id, text_of(&m1)), (first, "one"));
    assert_eq!((m1.from.as_str(), m1.to.as_str()), ("alice", "bob"));
    assert_eq!(m1.queue, "alice");
    assert_eq!(m1.ns, pb::meta::NameSpace::Chat as i32);
    assert!(m1.timestamp > 0);
    let m2 = next_message(&mut bob).await;
    assert_eq!((m2.id, text_of(&m2)), (second, "two"));

    // On the wire: one pull without key, then one ack per batch with that batch's next_key.
    let (pull, _) = mock.wait_for(|s| s.pull().is_some()).await;
    assert_eq!(pull.pull(), Some(("alice".to_owned(), None)));
    let (ack1, _) = mock.wait_for(|s| s.pull().is_some()).await;
    assert_eq!(ack1.pull(), Some(("alice".to_owned(), Some(first))));
    let (ack2, _) = mock.wait_for(|s| s.pull().is_some()).await;
    assert_eq!(ack2.pull(), Some(("alice".to_owned(), Some(second))));
    assert_eq!(ack2.frame.version, Some(0));
    assert_eq!(ack2.frame.encrypt_type, vec![0]);
    assert_eq!(mock.pending("bob", "alice"), 0);
}

/// The second NOTICE arrives while the first queue is still being pulled: queues are pulled one
/// after another, and a queue already pending is not pulled twice.
#[tokio::test]
async fn several_queues_are_pulled_in_turn() {
    let mut mock = Mock::start(MockConfig::default()).await;
    let mut bob = connect(&mock, "bob").await;
    mock.wait_for(|s| s.command() == Command::Unread).await;

    mock.push_text("alice", "bob", "from alice");
    mock.push_text("carol", "bob", "from carol");
    mock.push_text("alice", "bob", "alice again");

    let mut texts = Vec::new();
    for _ in 0..3 {
        let m = next_message(&mut bob).await;
        texts.push(format!("{}:{}", m.queue, text_of(&m)));
    }
    texts.sort();
    assert_eq!(texts, ["alice:alice again", "alice:from alice", "carol:from carol"]);
    assert_eq!(bob.unread().await.unwrap(), vec![]);
    assert_eq!(mock.pending("bob", "alice") + mock.pending("bob", "carol"), 0);
}

#[tokio::test]
async fn offline_messages_are_pulled_after_login() {
    let mock = Mock::start(MockConfig::default()).await;
    let id = mock.push_text("carol", "bob", "offline hello");
    let mut bob = connect(&mock, "bob").await;
    let m = next_message(&mut bob).await;
    assert_eq!((m.id, m.queue.as_str(), text_of(&m)), (id, "carol", "offline hello"));
    // The key-ack was written before this UNREAD, so nothing is left.
    assert_eq!(bob.unread().await.unwrap(), vec![]);
}

#[tokio::test]
async fn unread_lists_queues_and_pulls_them() {
    let mut mock = Mock::start(MockConfig::default()).await;
    let mut bob = connect_with(&mock, "bob", ClientOptions { auto_ack: false, ..Default::default() }).await;
    mock.wait_for(|s| s.command() == Command::Unread).await;
    mock.push_text("dave", "bob", "listed");
    next_message(&mut bob).await; // pulled on NOTICE, left unacked
    let listing = bob.unread().await.unwrap();
    assert_eq!(listing, vec![("dave".to_owned(), 1)]);
    // The UNREAD reply made the client pull the (unacked) queue again.
    let again = next_message(&mut bob).await;
    assert_eq!(text_of(&again), "listed");
}

/// With `auto_ack: false` the client pulls but never acks, so the server redelivers.
#[tokio::test]
async fn without_auto_ack_messages_are_redelivered() {
    let mut mock = Mock::start(MockConfig::default()).await;
    let mut bob = connect_with(&mock, "bob", ClientOptions { auto_ack: false, ..Default::default() }).await;
    mock.wait_for(|s| s.command() == Command::Unread).await;

    let first = mock.push_text("alice", "bob", "one");
    assert_eq!(next_message(&mut bob).await.id, first);
    let second = mock.push_text("alice", "bob", "two");
    assert_eq!(next_message(&mut bob).await.id, first);
    assert_eq!(next_message(&mut bob).await.id, second);

    let frames = mock.drain();
    let pulls: Vec<_> = frames.iter().filter_map(|s| s.pull()).collect();
    assert_eq!(pulls, vec![("alice".to_owned(), None); 2]);
    assert_eq!(mock.pending("bob", "alice"), 2);
}

#[tokio::test]
async fn a_send_is_acked_and_delivered() {
    let mock = Mock::start(MockConfig::default()).await;
    let alice = connect(&mock, "alice").await;
    let mut bob = connect(&mock, "bob").await;

    let ext = serde_json::json!({"k": [1], "n": 7});
    let body = text_body("alice", "bob", "hi bob", ext.as_object());
    let ack = alice.send("bob", body).await.unwrap();
    assert!(ack.local_id > 0 && ack.server_id > 0 && ack.timestamp > 0);

    let m = next_message(&mut bob).await;
    assert_eq!(m.id, ack.server_id);
    assert_eq!((m.from.as_str(), m.to.as_str()), ("alice", "bob"));
    assert_eq!(text_of(&m), "hi bob");
    let body = m.body.unwrap();
    assert_eq!(serde_json::Value::Object(missive_msync::key_values_to_json(&body.ext)), ext);
    assert!(body.contents[0].sub_type.is_none());

    // A receipt travels the same way back.
    let receipt = bob.send("alice", read_ack_body("bob", "alice", m.id)).await.unwrap();
    assert!(receipt.server_id > ack.server_id);
}

#[tokio::test]
async fn concurrent_sends_get_their_own_acks() {
    let mock = Mock::start(MockConfig::default()).await;
    let alice = connect(&mock, "alice").await;
    let sends = (0..50).map(|i| alice.send("bob", text_body("alice", "bob", &i.to_string(), None)));
    let acks = futures_util::future::join_all(sends).await;
    let mut server_ids: Vec<u64> = acks.into_iter().map(|a| a.unwrap().server_id).collect();
    server_ids.sort();
    server_ids.dedup();
    assert_eq!(server_ids.len(), 50);
    assert_eq!(mock.pending("bob", "alice"), 50);
}

#[tokio::test]
async fn a_rejected_send_reports_code_and_reason() {
    let mock = Mock::start(MockConfig::default()).await;
    let alice = connect(&mock, "alice").await;
    let result = alice.send("bob", text_body("alice", "bob", "reject me", None)).await;
    match result {
        Err(ClientError::Rejected { code, reason }) => {
            assert_eq!((code, reason.as_str()), (1, "blocked"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_statistic_kick_is_reported() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut bob = connect(&mock, "bob").await;
    mock.push_kick("bob", pb::statistics_body::Operation::UserLoginAnotherDevice);
    assert_eq!(next_event(&mut bob).await, ClientEvent::Kicked { operation: 2, reason: Some("kicked by test".into()) });
    // INFORMATION is not a kick: it arrives as an ordinary STATISTIC message.
    mock.push_kick("bob", pb::statistics_body::Operation::Information);
    let info = next_message(&mut bob).await;
    assert_eq!(info.ns, pb::meta::NameSpace::Statistic as i32);
    assert!(info.body.is_none());
}

#[tokio::test]
async fn the_heartbeat_is_unread_after_silence() {
    let mut mock = Mock::start(MockConfig::default()).await;
    let _bob =
        connect_with(&mock, "bob", ClientOptions { heartbeat: Duration::from_millis(50), ..Default::default() }).await;
    mock.wait_for(|s| s.command() == Command::Unread).await; // after login
    mock.wait_for(|s| s.command() == Command::Unread).await; // heartbeat
}

#[tokio::test]
async fn close_sends_logout_like_the_sdk() {
    let mut mock = Mock::start(MockConfig::default()).await;
    let bob = connect(&mock, "bob").await;
    let resource = bob.resource().to_owned();
    timeout(WAIT, bob.close()).await.expect("close is bounded");

    let (logout, _) = mock.wait_for(|s| s.command() == Command::Logout).await;
    assert_eq!(logout.frame.auth(), "$t$tok-bob");
    assert_eq!(logout.frame.guid.as_ref().unwrap().client_resource(), resource);
    let body: pb::Logout = missive_msync::frame::decode_payload(&logout.frame).unwrap();
    assert_eq!(body.reason(), "inner:logout");
    assert!(body.session_id().ends_with(':'));
}

#[tokio::test]
async fn a_garbage_frame_ends_the_session_without_panicking() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut bob = connect(&mock, "bob").await;
    mock.push_raw("bob", vec![0xff, 0xff, 0xff, 0xff]);
    match next_event(&mut bob).await {
        ClientEvent::Closed { reason } => assert!(reason.contains("undecodable"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(timeout(WAIT, bob.next_event()).await.unwrap().is_none());
    let late = bob.send("alice", text_body("bob", "alice", "late", None)).await;
    assert!(matches!(late, Err(ClientError::Closed)), "{late:?}");
}

#[tokio::test]
async fn is_last_with_metas_is_a_protocol_violation() {
    let mock = Mock::start(MockConfig { is_last_with_metas: true, ..Default::default() }).await;
    let mut bob = connect(&mock, "bob").await;
    mock.push_text("alice", "bob", "looping");
    match next_event(&mut bob).await {
        ClientEvent::Closed { reason } => assert!(reason.contains("is_last"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_close_is_reported() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut bob = connect(&mock, "bob").await;
    mock.close_session("bob");
    match next_event(&mut bob).await {
        ClientEvent::Closed { reason } => assert!(reason.contains("closed"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_uploads_can_be_sent_raw() {
    let mut mock = Mock::start(MockConfig::default()).await;
    let bob = connect(&mock, "bob").await;
    let frame = missive_msync::encode_frame(Command::Unread, pb::CommUnreadUl {});
    bob.send_raw_frame(frame).await.unwrap();
    // Login's UNREAD, then ours (bare: no version, no encrypt_type).
    mock.wait_for(|s| s.command() == Command::Unread).await;
    let (raw, _) = mock.wait_for(|s| s.command() == Command::Unread).await;
    assert_eq!(raw.frame.version, None);
}
