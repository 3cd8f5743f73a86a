//! Any bytes a client can put in a WebSocket frame: decoding the envelope and every payload
//! the server decodes from it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_msync::pb;
use missive_msync::{decode_frame, key_values_to_json};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = decode_frame(data) else { return };
    let payload = frame.payload.clone().unwrap_or_default();
    let _ = pb::Provision::decode(payload.clone());
    let _ = pb::Logout::decode(payload.clone());
    if let Ok(ul) = pb::CommSyncUl::decode(payload) {
        if let Some(meta) = ul.meta {
            if let Ok(body) = pb::MessageBody::decode(meta.payload.unwrap_or_default()) {
                let _ = key_values_to_json(&body.ext);
                for c in &body.contents {
                    let _ = key_values_to_json(&c.custom_exts);
                }
            }
        }
    }
});
