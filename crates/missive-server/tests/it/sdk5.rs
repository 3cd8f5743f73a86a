//! The login of the SDK bundled in `easemob-chat-uikit` 3.0.3 ("SDK 5"), frame by frame: its
//! PROVISION carries no `MSync.auth`, only `Provision.auth_token` = `{"token":"$t$…"}`,
//! `action_version` "v6.0", a `service_id` and an offer of LZ4 protocol compression
//! (docs/protocol.md, "SDK 5 (UIKit) vs SDK 4"). The frame below is the one SDK 5 sent to
//! Missive in the recording, with the test's own user and token. The browser end-to-end run
//! of the UIKit itself is `uikit.rs`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use missive_msync::pb;
use missive_msync::pb::m_sync::Command;
use prost::Message as _;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;

const WAIT: Duration = Duration::from_secs(10);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// SDK 5's PROVISION for `user`, with `auth_token` as given and no `MSync.auth`.
fn sdk5_provision(app_key: &str, user: &str, auth_token: Option<String>) -> Vec<u8> {
    let resource = "webim_web_1796466527701";
    let provision = pb::Provision {
        os_type: Some(pb::provision::OsType::OsOther as i32),
        version: Some("3.0.3".into()),
        compress_type: vec![pb::provision::CompressType::CompressNone as i32],
        encrypt_type: vec![pb::EncryptType::EncryptNone as i32],
        device_uuid: Some("web_1796466527701".into()),
        device_name: Some("webim".into()),
        resource: Some(resource.into()),
        service_id: Some("sid_bf42dfe9-606c-403e-9c26-1ae5109eb97c".into()),
        action_version: Some("v6.0".into()),
        auth_token,
        session_id: Some("1796466527701:".into()),
        protocol_compress_type: vec![pb::provision::CompressType::CompressLz4 as i32],
        ..Default::default()
    };
    pb::MSync {
        version: Some(pb::m_sync::Version::MsyncV1 as i32),
        guid: Some(pb::Jid {
            app_key: Some(app_key.into()),
            name: Some(user.into()),
            domain: Some("easemob.com".into()),
            client_resource: Some(resource.into()),
        }),
        command: Some(Command::Provision as i32),
        device_id: Some(0),
        encrypt_type: vec![pb::EncryptType::EncryptNone as i32],
        trace_id: Some(1_796_466_527_710_998_703),
        payload: Some(provision.encode_to_vec().into()),
        ..Default::default()
    }
    .encode_to_vec()
}

async fn frame(ws: &mut Socket) -> pb::MSync {
    let msg = timeout(WAIT, ws.next()).await.expect("a frame in time").expect("socket open").expect("frame");
    pb::MSync::decode(msg.into_data()).expect("an MSync")
}

/// Sends SDK 5's PROVISION and returns the socket and the decoded reply.
async fn provision(s: &TestServer, user: &str, auth_token: Option<String>) -> (Socket, pb::Provision) {
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.expect("ws connect");
    ws.send(Message::Binary(sdk5_provision(&s.app_key(), user, auth_token).into())).await.expect("send");
    let env = frame(&mut ws).await;
    assert_eq!(env.command, Some(Command::Provision as i32), "{env:?}");
    let reply = pb::Provision::decode(env.payload.unwrap_or_default()).expect("a Provision");
    (ws, reply)
}

fn refusal(p: &pb::Provision) -> (Option<i32>, Option<&str>) {
    let st = p.status.as_ref().expect("status is always present: the SDK reads it unchecked");
    (st.error_code, st.reason.as_deref())
}

#[tokio::test]
async fn sdk5_logs_in_with_the_token_in_provision_auth_token() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let token = s.user_token("alice").await;

    // The JSON form SDK 5 sends: accepted, the resource echoed (SDK 5 adopts it), and no LZ4:
    // the reply leaves `protocol_compress_type` out, which is how SDK 5 learns "none".
    let (mut ws, reply) = provision(&s, "alice", Some(format!(r#"{{"token":"$t${token}"}}"#))).await;
    assert_eq!(refusal(&reply), (Some(0), None), "{reply:?}");
    assert_eq!(reply.resource.as_deref(), Some("webim_web_1796466527701"));
    assert!(reply.protocol_compress_type.is_empty() && reply.protocol_compress_direction.is_none(), "{reply:?}");

    // The session is a real one: UNREAD (SDK 5's first frame after login) is answered.
    let unread = pb::MSync { command: Some(Command::Unread as i32), ..Default::default() };
    ws.send(Message::Binary(unread.encode_to_vec().into())).await.expect("send unread");
    let env = frame(&mut ws).await;
    assert_eq!(env.command, Some(Command::Unread as i32), "{env:?}");
    let dl = pb::CommUnreadDl::decode(env.payload.unwrap_or_default()).expect("CommUnreadDL");
    assert_eq!(dl.status.and_then(|s| s.error_code), Some(0));

    // A bare token, with or without "$t$", is accepted too.
    for bare in [format!("$t${token}"), token.clone()] {
        let (_ws, reply) = provision(&s, "alice", Some(bare)).await;
        assert_eq!(refusal(&reply), (Some(0), None), "{reply:?}");
    }

    // Refusals keep SDK 4's reason strings, which SDK 5 maps the same way (AUTH_UNAUTHORIZED).
    let mismatch = Some(pb::status::ErrorCode::Fail as i32);
    let reason = Some("Sorry, token or password does not match login info");
    for auth_token in [
        None,
        Some(String::new()),
        Some(r#"{"token":""}"#.to_owned()),
        Some(r#"{"expires_in":1}"#.to_owned()),
        Some("{not json".to_owned()),
        Some(r#"{"token":"$t$YWMtnotarealtokennotarealtokennotarealtokenxx"}"#.to_owned()),
    ] {
        let (_ws, reply) = provision(&s, "alice", auth_token.clone()).await;
        assert_eq!(refusal(&reply), (mismatch, reason), "{auth_token:?}: {reply:?}");
    }
    // Alice's token in SDK 5's form does not log in as Bob.
    let (_ws, reply) = provision(&s, "bob", Some(format!(r#"{{"token":"$t${token}"}}"#))).await;
    assert_eq!(refusal(&reply), (mismatch, reason), "{reply:?}");
}
