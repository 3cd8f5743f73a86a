//! `missive listen` and `missive chat`: watch messages arrive, and talk, from a terminal,
//! through the same MSYNC client the tests and the load generator use.

use anyhow::{Context, anyhow, bail};
use missive_msync::client::text_body;
use missive_msync::{ClientEvent, ClientOptions, Login, MsyncClient, Received, key_values_to_json, websocket_url};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How to reach a server as a user.
#[derive(clap::Args, Clone)]
pub struct Connect {
    /// The user to log in as.
    pub user: String,
    /// The server: its HTTP base URL (as for the REST API) or its WebSocket URL
    /// (`ws://…/websocket`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// App key, `org#app`.
    #[arg(long, default_value = "demo#demo")]
    pub app_key: String,
    /// A user token (`POST /{org}/{app}/token` with `grant_type: password`).
    #[arg(long, env = "MISSIVE_USER_TOKEN")]
    pub token: String,
    /// Device resource; a fixed one keeps delivery state across runs.
    #[arg(long)]
    pub resource: Option<String>,
}

impl Connect {
    async fn open(&self) -> anyhow::Result<MsyncClient> {
        let url = websocket_url(&self.url).ok_or_else(|| {
            anyhow!("--url {}: give http(s)://HOST[:PORT] or ws(s)://HOST[:PORT]/websocket", self.url)
        })?;
        let login = Login {
            url: url.clone(),
            app_key: self.app_key.clone(),
            user: self.user.clone(),
            token: self.token.clone(),
            resource: self.resource.clone(),
        };
        MsyncClient::connect(login, ClientOptions::default()).await.with_context(|| format!("logging in to {url}"))
    }
}

/// One received message as a JSON line.
fn describe(m: &Received) -> serde_json::Value {
    let mut v = serde_json::json!({"id": m.id.to_string(), "from": m.from, "to": m.to, "time": m.timestamp});
    if let Some(body) = &m.body {
        v["type"] = body.r#type.unwrap_or(0).into();
        if let Some(c) = body.contents.first() {
            v["content"] = serde_json::json!({
                "type": c.r#type.unwrap_or(0),
                "text": c.text, "url": c.remote_path, "action": c.action, "customEvent": c.custom_event,
            });
        }
        if !body.ext.is_empty() {
            v["ext"] = serde_json::Value::Object(key_values_to_json(&body.ext));
        }
        if let Some(ack) = body.ack_message_id {
            v["ack_message_id"] = ack.to_string().into();
        }
    }
    v
}

/// Prints events until the connection ends. Returns an error if it ended abnormally.
async fn print_events(client: &mut MsyncClient) -> anyhow::Result<()> {
    while let Some(event) = client.next_event().await {
        match event {
            ClientEvent::Message(m) => println!("{}", describe(&m)),
            ClientEvent::Kicked { operation, .. } => bail!("disconnected by the server (operation {operation})"),
            ClientEvent::Closed { reason } => bail!("connection closed: {reason}"),
        }
    }
    Ok(())
}

/// `missive listen USER`: prints every message as one JSON line.
pub async fn listen(c: Connect) -> anyhow::Result<()> {
    let mut client = c.open().await?;
    eprintln!("logged in as {} ({}); waiting for messages", c.user, client.resource());
    print_events(&mut client).await
}

/// `missive chat USER PEER`: each stdin line is sent to PEER; incoming messages print as
/// JSON lines.
pub async fn chat(c: Connect, peer: String) -> anyhow::Result<()> {
    let mut client = c.open().await?;
    eprintln!("logged in as {}; type lines to send them to {peer}", c.user);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                if line.is_empty() { continue; }
                let ack = client.send(&peer, text_body(&c.user, &peer, &line, None)).await?;
                eprintln!("sent {}", ack.server_id);
            }
            event = client.next_event() => match event {
                Some(ClientEvent::Message(m)) => println!("{}", describe(&m)),
                Some(ClientEvent::Kicked { operation, .. }) => bail!("disconnected by the server (operation {operation})"),
                Some(ClientEvent::Closed { reason }) => bail!("connection closed: {reason}"),
                None => break,
            }
        }
    }
    client.close().await;
    Ok(())
}
