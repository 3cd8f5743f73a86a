//! Prints, as one JSON object, the answers Missive renders for a conversation holding one
//! REST-sent message of each of the eight types: the `messageroaming` page, the two
//! conversation lists and the export records, plus the hex of one `Meta` and of the channel
//! ack the Web SDK sends. `docs/protocol.md` quotes this output, and the Web SDK check in
//! that section feeds it to the unmodified SDK:
//!
//! ```sh
//! cargo run -p missive-api --example wire_examples > /tmp/wire.json
//! ```

use missive_api::chatlog::chat_record;
use missive_api::conversations::{
    ConversationListRequest, ConversationSummary, channel_info, conversation_list_data, legacy_list_data,
};
use missive_api::history::{ArchivedMessage, history_meta, roaming_data};
use missive_api::{SendForm, SendRequest, chat_body};
use missive_core::id::MsgId;
use missive_msync::pb;
use prost::Message;
use serde_json::{Value, json};

const APP_KEY: &str = "testorg#testapp";

/// The archive row of a REST send from alice to bob, as the delivery path builds it.
fn archived(n: u64, msg_type: &str, body: Value, ext: Value) -> ArchivedMessage {
    let req = SendRequest::parse(
        &json!({"from": "alice", "to": ["bob"], "type": msg_type, "body": body, "ext": ext}),
        SendForm::Users,
        1,
    )
    .expect("a valid send");
    let mut b = chat_body(req.content().expect("a valid body"), &req.ext);
    b.from = Some(pb::Jid { name: Some("alice".into()), ..Default::default() });
    b.to = Some(pb::Jid { name: Some("bob".into()), ..Default::default() });
    let timestamp = 1_700_000_000_000 + n;
    ArchivedMessage {
        id: MsgId(MsgId::floor_at(timestamp).0 | n),
        from: "alice".into(),
        to: "bob".into(),
        timestamp,
        payload: b.encode_to_vec().into(),
    }
}

fn main() {
    let url = |u: &str| format!("http://127.0.0.1:18093/testorg/testapp/chatfiles/{u}");
    let rows = [
        archived(1, "txt", json!({"msg": "hello"}), json!({"s": "x", "i": 7, "b": true, "o": {"k": [1]}, "f": 2.5})),
        archived(
            2,
            "img",
            json!({"url": url("i1"), "filename": "a.jpg", "secret": "s1", "size": {"width": 746, "height": 1325}}),
            json!({}),
        ),
        archived(
            3,
            "audio",
            json!({"url": url("a1"), "filename": "a.amr", "length": 10, "file_length": 6630, "secret": "s2"}),
            json!({}),
        ),
        archived(
            4,
            "video",
            json!({"url": url("v1"), "filename": "v.mp4", "length": 12, "file_length": 58103, "secret": "s3", "thumb": url("t1"), "thumb_secret": "s4"}),
            json!({}),
        ),
        archived(
            5,
            "file",
            json!({"url": url("f1"), "filename": "r.md", "file_length": 3279, "secret": "s5"}),
            json!({}),
        ),
        archived(
            6,
            "loc",
            json!({"lat": "39.9053", "lng": 116.36302, "addr": "西城区西便门桥", "buildingName": "B1"}),
            json!({}),
        ),
        archived(7, "cmd", json!({"action": "run"}), json!({"k": "v"})),
        archived(
            8,
            "custom",
            json!({"customEvent": "gift_1", "customExts": {"name": "flower", "size": "16"}}),
            json!({"k": "v"}),
        ),
    ];
    // Newest first, as the SDK's default direction walks them; one more row than the page
    // holds, so the page says more follow.
    let newest_first: Vec<ArchivedMessage> = rows.iter().rev().cloned().collect();
    let roaming = roaming_data(APP_KEY, &newest_first, 7);
    let latest = rows.last().cloned();
    let summary = ConversationSummary { peer: "alice".into(), unread: 8, pinned_at: None, latest };
    let list_req = ConversationListRequest::parse([("limit", "20")]).expect("valid");
    // One conversation per type, each with a message of that type as its latest.
    let per_type: Vec<ConversationSummary> = rows
        .iter()
        .rev()
        .map(|m| ConversationSummary {
            peer: format!("peer{}", m.id.0 & 0xf),
            unread: 1,
            pinned_at: None,
            latest: Some(m.clone()),
        })
        .collect();
    let channel_ack = pb::MessageBody {
        r#type: Some(pb::message_body::Type::ChannelAck as i32),
        from: Some(pb::Jid { name: Some("bob".into()), ..Default::default() }),
        to: Some(pb::Jid { name: Some("alice".into()), ..Default::default() }),
        contents: vec![pb::message_body::Content::default()],
        ..Default::default()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // The smallest useful row, for the byte-level walk-through.
    let small = archived(1, "txt", json!({"msg": "hi"}), json!({"k": "v"}));
    let small_meta = history_meta(APP_KEY, &small).encode_to_vec();
    let out = json!({
        "roaming": { "data": roaming },
        "list": { "data": conversation_list_data(APP_KEY, std::slice::from_ref(&summary), &list_req) },
        "legacy": { "data": legacy_list_data(APP_KEY, std::slice::from_ref(&summary)) },
        "list_per_type": { "data": conversation_list_data(APP_KEY, &per_type, &list_req) },
        "channel_info": channel_info(APP_KEY, &summary),
        "records": rows.iter().map(chat_record).collect::<Vec<_>>(),
        "small_id": small.id.to_string(),
        "small_meta_hex": hex(&small_meta),
        "small_body_hex": hex(&small.payload),
        "small_roaming": roaming_data(APP_KEY, std::slice::from_ref(&small), 20),
        "channel_ack_body_hex": hex(&channel_ack.encode_to_vec()),
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
}
