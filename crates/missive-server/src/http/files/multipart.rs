//! The multipart form of an upload around its `file` part: extra fields, read within a small
//! budget (what they say — the thumbnail box — is `missive_api::files`).

use axum::http::StatusCode;

use super::file_too_large;
use crate::error::{ApiError, ApiResult};

/// Room for multipart boundaries, part headers and small extra fields on top of the file
/// itself. A declared `Content-Length` beyond `max_bytes` plus this is refused unread.
pub(super) const MULTIPART_OVERHEAD: u64 = 64 * 1024;

pub(super) fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return file_too_large();
    }
    tracing::debug!(error = %e.body_text(), "unreadable multipart upload");
    ApiError::illegal_argument(format!("multipart body is invalid: {}", e.body_text()))
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
