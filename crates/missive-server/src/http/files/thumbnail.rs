//! Thumbnails of uploaded images, decoded on the dedicated thumbnail workers
//! (`files.thumbnail_workers` threads, `files.thumbnail_queue` uploads waiting), with the
//! canvas checked from the image header before any pixel is decoded. An image is read back
//! from the blob store only when a worker is free for it, so memory holds at most one
//! image and its pixels per worker; an upload arriving when every place is taken keeps its
//! original as the thumbnail rather than wait without bound.

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader};

use super::upload::Stored;
use crate::blobs::{self, BlobKey};
use crate::config::FilesConfig;
use crate::state::AppState;
use crate::telemetry::metrics::ThumbnailOutcome as Outcome;
use crate::workers::WorkerPool;

/// A thumbnail worker has no memory of its own to release; the decoder's buffers are freed
/// after each image.
const IDLE: Duration = Duration::from_secs(60);

/// The thumbnail workers of one server.
pub fn pool(files: &FilesConfig) -> WorkerPool<()> {
    WorkerPool::start("missive-thumb", files.thumbnail_workers, files.thumbnail_queue, IDLE, || ())
}

/// The image formats thumbnails are made from (the `image` features we build).
pub(super) fn image_format(head: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(head) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) => Some(f),
        _ => None,
    }
}

/// What the upload learnt about an image.
#[derive(Default)]
pub(super) struct ThumbnailOutcome {
    /// Pixel size of the original, if its header could be read.
    pub size: Option<(u32, u32)>,
    /// A separate thumbnail: key, content type, length. `None`: the original serves.
    pub stored: Option<(BlobKey, &'static str, u64)>,
}

/// What the blocking worker returns.
struct Thumbnail {
    size: (u32, u32),
    encoded: Option<(Vec<u8>, &'static str)>,
}

/// Makes and stores the thumbnail of an uploaded image. Failures only cost the thumbnail:
/// the original then stands in for it.
pub(super) async fn make_thumbnail(
    state: &AppState,
    stored: &Stored,
    format: ImageFormat,
    bx: (u32, u32),
) -> ThumbnailOutcome {
    let metrics = &state.telemetry.metrics;
    let Ok(mut slot) = state.thumbnails.try_admit() else {
        tracing::info!("every thumbnail worker is busy; the original serves as the thumbnail");
        metrics.thumbnail(Outcome::Skipped);
        return ThumbnailOutcome::default();
    };
    let files = &state.config.files;
    let own = stored.length <= files.own_thumbnail_bytes;
    let max_pixels = files.max_image_pixels;
    let read = async {
        blobs::read_to_vec(state.blobs.as_ref(), &stored.key, stored.length).await.inspect_err(|e| {
            tracing::warn!(error = %e, "could not read an upload back for its thumbnail");
        })
    };
    let made = slot.run_after(read, move |_, bytes| thumbnail(&bytes.ok()?, format, bx, max_pixels, own)).await;
    drop(slot);
    let Ok(Some(made)) = made else {
        metrics.thumbnail(Outcome::Original);
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
    metrics.thumbnail(if outcome.stored.is_some() { Outcome::Made } else { Outcome::Original });
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
    let scaled = match format {
        ImageFormat::Jpeg => jpeg_scaled(bytes, size, bx, limits.max_alloc.unwrap_or(u64::MAX)),
        _ => None,
    };
    let decoded = match scaled.map_or_else(|| reader(limits).decode(), Ok) {
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

/// A JPEG decoded at 1/2, 1/4 or 1/8 of its size (in the DCT, before the pixels exist),
/// the smallest that still covers the thumbnail: a 12-megapixel photo costs about 0.6 MB of
/// pixels for a 170-px thumbnail instead of 36 MB, and a fraction of the time. `None` for
/// what this decoder does not handle (CMYK, 16-bit, a broken file): the full decoder then
/// has its turn.
fn jpeg_scaled(bytes: &[u8], (w, h): (u32, u32), bx: (u32, u32), max_alloc: u64) -> Option<DynamicImage> {
    // The size the thumbnail will have, which the scaled image must cover.
    let ratio = f64::min(f64::from(bx.0) / f64::from(w), f64::from(bx.1) / f64::from(h));
    let want = |side: u32| u16::try_from((f64::from(side) * ratio).ceil() as u32).unwrap_or(u16::MAX).max(1);
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(usize::try_from(max_alloc).unwrap_or(usize::MAX));
    let (sw, sh) = decoder.scale(want(w), want(h)).ok()?;
    let pixels = decoder.decode().ok()?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    match decoder.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => image::RgbImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageRgb8),
        jpeg_decoder::PixelFormat::L8 => image::GrayImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageLuma8),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn jpegs_decode_scaled_yet_give_the_same_thumbnail() {
        let photo = DynamicImage::ImageRgb8(image::RgbImage::from_fn(1600, 1200, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
        }));
        let mut jpeg = Vec::new();
        photo.write_to(Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
        let scaled = jpeg_scaled(&jpeg, (1600, 1200), (170, 170), u64::MAX).expect("an RGB JPEG");
        // 1/8 is the smallest scale still covering 170 × 128.
        assert_eq!((scaled.width(), scaled.height()), (200, 150));
        let t = thumbnail(&jpeg, ImageFormat::Jpeg, (170, 170), 25_000_000, false).unwrap();
        assert_eq!(t.size, (1600, 1200));
        let (bytes, content_type) = t.encoded.expect("a thumbnail");
        assert_eq!(content_type, "image/jpeg");
        let small = image::load_from_memory(&bytes).unwrap();
        let full = photo.thumbnail(170, 170);
        assert_eq!((small.width(), small.height()), (full.width(), full.height()));
    }
}
