//! Blob storage for chat files: where the bytes of uploads and their thumbnails live.
//!
//! [`BlobStore`] is the seam: a streaming writer (nothing is ever held whole in memory),
//! ranged streaming reads, and deletes. Two implementations:
//! - [`LocalBlobs`], the default: a directory (`<data>/files`). Uploads are written to
//!   `tmp/`, fsynced and renamed into place, so a key never names a partial file.
//! - [`S3Blobs`]: an S3-compatible bucket through `object_store`, for several nodes sharing
//!   files. Built without `object_store`'s `aws` feature so aws-lc-rs (a slow C build) stays
//!   out of the graph: request signing and HTTPS use ring.
//!
//! Keys ([`BlobKey`]) are made only from the app's and the file's uuids; nothing the client
//! sends (filename, content type, path) reaches a file system path or an object key.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::config::{BlobBackend, Config, S3Config};

/// A blob's bytes (or the requested range of them), read as they are sent.
pub type BlobStream = BoxStream<'static, io::Result<Bytes>>;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    #[error("not a blob key: {0:?}")]
    InvalidKey(String),
    #[error("blob storage configuration: {0}")]
    Config(String),
    #[error("blob storage I/O: {0}")]
    Io(#[from] io::Error),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

/// Where one blob lives: the original of file `file` of app `app`, or its thumbnail.
///
/// Its text form (`{app}/{file}` or `{app}/{file}.thumb`, hyphenated uuids) is what the
/// `files` table stores; [`BlobKey::parse`] accepts nothing else, so even a tampered row
/// cannot point outside the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobKey {
    app: Uuid,
    file: Uuid,
    thumbnail: bool,
}

const THUMB_SUFFIX: &str = ".thumb";

impl BlobKey {
    pub fn original(app: Uuid, file: Uuid) -> BlobKey {
        BlobKey { app, file, thumbnail: false }
    }

    pub fn thumbnail(app: Uuid, file: Uuid) -> BlobKey {
        BlobKey { app, file, thumbnail: true }
    }

    pub fn parse(s: &str) -> Result<BlobKey, BlobError> {
        let bad = || BlobError::InvalidKey(s.to_owned());
        let (app, rest) = s.split_once('/').ok_or_else(bad)?;
        let (file, thumbnail) = match rest.strip_suffix(THUMB_SUFFIX) {
            Some(f) => (f, true),
            None => (rest, false),
        };
        let app = Uuid::try_parse(app).map_err(|_| bad())?;
        let file = Uuid::try_parse(file).map_err(|_| bad())?;
        let key = BlobKey { app, file, thumbnail };
        // Only the canonical spelling round-trips (no upper case, braces or URNs).
        if key.to_string() != s {
            return Err(bad());
        }
        Ok(key)
    }

    /// The file's name within its app's directory.
    fn name(&self) -> String {
        if self.thumbnail { format!("{}{THUMB_SUFFIX}", self.file) } else { self.file.to_string() }
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name())
    }
}

/// Storage for file bytes. Implementations must be safe to share between nodes only if
/// they say so (`S3Blobs` is; `LocalBlobs` is per machine).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing `key`. Nothing is visible under the key until [`BlobWriter::finish`];
    /// dropping the writer before that discards what was written.
    async fn writer(&self, key: &BlobKey) -> Result<Box<dyn BlobWriter>, BlobError>;

    /// Streams `range` of the blob (all of it for `None`). The caller has checked the
    /// range against the length it recorded at upload.
    async fn get(&self, key: &BlobKey, range: Option<Range<u64>>) -> Result<BlobStream, BlobError>;

    /// Deletes the blob; deleting a missing blob succeeds, so sweeps can be retried.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// Writes a small blob held in memory (a thumbnail).
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), BlobError> {
        let mut w = self.writer(key).await?;
        w.write(bytes).await?;
        w.finish().await.map(|_| ())
    }
}

/// An upload in progress.
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError>;
    /// Makes the blob durable and visible under its key; returns its length.
    async fn finish(self: Box<Self>) -> Result<u64, BlobError>;
}

/// Reads a whole blob of (expected) length `len` into memory, refusing more (thumbnail
/// input). Allocated once at `len`: growing by doubling would briefly hold three copies.
pub async fn read_to_vec(store: &dyn BlobStore, key: &BlobKey, len: u64) -> Result<Vec<u8>, BlobError> {
    let limit = len;
    let mut stream = store.get(key, None).await?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(BlobError::Io(io::Error::other("blob larger than expected")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Opens the backend `config.files.backend` names.
pub fn open(config: &Config) -> Result<Arc<dyn BlobStore>, BlobError> {
    Ok(match config.files.backend {
        BlobBackend::Local => Arc::new(LocalBlobs::open(&config.files_dir())?),
        BlobBackend::S3 => Arc::new(S3Blobs::new(&config.files.s3)?),
    })
}

// --- local directory ----------------------------------------------------------------------

/// Files under one directory: `{root}/{app}/{2 hex}/{file}[.thumb]`, uploads staged in
/// `{root}/tmp`. The two-character fan-out keeps directories small for busy apps.
#[derive(Debug)]
pub struct LocalBlobs {
    root: PathBuf,
}

/// Read and write buffer: large enough that a 10 MB file takes ~160 syscalls, small enough
/// that many concurrent transfers cost little memory.
const IO_BUFFER: usize = 64 * 1024;

impl LocalBlobs {
    /// Creates the directory if needed and removes uploads a crash left half-written.
    pub fn open(root: &Path) -> Result<LocalBlobs, BlobError> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "part") {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(LocalBlobs { root: root.to_path_buf() })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        let file = key.file.simple().to_string();
        self.root.join(key.app.to_string()).join(&file[..2]).join(key.name())
    }
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn writer(&self, key: &BlobKey) -> Result<Box<dyn BlobWriter>, BlobError> {
        let tmp = self.root.join("tmp").join(format!("{}.part", Uuid::new_v4()));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Box::new(LocalWriter {
            guard: TmpGuard(Some(tmp)),
            file: BufWriter::with_capacity(IO_BUFFER, file),
            target: self.path(key),
            written: 0,
        }))
    }

    async fn get(&self, key: &BlobKey, range: Option<Range<u64>>) -> Result<BlobStream, BlobError> {
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let reader = match range {
            None => {
                let len = file.metadata().await?.len();
                tokio::io::AsyncReadExt::take(file, len)
            }
            Some(r) => {
                file.seek(io::SeekFrom::Start(r.start)).await?;
                tokio::io::AsyncReadExt::take(file, r.end.saturating_sub(r.start))
            }
        };
        Ok(ReaderStream::with_capacity(reader, IO_BUFFER).boxed())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Removes a staged upload unless it was renamed into place. Runs on drop, so an upload
/// whose request was cancelled (client gone, 413) leaves nothing behind.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Unlinking is one quick syscall; not worth a blocking-pool hop.
            let _ = std::fs::remove_file(path);
        }
    }
}

struct LocalWriter {
    guard: TmpGuard,
    file: BufWriter<tokio::fs::File>,
    target: PathBuf,
    written: u64,
}

#[async_trait]
impl BlobWriter for LocalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.file.write_all(&chunk).await?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, BlobError> {
        self.file.flush().await?;
        // Durable before the metadata row says the file exists.
        self.file.get_ref().sync_all().await?;
        let parent = self.target.parent().expect("blob paths have a parent");
        tokio::fs::create_dir_all(parent).await?;
        let tmp = self.guard.0.as_ref().expect("staged path").clone();
        tokio::fs::rename(&tmp, &self.target).await?;
        self.guard.0 = None;
        // The rename itself is durable once the directory is synced.
        tokio::fs::File::open(parent).await?.sync_all().await?;
        Ok(self.written)
    }
}

// --- S3 -----------------------------------------------------------------------------------

/// Objects in an S3-compatible bucket, keyed `{prefix}{app}/{file}[.thumb]`.
#[derive(Debug)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    prefix: String,
}

/// S3's minimum part size (except the last). Uploads up to this size are one PUT; larger
/// ones are multipart, holding at most one part in memory at a time.
const S3_PART: usize = 5 * 1024 * 1024;

impl S3Blobs {
    /// Builds the client; empty config values fall back to `AWS_*` environment variables.
    pub fn new(config: &S3Config) -> Result<S3Blobs, BlobError> {
        // reqwest is built with rustls but no bundled provider: pick ring before the first
        // client is built.
        crate::install_crypto_provider();
        let mut b = AmazonS3Builder::from_env()
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(config.virtual_hosted_style);
        let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        if let Some(v) = set(&config.bucket) {
            b = b.with_bucket_name(v);
        }
        if let Some(v) = set(&config.endpoint) {
            b = b.with_endpoint(v);
        }
        if let Some(v) = set(&config.region) {
            b = b.with_region(v);
        }
        if let Some(v) = set(&config.access_key_id) {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = set(&config.secret_access_key) {
            b = b.with_secret_access_key(v);
        }
        let store = b.build().map_err(|e| BlobError::Config(e.to_string()))?;
        let prefix = config.prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(S3Blobs { store: Arc::new(store), prefix })
    }

    fn path(&self, key: &BlobKey) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }
}

fn not_found(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e => e.into(),
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn writer(&self, key: &BlobKey) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(S3Writer {
            store: self.store.clone(),
            path: self.path(key),
            buf: BytesMut::new(),
            upload: None,
            written: 0,
        }))
    }

    async fn get(&self, key: &BlobKey, range: Option<Range<u64>>) -> Result<BlobStream, BlobError> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let result = self.store.get_opts(&self.path(key), options).await.map_err(not_found)?;
        Ok(result.into_stream().map_err(io::Error::other).boxed())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

struct S3Writer {
    store: Arc<AmazonS3>,
    path: ObjectPath,
    /// Bytes not yet sent: less than one part.
    buf: BytesMut,
    /// Started once the upload outgrows one part.
    upload: Option<Box<dyn MultipartUpload>>,
    written: u64,
}

impl S3Writer {
    async fn send_parts(&mut self) -> Result<(), BlobError> {
        while self.buf.len() >= S3_PART {
            let part = self.buf.split_to(S3_PART).freeze();
            let upload = match &mut self.upload {
                Some(u) => u,
                None => self.upload.insert(self.store.put_multipart(&self.path).await?),
            };
            // One part in flight: bounded memory matters more than upload speed here.
            upload.put_part(PutPayload::from(part)).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.written += chunk.len() as u64;
        self.buf.extend_from_slice(&chunk);
        self.send_parts().await
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, BlobError> {
        let rest = std::mem::take(&mut self.buf).freeze();
        match self.upload.take() {
            None => {
                self.store.put(&self.path, PutPayload::from(rest)).await?;
            }
            Some(mut upload) => {
                let done = async {
                    if !rest.is_empty() {
                        upload.put_part(PutPayload::from(rest)).await?;
                    }
                    upload.complete().await
                }
                .await;
                if let Err(e) = done {
                    let _ = upload.abort().await;
                    return Err(e.into());
                }
            }
        }
        Ok(self.written)
    }
}

impl Drop for S3Writer {
    /// An unfinished multipart upload keeps its parts (and their cost) in the bucket until
    /// aborted; abort it in the background.
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(%e, "could not abort an unfinished S3 upload");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_anything_else() {
        let (a, f) = (Uuid::new_v4(), Uuid::new_v4());
        for k in [BlobKey::original(a, f), BlobKey::thumbnail(a, f)] {
            assert_eq!(BlobKey::parse(&k.to_string()).unwrap(), k);
        }
        for bad in [
            "",
            "../etc/passwd",
            &format!("{a}/../{f}"),
            &format!("{a}/{f}/x"),
            &format!("{a}/{}", f.simple()),
            &format!("{a}/{f}.thumb.thumb"),
            &format!("{}/{f}", a.to_string().to_uppercase()),
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn local_writer_is_invisible_until_finished_and_cleaned_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        let key = BlobKey::original(Uuid::new_v4(), Uuid::new_v4());
        let mut w = store.writer(&key).await.unwrap();
        w.write(Bytes::from_static(b"hello")).await.unwrap();
        assert!(matches!(store.get(&key, None).await, Err(BlobError::NotFound)));
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        let mut w = store.writer(&key).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(w.finish().await.unwrap(), 11);
        let all = read_to_vec(&store, &key, 100).await.unwrap();
        assert_eq!(all, b"hello world");
        let part: Vec<Bytes> = store.get(&key, Some(6..9)).await.unwrap().try_collect().await.unwrap();
        assert_eq!(part.concat(), b"wor");
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(matches!(store.get(&key, None).await, Err(BlobError::NotFound)));
    }
}
