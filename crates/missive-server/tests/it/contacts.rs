//! Contacts and blocklists (`http/contacts.rs`, `ws/gateway.rs`, the blocklist check of
//! `ws/session.rs`): the REST API as an app server calls it, the same data through the
//! unmodified `easemob-websdk` 4.21.1 (including invitations and the contact events they
//! cause), SDK 5's roster over the sync gateway, a blocked user's SDK message refused, and
//! everything gone with a deleted user.

use missive_msync::gateway::roster;
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::gateway::{ask, gateway};
use crate::sdk::{Sdk, base, is};

async fn users(s: &TestServer, names: &[&str]) -> String {
    let admin = s.admin_token().await;
    s.register(&admin, names).await;
    admin
}

fn data_names(b: &Value) -> Vec<String> {
    b["data"].as_array().expect("data").iter().map(|v| v.as_str().expect("name").to_owned()).collect()
}

async fn version(s: &TestServer, admin: &str, user: &str) -> i64 {
    let (st, b) = s.get(&format!("/user/{user}/roster/metadata/version"), Some(admin)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["need_sync"], true, "{b}");
    b["data"]["version"].as_str().expect("version").parse().expect("numeric version")
}

#[tokio::test]
async fn contacts_are_added_both_ways_listed_paged_remarked_and_removed() {
    let s = TestServer::start().await;
    let admin = users(&s, &["amy", "bob", "cal", "dan"]).await;
    let amy = s.user_token("amy").await;
    let v0 = version(&s, &admin, "bob").await;

    // The app adds amy–bob; amy adds cal and dan herself. Easemob's answer: the peer's entity.
    let (st, b) = s.post("/users/amy/contacts/users/bob", Some(&admin), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!((b["action"].clone(), b["entities"][0]["username"].clone()), (json!("post"), json!("bob")), "{b}");
    assert_eq!(b["entities"][0]["type"], "user", "{b}");
    assert!(b["path"].as_str().is_some_and(|p| p.starts_with("/users/") && p.ends_with("/contacts")), "{b}");
    for peer in ["dan", "CAL"] {
        let (st, b) = s.post(&format!("/users/amy/contacts/users/{peer}"), Some(&amy), json!({})).await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    // Again: still fine, nothing changes.
    let (st, _) = s.post("/users/bob/contacts/users/amy", Some(&admin), json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert!(version(&s, &admin, "bob").await > v0, "bob's roster version moved");

    let (st, b) = s.get("/users/amy/contacts/users", Some(&amy)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!((data_names(&b), b["count"].clone()), (vec!["bob".to_owned(), "cal".into(), "dan".into()], json!(3)));
    let (_, b) = s.get("/users/bob/contacts/users", Some(&admin)).await;
    assert_eq!(data_names(&b), ["amy"], "mutual");

    // Refusals: another user's token, an unknown peer, oneself, no token.
    let (st, b) = s.get("/users/bob/contacts/users", Some(&amy)).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::UNAUTHORIZED, json!("unauthorized")), "{b}");
    let (st, b) = s.post("/users/amy/contacts/users/nobody", Some(&admin), json!({})).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::NOT_FOUND, json!("service_resource_not_found")), "{b}");
    let (st, b) = s.post("/users/amy/contacts/users/amy", Some(&admin), json!({})).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::BAD_REQUEST, json!("illegal_argument")), "{b}");
    let (st, _) = s.get("/users/amy/contacts/users", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Remarks, under Easemob's path and the Web SDK's; listed with needReturnRemark.
    let (st, b) = s.put("/user/amy/contacts/users/bob", Some(&admin), json!({"remark": "Bobby"})).await;
    assert_eq!((st, b["status"].clone(), b["action"].clone()), (StatusCode::OK, json!("ok"), json!("put")), "{b}");
    let (st, b) = s.put("/users/amy/contacts/users/cal?resource=web", Some(&amy), json!({"remark": "Cal"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s.put("/user/bob/contacts/users/cal", Some(&admin), json!({"remark": "x"})).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::NOT_FOUND, json!("entity_not_found")), "not a contact: {b}");
    let (st, b) = s.put("/user/amy/contacts/users/bob", Some(&admin), json!({"remark": "r".repeat(101)})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (_, b) = s.get("/users/amy/contacts/users?needReturnRemark=true", Some(&amy)).await;
    assert_eq!(
        b["entities"],
        json!([{"username": "bob", "remark": "Bobby"}, {"username": "cal", "remark": "Cal"}, {"username": "dan", "remark": null}]),
        "{b}"
    );

    // Pages of two, following the cursor, under both paths.
    let (st, b) = s.get("/user/amy/contacts?limit=2&needReturnRemark=true", Some(&amy)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        b["data"]["contacts"],
        json!([{"username": "bob", "remark": "Bobby"}, {"username": "cal", "remark": "Cal"}])
    );
    assert_eq!(b["count"], 3, "{b}");
    let cursor = b["data"]["cursor"].as_str().expect("a cursor while more remain").to_owned();
    let (_, b) = s.get(&format!("/users/amy/contacts?limit=2&cursor={cursor}"), Some(&amy)).await;
    assert_eq!(b["data"]["contacts"], json!([{"username": "dan", "remark": null}]), "{b}");
    assert!(b["data"].get("cursor").is_none(), "last page: {b}");
    let (st, _) = s.get("/user/amy/contacts?limit=51", Some(&amy)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.get("/user/amy/contacts?cursor=bm90LW91cnM", Some(&amy)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Removal ends both directions.
    let v = version(&s, &admin, "bob").await;
    let (st, b) = s.delete("/users/bob/contacts/users/amy", Some(&admin)).await;
    assert_eq!(
        (st, b["action"].clone(), b["entities"][0]["username"].clone()),
        (StatusCode::OK, json!("delete"), json!("amy"))
    );
    let (_, b) = s.get("/users/amy/contacts/users", Some(&amy)).await;
    assert_eq!(data_names(&b), ["cal", "dan"]);
    let (_, b) = s.get("/users/bob/contacts/users", Some(&admin)).await;
    assert_eq!(data_names(&b), Vec::<String>::new());
    assert!(version(&s, &admin, "bob").await > v);
}

#[tokio::test]
async fn a_blocked_users_sdk_messages_are_refused_rest_sends_are_not() {
    let s = TestServer::start().await;
    let admin = users(&s, &["eve", "fay", "gil"]).await;
    let eve = s.user_token("eve").await;

    // eve blocks fay (and an unknown user, left out); the list is paged by name.
    let (st, b) = s.post("/users/eve/blocks/users", Some(&eve), json!({"usernames": ["fay", "nobody", "gil"]})).await;
    assert_eq!((st, b["data"].clone()), (StatusCode::OK, json!(["fay", "gil"])), "{b}");
    let (_, b) = s.get("/users/eve/blocks/users", Some(&admin)).await;
    assert_eq!((b["data"].clone(), b["count"].clone()), (json!(["fay", "gil"]), json!(2)), "{b}");
    let (_, b) = s.get("/users/eve/blocks/users?pageSize=1", Some(&admin)).await;
    assert_eq!(b["data"], json!(["fay"]), "{b}");
    let (_, b) = s
        .get(&format!("/users/eve/blocks/users?pageSize=1&cursor={}", b["cursor"].as_str().unwrap()), Some(&admin))
        .await;
    assert_eq!(b["data"], json!(["gil"]), "{b}");
    let (st, b) = s.delete("/users/eve/blocks/users/gil", Some(&admin)).await;
    assert_eq!((st, b["entities"][0]["username"].clone()), (StatusCode::OK, json!("gil")), "{b}");
    let (st, b) = s.post("/users/eve/blocks/users", Some(&eve), json!({"names": []})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");

    let fay = s.user_token("fay").await;
    let gil = s.user_token("gil").await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;
    sdk.open("fay", "fay", &fay, json!({})).await;
    sdk.open("gil", "gil", &gil, json!({})).await;

    // fay's message to eve: the SDK's PERMISSION_DENIED (603); nothing reaches eve.
    sdk.cmd(json!({"op": "send", "c": "fay", "tag": "b", "msg": {"type": "txt", "to": "eve", "msg": "let me in"}}));
    let ev = sdk
        .expect("fay: send settled", |v| (is(v, "send_ok", "fay") || is(v, "send_err", "fay")) && v["tag"] == "b")
        .await;
    assert_eq!((ev["ev"].clone(), ev["type"].clone()), (json!("send_err"), json!(603)), "{ev}");
    // gil is not blocked (any more); eve may still write to fay.
    sdk.send("gil", "g", json!({"type": "txt", "to": "eve", "msg": "hi"})).await;
    assert_eq!(s.offline_count(&admin, "eve").await, 1, "only gil's message is queued for eve");
    // An app server's REST send is not filtered (Easemob's send API ignores the blocklist).
    s.send_text(&admin, "fay", &["eve"], "from the app server").await;
    assert_eq!(s.offline_count(&admin, "eve").await, 2);

    // The Web SDK's own blocklist calls: /sdk/user/{u}/blocks, then fay's sends pass.
    let ev = sdk.call("gil", "ban", "addUsersToBlocklist", json!([{"name": ["fay"]}])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    let ev = sdk.call("gil", "list", "getBlocklist", json!([])).await;
    assert_eq!((ev["ev"].clone(), ev["r"]["data"].clone()), (json!("call_ok"), json!(["fay"])), "{ev}");
    let ev = sdk.call("gil", "unban", "removeUserFromBlocklist", json!([{"name": ["fay"]}])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    let (_, b) = s.get("/users/gil/blocks/users", Some(&admin)).await;
    assert_eq!(b["data"], json!([]), "{b}");
    let (_, b) = s.delete("/users/eve/blocks/users/fay", Some(&eve)).await;
    assert_eq!(b["entities"][0]["username"], "fay", "{b}");
    sdk.send("fay", "ok", json!({"type": "txt", "to": "eve", "msg": "thanks"})).await;
    sdk.assert_no_errors();
}

#[tokio::test]
async fn websdk_contact_calls_read_and_change_the_stored_contacts() {
    let s = TestServer::start().await;
    let admin = users(&s, &["hal", "ida", "jon"]).await;
    for peer in ["ida", "jon"] {
        let (st, b) = s.post(&format!("/users/hal/contacts/users/{peer}"), Some(&admin), json!({})).await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    let hal = s.user_token("hal").await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;
    sdk.open("hal", "hal", &hal, json!({})).await;
    let mut call = async |tag: &str, method: &str, args: Value| {
        let ev = sdk.call("hal", tag, method, args).await;
        assert_eq!(ev["ev"], "call_ok", "{method}: {ev}");
        ev["r"].clone()
    };
    let r = call("list", "getContacts", json!([])).await;
    assert_eq!(r["data"], json!(["ida", "jon"]), "{r}");
    call("remark", "setContactRemark", json!([{"userId": "jon", "remark": "Jonny"}])).await;
    let r = call("all", "getAllContacts", json!([])).await;
    assert_eq!(r["data"], json!([{"userId": "ida", "remark": null}, {"userId": "jon", "remark": "Jonny"}]), "{r}");
    let r = call("page", "getContactsWithCursor", json!([{"pageSize": 1, "cursor": ""}])).await;
    assert_eq!(r["data"]["contacts"], json!([{"userId": "ida", "remark": null}]), "{r}");
    let cursor = r["data"]["cursor"].as_str().expect("cursor").to_owned();
    let r = call("page2", "getContactsWithCursor", json!([{"pageSize": 1, "cursor": cursor}])).await;
    assert_eq!(r["data"]["contacts"], json!([{"userId": "jon", "remark": "Jonny"}]), "{r}");
    call("del", "deleteContact", json!(["ida"])).await;
    let (_, b) = s.get("/users/ida/contacts/users", Some(&admin)).await;
    assert_eq!(b["data"], json!([]), "{b}");
}

#[tokio::test]
async fn the_sdk5_roster_carries_contacts_remarks_and_nicknames_in_pages() {
    let s = TestServer::start().await;
    let mut names: Vec<String> = (0..205).map(|i| format!("p{i:03}")).collect();
    names.push("kim".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let admin = s.admin_token().await;
    for batch in refs.chunks(60) {
        s.register(&admin, batch).await;
    }
    for peer in &names[..205] {
        let (st, b) = s.post(&format!("/users/kim/contacts/users/{peer}"), Some(&admin), json!({})).await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    s.put("/user/kim/contacts/users/p001", Some(&admin), json!({"remark": "first"})).await;
    let url = s.url("/metadata/user/p001");
    let res = crate::common::http()
        .put(url)
        .bearer_auth(&admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("nickname=Pat&avatarurl=http%3A%2F%2Fx%2Fp.png")
        .send()
        .await
        .expect("PUT metadata");
    assert_eq!(res.status(), StatusCode::OK);
    let kim = s.user_token("kim").await;
    let v = version(&s, &admin, "kim").await;

    let mut ws = gateway(&s, &kim).await;
    let mut got = Vec::new();
    let mut cursor = 0;
    loop {
        let req = roster::GetRosterRequest {
            r#type: 3,
            header: Some(roster::GatewayHeader { request_id: format!("r{cursor}"), ..Default::default() }),
            org: s.app.org.clone(),
            app: s.app.name.clone(),
            username: "kim".into(),
            version: String::new(),
            cursor,
        };
        let frame = ask(&mut ws, req.encode_to_vec()).await;
        let page = roster::GetRosterResponse::decode(frame.as_slice()).expect("a roster page");
        assert_eq!((page.r#type, page.version.clone()), (4, v.to_string()), "{page:?}");
        assert!(page.data.len() <= 200);
        got.extend(page.data);
        if page.cursor == 0 {
            break;
        }
        cursor = page.cursor;
    }
    assert_eq!(got.iter().map(|i| i.contact.clone()).collect::<Vec<_>>(), names[..205]);
    let p001 = &got[1];
    assert_eq!(p001.remark, "first");
    let meta: Value = serde_json::from_str(&p001.metadata).expect("metadata JSON");
    assert_eq!(meta, json!({"nickname": "Pat", "avatarUrl": "http://x/p.png"}));
    assert!(p001.created_at > 0 && p001.updated_at >= p001.created_at);
    assert_eq!(got[0].metadata, "", "no attributes, no metadata");
}

#[tokio::test]
async fn deleting_a_user_removes_them_from_contacts_and_blocklists() {
    let s = TestServer::start().await;
    let admin = users(&s, &["lou", "mae", "ned"]).await;
    s.post("/users/lou/contacts/users/mae", Some(&admin), json!({})).await;
    s.post("/users/ned/contacts/users/mae", Some(&admin), json!({})).await;
    s.post("/users/lou/blocks/users", Some(&admin), json!({"usernames": ["mae"]})).await;
    let v = version(&s, &admin, "lou").await;
    let (st, _) = s.delete("/users/mae", Some(&admin)).await;
    assert_eq!(st, StatusCode::OK);
    for owner in ["lou", "ned"] {
        let (_, b) = s.get(&format!("/users/{owner}/contacts/users"), Some(&admin)).await;
        assert_eq!(b["data"], json!([]), "{owner}: {b}");
    }
    let (_, b) = s.get("/users/lou/blocks/users", Some(&admin)).await;
    assert_eq!(b["data"], json!([]), "{b}");
    assert!(version(&s, &admin, "lou").await > v, "lou's roster changed");
    // A new mae starts with nobody.
    s.register(&admin, &["mae"]).await;
    let (_, b) = s.get("/users/mae/contacts/users", Some(&admin)).await;
    assert_eq!(b["data"], json!([]), "{b}");
}

#[tokio::test]
async fn websdk_invitations_reach_the_other_user_as_contact_events() {
    let s = TestServer::start().await;
    let admin = users(&s, &["uma", "vic", "wes"]).await;
    let mut sdk = Sdk::start(&base(&s), &s.app_key()).await;
    for u in ["uma", "vic"] {
        let token = s.user_token(u).await;
        sdk.open(u, u, &token, json!({})).await;
    }
    async fn event(sdk: &mut Sdk, c: &str, handler: &str) -> Value {
        let ev = sdk.expect(&format!("{c}: {handler}"), |v| is(v, "contact", c) && v["handler"] == handler).await;
        ev["m"].clone()
    }

    // uma invites vic: vic's SDK fires onContactInvited with the reason.
    let ev = sdk.call("uma", "add", "addContact", json!(["vic", "hi, it's uma"])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    let m = event(&mut sdk, "vic", "onContactInvited").await;
    assert_eq!(
        (m["from"].clone(), m["to"].clone(), m["status"].clone()),
        (json!("uma"), json!("vic"), json!("hi, it's uma"))
    );
    // vic accepts: uma's SDK fires onContactAgreed; both lists hold the other.
    let ev = sdk.call("vic", "ok", "acceptContactInvite", json!(["uma"])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    let m = event(&mut sdk, "uma", "onContactAgreed").await;
    assert_eq!(m["from"], "vic", "{m}");
    let (_, b) = s.get("/users/uma/contacts/users", Some(&admin)).await;
    assert_eq!(b["data"], json!(["vic"]), "{b}");
    // Accepting again: there is no invitation any more.
    let ev = sdk.call("vic", "again", "acceptContactInvite", json!(["uma"])).await;
    assert_eq!(ev["ev"], "call_err", "{ev}");

    // vic removes uma: onContactDeleted at uma.
    let ev = sdk.call("vic", "del", "deleteContact", json!(["uma"])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    let m = event(&mut sdk, "uma", "onContactDeleted").await;
    assert_eq!(m["from"], "vic", "{m}");

    // A declined invitation: onContactRefuse, and no contact.
    sdk.call("uma", "add2", "addContact", json!(["vic", ""])).await;
    event(&mut sdk, "vic", "onContactInvited").await;
    let ev = sdk.call("vic", "no", "declineContactInvite", json!(["uma"])).await;
    assert_eq!(ev["ev"], "call_ok", "{ev}");
    let m = event(&mut sdk, "uma", "onContactRefuse").await;
    assert_eq!(m["from"], "vic", "{m}");
    let (_, b) = s.get("/users/uma/contacts/users", Some(&admin)).await;
    assert_eq!(b["data"], json!([]), "{b}");

    // Over REST: unknown and self targets are reported in `data`, as the SDKs read them.
    let uma = s.user_token("uma").await;
    let (st, b) = s.post("/users/uma/contacts/apply", Some(&uma), json!({"usernames": ["uma", "nobody"]})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["applyYourselfUsers"][0]["failReason"], "user cannot apply to become a new friend", "{b}");
    assert_eq!(b["data"]["notExistUsers"][0]["failReason"], "the users not exist", "{b}");
    // A user who blocked the requester hears nothing, and cannot accept what never came.
    s.post("/users/wes/blocks/users", Some(&admin), json!({"usernames": ["uma"]})).await;
    let (st, _) = s.post("/users/uma/contacts/apply", Some(&uma), json!({"usernames": ["wes"]})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, b) = s.post("/users/wes/contacts/accept/users/uma", Some(&admin), json!({})).await;
    assert_eq!((st, b["error"].clone()), (StatusCode::NOT_FOUND, json!("entity_not_found")), "{b}");
    sdk.assert_no_errors();
}

/// Contact events are ROSTER metas (`ns: 3`) in their own queue, each delivered once, in order.
#[tokio::test]
async fn contact_events_reach_a_device_as_roster_metas() {
    let s = TestServer::start().await;
    let admin = users(&s, &["xia", "yan", "zed"]).await;
    let mut xia = s.msync("xia", "xia-dev").await;
    for (from, reason) in [("yan", "one"), ("zed", "two"), ("yan", "three")] {
        let (st, b) = s
            .post(
                &format!("/users/{from}/contacts/apply"),
                Some(&admin),
                json!({"usernames": ["xia"], "reason": reason}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let ev =
            tokio::time::timeout(std::time::Duration::from_secs(10), xia.next_event()).await.expect("an event in time");
        match ev {
            Some(missive_msync::ClientEvent::Message(m)) => {
                assert_eq!(m.ns, 3, "{m:?}");
                assert!(m.queue.starts_with("#roster:"), "a queue of its own: {m:?}");
                let body = missive_msync::pb::RosterBody::decode(m.raw.payload.clone().unwrap_or_default())
                    .expect("RosterBody");
                assert_eq!(body.operation, Some(2), "ADD");
                got.push((m.from.clone(), body.reason.unwrap_or_default()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let want = [("yan", "one"), ("zed", "two"), ("yan", "three")].map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(got, want);
}
