//! Whether an offline recipient is notified of a message, and with what: a provider-neutral
//! [`Notification`] built from the message, its push extension fields and the recipient's
//! settings.
//!
//! The caller has already decided the message reached a recipient with no device online and
//! was stored (not `ROUTE_ONLINE`). [`build`] then applies, in this order:
//! 1. only chat messages are pushed: no recalls, receipts, or `cmd` messages (透传消息 are
//!    signals for a running app, not for the notification bar — an inference);
//! 2. never to the sender itself;
//! 3. `ext.em_ignore_notification` (a silent message) suppresses it;
//! 4. the recipient's muted group (`notification_ignore_{groupId}`) and do-not-disturb hours
//!    suppress it, unless `ext.em_force_notification`;
//! 5. title and text, lowest priority first (Easemob `push_display.md`): the display style
//!    ("您有一条新消息" / "请点击查看", or "{sender}: {text}" for style 1, the group id
//!    standing in for the sender in groups, `em_push_ext.group_user_nickname` if given), then
//!    `ext.em_push_ext.{title,content}`, then `ext.em_apns_ext.{em_push_title |
//!    em_alert_title, em_push_content | em_alert_body, em_alert_subTitle}`. Push templates
//!    (`em_push_template`) are not supported: they need template storage.
//!
//! APNs fields come from `em_apns_ext` (`push_extension.md`): `em_push_badge`,
//! `em_push_sound`, `em_push_category`, `em_push_mutable_content`,
//! `em_push_content_available`, `thread_id`. Android ones from `em_android_push_ext`
//! (`fcm_channel_id` / `em_push_channel_id`, `em_push_sound`, `fcm_options`); the whole
//! object (vendor fields for Huawei, Xiaomi, …) and `em_harmony_push_ext` are passed on to
//! the webhook provider untouched. `em_push_filter` limits which bound devices get it.
//!
//! The custom field `e` the SDKs hand the app (Android `push.md` §5): `em_apns_ext.extern` if
//! present, else `em_push_ext.custom`, else what is left of `em_apns_ext` after removing
//! `em_push_title`, `em_push_content`, `em_push_name`, `em_push_channel_id` and
//! `em_huawei_push_badge_class` (Easemob's rule, literally).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::settings::{DisplayStyle, PushSettings};
use crate::event::{ChatType, EventKind, MessageEvent, truthy};

/// Default title (display style 0 and 1).
pub const DEFAULT_TITLE: &str = "您有一条新消息";
/// Default text (display style 0).
pub const DEFAULT_BODY: &str = "请点击查看";

/// Why no notification is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A recall, a receipt or a `cmd` message.
    NotNotifiable,
    /// The recipient is the sender.
    Sender,
    /// `ext.em_ignore_notification`.
    Silent,
    /// The recipient muted the group.
    GroupMuted,
    /// The recipient's do-not-disturb hours.
    DoNotDisturb,
}

/// What [`build`] needs besides the message.
#[derive(Clone, Copy, Debug)]
pub struct Recipient<'a> {
    pub user: &'a str,
    pub settings: &'a PushSettings,
    /// The badge when the message sets none: the recipient's unread count, if known.
    pub unread: Option<u32>,
}

/// Context of the push decision.
#[derive(Clone, Copy, Debug)]
pub struct PushContext<'a> {
    /// The sender's push nickname (`nickname` on the user entity), if set.
    pub sender_name: Option<&'a str>,
    /// Unix ms now, for do-not-disturb.
    pub now_ms: i64,
    /// The zone do-not-disturb hours are read in.
    pub utc_offset_minutes: i32,
}

/// APNs-only presentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApnsOptions {
    pub sound: Option<String>,
    pub category: Option<String>,
    pub thread_id: Option<String>,
    pub mutable_content: bool,
    pub content_available: bool,
}

/// Android presentation (FCM), plus the message's whole `em_android_push_ext`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AndroidOptions {
    pub channel_id: Option<String>,
    pub sound: Option<String>,
    pub fcm_options: Option<Value>,
    /// `ext.em_android_push_ext` as sent, vendor fields included.
    pub ext: Option<Map<String, Value>>,
}

/// `ext.em_push_filter`: which bound devices get the notification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushFilter {
    pub accept_device_id: Vec<String>,
    pub ignore_device_id: Vec<String>,
    pub accept_notifier_name: Vec<String>,
    pub ignore_notifier_name: Vec<String>,
}

/// A device bound to a user for push (`PUT /users/{u}/push/binding`): which push
/// certificate (`notifier_name`, naming an app's provider config) and which token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBinding {
    pub device_id: String,
    pub device_token: String,
    pub notifier_name: String,
}

impl PushFilter {
    /// Whether `device` is to get the notification: not ignored, and accepted when an accept
    /// list is given.
    pub fn allows(&self, device: &DeviceBinding) -> bool {
        let ok = |accept: &[String], ignore: &[String], v: &String| {
            !ignore.contains(v) && (accept.is_empty() || accept.contains(v))
        };
        ok(&self.accept_device_id, &self.ignore_device_id, &device.device_id)
            && ok(&self.accept_notifier_name, &self.ignore_notifier_name, &device.notifier_name)
    }
}

/// One notification to one recipient, ready for any provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub app_key: String,
    /// `m`: the message id.
    pub msg_id: String,
    /// `f`: the sender.
    pub from: String,
    /// `t`: the recipient.
    pub to: String,
    /// `g`: the group, for group messages.
    pub group_id: Option<String>,
    pub title: String,
    pub subtitle: Option<String>,
    pub body: String,
    pub badge: Option<u32>,
    /// `e`: the app's custom data.
    pub custom: Option<Value>,
    pub apns: ApnsOptions,
    pub android: AndroidOptions,
    /// `ext.em_harmony_push_ext` as sent.
    pub harmony: Option<Map<String, Value>>,
    pub filter: PushFilter,
}

/// Keys of `em_apns_ext` that Easemob keeps out of `e`.
const NOT_CUSTOM: [&str; 5] =
    ["em_push_title", "em_push_content", "em_push_name", "em_push_channel_id", "em_huawei_push_badge_class"];

/// The notification `recipient` gets for `event`, or why they get none.
pub fn build(event: &MessageEvent, recipient: Recipient<'_>, ctx: PushContext<'_>) -> Result<Notification, Skip> {
    if event.kind != EventKind::Message || matches!(event.body_type(), None | Some("cmd")) {
        return Err(Skip::NotNotifiable);
    }
    if recipient.user == event.from {
        return Err(Skip::Sender);
    }
    if event.ext_flag("em_ignore_notification") {
        return Err(Skip::Silent);
    }
    let forced = event.ext_flag("em_force_notification");
    if !forced {
        if event.group_id.as_deref().is_some_and(|g| recipient.settings.ignores_group(g)) {
            return Err(Skip::GroupMuted);
        }
        if recipient.settings.in_do_not_disturb(ctx.now_ms, ctx.utc_offset_minutes) {
            return Err(Skip::DoNotDisturb);
        }
    }
    let object = |key: &str| event.ext_get(key).and_then(Value::as_object);
    let apns_ext = object("em_apns_ext");
    let push_ext = object("em_push_ext");
    let android_ext = object("em_android_push_ext");
    let text = |m: Option<&Map<String, Value>>, keys: &[&str]| -> Option<String> {
        keys.iter().find_map(|k| m?.get(*k)?.as_str().map(str::to_owned))
    };

    let (mut title, mut body) = (DEFAULT_TITLE.to_owned(), DEFAULT_BODY.to_owned());
    if recipient.settings.display_style == DisplayStyle::Summary {
        let name = match event.chat_type {
            ChatType::Chat => ctx.sender_name.unwrap_or(&event.from).to_owned(),
            _ => text(push_ext, &["group_user_nickname"]).unwrap_or_else(|| event.group_id.clone().unwrap_or_default()),
        };
        body = format!("{name}: {}", summary(event));
    }
    if let Some(t) = text(push_ext, &["title"]) {
        title = t;
    }
    if let Some(c) = text(push_ext, &["content"]) {
        body = c;
    }
    if let Some(t) = text(apns_ext, &["em_push_title", "em_alert_title"]) {
        title = t;
    }
    if let Some(c) = text(apns_ext, &["em_push_content", "em_alert_body"]) {
        body = c;
    }

    let custom = match (apns_ext.and_then(|a| a.get("extern")), push_ext.and_then(|p| p.get("custom"))) {
        (Some(e), _) | (None, Some(e)) => Some(e.clone()),
        (None, None) => apns_ext
            .map(|a| a.iter().filter(|(k, _)| !NOT_CUSTOM.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())))
            .map(|rest| Map::from_iter(rest))
            .filter(|rest| !rest.is_empty())
            .map(Value::Object),
    };
    let filter = object("em_push_filter").map(read_filter).unwrap_or_default();
    Ok(Notification {
        app_key: event.app_key.clone(),
        msg_id: event.msg_id.to_string(),
        from: event.from.clone(),
        to: recipient.user.to_owned(),
        group_id: event.group_id.clone(),
        title,
        subtitle: text(apns_ext, &["em_alert_subTitle"]),
        body,
        badge: apns_ext
            .and_then(|a| a.get("em_push_badge"))
            .and_then(Value::as_u64)
            .and_then(|b| u32::try_from(b).ok())
            .or(recipient.unread),
        custom,
        apns: ApnsOptions {
            sound: text(apns_ext, &["em_push_sound"]),
            category: text(apns_ext, &["em_push_category"]).filter(|c| !c.is_empty()),
            thread_id: text(apns_ext, &["thread_id"]),
            mutable_content: truthy(apns_ext.and_then(|a| a.get("em_push_mutable_content"))),
            content_available: truthy(apns_ext.and_then(|a| a.get("em_push_content_available"))),
        },
        android: AndroidOptions {
            channel_id: text(android_ext, &["fcm_channel_id", "em_push_channel_id"]).filter(|c| !c.is_empty()),
            sound: text(android_ext, &["em_push_sound"]),
            fcm_options: android_ext.and_then(|a| a.get("fcm_options")).filter(|o| o.is_object()).cloned(),
            ext: android_ext.cloned(),
        },
        harmony: object("em_harmony_push_ext").cloned(),
        filter,
    })
}

/// What style 1 shows of the message (the placeholders for non-text content are Missive's
/// choice; Easemob does not document them).
fn summary(event: &MessageEvent) -> String {
    let body = event.first_body();
    if body.is_some_and(|b| b.contains_key("subType")) {
        return "[聊天记录]".into();
    }
    match event.body_type() {
        Some("txt") => body.and_then(|b| b.get("msg")).and_then(Value::as_str).unwrap_or_default().to_owned(),
        Some("img") => "[图片]".into(),
        Some("audio") => "[语音]".into(),
        Some("video") => "[视频]".into(),
        Some("file") => "[文件]".into(),
        Some("loc") => "[位置]".into(),
        _ => "[消息]".into(),
    }
}

fn read_filter(m: &Map<String, Value>) -> PushFilter {
    let list = |key: &str| -> Vec<String> {
        m.get(key)
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    };
    PushFilter {
        accept_device_id: list("accept_device_id"),
        ignore_device_id: list("ignore_device_id"),
        accept_notifier_name: list("accept_notifier_name"),
        ignore_notifier_name: list("ignore_notifier_name"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::tests::rest_event;

    const NOON: i64 = 1_700_000_000_000 / 86_400_000 * 86_400_000 + 12 * 3_600_000;

    fn ctx(name: Option<&str>) -> PushContext<'_> {
        PushContext { sender_name: name, now_ms: NOON, utc_offset_minutes: 0 }
    }

    fn to_b(settings: &PushSettings) -> Recipient<'_> {
        Recipient { user: "b", settings, unread: Some(3) }
    }

    fn send(ext: Value, msg_type: &str, body: Value) -> MessageEvent {
        rest_event(json!({"from": "a", "to": ["b"], "type": msg_type, "body": body, "ext": ext}), 42)
    }

    fn txt(ext: Value) -> MessageEvent {
        send(ext, "txt", json!({"msg": "hello"}))
    }

    #[test]
    fn default_style_hides_the_message() {
        let s = PushSettings::default();
        let n = build(&txt(json!({})), to_b(&s), ctx(Some("Alice"))).unwrap();
        assert_eq!((n.title.as_str(), n.body.as_str()), (DEFAULT_TITLE, DEFAULT_BODY));
        assert_eq!((n.from.as_str(), n.to.as_str(), n.msg_id.as_str(), n.badge), ("a", "b", "42", Some(3)));
        assert_eq!((n.custom.clone(), n.group_id.clone()), (None, None));
    }

    #[test]
    fn summary_style_shows_name_and_text() {
        let s = PushSettings { display_style: DisplayStyle::Summary, ..Default::default() };
        assert_eq!(build(&txt(json!({})), to_b(&s), ctx(Some("Alice"))).unwrap().body, "Alice: hello");
        assert_eq!(build(&txt(json!({})), to_b(&s), ctx(None)).unwrap().body, "a: hello", "no nickname: the user id");
        let img = send(json!({}), "img", json!({"url": "u"}));
        assert_eq!(build(&img, to_b(&s), ctx(None)).unwrap().body, "a: [图片]");
        let mut group = txt(json!({"em_push_ext": {"group_user_nickname": "Jane"}}));
        group.chat_type = ChatType::GroupChat;
        group.group_id = Some("g1".into());
        assert_eq!(build(&group, to_b(&s), ctx(Some("Alice"))).unwrap().body, "Jane: hello");
        group.payload["ext"] = json!({});
        assert_eq!(build(&group, to_b(&s), ctx(Some("Alice"))).unwrap().body, "g1: hello", "groups show the group id");
    }

    #[test]
    fn extension_fields_override_in_priority_order() {
        let s = PushSettings { display_style: DisplayStyle::Summary, ..Default::default() };
        let ev = txt(json!({
            "em_push_ext": {"title": "general title", "content": "general content", "custom": {"x": 1}},
            "em_apns_ext": {"em_push_title": "apns title", "em_alert_subTitle": "sub", "em_push_badge": 7,
                            "em_push_sound": "ring.caf", "em_push_mutable_content": true, "em_push_category": "c",
                            "thread_id": "t", "em_push_content_available": 1},
            "em_android_push_ext": {"fcm_channel_id": "ch", "em_push_sound": "/raw/ring", "huawei_category": "IM",
                                    "fcm_options": {"analytics_label": "l"}},
            "em_harmony_push_ext": {"category": "IM"},
        }));
        let n = build(&ev, to_b(&s), ctx(None)).unwrap();
        assert_eq!(
            (n.title.as_str(), n.subtitle.as_deref(), n.body.as_str()),
            ("apns title", Some("sub"), "general content")
        );
        assert_eq!(n.badge, Some(7), "the message's badge beats the unread count");
        assert_eq!(n.custom, Some(json!({"x": 1})), "em_push_ext.custom when there is no extern");
        assert_eq!(
            n.apns,
            ApnsOptions {
                sound: Some("ring.caf".into()),
                category: Some("c".into()),
                thread_id: Some("t".into()),
                mutable_content: true,
                content_available: true
            }
        );
        assert_eq!((n.android.channel_id.as_deref(), n.android.sound.as_deref()), (Some("ch"), Some("/raw/ring")));
        assert_eq!(n.android.ext.unwrap()["huawei_category"], "IM", "vendor fields travel on");
        assert_eq!(n.android.fcm_options, Some(json!({"analytics_label": "l"})));
        assert_eq!(n.harmony.unwrap()["category"], "IM");
    }

    #[test]
    fn custom_field_e_follows_easemobs_rule() {
        let s = PushSettings::default();
        let e = |ext: Value| build(&txt(ext), to_b(&s), ctx(None)).unwrap().custom;
        assert_eq!(
            e(json!({"em_apns_ext": {"extern": "custom string", "em_push_title": "t"}})),
            Some(json!("custom string"))
        );
        assert_eq!(
            e(
                json!({"em_apns_ext": {"em_push_title": "t", "em_push_content": "c", "page": "p2", "em_push_sound": "s"}})
            ),
            Some(json!({"page": "p2", "em_push_sound": "s"}))
        );
        assert_eq!(e(json!({"em_apns_ext": {"em_push_title": "t"}})), None);
    }

    #[test]
    fn who_is_not_notified() {
        let s = PushSettings::default();
        assert_eq!(build(&txt(json!({"em_ignore_notification": true})), to_b(&s), ctx(None)), Err(Skip::Silent));
        assert!(build(&txt(json!({"em_ignore_notification": false})), to_b(&s), ctx(None)).is_ok());
        let cmd = send(json!({}), "cmd", json!({"action": "a"}));
        assert_eq!(build(&cmd, to_b(&s), ctx(None)), Err(Skip::NotNotifiable));
        let me = Recipient { user: "a", settings: &s, unread: None };
        assert_eq!(build(&txt(json!({})), me, ctx(None)), Err(Skip::Sender));
        let mut recall = txt(json!({}));
        recall.kind = EventKind::Recall { recalled: 1 };
        assert_eq!(build(&recall, to_b(&s), ctx(None)), Err(Skip::NotNotifiable));

        let quiet = PushSettings { no_disturbing: true, ..Default::default() };
        assert_eq!(build(&txt(json!({})), to_b(&quiet), ctx(None)), Err(Skip::DoNotDisturb));
        assert!(build(&txt(json!({"em_force_notification": true})), to_b(&quiet), ctx(None)).is_ok());
        let muted = PushSettings { ignored_groups: vec!["g1".into()], ..Default::default() };
        let mut group = txt(json!({}));
        group.chat_type = ChatType::GroupChat;
        group.group_id = Some("g1".into());
        assert_eq!(build(&group, to_b(&muted), ctx(None)), Err(Skip::GroupMuted));
    }

    #[test]
    fn push_filter_picks_devices() {
        let s = PushSettings::default();
        let ev = txt(json!({"em_push_filter": {"ignore_device_id": ["d2"], "accept_notifier_name": ["apns-prod"]}}));
        let f = build(&ev, to_b(&s), ctx(None)).unwrap().filter;
        let dev = |id: &str, notifier: &str| DeviceBinding {
            device_id: id.into(),
            device_token: "t".into(),
            notifier_name: notifier.into(),
        };
        assert!(f.allows(&dev("d1", "apns-prod")));
        assert!(!f.allows(&dev("d2", "apns-prod")));
        assert!(!f.allows(&dev("d1", "fcm")));
        assert!(PushFilter::default().allows(&dev("any", "any")));
    }
}
