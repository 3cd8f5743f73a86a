//! `POST /{org}/{app}/token` (easemob-api.md §2) and how every API judges a token (§7.3):
//! the three grants, `ttl`, expiry, corrupt and foreign tokens, and isolation between apps.

use std::time::Duration;

use missive_core::id::now_ms;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn creds(s: &TestServer) -> Value {
    json!({"grant_type": "client_credentials", "client_id": s.app.client_id, "client_secret": s.app.client_secret})
}

/// A user entity as the token responses carry it.
#[track_caller]
fn assert_user(u: &Value, username: &str, activated: bool) {
    assert_eq!(keys(u), ["activated", "created", "modified", "type", "username", "uuid"], "{u}");
    assert_eq!(u["type"], "user");
    assert_eq!(u["username"], username);
    assert_eq!(u["activated"], activated);
    assert!(uuid::Uuid::parse_str(u["uuid"].as_str().expect("uuid")).is_ok(), "{u}");
    assert!(u["created"].as_u64().is_some_and(|c| c > 1_600_000_000_000 && c <= now_ms()), "{u}");
    assert!(u["modified"].as_u64() >= u["created"].as_u64(), "{u}");
}

#[tokio::test]
async fn client_credentials_grant() {
    let s = TestServer::start().await;
    let (st, b) = s.post("/token", None, creds(&s)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(keys(&b), ["access_token", "application", "expires_in"], "exactly the documented keys");
    assert_eq!(b["application"], s.app.id.to_string());
    assert_eq!(b["expires_in"], 60 * 24 * 3600, "the default lifetime");
    let token = b["access_token"].as_str().expect("token").to_owned();
    let (st, b) = s.get("/users", Some(&token)).await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // ttl as a number, a numeric string, and 0 (never expires).
    for (ttl, want) in [(json!(1024000), 1024000), (json!("1024000"), 1024000), (json!(0), 0), (json!("0"), 0)] {
        let mut req = creds(&s);
        req["ttl"] = ttl.clone();
        let (st, b) = s.post("/token", None, req).await;
        assert_eq!(st, StatusCode::OK, "ttl {ttl}: {b}");
        assert_eq!(b["expires_in"], want, "ttl {ttl}: {b}");
        assert!(b["expires_in"].is_u64(), "expires_in is a number: {b}");
        let (st, b) = s.get("/users", b["access_token"].as_str()).await;
        assert_eq!(st, StatusCode::OK, "ttl {ttl}: {b}");
    }

    // Errors.
    let with = |k: &str, v: Value| {
        let mut r = creds(&s);
        r[k] = v;
        r
    };
    let without = |k: &str| {
        let mut r = creds(&s);
        r.as_object_mut().expect("object").remove(k);
        r
    };
    let (st, b) = s.post("/token", None, without("client_id")).await;
    assert_error(st, &b, 400, "illegal_argument", "client_id must be provided.");
    let (st, b) = s.post("/token", None, without("client_secret")).await;
    assert_error(st, &b, 400, "illegal_argument", "client_secret must be provided");
    let (st, b) = s.post("/token", None, with("client_id", json!("YXA6wrong"))).await;
    assert_error(st, &b, 400, "invalid_grant", "client_id does not match");
    let (st, b) = s.post("/token", None, with("client_secret", json!("YXA6wrong"))).await;
    assert_error(st, &b, 400, "invalid_grant", "client_secret does not match");
    let (st, b) = s.post_raw("/token", None, r#"{"grant_type": "client_credentials", "client_id": }"#).await;
    assert_error(st, &b, 400, "invalid_request_body", "Request body is invalid. Please check body is correct.");
    let (st, b) = s.post(&format!("http://{}/nope/nada/token", s.addr), None, creds(&s)).await;
    assert_error(
        st,
        &b,
        404,
        "organization_application_not_found",
        "Could not find application for nope/nada from URI: nope/nada/token",
    );
}

#[tokio::test]
async fn password_grant() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (st, b) = s.post("/users", Some(&admin), json!({"username": "C", "password": "1"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // The documentation's example, `ttl` as a string; the user id comes back lower-cased.
    let (st, b) = s
        .post("/token", None, json!({"grant_type": "password", "username": "C", "password": "1", "ttl": "1024000"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(keys(&b), ["access_token", "expires_in", "user"]);
    assert_eq!(b["expires_in"], 1024000);
    assert_user(&b["user"], "c", true);
    let token = b["access_token"].as_str().expect("token").to_owned();
    let (st, me) = s.get("/users/c", Some(&token)).await;
    assert_eq!(st, StatusCode::OK, "a user reads itself: {me}");
    assert_eq!(me["entities"][0]["uuid"], b["user"]["uuid"]);

    let (st, b) = s.post("/token", None, json!({"grant_type": "password", "username": "c", "password": "1"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["expires_in"], 60 * 24 * 3600, "the default lifetime");

    let (st, b) = s.post("/token", None, json!({"grant_type": "password", "username": "c", "password": "2"})).await;
    assert_error(st, &b, 400, "invalid_grant", "invalid password");
    let (st, b) = s.post("/token", None, json!({"grant_type": "password", "username": "c"})).await;
    assert_error(st, &b, 400, "invalid_grant", "invalid password");
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "nobody", "password": "1"})).await;
    assert_error(st, &b, 404, "invalid_grant", "user not found");
}

#[tokio::test]
async fn inherit_grant() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice"]).await;
    let alice = s.user_token("alice").await;
    let req = |name: &str, auto: Option<bool>| {
        let mut r = json!({"grant_type": "inherit", "username": name, "ttl": 1024000});
        if let Some(a) = auto {
            r["autoCreateUser"] = a.into();
        }
        r
    };

    // Only the app token may ask.
    let (st, b) = s.post("/token", None, req("alice", None)).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
    let (st, b) = s.post("/token", Some("garbage"), req("alice", None)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");
    let (st, b) = s.post("/token", Some(&alice), req("alice", None)).await;
    assert_error(
        st,
        &b,
        401,
        "unauthorized",
        &format!("Subject does not have permission [applications:post:{}:/token]", s.app.id),
    );

    // An existing user.
    let (st, b) = s.post("/token", Some(&admin), req("Alice", None)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["expires_in"], 1024000);
    assert_user(&b["user"], "alice", true);

    // Unknown users are created only with autoCreateUser: true.
    for auto in [None, Some(false)] {
        let (st, b) = s.post("/token", Some(&admin), req("test2333", auto)).await;
        assert_error(st, &b, 404, "invalid_grant", "user not found");
        let (st, b) = s.get("/users/test2333", Some(&admin)).await;
        assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    }
    let (st, b) = s
        .post("/token", Some(&admin), json!({"grant_type": "inherit", "username": "Test2333", "autoCreateUser": true}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["expires_in"], 60 * 24 * 3600, "absent ttl is the 60-day default");
    assert_user(&b["user"], "test2333", true);
    let token = b["access_token"].as_str().expect("token").to_owned();
    let (st, got) = s.get("/users/test2333", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{got}");
    assert_eq!(got["entities"][0]["uuid"], b["user"]["uuid"]);
    let (st, got) = s.get("/users/test2333", Some(&token)).await;
    assert_eq!(st, StatusCode::OK, "the new token works: {got}");

    // A second call finds the created user rather than creating another.
    let (st, b2) = s.post("/token", Some(&admin), req("test2333", Some(true))).await;
    assert_eq!(st, StatusCode::OK, "{b2}");
    assert_eq!(b2["user"]["uuid"], b["user"]["uuid"]);

    let (st, b) = s.post("/token", Some(&admin), req("bad name!", Some(true))).await;
    assert_error(st, &b, 400, "illegal_argument", "username [bad name!] is not legal");
}

#[tokio::test]
async fn token_failures_on_an_admin_api() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;

    let (st, b) = s.get("/users", None).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
    assert_eq!(b["exception"], "com.easemob.im.exceptions.EasemobSecurityException");
    let (st, b) = s.get("/users", Some("garbage")).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");
    // Well-formed, but never issued here.
    let foreign = format!("YWMt{}", "A".repeat(43));
    let (st, b) = s.get("/users", Some(&foreign)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
    let cut = &admin[..admin.len() - 1];
    let (st, b) = s.get("/users", Some(cut)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");

    // Expiry: a 1-second token stops working once its second is over; a ttl-0 one never does.
    let mut short = creds(&s);
    short["ttl"] = 1.into();
    let (st, b) = s.post("/token", None, short).await;
    assert_eq!((st, b["expires_in"].clone()), (StatusCode::OK, json!(1)), "{b}");
    let short = b["access_token"].as_str().expect("token").to_owned();
    let mut forever = creds(&s);
    forever["ttl"] = 0.into();
    let (_, b) = s.post("/token", None, forever).await;
    let forever = b["access_token"].as_str().expect("token").to_owned();
    let issued = now_ms();
    let (st, b) = s.get("/users", Some(&short)).await;
    assert_eq!(st, StatusCode::OK, "fresh: {b}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(now_ms() > issued + 1000);
    let (st, b) = s.get("/users", Some(&short)).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate due to expired access token");
    let (st, b) =
        s.post("/messages/users", Some(&short), json!({"to": ["a"], "type": "txt", "body": {"msg": "m"}})).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate due to expired access token");
    let (st, b) = s.get("/users", Some(&forever)).await;
    assert_eq!(st, StatusCode::OK, "ttl 0 never expires: {b}");
}

#[tokio::test]
async fn apps_are_isolated() {
    let s = TestServer::start().await;
    let admin_a = s.admin_token().await;
    // A second app in the same server, created while it runs.
    let b_app = s.create_app("testorg", "appb", false).await;
    let b_url = |p: &str| s.app_url(&b_app, p);
    let admin_b = s.admin_token_for(&b_app).await;
    assert_ne!(b_app.id, s.app.id);

    // Tokens of one app mean nothing to the other.
    let (st, b) = s.get(&b_url("/users"), Some(&admin_a)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
    let (st, b) = s.get("/users", Some(&admin_b)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
    let (st, b) = s
        .post(&b_url("/messages/users"), Some(&admin_a), json!({"to": ["bob"], "type": "txt", "body": {"msg": "m"}}))
        .await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");

    // Same user name in both apps: two users.
    s.register(&admin_a, &["bob"]).await;
    let (st, b) = s.post(&b_url("/users"), Some(&admin_b), json!({"username": "bob", "password": "other"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["application"], b_app.id.to_string());
    assert_eq!(b["applicationName"], "appb");
    let bob_a = s.user_token("bob").await;
    let (st, b) = s.get(&b_url("/users/bob"), Some(&bob_a)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
    // Credentials and passwords are per app.
    let mut wrong = creds(&s);
    wrong["client_id"] = b_app.client_id.clone().into();
    let (st, b) = s.post("/token", None, wrong).await;
    assert_error(st, &b, 400, "invalid_grant", "client_id does not match");
    let (st, b) = s
        .post(&b_url("/token"), None, json!({"grant_type": "password", "username": "bob", "password": "bob-pw"}))
        .await;
    assert_error(st, &b, 400, "invalid_grant", "invalid password");

    // A message in app B does not reach app A's bob.
    let (st, b) = s
        .post(&b_url("/messages/users"), Some(&admin_b), json!({"to": ["bob"], "type": "txt", "body": {"msg": "m"}}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(s.offline_count(&admin_a, "bob").await, 0);
    let (st, b) = s.get(&b_url("/users/bob/offline_msg_count"), Some(&admin_b)).await;
    assert_eq!((st, b["data"].clone()), (StatusCode::OK, json!({"bob": 1})), "{b}");
}
