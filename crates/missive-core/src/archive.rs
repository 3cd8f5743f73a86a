//! The message archive's domain: what a store hands back for any history listing (an
//! archived message, a conversation-list row), the message kinds history is filtered by,
//! and the id windows every history query reduces to.
//!
//! Message ids are time-ordered (`id >> 22` is the acceptance time in ms, see [`crate::id`]),
//! so one index on the id serves time filters, cursors and export hours alike: every
//! history query — a conversation's roaming page, an export hour, a legacy chat-log page —
//! is "ids in `[lo, hi)` in one direction, `limit + 1` rows". The REST request parsing and
//! the rendering of these rows live in `missive-api`; the tables in the stores.

use bytes::Bytes;

use crate::id::MsgId;

/// The largest id a signed 64-bit column holds: every [`IdWindow`] bound fits below it.
pub const MAX_STORED_ID: u64 = i64::MAX as u64;

/// One archived one-to-one message, as a store returns it for any history listing.
///
/// The payload is the encoded MSYNC `MessageBody` exactly as the recipient's copy was
/// delivered (its `from`/`to` names filled in), so history decodes like live delivery.
/// Recalled messages are gone from the archive; a user's own listings (roaming, the
/// conversation list) also leave out what that user may not see (`roam_ignore_users`,
/// one-way deletes). That filtering is the store's part of every query, which is what keeps
/// page sizes and `is_last` right; the app server's listings (export, legacy query) see
/// every archived message, as Easemob's do.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivedMessage {
    /// The message id: the recipient's copy's id, which both parties know it by.
    pub id: MsgId,
    /// Sender user id.
    pub from: String,
    /// Recipient user id.
    pub to: String,
    /// Unix ms when the server accepted it (`Meta.timestamp` on delivery).
    pub timestamp: u64,
    /// The encoded `MessageBody`.
    pub payload: Bytes,
}

/// The message types the SDK filters history by (`searchOptions.msgTypes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    Text,
    Image,
    Audio,
    Video,
    File,
    Location,
    Command,
    Custom,
    /// A combined ("merged") message: a TEXT content with `sub_type` COMBINE, or content
    /// type COMBINE.
    Combine,
}

impl MessageKind {
    pub const ALL: [MessageKind; 9] = [
        MessageKind::Text,
        MessageKind::Image,
        MessageKind::Audio,
        MessageKind::Video,
        MessageKind::File,
        MessageKind::Location,
        MessageKind::Command,
        MessageKind::Custom,
        MessageKind::Combine,
    ];

    /// The SDK's and the REST API's name for it.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Text => "txt",
            MessageKind::Image => "img",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::File => "file",
            MessageKind::Location => "loc",
            MessageKind::Command => "cmd",
            MessageKind::Custom => "custom",
            MessageKind::Combine => "combine",
        }
    }

    pub fn from_name(name: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The number stored in the archive's type column (1–9); never reused.
    pub fn code(self) -> u8 {
        match self {
            MessageKind::Text => 1,
            MessageKind::Image => 2,
            MessageKind::Audio => 3,
            MessageKind::Video => 4,
            MessageKind::File => 5,
            MessageKind::Location => 6,
            MessageKind::Command => 7,
            MessageKind::Custom => 8,
            MessageKind::Combine => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// A set of [`MessageKind`]s; empty means every kind (no filter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet(u16);

impl KindSet {
    pub fn insert(&mut self, kind: MessageKind) {
        self.0 |= 1 << kind.code();
    }

    /// No filter.
    pub fn is_all(&self) -> bool {
        self.0 == 0
    }

    pub fn contains(&self, kind: MessageKind) -> bool {
        self.is_all() || self.0 & (1 << kind.code()) != 0
    }

    /// The type-column codes to match (`kind IN (…)`); empty when there is no filter.
    pub fn codes(&self) -> Vec<u8> {
        MessageKind::ALL.into_iter().filter(|k| self.0 & (1 << k.code()) != 0).map(MessageKind::code).collect()
    }
}

impl FromIterator<MessageKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = MessageKind>>(iter: I) -> KindSet {
        let mut set = KindSet::default();
        for kind in iter {
            set.insert(kind);
        }
        set
    }
}

/// The order a listing walks the archive in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Newest first (the SDK's default `searchDirection: 'up'`, `is_positive: false`).
    Older,
    /// Oldest first (`searchDirection: 'down'`, `is_positive: true`).
    Newer,
}

/// A span of send times in Unix ms: `start_ms` inclusive, `end_ms` exclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ms: u64,
    /// `None`: no upper bound.
    pub end_ms: Option<u64>,
}

impl TimeRange {
    /// Every time.
    pub const ALL: TimeRange = TimeRange { start_ms: 0, end_ms: None };

    /// The ids sent within this span.
    pub fn ids(&self) -> IdWindow {
        let hi = self.end_ms.map_or(MAX_STORED_ID, |ms| MsgId::floor_at(ms).0.min(MAX_STORED_ID));
        IdWindow { lo: MsgId(MsgId::floor_at(self.start_ms).0.min(MAX_STORED_ID)), hi: MsgId(hi) }
    }
}

/// Ids `lo <= id < hi`: what every history query reduces to. Both bounds fit a signed
/// 64-bit column. Empty when `lo >= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdWindow {
    pub lo: MsgId,
    pub hi: MsgId,
}

impl IdWindow {
    pub fn is_empty(&self) -> bool {
        self.lo >= self.hi
    }

    pub fn contains(&self, id: MsgId) -> bool {
        self.lo <= id && id < self.hi
    }

    /// This window with the part at or before `cursor` (walking `direction`) cut off: the
    /// rest of a listing after its last page ended at `cursor`.
    pub fn after(self, cursor: Option<MsgId>, direction: Direction) -> IdWindow {
        match (cursor, direction) {
            (None, _) => self,
            (Some(c), Direction::Newer) => IdWindow { lo: self.lo.max(MsgId(c.0.saturating_add(1))), hi: self.hi },
            (Some(c), Direction::Older) => IdWindow { lo: self.lo, hi: self.hi.min(c) },
        }
    }
}

/// Which part of a conversation's archive to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub direction: Direction,
    /// The last message of the previous page (exclusive); `None` starts at the newest
    /// (`Older`) or the oldest (`Newer`) message.
    pub cursor: Option<MsgId>,
    pub time: TimeRange,
    pub kinds: KindSet,
    /// Only messages sent by this user.
    pub from: Option<String>,
    /// Page size, 1 to [`MAX_PULL`]. Stores fetch `limit + 1` rows so the renderer can
    /// tell whether this is the last page.
    pub limit: u32,
}

impl HistoryQuery {
    /// The ids this page may come from; walk it in `direction` and take `limit + 1` rows
    /// matching `kinds` and `from`.
    pub fn window(&self) -> IdWindow {
        self.time.ids().after(self.cursor, self.direction)
    }
}

/// One row of a conversation list, as a store assembles it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationSummary {
    /// The other user.
    pub peer: String,
    /// Messages from `peer` after the owner's read position (which a channel ack moves).
    pub unread: u32,
    /// When the owner pinned it (Unix ms), if pinned.
    pub pinned_at: Option<u64>,
    /// The newest message the owner can see in it; `None` only for a pinned conversation
    /// whose messages are all gone, listed when `needEmptySession=true`.
    pub latest: Option<ArchivedMessage>,
}

/// The order a list is in: every list is by `(key, peer)` descending — largest key first,
/// ties (conversations without messages, equal pin times) by peer name, also descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListOrder {
    /// By the latest message's id (latest activity first); 0 for no message.
    Activity,
    /// By pin time, latest first (`is_top=true`).
    Pinned,
}

impl ConversationSummary {
    /// This row's sort key in `order`.
    pub fn key(&self, order: ListOrder) -> u64 {
        match order {
            ListOrder::Activity => self.latest.as_ref().map_or(0, |m| m.id.0),
            ListOrder::Pinned => self.pinned_at.unwrap_or(0),
        }
    }

    /// Whether this row comes after the row `(key, peer)` (the last row of the previous
    /// page) in `order`, which is `(key, peer)` descending: `(own key, peer) < (key, peer)`.
    /// One backward scan of an index on `(owner, key, peer)` walks it; the page cursor a
    /// client sends back is exactly that pair.
    pub fn is_after(&self, key: u64, peer: &str, order: ListOrder) -> bool {
        (self.key(order), self.peer.as_str()) < (key, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_time_and_cursor() {
        let t = TimeRange { start_ms: 1_700_000_000_000, end_ms: Some(1_700_000_000_010) };
        let w = t.ids();
        assert_eq!((w.lo, w.hi), (MsgId::floor_at(1_700_000_000_000), MsgId::floor_at(1_700_000_000_010)));
        assert!(w.contains(MsgId::floor_at(1_700_000_000_009)) && !w.contains(w.hi));
        let mid = MsgId::floor_at(1_700_000_000_005);
        assert_eq!(w.after(Some(mid), Direction::Older), IdWindow { lo: w.lo, hi: mid });
        assert_eq!(w.after(Some(mid), Direction::Newer), IdWindow { lo: MsgId(mid.0 + 1), hi: w.hi });
        assert!(w.after(Some(MsgId(0)), Direction::Older).is_empty());
        let all = TimeRange::ALL.ids();
        assert_eq!((all.lo, all.hi), (MsgId(0), MsgId(MAX_STORED_ID)));
        assert!(all.after(Some(MsgId(u64::MAX)), Direction::Newer).is_empty());
    }

    #[test]
    fn kinds_have_stable_codes_and_names() {
        for k in MessageKind::ALL {
            assert_eq!((MessageKind::from_code(k.code()), MessageKind::from_name(k.name())), (Some(k), Some(k)));
        }
        assert_eq!(MessageKind::ALL.map(MessageKind::code), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(MessageKind::from_code(0), None);
        let set: KindSet = [MessageKind::Custom, MessageKind::Text].into_iter().collect();
        assert_eq!(set.codes(), vec![1, 8]);
        assert!(set.contains(MessageKind::Text) && !set.contains(MessageKind::Image));
        assert!(KindSet::default().is_all() && KindSet::default().contains(MessageKind::Image));
    }
}
