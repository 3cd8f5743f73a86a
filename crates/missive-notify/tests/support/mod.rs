//! Local HTTP servers the tests talk to: a plain HTTP/1.1 one (app servers receiving
//! callbacks and webhooks) and an HTTP/2-over-TLS one (APNs, FCM and Google's token endpoint
//! stand-ins). Both record every request and answer through a handler the test gives, and
//! track how many requests are in flight at once.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use missive_notify::transport::TransportConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const CERT_PEM: &str = include_str!("../fixtures/localhost.crt");
pub const KEY_PEM: &str = include_str!("../fixtures/localhost.key");
pub const SERVICE_ACCOUNT_KEY_PEM: &str = include_str!("../fixtures/service-account.key");

/// ring as the process's rustls provider, as the server installs it at start.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lower-case names; the last value wins.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
}

impl Captured {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Hold the answer this long: a slow app server.
    pub delay: Option<Duration>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer { status, body: Vec::new(), delay: None }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer { status, body: body.to_string().into_bytes(), delay: None }
    }

    pub fn text(status: u16, body: &str) -> Answer {
        Answer { status, body: body.as_bytes().to_vec(), delay: None }
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = Some(delay);
        self
    }
}

pub type Handler = Arc<dyn Fn(&Captured) -> Answer + Send + Sync>;

struct Shared {
    handler: Handler,
    requests: Mutex<Vec<Captured>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    async fn serve(&self, request: Captured) -> Answer {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.requests.lock().unwrap().push(request.clone());
        let answer = (self.handler)(&request);
        if let Some(d) = answer.delay {
            tokio::time::sleep(d).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}

/// A running test server.
#[derive(Clone)]
pub struct TestServer {
    pub base_url: String,
    shared: Arc<Shared>,
}

impl TestServer {
    pub fn requests(&self) -> Vec<Captured> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

fn shared(handler: Handler) -> Arc<Shared> {
    Arc::new(Shared {
        handler,
        requests: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
    })
}

/// A plain HTTP/1.1 server on 127.0.0.1 (keep-alive, `content-length` bodies).
pub async fn http1(handler: impl Fn(&Captured) -> Answer + Send + Sync + 'static) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let state = shared(Arc::new(handler));
    let serving = state.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(http1_connection(tcp, serving.clone()));
        }
    });
    TestServer { base_url, shared: state }
}

async fn http1_connection(mut tcp: TcpStream, state: Arc<Shared>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let (method, path) = (first.next().unwrap_or_default().to_owned(), first.next().unwrap_or_default().to_owned());
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let answer = state.serve(Captured { method, path, headers, body, version: "HTTP/1.1".into() }).await;
        let mut out = format!("HTTP/1.1 {} X\r\ncontent-length: {}\r\n", answer.status, answer.body.len()).into_bytes();
        out.extend_from_slice(b"content-type: application/json\r\n\r\n");
        out.extend_from_slice(&answer.body);
        if tcp.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// An HTTP/2 server over TLS (ALPN `h2` only) on 127.0.0.1, with the fixture certificate.
pub async fn http2(handler: impl Fn(&Captured) -> Answer + Send + Sync + 'static) -> TestServer {
    install_crypto();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("https://{}", listener.local_addr().unwrap());
    let state = shared(Arc::new(handler));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config()));
    let serving = state.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, state) = (acceptor.clone(), serving.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut conn) = h2::server::handshake(tls).await else { return };
                while let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(h2_stream(request, respond, state.clone()));
                }
            });
        }
    });
    TestServer { base_url, shared: state }
}

async fn h2_stream(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    state: Arc<Shared>,
) {
    let (parts, mut body) = request.into_parts();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let headers =
        parts.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())).collect();
    let captured = Captured {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or_else(String::new, |p| p.to_string()),
        headers,
        body: bytes,
        version: format!("{:?}", parts.version),
    };
    let answer = state.serve(captured).await;
    let response =
        http::Response::builder().status(answer.status).header("content-type", "application/json").body(()).unwrap();
    let Ok(mut send) = respond.send_response(response, answer.body.is_empty()) else { return };
    if !answer.body.is_empty() {
        let _ = send.send_data(Bytes::from(answer.body), true);
    }
}

fn tls_config() -> rustls::ServerConfig {
    let cert = rustls::pki_types::CertificateDer::from(pem_block(CERT_PEM, "CERTIFICATE"));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pem_block(KEY_PEM, "PRIVATE KEY").into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// The DER of the first `label` block of a PEM text.
pub fn pem_block(pem: &str, label: &str) -> Vec<u8> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).unwrap() + begin.len();
    let stop = pem[start..].find(&end).unwrap() + start;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

/// A transport for the tests: short deadlines, the fixture certificate trusted.
pub fn transport_config() -> TransportConfig {
    install_crypto();
    TransportConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        trusted_roots_pem: Some(CERT_PEM.as_bytes().to_vec()),
        ..TransportConfig::default()
    }
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    missive_notify::callback::sender::unix_ms()
}

/// The event of a REST send (`/messages/users` JSON) as the server would make it, to the
/// request's first recipient.
pub fn event(request: serde_json::Value, msg_id: u64, origin: missive_notify::Origin) -> missive_notify::MessageEvent {
    use missive_api::send::{SendForm, SendRequest, chat_body};
    use missive_msync::pb;
    let req = SendRequest::parse(&request, SendForm::Users, 600).unwrap();
    let mut body = chat_body(req.content().unwrap(), &req.ext);
    body.from = Some(pb::Jid { name: Some(req.from.clone()), ..Default::default() });
    body.to = Some(pb::Jid { name: Some(req.to[0].clone()), ..Default::default() });
    missive_notify::MessageEvent::from_body("org#app", msg_id, now_ms(), origin, &body).unwrap()
}
