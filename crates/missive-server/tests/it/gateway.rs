//! SDK 5's sync gateway, `GET /ws?token=…` (`ws/gateway.rs`), with the request frames SDK 5
//! sends (docs/uikit.md), and the roster version it asks for over REST first: joined groups
//! answer complete and empty (Missive has no groups yet), so does the roster of a user without
//! contacts (rosters with contacts: `contacts.rs`), the
//! conversation list answers 1503 "unsupported" (so SDK 5 keeps its cached list), and every
//! request whose user is not the token's gets error 1002.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use missive_msync::gateway::{joinedgroups, roster, sessionlist};
use prost::Message as _;
use reqwest::StatusCode;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;

const WAIT: Duration = Duration::from_secs(10);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn gateway(s: &TestServer, token: &str) -> Socket {
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", s.addr)).await.expect("ws connect");
    ws
}

pub(crate) async fn ask(ws: &mut Socket, request: Vec<u8>) -> Vec<u8> {
    ws.send(Message::Binary(request.into())).await.expect("send");
    loop {
        match timeout(WAIT, ws.next()).await.expect("an answer in time").expect("socket open").expect("frame") {
            Message::Binary(b) => return b.to_vec(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn type_of(frame: &[u8]) -> i32 {
    roster::BaseMessage::decode(frame).expect("a gateway frame").r#type
}

fn roster_request(s: &TestServer, user: &str, request_id: &str) -> Vec<u8> {
    roster::GetRosterRequest {
        r#type: 3,
        header: Some(roster::GatewayHeader {
            resource: "webim_web_1".into(),
            timestamp: 1,
            request_id: request_id.into(),
            protocol_version: 1,
        }),
        org: s.app.org.clone(),
        app: s.app.name.clone(),
        username: user.into(),
        version: String::new(),
        cursor: 0,
    }
    .encode_to_vec()
}

fn session_list_request(s: &TestServer, user: &str, request_id: &str) -> Vec<u8> {
    sessionlist::GetSessionListRequest {
        r#type: 10,
        header: Some(sessionlist::GatewayHeader {
            resource: "webim_web_1".into(),
            timestamp: 1,
            request_id: request_id.into(),
            protocol_version: 1,
        }),
        org: s.app.org.clone(),
        app: s.app.name.clone(),
        username: user.into(),
        last_sync_time: 0,
        need_empty_session: false,
        need_session_mark: true,
    }
    .encode_to_vec()
}

fn groups_request(s: &TestServer, user: &str, request_id: &str) -> Vec<u8> {
    joinedgroups::GetJoinedGroupsRequest {
        r#type: 12,
        header: Some(joinedgroups::GatewayHeader {
            resource: "webim_web_1".into(),
            timestamp: 1,
            request_id: request_id.into(),
            protocol_version: 1,
        }),
        org: s.app.org.clone(),
        app: s.app.name.clone(),
        username: user.into(),
        last_sync_time: 0,
        cursor: String::new(),
    }
    .encode_to_vec()
}

#[tokio::test]
async fn gateway_answers_groups_roster_and_session_list() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["kim", "lee"]).await;
    let kim = s.user_token("kim").await;

    // The REST call SDK 5 makes before the roster sync: the version of an empty roster.
    let (st, b) = s.get("/user/kim/roster/metadata/version", Some(&kim)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let version = b["data"]["version"].as_str().expect("data.version").to_owned();
    assert!(b["data"]["checkedAt"].is_u64(), "{b}");
    let (st, _) = s.get("/user/lee/roster/metadata/version", Some(&kim)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "another user's roster version");
    let (st, _) = s.get("/user/nobody/roster/metadata/version", Some(&admin)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let mut ws = gateway(&s, &kim).await;

    // Conversations first, as SDK 5 asks: unsupported (1503), the request id echoed.
    let frame = ask(&mut ws, session_list_request(&s, "kim", "conv-1")).await;
    assert_eq!(type_of(&frame), 5);
    let err = sessionlist::ErrorDetail::decode(frame.as_slice()).expect("ErrorDetail");
    assert_eq!((err.code, err.header.map(|h| h.request_id)), (1503, Some("conv-1".to_owned())));

    // Joined groups: one complete, empty batch with the finishing time SDK 5 requires.
    let frame = ask(&mut ws, groups_request(&s, "kim", "group-1")).await;
    assert_eq!(type_of(&frame), 13);
    let groups = joinedgroups::GetJoinedGroupsResponse::decode(frame.as_slice()).expect("response");
    assert!(groups.groups.is_empty() && groups.is_last_batch, "{groups:?}");
    assert!(groups.last_sync_finished_ts > 1_600_000_000_000, "{groups:?}");
    assert_eq!(groups.header.map(|h| h.request_id), Some("group-1".to_owned()));

    // Roster: the last (only) page of a full, empty roster at the version REST gave.
    let frame = ask(&mut ws, roster_request(&s, "KIM", "contact-1")).await;
    assert_eq!(type_of(&frame), 4);
    let page = roster::GetRosterResponse::decode(frame.as_slice()).expect("response");
    assert!(page.data.is_empty(), "{page:?}");
    assert_eq!((page.cursor, page.version.as_str()), (0, version.as_str()));
    assert_eq!(page.response_type, roster::RosterResponseType::Full as i32);
    assert_eq!(page.header.map(|h| h.request_id), Some("contact-1".to_owned()));

    // Someone else's lists with kim's token: 1002 in each package's error layout.
    let frame = ask(&mut ws, roster_request(&s, "lee", "r-2")).await;
    let err = roster::ErrorDetail::decode(frame.as_slice()).expect("ErrorDetail");
    assert_eq!((err.r#type, err.code.as_str()), (5, "1002"));
    let frame = ask(&mut ws, groups_request(&s, "lee", "g-2")).await;
    let err = joinedgroups::ErrorDetail::decode(frame.as_slice()).expect("ErrorDetail");
    assert_eq!((err.r#type, err.code), (5, 1002));
    let frame = ask(&mut ws, session_list_request(&s, "lee", "c-2")).await;
    assert_eq!(sessionlist::ErrorDetail::decode(frame.as_slice()).expect("ErrorDetail").code, 1002);
    // The app token is no user's.
    let mut ws_admin = gateway(&s, &admin).await;
    let frame = ask(&mut ws_admin, groups_request(&s, "kim", "g-3")).await;
    assert_eq!(joinedgroups::ErrorDetail::decode(frame.as_slice()).expect("ErrorDetail").code, 1002);
}

#[tokio::test]
async fn gateway_refuses_no_token_and_drops_garbage() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["kim"]).await;
    let kim = s.user_token("kim").await;

    // No token: the upgrade is refused with Easemob's 401.
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr)).await.expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), StatusCode::UNAUTHORIZED),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }

    // A frame that is not a gateway message closes the connection; the server stays up.
    let mut ws = gateway(&s, &kim).await;
    ws.send(Message::Binary(vec![0xff, 0xff, 0xff].into())).await.expect("send");
    let end = timeout(WAIT, ws.next()).await.expect("closed in time");
    assert!(matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))), "{end:?}");
    let mut ws = gateway(&s, &kim).await;
    let frame = ask(&mut ws, groups_request(&s, "kim", "g")).await;
    assert_eq!(type_of(&frame), 13);
}
