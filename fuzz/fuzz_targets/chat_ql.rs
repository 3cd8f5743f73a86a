//! Any text as the `ql`, `limit` and `cursor` of the legacy `GET /chatmessages`: parsing
//! never panics, a refused `ql` is Usergrid's 400 `query_parse` pointing inside the query,
//! and an accepted one means what its canonical spelling means (it parses back to itself)
//! and reduces to an id window within what a signed 64-bit column holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_api::RequestError;
use missive_api::chatlog::{ChatLogQuery, ChatLogRequest, MAX_LIMIT};
use missive_api::history::MAX_STORED_ID;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // One input, three parameters: split on the first two NULs.
    let mut parts = text.splitn(3, '\0');
    let ql = parts.next().unwrap_or("");
    let limit = parts.next();
    let cursor = parts.next();
    match ChatLogQuery::parse(ql) {
        Ok(q) => assert_eq!(ChatLogQuery::parse(&q.to_ql()), Ok(q)),
        Err(RequestError::QueryParse { token, column }) => {
            assert!(column <= ql.len(), "column {column} past the end of {ql:?}");
            assert!(!token.is_empty());
        }
        Err(other) => panic!("ql {ql:?} refused with {other:?}"),
    }
    match ChatLogRequest::parse(Some(ql), limit, cursor) {
        Ok(r) => {
            assert!((1..=MAX_LIMIT).contains(&r.limit));
            let w = r.window();
            assert!(w.lo.0 <= MAX_STORED_ID && w.hi.0 <= MAX_STORED_ID);
        }
        Err(e) => assert_eq!(e.status(), 400),
    }
});
