//! Conversion between a message's JSON `ext` object and the typed `KeyValue` list the SDKs put
//! on the wire (`MessageBody.ext`, and the same shape in `Content.custom_exts`,
//! `Content.params` and `Meta.ext`).
//!
//! The rules are those of the Web SDK's encoder and decoder (PROTOCOL.md §5, "ext encoding"),
//! so a JSON object that the REST API accepts reaches a Web SDK user as the same JavaScript
//! object, and an SDK's `ext` comes back out of the REST API unchanged. Where JSON and
//! JavaScript differ (`null`, integers beyond `i64`), the choice is documented at the function.

use serde_json::{Map, Number, Value};

use crate::pb::KeyValue;
use crate::pb::key_value::{Value as KvValue, ValueType};

/// Largest integer a JavaScript number holds exactly (2^53). Integral floats up to this size
/// are what the SDK would see as integers, so they are encoded as `INT` like the SDK does.
const JS_MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Encodes a JSON object as one `KeyValue` per top-level key, in the map's iteration order.
///
/// - string → `STRING` (7), `string_value`;
/// - object or array → `JSON_STRING` (8), `string_value` = compact JSON;
/// - bool → `BOOL` (1), `varint_value` 0 or 1;
/// - integer that fits `i64` → `INT` (2), `varint_value`;
/// - integer above `i64::MAX` → `STRING` (7) holding its decimal digits. `varint_value` is an
///   `int64`, so `INT` would wrap to a negative number, and even `UINT` is read back by the SDK
///   through a signed `Long` and then a JavaScript number, which cannot hold it exactly. The
///   SDK itself turns values it cannot represent (bigint) into strings, so this matches it;
/// - a float with no fractional part and within ±2^53 → `INT`, because JavaScript has one
///   number type and the SDK sends such a value (`2.0 === 2`) as an integer;
/// - any other number → `DOUBLE` (6), `double_value`;
/// - `null` → skipped. JSON has no `undefined`, and `null` is its nearest equivalent; the SDK
///   skips `undefined`. Skipping keeps the wire free of a value no SDK decoder expects.
pub fn json_to_key_values(map: &Map<String, Value>) -> Vec<KeyValue> {
    map.iter()
        .filter_map(|(key, value)| {
            let (ty, value) = encode_value(value)?;
            Some(KeyValue { key: Some(key.clone()), r#type: Some(ty as i32), value: Some(value) })
        })
        .collect()
}

fn encode_value(value: &Value) -> Option<(ValueType, KvValue)> {
    Some(match value {
        Value::Null => return None,
        Value::String(s) => (ValueType::String, KvValue::StringValue(s.clone())),
        Value::Object(_) | Value::Array(_) => (ValueType::JsonString, KvValue::StringValue(value.to_string())),
        Value::Bool(b) => (ValueType::Bool, KvValue::VarintValue(i64::from(*b))),
        Value::Number(n) => encode_number(n),
    })
}

fn encode_number(n: &Number) -> (ValueType, KvValue) {
    if let Some(i) = n.as_i64() {
        return (ValueType::Int, KvValue::VarintValue(i));
    }
    if n.is_u64() {
        return (ValueType::String, KvValue::StringValue(n.to_string()));
    }
    // Neither i64 nor u64, so serde_json holds it as an f64.
    let f = n.as_f64().unwrap_or_default();
    if f.fract() == 0.0 && f.abs() <= JS_MAX_SAFE_INTEGER {
        // Exact: |f| ≤ 2^53 and integral.
        return (ValueType::Int, KvValue::VarintValue(f as i64));
    }
    (ValueType::Double, KvValue::DoubleValue(f))
}

/// Decodes a `KeyValue` list back into a JSON object; a repeated key keeps its last value.
///
/// The declared `type` picks the conversion when the matching value field is set:
/// `STRING` → string; `JSON_STRING` → the parsed JSON, or the raw string if it does not parse;
/// `BOOL` → `varint_value != 0`; `INT`/`LLINT` → `varint_value`; `UINT` → `varint_value`
/// reinterpreted as `u64`, since that is what an unsigned 64-bit value looks like after a trip
/// through `int64`; `FLOAT` → `float_value` widened to f64 (as JavaScript does, so `0.1f32`
/// reads as `0.10000000149011612`); `DOUBLE` → `double_value`.
///
/// A missing or unknown type, or a type whose value field is absent, is inferred from the
/// value field that is set: more forgiving than the SDK (which would read the absent field's
/// default), because a server should not lose data a sloppy client sent. A `KeyValue` with no
/// value at all becomes `null`. Non-finite floats, which JSON cannot hold, also become `null`.
pub fn key_values_to_json(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter().map(|kv| (kv.key().to_owned(), decode_value(kv))).collect()
}

fn decode_value(kv: &KeyValue) -> Value {
    let declared = kv.r#type.and_then(|t| ValueType::try_from(t).ok());
    match (declared, &kv.value) {
        (_, None) => Value::Null,
        (Some(ValueType::String), Some(KvValue::StringValue(s))) => Value::String(s.clone()),
        (Some(ValueType::JsonString), Some(KvValue::StringValue(s))) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        (Some(ValueType::Bool), Some(KvValue::VarintValue(v))) => Value::Bool(*v != 0),
        (Some(ValueType::Uint), Some(KvValue::VarintValue(v))) => Value::from(*v as u64),
        (Some(ValueType::Int | ValueType::Llint), Some(KvValue::VarintValue(v))) => Value::from(*v),
        (Some(ValueType::Float), Some(KvValue::FloatValue(f))) => float(f64::from(*f)),
        (Some(ValueType::Double), Some(KvValue::DoubleValue(f))) => float(*f),
        (_, Some(value)) => infer(value),
    }
}

fn infer(value: &KvValue) -> Value {
    match value {
        KvValue::VarintValue(v) => Value::from(*v),
        KvValue::FloatValue(f) => float(f64::from(*f)),
        KvValue::DoubleValue(f) => float(*f),
        KvValue::StringValue(s) => Value::String(s.clone()),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn kv(key: &str, ty: Option<ValueType>, value: Option<KvValue>) -> KeyValue {
        KeyValue { key: Some(key.to_owned()), r#type: ty.map(|t| t as i32), value }
    }

    #[test]
    fn protocol_example_round_trips() {
        let ext = object(json!({
            "k_str": "v", "k_int": 42, "k_bool": true, "k_json": {"a": [1, 2]}, "k_dbl": 1.5
        }));
        let kvs = json_to_key_values(&ext);
        assert_eq!(kvs.len(), 5);
        let by_key = |k: &str| kvs.iter().find(|kv| kv.key() == k).unwrap().clone();
        assert_eq!(by_key("k_str"), kv("k_str", Some(ValueType::String), Some(KvValue::StringValue("v".into()))));
        assert_eq!(by_key("k_int"), kv("k_int", Some(ValueType::Int), Some(KvValue::VarintValue(42))));
        assert_eq!(by_key("k_bool"), kv("k_bool", Some(ValueType::Bool), Some(KvValue::VarintValue(1))));
        assert_eq!(
            by_key("k_json"),
            kv("k_json", Some(ValueType::JsonString), Some(KvValue::StringValue(r#"{"a":[1,2]}"#.into())))
        );
        assert_eq!(by_key("k_dbl"), kv("k_dbl", Some(ValueType::Double), Some(KvValue::DoubleValue(1.5))));
        assert_eq!(key_values_to_json(&kvs), ext);
    }

    /// The exact list the mock server (and so the SDK capture) puts on the wire decodes to the
    /// object PROTOCOL.md reports the SDK showed.
    #[test]
    fn decodes_the_sdk_capture() {
        let kvs = vec![
            kv("k_str", Some(ValueType::String), Some(KvValue::StringValue("v".into()))),
            kv("k_int", Some(ValueType::Int), Some(KvValue::VarintValue(42))),
            kv("k_bool", Some(ValueType::Bool), Some(KvValue::VarintValue(1))),
            kv("k_json", Some(ValueType::JsonString), Some(KvValue::StringValue(r#"{"a":[1,2]}"#.into()))),
            kv("k_dbl", Some(ValueType::Double), Some(KvValue::DoubleValue(1.5))),
        ];
        assert_eq!(
            Value::Object(key_values_to_json(&kvs)),
            json!({"k_str":"v","k_int":42,"k_bool":true,"k_json":{"a":[1,2]},"k_dbl":1.5})
        );
    }

    #[test]
    fn edge_values_encode_as_documented() {
        let ext = object(json!({
            "null": null,
            "big": u64::MAX,
            "neg": -7,
            "whole_float": 2.0,
            "huge_float": 1e300,
            "arr": [1, "x"],
            "f": false,
        }));
        let kvs = json_to_key_values(&ext);
        let get = |k: &str| kvs.iter().find(|kv| kv.key() == k).cloned();
        assert!(get("null").is_none());
        assert_eq!(get("big").unwrap().value, Some(KvValue::StringValue(u64::MAX.to_string())));
        assert_eq!(get("neg").unwrap().value, Some(KvValue::VarintValue(-7)));
        assert_eq!(get("whole_float").unwrap(), kv("whole_float", Some(ValueType::Int), Some(KvValue::VarintValue(2))));
        assert_eq!(get("huge_float").unwrap().value, Some(KvValue::DoubleValue(1e300)));
        assert_eq!(get("arr").unwrap().value, Some(KvValue::StringValue(r#"[1,"x"]"#.into())));
        assert_eq!(get("f").unwrap().value, Some(KvValue::VarintValue(0)));
    }

    #[test]
    fn decoding_is_forgiving() {
        let kvs = vec![
            // No type: inferred from the oneof.
            kv("s", None, Some(KvValue::StringValue("x".into()))),
            kv("i", None, Some(KvValue::VarintValue(3))),
            // Type and value disagree: the value wins.
            kv("mismatch", Some(ValueType::Bool), Some(KvValue::StringValue("y".into()))),
            // Not JSON: the raw string is kept.
            kv("bad_json", Some(ValueType::JsonString), Some(KvValue::StringValue("{nope".into()))),
            kv("uint", Some(ValueType::Uint), Some(KvValue::VarintValue(-1))),
            kv("llint", Some(ValueType::Llint), Some(KvValue::VarintValue(-1))),
            kv("float", Some(ValueType::Float), Some(KvValue::FloatValue(0.5))),
            kv("nan", Some(ValueType::Double), Some(KvValue::DoubleValue(f64::NAN))),
            kv("empty", Some(ValueType::String), None),
            kv("b", Some(ValueType::Bool), Some(KvValue::VarintValue(5))),
        ];
        assert_eq!(
            Value::Object(key_values_to_json(&kvs)),
            json!({
                "s": "x", "i": 3, "mismatch": "y", "bad_json": "{nope", "uint": u64::MAX,
                "llint": -1, "float": 0.5, "nan": null, "empty": null, "b": true,
            })
        );
    }
}
