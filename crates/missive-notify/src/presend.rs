//! Pre-send callbacks (发送前回调, easemob-api.md §6.2, `callback_presending.md`): before an
//! SDK-sent message is stored, the app server may pass it, block it, or rewrite its text.
//!
//! Only SDK messages are checked, never REST ones. The app server must answer HTTP 200 with
//! `{"valid": bool, "code": "…", "payload": {…}}` within the rule's timeout (200 ms by
//! default). There is no retry: an answer that is late, not 200, longer than 1,000
//! characters, or not of that shape falls back to the rule's default policy (pass, or block
//! with `custom internal error`). When blocked, the sender's SDK sees `code` (absent: `custom
//! logic denied`; empty: `Message blocked by external logic`), if the rule reports errors;
//! the server answers the upload with MSYNC status `PERMISSION_DENIED_EXTERNAL` (19) and that
//! text (PROTOCOL.md §4, error acks). A blocked message fires no post-send callback.
//!
//! `payload` may replace the message's text and `ext` (text messages only, at most 1 KB).
//! Easemob's documents disagree on the request's `payload` shape: easemob-api.md §6.2 shows
//! `{"ext", "bodies"}`, the 2025 page shows the body object alone. Missive sends the former,
//! like every other callback, and reads a replacement in either shape.

use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::callback::payload::{SECURITY_VERSION, call_id, security};
use crate::callback::rule::{RuleError, check_url};
use crate::event::{ChatType, MessageEvent, Origin};
use crate::transport::Transport;

/// The SDK's error text when the app server blocks without a `code`.
pub const DENIED: &str = "custom logic denied";
/// The text when `code` is the empty string.
pub const DENIED_EMPTY_CODE: &str = "Message blocked by external logic";
/// The text when the check failed and the default policy blocks.
pub const INTERNAL_ERROR: &str = "custom internal error";
/// Largest replacement `payload`, in bytes of compact JSON.
pub const MAX_REPLACEMENT_BYTES: usize = 1_024;
/// Largest answer, in characters.
pub const MAX_RESPONSE_CHARS: usize = 1_000;

/// A pre-send rule of one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreSendRule {
    pub id: String,
    pub name: String,
    pub url: String,
    pub secret: String,
    /// Message types (`txt`, `img`, …) checked; empty means all.
    pub msg_types: Vec<String>,
    /// Conversation kinds checked; empty means all.
    pub chat_types: Vec<ChatType>,
    /// How long to wait for the answer (Easemob's 等待响应时间, default 200 ms).
    pub timeout_ms: u64,
    /// Default policy when the check fails: `true` lets the message through (Easemob's
    /// default, 放行), `false` blocks it.
    pub pass_on_failure: bool,
    /// Whether a blocked sender is told (报错) or sees a normal send (不报错).
    pub report_error: bool,
    pub enabled: bool,
}

impl PreSendRule {
    /// A rule with Easemob's defaults: 200 ms, pass on failure, report errors.
    pub fn new(id: &str, url: &str, secret: &str) -> Result<PreSendRule, RuleError> {
        check_url(url)?;
        if secret.is_empty() || secret.chars().count() > 128 {
            return Err(RuleError::Secret);
        }
        Ok(PreSendRule {
            id: id.to_owned(),
            name: id.to_owned(),
            url: url.to_owned(),
            secret: secret.to_owned(),
            msg_types: Vec::new(),
            chat_types: Vec::new(),
            timeout_ms: 200,
            pass_on_failure: true,
            report_error: true,
            enabled: true,
        })
    }

    fn wants(&self, msg: &MessageEvent) -> bool {
        self.enabled
            && msg.origin == Origin::Sdk
            && (self.chat_types.is_empty() || self.chat_types.contains(&msg.chat_type))
            && msg.body_type().is_some_and(|t| self.msg_types.is_empty() || self.msg_types.iter().any(|m| m == t))
    }
}

/// What the app server's answer changes in a passed message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replacement {
    /// New text for a text message.
    pub text: Option<String>,
    /// New `ext`.
    pub ext: Option<Map<String, Value>>,
}

/// The outcome of the pre-send check.
#[derive(Clone, Debug, PartialEq)]
pub enum PreSendVerdict {
    /// Send it, possibly changed.
    Pass { replacement: Option<Replacement> },
    /// Do not send it. `reason` is the text the SDK shows when `report_error`; otherwise the
    /// sender is answered as if the message had been sent.
    Block { reason: String, report_error: bool },
}

/// Runs pre-send checks over one [`Transport`].
#[derive(Clone)]
pub struct PreSendChecker {
    transport: Transport,
}

/// What one rule's answer said, before rules are combined.
enum Answer {
    Valid(Option<Replacement>),
    Invalid {
        code: Option<String>,
    },
    /// Late, not 200, malformed: the default policy applies.
    Failed(String),
}

impl PreSendChecker {
    pub fn new(transport: Transport) -> PreSendChecker {
        PreSendChecker { transport }
    }

    /// Checks `msg` against the app's pre-send `rules`. Matching rules are asked at once, so
    /// the wait is the slowest rule's timeout, not their sum; the first rule (in `rules`
    /// order) that blocks decides, else the first replacement applies.
    pub async fn check(&self, rules: &[PreSendRule], msg: &MessageEvent) -> PreSendVerdict {
        let asked: Vec<&PreSendRule> = rules.iter().filter(|r| r.wants(msg)).collect();
        let answers = join_all(asked.iter().map(|rule| self.ask(rule, msg))).await;
        let mut replacement = None;
        for (rule, answer) in asked.iter().zip(answers) {
            match answer {
                Answer::Valid(r) => replacement = replacement.or(r),
                Answer::Invalid { code } => {
                    let reason = match code {
                        None => DENIED.to_owned(),
                        Some(c) if c.is_empty() => DENIED_EMPTY_CODE.to_owned(),
                        Some(c) => c,
                    };
                    return PreSendVerdict::Block { reason, report_error: rule.report_error };
                }
                Answer::Failed(why) => {
                    tracing::debug!(rule = %rule.id, %why, "pre-send check failed; default policy applies");
                    if !rule.pass_on_failure {
                        return PreSendVerdict::Block {
                            reason: INTERNAL_ERROR.to_owned(),
                            report_error: rule.report_error,
                        };
                    }
                }
            }
        }
        PreSendVerdict::Pass { replacement }
    }

    async fn ask(&self, rule: &PreSendRule, msg: &MessageEvent) -> Answer {
        let body = request_body(rule, msg, &uuid::Uuid::new_v4().to_string());
        let deadline = Duration::from_millis(rule.timeout_ms);
        let request = self.transport.post(&rule.url).header("content-type", "application/json").body(body);
        // The deadline covers waiting for a transport permit too: the sender is waiting.
        let reply = match tokio::time::timeout(deadline, self.transport.execute(request, Some(deadline))).await {
            Err(_) => return Answer::Failed("timed out".into()),
            Ok(Err(e)) => return Answer::Failed(e.to_string()),
            Ok(Ok(reply)) => reply,
        };
        if reply.status != 200 {
            return Answer::Failed(format!("HTTP {}", reply.status));
        }
        let text = String::from_utf8_lossy(&reply.body);
        if reply.truncated || text.chars().count() > MAX_RESPONSE_CHARS {
            return Answer::Failed("answer longer than 1000 characters".into());
        }
        parse_answer(&text, msg.body_type() == Some("txt"))
    }
}

/// The request body for `rule` (callId `{appkey}_{uuid}`, easemob-api.md §6.2).
fn request_body(rule: &PreSendRule, msg: &MessageEvent, uuid: &str) -> Vec<u8> {
    let call_id = call_id(&msg.app_key, uuid);
    let mut m = Map::new();
    m.insert("timestamp".into(), msg.timestamp.into());
    m.insert("chat_type".into(), msg.chat_type.as_str().into());
    if let Some(g) = &msg.group_id {
        m.insert("group_id".into(), g.clone().into());
    }
    m.insert("from".into(), msg.from.clone().into());
    m.insert("to".into(), msg.to.clone().into());
    m.insert("msg_id".into(), msg.msg_id.to_string().into());
    m.insert("payload".into(), Value::Object(msg.payload.clone()));
    m.insert("securityVersion".into(), SECURITY_VERSION.into());
    m.insert("security".into(), security(&call_id, &rule.secret, msg.timestamp).into());
    m.insert("callId".into(), call_id.into());
    serde_json::to_vec(&m).unwrap_or_default()
}

/// Reads `{"valid", "code", "payload"}`. A missing or non-boolean `valid`, a non-string
/// `code`, or an unusable `payload` make the answer a failure (Easemob: "缺少必填字段、字段类型
/// 不符合约定类型" → `custom internal error`).
fn parse_answer(text: &str, is_text_message: bool) -> Answer {
    let Ok(Value::Object(answer)) = serde_json::from_str::<Value>(text) else {
        return Answer::Failed("answer is not a JSON object".into());
    };
    let Some(valid) = answer.get("valid").and_then(Value::as_bool) else {
        return Answer::Failed("answer has no boolean `valid`".into());
    };
    let code = match answer.get("code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Answer::Failed("`code` is not a string".into()),
    };
    if !valid {
        return Answer::Invalid { code };
    }
    let payload = match answer.get("payload") {
        None | Some(Value::Null) => return Answer::Valid(None),
        Some(Value::Object(p)) => p,
        Some(_) => return Answer::Failed("`payload` is not an object".into()),
    };
    if serde_json::to_vec(payload).map_or(usize::MAX, |b| b.len()) > MAX_REPLACEMENT_BYTES {
        return Answer::Failed("replacement `payload` larger than 1 KB".into());
    }
    if !is_text_message {
        // Easemob replaces only text messages; a replacement for another type is ignored.
        return Answer::Valid(None);
    }
    // Either `{"ext", "bodies": [{"msg"}]}` (the shape sent) or the body alone (`{"msg"}`).
    let body = payload.get("bodies").and_then(Value::as_array).and_then(|b| b.first()).and_then(Value::as_object);
    let text = match body.unwrap_or(payload).get("msg") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Answer::Failed("replacement `msg` is not a string".into()),
    };
    let ext = match payload.get("ext") {
        None | Some(Value::Null) => None,
        Some(Value::Object(e)) => Some(e.clone()),
        Some(_) => return Answer::Failed("replacement `ext` is not an object".into()),
    };
    let replacement = Replacement { text, ext };
    Answer::Valid((replacement != Replacement::default()).then_some(replacement))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict_of(text: &str) -> Result<Option<Replacement>, Option<String>> {
        match parse_answer(text, true) {
            Answer::Valid(r) => Ok(r),
            Answer::Invalid { code } => Err(code),
            Answer::Failed(why) => Err(Some(format!("FAILED {why}"))),
        }
    }

    #[test]
    fn answers_are_read_as_documented() {
        assert_eq!(verdict_of(r#"{"valid": true}"#), Ok(None));
        assert_eq!(verdict_of(r#"{"valid": true, "code": "HX:10000"}"#), Ok(None));
        assert_eq!(verdict_of(r#"{"valid": false}"#), Err(None));
        assert_eq!(verdict_of(r#"{"valid": false, "code": "HX:10001"}"#), Err(Some("HX:10001".into())));
        assert_eq!(verdict_of(r#"{"valid": false, "code": ""}"#), Err(Some(String::new())));
        for broken in [r#"{"code": "x"}"#, r#"{"valid": "true"}"#, r#"{"valid": false, "code": 1}"#, "[]", "not json"] {
            assert!(matches!(verdict_of(broken), Err(Some(s)) if s.starts_with("FAILED")), "{broken}");
        }
    }

    #[test]
    fn replacements_in_both_shapes() {
        let text = |t: &str| Ok(Some(Replacement { text: Some(t.into()), ext: None }));
        assert_eq!(verdict_of(r#"{"valid": true, "payload": {"msg": "clean", "type": "txt"}}"#), text("clean"));
        assert_eq!(
            verdict_of(r#"{"valid": true, "payload": {"ext": {}, "bodies": [{"msg": "clean", "type": "txt"}]}}"#)
                .map(|r| r.unwrap().text),
            Ok(Some("clean".into()))
        );
        let big = json!({"valid": true, "payload": {"msg": "x".repeat(1_100)}}).to_string();
        assert!(matches!(verdict_of(&big), Err(Some(s)) if s.contains("1 KB")));
        assert!(
            matches!(parse_answer(r#"{"valid": true, "payload": {"msg": "x"}}"#, false), Answer::Valid(None)),
            "only text is replaced"
        );
    }

    #[test]
    fn request_has_the_documented_fields_and_a_valid_signature() {
        let ev = crate::event::tests::rest_event(
            json!({"from": "user1", "to": ["user2"], "type": "txt", "body": {"msg": "hi"}}),
            8924312242322,
        );
        let rule = PreSendRule::new("r", "http://h/", "sec").unwrap();
        let body: Value = serde_json::from_slice(&request_body(&rule, &ev, "0990a64f")).unwrap();
        assert_eq!(body["callId"], "org#app_0990a64f");
        assert_eq!(body["chat_type"], "chat");
        assert_eq!(body["msg_id"], "8924312242322");
        assert_eq!(body["payload"], json!({"ext": {}, "bodies": [{"msg": "hi", "type": "txt"}]}));
        assert_eq!(body["security"], security("org#app_0990a64f", "sec", ev.timestamp));
        assert!(!rule.wants(&ev), "REST messages are never checked");
    }
}
