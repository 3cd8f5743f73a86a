//! The message archive: every one-to-one chat message, kept for both parties apart from
//! delivery state (queues and cursors), and each user's conversation list over it.
//!
//! **Written with the queues.** Archive rows come in [`EnqueueRequest::archive`] and are
//! committed in the transaction that queues the message, so an accepted message is in
//! history exactly when it is in a queue (online-only messages are in neither). Recalling a
//! message (`QueueStore::recall`) removes it from the archive in the same transaction, and
//! deleting a user (`UserStore::delete_user`) hides that user's side of every conversation.
//!
//! **One row per message, two sides.** A row names its two parties and which of them may no
//! longer see it (`roam_ignore_users`, one-way history deletes): a user's listings leave out
//! what that user may not see, the app server's listings ([`HistoryStore::chat_log`]) see
//! every archived message, as Easemob's export does.
//!
//! **Conversations.** Each user has one row per peer: the newest message they can see in
//! it (the list's activity order), their read position (which a channel ack from any of
//! their devices moves) and the point up to which they deleted the conversation. Unread =
//! messages from the peer after the read position that the user can still see.
//!
//! [`EnqueueRequest::archive`]: super::EnqueueRequest::archive

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::StoreResult;
use crate::archive::{ArchivedMessage, ConversationSummary, Direction, HistoryQuery, IdWindow, ListOrder, MessageKind};
use crate::id::MsgId;

/// One message to archive, committed with the queue row of the same id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewArchived {
    pub app_id: Uuid,
    /// The recipient's copy's id.
    pub id: MsgId,
    pub from: String,
    pub to: String,
    /// Unix ms when accepted (the delivered `Meta.timestamp`).
    pub created: i64,
    pub kind: MessageKind,
    /// The encoded `MessageBody` as the recipient's copy was delivered.
    pub payload: Bytes,
    /// `roam_ignore_users` named the sender: it is not in the sender's history.
    pub hidden_from_sender: bool,
    /// `roam_ignore_users` named the recipient.
    pub hidden_from_recipient: bool,
    /// Whether it moves the parties' conversation lists (REST sends may be kept out:
    /// `history.rest_in_conversations`). Only a party that is a registered user has a list:
    /// a REST send's `from` need not be one.
    pub listed: bool,
}

/// Which page of a conversation list to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationQuery {
    pub order: ListOrder,
    /// The last row of the previous page: `(key, peer)` in `order` (see
    /// [`ConversationSummary::is_after`]).
    pub after: Option<(u64, String)>,
    /// Also pinned conversations whose messages are all gone.
    pub include_empty: bool,
    /// Rows to skip after `after` (the page-numbered legacy list).
    pub offset: u32,
    /// Rows to return (callers ask for one more than they show).
    pub limit: u32,
}

/// Which of a conversation's messages a one-way history delete hides from its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistorySelection {
    All,
    Ids(Vec<MsgId>),
    /// Every message with an id in the window.
    Window(IdWindow),
}

/// A page of the app's whole archive (hourly export, legacy chat-log query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatLogQuery {
    pub window: IdWindow,
    pub direction: Direction,
    /// Only messages sent by this user.
    pub from: Option<String>,
    /// Only messages sent to this user.
    pub to: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// `owner`'s conversation with `peer` (both directions) in `query`'s window and order,
    /// leaving out what `owner` may not see: at most `query.limit + 1` rows.
    async fn history(
        &self,
        app: Uuid,
        owner: &str,
        peer: &str,
        query: &HistoryQuery,
    ) -> StoreResult<Vec<ArchivedMessage>>;

    /// `owner`'s conversations in `query.order`, each with its newest visible message and
    /// unread count. Conversations with no visible message left are listed only when
    /// pinned and `include_empty`.
    async fn conversations(
        &self,
        app: Uuid,
        owner: &str,
        query: &ConversationQuery,
    ) -> StoreResult<Vec<ConversationSummary>>;

    /// Moves `owner`'s read position in the conversation with `peer` up to `upto` (never
    /// back). A conversation `owner` does not have is left alone.
    async fn mark_read(&self, app: Uuid, owner: &str, peer: &str, upto: MsgId) -> StoreResult<()>;

    /// Pins (`Some(at)`, Unix ms) or unpins `owner`'s conversation with `peer`; returns the
    /// pin time now in force, `None` when `owner` has no such conversation or it is unpinned.
    async fn pin_conversation(&self, app: Uuid, owner: &str, peer: &str, at: Option<u64>) -> StoreResult<Option<u64>>;

    /// One-way delete of everything before `upto` — an id the caller just took from its
    /// generator, so every message accepted before the delete is below it: the conversation
    /// leaves `owner`'s list (it comes back with the next message, counting only messages
    /// after the delete as unread); with `with_history`, `owner`'s side of its history is
    /// hidden too. The peer sees no change.
    async fn delete_conversation(
        &self,
        app: Uuid,
        owner: &str,
        peer: &str,
        upto: MsgId,
        with_history: bool,
    ) -> StoreResult<()>;

    /// Hides the selected messages of the conversation from `owner` (the peer keeps them);
    /// returns how many were newly hidden.
    async fn hide_history(&self, app: Uuid, owner: &str, peer: &str, which: &HistorySelection) -> StoreResult<u64>;

    /// The app's archive in `query.window`, whoever may see it: at most `query.limit` rows.
    async fn chat_log(&self, app: Uuid, query: &ChatLogQuery) -> StoreResult<Vec<ArchivedMessage>>;

    /// Deletes at most `max_rows` archived messages older than `floor` (and conversation rows
    /// left without messages); returns rows removed. Callers repeat while it returns
    /// `max_rows`, so no single write holds the store for long.
    async fn sweep_history(&self, floor: MsgId, max_rows: u32) -> StoreResult<u64>;
}
