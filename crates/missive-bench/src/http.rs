//! A bare HTTP/1.1 keep-alive client: one TCP connection per sender, no pool, no retries.
//!
//! The load generator shares two cores with the server, so every microsecond it spends is
//! one the server does not get. hyper's connection-level client does exactly one request
//! at a time on one socket (what "C concurrent keep-alive senders" means) without the
//! pool bookkeeping, redirects and header maps a full client adds per request. The same
//! type sends setup calls (tokens, registrations) as JSON.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// One keep-alive connection to `addr`.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection that opens its socket on first use (and again after a failure).
    pub fn new(addr: SocketAddr) -> Conn {
        let host = HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("localhost"));
        Conn { addr, host, sender: None }
    }

    async fn open(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just opened"))
    }

    /// Opens the socket now, so the first request's latency does not include the handshake
    /// (and a pool of thousands is not opened all at once under load).
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        self.open().await.map(|_| ())
    }

    /// Sends one request and reads the whole response. A transport error drops the socket;
    /// the next call reconnects.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.send_typed(method, path, auth, HeaderValue::from_static("application/json"), body).await
    }

    /// [`Conn::send`] with a body of another type (a multipart upload).
    pub async fn send_typed(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        content_type: HeaderValue,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let host = self.host.clone();
        let result = async {
            let sender = self.open().await?;
            sender.ready().await?;
            let mut req = Request::builder().method(method).uri(path).header(HOST, host);
            if !body.is_empty() {
                req = req.header(CONTENT_TYPE, content_type);
            }
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            let res = sender.send_request(req.body(Full::new(body))?).await?;
            let status = res.status();
            let bytes = res.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    /// A JSON call: the body is serialized, the answer parsed (a non-JSON answer becomes a
    /// JSON string).
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let (status, answer) = self.send(method, path, auth, bytes).await?;
        let value = serde_json::from_slice(&answer)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer).into_owned()));
        Ok((status, value))
    }

    /// A JSON call that must answer 200.
    pub async fn ok(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.json(method, path, auth, body).await?;
        if status != StatusCode::OK {
            bail!("{path} answered {status}: {value}");
        }
        Ok(value)
    }
}

/// `Bearer <token>` as a header value.
pub fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}
