//! `POST /{org}/{app}/chatfiles`: the upload, streamed into the blob store, then its
//! thumbnail and its record; what the stored file is called and what type it is.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use missive_api::files::{
    THUMBNAIL_FIELDS, clean_filename, content_type_essence, form_px, guess_content_type, thumbnail_box,
};
use missive_core::id::now_ms;
use missive_core::model::FileRecord;
use serde_json::json;
use uuid::Uuid;

use super::multipart::{MULTIPART_OVERHEAD, multipart_error, small_field};
use super::thumbnail::{ThumbnailOutcome, image_format, make_thumbnail};
use super::{file_missing, file_too_large};
use crate::auth::Principal;
use crate::blobs::{BlobKey, BlobStore};
use crate::error::{ApiError, ApiResult};
use crate::http::ctx::{Api, Envelope};
use crate::http::openapi as doc;
use crate::state::AppState;

/// `POST /{org}/{app}/chatfiles` — multipart part `file`; headers `restrict-access` (present
/// = restricted), `thumbnail-width`, `thumbnail-height` (also read as form fields, which is
/// how the Web SDK sends them). Any token of the app.
///
/// An upload in SDK 5's form (the SDK bundled in `easemob-chat-uikit` 3.x always puts `md5`
/// in the query, `?chat-type=…&chat-target=…&md5=…`; SDK 4 never does) is stored
/// unrestricted even with `restrict-access`: SDK 5 shows images as `<img src=".../chatfiles/{uuid}?size=small">`,
/// with no way to send a secret, so the random uuid — which travels in the same message as
/// the secret would — is what grants access.
#[utoipa::path(
    post,
    path = "/{org}/{app}/chatfiles",
    tag = "chatfiles",
    params(
        doc::AppPath,
        ("restrict-access" = Option<String>, Header, description = "Present (any value): downloads need the share-secret."),
        ("thumbnail-width" = Option<u32>, Header, description = "Thumbnail box width in px (default 170)."),
        ("thumbnail-height" = Option<u32>, Header, description = "Thumbnail box height in px (default 170)."),
        ("md5" = Option<String>, Query, description = "Present (SDK 5's upload form): the file is readable by its uuid alone."),
    ),
    request_body(content = doc::Upload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The stored file's uuid and share-secret.", body = doc::UploadResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::ServiceUnavailable),
        (status = 507, response = doc::InsufficientStorage),
    ),
    security(("bearer" = [])),
)]
pub async fn upload(State(state): State<AppState>, api: Api, req: Request) -> ApiResult<Envelope> {
    let principal = api.require_any()?;
    let limits = &state.config.files;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(file_too_large());
    }
    let sdk5_form = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "md5" || p.starts_with("md5=")));
    let restricted = req.headers().contains_key("restrict-access") && !sdk5_form;
    let secret = new_secret()?;
    let headers = req.headers().clone();
    let mut multipart = Multipart::from_request(req, &state).await.map_err(|_| file_missing())?;

    let mut other_bytes = 0u64;
    let mut form_box = [None, None];
    let stored = loop {
        let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? else {
            return Err(file_missing());
        };
        if field.name() != Some("file") {
            // Extra form fields are allowed, within a small budget; only the thumbnail box
            // is kept.
            let name = field.name().map(str::to_owned);
            let value = small_field(&mut field, &mut other_bytes).await?;
            form_px(name.as_deref(), &value, &mut form_box);
            continue;
        }
        let filename = field.file_name().map(clean_filename).filter(|f| !f.is_empty());
        let part_type = field.content_type().and_then(content_type_essence);
        let id = Uuid::new_v4();
        let key = BlobKey::original(api.app.id, id);
        // Dropping the writer on any early return (413, a broken body) discards the upload.
        let mut writer = state.blobs.writer(&key).await?;
        let mut length = 0u64;
        let mut head = Vec::with_capacity(32);
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            length += chunk.len() as u64;
            if length > limits.max_bytes {
                return Err(file_too_large());
            }
            if head.len() < 32 {
                head.extend_from_slice(&chunk[..chunk.len().min(32 - head.len())]);
            }
            writer.write(chunk).await?;
        }
        writer.finish().await?;
        break Stored { app: api.app.id, id, key, filename, part_type, length, head };
    };
    // From here on the blobs exist: if the record is not written (an error, or the client
    // going away and this future being dropped), they are deleted.
    let mut pending = Uncommitted::new(&state, stored.key);
    // The Web SDK sends the thumbnail box as form fields *after* the file: read what
    // follows, within the same budget. A body that breaks off there still keeps the file.
    while let Ok(Some(mut field)) = multipart.next_field().await {
        let name = field.name().map(str::to_owned);
        let Ok(value) = small_field(&mut field, &mut other_bytes).await else { break };
        form_px(name.as_deref(), &value, &mut form_box);
    }
    drop(multipart);
    let header_px = THUMBNAIL_FIELDS.map(|f| headers.get(f).and_then(|v| v.to_str().ok()).map(str::as_bytes));
    let thumb_box = thumbnail_box(header_px, form_box, limits.thumbnail_px);

    let image = image_format(&stored.head);
    // The type the client declared, else what the bytes are (images), else the extension.
    let content_type = stored
        .part_type
        .clone()
        .filter(|t| t != "application/octet-stream")
        .or_else(|| image.map(|f| f.to_mime_type().to_owned()))
        .or_else(|| stored.filename.as_deref().and_then(guess_content_type).map(str::to_owned))
        .unwrap_or_else(|| "application/octet-stream".to_owned());

    let thumb = match image {
        Some(format) => make_thumbnail(&state, &stored, format, thumb_box).await,
        None => ThumbnailOutcome::default(),
    };
    if let Some((key, _, _)) = &thumb.stored {
        pending.keys.push(*key);
    }
    let now = now_ms() as i64;
    let record = FileRecord {
        uuid: stored.id,
        app_id: api.app.id,
        owner: match principal {
            Principal::User(u) => Some(u),
            Principal::App => None,
        },
        content_type,
        filename: stored.filename.clone(),
        length: stored.length,
        restricted,
        secret,
        blob_key: stored.key.to_string(),
        thumbnail_key: thumb.stored.as_ref().map(|(k, _, _)| k.to_string()),
        thumbnail_content_type: thumb.stored.as_ref().map(|(_, t, _)| (*t).to_owned()),
        thumbnail_length: thumb.stored.as_ref().map(|(_, _, n)| *n),
        width: thumb.size.map(|s| s.0),
        height: thumb.size.map(|s| s.1),
        created: now,
        expires: now.saturating_add(limits.retention_secs.saturating_mul(1000).min(i64::MAX as u64) as i64),
    };
    state.store.insert_file(&record).await?;
    pending.keys.clear();
    state.telemetry.metrics.file_uploaded(record.length);
    Ok(api.envelope("post", "/chatfiles", "/chatfiles").set(
        "entities",
        json!([{ "uuid": record.uuid.to_string(), "type": "chatfile", "share-secret": record.secret }]),
    ))
}

/// Blobs written for an upload whose record is not stored yet; deleted on drop unless
/// `keys` was emptied. Drop cannot wait, so the deletion runs as its own task.
struct Uncommitted {
    blobs: std::sync::Arc<dyn BlobStore>,
    keys: Vec<BlobKey>,
}

impl Uncommitted {
    fn new(state: &AppState, original: BlobKey) -> Uncommitted {
        Uncommitted { blobs: state.blobs.clone(), keys: vec![original] }
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let (blobs, keys) = (self.blobs.clone(), std::mem::take(&mut self.keys));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for key in keys {
                    if let Err(e) = blobs.delete(&key).await {
                        tracing::warn!(error = %e, %key, "could not delete the blob of an abandoned upload");
                    }
                }
            });
        }
    }
}

/// An original safely stored, before its metadata is.
pub(super) struct Stored {
    pub app: Uuid,
    pub id: Uuid,
    pub key: BlobKey,
    pub filename: Option<String>,
    pub part_type: Option<String>,
    pub length: u64,
    /// The first bytes, to recognise images by content rather than by name.
    pub head: Vec<u8>,
}

/// 16 random bytes, URL-safe: the secret travels in query strings.
fn new_secret() -> ApiResult<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a share-secret");
        ApiError::internal()
    })?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}
