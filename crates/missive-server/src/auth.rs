//! Access tokens and passwords.
//!
//! Tokens are opaque to clients: `YWMt` (the prefix Easemob's tokens carry) followed by 32
//! random bytes in base64url. Only their SHA-256 is stored. Verified tokens are cached in
//! memory, so the hot path costs a hash and a map lookup, not a database round trip;
//! revocation removes a user's tokens from the store *and* the cache in the same call, so it
//! takes effect at once on this node.
//!
//! Passwords are hashed and checked on the bounded pool of [`crate::passwords`], which the
//! authenticator owns.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use missive_core::id::now_ms;
use missive_core::model::TokenRecord;
use missive_core::store::Store;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::SecurityConfig;
use crate::error::{ApiError, ApiResult};
use crate::passwords::Passwords;

const TOKEN_PREFIX: &str = "YWMt";
const TOKEN_RANDOM_BYTES: usize = 32;
/// Verified tokens kept in memory; past this the cache starts over (a rare full reload is
/// cheaper than an eviction policy on every lookup).
const TOKEN_CACHE_MAX: usize = 200_000;

/// Who a valid token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The app's administrator (client credentials).
    App,
    /// One user of the app.
    User(Uuid),
}

#[derive(Clone, Copy, Debug)]
struct CachedToken {
    app_id: Uuid,
    principal: Principal,
    expires_at: Option<i64>,
}

/// A freshly minted token: the secret string goes to the client once.
pub struct MintedToken {
    pub access_token: String,
    /// Seconds, as Easemob's `expires_in` (0 = never).
    pub expires_in: u64,
}

/// Issues, verifies and revokes tokens; hashes and checks passwords.
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: DashMap<[u8; 32], CachedToken>,
    /// Password hashing: take a slot, then hash or check through it.
    pub passwords: Passwords,
}

/// Why a token was refused (each has its own Easemob body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Corrupt,
    Unknown,
    Expired,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        match e {
            TokenError::Corrupt => ApiError::corrupt_token(),
            TokenError::Unknown => ApiError::unknown_token(),
            TokenError::Expired => ApiError::expired_token(),
        }
    }
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, security: &SecurityConfig) -> Authenticator {
        Authenticator { store, cache: DashMap::new(), passwords: Passwords::new(security) }
    }

    /// Mints and stores a token. `ttl_secs == 0` never expires.
    pub async fn issue(&self, app_id: Uuid, principal: Principal, ttl_secs: u64) -> ApiResult<MintedToken> {
        let mut raw = [0u8; TOKEN_RANDOM_BYTES];
        getrandom::fill(&mut raw).map_err(|e| {
            tracing::error!(%e, "no randomness");
            ApiError::internal()
        })?;
        let access_token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let now = now_ms() as i64;
        // A ttl past i64 seconds must not wrap negative (an already expired token): saturate.
        let ttl_ms = i64::try_from(ttl_secs).unwrap_or(i64::MAX).saturating_mul(1000);
        let expires_at = (ttl_secs > 0).then(|| now.saturating_add(ttl_ms));
        let hash = token_hash(&access_token);
        let user = match principal {
            Principal::App => None,
            Principal::User(u) => Some(u),
        };
        self.store.insert_token(&TokenRecord { hash: hash.to_vec(), app_id, user, expires_at, created: now }).await?;
        self.remember(hash, CachedToken { app_id, principal, expires_at });
        Ok(MintedToken { access_token, expires_in: ttl_secs })
    }

    /// Checks a bearer token for `app_id`. A token of another app is "unknown": apps never
    /// learn about each other's tokens.
    pub async fn verify(&self, app_id: Uuid, token: &str) -> Result<Principal, TokenError> {
        if !well_formed(token) {
            return Err(TokenError::Corrupt);
        }
        let hash = token_hash(token);
        let cached = match self.cache.get(&hash).map(|c| *c) {
            Some(c) => c,
            None => {
                let rec = self.store.token_by_hash(&hash).await.map_err(|e| {
                    tracing::warn!(%e, "token lookup failed");
                    TokenError::Unknown
                })?;
                let Some(rec) = rec else { return Err(TokenError::Unknown) };
                let c = CachedToken {
                    app_id: rec.app_id,
                    principal: rec.user.map(Principal::User).unwrap_or(Principal::App),
                    expires_at: rec.expires_at,
                };
                self.remember(hash, c);
                c
            }
        };
        if cached.app_id != app_id {
            return Err(TokenError::Unknown);
        }
        if cached.expires_at.is_some_and(|t| t <= now_ms() as i64) {
            return Err(TokenError::Expired);
        }
        Ok(cached.principal)
    }

    /// Revokes every token of a user, in the store and in this node's cache.
    pub async fn revoke_user(&self, app_id: Uuid, user: Uuid) -> ApiResult<()> {
        self.cache.retain(|_, t| !(t.app_id == app_id && t.principal == Principal::User(user)));
        self.store.delete_user_tokens(app_id, user).await?;
        // A lookup racing with the delete could have re-cached one; drop again.
        self.cache.retain(|_, t| !(t.app_id == app_id && t.principal == Principal::User(user)));
        Ok(())
    }

    fn remember(&self, hash: [u8; 32], token: CachedToken) {
        if self.cache.len() >= TOKEN_CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(hash, token);
    }
}

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + 43
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Compares secrets (client secrets, share-secrets, the metrics token) without leaking
/// through timing where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_checked_before_any_lookup() {
        assert!(!well_formed("garbage"));
        assert!(!well_formed(&format!("YWMt{}", "a".repeat(42))));
        assert!(well_formed(&format!("YWMt{}", "a".repeat(43))));
        assert!(!well_formed(&format!("YWMt{}!", "a".repeat(42))));
    }
}
