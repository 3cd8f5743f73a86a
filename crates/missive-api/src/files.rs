//! Chat files (easemob-api.md §5, `/{org}/{app}/chatfiles`): what an upload says besides its
//! bytes — the thumbnail box, the part's file name and content type — and the one `Range`
//! a download may ask for.
//!
//! The server streams the bytes and reads the multipart form; what it reads from a header
//! or a form field comes here as text and leaves as a value. None of these is ever refused:
//! a malformed value is ignored (a default applies, the whole file is sent), as Easemob and
//! RFC 9110 do. The download's query (share-secret, thumbnail) is still read by the
//! server's `http/files/download.rs`.

use std::ops::Range;

/// Largest thumbnail box a client may ask for; bigger requests are clamped.
pub const MAX_THUMBNAIL_PX: u32 = 2048;
/// Longest file name kept (characters); the rest is cut.
pub const MAX_FILENAME_CHARS: usize = 255;
/// The thumbnail box's width and height: header names, and form field names (the Web SDK).
pub const THUMBNAIL_FIELDS: [&str; 2] = ["thumbnail-width", "thumbnail-height"];

/// A positive number of pixels, surrounding whitespace allowed.
fn px(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.trim().parse::<u32>().ok().filter(|n| *n > 0)
}

/// Keeps a `thumbnail-width` / `thumbnail-height` form field's positive number; other
/// fields are ignored.
pub fn form_px(name: Option<&str>, value: &[u8], into: &mut [Option<u32>; 2]) {
    let Some(slot) = THUMBNAIL_FIELDS.iter().position(|f| Some(*f) == name) else { return };
    if let Some(n) = px(value) {
        into[slot] = Some(n);
    }
}

/// The thumbnail box (width, height): the header, else the form field, else `default`;
/// clamped to 1..=[`MAX_THUMBNAIL_PX`].
pub fn thumbnail_box(headers: [Option<&[u8]>; 2], form: [Option<u32>; 2], default: u32) -> (u32, u32) {
    let side = |i: usize| headers[i].and_then(px).or(form[i]).unwrap_or(default).clamp(1, MAX_THUMBNAIL_PX);
    (side(0), side(1))
}

/// Keeps the client's name for display: control characters removed, length capped. It is
/// never used as a path.
pub fn clean_filename(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(MAX_FILENAME_CHARS).collect::<String>().trim().to_owned()
}

/// `type/subtype` of a part's content type, lower-cased, if it is a well-formed media type
/// (parameters dropped). Anything else is treated as absent.
pub fn content_type_essence(raw: &str) -> Option<String> {
    let essence = raw.split(';').next()?.trim().to_ascii_lowercase();
    let (t, s) = essence.split_once('/')?;
    let token = |x: &str| {
        !x.is_empty() && x.len() <= 64 && x.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    (token(t) && token(s)).then_some(essence)
}

/// The content type of a filename's extension, for parts sent without one.
pub fn guess_content_type(filename: &str) -> Option<&'static str> {
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

/// What a download's `Range` header asks of a file of a given length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    Full,
    Partial(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 §14.1.2). Multiple ranges, other units and malformed
/// headers are ignored (the whole file is sent), as the RFC permits.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|v| v.trim().strip_prefix("bytes=")) else {
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

    #[test]
    fn thumbnail_box_from_header_then_form_field() {
        assert_eq!(thumbnail_box([None, None], [None, None], 170), (170, 170));
        let mut form = [None, None];
        form_px(Some("thumbnail-width"), b"100", &mut form);
        form_px(Some("thumbnail-height"), b" 0", &mut form);
        form_px(Some("other"), b"5", &mut form);
        form_px(None, b"5", &mut form);
        assert_eq!(form, [Some(100), None]);
        assert_eq!(thumbnail_box([None, None], form, 170), (100, 170));
        assert_eq!(thumbnail_box([Some(&b" 60 "[..]), Some(&b"x"[..])], form, 170), (60, 170));
        assert_eq!(thumbnail_box([Some(&b"99999"[..]), None], [None, None], 0), (MAX_THUMBNAIL_PX, 1));
    }

    #[test]
    fn client_metadata_is_sanitised() {
        assert_eq!(content_type_essence("Image/PNG; charset=x"), Some("image/png".into()));
        assert_eq!(content_type_essence("text/html\r\nx: y"), None);
        assert_eq!(content_type_essence("nonsense"), None);
        assert_eq!(clean_filename("a\r\nb\0.png"), "ab.png");
        assert_eq!(clean_filename(&"x".repeat(300)).len(), MAX_FILENAME_CHARS);
        assert_eq!(guess_content_type("A.JPG"), Some("image/jpeg"));
        assert_eq!(guess_content_type("noext"), None);
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let r = |s: &str| parse_range(Some(s), 100);
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
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }
}
