//! [`CallbackRule`]: where an app wants to hear about its messages, and which ones.
//!
//! Easemob configures post-send callbacks per app in its console; the rule-management REST
//! its console uses (seen in captured traffic, easemob-api.md §6.3) names the same choices
//! `msgTypes` (`chat`, `chat_offline`), `interested` (conversation and event kinds),
//! `acceptRestMessage` and `actionParams.secret`. A rule here holds those choices in one
//! typed value; [`CallbackRule::wants`] is the only place that decides whether an event
//! goes to a rule.

use serde::{Deserialize, Serialize};

use super::policy::RetryPolicy;
use crate::event::{ChatType, MessageEvent, Origin};

/// The events a rule can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackEvent {
    /// Every accepted message (`eventType: chat`).
    Chat,
    /// Once per recipient that had no device online (`eventType: chat_offline`).
    ChatOffline,
    /// A message was recalled (`chat_type: recall`).
    Recall,
    /// A read receipt (`chat_type: read_ack`).
    ReadAck,
}

impl CallbackEvent {
    pub const ALL: [CallbackEvent; 4] =
        [CallbackEvent::Chat, CallbackEvent::ChatOffline, CallbackEvent::Recall, CallbackEvent::ReadAck];

    pub fn as_str(self) -> &'static str {
        match self {
            CallbackEvent::Chat => "chat",
            CallbackEvent::ChatOffline => "chat_offline",
            CallbackEvent::Recall => "recall",
            CallbackEvent::ReadAck => "read_ack",
        }
    }

    pub fn parse(s: &str) -> Option<CallbackEvent> {
        CallbackEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Why a rule cannot be created; each names the field, for the CLI and the admin API.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RuleError {
    #[error("url must be an absolute http:// or https:// URL")]
    Url,
    #[error("secret must be 1 to 128 printable characters")]
    Secret,
    #[error("name must be 1 to 32 characters of a-z, A-Z, 0-9, '_' and '-'")]
    Name,
    #[error("unknown event {0:?} (expected chat, chat_offline, recall, read_ack)")]
    Event(String),
    #[error("unknown message type {0:?} (expected txt, img, audio, video, file, loc, cmd, custom)")]
    MessageType(String),
    #[error("unknown chat type {0:?} (expected chat, groupchat, chatroom)")]
    ChatType(String),
    #[error("a rule needs at least one event")]
    NoEvents,
}

/// A post-send callback rule of one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRule {
    /// Stable id (a UUID), what `missive app callback remove` takes.
    pub id: String,
    /// Unique per app; Easemob's rule-management API addresses rules by name.
    pub name: String,
    pub url: String,
    /// The signing secret: `security = md5_hex(callId + secret + timestamp)`.
    pub secret: String,
    pub events: Vec<CallbackEvent>,
    /// Message types (`txt`, `img`, …) of `chat`/`chat_offline` events; empty means all.
    /// Recalls and receipts have no type and are not filtered by it.
    pub msg_types: Vec<String>,
    /// Conversation kinds; empty means all.
    pub chat_types: Vec<ChatType>,
    /// Whether messages sent through the REST API are reported too (Easemob's
    /// `acceptRestMessage`, "REST 消息是否需要").
    pub include_rest: bool,
    /// A disabled rule is kept but matches nothing.
    pub enabled: bool,
    /// Retries after Easemob's immediate one, and whether to keep what fails
    /// (exception storage). Default: Easemob's behaviour, failures dropped.
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// What `missive app callback add` and the admin API accept; `None` means the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCallbackRule {
    pub url: String,
    pub name: Option<String>,
    /// Generated (32 hex characters) when absent, as Easemob generates one per rule.
    pub secret: Option<String>,
    /// Default: all four.
    pub events: Option<Vec<CallbackEvent>>,
    /// Default: all types.
    pub msg_types: Option<Vec<String>>,
    /// Default: all chat types.
    pub chat_types: Option<Vec<ChatType>>,
    /// Default: `true`.
    pub include_rest: Option<bool>,
    /// Default: no backoff, failures dropped.
    pub retry: Option<RetryPolicy>,
}

impl CallbackRule {
    /// Validates `new` into a rule with the given id (the caller's UUID).
    pub fn create(new: NewCallbackRule, id: &str) -> Result<CallbackRule, RuleError> {
        check_url(&new.url)?;
        let secret = match new.secret {
            Some(s) => {
                if s.is_empty() || s.chars().count() > 128 || s.chars().any(char::is_control) {
                    return Err(RuleError::Secret);
                }
                s
            }
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let name = new.name.unwrap_or_else(|| id.chars().filter(|c| *c != '-').take(32).collect());
        if name.is_empty()
            || name.chars().count() > 32
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(RuleError::Name);
        }
        // In one canonical order, each once, whatever order and repeats were given.
        let given = new.events.unwrap_or_else(|| CallbackEvent::ALL.to_vec());
        let events: Vec<CallbackEvent> = CallbackEvent::ALL.into_iter().filter(|e| given.contains(e)).collect();
        if events.is_empty() {
            return Err(RuleError::NoEvents);
        }
        let msg_types = new.msg_types.unwrap_or_default();
        if let Some(bad) = msg_types.iter().find(|t| !missive_api::MESSAGE_TYPES.contains(&t.as_str())) {
            return Err(RuleError::MessageType(bad.clone()));
        }
        Ok(CallbackRule {
            id: id.to_owned(),
            name,
            url: new.url,
            secret,
            events,
            msg_types,
            chat_types: new.chat_types.unwrap_or_default(),
            include_rest: new.include_rest.unwrap_or(true),
            enabled: true,
            retry: new.retry.unwrap_or_default(),
        })
    }

    /// Whether this rule is to hear about `event` as `which`.
    pub fn wants(&self, event: &MessageEvent, which: CallbackEvent) -> bool {
        self.enabled
            && self.events.contains(&which)
            && (self.include_rest || event.origin != Origin::Rest)
            && (self.chat_types.is_empty() || self.chat_types.contains(&event.chat_type))
            && match event.body_type() {
                Some(t) => self.msg_types.is_empty() || self.msg_types.iter().any(|m| m == t),
                None => true,
            }
    }
}

/// A comma-separated list (`chat,chat_offline`) of events, as the CLI takes it.
pub fn parse_events(list: &str) -> Result<Vec<CallbackEvent>, RuleError> {
    split(list).map(|s| CallbackEvent::parse(s).ok_or_else(|| RuleError::Event(s.to_owned()))).collect()
}

/// A comma-separated list of chat types (`chat,groupchat`).
pub fn parse_chat_types(list: &str) -> Result<Vec<ChatType>, RuleError> {
    split(list).map(|s| ChatType::parse(s).ok_or_else(|| RuleError::ChatType(s.to_owned()))).collect()
}

/// A comma-separated list of message types (`txt,img`); checked by [`CallbackRule::create`].
pub fn parse_types(list: &str) -> Vec<String> {
    split(list).map(str::to_owned).collect()
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// An absolute `http`/`https` URL with a host. Shared with pre-send rules and the webhook
/// push provider.
pub(crate) fn check_url(url: &str) -> Result<(), RuleError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(RuleError::Url),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::tests::rest_event;

    fn new(url: &str) -> NewCallbackRule {
        NewCallbackRule { url: url.into(), ..Default::default() }
    }

    #[test]
    fn defaults_are_all_events_all_types_rest_included() {
        let r = CallbackRule::create(new("https://example.com/cb"), "0d4c-9a").unwrap();
        assert_eq!(r.events, CallbackEvent::ALL);
        assert!(r.msg_types.is_empty() && r.chat_types.is_empty() && r.include_rest && r.enabled);
        assert_eq!(r.secret.len(), 32, "a generated secret");
        assert_eq!(r.name, "0d4c9a");
    }

    #[test]
    fn bad_input_names_the_field() {
        for url in ["", "ftp://x/", "/relative", "http://"] {
            assert_eq!(CallbackRule::create(new(url), "i"), Err(RuleError::Url), "{url}");
        }
        let with = |f: fn(&mut NewCallbackRule)| {
            let mut n = new("http://h/");
            f(&mut n);
            CallbackRule::create(n, "i")
        };
        assert_eq!(with(|n| n.secret = Some(String::new())), Err(RuleError::Secret));
        assert_eq!(with(|n| n.secret = Some("a\nb".into())), Err(RuleError::Secret));
        assert_eq!(with(|n| n.name = Some("名字".into())), Err(RuleError::Name));
        assert_eq!(with(|n| n.events = Some(vec![])), Err(RuleError::NoEvents));
        assert_eq!(with(|n| n.msg_types = Some(vec!["gif".into()])), Err(RuleError::MessageType("gif".into())));
        assert_eq!(parse_events("chat, nope"), Err(RuleError::Event("nope".into())));
        assert_eq!(parse_events("chat,read_ack").unwrap(), [CallbackEvent::Chat, CallbackEvent::ReadAck]);
        assert_eq!(parse_chat_types("groupchat,x"), Err(RuleError::ChatType("x".into())));
        assert_eq!(parse_types(" txt , img,"), ["txt", "img"]);
    }

    #[test]
    fn matching_follows_every_filter() {
        let txt = rest_event(json!({"from": "a", "to": ["b"], "type": "txt", "body": {"msg": "m"}}), 1);
        let mut sdk_txt = txt.clone();
        sdk_txt.origin = Origin::Sdk;
        let mut r = CallbackRule::create(new("http://h/"), "i").unwrap();
        assert!(r.wants(&txt, CallbackEvent::Chat));
        r.msg_types = vec!["img".into()];
        assert!(!r.wants(&txt, CallbackEvent::Chat));
        r.msg_types = vec!["img".into(), "txt".into()];
        assert!(r.wants(&txt, CallbackEvent::Chat));
        r.include_rest = false;
        assert!(!r.wants(&txt, CallbackEvent::Chat) && r.wants(&sdk_txt, CallbackEvent::Chat));
        r.chat_types = vec![ChatType::GroupChat];
        assert!(!r.wants(&sdk_txt, CallbackEvent::Chat));
        r.chat_types = vec![];
        r.events = vec![CallbackEvent::ChatOffline];
        assert!(!r.wants(&sdk_txt, CallbackEvent::Chat) && r.wants(&sdk_txt, CallbackEvent::ChatOffline));
        r.enabled = false;
        assert!(!r.wants(&sdk_txt, CallbackEvent::ChatOffline));
    }
}
