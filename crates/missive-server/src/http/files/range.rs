//! `Range` requests on downloads: one `bytes=` range (RFC 9110 §14.1.2).

use std::ops::Range;

use axum::http::HeaderValue;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum RangeRequest {
    Full,
    Partial(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 §14.1.2). Multiple ranges, other units and malformed
/// headers are ignored (the whole file is sent), as the RFC permits.
pub(super) fn parse_range(header: Option<&HeaderValue>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last N bytes.
        let Ok(n) = last.parse::<u64>() else { return RangeRequest::Full };
        if n == 0 || len == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial(len.saturating_sub(n)..len);
    }
    let Ok(start) = first.parse::<u64>() else { return RangeRequest::Full };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeRequest::Full,
        }
    };
    if start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(start..end.min(len - 1) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let r = |s: &str| parse_range(Some(&hv(s)), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Partial(0..10));
        assert_eq!(r("bytes=90-"), Partial(90..100));
        assert_eq!(r("bytes=90-1000"), Partial(90..100));
        assert_eq!(r("bytes=-10"), Partial(90..100));
        assert_eq!(r("bytes=-1000"), Partial(0..100));
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=5-1"), Full);
        assert_eq!(r("bytes=0-1,5-6"), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(r("bytes=x-1"), Full);
        assert_eq!(parse_range(Some(&hv("bytes=0-")), 0), Unsatisfiable);
    }
}
