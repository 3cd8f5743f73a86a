//! The multipart form of an upload around its `file` part: extra fields within a small
//! budget, and the thumbnail box (`thumbnail-width` / `thumbnail-height`), which the Web SDK
//! sends as form fields and other clients as headers.

use axum::http::{HeaderMap, StatusCode};

use super::file_too_large;
use crate::error::{ApiError, ApiResult};

/// Room for multipart boundaries, part headers and small extra fields on top of the file
/// itself. A declared `Content-Length` beyond `max_bytes` plus this is refused unread.
pub(super) const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Largest thumbnail box a client may ask for; bigger requests are clamped.
const MAX_THUMBNAIL_PX: u32 = 2048;

pub(super) fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return file_too_large();
    }
    tracing::debug!(error = %e.body_text(), "unreadable multipart upload");
    ApiError::illegal_argument(format!("multipart body is invalid: {}", e.body_text()))
}

/// `thumbnail-width` / `thumbnail-height`: the header, else the form field (as the Web SDK
/// sends them), else `default` (170).
pub(super) fn thumbnail_box(headers: &HeaderMap, form: [Option<u32>; 2], default: u32) -> (u32, u32) {
    let px = |name: &str, form: Option<u32>| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .or(form)
            .unwrap_or(default)
            .clamp(1, MAX_THUMBNAIL_PX)
    };
    (px("thumbnail-width", form[0]), px("thumbnail-height", form[1]))
}

/// Reads a non-file form field whole, counting it against the extra-field `budget`; keeps
/// its first bytes only (enough for a number).
pub(super) async fn small_field(
    field: &mut axum::extract::multipart::Field<'_>,
    budget: &mut u64,
) -> ApiResult<Vec<u8>> {
    let mut value = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        *budget += chunk.len() as u64;
        if *budget > MULTIPART_OVERHEAD {
            return Err(file_too_large());
        }
        value.extend_from_slice(&chunk[..chunk.len().min(16usize.saturating_sub(value.len()))]);
    }
    Ok(value)
}

/// Keeps a `thumbnail-width` / `thumbnail-height` form field's positive number.
pub(super) fn form_px(name: Option<&str>, value: &[u8], into: &mut [Option<u32>; 2]) {
    let slot = match name {
        Some("thumbnail-width") => 0,
        Some("thumbnail-height") => 1,
        _ => return,
    };
    if let Some(n) = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u32>().ok()).filter(|n| *n > 0) {
        into[slot] = Some(n);
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn thumbnail_box_from_header_then_form_field() {
        let mut h = HeaderMap::new();
        assert_eq!(thumbnail_box(&h, [None, None], 170), (170, 170));
        let mut form = [None, None];
        form_px(Some("thumbnail-width"), b"100", &mut form);
        form_px(Some("thumbnail-height"), b" 0", &mut form);
        form_px(Some("other"), b"5", &mut form);
        assert_eq!(form, [Some(100), None]);
        assert_eq!(thumbnail_box(&h, form, 170), (100, 170));
        h.insert("thumbnail-width", HeaderValue::from_static("60"));
        assert_eq!(thumbnail_box(&h, form, 170), (60, 170));
    }
}
