//! `/{org}/{app}/chatfiles`: uploading and downloading chat files (easemob-api.md §5), their
//! thumbnails and expiry, and what media messages learn from them (PROTOCOL.md §5).
//!
//! - Upload streams the multipart `file` part straight into the [`BlobStore`]: a file is
//!   never held whole in memory, and the size limit answers 413 as soon as it is crossed
//!   (at once when `Content-Length` already says so), without reading the rest.
//! - Images get a thumbnail at upload, decoded off the async threads, under a permit, with
//!   decoded size capped. Small images, undecodable ones and non-images serve their
//!   original as the thumbnail, as Easemob does.
//! - Download streams the blob with `Range` support. It needs no token, but a present
//!   invalid one is refused (401), as everywhere else. Restricted files need the
//!   `share-secret` (header, or query as the Web SDK sends it), whatever the token; a
//!   missing or wrong secret is **403** `chatfile no permission` (see `secret_refused`).
//!   `tests/it/auth_matrix.rs` pins every token × secret combination.
//! - [`enrich_media`] fills `file_length`, `size` and the secret into media messages whose
//!   URL is a file of this app; [`sweep_forever`] deletes expired files in the background.

use std::io::Cursor;
use std::ops::Range;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader};
use missive_core::id::now_ms;
use missive_core::model::{App, FileRecord};
use missive_msync::pb;
use missive_msync::pb::message_body::content::Type as ContentType;
use serde_json::json;
use uuid::Uuid;

use super::ctx::{Api, Credentials, Envelope};
use super::openapi as doc;
use crate::auth::Principal;
use crate::blobs::{self, BlobError, BlobKey, BlobStore};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Room for multipart boundaries, part headers and small extra fields on top of the file
/// itself. A declared `Content-Length` beyond `max_bytes` plus this is refused unread.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Largest thumbnail box a client may ask for; bigger requests are clamped.
const MAX_THUMBNAIL_PX: u32 = 2048;
/// Longest filename kept (characters); the rest is cut.
const MAX_FILENAME_CHARS: usize = 255;
/// Files deleted per store query by the sweeper.
const SWEEP_BATCH: u32 = 200;

// --- errors -------------------------------------------------------------------------------

fn file_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file exceeding maximum limit",
        "FileExceedingMaximumLimitException",
        "the file size exceeds the maximum limit.",
    )
}

fn file_missing() -> ApiError {
    ApiError::illegal_argument("file must be provided.")
}

fn file_not_found() -> ApiError {
    ApiError::entity_not_found("file may not exists")
}

fn file_expired(uuid: Uuid) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "file_expired", "FileExpiredException", format!("file {uuid} is expired"))
}

/// A restricted file without its share-secret. 403 with `chatfile no permission` because
/// that is what the Web SDK's `downloadFile` recognises as "no permission" (4.21.1); any
/// other answer surfaces as a generic download error. Which check failed (missing or wrong
/// secret) is logged, not told to the client.
fn secret_refused(why: &'static str) -> ApiError {
    tracing::debug!(why, "chatfile download refused");
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "EasemobForbiddenOpException", "chatfile no permission")
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

// --- upload -------------------------------------------------------------------------------

/// `POST /{org}/{app}/chatfiles` — multipart part `file`; headers `restrict-access` (present
/// = restricted), `thumbnail-width`, `thumbnail-height` (also read as form fields, which is
/// how the Web SDK sends them). Any token of the app.
#[utoipa::path(
    post,
    path = "/{org}/{app}/chatfiles",
    tag = "chatfiles",
    params(
        doc::AppPath,
        ("restrict-access" = Option<String>, Header, description = "Present (any value): downloads need the share-secret."),
        ("thumbnail-width" = Option<u32>, Header, description = "Thumbnail box width in px (default 170)."),
        ("thumbnail-height" = Option<u32>, Header, description = "Thumbnail box height in px (default 170)."),
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
    let restricted = req.headers().contains_key("restrict-access");
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
    let thumb_box = thumbnail_box(&headers, form_box, limits.thumbnail_px);

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
struct Stored {
    app: Uuid,
    id: Uuid,
    key: BlobKey,
    filename: Option<String>,
    part_type: Option<String>,
    length: u64,
    /// The first bytes, to recognise images by content rather than by name.
    head: Vec<u8>,
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return file_too_large();
    }
    tracing::debug!(error = %e.body_text(), "unreadable multipart upload");
    ApiError::illegal_argument(format!("multipart body is invalid: {}", e.body_text()))
}

/// `thumbnail-width` / `thumbnail-height`: the header, else the form field (as the Web SDK
/// sends them), else `default` (170).
fn thumbnail_box(headers: &HeaderMap, form: [Option<u32>; 2], default: u32) -> (u32, u32) {
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
async fn small_field(field: &mut axum::extract::multipart::Field<'_>, budget: &mut u64) -> ApiResult<Vec<u8>> {
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
fn form_px(name: Option<&str>, value: &[u8], into: &mut [Option<u32>; 2]) {
    let slot = match name {
        Some("thumbnail-width") => 0,
        Some("thumbnail-height") => 1,
        _ => return,
    };
    if let Some(n) = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u32>().ok()).filter(|n| *n > 0) {
        into[slot] = Some(n);
    }
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

/// Keeps the client's name for display: control characters removed, length capped. It is
/// never used as a path.
fn clean_filename(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(MAX_FILENAME_CHARS).collect::<String>().trim().to_owned()
}

/// `type/subtype` of a part's content type, lower-cased, if it is a well-formed media type
/// (parameters dropped). Anything else is treated as absent.
fn content_type_essence(raw: &str) -> Option<String> {
    let essence = raw.split(';').next()?.trim().to_ascii_lowercase();
    let (t, s) = essence.split_once('/')?;
    let token = |x: &str| {
        !x.is_empty() && x.len() <= 64 && x.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    (token(t) && token(s)).then_some(essence)
}

/// The content type of a filename's extension, for parts sent without one.
fn guess_content_type(filename: &str) -> Option<&'static str> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "heic" => "image/heic",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "amr" => "audio/amr",
        "wav" => "audio/wav",
        "aac" => "audio/aac",
        "m4a" => "audio/mp4",
        "ogg" => "audio/ogg",
        "opus" => "audio/opus",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "3gp" => "video/3gpp",
        "avi" => "video/x-msvideo",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => return None,
    })
}

// --- thumbnails ---------------------------------------------------------------------------

/// The image formats thumbnails are made from (the `image` features we build).
fn image_format(head: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(head) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) => Some(f),
        _ => None,
    }
}

/// What the upload learnt about an image.
#[derive(Default)]
struct ThumbnailOutcome {
    /// Pixel size of the original, if its header could be read.
    size: Option<(u32, u32)>,
    /// A separate thumbnail: key, content type, length. `None`: the original serves.
    stored: Option<(BlobKey, &'static str, u64)>,
}

/// What the blocking worker returns.
struct Thumbnail {
    size: (u32, u32),
    encoded: Option<(Vec<u8>, &'static str)>,
}

/// Makes and stores the thumbnail of an uploaded image. Failures only cost the thumbnail:
/// the original then stands in for it.
async fn make_thumbnail(state: &AppState, stored: &Stored, format: ImageFormat, bx: (u32, u32)) -> ThumbnailOutcome {
    let files = &state.config.files;
    // The permit bounds the memory of concurrent decodes (file + pixels each).
    let Ok(_permit) = state.thumbnail_permits.acquire().await else {
        return ThumbnailOutcome::default();
    };
    let bytes = match blobs::read_to_vec(state.blobs.as_ref(), &stored.key, stored.length).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "could not read an upload back for its thumbnail");
            return ThumbnailOutcome::default();
        }
    };
    let own = stored.length <= files.own_thumbnail_bytes;
    let max_pixels = files.max_image_pixels;
    let made = tokio::task::spawn_blocking(move || thumbnail(&bytes, format, bx, max_pixels, own)).await;
    let Ok(Some(made)) = made else {
        return ThumbnailOutcome::default();
    };
    let mut outcome = ThumbnailOutcome { size: Some(made.size), stored: None };
    if let Some((encoded, content_type)) = made.encoded {
        let key = BlobKey::thumbnail(stored.app, stored.id);
        let len = encoded.len() as u64;
        match state.blobs.put(&key, Bytes::from(encoded)).await {
            Ok(()) => outcome.stored = Some((key, content_type, len)),
            Err(e) => tracing::warn!(error = %e, "could not store a thumbnail"),
        }
    }
    outcome
}

/// Decodes `bytes` and fits it into `bx`, keeping its aspect ratio. Returns `None` if not
/// even the header can be read; `encoded: None` when the original should serve as the
/// thumbnail (small enough already, too many pixels to decode, or undecodable).
fn thumbnail(bytes: &[u8], format: ImageFormat, bx: (u32, u32), max_pixels: u64, own: bool) -> Option<Thumbnail> {
    let mut limits = image::Limits::default();
    // A decompression bomb is a small file that declares a huge canvas: cap the canvas and
    // the decoder's allocations before any pixel is decoded.
    // No side may exceed the pixel budget either (a 1 × 10⁹ strip), checked in the header.
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 * 1024 * 1024));
    let reader = |limits: image::Limits| {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    let (w, h) = reader(limits.clone()).into_dimensions().ok()?;
    let size = (w, h);
    if own || (w <= bx.0 && h <= bx.1) {
        return Some(Thumbnail { size, encoded: None });
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        tracing::info!(w, h, "image too large to thumbnail; the original serves as its thumbnail");
        return Some(Thumbnail { size, encoded: None });
    }
    let decoded = match reader(limits).decode() {
        Ok(img) => img,
        Err(e) => {
            tracing::info!(error = %e, "undecodable image; the original serves as its thumbnail");
            return Some(Thumbnail { size, encoded: None });
        }
    };
    let small = decoded.thumbnail(bx.0, bx.1);
    let encoded = encode_thumbnail(&small, format);
    if encoded.is_none() {
        tracing::warn!("could not encode a thumbnail");
    }
    Some(Thumbnail { size, encoded })
}

/// JPEG photos stay JPEG (quality 80); everything else becomes PNG, which keeps
/// transparency (a GIF's thumbnail is its first frame).
fn encode_thumbnail(img: &DynamicImage, source: ImageFormat) -> Option<(Vec<u8>, &'static str)> {
    let mut out = Vec::new();
    if source == ImageFormat::Jpeg {
        let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
        rgb.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)).ok()?;
        Some((out, "image/jpeg"))
    } else {
        img.write_to(Cursor::new(&mut out), ImageFormat::Png).ok()?;
        Some((out, "image/png"))
    }
}

// --- download -----------------------------------------------------------------------------

/// `GET /{org}/{app}/chatfiles/{uuid}` — the bytes, or the thumbnail with `thumbnail: true`
/// (header) / `thumbnail=true` (query). A token is optional, but an invalid one is refused.
#[utoipa::path(
    get,
    path = "/{org}/{app}/chatfiles/{file}",
    tag = "chatfiles",
    params(
        doc::AppPath,
        ("file" = String, Path, description = "The uuid from the upload."),
        ("share-secret" = Option<String>, Header, description = "Required for restricted files (or the query parameter)."),
        ("thumbnail" = Option<bool>, Header, description = "`true`: the thumbnail instead of the original."),
        ("Range" = Option<String>, Header, description = "One `bytes=` range."),
        ("share-secret" = Option<String>, Query, description = "As the header (the Web SDK's form)."),
        ("thumbnail" = Option<bool>, Query, description = "As the header."),
    ),
    responses(
        (status = 200, description = "The bytes; `Content-Type` is the file's.", body = [u8], content_type = "application/octet-stream"),
        (status = 206, description = "The requested range.", body = [u8], content_type = "application/octet-stream"),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 416, response = doc::RangeNotSatisfiable),
        (status = 503, response = doc::ServiceUnavailable),
    ),
    security((), ("bearer" = [])),
)]
pub async fn download(
    State(state): State<AppState>,
    api: Api,
    Path((_, _, file)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Credentials::Invalid(e) = api.credentials {
        return Err(e.into());
    }
    let Ok(uuid) = Uuid::try_parse(&file) else {
        return Err(file_not_found());
    };
    let Some(record) = state.store.file(api.app.id, uuid).await? else {
        return Err(file_not_found());
    };
    if record.expires <= now_ms() as i64 {
        return Err(file_expired(uuid));
    }
    let query = DownloadQuery::parse(uri.query().unwrap_or(""));
    if record.restricted {
        let given = headers.get("share-secret").and_then(|v| v.to_str().ok()).or(query.share_secret.as_deref());
        match given {
            None | Some("") => return Err(secret_refused("share-secret is required for this file")),
            Some(s) if !constant_time_eq(s.trim().as_bytes(), record.secret.as_bytes()) => {
                return Err(secret_refused("share-secret is not valid for this file"));
            }
            Some(_) => {}
        }
    }
    let want_thumbnail = query.thumbnail || headers.get("thumbnail").and_then(|v| v.to_str().ok()).is_some_and(truthy);
    let (key, content_type, length) = match (&record.thumbnail_key, want_thumbnail) {
        (Some(k), true) => (
            BlobKey::parse(k)?,
            record.thumbnail_content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            record.thumbnail_length.unwrap_or(0),
        ),
        _ => (BlobKey::parse(&record.blob_key)?, record.content_type.clone(), record.length),
    };
    let range = match parse_range(headers.get(header::RANGE), length) {
        RangeRequest::Full => None,
        RangeRequest::Partial(r) => Some(r),
        RangeRequest::Unsatisfiable => {
            let err = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "RangeNotSatisfiableException",
                format!("the requested range is outside the file's {length} bytes"),
            );
            let mut res = err.render(api.started.elapsed());
            res.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{length}")));
            return Ok(res);
        }
    };
    let stream = state.blobs.get(&key, range.clone()).await?;
    let mut res = Response::new(Body::from_stream(stream));
    if range.is_some() {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, header_value(&content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Uploaded bytes are served from the API's own origin: never let a browser run them.
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    h.insert(header::CONTENT_DISPOSITION, content_disposition(&content_type, record.filename.as_deref()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    match range {
        Some(r) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            h.insert(header::CONTENT_RANGE, header_value(&format!("bytes {}-{}/{length}", r.start, r.end - 1)));
        }
        None => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    Ok(res.into_response())
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

fn truthy(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true") || v.trim() == "1"
}

/// The download's query parameters. The Web SDK builds URLs by appending to a URL that may
/// already have a query (`…?em-redirect=true&share-secret=S?vframe=true` for video
/// thumbnails), so `?` also separates pairs here. `em-redirect` needs no action: the bytes
/// are served directly.
#[derive(Debug, Default, PartialEq)]
struct DownloadQuery {
    share_secret: Option<String>,
    thumbnail: bool,
}

impl DownloadQuery {
    fn parse(query: &str) -> DownloadQuery {
        let mut q = DownloadQuery::default();
        for pair in query.split(['&', '?']).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "share-secret" => q.share_secret = Some(percent_decode(v)),
                // A video's first frame (`vframe`) is not extracted: it gets the same
                // treatment as any thumbnail request of a non-image, the original.
                "thumbnail" | "vframe" => q.thumbnail |= truthy(v),
                _ => {}
            }
        }
        q
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Media a browser may show inline; everything else is an attachment, so an uploaded HTML
/// or SVG page can never render on the API's origin.
fn content_disposition(content_type: &str, filename: Option<&str>) -> HeaderValue {
    let inline = matches!(content_type, "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/bmp")
        || content_type.starts_with("audio/")
        || content_type.starts_with("video/");
    let mut value = String::from(if inline { "inline" } else { "attachment" });
    // Only the last path component of the client's name, percent-encoded (RFC 6266/8187).
    if let Some(name) = filename.and_then(|f| f.rsplit(['/', '\\']).next()).filter(|n| !n.is_empty()) {
        value.push_str("; filename*=UTF-8''");
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                value.push(b as char);
            } else {
                value.push_str(&format!("%{b:02X}"));
            }
        }
    }
    header_value(&value)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Full,
    Partial(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 §14.1.2). Multiple ranges, other units and malformed
/// headers are ignored (the whole file is sent), as the RFC permits.
fn parse_range(header: Option<&HeaderValue>, len: u64) -> RangeRequest {
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

// --- media messages -----------------------------------------------------------------------

/// Completes a media message's content from the file it points at, when its URL is a
/// chatfiles URL of this app (`…/{org}/{app}/chatfiles/{uuid}`, any host) and the file is
/// known: `file_length`, an image's `size`, the `secret_key` (so the SDK's rewritten
/// download URL carries the share-secret) and a video thumbnail's secret. Values the sender
/// gave are kept; any other URL passes untouched, as Easemob accepts any URL. Never fails a
/// send: a lookup error only skips the enrichment.
pub async fn enrich_media(state: &AppState, app: &App, mut c: pb::message_body::Content) -> pb::message_body::Content {
    let kind = c.r#type();
    if !matches!(kind, ContentType::Image | ContentType::Video | ContentType::Voice | ContentType::File) {
        return c;
    }
    if let Some(file) = known_file(state, app, c.remote_path.as_deref()).await {
        c.file_length.get_or_insert(i32::try_from(file.length).unwrap_or(i32::MAX));
        c.secret_key.get_or_insert(file.secret.clone());
        if kind == ContentType::Image {
            if c.size.is_none()
                && let (Some(w), Some(h)) = (file.width, file.height)
            {
                c.size = Some(pb::message_body::content::Size { width: Some(w.into()), height: Some(h.into()) });
            }
            if let Some(n) = file.thumbnail_length.or(Some(file.length)) {
                c.thumbnail_file_length.get_or_insert(i32::try_from(n).unwrap_or(i32::MAX));
            }
            if c.thumbnail_display_name.is_none() {
                c.thumbnail_display_name = c.display_name.clone().or(file.filename.clone());
            }
        }
        if c.display_name.is_none() {
            c.display_name = file.filename;
        }
    }
    if kind == ContentType::Video
        && c.thumbnail_secret_key.is_none()
        && let Some(thumb) = known_file(state, app, c.thumbnail_remote_path.as_deref()).await
    {
        c.thumbnail_secret_key = Some(thumb.secret);
    }
    c
}

async fn known_file(state: &AppState, app: &App, url: Option<&str>) -> Option<FileRecord> {
    let uuid = chatfile_uuid(url?, app)?;
    match state.store.file(app.id, uuid).await {
        Ok(Some(f)) if f.expires > now_ms() as i64 => Some(f),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "file lookup for a media message failed");
            None
        }
    }
}

/// The file uuid of `…/{org}/{app}/chatfiles/{uuid}[?…]` for this app, whatever the host.
fn chatfile_uuid(url: &str, app: &App) -> Option<Uuid> {
    let url = url.split(['?', '#']).next()?;
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => url,
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., org, name, "chatfiles", id] if *org == app.org && *name == app.name => Uuid::try_parse(id).ok(),
        _ => None,
    }
}

// --- expiry -------------------------------------------------------------------------------

/// Deletes expired files every `files.sweep_interval_secs`, off the request path.
pub async fn sweep_forever(state: AppState) {
    let every = Duration::from_secs(state.config.files.sweep_interval_secs.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.cancelled() => return,
        }
        let n = sweep_expired(&state).await;
        if n > 0 {
            tracing::info!(removed = n, "swept expired chat files");
        }
    }
}

/// Deletes the blobs, then the records, of files past their expiry. A file whose blobs
/// cannot be deleted keeps its record and is retried next sweep.
pub async fn sweep_expired(state: &AppState) -> u64 {
    let mut removed = 0;
    loop {
        let batch = match state.store.expired_files(now_ms() as i64, SWEEP_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%e, "listing expired files failed");
                return removed;
            }
        };
        let full = batch.len() == SWEEP_BATCH as usize;
        let mut progress = false;
        for file in &batch {
            if !delete_blobs(state.blobs.as_ref(), file).await {
                continue;
            }
            match state.store.delete_file(file.app_id, file.uuid).await {
                Ok(_) => {
                    removed += 1;
                    progress = true;
                }
                Err(e) => tracing::warn!(%e, "deleting an expired file's record failed"),
            }
        }
        if !full || !progress {
            return removed;
        }
    }
}

/// Deletes a file's original and thumbnail; true if both are gone.
async fn delete_blobs(blobs: &dyn BlobStore, file: &FileRecord) -> bool {
    let mut ok = true;
    for key in std::iter::once(&file.blob_key).chain(file.thumbnail_key.as_ref()) {
        let result = match BlobKey::parse(key) {
            Ok(k) => blobs.delete(&k).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, key, "could not delete a file blob");
            ok = false;
        }
    }
    ok
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

    #[test]
    fn sdk_query_forms() {
        let q = DownloadQuery::parse("em-redirect=true&share-secret=abc%2Bd&thumbnail=true");
        assert_eq!(q, DownloadQuery { share_secret: Some("abc+d".into()), thumbnail: true });
        let q = DownloadQuery::parse("em-redirect=true&share-secret=S1?vframe=true");
        assert_eq!(q, DownloadQuery { share_secret: Some("S1".into()), thumbnail: true });
        assert_eq!(DownloadQuery::parse(""), DownloadQuery::default());
    }

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
        h.insert("thumbnail-width", hv("60"));
        assert_eq!(thumbnail_box(&h, form, 170), (60, 170));
    }

    #[test]
    fn chatfile_urls_of_this_app_only() {
        let app = App {
            id: Uuid::new_v4(),
            org: "org".into(),
            name: "app".into(),
            client_id: String::new(),
            client_secret: String::new(),
            open_registration: false,
            created: 0,
        };
        let id = Uuid::new_v4();
        for url in [
            format!("https://a1.easemob.com/org/app/chatfiles/{id}"),
            format!("http://127.0.0.1:1/prefix/org/app/chatfiles/{id}?em-redirect=true&share-secret=x"),
            format!("/org/app/chatfiles/{id}"),
        ] {
            assert_eq!(chatfile_uuid(&url, &app), Some(id), "{url}");
        }
        for url in [
            format!("https://h/org/other/chatfiles/{id}"),
            format!("https://h/org/app/chatfiles/{id}/x"),
            "https://h/org/app/chatfiles/not-a-uuid".to_owned(),
            "https://example.com/pic.png".to_owned(),
        ] {
            assert_eq!(chatfile_uuid(&url, &app), None, "{url}");
        }
    }

    #[test]
    fn client_metadata_is_sanitised() {
        assert_eq!(content_type_essence("Image/PNG; charset=x"), Some("image/png".into()));
        assert_eq!(content_type_essence("text/html\r\nx: y"), None);
        assert_eq!(content_type_essence("nonsense"), None);
        assert_eq!(clean_filename("a\r\nb\0.png"), "ab.png");
        let cd = content_disposition("text/html", Some("../../x \"y\".html"));
        assert_eq!(cd, "attachment; filename*=UTF-8''x%20%22y%22.html");
        assert_eq!(content_disposition("image/png", None), "inline");
    }

    /// CRC-32 (PNG chunks), bit by bit: only for building a test header.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn decompression_bombs_are_not_decoded() {
        // A well-formed PNG header declaring 30000 x 30000 pixels: the size is read from the
        // header and the decode refused before any pixel buffer exists.
        let mut png = Vec::new();
        DynamicImage::new_rgb8(1, 1).write_to(Cursor::new(&mut png), ImageFormat::Png).unwrap();
        png[16..20].copy_from_slice(&30000u32.to_be_bytes());
        png[20..24].copy_from_slice(&30000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let t = thumbnail(&png, ImageFormat::Png, (170, 170), 25_000_000, false).expect("header readable");
        assert_eq!(t.size, (30000, 30000));
        assert!(t.encoded.is_none());
    }
}
