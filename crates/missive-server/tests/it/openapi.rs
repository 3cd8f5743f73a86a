//! `GET /openapi.json`: served without a token, valid JSON, OpenAPI 3.x, and in step with the
//! router: every route below is documented with its error statuses, nothing undocumented is
//! served on a documented path, and every route below is really served. `ROUTES` mirrors
//! `http::router()`; a new route has to be added to both, and to the document.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestServer;

/// Every REST route of `http::router()` (`/websocket` is the MSYNC upgrade, not REST).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/openapi.json"),
    ("POST", "/{org}/{app}/token"),
    ("POST", "/{org}/{app}/users"),
    ("GET", "/{org}/{app}/users"),
    ("DELETE", "/{org}/{app}/users"),
    ("POST", "/{org}/{app}/users/batch/status"),
    ("GET", "/{org}/{app}/users/{username}"),
    ("PUT", "/{org}/{app}/users/{username}"),
    ("DELETE", "/{org}/{app}/users/{username}"),
    ("PUT", "/{org}/{app}/users/{username}/password"),
    ("POST", "/{org}/{app}/users/{username}/password"),
    ("POST", "/{org}/{app}/users/{username}/deactivate"),
    ("POST", "/{org}/{app}/users/{username}/activate"),
    ("GET", "/{org}/{app}/users/{username}/status"),
    ("GET", "/{org}/{app}/users/{username}/offline_msg_count"),
    ("GET", "/{org}/{app}/users/{username}/offline_msg_status/{msg_id}"),
    ("GET", "/{org}/{app}/users/{username}/resources"),
    ("GET", "/{org}/{app}/users/{username}/disconnect"),
    ("DELETE", "/{org}/{app}/users/{username}/disconnect/{resource}"),
    ("GET", "/{org}/{app}/user/{username}/roster/metadata/version"),
    ("GET", "/{org}/{app}/users/{username}/joined_chatgroups"),
    ("GET", "/{org}/{app}/users/{username}/joined_chatrooms"),
    ("GET", "/{org}/{app}/publicchatgroups"),
    ("GET", "/{org}/{app}/chatgroups"),
    ("POST", "/{org}/{app}/chatgroups"),
    ("GET", "/{org}/{app}/chatgroups/user/{username}"),
    ("GET", "/{org}/{app}/chatrooms"),
    ("POST", "/{org}/{app}/chatrooms"),
    ("POST", "/{org}/{app}/messages"),
    ("POST", "/{org}/{app}/messages/users"),
    ("POST", "/{org}/{app}/messages/msg_recall"),
    ("POST", "/{org}/{app}/messages/recall"),
    ("POST", "/{org}/{app}/users/{username}/messageroaming"),
    ("GET", "/{org}/{app}/users/{username}/user_channels"),
    ("GET", "/{org}/{app}/users/{username}/user_channels/page"),
    ("DELETE", "/{org}/{app}/users/{username}/user_channel"),
    ("DELETE", "/{org}/{app}/user/{username}/user_channel"),
    ("GET", "/{org}/{app}/sdk/user/{username}/user_channels/list"),
    ("POST", "/{org}/{app}/sdk/user/{username}/user_channel/top"),
    ("DELETE", "/{org}/{app}/sdk/user/{username}/user_channel/top"),
    ("GET", "/{org}/{app}/chatmessages"),
    ("GET", "/{org}/{app}/chatmessages/{time}"),
    ("GET", "/{org}/{app}/chatmessages/{time}/file"),
    ("DELETE", "/{org}/{app}/rest/message/roaming/chat/user/{username}"),
    ("DELETE", "/{org}/{app}/rest/message/roaming/chat/user/{username}/time"),
    ("DELETE", "/{org}/{app}/rest/message/roaming/group/user/{username}"),
    ("DELETE", "/{org}/{app}/rest/message/roaming/group/user/{username}/time"),
    ("DELETE", "/{org}/{app}/sdk/message/roaming/chat/user/{username}"),
    ("DELETE", "/{org}/{app}/sdk/message/roaming/chat/user/{username}/time"),
    ("POST", "/{org}/{app}/chatfiles"),
    ("GET", "/{org}/{app}/chatfiles/{file}"),
    ("GET", "/{org}/{app}/callbacks"),
    ("POST", "/{org}/{app}/callbacks"),
    ("PUT", "/{org}/{app}/callbacks/{rule}"),
    ("DELETE", "/{org}/{app}/callbacks/{rule}"),
    ("GET", "/{org}/{app}/callbacks/storage/info"),
    ("POST", "/{org}/{app}/callbacks/storage/retry"),
    ("GET", "/{org}/{app}/msghooks"),
    ("POST", "/{org}/{app}/msghooks"),
    ("DELETE", "/{org}/{app}/msghooks/{rule}"),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];

async fn document(server: &TestServer) -> Value {
    let res = server.http.get(format!("http://{}/openapi.json", server.addr)).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content-type {content_type}");
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).expect("/openapi.json is JSON")
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let target = doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "OpenAPI 3.x, got {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(m.to_ascii_lowercase()).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected, "documented operations vs the router's routes");

    let mut ids = BTreeSet::new();
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        assert!(ids.insert(op["operationId"].as_str().expect("operationId")), "duplicate operationId at {path}");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: responses"));
        assert!(responses.contains_key("200"), "{method} {path}: 200");
        if path.starts_with("/{org}/{app}") {
            // An unknown app is 404 everywhere; every failure is the Easemob error body.
            for status in ["404", "503"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
            for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
                let schema = &resolve(&doc, response)["content"]["application/json"]["schema"];
                assert_eq!(schema["$ref"], "#/components/schemas/ErrorBody", "{method} {path} {status}");
            }
            let params: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            assert_eq!(params, in_path, "{method} {path}: path parameters");
        }
        let security = op["security"].as_array().unwrap_or_else(|| panic!("{method} {path}: security"));
        let needs_token = !security.iter().any(|s| s.as_object().is_some_and(|o| o.is_empty()));
        if needs_token {
            assert!(responses.contains_key("401"), "{method} {path}: 401 with a required token");
        }
    }
    // The sends document their quotas and load shedding.
    for path in ["/{org}/{app}/messages/users", "/{org}/{app}/messages"] {
        let responses = &doc["paths"][path]["post"]["responses"];
        for status in ["400", "401", "403", "404", "413", "429", "503", "507"] {
            assert!(responses.get(status).is_some(), "POST {path}: {status}");
        }
    }

    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!((&bearer["type"], &bearer["scheme"]), (&json!("http"), &json!("bearer")));
    let error = &doc["components"]["schemas"]["ErrorBody"];
    let required: BTreeSet<&str> =
        error["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(required, BTreeSet::from(["error", "exception", "timestamp", "duration", "error_description"]));
    assert!(error["properties"]["error_code"].is_object());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        assert!(doc.pointer(r.trim_start_matches('#')).is_some(), "dangling $ref {r}");
    }
}

/// The list above is what the router serves: each route is routed (an unknown app reaches
/// the handler's app lookup, not the router's 404 fallback), and on documented paths every
/// method the router accepts is documented.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_routes() {
    let server = TestServer::start().await;
    let concrete = |path: &str| {
        path.replace("{org}", "no-such-org")
            .replace("{app}", "no-such-app")
            .replace("{username}", "user1")
            .replace("{msg_id}", "1")
            .replace("{resource}", "res")
            .replace("{file}", "00000000-0000-0000-0000-000000000000")
            .replace("{rule}", "r1")
    };
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    for path in paths {
        for method in METHODS {
            let url = format!("http://{}{}", server.addr, concrete(path));
            let (status, body) = server.call(Method::from_bytes(method.as_bytes()).unwrap(), &url, None, None).await;
            let listed = ROUTES.contains(&(*method, path));
            // `GET /users/batch/status` is `GET /users/{username}/status` for user `batch`.
            let shadowed = ROUTES.iter().any(|(m, p)| m == method && *p != path && matches(p, &concrete(path)));
            if !listed && shadowed {
                continue;
            }
            if !listed {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is served but not documented");
            } else if path.starts_with("/{org}/{app}") {
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
                assert_eq!(body["error"], "organization_application_not_found", "{method} {path}: {body}");
            } else {
                assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
            }
        }
    }
}

/// Whether `concrete` is an instance of the route template `template`.
fn matches(template: &str, concrete: &str) -> bool {
    let (t, c): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), concrete.split('/').collect());
    t.len() == c.len() && t.iter().zip(&c).all(|(t, c)| t.starts_with('{') || t == c)
}

/// Found while describing `ttl` for the document: a `ttl` beyond `i64` seconds wrapped
/// negative, so the token was issued already expired. It now saturates (never expires in
/// practice).
#[tokio::test]
async fn a_huge_ttl_is_not_an_expired_token() {
    let server = TestServer::start().await;
    let (s, b) = server
        .post(
            "/token",
            None,
            json!({"grant_type": "client_credentials", "client_id": server.app.client_id,
                   "client_secret": server.app.client_secret, "ttl": u64::MAX}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let token = b["access_token"].as_str().expect("token");
    let (s, b) = server.get("/users", Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
