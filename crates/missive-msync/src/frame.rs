//! One WebSocket binary frame is exactly one encoded `MSync` envelope whose `payload` holds a
//! second, command-specific message (PROTOCOL.md §2–§3.1). This module owns that two-level
//! encoding and the JID constructor, so the server and the client build frames the same way.

use prost::Message;

use crate::pb;

/// JID domain of users. The SDK hard-codes it: it is a fixed label, not a hostname, and a
/// server must use it verbatim.
pub const USER_DOMAIN: &str = "easemob.com";

/// JID domain of groups and chat rooms, hard-coded in the SDK like [`USER_DOMAIN`].
pub const GROUP_DOMAIN: &str = "conference.easemob.com";

/// Decodes one binary WebSocket frame into its envelope; the payload stays encoded because
/// its type depends on the command and the direction (see [`decode_payload`]).
pub fn decode_frame(bytes: &[u8]) -> Result<pb::MSync, prost::DecodeError> {
    pb::MSync::decode(bytes)
}

/// Decodes the payload of an envelope as `M`. An absent payload decodes as the empty message,
/// which is what protobuf.js does and what an empty `UNREAD` request relies on.
pub fn decode_payload<M: Message + Default>(frame: &pb::MSync) -> Result<M, prost::DecodeError> {
    match &frame.payload {
        Some(payload) => M::decode(payload.as_ref()),
        None => Ok(M::default()),
    }
}

/// Encodes a server-to-client frame. Only `command` and `payload` are set: that is all the SDK
/// reads from a server frame, and it keeps frames as small as the captures in PROTOCOL.md.
pub fn encode_frame(cmd: pb::m_sync::Command, payload: impl Message) -> Vec<u8> {
    pb::MSync { command: Some(cmd as i32), payload: Some(payload.encode_to_vec().into()), ..Default::default() }
        .encode_to_vec()
}

/// The bare user JID `{app_key, name, "easemob.com"}`, with no resource: the form used for
/// queue names, `Meta.to` and `Meta.from` on delivery (a resource in `Meta.to` would be
/// appended to the SDK's `message.to`).
pub fn jid(app_key: &str, name: &str) -> pb::Jid {
    pb::Jid {
        app_key: Some(app_key.to_owned()),
        name: Some(name.to_owned()),
        domain: Some(USER_DOMAIN.to_owned()),
        client_resource: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::m_sync::Command;

    #[test]
    fn server_frame_carries_only_command_and_payload() {
        let notice = pb::CommNotice { queue: Some(jid("org#app", "alice")) };
        let bytes = encode_frame(Command::Notice, notice.clone());
        let frame = decode_frame(&bytes).unwrap();
        assert_eq!(frame.command, Some(Command::Notice as i32));
        assert_eq!(frame.version, None);
        assert!(frame.guid.is_none() && frame.encrypt_type.is_empty());
        assert_eq!(decode_payload::<pb::CommNotice>(&frame).unwrap(), notice);
    }

    /// PROTOCOL.md §3.2 captured a 35-byte minimal PROVISION reply for a 23-byte resource;
    /// the mock that sent it also wrote `version: 0` (2 bytes), which we leave out.
    #[test]
    fn minimal_provision_reply_matches_capture_size() {
        let reply = pb::Provision {
            status: Some(pb::Status { error_code: Some(pb::status::ErrorCode::Ok as i32), ..Default::default() }),
            resource: Some("webim_web_1795680689834".into()),
            ..Default::default()
        };
        assert_eq!(encode_frame(Command::Provision, reply).len(), 35 - 2);
    }

    #[test]
    fn missing_payload_decodes_as_empty_message() {
        let frame = pb::MSync { command: Some(Command::Unread as i32), ..Default::default() };
        assert_eq!(decode_payload::<pb::CommUnreadUl>(&frame).unwrap(), pb::CommUnreadUl {});
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_frame(&[0xff, 0xff, 0xff]).is_err());
    }
}
