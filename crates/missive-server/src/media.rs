//! What a media message (image, video, voice, file) learns from the chat file it points
//! at, on its way to the send path (PROTOCOL.md §5). Used by `http/messages.rs` before
//! `AppState::send`.

use missive_core::id::now_ms;
use missive_core::model::{App, FileRecord};
use missive_msync::pb;
use missive_msync::pb::message_body::content::Type as ContentType;
use uuid::Uuid;

use crate::state::AppState;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
