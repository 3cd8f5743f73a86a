//! Post-send callbacks (发送后回调, easemob-api.md §6.3): after a message is accepted, the
//! app server hears about it, signed, at least once.
//!
//! The flow, with the server's parts in brackets:
//!
//! 1. [after the commit] [`plan`] picks, for one [`MessageEvent`], the rules that want it
//!    and builds each one's payload ([`payload`]); [the store writes them to the outbox in
//!    the same transaction as the message, so a crash cannot lose one];
//! 2. [a dispatcher claims due outbox entries] and hands each to [`sender::CallbackSender::deliver`], which
//!    signs it with the rule's current secret and posts it, retrying as [`policy`] says
//!    (Easemob's one immediate retry, then an optional backoff schedule), never while the
//!    rule's endpoint is banned;
//! 3. a delivery that runs out of attempts becomes an exception record ([`exceptions`]),
//!    listed by `GET /callbacks/storage/info` and re-sent by `POST /callbacks/storage/retry`.
//!
//! # Layout
//!
//! - [`rule`]: [`CallbackRule`] and what it matches.
//! - [`payload`]: the exact §6.3 body, `callId`, `security`.
//! - [`policy`]: retry, backoff and ban as an I/O-free state machine.
//! - [`sender`]: the HTTP side of one delivery.
//! - [`exceptions`]: exception-storage date keys and the storage endpoints' JSON.

pub mod exceptions;
pub mod payload;
pub mod policy;
pub mod rule;
pub mod sender;

use serde_json::{Map, Value};

pub use rule::{CallbackEvent, CallbackRule, NewCallbackRule, RuleError};

use crate::event::{EventKind, MessageEvent};

/// One callback to send: which rule, and the unsigned payload (signed at send time with the
/// rule's secret, so a rotated secret applies to what is still queued).
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedCallback {
    pub rule_id: String,
    pub event: CallbackEvent,
    pub payload: Map<String, Value>,
}

/// The callbacks one event causes: `chat` (or `recall` / `read_ack`) for every rule that
/// wants it, and `chat_offline` once per recipient in `offline` (members, for groups) for the
/// rules that want those. `host` is this server's name for the payload's `host` field.
pub fn plan(rules: &[CallbackRule], event: &MessageEvent, offline: &[String], host: &str) -> Vec<PlannedCallback> {
    let mut out = Vec::new();
    let main = match event.kind {
        EventKind::Message => CallbackEvent::Chat,
        EventKind::Recall { .. } => CallbackEvent::Recall,
        EventKind::ReadAck { .. } => CallbackEvent::ReadAck,
    };
    for rule in rules.iter().filter(|r| r.wants(event, main)) {
        out.push(PlannedCallback {
            rule_id: rule.id.clone(),
            event: main,
            payload: payload::post_send(event, main, host),
        });
    }
    if main == CallbackEvent::Chat {
        for recipient in offline {
            let member_event = event.for_recipient(recipient);
            for rule in rules.iter().filter(|r| r.wants(&member_event, CallbackEvent::ChatOffline)) {
                out.push(PlannedCallback {
                    rule_id: rule.id.clone(),
                    event: CallbackEvent::ChatOffline,
                    payload: payload::post_send(&member_event, CallbackEvent::ChatOffline, host),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::tests::rest_event;

    fn rule(id: &str, events: &[CallbackEvent], include_rest: bool) -> CallbackRule {
        CallbackRule::create(
            NewCallbackRule {
                url: "http://127.0.0.1:1/cb".into(),
                secret: Some("s".into()),
                events: Some(events.to_vec()),
                include_rest: Some(include_rest),
                ..Default::default()
            },
            id,
        )
        .unwrap()
    }

    #[test]
    fn one_chat_per_rule_and_one_offline_per_recipient() {
        let ev = rest_event(json!({"from": "a", "to": ["b"], "type": "txt", "body": {"msg": "m"}}), 5);
        let rules = [
            rule("r1", &[CallbackEvent::Chat, CallbackEvent::ChatOffline], true),
            rule("r2", &[CallbackEvent::ChatOffline], true),
            rule("r3", &[CallbackEvent::Chat], false),
        ];
        let planned = plan(&rules, &ev, &["b".into()], "missive@n1");
        let summary: Vec<(&str, CallbackEvent)> = planned.iter().map(|p| (p.rule_id.as_str(), p.event)).collect();
        assert_eq!(
            summary,
            [("r1", CallbackEvent::Chat), ("r1", CallbackEvent::ChatOffline), ("r2", CallbackEvent::ChatOffline)],
            "r3 leaves out REST messages"
        );
        assert_eq!(planned[1].payload["eventType"], "chat_offline");
        assert!(plan(&rules, &ev, &[], "h").iter().all(|p| p.event == CallbackEvent::Chat));
    }
}
