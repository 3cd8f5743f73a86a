use serde_json::json;
use crate::common::TestServer;
#[tokio::test]
async fn probe() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let r = s.delete("/users/bob", Some(&admin)).await; println!("del {r:?}");
    let r = s.post("/users", Some(&admin), json!([{"username": "bob", "password": "bob-pw"}])).await; println!("reg {r:?}");
    let r = s.get("/users/bob", Some(&admin)).await; println!("get {r:?}");
    let r = s.post("/users/bob/deactivate", Some(&admin), json!({})).await; println!("deact {r:?}");
}
