//! Properties of the `ext` ↔ `KeyValue` conversion and of frame decoding: every JSON object
//! the Web SDK can produce round-trips unchanged, and no byte string makes decoding panic.

use missive_msync::{decode_frame, json_to_key_values, key_values_to_json};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON values as the SDK's `ext` holds them: strings, booleans, integers, non-integral
/// doubles (a whole-number double is an integer in JavaScript), nested arrays and objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        (-1e12f64..1e12).prop_filter("non-integral", |f| f.fract() != 0.0).prop_map(|f| serde_json::json!(f)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn ext_round_trips(entries in proptest::collection::btree_map(".{0,12}", json_value(), 0..8)) {
        let map: Map<String, Value> = entries.into_iter().collect();
        let back = key_values_to_json(&json_to_key_values(&map));
        prop_assert_eq!(back, map);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(&bytes);
    }
}
