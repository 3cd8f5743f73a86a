//! `/{org}/{app}/chatfiles`: uploading and downloading chat files (easemob-api.md §5), their
//! thumbnails and expiry. One file per concern:
//!
//! - [`upload`] streams the multipart `file` part straight into the [`BlobStore`]: a file is
//!   never held whole in memory, and the size limit answers 413 as soon as it is crossed
//!   (at once when `Content-Length` already says so), without reading the rest. [`multipart`]
//!   reads the form around it (the extra fields, the thumbnail box).
//! - [`thumbnail`]: images get a thumbnail at upload, decoded on the dedicated bounded
//!   thumbnail workers with the decoded size capped. Small images, undecodable ones,
//!   non-images, and uploads arriving while every worker and queue place is taken serve
//!   their original as the thumbnail, as Easemob does.
//! - [`download`] streams the blob with one `Range`. It needs no token, but a
//!   present invalid one is refused (401), as everywhere else. Restricted files need the
//!   `share-secret` (header, or query as the Web SDK sends it), whatever the token; a missing
//!   or wrong secret is **403** `chatfile no permission`. `tests/it/auth_matrix.rs` pins every
//!   token × secret combination.
//! - [`sweeper`] deletes expired files in the background.
//!
//! What the requests say besides the bytes — the thumbnail box, the part's name and type,
//! the download's query and `Range` — is read by `missive_api::files`. What media messages
//! learn from these files (sizes, secrets) is `crate::media`, beside the send path.
//!
//! [`BlobStore`]: crate::blobs::BlobStore

use axum::http::StatusCode;
use uuid::Uuid;

use crate::blobs::BlobError;
use crate::error::ApiError;

pub mod download;
pub mod multipart;
pub mod sweeper;
pub mod thumbnail;
pub mod upload;

pub use sweeper::sweep_forever;

pub(super) fn file_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file exceeding maximum limit",
        "FileExceedingMaximumLimitException",
        "the file size exceeds the maximum limit.",
    )
}

pub(super) fn file_missing() -> ApiError {
    ApiError::illegal_argument("file must be provided.")
}

pub(super) fn file_not_found() -> ApiError {
    ApiError::entity_not_found("file may not exists")
}

pub(super) fn file_expired(uuid: Uuid) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "file_expired", "FileExpiredException", format!("file {uuid} is expired"))
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> ApiError {
        match e {
            BlobError::NotFound => file_not_found(),
            e => {
                tracing::error!(error = %e, "blob storage error");
                ApiError::unavailable("file storage unavailable, retry later")
            }
        }
    }
}
