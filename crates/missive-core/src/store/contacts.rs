//! Contacts (好友), pending contact invitations and blocklists of an app's users.
//!
//! A contact relation is mutual, as Easemob's is: adding `a`–`b` makes each the other's
//! contact, removing it removes both directions, and both users' **roster versions** move
//! (SDK 5 keeps the version it synced last and skips the roster download while it is
//! unchanged). A blocklist is one-way and independent of contacts: a blocked contact stays a
//! contact. Deleting a user (`UserStore::delete_user`) removes every row naming them — as
//! owner, contact, requester, target or blocked user — and moves the roster version of every
//! user who had them as a contact.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;

/// One entry of a user's contact list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The contact's user id.
    pub peer: String,
    /// The owner's note about the contact (`setContactRemark`); `None` until one is set.
    pub remark: Option<String>,
    /// When the relation was made (ms).
    pub created: i64,
    /// When the relation or its remark last changed (ms).
    pub updated: i64,
}

#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Makes `a` and `b` contacts of each other, clears pending invitations between them in
    /// either direction, and moves both roster versions. Returns false when they already were
    /// contacts (then nothing changes).
    async fn add_contact(&self, app: Uuid, a: &str, b: &str, now_ms: i64) -> StoreResult<bool>;
    /// Removes the relation in both directions and moves both roster versions. Returns false
    /// when they were not contacts.
    async fn remove_contact(&self, app: Uuid, a: &str, b: &str, now_ms: i64) -> StoreResult<bool>;
    /// `owner`'s contacts in name order, those after `after` (exclusive), at most `limit`.
    async fn contacts(&self, app: Uuid, owner: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Contact>>;
    /// How many contacts `owner` has.
    async fn contact_count(&self, app: Uuid, owner: &str) -> StoreResult<u64>;
    /// Sets `owner`'s remark about the contact `peer` and moves `owner`'s roster version.
    /// Returns false when `peer` is not a contact of `owner`.
    async fn set_remark(&self, app: Uuid, owner: &str, peer: &str, remark: &str, now_ms: i64) -> StoreResult<bool>;
    /// Records an invitation `from` → `to` with its reason, replacing an older one.
    async fn add_request(&self, app: Uuid, from: &str, to: &str, reason: &str, now_ms: i64) -> StoreResult<()>;
    /// Removes a pending invitation `from` → `to` and returns its reason, if there was one.
    async fn take_request(&self, app: Uuid, from: &str, to: &str) -> StoreResult<Option<String>>;
    /// Adds `peers` to `owner`'s blocklist (already blocked ones stay as they are).
    async fn block(&self, app: Uuid, owner: &str, peers: &[String], now_ms: i64) -> StoreResult<()>;
    /// Removes `peers` from `owner`'s blocklist; returns how many were on it.
    async fn unblock(&self, app: Uuid, owner: &str, peers: &[String]) -> StoreResult<u64>;
    /// `owner`'s blocklist in name order, those after `after` (exclusive), at most `limit`.
    async fn blocklist(&self, app: Uuid, owner: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<String>>;
    /// How many users `owner` has blocked.
    async fn blocked_count(&self, app: Uuid, owner: &str) -> StoreResult<u64>;
    /// Whether `owner` has blocked `sender`: read on every SDK message, so it is one
    /// primary-key lookup.
    async fn is_blocked(&self, app: Uuid, owner: &str, sender: &str) -> StoreResult<bool>;
    /// `owner`'s roster version: 0 for a user whose contacts never changed, otherwise at
    /// least the time (ms) of the last change, and larger after every change — also across
    /// the deletion and re-creation of a user with the same name.
    async fn roster_version(&self, app: Uuid, owner: &str) -> StoreResult<i64>;
}
