//! Any JSON object as a message `ext`: converting it to KeyValues and back never panics, and
//! every key survives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_msync::{json_to_key_values, key_values_to_json};

fuzz_target!(|data: &[u8]| {
    let Ok(map) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data) else { return };
    let back = key_values_to_json(&json_to_key_values(&map));
    for (k, v) in &map {
        assert!(v.is_null() || back.contains_key(k), "key {k:?} lost");
    }
});
