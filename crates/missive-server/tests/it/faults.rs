//! Resource faults: a full disk makes sends fail with 5xx Easemob bodies (never a panic or a
//! silent loss) and the server recovers without restart when space returns; file-descriptor
//! exhaustion refuses new connections while existing ones keep being served.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{ProcessServer, TestData, http, sqlite_only};

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).status();
        assert!(
            matches!(ok, Ok(s) if s.success()),
            "the disk-full test mounts a tmpfs and needs root (CI runs as root)"
        );
        SmallDisk { path: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Fills the filesystem at `dir` until writes fail; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // Smaller writes take the last bytes.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
    path
}

async fn post(url: String, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = http().post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let res = r.send().await.expect("server answers");
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_full_disk_fails_sends_cleanly_and_recovers_without_restart() {
    if sqlite_only("a_full_disk_fails_sends_cleanly_and_recovers_without_restart") {
        return;
    }
    let disk = SmallDisk::mount("8m");
    let data = TestData::sqlite_at(&disk.path);
    let app = data.create_app("f", "f");
    let server = ProcessServer::start(&data).await;
    let base = format!("http://{}/f/f", server.addr);
    let (_, b) = post(format!("{base}/token"), None, json!({"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]})).await;
    let admin = b["access_token"].as_str().unwrap().to_owned();
    let (st, _) = post(
        format!("{base}/users"),
        Some(&admin),
        json!([{"username": "a", "password": "p"}, {"username": "b", "password": "p"}]),
    )
    .await;
    assert_eq!(st, 200);
    let send = |i: usize| {
        let (base, admin) = (base.clone(), admin.clone());
        async move {
            post(
                format!("{base}/messages/users"),
                Some(&admin),
                json!({"from": "a", "to": ["b"], "type": "txt", "body": {"msg": format!("m{i}-{}", "x".repeat(1000))}}),
            )
            .await
        }
    };
    let mut acked = 0;
    for i in 0..5 {
        assert_eq!(send(i).await.0, 200);
        acked += 1;
    }

    let filler = fill(&disk.path);
    let mut failures = 0;
    for i in 0..50 {
        let (st, body) = send(100 + i).await;
        if st == 200 {
            acked += 1;
            continue;
        }
        assert!(st >= 500, "a full disk is a server-side failure, got {st}: {body}");
        assert!(body["error"].is_string() && body["error_description"].is_string(), "Easemob error body: {body}");
        failures += 1;
    }
    assert!(failures > 0, "the disk never filled up");
    let (st, _) = post(format!("{base}/token"), None, json!({"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]})).await;
    assert!(st == 200 || st >= 500, "still answering");

    // Space returns: sends succeed again, without a restart, and nothing acked was lost.
    std::fs::remove_file(filler).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (st, _) = send(1000).await;
        if st == 200 {
            acked += 1;
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "server did not recover after space returned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = http().get(format!("{base}/users/b/offline_msg_count")).bearer_auth(&admin).send().await.unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["data"]["b"], acked, "every acknowledged message is stored: {v}");
    drop(server);
}

#[tokio::test]
async fn descriptor_exhaustion_refuses_new_connections_and_serves_existing_ones() {
    let dir = TestData::new().await;
    dir.create_app("f", "f");
    let server = ProcessServer::start_wrapped(&dir, &["prlimit", "--nofile=64:64", "--"]).await;

    // A keep-alive connection opened while there is room.
    let mut existing = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    async fn read_response(c: &mut tokio::net::TcpStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(15), c.read(&mut buf)).await.expect("answer in time").unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
    existing.write_all(request).await.unwrap();
    assert!(read_response(&mut existing).await.starts_with("HTTP/1.1 200"));

    // Open keep-alive connections, each served once (so each holds a descriptor in the
    // server), until one is not served: the server has run out of descriptors. Accepting
    // fails with EMFILE and the kernel's backlog holds the new connection unanswered.
    let mut hogs = Vec::new();
    let mut unserved = None;
    for _ in 0..1000 {
        let mut c = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        c.write_all(request).await.unwrap();
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => hogs.push(c),
            _ => {
                unserved = Some(c);
                break;
            }
        }
    }
    let fresh = unserved.expect("the server never ran out of descriptors");
    assert!(hogs.len() < 64, "served {} connections with 64 descriptors", hogs.len());
    // ...while the existing connection is still served.
    existing.write_all(request).await.unwrap();
    assert!(read_response(&mut existing).await.starts_with("HTTP/1.1 200"));

    // Descriptors return: new connections are served again.
    drop(hogs);
    drop(fresh);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http().get(format!("http://{}/health", server.addr)).timeout(Duration::from_secs(2)).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "server did not recover");
    }
}

#[tokio::test]
async fn a_locked_database_answers_503_within_the_configured_timeout() {
    if sqlite_only("a_locked_database_answers_503_within_the_configured_timeout") {
        return;
    }
    let s = crate::common::TestServer::start_with(|c| c.storage.busy_timeout_ms = 300).await;
    let admin = s.admin_token().await;
    s.register(&admin, &["a", "b"]).await;
    let body = json!({"from": "a", "to": ["b"], "type": "txt", "body": {"msg": "x"}});

    // Another process holds the write lock (as a long backup or a stuck tool would).
    let other = rusqlite::Connection::open(s.config.database_path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let r = s
        .http
        .post(s.url("/messages/users"))
        .bearer_auth(&admin)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let r = r.expect("answered instead of hanging");
    let elapsed = started.elapsed();
    let st = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    crate::common::assert_error(
        reqwest::StatusCode::from_u16(st).unwrap(),
        &b,
        503,
        "service_unavailable",
        "storage busy, retry later",
    );
    println!("locked database: 503 after {elapsed:?} (busy_timeout 300 ms)");
    // Reads still work while the writer is locked out (WAL).
    let (st, _) = s.get("/users/b/offline_msg_count", Some(&admin)).await;
    assert_eq!(st, 200);

    // The lock goes away: writes succeed again.
    other.execute_batch("ROLLBACK").unwrap();
    let (st, b) = s.post("/messages/users", Some(&admin), body).await;
    assert_eq!(st, 200, "{b}");
}
