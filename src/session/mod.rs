//! Session stores: where the gate keeps browser sessions and login state.
//!
//! The browser holds only an opaque [`SessionId`]; records live here, keyed
//! by the SHA-256 of the id ([`id`]). Two backends implement
//! [`SessionStore`]:
//!
//! * [`memory`] — one process, the embedded default;
//! * [`redis`] — `redis://`, `rediss://` and Redis Cluster, shared by
//!   replicas, fronted by the short-lived [`cache`] so most requests cost no
//!   round trip while a revocation still reaches every replica within 1 s.
//!
//! [`Store`] picks one from [`SessionConfig`] and dispatches statically. The
//! pipeline's `authenticate` phase calls [`SessionStore::get`], the OIDC
//! callback [`SessionStore::create`] and the login-state pair, `sessions
//! list|revoke` the admin operations. Every store error is
//! [`StoreError::Unavailable`] (or a config error at start): a store that
//! cannot answer never means "no session" — the pipeline answers 503.

pub mod cache;
pub mod id;
pub mod memory;
pub mod record;
pub mod redis;

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use self::id::{IdMemo, SessionId};
pub use self::memory::MemoryStore;
pub use self::record::{LoginState, SessionRecord, SessionSummary, SharedFeatures, StoredRole, StoredTokens};
pub use self::redis::RedisStore;
use crate::config::{SessionConfig, StoreKind};

/// How long one login may take from `/auth/login/` to the callback.
pub const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (down, timed out, refused, corrupt reply).
    /// Never "no session": the caller answers 503.
    #[error("session store unavailable: {op}: {reason}")]
    Unavailable { op: &'static str, reason: Cow<'static, str> },
    /// The memory store holds as many logins in flight as it will.
    #[error("too many logins in progress; try again shortly")]
    LoginCapacity,
    /// `session.store` cannot be used (bad URL, missing feature).
    #[error("session.store: {0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn unavailable(op: &'static str, reason: impl Into<Cow<'static, str>>) -> StoreError {
        StoreError::Unavailable { op, reason: reason.into() }
    }
}

/// Counters for `/metrics` (the lead renders them): plain atomics, never reset.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Round trips to the backend (Redis commands; memory operations).
    pub ops: AtomicU64,
    /// Backend operations that failed or timed out.
    pub errors: AtomicU64,
    /// `get` answered from the hot cache.
    pub cache_hits: AtomicU64,
    /// `get` that had to ask the backend.
    pub cache_misses: AtomicU64,
    /// Round-trip time of backend operations (Redis commands), failures included.
    pub latency: crate::metrics::Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub ops: u64,
    pub errors: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl StoreStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            ops: self.ops.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every backend offers. Futures are `Send` so hyper services can
/// hold them across awaits on a multi-threaded runtime.
pub trait SessionStore: Send + Sync {
    /// Store a new session under a fresh id. The store stamps `created`,
    /// `last_seen`, `absolute_expiry` and `idle_timeout_secs` from its
    /// configuration; the caller's values are ignored.
    fn create(&self, rec: SessionRecord) -> impl Future<Output = Result<SessionId, StoreError>> + Send;

    /// The live session for `id`, or `None` if there is none or it expired
    /// (an expired record is deleted). Refreshes `last_seen` at most once a
    /// minute. Shared (`Arc`) so the hot path clones no strings.
    fn get(&self, id: &SessionId) -> impl Future<Output = Result<Option<Arc<SessionRecord>>, StoreError>> + Send;

    /// Replace the identity and tokens of a live session (token refresh).
    /// `created`, `absolute_expiry` and `idle_timeout_secs` are kept from the
    /// stored record; `last_seen` becomes now. `false` if the session is gone.
    fn update(&self, id: &SessionId, rec: SessionRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Delete one session (logout). `true` if it existed.
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Live sessions, of one user (email, case-insensitive) or of everyone.
    fn list(&self, user: Option<&str>) -> impl Future<Output = Result<Vec<SessionSummary>, StoreError>> + Send;

    /// Delete every session of one user; returns how many were deleted.
    fn revoke_user(&self, email: &str) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Delete every session; returns how many were deleted.
    fn revoke_all(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Keep `st` for `ttl` under the hash of the OAuth `state` parameter.
    fn put_login_state(
        &self,
        state: &str,
        st: &LoginState,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Take (and delete, atomically) the login state for `state`. A second
    /// take of the same state is `None`.
    fn take_login_state(&self, state: &str) -> impl Future<Output = Result<Option<LoginState>, StoreError>> + Send;

    /// Whether the backend answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn stats(&self) -> &StoreStats;
}

/// The configured store.
#[derive(Debug)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    /// Build the store named by `session.store`. Redis connects lazily: the
    /// gate starts while Redis is down, answers 503 for sessions meanwhile,
    /// and recovers by itself. Only an unusable URL is an error here.
    pub async fn from_config(cfg: &SessionConfig) -> Result<Store, StoreError> {
        match &cfg.store {
            StoreKind::Memory => Ok(Store::Memory(MemoryStore::new(cfg))),
            StoreKind::Redis(url) => Ok(Store::Redis(RedisStore::open(url, cfg)?)),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Memory($s) => $e,
            Store::Redis($s) => $e,
        }
    };
}

impl SessionStore for Store {
    async fn create(&self, rec: SessionRecord) -> Result<SessionId, StoreError> {
        delegate!(self, s => s.create(rec).await)
    }
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        delegate!(self, s => s.get(id).await)
    }
    async fn update(&self, id: &SessionId, rec: SessionRecord) -> Result<bool, StoreError> {
        delegate!(self, s => s.update(id, rec).await)
    }
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        delegate!(self, s => s.delete(id).await)
    }
    async fn list(&self, user: Option<&str>) -> Result<Vec<SessionSummary>, StoreError> {
        delegate!(self, s => s.list(user).await)
    }
    async fn revoke_user(&self, email: &str) -> Result<usize, StoreError> {
        delegate!(self, s => s.revoke_user(email).await)
    }
    async fn revoke_all(&self) -> Result<usize, StoreError> {
        delegate!(self, s => s.revoke_all().await)
    }
    async fn put_login_state(&self, state: &str, st: &LoginState, ttl: Duration) -> Result<(), StoreError> {
        delegate!(self, s => s.put_login_state(state, st, ttl).await)
    }
    async fn take_login_state(&self, state: &str) -> Result<Option<LoginState>, StoreError> {
        delegate!(self, s => s.take_login_state(state).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping().await)
    }
    fn stats(&self) -> &StoreStats {
        delegate!(self, s => s.stats())
    }
}

#[cfg(test)]
mod tests;
