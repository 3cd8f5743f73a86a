//! The user system (easemob-api.md §3): registration (single, batch, open), lookup, listing
//! with cursors, deletion, profile fields, passwords, ban, presence and offline counts, and
//! which token may do what.

use missive_core::id::now_ms;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, assert_envelope, assert_error};

fn names(b: &Value) -> Vec<String> {
    b["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| e["username"].as_str().expect("name").to_owned())
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[track_caller]
fn assert_permission(st: StatusCode, b: &Value, s: &TestServer, verb: &str, resource: &str) {
    assert_error(
        st,
        b,
        401,
        "unauthorized",
        &format!("Subject does not have permission [applications:{verb}:{}:{resource}]", s.app.id),
    );
    assert_eq!(b["exception"], "org.apache.shiro.authz.UnauthorizedException", "{b}");
}

#[tokio::test]
async fn register_one_user_and_its_errors() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let uri = format!("http://{}/testorg/testapp/users", s.addr);
    let before = now_ms();
    let (st, b) =
        s.post("/users", Some(&admin), json!({"username": "User1", "password": "123", "nickname": "testuser"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "post", "/users", &uri, before);
    let e = &b["entities"][0];
    assert_eq!(b["entities"].as_array().map(Vec::len), Some(1));
    assert_eq!(keys(e), ["activated", "created", "modified", "nickname", "type", "username", "uuid"], "{e}");
    assert_eq!(
        (e["type"].as_str(), e["username"].as_str(), e["nickname"].as_str()),
        (Some("user"), Some("user1"), Some("testuser"))
    );
    assert_eq!(e["activated"], true);
    assert!(e["created"].as_u64().is_some_and(|c| c >= before) && e["created"] == e["modified"], "{e}");

    // Without a nickname there is no nickname key.
    let (st, b) = s.post("/users", Some(&admin), json!({"username": "user2", "password": "123"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["entities"][0].get("nickname").is_none(), "{b}");

    // No Content-Type at all is accepted too.
    let r = s
        .raw(Method::POST, "/users", Some(&admin), &[], Some(br#"{"username":"user3","password":"p"}"#.to_vec()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    for dup in ["user1", "USER1"] {
        let (st, b) = s.post("/users", Some(&admin), json!({"username": dup, "password": "x"})).await;
        assert_error(
            st,
            &b,
            400,
            "duplicate_unique_property_exists",
            &format!(
                "Application {} Entity user requires that property named username be unique, value of user1 exists",
                s.app.id
            ),
        );
        assert_eq!(b["exception"], "org.apache.usergrid.persistence.exceptions.DuplicateUniquePropertyExistsException");
    }
    let (st, b) = s.post_raw("/users", Some(&admin), r#"{"username": "x" "password": "y"}"#).await;
    assert_error(st, &b, 400, "invalid_request_body", "Request body is invalid. Please check body is correct.");
    let (st, b) = s.post("/users", Some(&admin), json!({"password": "x"})).await;
    assert_error(st, &b, 400, "illegal_argument", "Entity user requires a property named username");
    let (st, b) = s.post("/users", Some(&admin), json!({"username": "user9"})).await;
    assert_error(st, &b, 400, "illegal_argument", "password or pin must provided");
    let (st, b) = s.post("/users", Some(&admin), json!({"username": "bad name", "password": "x"})).await;
    assert_error(st, &b, 400, "illegal_argument", "username [bad name] is not legal");
    let (st, b) = s.post("/users", Some(&admin), json!({"username": "a".repeat(65), "password": "x"})).await;
    assert_error(st, &b, 400, "illegal_argument", "USERNAME_TOO_LONG");
    let (st, b) = s.post("/users", Some(&admin), json!({"username": "a".repeat(64), "password": "x"})).await;
    assert_eq!(st, StatusCode::OK, "64 bytes is allowed: {b}");
    let (st, b) =
        s.post("/users", Some(&admin), json!({"username": "n1", "password": "x", "nickname": "昵".repeat(101)})).await;
    assert_error(st, &b, 400, "illegal_argument", "NICKNAME_TOO_LONG");
    let (st, b) =
        s.post("/users", Some(&admin), json!({"username": "n2", "password": "x", "nickname": "昵".repeat(100)})).await;
    assert_eq!(st, StatusCode::OK, "100 characters is allowed: {b}");

    // Registration is not open on this app.
    let (st, b) = s.post("/users", None, json!({"username": "open1", "password": "x"})).await;
    assert_error(st, &b, 401, "unauthorized", "Open registration doesn't allow, so register user need token,");
    let (st, b) = s.post("/users", Some("garbage"), json!({"username": "open1", "password": "x"})).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");
    let (st, b) = s.get("/users/open1", Some(&admin)).await;
    assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
}

#[tokio::test]
async fn batch_registration_reports_partial_failure() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user3"]).await;
    let (st, b) = s
        .post(
            "/users",
            Some(&admin),
            json!([
                {"username": "user1", "password": "123"},
                {"username": "user3", "password": "456"},
                {"username": "user2", "password": "789"},
            ]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(names(&b), ["user1", "user2"]);
    assert_eq!(b["data"], json!([{"username": "user3", "registerUserFailReason": "the user3 already exists"}]));
    // The failed one kept its password; the others got theirs.
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user3", "password": "user3-pw"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user2", "password": "789"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");

    let batch = |n: usize| -> Value { (0..n).map(|i| json!({"username": format!("b{i}"), "password": "p"})).collect() };
    let (st, b) = s.post("/users", Some(&admin), batch(61)).await;
    assert_error(
        st,
        &b,
        400,
        "illegal_argument",
        "Request body array size[61] had almost reached or been greater than the upper range value[60]",
    );
    let (st, b) = s.get("/users/b0", Some(&admin)).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing of the refused batch was created: {b}");
    let (st, b) = s.post("/users", Some(&admin), batch(60)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["entities"].as_array().map(Vec::len), Some(60));
    assert_eq!(b["data"], json!([]));

    // A batch always needs the app token, even where registration is open.
    let (st, b) = s.post("/users", None, batch(1)).await;
    assert_error(st, &b, 401, "unauthorized", "Open registration doesn't allow, so register user need token,");
}

#[tokio::test]
async fn open_registration_needs_no_token() {
    let s = TestServer::start_with(|c| c.security.open_registration = true).await;
    let (st, b) = s.post("/users", None, json!({"username": "Self1", "password": "pw", "nickname": "me"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(names(&b), ["self1"]);
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "self1", "password": "pw"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s.post("/users", None, json!({"username": "self1", "password": "pw"})).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::BAD_REQUEST, json!("duplicate_unique_property_exists")));
    // A batch is still an admin operation.
    let (st, b) = s.post("/users", None, json!([{"username": "self2", "password": "pw"}])).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
}

#[tokio::test]
async fn who_may_read_and_change_what() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let alice = s.user_token("alice").await;
    let (_, bob) = s.get("/users/bob", Some(&admin)).await;
    let bob_uuid = bob["entities"][0]["uuid"].as_str().expect("uuid").to_owned();

    // A user reads and edits itself…
    let uri = format!("http://{}/testorg/testapp/users/alice", s.addr);
    let before = now_ms();
    let (st, b) = s.get("/users/alice", Some(&alice)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "get", "/users", &uri, before);
    assert_eq!((names(&b), b["count"].clone()), (vec!["alice".to_owned()], json!(1)));
    let (st, b) = s.get("/users/ALICE", Some(&alice)).await;
    assert_eq!((st, names(&b)), (StatusCode::OK, vec!["alice".to_owned()]), "{b}");
    let (st, b) = s.put("/users/alice", Some(&alice), json!({"nickname": "Al"})).await;
    assert_eq!((st, b["entities"][0]["nickname"].clone()), (StatusCode::OK, json!("Al")), "{b}");

    // …but not another user, and nothing that needs the app token.
    let (st, b) = s.get("/users/bob", Some(&alice)).await;
    assert_permission(st, &b, &s, "get", &format!("/users/{bob_uuid}"));
    let (st, b) = s.put("/users/bob", Some(&alice), json!({"nickname": "hacked"})).await;
    assert_permission(st, &b, &s, "put", &format!("/users/{bob_uuid}"));
    let (st, b) = s.get("/users", Some(&alice)).await;
    assert_permission(st, &b, &s, "get", "/users");
    let (st, b) = s.delete("/users/bob", Some(&alice)).await;
    assert_permission(st, &b, &s, "delete", "/users");
    let (st, b) = s.delete("/users/alice", Some(&alice)).await;
    assert_permission(st, &b, &s, "delete", "/users");
    let (st, b) = s.delete("/users?limit=1", Some(&alice)).await;
    assert_permission(st, &b, &s, "delete", "/users");
    let (st, b) =
        s.post("/messages/users", Some(&alice), json!({"to": ["bob"], "type": "txt", "body": {"msg": "m"}})).await;
    assert_permission(st, &b, &s, "post", "/messages/users");
    let (st, b) = s
        .post(
            "/messages",
            Some(&alice),
            json!({"target_type": "users", "target": ["bob"], "msg": {"type": "txt", "msg": "m"}}),
        )
        .await;
    assert_permission(st, &b, &s, "post", "/messages");
    let (st, b) = s.post("/users", Some(&alice), json!({"username": "carol", "password": "x"})).await;
    assert_permission(st, &b, &s, "post", "/users");
    let (st, b) = s.post("/users/bob/deactivate", Some(&alice), json!({})).await;
    assert_permission(st, &b, &s, "post", "/users");
    let (st, b) = s.get("/users/alice/offline_msg_count", Some(&alice)).await;
    assert_permission(st, &b, &s, "get", "/users");

    // Nothing changed.
    let (_, b) = s.get("/users/bob", Some(&admin)).await;
    assert_eq!(b["entities"][0]["activated"], true);
    assert!(b["entities"][0].get("nickname").is_none(), "{b}");
    let (_, b) = s.get("/users", Some(&admin)).await;
    assert_eq!(names(&b), ["alice", "bob"]);
    assert_eq!(s.offline_count(&admin, "bob").await, 0);

    // Without a valid token every user API is 401, whether the user exists or not.
    for (m, p) in [
        (Method::GET, "/users"),
        (Method::DELETE, "/users"),
        (Method::POST, "/users/batch/status"),
        (Method::GET, "/users/bob"),
        (Method::GET, "/users/nobody"),
        (Method::PUT, "/users/bob"),
        (Method::PUT, "/users/nobody"),
        (Method::DELETE, "/users/bob"),
        (Method::DELETE, "/users/nobody"),
        (Method::PUT, "/users/bob/password"),
        (Method::PUT, "/users/nobody/password"),
        (Method::POST, "/users/bob/deactivate"),
        (Method::POST, "/users/bob/activate"),
        (Method::GET, "/users/bob/status"),
        (Method::GET, "/users/bob/offline_msg_count"),
        (Method::GET, "/users/bob/offline_msg_status/1"),
        (Method::GET, "/users/bob/resources"),
        (Method::GET, "/users/bob/disconnect"),
        (Method::DELETE, "/users/bob/disconnect/android_1"),
    ] {
        let body = match p {
            "/users/batch/status" => Some(json!({"usernames": ["bob"]})),
            p if p.ends_with("/password") => Some(json!({"newpassword": "x".repeat(65)})),
            _ if m == Method::PUT || m == Method::POST => Some(json!({"nickname": "x"})),
            _ => None,
        };
        let (st, b) = s.call(m.clone(), p, None, body.clone()).await;
        assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
        let (st, b) = s.call(m.clone(), p, Some("garbage"), body).await;
        assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");
    }

    // Unknown users in the path.
    for (m, p) in [
        (Method::GET, "/users/nobody"),
        (Method::DELETE, "/users/nobody"),
        (Method::PUT, "/users/nobody"),
        (Method::POST, "/users/nobody/deactivate"),
        (Method::POST, "/users/nobody/activate"),
        (Method::GET, "/users/nobody/status"),
        (Method::GET, "/users/nobody/offline_msg_count"),
        (Method::GET, "/users/nobody/offline_msg_status/1"),
        (Method::GET, "/users/bad%20name"),
    ] {
        let body = (m == Method::PUT || m == Method::POST).then(|| json!({}));
        let (st, b) = s.call(m.clone(), p, Some(&admin), body).await;
        assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    }
}

#[tokio::test]
async fn listing_pages_with_a_cursor_and_deleting() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["u1", "u2", "u3", "u4", "u5"]).await;
    let uri = format!("http://{}/testorg/testapp/users", s.addr);

    let before = now_ms();
    let (st, p1) = s.get("/users?limit=2", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{p1}");
    assert_envelope(&s, &p1, "get", "/users", &uri, before);
    assert_eq!(p1["params"], json!({"limit": ["2"]}));
    assert_eq!((names(&p1), p1["count"].clone()), (vec!["u1".to_owned(), "u2".to_owned()], json!(2)));
    let c1 = p1["cursor"].as_str().expect("cursor while more remain").to_owned();

    let (st, p2) = s.get(&format!("/users?limit=2&cursor={c1}"), Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{p2}");
    assert_eq!(p2["params"], json!({"cursor": [c1], "limit": ["2"]}));
    assert_eq!(names(&p2), ["u3", "u4"]);
    let c2 = p2["cursor"].as_str().expect("cursor while more remain").to_owned();

    let (st, p3) = s.get(&format!("/users?cursor={c2}&limit=2"), Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{p3}");
    assert_eq!((names(&p3), p3["count"].clone()), (vec!["u5".to_owned()], json!(1)));
    assert!(p3.get("cursor").is_none(), "no cursor on the last page: {p3}");

    // An exactly full last page has no cursor either; no query means no params, limit 10.
    let (_, b) = s.get("/users?limit=5", Some(&admin)).await;
    assert_eq!(names(&b).len(), 5);
    assert!(b.get("cursor").is_none(), "{b}");
    let (_, b) = s.get("/users", Some(&admin)).await;
    assert!(b.get("params").is_none() && b.get("cursor").is_none(), "{b}");
    assert_eq!(b["count"], 5);

    // Delete one.
    let u1 = s.user_token("u1").await;
    let before = now_ms();
    let (st, b) = s.delete("/users/u1", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "delete", "/users", &format!("{uri}/u1"), before);
    assert_eq!(names(&b), ["u1"]);
    assert_eq!(b["entities"][0]["uuid"], p1["entities"][0]["uuid"]);
    let (st, b) = s.get("/users/u1", Some(&admin)).await;
    assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    let (st, b) = s.delete("/users/u1", Some(&admin)).await;
    assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    let (st, b) = s.get("/users/u1", Some(&u1)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a deleted user's token is dead: {b}");

    // Batch delete takes the N oldest.
    let before = now_ms();
    let (st, b) = s.delete("/users?limit=2", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "delete", "/users", &uri, before);
    assert_eq!(b["params"], json!({"limit": ["2"]}));
    assert_eq!((names(&b), b["count"].clone()), (vec!["u2".to_owned(), "u3".to_owned()], json!(2)));
    let (_, b) = s.get("/users", Some(&admin)).await;
    assert_eq!(names(&b), ["u4", "u5"]);
    // A name can be registered again once deleted.
    s.register(&admin, &["u1"]).await;
    let (_, b) = s.get("/users", Some(&admin)).await;
    assert_eq!(names(&b), ["u4", "u5", "u1"], "ordered by creation");
}

#[tokio::test]
async fn profile_fields_password_and_ban() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1"]).await;
    let (_, created) = s.get("/users/user1", Some(&admin)).await;

    // Nickname and notification settings.
    let fields = json!({
        "nickname": "推送昵称",
        "notification_display_style": 1,
        "notification_no_disturbing": true,
        "notification_no_disturbing_start": "1",
        "notification_no_disturbing_end": "6",
        "notification_ignore_184524748161025": true,
        "notifier_name": "com.example.push",
        "device_token": "dt-123",
    });
    let before = now_ms();
    let (st, b) = s.put("/users/user1", Some(&admin), fields.clone()).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "put", "/users", &format!("http://{}/testorg/testapp/users/user1", s.addr), before);
    let (_, got) = s.get("/users/user1", Some(&admin)).await;
    let e = &got["entities"][0];
    for (k, v) in fields.as_object().expect("object") {
        assert_eq!(&e[k], v, "{k} in {e}");
        assert_eq!(&b["entities"][0][k], v, "{k} in the PUT answer");
    }
    assert_eq!(e["uuid"], created["entities"][0]["uuid"]);
    assert_eq!(e["created"], created["entities"][0]["created"]);
    assert!(e["modified"].as_u64() >= e["created"].as_u64());
    let (st, b) = s.put("/users/user1", Some(&admin), json!({"notification_display_style": "loud"})).await;
    assert_error(st, &b, 400, "invalid_request_body", "Request body is invalid. Please check body is correct.");
    let (st, b) = s.put("/users/user1", Some(&admin), json!({"nickname": "n".repeat(101)})).await;
    assert_error(st, &b, 400, "illegal_argument", "NICKNAME_TOO_LONG");

    // Password change: old tokens die at once, the new password works, the old does not.
    let old = s.user_token("user1").await;
    let (st, b) = s.put("/users/user1/password", Some(&admin), json!({"newpassword": "fresh"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(keys(&b), ["action", "duration", "timestamp"], "{b}");
    assert_eq!(b["action"], "set user password");
    let (st, b) = s.get("/users/user1", Some(&old)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user1", "password": "user1-pw"})).await;
    assert_error(st, &b, 400, "invalid_grant", "invalid password");
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user1", "password": "fresh"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let fresh = b["access_token"].as_str().expect("token").to_owned();
    // POST is accepted as well; errors.
    let (st, b) = s.post("/users/user1/password", Some(&admin), json!({"newpassword": "fresher"})).await;
    assert_eq!((st, b["action"].clone()), (StatusCode::OK, json!("set user password")), "{b}");
    let (st, b) = s.get("/users/user1", Some(&fresh)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    let (st, b) = s.put("/users/user1/password", Some(&admin), json!({})).await;
    assert_error(st, &b, 400, "illegal_argument", "newpassword is required");
    let (st, b) = s.put("/users/nobody/password", Some(&admin), json!({"newpassword": "x"})).await;
    assert_error(st, &b, 404, "entity_not_found", "User null not found");
    let (st, b) = s.put("/users/user1/password", None, json!({"newpassword": "x"})).await;
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
    // A user changing its own password must prove the old one.
    let (_, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user1", "password": "fresher"})).await;
    let own = b["access_token"].as_str().expect("token").to_owned();
    let (st, b) = s.put("/users/user1/password", Some(&own), json!({"newpassword": "mine"})).await;
    assert_error(st, &b, 400, "illegal_argument", "oldPassword is required");
    let (st, b) =
        s.put("/users/user1/password", Some(&own), json!({"newpassword": "mine", "oldpassword": "fresher"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user1", "password": "mine"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // Ban: tokens revoked, no new ones, until activated again.
    let before_ban = b["access_token"].as_str().expect("token").to_owned();
    let (st, b) = s.post("/users/user1/deactivate", Some(&admin), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["action"], "Deactivate user");
    assert_eq!(b["entities"][0]["username"], "user1");
    assert_eq!(b["entities"][0]["activated"], false);
    let (st, b) = s.get("/users/user1", Some(&before_ban)).await;
    assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user1", "password": "mine"})).await;
    assert_error(st, &b, 400, "invalid_grant", "user not activated");
    let (st, b) = s.post("/token", Some(&admin), json!({"grant_type": "inherit", "username": "user1"})).await;
    assert_error(st, &b, 400, "invalid_grant", "user not activated");
    let (_, b) = s.get("/users/user1", Some(&admin)).await;
    assert_eq!(b["entities"][0]["activated"], false);

    let (st, b) = s.post("/users/user1/activate", Some(&admin), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(keys(&b), ["action", "duration", "timestamp"], "{b}");
    assert_eq!(b["action"], "activate user");
    let (st, b) =
        s.post("/token", None, json!({"grant_type": "password", "username": "user1", "password": "mine"})).await;
    assert_eq!((st, b["user"]["activated"].clone()), (StatusCode::OK, json!(true)), "{b}");
}

#[tokio::test]
async fn presence_and_offline_messages() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let base = format!("http://{}/testorg/testapp/users", s.addr);

    let before = now_ms();
    let (st, b) = s.get("/users/user1/status", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "get", "/users", &format!("{base}/user1/status"), before);
    assert_eq!(
        (b["entities"].clone(), b["data"].clone(), b["count"].clone()),
        (json!([]), json!({"user1": "offline"}), json!(0))
    );

    let (st, b) = s.post("/users/batch/status", Some(&admin), json!({"usernames": ["user1", "nobody", "user2"]})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["action"], "get batch user status");
    assert_eq!(b["data"], json!([{"user1": "offline"}, {"nobody": "offline"}, {"user2": "offline"}]));
    assert!(b["timestamp"].is_u64() && b["duration"].is_u64(), "{b}");
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let (st, b) = s.post("/users/batch/status", Some(&admin), json!({"usernames": many})).await;
    assert_error(st, &b, 400, "illegal_argument", "request body exceeds maximum limit, maximum limit is 100");
    let (st, b) = s.post("/users/batch/status", Some(&admin), json!({"usernames": &many[..100]})).await;
    assert_eq!((st, b["data"].as_array().map(Vec::len)), (StatusCode::OK, Some(100)), "{b}");

    let before = now_ms();
    let (st, b) = s.get("/users/user2/offline_msg_count", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "get", "/users", &format!("{base}/user2/offline_msg_count"), before);
    assert_eq!(
        (b["entities"].clone(), b["data"].clone(), b["count"].clone()),
        (json!([]), json!({"user2": 0}), json!(0))
    );

    let data = s.send_text(&admin, "user1", &["user2"], "one").await;
    let id = data["user2"].as_str().expect("id").to_owned();
    s.send_text(&admin, "user1", &["user2"], "two").await;
    let (_, b) = s.get("/users/user2/offline_msg_count", Some(&admin)).await;
    assert_eq!(b["data"], json!({"user2": 2}), "a number, not a string");
    assert_eq!(s.offline_count(&admin, "user1").await, 0);

    let before = now_ms();
    let (st, b) = s.get(&format!("/users/user2/offline_msg_status/{id}"), Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "get", "/users", &format!("{base}/user2/offline_msg_status/{id}"), before);
    assert_eq!(b["data"], json!({id.clone(): "undelivered"}));
    // Not user1's message to receive.
    assert_eq!(s.offline_status(&admin, "user1", &id).await, "delivered");
    let (st, b) = s.get("/users/user2/offline_msg_status/not-a-number", Some(&admin)).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::BAD_REQUEST, json!("illegal_argument")), "{b}");

    // Devices: none online, so no resources, and disconnecting is a no-op that succeeds.
    let before = now_ms();
    let (st, b) = s.get("/users/user1/resources", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "get", "/users", &format!("{base}/user1/resources"), before);
    assert_eq!(b["data"], json!([]));
    let (st, b) = s.get("/users/user1/disconnect", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "get", "/users", &format!("{base}/user1/disconnect"), before);
    assert_eq!(
        (b["entities"].clone(), b["data"].clone(), b["count"].clone()),
        (json!([]), json!({"result": true}), json!(0))
    );
    let (st, b) = s.delete("/users/user1/disconnect/android_123423453246", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_envelope(&s, &b, "delete", "/users", &format!("{base}/user1/disconnect/android_123423453246"), before);
    assert_eq!((b["entities"].clone(), b["data"].clone()), (json!([]), json!({"result": true})));
    let (st, b) = s.delete("/users/nobody/disconnect/android_1", Some(&admin)).await;
    assert_error(st, &b, 404, "service_resource_not_found", "Service resource not found");
    assert_eq!(b["exception"], "UserNotFoundException");
}

/// What the UIKit asks for each conversation it shows: the peer's presence (from who is
/// online now, per device) and the conversation's push settings (all default).
#[tokio::test]
async fn presence_and_conversation_settings_for_the_uikit() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["pia", "quin"]).await;
    let pia = s.user_token("pia").await;
    let _quin = s.msync("quin", "quin-web").await;

    let body = json!({"usernames": ["quin", "pia", "nobody"]});
    let (st, b) = s.post("/users/pia/presence/2592000", Some(&pia), body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let result = b["result"].as_array().expect("result");
    let quin = result.iter().find(|r| r["uid"] == "quin").expect("quin");
    assert_eq!((quin["status"].clone(), quin["ext"].clone()), (json!({"quin-web": 1}), json!("")), "{b}");
    assert_eq!(quin["expiry"].as_u64().unwrap() - quin["last_time"].as_u64().unwrap(), 2_592_000, "{b}");
    let pia_entry = result.iter().find(|r| r["uid"] == "pia").expect("pia");
    assert_eq!(pia_entry["status"], json!({}), "offline: {b}");
    assert_eq!(result.len(), 2, "unknown users are left out: {b}");
    let (st, _) = s.post("/users/quin/presence/60", Some(&pia), body.clone()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "another user's subscription");
    let (st, _) = s.post("/users/pia/presence/soon", Some(&pia), body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // getPresenceStatus: the same answer without a subscription.
    let (st, b) = s.post("/users/pia/presence", Some(&pia), json!({"usernames": ["quin"]})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        (b["result"][0]["uid"].clone(), b["result"][0]["status"].clone()),
        (json!("quin"), json!({"quin-web": 1}))
    );

    let (st, b) = s.get("/users/pia/notification?user=quin,nobody&group=", Some(&pia)).await;
    assert_eq!((st, b["data"].clone()), (StatusCode::OK, json!({"user": {}, "group": {}})), "{b}");
    let (st, _) = s.get("/users/quin/notification?user=pia", Some(&pia)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
