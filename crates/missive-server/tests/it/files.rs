//! Chat files (`/chatfiles`, easemob-api.md §5): byte-exact round trips up to the size limit,
//! the 413 past it, share-secrets, thumbnails of real PNG and JPEG images, ranges, expiry and
//! the sweeper, concurrent uploads, hostile filenames, media messages that point at files
//! (received over MSYNC and downloaded the way the Web SDK rewrites the URL), and the S3
//! backend against a real S3-compatible server (moto) started by the test.

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use image::{DynamicImage, ImageFormat, RgbImage};
use missive_msync::pb;
use missive_msync::pb::message_body::content::Type as ContentType;
use missive_msync::{ClientEvent, ClientOptions, Login, MsyncClient, Received};
use missive_server::config::{BlobBackend, S3Config};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{ProcessServer, TestServer, assert_error, eventually, test_config};

const MB10: usize = 10 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(15);

// --- helpers ------------------------------------------------------------------------------

/// Deterministic bytes that do not compress (xorshift), so sizes mean what they say.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A noisy RGB image (large enough on disk to get a separate thumbnail).
fn noisy_image(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_raw(w, h, noise((w * h * 3) as usize, u64::from(w) * 31 + u64::from(h))).unwrap();
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img).write_to(Cursor::new(&mut out), format).unwrap();
    out
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("a decodable image");
    (img.width(), img.height())
}

/// `POST /chatfiles` with one `file` part (and extra headers); status and JSON body.
async fn upload_with(
    s: &TestServer,
    token: Option<&str>,
    part: Part,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, Value), reqwest::Error> {
    let mut req = s.http.post(s.url("/chatfiles")).multipart(Form::new().part("file", part));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await?;
    let status = res.status();
    let text = res.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Uploads `bytes` as `name`; asserts success and returns (uuid, share-secret).
async fn upload(s: &TestServer, token: &str, bytes: Vec<u8>, name: &str, headers: &[(&str, &str)]) -> (String, String) {
    let part = Part::bytes(bytes).file_name(name.to_owned());
    let (st, b) = upload_with(s, Some(token), part, headers).await.expect("upload");
    assert_eq!(st, StatusCode::OK, "{b}");
    let e = &b["entities"][0];
    assert_eq!(e["type"], "chatfile", "{b}");
    (e["uuid"].as_str().expect("uuid").to_owned(), e["share-secret"].as_str().expect("share-secret").to_owned())
}

/// `GET /chatfiles/{uuid}{query}` with headers; the raw response.
async fn download(s: &TestServer, uuid: &str, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = s.http.get(s.url(&format!("/chatfiles/{uuid}{query}")));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("download")
}

async fn bytes_of(res: reqwest::Response) -> Vec<u8> {
    res.bytes().await.expect("body").to_vec()
}

async fn json_of(res: reqwest::Response) -> (StatusCode, Value) {
    let st = res.status();
    (st, serde_json::from_str(&res.text().await.unwrap()).unwrap())
}

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

// --- upload and download ------------------------------------------------------------------

#[tokio::test]
async fn binary_round_trip_and_easemob_response() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice"]).await;
    let alice = s.user_token("alice").await;

    // Every byte value, and a user token (uploads accept any token of the app).
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let part = Part::bytes(bytes.clone()).file_name("blob.bin").mime_str("application/x-custom").unwrap();
    let (st, b) = upload_with(&s, Some(&alice), part, &[]).await.unwrap();
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["action"], "post");
    assert_eq!(b["path"], "/chatfiles");
    assert_eq!(b["uri"], s.url("/chatfiles"));
    assert_eq!(b["application"], s.app.id.to_string());
    assert_eq!(b["organization"], "testorg");
    assert_eq!(b["applicationName"], "testapp");
    assert!(b["timestamp"].is_u64() && b["duration"].is_u64(), "{b}");
    let e = b["entities"].as_array().expect("entities");
    assert_eq!(e.len(), 1);
    let uuid = e[0]["uuid"].as_str().unwrap();
    assert!(uuid::Uuid::try_parse(uuid).is_ok());
    assert!(e[0]["share-secret"].as_str().is_some_and(|s| s.len() >= 16), "{b}");

    // Unrestricted: no secret, no token needed.
    let res = download(&s, uuid, "", &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-custom");
    assert_eq!(res.headers()["content-length"], "70000");
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(bytes_of(res).await, bytes);

    // Without a part content type, the filename decides; a type that is not a media type
    // is ignored too.
    let (id, _) = upload(&s, &admin, b"%PDF-1.4".to_vec(), "report.PDF", &[]).await;
    assert_eq!(download(&s, &id, "", &[]).await.headers()["content-type"], "application/pdf");
    let (id, _) = upload(&s, &admin, vec![1, 2, 3], "noext", &[]).await;
    assert_eq!(download(&s, &id, "", &[]).await.headers()["content-type"], "application/octet-stream");
    // An empty file is a file.
    let (id, _) = upload(&s, &admin, vec![], "empty.txt", &[]).await;
    let res = download(&s, &id, "", &[]).await;
    assert_eq!(res.headers()["content-length"], "0");
    assert!(bytes_of(res).await.is_empty());
}

#[tokio::test]
async fn files_survive_a_restart() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let png = noisy_image(400, 300, ImageFormat::Png);
    let (id, secret) = upload(&s, &admin, png.clone(), "keep.png", &[("restrict-access", "true")]).await;
    let s = s.restart().await;
    let res = download(&s, &id, "", &[("share-secret", &secret)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(bytes_of(res).await, png);
    let thumb = bytes_of(download(&s, &id, "?thumbnail=true", &[("share-secret", &secret)]).await).await;
    assert_eq!(dimensions(&thumb), (170, 128));
    assert_eq!(download(&s, &id, "", &[("share-secret", "nope")]).await.status(), 403);
}

#[tokio::test]
async fn upload_errors() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;

    // No token; a garbage token.
    let (st, b) = upload_with(&s, None, Part::bytes(vec![1]), &[]).await.unwrap();
    assert_error(st, &b, 401, "unauthorized", "Unable to authenticate (OAuth)");
    let (st, b) = upload_with(&s, Some("garbage"), Part::bytes(vec![1]), &[]).await.unwrap();
    assert_eq!(st, 401, "{b}");
    assert_eq!(b["error"], "auth_bad_access_token");

    // A form without a `file` part, and a body that is not multipart at all.
    let form = Form::new().text("other", "value");
    let res = s.http.post(s.url("/chatfiles")).bearer_auth(&admin).multipart(form).send().await.unwrap();
    let (st, b) = json_of(res).await;
    assert_error(st, &b, 400, "illegal_argument", "file must be provided.");
    let (st, b) = s.post("/chatfiles", Some(&admin), json!({"file": "x"})).await;
    assert_error(st, &b, 400, "illegal_argument", "file must be provided.");

    // Unknown app.
    let res = s.http.post(format!("http://{}/no/such/chatfiles", s.addr)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn ten_megabytes_pass_and_one_byte_more_is_413() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    assert_eq!(s.config.files.max_bytes, MB10 as u64, "Easemob's documented default");

    let big = noise(MB10, 7);
    let (id, _) = upload(&s, &admin, big.clone(), "big.bin", &[]).await;
    let got = bytes_of(download(&s, &id, "", &[]).await).await;
    assert!(got == big, "10 MB file not byte-exact ({} bytes back)", got.len());

    // One byte over, with a Content-Length (counted while streaming: the declared length
    // is within the multipart overhead).
    let (st, b) = upload_with(&s, Some(&admin), Part::bytes(noise(MB10 + 1, 8)), &[]).await.expect("a response");
    assert_error(st, &b, 413, "file exceeding maximum limit", "the file size exceeds the maximum limit.");

    // One byte over, streamed without a Content-Length (chunked).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        noise(MB10 + 1, 9).chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let part = Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)));
    let (st, b) = upload_with(&s, Some(&admin), part, &[]).await.expect("a response");
    assert_error(st, &b, 413, "file exceeding maximum limit", "the file size exceeds the maximum limit.");

    // Far over: refused from the Content-Length alone, before the body is read.
    let (st, b) = upload_with(&s, Some(&admin), Part::bytes(noise(3 * MB10, 10)), &[]).await.expect("a response");
    assert_error(st, &b, 413, "file exceeding maximum limit", "the file size exceeds the maximum limit.");

    // Nothing of the refused uploads was kept: one blob (the 10 MB file), no staged parts.
    let blobs: Vec<PathBuf> = files_under(&s.data_dir().join("files"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
}

#[tokio::test]
async fn configured_limit_and_concurrent_uploads() {
    let s = TestServer::start_with(|c| c.files.max_bytes = 1000).await;
    let admin = s.admin_token().await;
    let (st, b) = upload_with(&s, Some(&admin), Part::bytes(vec![0; 1001]), &[]).await.unwrap();
    assert_eq!(st, 413, "{b}");

    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let uploads = (0..16u64).map(|i| {
        let (s, admin) = (&s, admin.clone());
        async move {
            let bytes = noise(100_000 + i as usize * 997, i);
            let (id, _) = upload(s, &admin, bytes.clone(), &format!("f{i}.bin"), &[]).await;
            (id, bytes)
        }
    });
    let done = futures_util::future::join_all(uploads).await;
    let mut ids: Vec<&String> = done.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16);
    for (id, bytes) in &done {
        assert!(bytes_of(download(&s, id, "", &[]).await).await == *bytes, "file {id} differs");
    }
}

#[tokio::test]
async fn restricted_files_need_their_share_secret() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let bytes = noise(5000, 1);
    let (id, secret) = upload(&s, &admin, bytes.clone(), "secret.bin", &[("restrict-access", "true")]).await;

    let (st, b) = json_of(download(&s, &id, "", &[]).await).await;
    assert_error(st, &b, 403, "forbidden", "chatfile no permission");
    // A token does not replace the secret.
    let (st, b) = json_of(download(&s, &id, "", &[("authorization", &format!("Bearer {admin}"))]).await).await;
    assert_error(st, &b, 403, "forbidden", "chatfile no permission");
    let (st, b) = json_of(download(&s, &id, "", &[("share-secret", "wrong")]).await).await;
    assert_error(st, &b, 403, "forbidden", "chatfile no permission");
    let (st, b) = json_of(download(&s, &id, "?share-secret=wrong", &[]).await).await;
    assert_error(st, &b, 403, "forbidden", "chatfile no permission");

    // Header form, and the Web SDK's query form.
    let res = download(&s, &id, "", &[("share-secret", &secret)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(bytes_of(res).await, bytes);
    let res = download(&s, &id, &format!("?em-redirect=true&share-secret={secret}"), &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(bytes_of(res).await, bytes);

    // "Only presence is checked": restrict-access: false still restricts, as documented.
    let (id2, _) = upload(&s, &admin, vec![1], "x", &[("restrict-access", "false")]).await;
    assert_eq!(download(&s, &id2, "", &[]).await.status(), 403);

    // A present but invalid token is refused even though none is needed.
    let (st, b) =
        json_of(download(&s, &id, "", &[("share-secret", &secret), ("authorization", "Bearer junk")]).await).await;
    assert_eq!(st, 401, "{b}");
    assert_eq!(b["error"], "auth_bad_access_token");

    // Unknown and malformed ids; another app's file.
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid", "..%2F..%2Fmissive.db"] {
        let (st, b) = json_of(download(&s, id, "", &[]).await).await;
        assert_error(st, &b, 404, "entity_not_found", "file may not exists");
    }
    let other = s.create_app("testorg", "other", false).await;
    let res = s
        .http
        .get(s.app_url(&other, &format!("/chatfiles/{id}")))
        .header("share-secret", &secret)
        .send()
        .await
        .unwrap();
    let (st, b) = json_of(res).await;
    assert_error(st, &b, 404, "entity_not_found", "file may not exists");
}

#[tokio::test]
async fn ranges() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let bytes = noise(1000, 3);
    let (id, _) = upload(&s, &admin, bytes.clone(), "r.bin", &[]).await;

    for (range, want, content_range) in [
        ("bytes=0-9", 0..10, "bytes 0-9/1000"),
        ("bytes=990-", 990..1000, "bytes 990-999/1000"),
        ("bytes=-5", 995..1000, "bytes 995-999/1000"),
        ("bytes=500-100000", 500..1000, "bytes 500-999/1000"),
    ] {
        let res = download(&s, &id, "", &[("range", range)]).await;
        assert_eq!(res.status(), 206, "{range}");
        assert_eq!(res.headers()["content-range"], content_range);
        assert_eq!(res.headers()["content-length"], (want.end - want.start).to_string());
        assert_eq!(bytes_of(res).await, bytes[want].to_vec(), "{range}");
    }
    let res = download(&s, &id, "", &[("range", "bytes=1000-")]).await;
    assert_eq!(res.status(), 416);
    assert_eq!(res.headers()["content-range"], "bytes */1000");
    let (_, b) = json_of(res).await;
    assert_eq!(b["error"], "range_not_satisfiable");
    // Several ranges: the whole file, as RFC 9110 permits.
    let res = download(&s, &id, "", &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(bytes_of(res).await, bytes);
}

#[tokio::test]
async fn abandoned_uploads_leave_nothing_behind() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    // A client that announces 1 MB, sends part of it, and disconnects.
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /testorg/testapp/chatfiles HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\
         content-type: multipart/form-data; boundary=XyZ\r\ncontent-length: 1000000\r\n\r\n\
         --XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&noise(300_000, 21)).await.unwrap();
    sock.flush().await.unwrap();
    let root = s.data_dir().join("files");
    // The server has started staging the upload; then the client goes away.
    eventually("the upload to be staged", || async { !files_under(&root.join("tmp")).is_empty() }).await;
    drop(sock);
    eventually("the staged upload to be removed", || async { files_under(&root).is_empty() }).await;
    // And the server is fine.
    let (id, _) = upload(&s, &admin, vec![1, 2, 3], "ok.bin", &[]).await;
    assert_eq!(bytes_of(download(&s, &id, "", &[]).await).await, vec![1, 2, 3]);
}

// --- thumbnails ---------------------------------------------------------------------------

#[tokio::test]
async fn thumbnails_of_real_images() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;

    // PNG, default box (170 px on the long side), header form.
    let png = noisy_image(640, 480, ImageFormat::Png);
    assert!(png.len() > 10 * 1024);
    let (id, _) = upload(&s, &admin, png.clone(), "photo.png", &[]).await;
    let res = download(&s, &id, "", &[("thumbnail", "true")]).await;
    assert_eq!(res.headers()["content-type"], "image/png");
    let thumb = bytes_of(res).await;
    assert_eq!(image::guess_format(&thumb).unwrap(), ImageFormat::Png);
    let (w, h) = dimensions(&thumb);
    assert_eq!(w, 170);
    assert!((127..=128).contains(&h), "{w}x{h}");
    // The original is untouched and still the default.
    assert_eq!(bytes_of(download(&s, &id, "", &[]).await).await, png);
    assert_eq!(download(&s, &id, "", &[]).await.headers()["content-type"], "image/png");

    // JPEG, portrait, with a requested box, query form.
    let jpg = noisy_image(600, 800, ImageFormat::Jpeg);
    let (id, _) =
        upload(&s, &admin, jpg, "photo.jpg", &[("thumbnail-width", "100"), ("thumbnail-height", "100")]).await;
    let res = download(&s, &id, "?thumbnail=true", &[]).await;
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let thumb = bytes_of(res).await;
    assert_eq!(image::guess_format(&thumb).unwrap(), ImageFormat::Jpeg);
    let (w, h) = dimensions(&thumb);
    assert_eq!(h, 100);
    assert!((74..=75).contains(&w), "{w}x{h}");

    // Recognised by content, not by name or declared type.
    let jpg = noisy_image(400, 400, ImageFormat::Jpeg);
    let part = Part::bytes(jpg).file_name("no-extension").mime_str("application/octet-stream").unwrap();
    let (_, b) = upload_with(&s, Some(&admin), part, &[]).await.unwrap();
    let id = b["entities"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(download(&s, &id, "", &[]).await.headers()["content-type"], "image/jpeg");
    assert_eq!(dimensions(&bytes_of(download(&s, &id, "?thumbnail=true", &[]).await).await), (170, 170));

    // Images of 10 KB or less are their own thumbnail; so are non-images and images
    // already inside the box.
    let small = noisy_image(40, 40, ImageFormat::Png);
    assert!(small.len() <= 10 * 1024);
    let (id, _) = upload(&s, &admin, small.clone(), "small.png", &[]).await;
    assert_eq!(bytes_of(download(&s, &id, "?thumbnail=true", &[]).await).await, small);
    let text = b"not an image".to_vec();
    let (id, _) = upload(&s, &admin, text.clone(), "a.txt", &[]).await;
    assert_eq!(bytes_of(download(&s, &id, "", &[("thumbnail", "true")]).await).await, text);
    let (id, _) =
        upload(&s, &admin, png.clone(), "p.png", &[("thumbnail-width", "1000"), ("thumbnail-height", "1000")]).await;
    assert_eq!(bytes_of(download(&s, &id, "?thumbnail=true", &[]).await).await, png);

    // A corrupt "PNG" (right magic, garbage after) uploads fine and serves itself.
    let mut broken = png[..16].to_vec();
    broken.extend(noise(20_000, 4));
    let (id, _) = upload(&s, &admin, broken.clone(), "broken.png", &[]).await;
    assert_eq!(bytes_of(download(&s, &id, "?thumbnail=true", &[]).await).await, broken);
}

/// A restricted upload of `png` with `query` on the URL, as the SDKs send theirs; the uuid.
async fn upload_restricted_with_query(s: &TestServer, token: &str, png: Vec<u8>, query: &str) -> String {
    let part = Part::bytes(png).file_name("photo.png".to_owned());
    let res = s
        .http
        .post(s.url(&format!("/chatfiles{query}")))
        .bearer_auth(token)
        .header("restrict-access", "true")
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::OK);
    let b: Value = res.json().await.expect("json");
    assert!(b["entities"][0]["share-secret"].is_string(), "the secret is always issued: {b}");
    b["entities"][0]["uuid"].as_str().expect("uuid").to_owned()
}

/// SDK 5 (the UIKit's SDK) uploads with `restrict-access` and `md5` in the query, then shows
/// the image as `<img src=".../chatfiles/{uuid}?size=small">` (and `size=large`) with no
/// secret: such uploads are readable by their uuid; the SDK 4 form stays restricted.
#[tokio::test]
async fn sdk5_uploads_are_served_by_uuid_with_size_variants() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let png = noisy_image(640, 480, ImageFormat::Png);
    let sdk5 = "?chat-type=CHAT&chat-target=bob&md5=&imageType=large&width=640&height=480";
    let id = upload_restricted_with_query(&s, &admin, png.clone(), sdk5).await;
    let small = download(&s, &id, "?size=small", &[]).await;
    assert_eq!(small.status(), StatusCode::OK);
    let (w, h) = dimensions(&bytes_of(small).await);
    assert!(w == 170 && (127..=128).contains(&h), "thumbnail {w}x{h}");
    let large = download(&s, &id, "?size=large", &[]).await;
    assert_eq!(large.status(), StatusCode::OK);
    assert_eq!(bytes_of(large).await, png);

    // The same bytes uploaded in SDK 4's form (which names the conversation too, without
    // `md5`) keep needing the secret.
    let id = upload_restricted_with_query(&s, &admin, png, "?chat-type=singleChat&chat-target=bob").await;
    let (st, b) = json_of(download(&s, &id, "?size=small", &[]).await).await;
    assert_eq!((st, b["error_description"].clone()), (StatusCode::FORBIDDEN, json!("chatfile no permission")));
}

// --- hostile filenames --------------------------------------------------------------------

#[tokio::test]
async fn filenames_never_become_paths() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let names = ["../../escape-1.txt", "..\\..\\escape-2.txt", "/etc/escape-3.txt", "a/../../../escape-4.txt", ".."];
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (id, _) = upload(&s, &admin, format!("payload {i}").into_bytes(), name, &[]).await;
        ids.push(id);
    }
    // Everything stored is under files/{app uuid}/{2 hex}/{file uuid}.
    let root = s.data_dir().join("files");
    let stored = files_under(&root);
    assert_eq!(stored.len(), names.len(), "{stored:?}");
    for p in &stored {
        let rel = p.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        assert_eq!(parts.len(), 3, "{rel:?}");
        assert_eq!(parts[0], s.app.id.to_string());
        assert!(ids.contains(&parts[2]), "{rel:?}");
        assert!(parts[2].starts_with(&parts[1]), "{rel:?}");
    }
    let parent = s.data_dir().parent().unwrap();
    for n in 1..=4 {
        assert!(!files_under(parent).iter().any(|p| p.ends_with(format!("escape-{n}.txt"))), "escape-{n} written");
    }
    // The name comes back only as a header parameter, reduced to its last component.
    let res = download(&s, &ids[0], "", &[]).await;
    assert_eq!(res.headers()["content-disposition"], "attachment; filename*=UTF-8''escape-1.txt");
    assert_eq!(bytes_of(res).await, b"payload 0");
    let res = download(&s, &ids[1], "", &[]).await;
    assert_eq!(res.headers()["content-disposition"], "attachment; filename*=UTF-8''escape-2.txt");
}

// --- expiry -------------------------------------------------------------------------------

#[tokio::test]
async fn expired_files_answer_file_expired_and_are_swept() {
    // Retention 1 s, no sweep during the test: the record stays and says "expired".
    let s = TestServer::start_with(|c| {
        c.files.retention_secs = 1;
        c.files.sweep_interval_secs = 3600;
    })
    .await;
    let admin = s.admin_token().await;
    let png = noisy_image(300, 300, ImageFormat::Png);
    let (id, _) = upload(&s, &admin, png, "e.png", &[]).await;
    eventually("the file to expire", || async { download(&s, &id, "", &[]).await.status() == 404 }).await;
    let (st, b) = json_of(download(&s, &id, "", &[]).await).await;
    assert_error(st, &b, 404, "file_expired", &format!("file {id} is expired"));
    assert_eq!(files_under(&s.data_dir().join("files")).len(), 2, "original and thumbnail still stored");

    // With a 1 s sweep, the original and its thumbnail are deleted, then the record.
    let s = TestServer::start_with(|c| {
        c.files.retention_secs = 1;
        c.files.sweep_interval_secs = 1;
    })
    .await;
    let admin = s.admin_token().await;
    let (id, _) = upload(&s, &admin, noisy_image(300, 300, ImageFormat::Png), "e.png", &[]).await;
    assert_eq!(files_under(&s.data_dir().join("files")).len(), 2);
    let root = s.data_dir().join("files");
    eventually("the sweeper to delete the blobs", || async { files_under(&root).is_empty() }).await;
    eventually("the record to go", || async {
        let (_, b) = json_of(download(&s, &id, "", &[]).await).await;
        b["error"] == "entity_not_found"
    })
    .await;
    // Requests were never blocked: a fresh upload works right away.
    let (id, _) = upload(&s, &admin, vec![9; 10], "n.bin", &[]).await;
    assert_eq!(download(&s, &id, "", &[]).await.status(), 200);
}

// --- media messages -----------------------------------------------------------------------

async fn next_message(c: &mut MsyncClient) -> Received {
    match tokio::time::timeout(WAIT, c.next_event()).await {
        Ok(Some(ClientEvent::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn content(m: &Received) -> pb::message_body::Content {
    m.body.as_ref().expect("chat body").contents[0].clone()
}

/// What the Web SDK does with a received attachment (PROTOCOL.md §5): keep the path of
/// `remote_path`, put its own `apiUrl` in front, append `em-redirect` and the secret.
fn sdk_url(api_url: &str, remote_path: &str, secret: Option<&str>) -> String {
    let path = &remote_path[remote_path[8..].find('/').unwrap() + 8..];
    let mut url = format!("{api_url}{path}");
    if !remote_path.contains("?em-redirect") {
        url.push_str("?em-redirect=true");
        if let Some(s) = secret {
            url.push_str(&format!("&share-secret={s}"));
        }
    }
    url
}

#[tokio::test]
async fn media_messages_carry_what_the_sdk_needs_to_download() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    s.register(&admin, &["alice", "bob"]).await;
    let bob_token = s.user_token("bob").await;
    let login = Login {
        url: s.ws_url(),
        app_key: s.app_key(),
        user: "bob".into(),
        token: bob_token,
        resource: Some("web".into()),
    };
    let mut bob = MsyncClient::connect(login, ClientOptions::default()).await.expect("login");

    let png = noisy_image(640, 480, ImageFormat::Png);
    let (img, img_secret) = upload(&s, &admin, png.clone(), "cat.png", &[("restrict-access", "true")]).await;
    // The URL as an app server would write it: any host, this app's path.
    let img_url = format!("https://im.example.com/testorg/testapp/chatfiles/{img}");
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "img", "body": {"url": img_url, "filename": "cat.png"}}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let c = content(&next_message(&mut bob).await);
    assert_eq!(c.r#type(), ContentType::Image);
    assert_eq!(c.remote_path.as_deref(), Some(img_url.as_str()));
    assert_eq!(c.display_name.as_deref(), Some("cat.png"));
    assert_eq!(c.secret_key.as_deref(), Some(img_secret.as_str()), "secret filled in");
    assert_eq!(c.file_length, Some(png.len() as i32));
    let size = c.size.expect("size filled in");
    assert_eq!((size.width, size.height), (Some(640.0), Some(480.0)));

    // The SDK's rewritten URLs work against Missive: the image and its thumbnail.
    let api_url = format!("http://{}", s.addr);
    let url = sdk_url(&api_url, c.remote_path.as_deref().unwrap(), c.secret_key.as_deref());
    let res = s.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    assert_eq!(bytes_of(res).await, png);
    let res = s.http.get(format!("{url}&thumbnail=true")).send().await.unwrap();
    assert_eq!(dimensions(&bytes_of(res).await), (170, 128));

    // Values the sender gives win; a file message gets its length.
    let bytes = noise(12_345, 5);
    let (file, secret) = upload(&s, &admin, bytes.clone(), "doc.bin", &[]).await;
    let file_url = s.url(&format!("/chatfiles/{file}"));
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "file", "body": {"url": file_url, "filename": "d.bin", "secret": secret}}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let c = content(&next_message(&mut bob).await);
    assert_eq!(c.file_length, Some(12_345));
    assert_eq!(c.secret_key.as_deref(), Some(secret.as_str()));
    let url = sdk_url(&api_url, &file_url, Some(&secret));
    assert_eq!(bytes_of(s.http.get(&url).send().await.unwrap()).await, bytes);

    // A video whose thumbnail is another restricted upload gets that upload's secret.
    let (video, _) = upload(&s, &admin, noise(50_000, 6), "v.mp4", &[("restrict-access", "")]).await;
    let (thumb, thumb_secret) =
        upload(&s, &admin, noisy_image(320, 240, ImageFormat::Jpeg), "t.jpg", &[("restrict-access", "true")]).await;
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "video", "body": {
                "url": s.url(&format!("/chatfiles/{video}")), "filename": "v.mp4", "length": 3,
                "thumb": s.url(&format!("/chatfiles/{thumb}"))}}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let c = content(&next_message(&mut bob).await);
    assert_eq!(c.file_length, Some(50_000));
    assert_eq!(c.thumbnail_secret_key.as_deref(), Some(thumb_secret.as_str()));
    assert_eq!(download(&s, &video, &format!("?share-secret={}", c.secret_key.unwrap()), &[]).await.status(), 200);

    // Any other URL is accepted as given and left alone.
    let (st, b) = s
        .post(
            "/messages/users",
            Some(&admin),
            json!({"from": "alice", "to": ["bob"], "type": "audio", "body": {"url": "https://cdn.example.com/a.amr", "length": 2}}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let c = content(&next_message(&mut bob).await);
    assert_eq!(c.remote_path.as_deref(), Some("https://cdn.example.com/a.amr"));
    assert_eq!((c.file_length, c.secret_key), (None, None));
    bob.close().await;
}

// --- S3 backend against moto --------------------------------------------------------------

/// `moto_server` (PyPI `moto[server]`) on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("the S3 backend test needs `moto_server` on PATH: install it with `pip install 'moto[server]'`")
            }
            Err(e) => panic!("could not start moto_server: {e}"),
        };
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        // Readiness is the port answering, polled with a bound.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "moto_server did not listen on {addr} within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        moto
    }

    /// Object keys in `bucket` (ListObjectsV2), read from the XML.
    async fn keys(&self, http: &reqwest::Client, bucket: &str) -> Vec<String> {
        let xml =
            http.get(format!("{}/{bucket}?list-type=2", self.endpoint)).send().await.unwrap().text().await.unwrap();
        xml.split("<Key>").skip(1).map(|k| k.split("</Key>").next().unwrap().to_owned()).collect()
    }

    /// Multipart uploads started and neither completed nor aborted.
    async fn open_uploads(&self, http: &reqwest::Client, bucket: &str) -> usize {
        let xml = http.get(format!("{}/{bucket}?uploads", self.endpoint)).send().await.unwrap().text().await.unwrap();
        xml.matches("<UploadId>").count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3_config(moto: &Moto, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        endpoint: moto.endpoint.clone(),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        prefix: "node-a".into(),
        allow_http: true,
        virtual_hosted_style: false,
    }
}

#[tokio::test]
async fn s3_backend_against_a_real_s3_server() {
    let moto = Moto::start().await;
    let http = crate::common::http();
    let bucket = "missive-files";
    let res = http.put(format!("{}/{bucket}", moto.endpoint)).send().await.unwrap();
    assert!(res.status().is_success(), "create bucket: {}", res.status());

    let s = TestServer::start_with(|c| {
        c.files.backend = BlobBackend::S3;
        c.files.s3 = s3_config(&moto, bucket);
        c.files.max_bytes = 6 * 1024 * 1024;
    })
    .await;
    let admin = s.admin_token().await;

    // A one-PUT file and a multipart one (over the 5 MiB part size), byte-exact.
    let small = noise(100_000, 11);
    let (small_id, _) = upload(&s, &admin, small.clone(), "s.bin", &[("restrict-access", "true")]).await;
    let big = noise(6 * 1024 * 1024, 12);
    let (big_id, big_secret) = upload(&s, &admin, big.clone(), "b.bin", &[("restrict-access", "true")]).await;
    let got = bytes_of(download(&s, &big_id, "", &[("share-secret", &big_secret)]).await).await;
    assert!(got == big, "multipart object differs ({} bytes)", got.len());
    let res = download(&s, &big_id, "", &[("share-secret", &big_secret), ("range", "bytes=5242870-5242889")]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(bytes_of(res).await, big[5_242_870..5_242_890].to_vec());
    assert_eq!(download(&s, &small_id, "", &[]).await.status(), 403);

    // Thumbnails are stored beside the original.
    let png = noisy_image(500, 250, ImageFormat::Png);
    let (img, _) = upload(&s, &admin, png, "i.png", &[]).await;
    assert_eq!(dimensions(&bytes_of(download(&s, &img, "?thumbnail=true", &[]).await).await), (170, 85));

    let app = s.app.id;
    let mut keys = moto.keys(&http, bucket).await;
    keys.sort();
    let mut want = vec![
        format!("node-a/{app}/{small_id}"),
        format!("node-a/{app}/{big_id}"),
        format!("node-a/{app}/{img}"),
        format!("node-a/{app}/{img}.thumb"),
    ];
    want.sort();
    assert_eq!(keys, want);
    assert!(files_under(&s.data_dir().join("files")).is_empty(), "nothing on local disk");

    // Over the limit after a part was sent: refused, and the multipart upload aborted.
    let (st, b) = upload_with(&s, Some(&admin), Part::bytes(noise(6 * 1024 * 1024 + 1, 13)), &[]).await.unwrap();
    assert_eq!(st, 413, "{b}");
    eventually("the aborted multipart upload to be cleaned up", || async {
        moto.open_uploads(&http, bucket).await == 0
    })
    .await;
    assert_eq!(moto.keys(&http, bucket).await.len(), 4);

    // Expiry sweeps delete objects too.
    let s2 = TestServer::start_with(|c| {
        c.files.backend = BlobBackend::S3;
        c.files.s3 = s3_config(&moto, bucket);
        c.files.s3.prefix = "node-b".into();
        c.files.retention_secs = 1;
        c.files.sweep_interval_secs = 1;
    })
    .await;
    let admin2 = s2.admin_token().await;
    upload(&s2, &admin2, noisy_image(300, 300, ImageFormat::Png), "x.png", &[]).await;
    let b_keys = || async { moto.keys(&http, bucket).await.into_iter().filter(|k| k.starts_with("node-b/")).count() };
    assert_eq!(b_keys().await, 2);
    eventually("the sweeper to delete the S3 objects", || async { b_keys().await == 0 }).await;
    assert_eq!(moto.keys(&http, bucket).await.len(), 4, "the other node's objects are untouched");
}

// --- memory measurement (not a test of behaviour) -----------------------------------------

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Peak resident memory of a `missive` process while 10 clients upload 10 MB each at once
/// (random bytes), then while 10 clients upload a large JPEG each (thumbnails decoded,
/// `files.thumbnail_workers` at a time).
/// Run: `cargo test -p missive-server --test it files::upload_memory -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
async fn upload_memory_peak_with_ten_concurrent_10mb_uploads() {
    let dir = crate::common::TestData::new().await;
    let mut config = test_config(dir.path());
    dir.apply(&mut config);
    let store = missive_server::open_store(&config).await.unwrap();
    let app = missive_server::create_app(&*store, "mem", "app", false).await.unwrap();
    store.close().await;
    let server = ProcessServer::start(&dir).await;
    let pid = server.child.id();
    let base = format!("http://{}/mem/app", server.addr);
    let http = crate::common::http();
    let token = http
        .post(format!("{base}/token"))
        .json(&json!({"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let upload_all = |body: bytes::Bytes, clients: usize| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let uploads = (0..clients).map(|_| {
                let (http, base, token, body) = (reqwest::Client::new(), base.clone(), token.clone(), body.clone());
                tokio::spawn(async move {
                    let len = body.len() as u64;
                    let part = Part::stream_with_length(reqwest::Body::from(body), len).file_name("f");
                    let form = Form::new().part("file", part);
                    let res = http.post(format!("{base}/chatfiles")).bearer_auth(&token).multipart(form).send().await;
                    assert_eq!(res.unwrap().status(), 200);
                })
            });
            for u in futures_util::future::join_all(uploads).await {
                u.unwrap();
            }
        }
    };
    let random = bytes::Bytes::from(noise(MB10, 42));
    // Warm up (allocator arenas, lazily built state), then take the baseline.
    upload_all(random.clone(), 1).await;
    let before = proc_status_kib(pid, "VmHWM:");
    upload_all(random, 10).await;
    let after = proc_status_kib(pid, "VmHWM:");
    println!(
        "missive pid {pid}: VmHWM {before} KiB -> {after} KiB (+{} KiB) while 10 clients uploaded 10 MiB of \
         random bytes each at once",
        after.saturating_sub(before)
    );
    let jpeg = bytes::Bytes::from(noisy_image(2400, 1800, ImageFormat::Jpeg));
    assert!(jpeg.len() <= MB10);
    upload_all(jpeg.clone(), 10).await;
    let after_images = proc_status_kib(pid, "VmHWM:");
    println!(
        "missive pid {pid}: VmHWM {after} KiB -> {after_images} KiB while 10 clients uploaded a {} KiB 2400x1800 JPEG \
         each at once (thumbnails made 2 at a time)",
        jpeg.len() / 1024
    );
    drop(server);
}
