//! `GET /{org}/{app}/chatfiles/{uuid}`: the bytes of a file or its thumbnail, streamed, with
//! one `Range`; the share-secret of restricted files; headers that keep a browser from ever
//! running an uploaded page on the API's origin.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use missive_api::files::{RangeRequest, parse_range};
use missive_api::query::percent_decode;
use missive_core::id::now_ms;
use uuid::Uuid;

use super::{file_expired, file_not_found};
use crate::auth::constant_time_eq;
use crate::blobs::BlobKey;
use crate::error::{ApiError, ApiResult};
use crate::http::ctx::{Api, Credentials};
use crate::http::openapi as doc;
use crate::state::AppState;

/// A restricted file without its share-secret. 403 with `chatfile no permission` because
/// that is what the Web SDK's `downloadFile` recognises as "no permission" (4.21.1); any
/// other answer surfaces as a generic download error. Which check failed (missing or wrong
/// secret) is logged, not told to the client.
fn secret_refused(why: &'static str) -> ApiError {
    tracing::debug!(why, "chatfile download refused");
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "EasemobForbiddenOpException", "chatfile no permission")
}

/// `GET /{org}/{app}/chatfiles/{uuid}` — the bytes, or the thumbnail with `thumbnail: true`
/// (header) / `thumbnail=true` or `size=small` (query; SDK 5's thumbnail URL, whose
/// `size=large` is the original). A token is optional, but an invalid one is refused.
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
        ("size" = Option<String>, Query, description = "SDK 5: `small` is the thumbnail, `large` the original."),
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
    let range = match parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), length) {
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
                // SDK 5's image variants: `small` is the thumbnail; `large` (its preview)
                // and anything else the original.
                "size" => q.thumbnail |= v == "small",
                _ => {}
            }
        }
        q
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_query_forms() {
        let q = DownloadQuery::parse("em-redirect=true&share-secret=abc%2Bd&thumbnail=true");
        assert_eq!(q, DownloadQuery { share_secret: Some("abc+d".into()), thumbnail: true });
        let q = DownloadQuery::parse("em-redirect=true&share-secret=S1?vframe=true");
        assert_eq!(q, DownloadQuery { share_secret: Some("S1".into()), thumbnail: true });
        assert_eq!(DownloadQuery::parse(""), DownloadQuery::default());
        assert!(DownloadQuery::parse("size=small").thumbnail);
        assert!(!DownloadQuery::parse("size=large").thumbnail);
    }

    #[test]
    fn uploaded_pages_never_render_inline() {
        let cd = content_disposition("text/html", Some("../../x \"y\".html"));
        assert_eq!(cd, "attachment; filename*=UTF-8''x%20%22y%22.html");
        assert_eq!(content_disposition("image/png", None), "inline");
    }
}
