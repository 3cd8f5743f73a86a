//! Login: the PROVISION handshake that opens every MSYNC session.
//!
//! The first frame of a connection must be a PROVISION carrying the app key, the user and a
//! token. Every refusal is a PROVISION reply with the status and reason string the SDK maps
//! to the right error (PROTOCOL.md §3.2); success registers the device with the hub and the
//! store and echoes the resource the SDK adopts.
//!
//! Two generations of the handshake arrive here (docs/protocol.md, "SDK 5 (UIKit) vs SDK
//! 4"): `easemob-websdk` 4.x and `agora-chat` put `"$t$" + token` in `MSync.auth` (and
//! repeat it in `Provision.auth_token`); the SDK bundled in `easemob-chat-uikit` 3.x ("SDK
//! 5", `action_version` v6.0) sends the token only in `Provision.auth_token`, as JSON
//! `{"token":"$t$…"}`. Both need the same reply.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use missive_core::id::now_ms;
use missive_core::model::{App, DeviceInfo, User};
use missive_msync::pb;
use missive_msync::pb::m_sync::Command;
use missive_msync::pb::status::ErrorCode;
use prost::Message as _;
use tokio::time::timeout;

use crate::auth::{Principal, TokenError};
use crate::hub::SessionRegistration;
use crate::state::{AppState, OpenSessionError};
use crate::telemetry::metrics::{Grant, LoginFailure};

/// The SDK gives up on a login that gets no PROVISION answer within 10 s; we wait as long
/// for its first frame.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Login {
    pub app: Arc<App>,
    pub user: User,
    pub device: DeviceInfo,
    pub registration: SessionRegistration,
}

pub(super) fn frame(cmd: Command, payload: &impl prost::Message) -> Message {
    let env = pb::MSync {
        command: Some(cmd as i32),
        payload: Some(Bytes::from(payload.encode_to_vec())),
        ..Default::default()
    };
    Message::Binary(Bytes::from(env.encode_to_vec()))
}

pub(super) fn status(code: ErrorCode, reason: Option<&str>) -> pb::Status {
    pb::Status { error_code: Some(code as i32), reason: reason.map(str::to_owned), ..Default::default() }
}

fn provision_reply(code: ErrorCode, reason: Option<&str>, resource: Option<String>) -> Message {
    frame(Command::Provision, &pb::Provision { status: Some(status(code, reason)), resource, ..Default::default() })
}

/// Reads and answers the PROVISION frame. Every refusal is a PROVISION reply with the
/// status and reason string the SDK maps to the right error (PROTOCOL.md §3.2).
pub(super) async fn login(state: &AppState, socket: &mut WebSocket) -> Option<Login> {
    let first = match timeout(LOGIN_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Binary(b)))) => b,
        _ => return None,
    };
    let env = pb::MSync::decode(first.as_ref()).ok()?;
    if env.command != Some(Command::Provision as i32) {
        return None;
    }
    let provision = pb::Provision::decode(env.payload.clone().unwrap_or_default()).ok()?;
    let refuse = |code: ErrorCode, reason: &str| provision_reply(code, Some(reason), None);
    let guid = env.guid.unwrap_or_default();
    let app_key = guid.app_key.unwrap_or_default();
    let Some((org, app_name)) = app_key.split_once('#') else {
        let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, app key is invalid")).await;
        return None;
    };
    let app = match state.apps.get(org, app_name).await {
        Ok(Some(app)) => app,
        _ => {
            let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, app key is invalid")).await;
            return None;
        }
    };
    let username = guid.name.unwrap_or_default().to_ascii_lowercase();
    let token = provision_token(env.auth.as_deref(), provision.auth_token.as_deref()).unwrap_or_default();
    let principal = state.auth.verify(app.id, &token).await;
    let user = match state.store.user_by_name(app.id, &username).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(%e, "login lookup failed");
            let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, server is busy")).await;
            return None;
        }
    };
    let metrics = &state.telemetry.metrics;
    let Some(user) = user else {
        metrics.login_failed(Grant::Msync, LoginFailure::UnknownUser);
        let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, user not found")).await;
        return None;
    };
    // Before the token check: deactivation revokes the user's tokens, and the SDK should
    // report a banned user as an auth failure (any FAIL reason it has no mapping for becomes
    // WEBIM_CONNCTION_AUTH_ERROR, 2), not as a bad token (TOKEN_NOT_ASSIGN, 28).
    if !user.activated {
        metrics.login_failed(Grant::Msync, LoginFailure::NotActivated);
        let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, user is deactivated")).await;
        return None;
    }
    match principal {
        Ok(Principal::User(u)) if u == user.uuid => {}
        Err(TokenError::Expired) => {
            metrics.login_failed(Grant::Msync, LoginFailure::BadToken);
            let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, token expired")).await;
            return None;
        }
        _ => {
            metrics.login_failed(Grant::Msync, LoginFailure::BadToken);
            let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, token or password does not match login info")).await;
            return None;
        }
    }
    let resource = provision
        .resource
        .clone()
        .or(guid.client_resource)
        .filter(|r| !r.is_empty() && r.len() <= 128)
        .unwrap_or_else(|| format!("missive_{}", now_ms()));
    let device = DeviceInfo {
        resource: resource.clone(),
        device_uuid: provision.device_uuid.clone().unwrap_or_default(),
        device_name: provision.device_name.clone().unwrap_or_default(),
    };
    let registration = match state.open_session(app.id, &user.username, &device).await {
        Ok(r) => r,
        Err(OpenSessionError::TooManyDevices) => {
            metrics.login_failed(Grant::Msync, LoginFailure::TooManyDevices);
            let _ =
                socket.send(provision_reply(ErrorCode::TooManyDevices, Some("Sorry, too many devices"), None)).await;
            return None;
        }
        Err(OpenSessionError::Store(e)) => {
            metrics.login_failed(Grant::Msync, LoginFailure::Busy);
            tracing::warn!(%e, "device registration failed");
            let _ = socket.send(refuse(ErrorCode::Fail, "Sorry, server is busy")).await;
            return None;
        }
    };
    if socket.send(provision_reply(ErrorCode::Ok, None, Some(resource))).await.is_err() {
        state.close_session(app.id, &user.username, &device.resource, registration.id).await;
        return None;
    }
    metrics.login(Grant::Msync);
    Some(Login { app, user, device, registration })
}

/// The access token of a PROVISION: `MSync.auth` when the client set it (SDK 4), else
/// `Provision.auth_token` (SDK 5), either as its JSON form `{"token":"$t$…"}` or as a bare
/// token; the `$t$` prefix is optional in every form. `None` when neither carries one.
fn provision_token(msync_auth: Option<&str>, auth_token: Option<&str>) -> Option<String> {
    fn unprefixed(t: &str) -> &str {
        t.strip_prefix("$t$").unwrap_or(t)
    }
    if let Some(auth) = msync_auth.filter(|a| !a.is_empty()) {
        return Some(unprefixed(auth).to_owned());
    }
    let auth_token = auth_token.map(str::trim).filter(|t| !t.is_empty())?;
    if auth_token.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(auth_token).ok()?;
        return json.get("token").and_then(serde_json::Value::as_str).map(|t| unprefixed(t).to_owned());
    }
    Some(unprefixed(auth_token).to_owned())
}

#[cfg(test)]
mod tests {
    use super::provision_token;

    #[test]
    fn sdk4_token_comes_from_msync_auth() {
        let t = provision_token(Some("$t$YWMtabc"), Some(r#"{"token":"$t$YWMtother"}"#));
        assert_eq!(t.as_deref(), Some("YWMtabc"));
    }

    #[test]
    fn sdk5_token_comes_from_provision_auth_token() {
        assert_eq!(provision_token(None, Some(r#"{"token":"$t$YWMtabc"}"#)).as_deref(), Some("YWMtabc"));
        assert_eq!(provision_token(Some(""), Some(r#"{"token":"YWMtabc"}"#)).as_deref(), Some("YWMtabc"));
        assert_eq!(provision_token(None, Some("$t$YWMtabc")).as_deref(), Some("YWMtabc"));
        assert_eq!(provision_token(None, Some("YWMtabc")).as_deref(), Some("YWMtabc"));
    }

    #[test]
    fn no_token_anywhere_is_none() {
        assert_eq!(provision_token(None, None), None);
        assert_eq!(provision_token(None, Some("  ")), None);
        assert_eq!(provision_token(None, Some(r#"{"expires_in":1}"#)), None);
        assert_eq!(provision_token(None, Some(r#"{"token":"#)), None);
        assert_eq!(provision_token(None, Some(r#"{"token":7}"#)), None);
    }
}
