//! What an operator relies on: `GET /metrics` (access rules, names and types, counters that
//! move with the traffic that should move them), request ids, and the password pool's
//! refusals as seen over HTTP.

use std::collections::HashMap;

use missive_msync::{ClientOptions, Login, MsyncClient};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, eventually};

const METRICS_TOKEN: &str = "scrape-me-7c1d";

/// A server whose `/metrics` answers to `METRICS_TOKEN`.
async fn with_metrics() -> TestServer {
    TestServer::start_with(|c| c.metrics.token = METRICS_TOKEN.into()).await
}

/// `GET /metrics` on the main listener with the token: the text and its content type.
async fn scrape(s: &TestServer) -> String {
    let res = s.http.get(format!("http://{}/metrics", s.addr)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    res.text().await.unwrap()
}

/// The samples of a scrape: series (name and labels, as written) → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Each `# TYPE name kind` line.
fn types(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' ').map(|(n, k)| (n.to_owned(), k.to_owned())))
        .collect()
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series).unwrap_or_else(|| panic!("{series} missing; have {:?}", m.keys().collect::<Vec<_>>()))
}

#[tokio::test]
async fn metrics_are_off_unless_configured_and_need_the_token() {
    let plain = TestServer::start().await;
    let (st, body) = plain.get(&format!("http://{}/metrics", plain.addr), None).await;
    assert_error(st, &body, 404, "service_resource_not_found", "Service resource not found");

    let s = with_metrics().await;
    let url = format!("http://{}/metrics", s.addr);
    let (st, body) = s.get(&url, None).await;
    assert_error(st, &body, 401, "unauthorized", "Unable to authenticate (OAuth)");
    let (st, body) = s.get(&url, Some("wrong")).await;
    assert_error(st, &body, 401, "auth_bad_access_token", "Unable to authenticate");
    assert!(scrape(&s).await.contains("# TYPE missive_sessions_online gauge"));
}

#[tokio::test]
async fn a_separate_metrics_listener_needs_no_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = TestServer::start_with(|c| c.metrics.listen = Some(([127, 0, 0, 1], port).into())).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    // `run` binds the metrics listener after the test's main listener is already serving.
    eventually("the metrics listener to answer", || async { s.http.get(&url).send().await.is_ok() }).await;
    let res = s.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("process_resident_memory_bytes"));
    // No token configured: the main listener does not serve it.
    let (st, _) = s.get(&format!("http://{}/metrics", s.addr), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn names_types_and_counters_that_move() {
    let s = with_metrics().await;
    let before = scrape(&s).await;
    let kinds = types(&before);
    // Every unlabelled metric is there with its type before anything happens (labelled
    // ones appear with their first series, checked below).
    for (name, kind) in [
        ("missive_file_uploads_total", "counter"),
        ("missive_file_upload_bytes_total", "counter"),
        ("missive_password_queue_depth", "gauge"),
        ("missive_password_requests_admitted", "gauge"),
        ("missive_thumbnail_queue_depth", "gauge"),
        ("missive_sessions_online", "gauge"),
        ("missive_build_info", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_threads", "gauge"),
        // The delivery path's, registered at start so they render before they move.
        ("missive_messages_committed_total", "counter"),
        ("missive_commit_batch_size", "histogram"),
        ("missive_commit_fsync_seconds", "histogram"),
        ("missive_send_recipients", "histogram"),
        ("missive_deliveries_total", "counter"),
        ("missive_pulls_total", "counter"),
        ("missive_acks_total", "counter"),
        ("missive_online_only_dropped_total", "counter"),
        ("missive_offline_queue_depth", "gauge"),
        // Callbacks and push, copied from the notifier at each scrape.
        ("missive_callbacks_total", "counter"),
        ("missive_pushes_total", "counter"),
        ("missive_presend_checks_total", "counter"),
        ("missive_outbox_entries", "gauge"),
        ("missive_outbox_oldest_due_seconds", "gauge"),
    ] {
        assert_eq!(kinds.get(name).map(String::as_str), Some(kind), "# TYPE of {name}");
    }
    let m0 = samples(&before);
    assert!(value(&m0, "process_resident_memory_bytes") > 1e6);
    assert!(value(&m0, "process_open_fds") >= 3.0);
    assert_eq!(value(&m0, "missive_sessions_online"), 0.0);
    assert_eq!(value(&m0, "missive_file_uploads_total"), 0.0);

    // Traffic: the app token, two users, password logins (one right, one wrong, one unknown
    // user), a send, an upload, an MSYNC session.
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let alice = s.user_token("alice").await;
    let (st, _) =
        s.post("/token", None, json!({"grant_type": "password", "username": "bob", "password": "nope"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.post("/token", None, json!({"grant_type": "password", "username": "carol", "password": "x"})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.send_text(&admin, "bob", &["alice"], "hello").await;
    let (st, _) = s.post("/messages/users", Some(&admin), json!({"to": ["alice"], "type": "txt"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // The delivery path before anyone is online: one send accepted, one refused, one message
    // committed and waiting.
    let m = samples(&scrape(&s).await);
    assert_eq!(value(&m, r#"missive_sends_total{via="rest",status="200"}"#), 1.0);
    assert_eq!(value(&m, r#"missive_sends_total{via="rest",status="400"}"#), 1.0);
    assert_eq!(value(&m, "missive_send_recipients_count"), 1.0);
    assert_eq!(value(&m, "missive_messages_committed_total"), 1.0);
    assert!(value(&m, "missive_commit_batch_size_count") >= 1.0);
    assert!(value(&m, "missive_commit_fsync_seconds_count") >= 1.0);
    assert_eq!(value(&m, "missive_offline_queue_depth"), 1.0);
    assert_eq!(value(&m, "missive_deliveries_total"), 0.0);
    // A small image: its thumbnail is the original (10 KB or less).
    let mut file = Vec::new();
    image::DynamicImage::new_rgb8(8, 8).write_to(std::io::Cursor::new(&mut file), image::ImageFormat::Png).unwrap();
    let res = s
        .http
        .post(s.url("/chatfiles"))
        .bearer_auth(&admin)
        .multipart(Form::new().part("file", Part::bytes(file.clone()).file_name("a.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let login = Login {
        url: s.ws_url(),
        app_key: s.app_key(),
        user: "alice".into(),
        token: alice,
        resource: Some("web".into()),
    };
    let client = MsyncClient::connect(login, ClientOptions::default()).await.expect("msync login");

    let after = scrape(&s).await;
    let kinds = types(&after);
    for (name, kind) in [
        ("missive_logins_total", "counter"),
        ("missive_login_failures_total", "counter"),
        ("missive_thumbnails_total", "counter"),
        ("missive_http_request_duration_seconds", "histogram"),
    ] {
        assert_eq!(kinds.get(name).map(String::as_str), Some(kind), "# TYPE of {name}");
    }
    let m1 = samples(&after);
    assert_eq!(value(&m1, "missive_sessions_online"), 1.0);
    assert_eq!(value(&m1, r#"missive_logins_total{grant="msync"}"#), 1.0);
    assert_eq!(value(&m1, r#"missive_logins_total{grant="password"}"#), 1.0);
    assert_eq!(value(&m1, r#"missive_logins_total{grant="client_credentials"}"#), 1.0);
    assert_eq!(value(&m1, r#"missive_login_failures_total{grant="password",reason="bad_credentials"}"#), 1.0);
    assert_eq!(value(&m1, r#"missive_login_failures_total{grant="password",reason="unknown_user"}"#), 1.0);
    assert_eq!(value(&m1, "missive_file_uploads_total"), 1.0);
    assert_eq!(value(&m1, "missive_file_upload_bytes_total"), file.len() as f64);
    assert_eq!(value(&m1, r#"missive_thumbnails_total{outcome="original"}"#), 1.0);
    assert_eq!(value(&m1, "missive_password_queue_depth"), 0.0);
    // Latency by matched route, not by URL: the send, the registration, the upgrade.
    let route = |r: &str, method: &str, status: u16| {
        format!(r#"missive_http_request_duration_seconds_count{{route="{r}",method="{method}",status="{status}"}}"#)
    };
    assert_eq!(value(&m1, &route("/{org}/{app}/messages/users", "POST", 200)), 1.0);
    assert_eq!(value(&m1, &route("/{org}/{app}/users", "POST", 200)), 1.0);
    assert_eq!(value(&m1, &route("/{org}/{app}/token", "POST", 200)), 2.0);
    assert_eq!(value(&m1, &route("/websocket", "GET", 101)), 1.0);
    assert!(!m1.keys().any(|k| k.contains("alice") || k.contains("testorg")), "raw paths became labels");

    // The device pulls the waiting message and acks it: the depth falls to 0.
    eventually("the message to be delivered and acked", || async {
        let m = samples(&scrape(&s).await);
        value(&m, "missive_deliveries_total") == 1.0
            && value(&m, "missive_acks_total") >= 1.0
            && value(&m, "missive_offline_queue_depth") == 0.0
    })
    .await;
    assert!(value(&samples(&scrape(&s).await), "missive_pulls_total") >= 1.0);

    // Counters move by what happened, the session gauge follows the session.
    s.user_token("bob").await;
    client.close().await;
    eventually("the session to be gone from the gauge", || async {
        value(&samples(&scrape(&s).await), "missive_sessions_online") == 0.0
    })
    .await;
    let m2 = samples(&scrape(&s).await);
    assert_eq!(value(&m2, r#"missive_logins_total{grant="password"}"#), 2.0);
    assert_eq!(value(&m2, &route("/{org}/{app}/token", "POST", 200)), 3.0);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let s = TestServer::start().await;
    let health = format!("http://{}/health", s.addr);
    let res = s.http.get(&health).header("x-request-id", "trace-42.a").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-42.a");
    let made = |res: &reqwest::Response| res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (a, b) = (s.http.get(&health).send().await.unwrap(), s.http.get(&health).send().await.unwrap());
    let (a, b) = (made(&a), made(&b));
    assert_ne!(a, b);
    assert!(a.len() == 16 && a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    // Unsafe to log or echo as given: replaced.
    let res = s.http.get(&health).header("x-request-id", "a b\"c").send().await.unwrap();
    assert_ne!(res.headers()["x-request-id"], "a b\"c");
    // Error answers carry one too.
    let res = s.http.get(s.url("/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.headers().contains_key("x-request-id"));
}

/// With one password worker and no queue, a registration batch holds the only slot while it
/// hashes; a login meanwhile is refused at once with 503 and the Easemob body, and
/// succeeds once the batch is done.
#[tokio::test]
async fn a_full_password_queue_answers_503() {
    let s = TestServer::start_with(|c| {
        c.metrics.token = METRICS_TOKEN.into();
        c.security.password_workers = 1;
        c.security.password_queue = 0;
        // Costly enough that 60 hashes take about a second (one worker, ~16 MiB).
        c.security.argon2_memory_kib = 16384;
        c.security.argon2_iterations = 3;
    })
    .await;
    let admin = s.admin_token().await;
    s.register(&admin, &["dave"]).await;
    let batch: Vec<Value> = (0..60).map(|i| json!({"username": format!("u{i}"), "password": "pw"})).collect();
    let registering = {
        let (http, url, admin) = (s.http.clone(), s.url("/users"), admin.clone());
        tokio::spawn(async move { http.post(url).bearer_auth(admin).json(&batch).send().await.unwrap().status() })
    };
    eventually("the batch to hold the password slot", || async {
        value(&samples(&scrape(&s).await), "missive_password_requests_admitted") == 1.0
    })
    .await;
    let login = json!({"grant_type": "password", "username": "dave", "password": "dave-pw"});
    let (st, body) = s.post("/token", None, login.clone()).await;
    assert!(!registering.is_finished(), "the batch ended before the login was answered: make hashing costlier");
    assert_error(st, &body, 503, "service_unavailable", "server is busy, retry later");
    let m = samples(&scrape(&s).await);
    assert_eq!(value(&m, r#"missive_login_failures_total{grant="password",reason="busy"}"#), 1.0);
    assert_eq!(registering.await.unwrap(), StatusCode::OK);
    let (st, body) = s.post("/token", None, login).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}
