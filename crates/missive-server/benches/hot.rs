//! Micro-benchmarks of the server's per-request work without the network: bearer-token
//! verification, a send request's JSON parsing and validation, and a whole REST send.
//! Run with `cargo bench -p missive-server`.
//!
//! Requests go through the real router (`tower::ServiceExt::oneshot`), so routing, the
//! `Api` extractor, body reading and error rendering are included. "Parse + validate" runs
//! with a send quota of one call per second: after the first call every request is parsed
//! and fully validated, then refused (429) by the quota check, which comes after all
//! validation and before any storage. The whole send writes to a database in `/dev/shm`
//! when there is one, where fsync costs nothing: it measures CPU, not the disk.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use missive_core::model::NewUser;
use missive_server::auth::Principal;
use missive_server::{AppState, Config, assemble, create_app, open_store, router};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

fn main() {
    divan::main();
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    state: AppState,
    router: Router,
    app: Uuid,
    token: String,
    path: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(send_calls_per_second: u32) -> Fixture {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        let mut config = Config { data: dir.path().to_path_buf(), ..Config::default() };
        config.limits.send_calls_per_second = send_calls_per_second;
        config.limits.send_messages_per_minute = 0;
        // Every iteration queues a message for the same offline user: keep the cap out of it.
        config.queue.max_offline_per_user = u32::MAX;
        let (state, app, token) = rt.block_on(async {
            let store = open_store(&config).await.unwrap();
            let app = create_app(&*store, "bench", "bench", false).await.unwrap();
            let bob = NewUser { username: "bob".into(), password_hash: "-".into(), nickname: None };
            store.create_user(app.id, &bob).await.unwrap();
            let state = assemble(config, store.shared(), CancellationToken::new()).await.unwrap();
            let token = state.auth.issue(app.id, Principal::App, 0).await.unwrap().access_token;
            (state, app, token)
        });
        let router = router(state.clone());
        Fixture { rt, state, router, app: app.id, token, path: "/bench/bench/messages/users".into(), _dir: dir }
    }

    fn send(&self) -> StatusCode {
        let body = r#"{"from":"alice","to":["bob"],"type":"txt","body":{"msg":"hello there"},"ext":{"k":"v"}}"#;
        let req = Request::post(&self.path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token))
            .body(Body::from(body))
            .unwrap();
        self.rt.block_on(async { self.router.clone().oneshot(req).await.unwrap().status() })
    }
}

static QUOTA_ONE: LazyLock<Fixture> = LazyLock::new(|| Fixture::new(1));
static UNLIMITED: LazyLock<Fixture> = LazyLock::new(|| Fixture::new(0));

/// A cached app token: shape check, SHA-256, map lookup.
#[divan::bench]
fn token_verify(bencher: divan::Bencher) {
    let f = &*QUOTA_ONE;
    bencher.bench_local(|| f.rt.block_on(f.state.auth.verify(f.app, divan::black_box(&f.token))).unwrap());
}

/// `POST /messages/users` up to and including validation (answered 429 by the quota).
#[divan::bench]
fn send_parse_and_validate(bencher: divan::Bencher) {
    let f = &*QUOTA_ONE;
    f.send();
    bencher.bench_local(|| assert_eq!(f.send(), StatusCode::TOO_MANY_REQUESTS));
}

/// A whole `POST /messages/users` to one offline user: parse, validate, the user lookup, id,
/// encode, group commit (on tmpfs), answer.
#[divan::bench]
fn send_whole(bencher: divan::Bencher) {
    let f = &*UNLIMITED;
    bencher.bench_local(|| assert_eq!(f.send(), StatusCode::OK));
}
