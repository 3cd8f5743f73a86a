//! Recall (easemob-api.md §4, "撤回消息"): `POST /messages/msg_recall` (one message,
//! [`RecallRequest`]) and `POST /messages/recall` (a batch, [`BatchRecall`]), validated,
//! and the answers both render.
//!
//! A recall item is `{msg_id, to, chat_type, from?, force?}`; `msg_id` and `to` may be
//! numbers. Missive stores one-to-one messages only, so an item naming another
//! `chat_type`, or an id that cannot be one of ours, is a message not found (403). What
//! needs the store — whether the message exists and was sent to `to` — stays in the
//! server, which refuses with the same [`RecallRefusal`]s.

use missive_core::id::MsgId;
use serde_json::{Map, Value, json};

pub use crate::error::RecallRefusal;
use crate::error::RequestError;
use crate::send::opt_bool;

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// A validated recall item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecallRequest {
    /// The message, as sent (echoed in the answer).
    pub msg_id: String,
    pub id: MsgId,
    /// Lower-cased recipient.
    pub to: String,
    /// Lower-cased sender; `admin` when the item names none.
    pub from: String,
    /// Recall even past the recall window.
    pub force: bool,
}

/// A text field: a string or a number; absent, `null` and `""` are `None`.
fn text(item: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(RequestError::InvalidBody),
    }
}

impl RecallRequest {
    /// Validates one item: the fields in order (`msg_id`, `to`, `chat_type`, `from`,
    /// `force`), then whether it can name a stored one-to-one message.
    pub fn parse(item: &Value) -> Result<RecallRequest> {
        let item = item.as_object().ok_or(RequestError::InvalidBody)?;
        let refuse = RequestError::Recall;
        let msg_id = text(item, "msg_id")?.ok_or(refuse(RecallRefusal::MissingMsgId))?;
        let to = text(item, "to")?.ok_or(refuse(RecallRefusal::MissingTo))?.to_ascii_lowercase();
        let chat_type = text(item, "chat_type")?.ok_or(refuse(RecallRefusal::MissingChatType))?;
        let from = text(item, "from")?.map(|f| f.to_ascii_lowercase()).unwrap_or_else(|| "admin".into());
        let force = opt_bool(item.get("force"))?;
        let Ok(id) = msg_id.parse::<u64>().map(MsgId) else {
            return Err(refuse(RecallRefusal::NotFound));
        };
        if chat_type != "chat" {
            return Err(refuse(RecallRefusal::NotFound));
        }
        Ok(RecallRequest { msg_id, id, to, from, force })
    }

    /// The recall window: a message older than `window_ms` at `now_ms` is recalled only
    /// with `force`.
    pub fn check_window(&self, now_ms: u64, window_ms: u64) -> Result<()> {
        if !self.force && now_ms.saturating_sub(self.id.unix_ms()) > window_ms {
            return Err(RequestError::Recall(RecallRefusal::TooLate));
        }
        Ok(())
    }

    /// The answer for a recalled message (`data` of the single recall, an element of the
    /// batch's `msgs`).
    pub fn recalled(&self) -> Value {
        json!({"recalled": "yes", "chattype": "chat", "from": self.from, "to": self.to, "msg_id": self.msg_id})
    }
}

/// One item of a batch recall: a malformed item does not fail the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchItem {
    /// `msg_id` as the failure report shows it: the string, or any other JSON as text.
    pub shown_id: Option<String>,
    pub request: Result<RecallRequest>,
}

impl BatchItem {
    /// The batch's answer for an item not recalled, with why.
    pub fn failed(&self, why: &str) -> Value {
        json!({"msg_id": self.shown_id, "recalled": why})
    }
}

/// `POST /messages/recall`: `{"msgs": [...]}`, every item an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecall {
    pub items: Vec<BatchItem>,
}

impl BatchRecall {
    /// Validates the batch's shape; each item's own refusal is kept in its [`BatchItem`].
    pub fn parse(body: &Value) -> Result<BatchRecall> {
        let msgs = body.get("msgs").and_then(Value::as_array).ok_or(RequestError::InvalidBody)?;
        let items = msgs
            .iter()
            .map(|item| {
                let obj = item.as_object().ok_or(RequestError::InvalidBody)?;
                let shown_id =
                    obj.get("msg_id").map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
                Ok(BatchItem { shown_id, request: RecallRequest::parse(item) })
            })
            .collect::<Result<_>>()?;
        Ok(BatchRecall { items })
    }

    /// The batch's answer: `{"msgs": [...]}`.
    pub fn answer(results: Vec<Value>) -> Value {
        json!({ "msgs": results })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: u64 = 1_234_567_890_123_456_789;

    fn refused(r: RecallRefusal) -> Result<RecallRequest> {
        Err(RequestError::Recall(r))
    }

    #[test]
    fn items_are_checked_field_by_field() {
        let req =
            RecallRequest::parse(&json!({"msg_id": ID, "to": "Bob", "chat_type": "chat", "from": "Ann"})).unwrap();
        assert_eq!(
            req,
            RecallRequest { msg_id: ID.to_string(), id: MsgId(ID), to: "bob".into(), from: "ann".into(), force: false }
        );
        assert_eq!(
            req.recalled(),
            json!({"recalled": "yes", "chattype": "chat", "from": "ann", "to": "bob", "msg_id": ID.to_string()})
        );
        let from_admin = RecallRequest::parse(&json!({"msg_id": "1", "to": 7, "chat_type": "chat", "force": true}));
        assert_eq!(from_admin.map(|r| (r.from, r.to, r.force)), Ok(("admin".into(), "7".into(), true)));

        let p = |v: Value| RecallRequest::parse(&v);
        assert_eq!(p(json!({"to": "b", "chat_type": "chat"})), refused(RecallRefusal::MissingMsgId));
        assert_eq!(p(json!({"msg_id": "1", "to": "", "chat_type": "chat"})), refused(RecallRefusal::MissingTo));
        assert_eq!(p(json!({"msg_id": "1", "to": "b"})), refused(RecallRefusal::MissingChatType));
        assert_eq!(p(json!({"msg_id": [1], "to": "b", "chat_type": "chat"})), Err(RequestError::InvalidBody));
        assert_eq!(
            p(json!({"msg_id": "1", "to": "b", "chat_type": "chat", "from": {}})),
            Err(RequestError::InvalidBody)
        );
        // A field of the wrong type is found before an id that names nothing.
        assert_eq!(
            p(json!({"msg_id": "x", "to": "b", "chat_type": "chat", "force": 1})),
            Err(RequestError::InvalidBody)
        );
        assert_eq!(p(json!({"msg_id": "x", "to": "b", "chat_type": "chat"})), refused(RecallRefusal::NotFound));
        assert_eq!(p(json!({"msg_id": "1", "to": "b", "chat_type": "groupchat"})), refused(RecallRefusal::NotFound));
        assert_eq!(p(json!([])), Err(RequestError::InvalidBody));
    }

    #[test]
    fn the_window_yields_to_force() {
        let mut req = RecallRequest::parse(&json!({"msg_id": ID, "to": "b", "chat_type": "chat"})).unwrap();
        let sent = req.id.unix_ms();
        assert_eq!(req.check_window(sent + 120_000, 120_000), Ok(()));
        assert_eq!(req.check_window(sent + 120_001, 120_000), Err(RequestError::Recall(RecallRefusal::TooLate)));
        // A clock behind the id is within the window.
        assert_eq!(req.check_window(0, 0), Ok(()));
        req.force = true;
        assert_eq!(req.check_window(u64::MAX, 0), Ok(()));
    }

    #[test]
    fn batches_keep_per_item_refusals() {
        let batch = BatchRecall::parse(&json!({"msgs": [
            {"msg_id": "1", "to": "b", "chat_type": "chat"},
            {"msg_id": 2.5, "to": "b", "chat_type": "chat"},
            {"msg_id": null},
            {},
        ]}))
        .unwrap();
        let shown: Vec<_> = batch.items.iter().map(|i| i.shown_id.as_deref()).collect();
        assert_eq!(shown, [Some("1"), Some("2.5"), Some("null"), None]);
        assert!(batch.items[0].request.is_ok());
        assert_eq!(batch.items[1].request, refused(RecallRefusal::NotFound));
        assert_eq!(batch.items[3].failed("not_found msg"), json!({"msg_id": null, "recalled": "not_found msg"}));
        for bad in [json!({}), json!({"msgs": {}}), json!({"msgs": [1]}), json!([])] {
            assert_eq!(BatchRecall::parse(&bad), Err(RequestError::InvalidBody), "{bad}");
        }
        assert_eq!(BatchRecall::answer(vec![json!(1)]), json!({"msgs": [1]}));
    }
}
