//! A recipient's push settings, read from the Easemob user entity (easemob-api.md §3.3,
//! `push.md`): display style, do-not-disturb hours, muted groups.
//!
//! The fields are set through `PUT /users/{u}` and stored as user attributes, in whatever
//! JSON type the client used (`"notification_display_style": "1"` in Easemob's own curl
//! example, `1` in its responses), so every field is read leniently; a value that makes no
//! sense is ignored rather than failing a push.
//!
//! Do-not-disturb (`notification_no_disturbing`, `_start`, `_end`, whole hours 0–23):
//! start = end means all day; end < start spans midnight (10 → 8 is 10:00 to 08:00 the next
//! day). Hours are local time of the server's configured zone (`utc_offset_minutes`), which
//! Easemob does not document; its service runs on Beijing time. With no hours set, DND is all
//! day (an inference: Easemob documents the switch only together with hours).

use serde_json::{Map, Value};

use crate::event::truthy;

/// How the notification shows a message (`notification_display_style`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisplayStyle {
    /// 0, the default: "您有一条新消息" / "请点击查看", whatever the message says.
    #[default]
    Simple,
    /// 1: the sender's push nickname and the message text.
    Summary,
}

/// The settings of one recipient that decide whether and how they are notified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushSettings {
    pub display_style: DisplayStyle,
    pub no_disturbing: bool,
    pub no_disturbing_start: Option<u8>,
    pub no_disturbing_end: Option<u8>,
    /// Groups muted with `notification_ignore_{groupId}: true`.
    pub ignored_groups: Vec<String>,
}

impl PushSettings {
    /// Reads the settings from a user's attribute map.
    pub fn from_attributes(attrs: &Map<String, Value>) -> PushSettings {
        let display_style = match integer(attrs.get("notification_display_style")) {
            Some(1) => DisplayStyle::Summary,
            _ => DisplayStyle::Simple,
        };
        let hour = |key: &str| integer(attrs.get(key)).and_then(|h| u8::try_from(h).ok()).filter(|h| *h < 24);
        let ignored_groups = attrs
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("notification_ignore_").filter(|_| truthy(Some(v))).map(str::to_owned))
            .collect();
        PushSettings {
            display_style,
            no_disturbing: truthy(attrs.get("notification_no_disturbing")),
            no_disturbing_start: hour("notification_no_disturbing_start"),
            no_disturbing_end: hour("notification_no_disturbing_end"),
            ignored_groups,
        }
    }

    /// Whether do-not-disturb holds at `unix_ms` in the zone `utc_offset_minutes` east of UTC.
    pub fn in_do_not_disturb(&self, unix_ms: i64, utc_offset_minutes: i32) -> bool {
        if !self.no_disturbing {
            return false;
        }
        let (Some(start), Some(end)) = (self.no_disturbing_start, self.no_disturbing_end) else {
            return true;
        };
        let local_minutes = (unix_ms.div_euclid(60_000) + i64::from(utc_offset_minutes)).rem_euclid(1_440);
        let hour = (local_minutes / 60) as u8;
        match start.cmp(&end) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => start <= hour && hour < end,
            std::cmp::Ordering::Greater => hour >= start || hour < end,
        }
    }

    pub fn ignores_group(&self, group: &str) -> bool {
        self.ignored_groups.iter().any(|g| g == group)
    }
}

/// An integer written as a number or a numeric string.
fn integer(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(v: Value) -> PushSettings {
        PushSettings::from_attributes(v.as_object().unwrap())
    }

    /// Unix ms of `hour`:30 UTC on some day.
    fn at(hour: i64) -> i64 {
        1_700_000_000_000 / 86_400_000 * 86_400_000 + hour * 3_600_000 + 30 * 60_000
    }

    #[test]
    fn fields_in_any_json_type() {
        let s = settings(json!({
            "notification_display_style": "1", "notification_no_disturbing": true,
            "notification_no_disturbing_start": "8", "notification_no_disturbing_end": 18,
            "notification_ignore_g1": true, "notification_ignore_g2": false, "nickname": "x",
        }));
        assert_eq!(s.display_style, DisplayStyle::Summary);
        assert_eq!((s.no_disturbing_start, s.no_disturbing_end), (Some(8), Some(18)));
        assert!(s.ignores_group("g1") && !s.ignores_group("g2"));
        let junk = settings(json!({"notification_display_style": [1], "notification_no_disturbing_start": 24}));
        assert_eq!(junk, PushSettings { no_disturbing_start: None, ..Default::default() });
    }

    #[test]
    fn quiet_hours_follow_easemobs_three_cases() {
        let dnd = |start: u8, end: u8| PushSettings {
            no_disturbing: true,
            no_disturbing_start: Some(start),
            no_disturbing_end: Some(end),
            ..Default::default()
        };
        let day = dnd(8, 10);
        assert!(!day.in_do_not_disturb(at(7), 0) && day.in_do_not_disturb(at(8), 0) && day.in_do_not_disturb(at(9), 0));
        assert!(!day.in_do_not_disturb(at(10), 0), "the end hour is outside");
        let night = dnd(22, 7);
        assert!(
            night.in_do_not_disturb(at(23), 0)
                && night.in_do_not_disturb(at(3), 0)
                && !night.in_do_not_disturb(at(12), 0)
        );
        assert!(dnd(5, 5).in_do_not_disturb(at(17), 0), "start = end is all day");
        // 01:30 UTC is 09:30 in Beijing.
        assert!(day.in_do_not_disturb(at(1), 480) && !day.in_do_not_disturb(at(1), 0));
        let off = PushSettings { no_disturbing: false, ..dnd(0, 0) };
        assert!(!off.in_do_not_disturb(at(1), 0));
        let no_hours = PushSettings { no_disturbing: true, ..Default::default() };
        assert!(no_hours.in_do_not_disturb(at(1), 0));
    }
}
