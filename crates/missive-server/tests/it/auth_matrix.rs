//! The authorization matrix: every endpoint × {no token, corrupt token, expired token,
//! another app's token, a user token, another user's token, the app token}.
//!
//! Invalid credentials (corrupt, expired, another app's) are refused with 401 on every
//! endpoint, also where no token is needed: a bad token is never read as "no token". What
//! the valid ones and the absent one get depends on the endpoint's [`Access`] — including
//! the chat file downloads, which need no token but a restricted file's share-secret.

use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

/// What a request carries besides its token.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    /// A multipart upload with one `file` part; `restricted` sends `restrict-access`.
    Upload {
        restricted: bool,
    },
    /// No body, these headers (a download's `share-secret`).
    Headers(Vec<(&'static str, String)>),
}

/// Who an endpoint lets through, beyond the invalid credentials every endpoint refuses.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// The app token only: user tokens get Shiro's "Subject does not have permission" 401.
    Admin,
    /// The app token or the path user's own token (alice's, on an alice path).
    AdminOrSelf,
    /// Any valid token of the app (uploads); none is 401.
    AnyToken,
    /// No token needed, and every valid token gets the same answer as none: 200, or 403
    /// `chatfile no permission` when `secret_ok` is false (a restricted file's download
    /// without its share-secret or with a wrong one).
    Open { secret_ok: bool },
}

struct Endpoint {
    method: Method,
    path: String,
    body: Body,
    access: Access,
    /// The bytes a successful download returns.
    download: Option<&'static str>,
}

fn ep(method: Method, path: &str, body: Option<Value>) -> Endpoint {
    let body = body.map_or(Body::None, Body::Json);
    Endpoint { method, path: path.to_owned(), body, access: Access::Admin, download: None }
}

const RESTRICTED: &str = "restricted file bytes";
const OPEN: &str = "unrestricted file bytes";

/// The chat files in the matrix, uploaded before it runs.
struct Files {
    restricted: String,
    secret: String,
    open: String,
}

fn endpoints(files: &Files) -> Vec<Endpoint> {
    let send = json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "x"}});
    let upload = |restricted| Endpoint {
        method: Method::POST,
        path: "/chatfiles".into(),
        body: Body::Upload { restricted },
        access: Access::AnyToken,
        download: None,
    };
    let download = |id: &str, query: String, headers: Vec<(&'static str, String)>, secret_ok, bytes| Endpoint {
        method: Method::GET,
        path: format!("/chatfiles/{id}{query}"),
        body: Body::Headers(headers),
        access: Access::Open { secret_ok },
        download: Some(bytes),
    };
    let (restricted, secret) = (files.restricted.as_str(), files.secret.clone());
    vec![
        ep(Method::GET, "/users", None),
        ep(Method::POST, "/users", Some(json!([{"username": "newbie", "password": "p"}]))),
        ep(Method::DELETE, "/users?limit=1", None),
        Endpoint { access: Access::AdminOrSelf, ..ep(Method::GET, "/users/alice", None) },
        Endpoint { access: Access::AdminOrSelf, ..ep(Method::PUT, "/users/alice", Some(json!({"nickname": "A"}))) },
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
        upload(false),
        upload(true),
        download(restricted, String::new(), vec![], false, RESTRICTED),
        download(restricted, String::new(), vec![("share-secret", "wrong".into())], false, RESTRICTED),
        download(restricted, "?share-secret=wrong".into(), vec![], false, RESTRICTED),
        download(restricted, String::new(), vec![("share-secret", secret.clone())], true, RESTRICTED),
        download(restricted, format!("?em-redirect=true&share-secret={secret}"), vec![], true, RESTRICTED),
        download(&files.open, String::new(), vec![], true, OPEN),
    ]
}

/// One cell: the request with `token`; status and body (JSON, or the raw text).
async fn call(s: &TestServer, e: &Endpoint, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = s.http.request(e.method.clone(), s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match &e.body {
        Body::None => {}
        Body::Json(b) => req = req.json(b),
        Body::Upload { restricted } => {
            let part = Part::bytes(b"matrix upload".to_vec()).file_name("m.bin");
            req = req.multipart(Form::new().part("file", part));
            if *restricted {
                req = req.header("restrict-access", "true");
            }
        }
        Body::Headers(headers) => {
            for (k, v) in headers {
                req = req.header(*k, v);
            }
        }
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Asserts the answer of a token that passes (or of none, where none is needed).
fn assert_passed(e: &Endpoint, what: &str, st: StatusCode, b: &Value) {
    if e.access == (Access::Open { secret_ok: false }) {
        assert_error(st, b, 403, "forbidden", "chatfile no permission");
        assert_eq!(b["exception"], "EasemobForbiddenOpException", "{what}: {b}");
        return;
    }
    match (&e.body, e.download) {
        (_, Some(bytes)) => {
            assert_eq!(st, 200, "{what}: {b}");
            assert_eq!(b, &Value::String(bytes.to_owned()), "{what}");
        }
        (Body::Upload { .. }, _) => {
            assert_eq!(st, 200, "{what}: {b}");
            assert_eq!(b["entities"][0]["type"], "chatfile", "{what}: {b}");
        }
        _ => assert!(st.is_success(), "{what}: {st} {b}"),
    }
}

/// Uploads `bytes` with the app token; (uuid, share-secret).
async fn upload(s: &TestServer, admin: &str, bytes: &str, restricted: bool) -> (String, String) {
    let mut req = s.http.post(s.url("/chatfiles")).bearer_auth(admin);
    req = req.multipart(Form::new().part("file", Part::bytes(bytes.as_bytes().to_vec()).file_name("f.bin")));
    if restricted {
        req = req.header("restrict-access", "true");
    }
    let b: Value = req.send().await.expect("upload").json().await.expect("json");
    let entity = &b["entities"][0];
    (entity["uuid"].as_str().expect("uuid").to_owned(), entity["share-secret"].as_str().expect("secret").to_owned())
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
    let (restricted, secret) = upload(&s, &admin, RESTRICTED, true).await;
    let (open, _) = upload(&s, &admin, OPEN, false).await;
    let files = Files { restricted, secret, open };

    // A second app in the same server: its app token must never work here.
    let store = missive_server::open_store(&s.config).await.unwrap();
    let other = missive_server::create_app(&*store, "otherorg", "otherapp", false).await.unwrap();
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

    for e in endpoints(&files) {
        let cell = |token: Option<String>| {
            let (s, e) = (&s, &e);
            async move { call(s, e, &e.path, token.as_deref()).await }
        };
        let what = format!("{} {}", e.method, e.path);
        let (st, b) = cell(None).await;
        match e.access {
            Access::Open { .. } => assert_passed(&e, &format!("{what} without a token"), st, &b),
            _ => {
                let no_token = if e.method == Method::POST && e.path == "/users" {
                    "Open registration doesn't allow, so register user need token,"
                } else {
                    "Unable to authenticate (OAuth)"
                };
                assert_error(st, &b, 401, "unauthorized", no_token);
            }
        }
        let (st, b) = cell(Some("not-a-token".into())).await;
        assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate due to corrupt access token");
        let (st, b) = cell(Some(expired.clone())).await;
        assert_error(st, &b, 401, "unauthorized", "Unable to authenticate due to expired access token");
        let (st, b) = cell(Some(foreign.clone())).await;
        assert_error(st, &b, 401, "auth_bad_access_token", "Unable to authenticate");
        // Bob's user token never acts on admin APIs or on alice.
        let (st, b) = cell(Some(bob.clone())).await;
        match e.access {
            Access::AnyToken | Access::Open { .. } => {
                assert_passed(&e, &format!("{what} with a user token"), st, &b);
            }
            Access::Admin | Access::AdminOrSelf => {
                assert_eq!(st, 401, "{what} with another user's token: {b}");
                assert!(
                    b["error_description"].as_str().unwrap().starts_with("Subject does not have permission"),
                    "{what}: {b}"
                );
            }
        }
        let (st, b) = cell(Some(alice.clone())).await;
        match e.access {
            Access::AdminOrSelf => assert_eq!(st, 200, "{what} with the user's own token: {b}"),
            Access::AnyToken | Access::Open { .. } => {
                assert_passed(&e, &format!("{what} with a user token"), st, &b);
            }
            Access::Admin => {
                assert_eq!(st, 401, "{what} with a user token: {b}");
                assert_eq!(b["exception"], "org.apache.shiro.authz.UnauthorizedException", "{what}: {b}");
            }
        }
    }

    // The app token passes every endpoint (order matters for the destructive ones: run
    // against a throwaway user where a call would delete or ban alice). A token never
    // stands in for a share-secret.
    for e in endpoints(&files) {
        let path = e.path.replace("/users/alice", "/users/bob");
        // Destructive calls before this one may have removed bob: make sure he exists.
        s.post("/users", Some(&admin), json!([{"username": "bob", "password": "bob-pw"}])).await;
        let (st, b) = call(&s, &e, &path, Some(&admin)).await;
        let expected_not_found = path.contains("msg_recall");
        if expected_not_found {
            assert_eq!(st, 403, "{} {path}: {b}", e.method);
            assert_eq!(b["error"], "message_recall_error", "{b}");
        } else {
            assert_passed(&e, &format!("{} {path} with the app token", e.method), st, &b);
        }
    }
}
