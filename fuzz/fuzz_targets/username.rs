//! Any user id from a request: validation never panics, and what it accepts is a legal,
//! lower-case id of at most 64 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_core::model::normalize_username;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(name) = normalize_username(s) {
        assert!(!name.is_empty() && name.len() <= 64);
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b)));
    }
});
