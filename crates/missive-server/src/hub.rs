//! The registry of online devices on this node, and the only way anything reaches them.
//!
//! Keyed by (app, user), each entry lists that user's live MSYNC sessions (one per device
//! resource). Senders never write to a socket: they put a small event on the session's
//! bounded channel with `try_send`. Committed messages reach the hub as the store's
//! `CommitListener` (wired in `crate::run`), carrying the message and its queue sequence, so
//! an online device is served from memory without a read per message (see
//! `crate::delivery::view`). A session whose channel is full is not keeping up, so it is
//! cancelled (its socket closed) instead of buffering without bound; its messages are still
//! in its queues and arrive when it reconnects. This keeps one slow client from slowing
//! anyone else, and memory bounded by `send_buffer_frames` per session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use missive_core::model::{DeviceInfo, QueuedMessage};
use missive_core::store::CommitListener;

use crate::fanout::{Fanout, KickReason, KickTarget};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a session's event loop receives.
#[derive(Debug)]
pub enum SessionEvent {
    /// A stored message was committed (with its queue sequence).
    Stored(Arc<QueuedMessage>),
    /// An online-only message (sequence 0): it exists nowhere else.
    Online(Arc<QueuedMessage>),
    /// A stored message was removed from its queue (recall) and must not go out any more.
    /// Boxed so an event stays two words: each session's channel allocates its first block
    /// of 32 events when it opens, idle or not.
    Withdrawn(Box<Withdrawal>),
    Kick(KickReason),
    /// Announcements may have been lost (the bus between nodes was down): compare every view
    /// with the store.
    Resync,
}

/// Which queued message a recall removed.
#[derive(Debug)]
pub struct Withdrawal {
    pub queue: String,
    pub seq: u64,
}

struct SessionEntry {
    id: u64,
    device: DeviceInfo,
    tx: mpsc::Sender<SessionEvent>,
    cancel: CancellationToken,
}

/// What a session gets when it registers.
pub struct SessionRegistration {
    pub id: u64,
    pub events: mpsc::Receiver<SessionEvent>,
    /// Cancelled when the hub gives up on the session (stuck, kicked, replaced).
    pub cancel: CancellationToken,
}

/// The hub refused a login.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    TooManyDevices,
}

/// Online sessions on this node.
pub struct Hub {
    sessions: DashMap<(Uuid, String), Vec<SessionEntry>>,
    next_id: AtomicU64,
    buffer: usize,
    max_devices: usize,
    /// This node's id, which `KickTarget::Session` names.
    node: u16,
}

impl Hub {
    pub fn new(buffer: usize, max_devices: usize, node: u16) -> Hub {
        Hub {
            sessions: DashMap::new(),
            next_id: AtomicU64::new(1),
            buffer: buffer.max(4),
            max_devices: max_devices.max(1),
            node,
        }
    }

    /// This node's id.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// Adds a session. A session with the same resource is replaced (the device reconnected
    /// before its old socket died, or the same resource logged in elsewhere); beyond
    /// `max_devices` distinct resources the login is refused.
    ///
    /// The replaced session is told why (`LoginElsewhere`) and closes itself once the SDK has
    /// that notice: cancelling it at once would close the socket without a reason, and the
    /// SDK would reconnect, replace this session in turn, and so on forever. It is cancelled
    /// only if it cannot take the event.
    pub fn register(&self, app: Uuid, user: &str, device: DeviceInfo) -> Result<SessionRegistration, RegisterError> {
        let mut list = self.sessions.entry((app, user.to_owned())).or_default();
        if let Some(pos) = list.iter().position(|s| s.device.resource == device.resource) {
            let old = list.swap_remove(pos);
            if old.tx.try_send(SessionEvent::Kick(KickReason::LoginElsewhere)).is_err() {
                old.cancel.cancel();
            }
        }
        if list.len() >= self.max_devices {
            return Err(RegisterError::TooManyDevices);
        }
        let (tx, events) = mpsc::channel(self.buffer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        list.push(SessionEntry { id, device, tx, cancel: cancel.clone() });
        Ok(SessionRegistration { id, events, cancel })
    }

    /// Removes a session when its connection ends.
    pub fn unregister(&self, app: Uuid, user: &str, id: u64) {
        let key = (app, user.to_owned());
        let empty = match self.sessions.get_mut(&key) {
            Some(mut list) => {
                list.retain(|s| s.id != id);
                list.is_empty()
            }
            None => false,
        };
        if empty {
            self.sessions.remove_if(&key, |_, l| l.is_empty());
        }
    }

    pub fn is_online(&self, app: Uuid, user: &str) -> bool {
        self.sessions.get(&(app, user.to_owned())).is_some_and(|l| !l.is_empty())
    }

    /// The devices a user has online now.
    pub fn resources(&self, app: Uuid, user: &str) -> Vec<DeviceInfo> {
        self.sessions
            .get(&(app, user.to_owned()))
            .map(|l| l.iter().map(|s| s.device.clone()).collect())
            .unwrap_or_default()
    }

    /// Online sessions on this node, for metrics and benchmarks.
    pub fn session_count(&self) -> usize {
        self.sessions.iter().map(|e| e.value().len()).sum()
    }

    /// Hands an online-only message to every device of `user` on this node, except
    /// `skip_resource`. Returns how many devices got it.
    pub fn push_online(&self, app: Uuid, user: &str, msg: &Arc<QueuedMessage>, skip_resource: Option<&str>) -> usize {
        self.each_session(app, user, skip_resource, |_| SessionEvent::Online(msg.clone()))
    }

    /// Kicks the sessions of `user` on this node that `target` names. Returns how many.
    pub fn kick_local(&self, app: Uuid, user: &str, target: &KickTarget, reason: KickReason) -> usize {
        let Some(list) = self.sessions.get(&(app, user.to_owned())) else { return 0 };
        let mut n = 0;
        for s in list.iter() {
            let hit = match target {
                KickTarget::AllDevices => true,
                KickTarget::Resource(r) => *r == s.device.resource,
                KickTarget::Session { node, session } => *node == self.node && *session == s.id,
            };
            if !hit {
                continue;
            }
            if s.tx.try_send(SessionEvent::Kick(reason)).is_err() {
                s.cancel.cancel();
            }
            n += 1;
        }
        n
    }

    /// Tells every session on this node to compare its views with the store.
    pub fn resync_all(&self) {
        for entry in self.sessions.iter() {
            for s in entry.value() {
                if s.tx.try_send(SessionEvent::Resync).is_err() {
                    s.cancel.cancel();
                }
            }
        }
    }

    fn each_session(
        &self,
        app: Uuid,
        user: &str,
        skip: Option<&str>,
        event: impl Fn(&SessionEntry) -> SessionEvent,
    ) -> usize {
        let Some(list) = self.sessions.get(&(app, user.to_owned())) else { return 0 };
        let mut n = 0;
        for s in list.iter() {
            if skip.is_some_and(|r| r == s.device.resource) {
                continue;
            }
            match s.tx.try_send(event(s)) {
                Ok(()) => n += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(user, resource = %s.device.resource, "session not keeping up; disconnecting it");
                    s.cancel.cancel();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        n
    }
}

impl Fanout for Hub {
    fn online(&self, app: Uuid, user: &str, msg: &Arc<QueuedMessage>, except: Option<&str>) {
        self.push_online(app, user, msg, except);
    }

    fn kick(&self, app: Uuid, user: &str, target: KickTarget, reason: KickReason) {
        self.kick_local(app, user, &target, reason);
    }
}

impl CommitListener for Hub {
    fn committed(&self, messages: &[Arc<QueuedMessage>]) {
        for m in messages {
            self.each_session(m.app_id, &m.owner, None, |_| SessionEvent::Stored(m.clone()));
        }
    }

    fn removed(&self, m: &QueuedMessage) {
        self.each_session(m.app_id, &m.owner, None, |_| {
            SessionEvent::Withdrawn(Box::new(Withdrawal { queue: m.queue.clone(), seq: m.seq }))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(r: &str) -> DeviceInfo {
        DeviceInfo { resource: r.into(), ..Default::default() }
    }

    #[test]
    fn register_limits_devices_and_replaces_same_resource() {
        let hub = Hub::new(4, 2, 0);
        let app = Uuid::new_v4();
        let mut a = hub.register(app, "u", dev("a")).unwrap();
        let _b = hub.register(app, "u", dev("b")).unwrap();
        assert_eq!(hub.register(app, "u", dev("c")).err(), Some(RegisterError::TooManyDevices));
        let _a2 = hub.register(app, "u", dev("a")).unwrap();
        // The replaced session is told why and closes itself; it is not cut off silently.
        assert!(matches!(a.events.try_recv(), Ok(SessionEvent::Kick(KickReason::LoginElsewhere))));
        assert!(!a.cancel.is_cancelled());
        assert_eq!(hub.resources(app, "u").len(), 2);
    }

    #[test]
    fn a_full_session_is_cancelled_not_buffered() {
        let hub = Hub::new(4, 8, 0);
        let app = Uuid::new_v4();
        let reg = hub.register(app, "u", dev("a")).unwrap();
        let msg = Arc::new(QueuedMessage {
            id: missive_core::id::MsgId(1),
            app_id: app,
            queue: "peer".into(),
            sender: "peer".into(),
            owner: "u".into(),
            created: 0,
            payload: bytes::Bytes::new(),
            seq: 0,
            delivered: false,
        });
        for _ in 0..4 {
            hub.push_online(app, "u", &msg, None);
        }
        assert!(!reg.cancel.is_cancelled());
        hub.push_online(app, "u", &msg, None);
        assert!(reg.cancel.is_cancelled());
        hub.unregister(app, "u", reg.id);
        assert!(!hub.is_online(app, "u"));
    }
}
