//! `GET /websocket`: the MSYNC endpoint the Easemob client SDKs connect to.
//!
//! One binary frame is one `MSync`. The first frame must be a PROVISION (login); after it
//! the connection runs `Session::run`, one `select!` over three sources: frames from the
//! client, events from the hub (new messages, online-only messages, kicks), and the idle
//! timer. Writes to this client happen only here, so a slow client can only slow itself;
//! the hub disconnects it when its bounded event channel fills (see `crate::hub`).
//!
//! See docs/protocol.md and PROTOCOL.md §3 for the frames and the SDK's rules this follows.

/// `/ws`: SDK 5's sync gateway (conversations, contacts, joined groups).
pub mod gateway;
mod login;
mod session;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use tracing::Instrument;

use crate::http::observe::RequestId;
use crate::state::AppState;

/// Upgrades the request. Buffers are kept small: most frames are well under 1 KiB (a larger
/// one grows the buffer to its length, announced in its header), and tungstenite's default
/// 128 KiB read buffer alone would cost more per idle connection than everything else a
/// session holds; the read buffer is zeroed to its full size on the first read, so every
/// byte of it is resident. No permessage-deflate (axum does not offer it), and no
/// LZ4: our PROVISION reply never enables protocol compression.
///
/// The session runs in a `session` span with the upgrade request's id, so every line it
/// logs can be traced to the connection (the id is also in the 101 answer's
/// `X-Request-Id`).
pub async fn upgrade(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    ws: WebSocketUpgrade,
) -> Response {
    let span = match request_id {
        Some(Extension(RequestId(id))) => tracing::info_span!("session", request_id = %id),
        None => tracing::info_span!("session"),
    };
    let max_frame = state.config.sessions.max_frame_bytes;
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_frame_size(max_frame)
        .max_message_size(max_frame)
        .on_upgrade(move |socket| session::serve(state, socket).instrument(span))
}
