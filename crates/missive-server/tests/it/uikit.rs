//! The official Easemob UIKit (npm `easemob-chat-uikit` 3.0.3, with the "SDK 5" it bundles)
//! in headless Debian Chromium against the real server: `sdk-tests/uikit/` is a minimal React
//! app rendering the UIKit's contact list, conversation list and chat window, and
//! `sdk-tests/uikit/driver.mjs` (playwright-core) runs two browser contexts as two users
//! through issue 14's scenario, writing a screenshot of both pages after every step and a
//! report of every REST call, WebSocket, console error, page error and request to another
//! host (docs/uikit.md).
//!
//! Two tests:
//! - `uikit_one_to_one_chat` runs every step of issue 14's scenario but the reload — login,
//!   contacts (added over REST, shown by nickname), a typed text, an image rendered from
//!   Missive, a REST send with its unread badge, nicknames — and fails on any page error, any
//!   request to another host, and any console error or failed call that is not one of the
//!   documented gaps in `KNOWN_GAPS` (history, issue 13).
//! - `uikit_done_when` is the whole scenario of issue 14's "Done when", with no tolerance;
//!   ignored until history lands (the reload step). `cargo test … uikit -- --ignored
//!   --nocapture` shows which steps fail and why.
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

/// Users `alice`, `bob`, `carol`; alice and bob contacts of each other and everyone's
/// nickname set as user attributes, over REST, as an app server would set them up; returns
/// the driver's config (all steps).
async fn chat_setup(s: &TestServer) -> Value {
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob", "carol"]).await;
    let (st, body) = s.post("/users/alice/contacts/users/bob", Some(&admin), json!({})).await;
    assert_eq!(st, StatusCode::OK, "add contact alice-bob: {body}");
    for (u, nick) in [("alice", "Alice Liddell"), ("bob", "Bob Builder"), ("carol", "Carol Danvers")] {
        let res = crate::common::http()
            .put(s.url(&format!("/metadata/user/{u}")))
            .bearer_auth(&admin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("nickname={}", nick.replace(' ', "+")))
            .send()
            .await
            .expect("PUT metadata");
        assert_eq!(res.status(), StatusCode::OK, "set the nickname of {u}");
    }
    json!({
        "admin": admin,
        "a": {"user": "alice", "token": s.user_token("alice").await, "nickname": "Alice Liddell"},
        "b": {"user": "bob", "token": s.user_token("bob").await, "nickname": "Bob Builder"},
        "c": {"user": "carol", "nickname": "Carol Danvers"},
    })
}

/// Calls the UIKit makes that the server does not answer yet, each with what it needs
/// (docs/uikit.md has the exact requests and answers): (method, path pattern, why).
/// `{u}` stands for any one path segment.
const KNOWN_GAPS: &[(&str, &str, &str)] = &[("POST", "/{org}/{app}/users/{u}/messageroaming", "history (issue 13)")];

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
        let (path, query) = path.split_once('?').map(|(p, q)| (p, format!("?{q}"))).unwrap_or((path, String::new()));
        // The UIKit cancels its own duplicate fetch of a thumbnail when it re-renders: an
        // abort by the page of a request the same page also got answered is not a failure.
        let answered_again = f["error"] == "net::ERR_ABORTED"
            && list("rest").iter().any(|r| {
                r["who"] == f["who"]
                    && r["path"] == path
                    && r["query"] == query.as_str()
                    && r["status"].as_u64().is_some_and(|s| (200..300).contains(&s))
            });
        if !answered_again && known_gap(f["method"].as_str().unwrap_or(""), path).is_none() {
            wrong.push(format!("failed request: {f}"));
        }
    }
    wrong
}

/// Issue 14's scenario but the reload (which needs history): both users log in, each sees the
/// other in Contacts by nickname, A's typed text reaches B, B's image renders at A from
/// Missive's thumbnail, a REST send shows in B's list with an unread badge, nicknames show in
/// the list and the chat header. Fails on any page error, request to another host, console
/// error or failed call other than the history calls of `KNOWN_GAPS`.
#[tokio::test]
async fn uikit_one_to_one_chat() {
    let s = TestServer::start().await;
    let mut cfg = chat_setup(&s).await;
    let steps = ["login", "contacts", "open_chat", "text", "image", "rest_send", "nicknames"];
    cfg["steps"] = json!(steps);
    let run = run_driver(&s, "chat", cfg).await;
    run.assert_passed(&steps);
    // Over the sync gateway: groups (none) and contacts answered; the conversation list
    // "unsupported" until history lands, so the UIKit keeps its own (docs/uikit.md).
    let sync = &run.step("login")["sync"];
    for who in ["a", "b"] {
        let s = &sync[who];
        assert_eq!(
            (&s["group"], &s["contact"], &s["conversation"]),
            (&json!("success"), &json!("success"), &json!("failed")),
            "{sync}"
        );
    }
    // The image A sees is Missive's thumbnail (170 px wide for the 240×180 photo), as the
    // UIKit asks for it.
    let image = run.step("image");
    let loaded = image["detail"].as_str().unwrap_or_default();
    assert!(loaded.contains("/chatfiles/") && loaded.ends_with("?size=small"), "{image}");
    assert_eq!(image["size"][0], 170, "{image}");
    let wrong = unexplained(&run);
    assert!(wrong.is_empty(), "unexplained trouble in the pages:\n{}\n{}", wrong.join("\n"), run.summary());
}

/// The whole of issue 14's "Done when", with no tolerance: also B reloads and the
/// conversation list and A's text come back from the server.
#[tokio::test]
#[ignore = "the reload step needs history and the conversation list (issue 13: messageroaming, \
            the gateway's session list); run with --ignored --nocapture"]
async fn uikit_done_when() {
    let s = TestServer::start().await;
    let cfg = chat_setup(&s).await;
    let run = run_driver(&s, "done_when", cfg).await;
    println!("{}", run.summary());
    run.assert_passed(&["login", "contacts", "open_chat", "text", "image", "rest_send", "reload", "nicknames"]);
    for k in ["consoleErrors", "pageErrors", "foreignRequests", "failedRequests"] {
        assert_eq!(run.report[k], json!([]), "{k}\n{}", run.summary());
    }
}

#[test]
fn gap_patterns_match_one_segment_each() {
    assert_eq!(known_gap("POST", "/o/a/users/bob/messageroaming"), Some("history (issue 13)"));
    assert_eq!(known_gap("POST", "/o/a/users/bob/messageroaming/x"), None);
    assert_eq!(known_gap("GET", "/o/a/users/bob/messageroaming"), None);
    assert_eq!(known_gap("GET", "/ws"), None);
    assert_eq!(known_gap("GET", "/o/a/chatfiles/x"), None);
}
