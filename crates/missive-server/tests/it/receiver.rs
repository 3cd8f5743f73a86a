//! Local receivers for callbacks and pushes: an HTTP/1.1 app server (axum) and an HTTP/2
//! server without TLS (h2c, as an APNs stand-in: the APNs client speaks only HTTP/2). Each
//! records every request and answers the way the test says, which it may change while the
//! server runs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::Value;
use tokio::net::TcpListener;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The answer it was given (the behaviour at its arrival).
    pub answered: u16,
}

impl Captured {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// How the receiver answers a request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::json(200, "{}")
    }

    pub fn json(status: u16, body: &str) -> Answer {
        Answer { status, body: body.to_owned(), delay: Duration::ZERO }
    }

    /// Answers after `delay`: a slow (or, with a long delay, hung) app server.
    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Captured) -> Answer + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    handler: Arc<Mutex<Handler>>,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl Receiver {
    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes how later requests are answered.
    pub fn answer_with(&self, handler: impl Fn(&Captured) -> Answer + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests to `path`.
    pub fn at(&self, path: &str) -> Vec<Captured> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    async fn serve(&self, mut request: Captured) -> Answer {
        let handler = self.handler.lock().unwrap().clone();
        let answer = handler(&request);
        request.answered = answer.status;
        self.requests.lock().unwrap().push(request);
        if !answer.delay.is_zero() {
            tokio::time::sleep(answer.delay).await;
        }
        answer
    }
}

fn receiver(listener: &TcpListener, handler: Handler) -> Receiver {
    Receiver {
        addr: listener.local_addr().expect("addr"),
        handler: Arc::new(Mutex::new(handler)),
        requests: Arc::new(Mutex::new(Vec::new())),
    }
}

/// An HTTP/1.1 receiver on 127.0.0.1, answering every request with `handler`.
pub async fn http1(handler: impl Fn(&Captured) -> Answer + Send + Sync + 'static) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let r = receiver(&listener, Arc::new(handler));
    let serving = r.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let r = serving.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.map(|b| b.to_vec()).unwrap_or_default();
            let captured = Captured {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                headers: headers(&parts.headers),
                body,
                answered: 0,
            };
            let answer = r.serve(captured).await;
            axum::response::Response::builder()
                .status(answer.status)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(answer.body))
                .expect("response")
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    r
}

fn headers(map: &http::HeaderMap) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())).collect()
}

/// An HTTP/2 receiver without TLS (prior knowledge) on 127.0.0.1.
pub async fn h2c(handler: impl Fn(&Captured) -> Answer + Send + Sync + 'static) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let r = receiver(&listener, Arc::new(handler));
    let serving = r.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let r = serving.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else { return };
                while let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(h2_stream(request, respond, r.clone()));
                }
            });
        }
    });
    r
}

async fn h2_stream(request: http::Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>, r: Receiver) {
    let (parts, mut body) = request.into_parts();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let mut headers = headers(&parts.headers);
    headers.insert(":version".into(), format!("{:?}", parts.version));
    let captured = Captured {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers,
        body: bytes,
        answered: 0,
    };
    let answer = r.serve(captured).await;
    let response = http::Response::builder().status(answer.status).body(()).expect("response");
    let Ok(mut send) = respond.send_response(response, answer.body.is_empty()) else { return };
    if !answer.body.is_empty() {
        let _ = send.send_data(Bytes::from(answer.body), true);
    }
}

/// `md5_hex(callId + secret + timestamp)`, computed here independently of the server.
pub fn signature(body: &Value, secret: &str) -> String {
    let text = format!(
        "{}{}{}",
        body["callId"].as_str().unwrap_or_default(),
        secret,
        body["timestamp"].as_i64().unwrap_or_default()
    );
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
