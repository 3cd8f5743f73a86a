//! User attributes (`http/attributes.rs`): `/metadata/user/…` as app servers call it, with
//! Easemob's limits and errors, and through the unmodified `easemob-websdk` 4.21.1's
//! `updateOwnUserInfo` and `fetchUserInfoById`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::sdk::{Sdk, base};

/// `PUT /metadata/user/{user}` with a form body.
async fn set(s: &TestServer, token: &str, user: &str, form: &str) -> (StatusCode, Value) {
    let res = crate::common::http()
        .put(s.url(&format!("/metadata/user/{user}")))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("PUT metadata");
    let status = res.status();
    (status, res.json().await.expect("JSON body"))
}

#[tokio::test]
async fn attributes_are_set_merged_read_in_batches_limited_and_deleted() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["ann", "ben"]).await;
    let ann = s.user_token("ann").await;

    let (st, b) = set(&s, &admin, "ann", "nickname=Ann+A.&avatarurl=http%3A%2F%2Fx%2Fa.png").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["data"], json!({"nickname": "Ann A.", "avatarurl": "http://x/a.png"}), "{b}");
    assert!(b["timestamp"].is_u64() && b["duration"].is_u64(), "{b}");
    // Her own token may add more; the answer names what this request set.
    let (st, b) = set(&s, &ann, "ann", "sign=hello&gender=2").await;
    assert_eq!((st, b["data"].clone()), (StatusCode::OK, json!({"sign": "hello", "gender": "2"})), "{b}");
    let (st, b) = s.get("/metadata/user/ann", Some(&ann)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        b["data"],
        json!({"nickname": "Ann A.", "avatarurl": "http://x/a.png", "sign": "hello", "gender": "2"}),
        "merged: {b}"
    );

    // Another user's token: Easemob's "auth error"; an unknown user's attributes: {} (app).
    let (st, b) = set(&s, &ann, "ben", "nickname=Imposter").await;
    assert_eq!(
        (st, b["error"].clone(), b["error_description"].clone()),
        (StatusCode::UNAUTHORIZED, json!("metadata_error"), json!("auth error"))
    );
    let (st, b) = s.get("/metadata/user/ben", Some(&ann)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    let (st, b) = s.get("/metadata/user/nobody", Some(&admin)).await;
    assert_eq!((st, b["data"].clone()), (StatusCode::OK, json!({})), "{b}");
    let (st, _) = set(&s, &admin, "nobody", "nickname=x").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Over 2 KB in all: 403, nothing stored.
    let (st, b) = set(&s, &ann, "ann", &format!("ext={}", "x".repeat(2000))).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"], "FORBIDDEN", "{b}");
    assert_eq!(
        b["error_description"],
        "size of metadata for this single user exceeds the user defined limit, 2048Bytes"
    );
    let (_, b) = s.get("/metadata/user/ann", Some(&ann)).await;
    assert!(b["data"].get("ext").is_none(), "{b}");

    // Batch: any user's token; only the properties asked for; users without any left out.
    set(&s, &admin, "ben", "nickname=Ben").await;
    let body = json!({"targets": ["ann", "ben", "nobody"], "properties": ["nickname", "avatarurl"]});
    let (st, b) = s.post("/metadata/user/get", Some(&s.user_token("ben").await), body).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        b["data"],
        json!({"ann": {"nickname": "Ann A.", "avatarurl": "http://x/a.png"}, "ben": {"nickname": "Ben"}})
    );
    let (_, b) = s.post("/metadata/user/get", Some(&ann), json!({"targets": ["ben"]})).await;
    assert_eq!(b["data"], json!({"ben": {"nickname": "Ben"}}), "no properties = all: {b}");
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let (st, b) = s.post("/metadata/user/get", Some(&ann), json!({"targets": many})).await;
    assert_eq!((st, b["error_description"].clone()), (StatusCode::BAD_REQUEST, json!("exceed allowed batch size 100")));

    // Capacity: the app's bytes (keys + values), app token only.
    let (st, b) = s.get("/metadata/user/capacity", Some(&admin)).await;
    let ann_bytes = "nicknameAnn A.avatarurlhttp://x/a.pngsignhellogender2".len();
    assert_eq!((st, b["data"].clone()), (StatusCode::OK, json!(ann_bytes + "nicknameBen".len())), "{b}");
    let (st, _) = s.get("/metadata/user/capacity", Some(&ann)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Delete: true, also when there is nothing left; deleting the user deletes them too.
    for _ in 0..2 {
        let (st, b) = s.delete("/metadata/user/ann", Some(&ann)).await;
        assert_eq!((st, b["data"].clone()), (StatusCode::OK, json!(true)), "{b}");
    }
    let (_, b) = s.get("/metadata/user/ann", Some(&admin)).await;
    assert_eq!(b["data"], json!({}), "{b}");
    s.delete("/users/ben", Some(&admin)).await;
    s.register(&admin, &["ben"]).await;
    let (_, b) = s.get("/metadata/user/ben", Some(&admin)).await;
    assert_eq!(b["data"], json!({}), "a new ben has none: {b}");
}

#[tokio::test]
async fn websdk_updates_and_fetches_user_info() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["cat", "dov"]).await;
    set(&s, &admin, "dov", "nickname=Dov&mail=d%40x.org").await;
    let cat = s.user_token("cat").await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;
    sdk.open("cat", "cat", &cat, json!({})).await;

    let ev = sdk.call("cat", "up", "updateOwnUserInfo", json!([{"nickname": "Cat S.", "gender": 1}])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    let (_, b) = s.get("/metadata/user/cat", Some(&admin)).await;
    assert_eq!(b["data"], json!({"nickname": "Cat S.", "gender": "1"}), "{b}");

    let ev = sdk.call("cat", "get", "fetchUserInfoById", json!([["dov", "cat"]])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    assert_eq!(ev["r"]["data"]["dov"]["nickname"], "Dov", "{ev}");
    assert_eq!(ev["r"]["data"]["dov"]["mail"], "d@x.org", "{ev}");
    assert_eq!(ev["r"]["data"]["cat"]["nickname"], "Cat S.", "{ev}");
}
