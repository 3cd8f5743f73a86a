//! Opaque page cursors: where the next page of a listing starts.
//!
//! A cursor names the last item a page returned — a number (a message id, or a pin time)
//! and, where several items can share that number, a user name to break the tie — so the
//! next page is "everything after this item in the listing's order", stable while items
//! are added elsewhere. Each listing has its own [`CursorKind`], written into the token, so
//! a cursor from one listing is refused by another instead of paging it from a wrong place.
//!
//! The token is URL-safe base64 without padding: the Web SDK pastes cursors into query
//! strings without escaping them (`user_channels/list?&limit=20&cursor=…`), so `+`, `/` and
//! `=` must never appear.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Which listing a cursor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorKind {
    /// `GET /sdk/user/{u}/user_channels/list`: conversations by latest activity or pin time.
    Conversations,
    /// `GET /chatmessages?ql=…`: chat-log records by message id.
    ChatLog,
    /// `GET /user/{u}/contacts`: a user's contacts by name (key 0).
    Contacts,
    /// `GET /users/{u}/blocks/users`: a user's blocklist by name (key 0).
    Blocklist,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            CursorKind::Conversations => "c1",
            CursorKind::ChatLog => "q1",
            CursorKind::Contacts => "r1",
            CursorKind::Blocklist => "b1",
        }
    }
}

/// The last item of a page: the next page starts right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCursor {
    /// The listing's sort key of that item.
    pub key: u64,
    /// The tie-breaker (a user name), empty where the key alone is unique.
    pub name: String,
}

/// Longest token [`PageCursor::decode`] looks at: a tag, a u64 and a 64-byte user name fit
/// in far less; anything longer is not ours and is refused before decoding.
const MAX_TOKEN: usize = 160;

impl PageCursor {
    pub fn new(key: u64, name: impl Into<String>) -> PageCursor {
        PageCursor { key, name: name.into() }
    }

    /// The token handed to the client.
    pub fn encode(&self, kind: CursorKind) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", kind.tag(), self.key, self.name))
    }

    /// The cursor a client sent back, if it is one of ours for this listing.
    pub fn decode(token: &str, kind: CursorKind) -> Option<PageCursor> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let mut parts = text.splitn(3, ':');
        if parts.next()? != kind.tag() {
            return None;
        }
        let key = parts.next()?;
        // `u64::from_str` accepts a leading `+`; only the digits `encode` writes are ours.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(PageCursor { key: key.parse().ok()?, name: parts.next()?.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn round_trips(key: u64, name in "[a-z0-9_.:-]{0,64}") {
            for kind in [CursorKind::Conversations, CursorKind::ChatLog, CursorKind::Contacts, CursorKind::Blocklist] {
                let c = PageCursor::new(key, name.clone());
                let token = c.encode(kind);
                prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                prop_assert_eq!(PageCursor::decode(&token, kind), Some(c));
            }
        }

        #[test]
        fn another_listings_cursor_is_refused(key: u64, name in "[a-z0-9]{0,8}") {
            let token = PageCursor::new(key, name).encode(CursorKind::ChatLog);
            prop_assert_eq!(PageCursor::decode(&token, CursorKind::Conversations), None);
        }

        #[test]
        fn whatever_decodes_means_one_position(token in "[A-Za-z0-9_-]{0,40}|.{0,200}") {
            let k = CursorKind::Conversations;
            if let Some(c) = PageCursor::decode(&token, k) {
                prop_assert_eq!(PageCursor::decode(&c.encode(k), k), Some(c));
            }
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let k = CursorKind::ChatLog;
        let token = |raw: &str| URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(PageCursor::decode(&token("q1:7:bob"), k), Some(PageCursor::new(7, "bob")));
        assert_eq!(PageCursor::decode(&token("q1:7:"), k), Some(PageCursor::new(7, "")));
        for raw in ["", "q1", "q1:", "q1::bob", "q1:+7:bob", "q1:-7:", "q1:7", "c1:7:bob", "q1:99999999999999999999:"] {
            assert_eq!(PageCursor::decode(&token(raw), k), None, "{raw:?}");
        }
        assert_eq!(PageCursor::decode("not base64!", k), None);
        assert_eq!(PageCursor::decode(&"A".repeat(MAX_TOKEN + 1), k), None);
    }
}
