//! Exception storage (回调异常存储, `callback_postsending_exception_storage.md`): callbacks
//! that ran out of attempts, grouped in 10-minute slices named by a date key, listed by
//! `GET /{org}/{app}/callbacks/storage/info` and re-sent per slice by
//! `POST /{org}/{app}/callbacks/storage/retry`. Kept 3 days.
//!
//! This module owns the date keys and the two endpoints' JSON; the records themselves live
//! in the store (`missive_core::store::OutboxStore`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long exception records are kept (Easemob: 3 days).
pub const RETENTION_MS: i64 = 3 * 24 * 3_600_000;

/// One 10-minute slice, in ms.
pub const SLICE_MS: i64 = 10 * 60_000;

/// The date key of the slice holding `unix_ms`: `YYYYMMDDHHmm` of the slice's start, in local
/// time `utc_offset_minutes` east of UTC (Easemob's keys are Beijing time, +480).
pub fn date_key(unix_ms: i64, utc_offset_minutes: i32) -> String {
    let local = unix_ms + i64::from(utc_offset_minutes) * 60_000;
    let slice = local.div_euclid(SLICE_MS) * SLICE_MS;
    let minutes = slice.div_euclid(60_000);
    let (days, minute_of_day) = (minutes.div_euclid(1_440), minutes.rem_euclid(1_440));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}{:02}{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// The Unix ms range `[start, end)` of a date key's slice, or `None` if it is not a
/// well-formed key of a slice start.
pub fn slice_of(key: &str, utc_offset_minutes: i32) -> Option<(i64, i64)> {
    if key.len() != 12 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| key[r].parse::<i64>().ok();
    let (y, m, d, h, min) = (num(0..4)?, num(4..6)?, num(6..8)?, num(8..10)?, num(10..12)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 || min % 10 != 0 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let start = ((days * 1_440 + h * 60 + min) - i64::from(utc_offset_minutes)) * 60_000;
    // Reject dates like 20210231 that do not round-trip.
    (date_key(start, utc_offset_minutes) == key).then_some((start, start + SLICE_MS))
}

/// One entry of `storage/info`'s `data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceSummary {
    pub date: String,
    /// Callbacks stored in the slice.
    pub size: u64,
    /// How many times the slice was re-sent through `storage/retry`.
    pub retry: u32,
}

/// A `storage/retry` request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryRequest {
    pub date: String,
    /// The caller's own count of retries of this slice (Easemob: "建议由业务侧维护").
    pub retry: u32,
    /// Re-send to this URL instead of the rule's.
    pub target_url: Option<String>,
}

impl RetryRequest {
    /// Parses the body; the error is the `error_description` of a 400 `illegal_argument`.
    pub fn parse(body: &Value, utc_offset_minutes: i32) -> Result<RetryRequest, String> {
        let date = body.get("date").and_then(Value::as_str).ok_or("date is required")?;
        if slice_of(date, utc_offset_minutes).is_none() {
            return Err(format!("date {date} is not a date key (yyyyMMddHHmm at a 10-minute boundary)"));
        }
        let retry = match body.get("retry") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or("retry must be a non-negative integer")?,
        };
        let target_url = match body.get("targetUrl") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                super::rule::check_url(s).map_err(|e| format!("targetUrl: {e}"))?;
                Some(s.clone())
            }
            Some(_) => return Err("targetUrl must be a string".into()),
        };
        Ok(RetryRequest { date: date.to_owned(), retry, target_url })
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_match_easemobs_samples() {
        // 2021-09-09 14:40 Beijing = 06:40 UTC.
        let t = 1_631_169_600_000 + 35_000; // 2021-09-09T06:40:35Z
        assert_eq!(date_key(t, 480), "202109091440");
        assert_eq!(date_key(t + 9 * 60_000, 480), "202109091440", "same 10-minute slice");
        assert_eq!(date_key(t + 10 * 60_000, 480), "202109091450");
        assert_eq!(date_key(0, 0), "197001010000");
        assert_eq!(slice_of("202109091440", 480), Some((1_631_169_600_000, 1_631_170_200_000)));
        for bad in ["20210909144", "202109091445", "202102310000", "2021090914a0", "202113010000"] {
            assert_eq!(slice_of(bad, 480), None, "{bad}");
        }
    }

    #[test]
    fn retry_requests() {
        let ok = RetryRequest::parse(
            &json!({"date": "202108272230", "retry": 0, "targetUrl": "https://localhost:8000/test"}),
            480,
        );
        assert_eq!(
            ok,
            Ok(RetryRequest {
                date: "202108272230".into(),
                retry: 0,
                target_url: Some("https://localhost:8000/test".into())
            })
        );
        assert_eq!(
            RetryRequest::parse(&json!({"date": "202108272230", "targetUrl": ""}), 480).unwrap().target_url,
            None
        );
        assert!(RetryRequest::parse(&json!({}), 480).is_err());
        assert!(RetryRequest::parse(&json!({"date": "202108272231"}), 480).is_err());
        assert!(RetryRequest::parse(&json!({"date": "202108272230", "retry": -1}), 480).is_err());
        assert!(RetryRequest::parse(&json!({"date": "202108272230", "targetUrl": "ftp://x"}), 480).is_err());
    }

    proptest! {
        #[test]
        fn every_instant_lies_in_its_keys_slice(t in -10_000_000_000_000i64..10_000_000_000_000, offset in -720i32..=840) {
            let key = date_key(t, offset);
            let (start, end) = slice_of(&key, offset).expect("a key names a slice");
            prop_assert!(start <= t && t < end);
        }
    }
}
