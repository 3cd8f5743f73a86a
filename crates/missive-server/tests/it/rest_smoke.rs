//! The newcomer's path: token, two users, one message, counted offline.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn token_users_and_a_message() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["user1", "user2"]).await;
    let data = s.send_text(&admin, "user1", &["user2"], "hello").await;
    let id = data["user2"].as_str().expect("id string");
    assert_eq!(id.len(), 19);
    let (st, b) = s.get("/users/user2/offline_msg_count", Some(&admin)).await;
    assert_eq!(st, 200);
    assert_eq!(b["data"], json!({"user2": 1}));
}
