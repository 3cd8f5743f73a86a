//! Password hashing and checking (Argon2id, PHC strings) with bounded memory.
//!
//! Every hash and check runs on a dedicated [`WorkerPool`] of `security.password_workers`
//! threads (default: one per core). Each worker owns one Argon2 memory block
//! (`argon2_memory_kib`, 19 MiB by default) and hashes into it with
//! `hash_password_into_with_memory`, so password work never holds more than
//! workers × that block, however many requests arrive; a worker frees its block after a few
//! seconds without work. A request takes a [`PasswordSlot`] before it hashes anything:
//! when `workers + security.password_queue` requests hold one, the next is refused at once
//! with 503 (Easemob body). Password logins are also limited per account
//! ([`PER_ACCOUNT_LOGINS`] at once → 429), so a flood aimed at one account cannot hold the
//! whole queue; floods from one address across many accounts are the reverse proxy's to
//! limit (the server often sees only the proxy's address).
//!
//! Hashes are standard PHC strings (`$argon2id$v=19$m=…,t=…,p=1$salt$hash`), interchangeable
//! with those `argon2`'s own `PasswordHasher` writes; a check uses the parameters stored in
//! the hash, so changing the cost applies to new passwords without locking anyone out.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use axum::http::StatusCode;
use dashmap::DashMap;
use uuid::Uuid;

use crate::config::SecurityConfig;
use crate::error::{ApiError, ApiResult};
use crate::workers::{PoolError, Slot, WorkerPool, WorkerState};

/// Password logins of one account being checked at once; one more is 429.
pub const PER_ACCOUNT_LOGINS: usize = 4;
/// A worker frees its memory block after this long without a job.
const IDLE_RELEASE: Duration = Duration::from_secs(5);
/// Salt and output lengths of new hashes (the `argon2` crate's defaults).
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

/// The password pool of one server.
pub struct Passwords {
    pool: WorkerPool<ArgonMemory>,
    /// Cost of new hashes.
    params: Params,
    /// Password logins in flight per (app, username).
    logins: Arc<DashMap<(Uuid, String), usize>>,
}

/// A worker's Argon2 memory: grown to a hash's block count on use, dropped when idle.
#[derive(Default)]
struct ArgonMemory {
    blocks: Vec<Block>,
}

impl WorkerState for ArgonMemory {
    fn on_idle(&mut self) {
        self.blocks = Vec::new();
    }
}

impl ArgonMemory {
    /// The first `count` blocks. A stored hash with a higher cost than today's config grows
    /// the block for its check; it shrinks back when the worker next idles.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::new());
        }
        &mut self.blocks[..count]
    }
}

impl Passwords {
    pub fn new(config: &SecurityConfig) -> Passwords {
        let workers = match config.password_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let params = Params::new(config.argon2_memory_kib.max(8), config.argon2_iterations.max(1), 1, None)
            .unwrap_or_else(|_| Params::default());
        Passwords {
            pool: WorkerPool::start(
                "missive-argon2",
                workers,
                config.password_queue,
                IDLE_RELEASE,
                ArgonMemory::default,
            ),
            params,
            logins: Arc::new(DashMap::new()),
        }
    }

    /// A slot for one request's password work (one registration, a batch of them, a
    /// password change), or 503 when the queue is full.
    pub fn admit(&self) -> ApiResult<PasswordSlot> {
        Ok(PasswordSlot { slot: self.pool.try_admit().map_err(busy)?, params: self.params.clone(), _login: None })
    }

    /// A slot for a password login of `username`: 429 when that account already has
    /// [`PER_ACCOUNT_LOGINS`] being checked, else as [`Passwords::admit`].
    pub fn admit_login(&self, app: Uuid, username: &str) -> ApiResult<PasswordSlot> {
        let key = (app, username.to_owned());
        {
            let mut n = self.logins.entry(key.clone()).or_insert(0);
            if *n >= PER_ACCOUNT_LOGINS {
                return Err(account_flood());
            }
            *n += 1;
        }
        let login = LoginGuard { logins: self.logins.clone(), key };
        let mut slot = self.admit()?;
        slot._login = Some(login);
        Ok(slot)
    }

    /// Hash and check jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.pool.queued()
    }

    /// Requests holding a slot (hashing or waiting).
    pub fn admitted(&self) -> usize {
        self.pool.admitted()
    }

    pub fn workers(&self) -> usize {
        self.pool.workers()
    }
}

/// 503 when the password queue is full.
fn busy(_: PoolError) -> ApiError {
    ApiError::unavailable("server is busy, retry later")
}

/// 429 for one account's flood of logins.
fn account_flood() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "reach_limit",
        "EasemobRateLimitException",
        "too many logins of this user at once, retry later",
    )
}

/// Counts a password login of one account until dropped.
struct LoginGuard {
    logins: Arc<DashMap<(Uuid, String), usize>>,
    key: (Uuid, String),
}

impl Drop for LoginGuard {
    fn drop(&mut self) {
        if let dashmap::Entry::Occupied(mut e) = self.logins.entry(self.key.clone()) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// One admitted request's access to the password workers.
pub struct PasswordSlot {
    slot: Slot<ArgonMemory>,
    params: Params,
    _login: Option<LoginGuard>,
}

impl PasswordSlot {
    /// A new PHC hash of `password` with a random salt and the configured cost.
    pub async fn hash(&mut self, password: String) -> ApiResult<String> {
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| {
            tracing::error!(%e, "no randomness for a password salt");
            ApiError::internal()
        })?;
        let params = self.params.clone();
        let made = self.slot.run(move |memory: &mut ArgonMemory| hash_with(memory, &params, &password, &salt)).await;
        match made {
            Ok(Some(phc)) => Ok(phc),
            Ok(None) | Err(_) => {
                tracing::error!("password hashing failed");
                Err(ApiError::internal())
            }
        }
    }

    /// Whether `password` matches the stored PHC hash. A hash that cannot be parsed matches
    /// nothing.
    pub async fn verify(&mut self, password: String, phc: String) -> ApiResult<bool> {
        self.slot.run(move |memory: &mut ArgonMemory| verify_with(memory, &password, &phc)).await.map_err(|_| {
            tracing::error!("password check failed");
            ApiError::internal()
        })
    }
}

fn hash_with(memory: &mut ArgonMemory, params: &Params, password: &str, salt: &[u8]) -> Option<String> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; OUTPUT_BYTES];
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory.blocks(params.block_count()))
        .ok()?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).ok()?,
        salt: Some(Salt::new(salt).ok()?),
        hash: Some(Output::new(&out).ok()?),
    };
    Some(phc.to_string())
}

fn verify_with(memory: &mut ArgonMemory, password: &str, phc: &str) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(stored.algorithm.as_str()), Params::try_from(&stored))
    else {
        return false;
    };
    let version = match stored.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = memory.blocks(params.block_count());
    if Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    fn config(workers: usize, queue: usize) -> SecurityConfig {
        SecurityConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            password_workers: workers,
            password_queue: queue,
            ..SecurityConfig::default()
        }
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_both_ways() {
        let passwords = Passwords::new(&config(1, 0));
        let mut slot = passwords.admit().unwrap();
        let ours = slot.hash("s3cret".into()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{ours}");
        // The argon2 crate checks ours, we check the crate's: stored hashes stay valid.
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 1, 1, None).unwrap());
        assert!(PasswordVerifier::<str>::verify_password(&reference, b"s3cret", &ours).is_ok());
        let theirs = reference.hash_password(b"other").unwrap().to_string();
        assert!(slot.verify("other".into(), theirs.clone()).await.unwrap());
        assert!(!slot.verify("Other".into(), theirs).await.unwrap());
        assert!(slot.verify("s3cret".into(), ours.clone()).await.unwrap());
        assert!(!slot.verify("s3cret".into(), "not a hash".into()).await.unwrap());
    }

    #[tokio::test]
    async fn a_stored_hash_of_another_cost_still_checks() {
        let stronger = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(256, 2, 1, None).unwrap());
        let stored = stronger.hash_password(b"pw").unwrap().to_string();
        let passwords = Passwords::new(&config(1, 0));
        let mut slot = passwords.admit().unwrap();
        assert!(slot.verify("pw".into(), stored).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_is_503_and_one_accounts_flood_429() {
        let passwords = Passwords::new(&config(1, 1 + PER_ACCOUNT_LOGINS));
        let app = Uuid::new_v4();
        let held: Vec<_> = (0..PER_ACCOUNT_LOGINS).map(|_| passwords.admit_login(app, "alice").unwrap()).collect();
        assert_eq!(passwords.admit_login(app, "alice").err().map(|e| e.status), Some(StatusCode::TOO_MANY_REQUESTS));
        let other = passwords.admit_login(app, "bob").unwrap();
        assert_eq!(passwords.admitted(), PER_ACCOUNT_LOGINS + 1);
        let last = passwords.admit().unwrap();
        let refused = passwords.admit().err().expect("queue full");
        assert_eq!((refused.status, refused.error.as_ref()), (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"));
        drop((held, other, last));
        assert_eq!(passwords.admitted(), 0);
        assert!(passwords.logins.is_empty());
        assert!(passwords.admit_login(app, "alice").is_ok());
    }
}
