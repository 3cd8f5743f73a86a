//! The authorization matrix: every endpoint × {no token, corrupt token, expired token,
//! another app's token, a user token, another user's token, the app token}.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

struct Endpoint {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    /// Does the owner's own user token (alice's, on an alice path) pass?
    self_allowed: bool,
}

fn ep(method: Method, path: &'static str, body: Option<Value>) -> Endpoint {
    Endpoint { method, path, body, self_allowed: false }
}

fn endpoints() -> Vec<Endpoint> {
    let send = json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "x"}});
    vec![
        ep(Method::GET, "/users", None),
        ep(Method::POST, "/users", Some(json!([{"username": "newbie", "password": "p"}]))),
        ep(Method::DELETE, "/users?limit=1", None),
        Endpoint { method: Method::GET, path: "/users/alice", body: None, self_allowed: true },
        Endpoint {
            method: Method::PUT,
            path: "/users/alice",
            body: Some(json!({"nickname": "A"})),
            self_allowed: true,
        },
        ep(Method::DELETE, "/users/alice", None),
        ep(Method::POST, "/users/alice/deactivate", Some(json!({}))),
        ep(Method::POST, "/users/alice/activate", Some(json!({}))),
        ep(Method::GET, "/users/alice/status", None),
        ep(Method::POST, "/users/batch/status", Some(json!({"usernames": ["alice"]}))),
        ep(Method::GET, "/users/alice/offline_msg_count", None),
        ep(Method::GET, "/users/alice/offline_msg_status/1", None),
        ep(Method::GET, "/users/alice/resources", None),
        ep(Method::GET, "/users/alice/disconnect", None),
        ep(Method::DELETE, "/users/alice/disconnect/res1", None),
        ep(Method::POST, "/messages/users", Some(send)),
        ep(
            Method::POST,
            "/messages",
            Some(json!({"target_type": "users", "target": ["bob"], "msg": {"type": "txt", "msg": "x"}})),
        ),
        ep(Method::POST, "/messages/msg_recall", Some(json!({"msg_id": "1", "to": "bob", "chat_type": "chat"}))),
        ep(Method::POST, "/messages/recall", Some(json!({"msgs": []}))),
    ]
}

#[tokio::test]
async fn every_endpoint_refuses_every_wrong_credential() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let alice = s.user_token("alice").await;
    let bob = s.user_token("bob").await;
    let (st, b) = s.post("/token", None, json!({"grant_type": "client_credentials", "client_id": s.app.client_id, "client_secret": s.app.client_secret, "ttl": 1})).await;
    assert_eq!(st, 200, "{b}");
    let expired = b["access_token"].as_str().unwrap().to_owned();

    // A second app in the same server: its app token must never work here.
    let store = missive_server::open_store(&s.config).await.unwrap();
    let other = missive_server::create_app(&store, "otherorg", "otherapp", false).await.unwrap();
    let (st, b) = s
        .post(
            &format!("http://{}/otherorg/otherapp/token", s.addr),
            None,
            json!({"grant_type": "client_credentials", "client_id": other.client_id, "client_secret": other.client_secret}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let foreign = b["access_token"].as_str().unwrap().to_owned();
    // Let the 1-second token expire (the behaviour under test, not a readiness wait).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    for e in endpoints() {
        let call = |token: Option<String>| {
            let (m, p, b) = (e.method.clone(), e.path, e.body.clone());
            let s = &s;
            async move { s.call(m, p, token.as_deref(), b).await }
        };
        let what = format!("{} {}", e.method, e.path);
        let (st, b) = call(None).await;
        let no_token = if e.method == Method::POST && e.path == "/users" {
            "Open registration doesn't allow, so register user need token,"
        } else {
            "Unable to authenticate (OAuth)"
        };
        assert_error(st, &b, 401, "unauthorized", no_token);
        let (st, b) = call(Some("not-a-token".into())).await;
        assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");
        let (st, b) = call(Some(expired.clone())).await;
        assert_error(st, &b, 401, "unauthorized", "Unable to authenticate due to expired access token");
        let (st, b) = call(Some(foreign.clone())).await;
        assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
        // Bob's user token never acts on admin APIs or on alice.
        let (st, b) = call(Some(bob.clone())).await;
        assert_eq!(st, 401, "{what} with another user's token: {b}");
        assert!(
            b["error_description"].as_str().unwrap().starts_with("Subject does not have permission"),
            "{what}: {b}"
        );
        let (st, b) = call(Some(alice.clone())).await;
        if e.self_allowed {
            assert_eq!(st, 200, "{what} with the user's own token: {b}");
        } else {
            assert_eq!(st, 401, "{what} with a user token: {b}");
            assert_eq!(b["exception"], "org.apache.shiro.authz.UnauthorizedException", "{what}: {b}");
        }
    }

    // The app token passes every endpoint (order matters for the destructive ones: run
    // against a throwaway user where a call would delete or ban alice).
    for e in endpoints() {
        let path = e.path.replace("/users/alice", "/users/bob");
        // Destructive calls before this one may have removed bob: make sure he exists.
        s.post("/users", Some(&admin), json!([{"username": "bob", "password": "bob-pw"}])).await;
        let (st, b) = s.call(e.method.clone(), &path, Some(&admin), e.body.clone()).await;
        let expected_not_found = path.contains("msg_recall");
        if expected_not_found {
            assert_eq!(st, 403, "{} {path}: {b}", e.method);
            assert_eq!(b["error"], "message_recall_error", "{b}");
        } else {
            assert!(st.is_success(), "{} {path} with the app token: {st} {b}", e.method);
        }
    }
}
