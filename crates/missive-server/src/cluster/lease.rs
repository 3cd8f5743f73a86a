//! This node's identity: its node id (the 10 bits of every message id it mints) and the
//! instance id that owns its lease and its devices' presence rows.
//!
//! On PostgreSQL the node id is leased from the shared store at start — the configured one if
//! set (start-up fails if another live node holds it), else the lowest free one — and renewed
//! every third of `cluster.presence_ttl_secs` together with the presence of this node's
//! devices. Two live nodes can therefore never mint the same ids. On the embedded store the
//! data directory lock already makes this the only node, and the id is the configured one
//! (default 0). A lease that could not be renewed in time marks the node not ready
//! (`/ready`), so a load balancer stops sending it traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use missive_core::id::{MAX_NODE_ID, now_ms};
use missive_core::store::Store;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ServerError;

/// Who this node is.
pub struct NodeIdentity {
    pub node: u16,
    /// This process; a restarted node is a new instance.
    pub instance: Uuid,
    /// The lease is live (always true on the embedded store).
    healthy: AtomicBool,
    leased: bool,
    /// The renewal task, awaited by `finish` so a clean shutdown releases the lease.
    renewal: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl NodeIdentity {
    /// The embedded store's node: the configured id, no lease.
    pub fn fixed(node: u16) -> Arc<NodeIdentity> {
        Arc::new(NodeIdentity {
            node,
            instance: Uuid::new_v4(),
            healthy: AtomicBool::new(true),
            leased: false,
            renewal: std::sync::Mutex::new(None),
        })
    }

    /// Leases a node id from the shared store and keeps renewing it (and the presence of this
    /// node's devices) until `shutdown`, then releases both.
    pub async fn lease(
        store: Arc<dyn Store>,
        wanted: Option<u16>,
        ttl: Duration,
        shutdown: CancellationToken,
    ) -> Result<Arc<NodeIdentity>, ServerError> {
        let instance = Uuid::new_v4();
        let ttl_ms = ttl.as_millis() as i64;
        let node = store.lease_node_id(wanted, MAX_NODE_ID, instance, now_ms() as i64, ttl_ms).await?;
        let node = node.ok_or_else(|| {
            ServerError::Config(match wanted {
                Some(n) => format!(
                    "node id {n} is leased by another live node (it expires within {} s of that node stopping); \
                     give another --node-id or none",
                    ttl.as_secs()
                ),
                None => "no free node id (1024 nodes are live)".into(),
            })
        })?;
        let me = Arc::new(NodeIdentity {
            node,
            instance,
            healthy: AtomicBool::new(true),
            leased: true,
            renewal: std::sync::Mutex::new(None),
        });
        tracing::info!(node, "leased node id");
        let task = tokio::spawn(renew_forever(me.clone(), store, ttl, shutdown));
        *me.renewal.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(me)
    }

    /// Whether the lease is live.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether this node takes part in a shared store's leases.
    pub fn leased(&self) -> bool {
        self.leased
    }

    /// After shutdown was signalled: waits until the lease and this node's presence are
    /// released, so the next node may take the id at once.
    pub async fn finish(&self) {
        let task = self.renewal.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

async fn renew_forever(me: Arc<NodeIdentity>, store: Arc<dyn Store>, ttl: Duration, shutdown: CancellationToken) {
    let ttl_ms = ttl.as_millis() as i64;
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => break,
        }
        match store.renew_node(me.node, me.instance, now_ms() as i64, ttl_ms).await {
            Ok(true) => {
                last_ok = tokio::time::Instant::now();
                me.healthy.store(true, Ordering::Relaxed);
            }
            Ok(false) => {
                // Expired and taken by another node: ids minted from now on could collide.
                tracing::error!(node = me.node, "node id lease lost to another node; not ready");
                me.healthy.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(%e, node = me.node, "renewing the node lease failed");
                if last_ok.elapsed() >= ttl {
                    me.healthy.store(false, Ordering::Relaxed);
                }
            }
        }
    }
    if let Err(e) = store.release_node(me.node, me.instance).await {
        tracing::warn!(%e, "releasing the node lease failed; it expires by itself");
    }
}
