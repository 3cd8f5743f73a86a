//! Operational safety: one server per data directory, `app create` beside a running server,
//! online backup and restore.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{ProcessServer, TestData, on_postgres, sqlite_only};

async fn post(url: String, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = crate::common::http().post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let res = r.send().await.expect("request");
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn app_token(server: &ProcessServer, app: &Value) -> String {
    let url = format!("http://{}/{}/{}/token", server.addr, app["org"].as_str().unwrap(), app["app"].as_str().unwrap());
    let (st, b) = post(url, None, json!({"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]})).await;
    assert_eq!(st, 200, "{b}");
    b["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn one_server_per_data_dir_and_app_create_beside_it() {
    let dir = TestData::new().await;
    let first = dir.create_app("ops", "one");
    let server = ProcessServer::start(&dir).await;

    // A second server on the same directory refuses to start.
    let mut second = dir
        .missive(&["serve", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "second server kept running on a locked data dir");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("in use by another"), "{err}");

    // `app create` works beside the running server, which accepts the new app at once.
    let second_app = dir.create_app("ops", "two");
    app_token(&server, &second_app).await;
    app_token(&server, &first).await;
}

#[tokio::test]
async fn online_backup_restores_into_a_new_data_dir() {
    if sqlite_only("online_backup_restores_into_a_new_data_dir") {
        return;
    }
    let dir = TestData::new().await;
    let app = dir.create_app("ops", "bk");
    let mut server = ProcessServer::start(&dir).await;
    let token = app_token(&server, &app).await;
    let base = format!("http://{}/ops/bk", server.addr);
    let (st, b) = post(
        format!("{base}/users"),
        Some(&token),
        json!([{"username": "u1", "password": "p"}, {"username": "u2", "password": "p"}]),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    for i in 0..3 {
        let (st, b) = post(
            format!("{base}/messages/users"),
            Some(&token),
            json!({"from": "u1", "to": ["u2"], "type": "txt", "body": {"msg": format!("m{i}")}}),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    }

    // Backup while serving.
    let backup = dir.path().join("backup.db");
    let out = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["backup"])
        .arg(&backup)
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server.kill9();

    // Restore into an empty directory and serve from it.
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = TestData::sqlite_at(restored_dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["restore"])
        .arg(&backup)
        .arg("--data")
        .arg(restored.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = ProcessServer::start(&restored).await;
    let token = app_token(&server, &app).await;
    let res = crate::common::http()
        .get(format!("http://{}/ops/bk/users/u2/offline_msg_count", server.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["data"]["u2"], 3, "{v}");

    // A file that is not a backup is refused and changes nothing.
    let junk = restored.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    drop(server);
    let out = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["restore"])
        .arg(&junk)
        .arg("--data")
        .arg(restored.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let dir = TestData::new().await;
    let app = dir.create_app("ops", "term");
    let mut server = ProcessServer::start(&dir).await;
    let token = app_token(&server, &app).await;
    let base = format!("http://{}/ops/term", server.addr);
    let (st, _) = post(
        format!("{base}/users"),
        Some(&token),
        json!([{"username": "u1", "password": "p"}, {"username": "u2", "password": "p"}]),
    )
    .await;
    assert_eq!(st, 200);
    // Requests in flight while the signal arrives are answered, not cut.
    let mut inflight = Vec::new();
    for i in 0..20 {
        let (base, token) = (base.clone(), token.clone());
        inflight.push(tokio::spawn(async move {
            let r = crate::common::http()
                .post(format!("{base}/messages/users"))
                .bearer_auth(token)
                .json(&json!({"from": "u1", "to": ["u2"], "type": "txt", "body": {"msg": format!("{i}")}}))
                .send()
                .await;
            r.map(|r| r.status().as_u16()).unwrap_or(0)
        }));
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut accepted = 0;
    for t in inflight {
        match t.await.unwrap() {
            200 => accepted += 1,
            0 => {} // connection refused: it arrived after the listener closed
            other => panic!("in-flight request answered {other}"),
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    // Everything acknowledged is there after a restart.
    let server = ProcessServer::start(&dir).await;
    let token = app_token(&server, &app).await;
    let v: Value = crate::common::http()
        .get(format!("http://{}/ops/term/users/u2/offline_msg_count", server.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["u2"], accepted, "{v}");
}

/// On PostgreSQL, `backup` and `restore` say to use PostgreSQL's own tools instead of failing
/// obscurely, and change nothing.
#[tokio::test]
async fn backup_and_restore_point_postgres_users_to_pg_dump() {
    if !on_postgres() {
        println!("backup_and_restore_point_postgres_users_to_pg_dump: runs in the PostgreSQL pass");
        return;
    }
    let dir = TestData::new().await;
    dir.create_app("ops", "pg");
    let file = dir.path().join("backup.db");
    for cmd in ["backup", "restore"] {
        let out = dir.missive(&[cmd, file.to_str().unwrap()]).output().unwrap();
        assert!(!out.status.success(), "{cmd} on PostgreSQL must refuse");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("pg_dump") && err.contains("pg_restore"), "{cmd}: {err}");
    }
    assert!(!file.exists());
}

/// `missive listen` as the README shows it, given the server's HTTP base URL (what the
/// REST calls use) rather than the WebSocket URL: it logs in and prints a message sent to
/// the user as one JSON line.
#[tokio::test]
async fn listen_takes_the_http_base_url() {
    let dir = TestData::new().await;
    let app = dir.create_app("ops", "cli");
    let server = ProcessServer::start(&dir).await;
    let base = format!("http://{}/ops/cli", server.addr);
    let admin = app_token(&server, &app).await;
    let (st, b) = post(format!("{base}/users"), Some(&admin), json!({"username": "lena", "password": "lena-pw"})).await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = post(
        format!("{base}/token"),
        None,
        json!({"grant_type": "password", "username": "lena", "password": "lena-pw"}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let token = b["access_token"].as_str().unwrap().to_owned();

    let mut listen = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["listen", "lena", "--app-key", "ops#cli", "--url", &format!("http://{}", server.addr)])
        .env("MISSIVE_USER_TOKEN", &token)
        .env("MISSIVE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines_of = |pipe: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    };
    let stderr = lines_of(Box::new(listen.stderr.take().unwrap()));
    let stdout = lines_of(Box::new(listen.stdout.take().unwrap()));
    // "logged in as …" on stderr: the session is up before the message is sent.
    loop {
        let line = stderr.recv_timeout(Duration::from_secs(15)).expect("listen to log in");
        if line.contains("logged in as lena") {
            break;
        }
    }
    let send = json!({"from": "admin", "to": ["lena"], "type": "txt", "body": {"msg": "over http"}});
    let (st, b) = post(format!("{base}/messages/users"), Some(&admin), send).await;
    assert_eq!(st, 200, "{b}");
    let line = stdout.recv_timeout(Duration::from_secs(15)).expect("the message as a JSON line");
    let _ = listen.kill();
    let _ = listen.wait();
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["to"], "lena", "{got}");
    assert_eq!(got["content"]["text"], "over http", "{got}");
}
