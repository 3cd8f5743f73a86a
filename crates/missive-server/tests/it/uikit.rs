//! The official Easemob UIKit (npm `easemob-chat-uikit` 3.0.3, with the "SDK 5" it bundles)
//! in headless Debian Chromium against the real server: `sdk-tests/uikit/` is a minimal React
//! app rendering the UIKit's contact list, conversation list and chat window, and
//! `sdk-tests/uikit/driver.mjs` (playwright-core) runs two browser contexts as two users
//! through issue 14's scenario, writing a screenshot of both pages after every step and a
//! report of every REST call, WebSocket, console error, page error and request to another
//! host (docs/uikit.md).
//!
//! Two tests:
//! - `uikit_chat_today` runs the steps today's server supports (login, opening a chat, a text
//!   from A to B, a REST send appearing in B's list with an unread badge) and fails on any
//!   page error, any request to another host, and any console error or failed call that is not
//!   one of the documented gaps in `KNOWN_GAPS` (endpoints still to build, docs/uikit.md).
//! - `uikit_done_when` is the whole scenario of issue 14's "Done when", with no tolerance;
//!   ignored until the gaps are closed. `cargo test … uikit -- --ignored --nocapture` shows
//!   which steps fail and why.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`), Node 20, and the app installed and built:
//! `npm ci --prefix sdk-tests/uikit && npm run build --prefix sdk-tests/uikit`
//! (scripts/test.sh does both). Screenshots and `report.json` go to
//! `target/tmp/uikit/<test>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::sdk::noisy_png;

fn uikit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk-tests/uikit")
}

/// Fails the test with the fix when the browser, the app or its build is missing.
fn require_uikit() -> PathBuf {
    let dir = uikit_dir();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: `apt-get install -y chromium` (scripts/test.sh does it)"
    );
    for module in ["playwright-core/package.json", "easemob-chat-uikit/package.json"] {
        let path = dir.join("node_modules").join(module);
        assert!(path.exists(), "{} is missing: run `npm ci --prefix sdk-tests/uikit`", path.display());
    }
    let built = dir.join("dist/index.html");
    let fix = "run `npm run build --prefix sdk-tests/uikit`";
    let built_at = std::fs::metadata(&built).and_then(|m| m.modified()).unwrap_or_else(|_| panic!("no build: {fix}"));
    for source in ["src/main.jsx", "index.html", "package-lock.json", "vite.config.js"] {
        let changed = std::fs::metadata(dir.join(source)).and_then(|m| m.modified()).expect(source);
        assert!(changed <= built_at, "the build is older than {source}: {fix}");
    }
    dir
}

/// One run of the driver: the step results and the final report.
struct Run {
    steps: Vec<Value>,
    report: Value,
    out: PathBuf,
}

impl Run {
    fn step(&self, name: &str) -> &Value {
        self.steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no step {name} in {:?}", self.steps))
    }

    fn assert_passed(&self, names: &[&str]) {
        for name in names {
            let s = self.step(name);
            assert_eq!(
                s["ok"],
                true,
                "step {name} failed: {s}\nscreenshots: {}\n{}",
                self.out.display(),
                self.summary()
            );
        }
    }

    fn summary(&self) -> String {
        let list = |k: &str| self.report[k].as_array().cloned().unwrap_or_default();
        let failing_rest: Vec<String> = list("rest")
            .iter()
            .filter(|r| !r["status"].as_u64().is_some_and(|s| (200..300).contains(&s)))
            .map(|r| {
                let f = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                format!("{} {}{} -> {} (step {})", f("method"), f("path"), f("query"), r["status"], f("step"))
            })
            .collect();
        format!(
            "steps: {}\nREST not 2xx:\n  {}\nconsole errors: {}\npage errors: {}\nforeign requests: {}",
            Value::Array(self.steps.clone()),
            failing_rest.join("\n  "),
            list("consoleErrors").len(),
            Value::Array(list("pageErrors")),
            Value::Array(list("foreignRequests")),
        )
    }
}

/// Starts the driver on `cfg` (missing keys filled from the server) and waits for its report.
async fn run_driver(s: &TestServer, name: &str, mut cfg: Value) -> Run {
    let dir = require_uikit();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("uikit").join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("output dir");
    let image = out.join("photo.png");
    std::fs::write(&image, noisy_png(240, 180)).expect("test image");
    let defaults = json!({
        "missive": format!("http://{}", s.addr),
        "appKey": s.app_key(),
        "out": out,
        "image": image,
    });
    if let (Some(cfg), Value::Object(d)) = (cfg.as_object_mut(), defaults) {
        for (k, v) in d {
            cfg.entry(k).or_insert(v);
        }
    }
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&node)
            .arg(dir.join("driver.mjs"))
            .arg(cfg.to_string())
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{node}` ({e}): the UIKit test needs Node.js 20 on PATH"))
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if let Some(fatal) = lines.iter().find(|l| l.get("fatal").is_some()) {
        panic!("the UIKit driver failed: {fatal}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report = lines.iter().find_map(|l| l.get("report").cloned()).unwrap_or_else(|| {
        panic!("no report from the UIKit driver\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr))
    });
    let steps = lines.iter().filter(|l| l.get("step").is_some()).cloned().collect();
    Run { steps, report, out }
}

/// Users `alice`, `bob`, `carol` and their tokens; returns the app token and the two tokens.
async fn three_users(s: &TestServer) -> (String, String, String) {
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    let a = s.user_token("alice").await;
    let b = s.user_token("bob").await;
    (admin, a, b)
}

/// Calls the UIKit makes that today's server does not answer yet, each with what it needs
/// (docs/uikit.md has the exact requests and answers): (method, path pattern, why).
/// `{u}` stands for any one path segment.
const KNOWN_GAPS: &[(&str, &str, &str)] = &[
    ("POST", "/{org}/{app}/metadata/user/get", "user attributes (issue 14 item 3)"),
    ("GET", "/{org}/{app}/users/{u}/notification", "push / do-not-disturb settings"),
    ("POST", "/{org}/{app}/users/{u}/presence/{u}", "presence subscription"),
    ("POST", "/{org}/{app}/users/{u}/messageroaming", "history (issue 13)"),
];

fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, s)| p.starts_with('{') || p == s)
}

/// The known gap a failed call (method, URL path) belongs to.
fn known_gap(method: &str, path: &str) -> Option<&'static str> {
    KNOWN_GAPS.iter().find(|(m, p, _)| *m == method && path_matches(p, path)).map(|(_, _, why)| *why)
}

/// Everything that went wrong in the pages and is not a documented gap.
fn unexplained(run: &Run) -> Vec<String> {
    let list = |k: &str| run.report[k].as_array().cloned().unwrap_or_default();
    let mut wrong = Vec::new();
    for e in list("pageErrors") {
        wrong.push(format!("page error: {e}"));
    }
    for e in list("foreignRequests") {
        wrong.push(format!("request to another host: {e}"));
    }
    for r in list("rest") {
        let ok = r["status"].as_u64().is_some_and(|s| (200..300).contains(&s));
        if !ok && known_gap(r["method"].as_str().unwrap_or(""), r["path"].as_str().unwrap_or("")).is_none() {
            wrong.push(format!("REST call failed: {r}"));
        }
    }
    for w in list("websockets") {
        if w.get("error").is_some() && known_gap("GET", w["path"].as_str().unwrap_or("")).is_none() {
            wrong.push(format!("WebSocket failed: {w}"));
        }
    }
    for e in list("consoleErrors") {
        let text = e["text"].as_str().unwrap_or("");
        // The browser's own line for a failed call names the URL; the SDK's WebSocket error
        // names the socket URL in its text.
        let url = if text.starts_with("Failed to load resource") {
            e["url"].as_str().unwrap_or("").to_owned()
        } else {
            text.split('\'').nth(1).unwrap_or("").to_owned()
        };
        let path = url.split("://").nth(1).and_then(|rest| rest.find('/').map(|i| &rest[i..])).unwrap_or("");
        let path = path.split('?').next().unwrap_or("");
        let method_of = |p: &str| {
            list("rest")
                .iter()
                .find(|r| r["path"] == p)
                .and_then(|r| r["method"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "GET".into())
        };
        if path.is_empty() || known_gap(&method_of(path), path).is_none() {
            wrong.push(format!("console error: {e}"));
        }
    }
    for f in list("failedRequests") {
        let url = f["url"].as_str().unwrap_or("");
        let path = url.split("://").nth(1).and_then(|r| r.find('/').map(|i| &r[i..])).unwrap_or("");
        if known_gap(f["method"].as_str().unwrap_or(""), path.split('?').next().unwrap_or("")).is_none() {
            wrong.push(format!("failed request: {f}"));
        }
    }
    wrong
}

#[tokio::test]
async fn uikit_chat_today() {
    let s = TestServer::start().await;
    let (admin, a, b) = three_users(&s).await;
    let cfg = json!({
        "admin": admin,
        "a": {"user": "alice", "token": a},
        "b": {"user": "bob", "token": b},
        "c": {"user": "carol"},
        "steps": ["login", "open_chat", "text", "rest_send"],
    });
    let run = run_driver(&s, "today", cfg).await;
    run.assert_passed(&["login", "open_chat", "text", "rest_send"]);
    // Over the sync gateway: groups and contacts answered (empty), the conversation list
    // "unsupported" so the UIKit keeps its own (docs/uikit.md).
    let sync = &run.step("login")["sync"];
    for who in ["a", "b"] {
        let s = &sync[who];
        assert_eq!(
            (&s["group"], &s["contact"], &s["conversation"]),
            (&json!("success"), &json!("success"), &json!("failed")),
            "{sync}"
        );
    }
    let wrong = unexplained(&run);
    assert!(wrong.is_empty(), "unexplained trouble in the pages:\n{}\n{}", wrong.join("\n"), run.summary());
}

#[tokio::test]
#[ignore = "needs the endpoints of docs/uikit.md (contacts, user attributes, conversations and history, \
            SDK 5 image variants); run with --ignored --nocapture to see which steps fail"]
async fn uikit_done_when() {
    let s = TestServer::start().await;
    let (admin, a, b) = three_users(&s).await;
    // Contacts both ways and nicknames, over REST, as an app server would set them up. A
    // refusal is reported after the run, so the run still shows every step.
    let mut setup = Vec::new();
    let (st, body) = s.post("/users/alice/contacts/users/bob", Some(&admin), json!({})).await;
    if st != StatusCode::OK {
        setup.push(format!("add contact alice-bob: {st} {body}"));
    }
    for (u, nick) in [("alice", "Alice Liddell"), ("bob", "Bob Builder"), ("carol", "Carol Danvers")] {
        let url = format!("http://{}/{}/{}/metadata/user/{u}", s.addr, s.app.org, s.app.name);
        let res = crate::common::http()
            .put(url)
            .bearer_auth(&admin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("nickname={}", nick.replace(' ', "+")))
            .send()
            .await
            .expect("PUT metadata");
        if res.status() != StatusCode::OK {
            setup.push(format!("set nickname of {u}: {}", res.status()));
        }
    }
    let cfg = json!({
        "admin": admin,
        "a": {"user": "alice", "token": a, "nickname": "Alice Liddell"},
        "b": {"user": "bob", "token": b, "nickname": "Bob Builder"},
        "c": {"user": "carol", "nickname": "Carol Danvers"},
    });
    let run = run_driver(&s, "done_when", cfg).await;
    println!("{}", run.summary());
    assert!(setup.is_empty(), "REST setup refused: {setup:?}");
    run.assert_passed(&["login", "contacts", "open_chat", "text", "image", "rest_send", "reload", "nicknames"]);
    for k in ["consoleErrors", "pageErrors", "foreignRequests", "failedRequests"] {
        assert_eq!(run.report[k], json!([]), "{k}\n{}", run.summary());
    }
}

#[test]
fn gap_patterns_match_one_segment_each() {
    assert_eq!(known_gap("POST", "/o/a/users/bob/presence/2592000"), Some("presence subscription"));
    assert_eq!(known_gap("POST", "/o/a/users/bob/presence"), None);
    assert_eq!(known_gap("GET", "/o/a/users/bob/messageroaming"), None);
    assert_eq!(known_gap("GET", "/ws"), None);
    assert_eq!(known_gap("GET", "/o/a/chatfiles/x"), None);
}
