//! The hot cache in front of Redis: recent `get` results, for `cache_ttl`.
//!
//! A session looked up on this replica less than `cache_ttl` (≤ 1 s) ago is
//! answered without a round trip. That bound is the revocation delay across
//! replicas: a logout or revoke on another replica is seen once the entry
//! ages out. Revocations on this replica invalidate at once. While Redis is
//! down, fresh entries are still served; anything else is `Unavailable`
//! ([`super::redis`] decides that — the cache only ever answers "fresh hit"
//! or "ask Redis").
//!
//! Negative results ("no such session") are not cached: the only ids worth
//! remembering as absent are guesses and stale cookies, and caching those
//! would let a client with random cookies fill memory. The miss costs one
//! GET, the same as an uncached lookup.
//!
//! Races with invalidation are closed by an epoch: a `get` notes the epoch
//! before asking Redis and inserts only if no invalidation happened since,
//! so a lookup in flight during a logout cannot put the session back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use super::id::{Digest, DigestHash};
use super::record::{user_key, SessionRecord};

const SHARDS: usize = 16;
/// Upper bound on cached sessions (per replica). Entries live ≤ 1 s, so this
/// is "sessions active in the last second"; past it, lookups skip the cache.
const CAPACITY: usize = 65_536;

pub struct HotCache {
    ttl: Duration,
    shards: Box<[RwLock<Shard>]>,
    epoch: AtomicU64,
}

struct Shard {
    map: HashMap<Digest, Entry, DigestHash>,
    last_sweep: Instant,
}

struct Entry {
    rec: Arc<SessionRecord>,
    at: Instant,
}

impl HotCache {
    /// A cache whose entries live `ttl`; `Duration::ZERO` disables it.
    pub fn new(ttl: Duration) -> HotCache {
        let shards = (0..SHARDS)
            .map(|_| RwLock::new(Shard { map: HashMap::with_hasher(DigestHash), last_sweep: Instant::now() }))
            .collect();
        HotCache { ttl, shards, epoch: AtomicU64::new(0) }
    }

    fn shard(&self, key: &Digest) -> &RwLock<Shard> {
        &self.shards[usize::from(key[31]) % SHARDS]
    }

    /// A fresh entry, if any.
    pub async fn get(&self, key: &Digest) -> Option<Arc<SessionRecord>> {
        if self.ttl.is_zero() {
            return None;
        }
        let shard = self.shard(key).read().await;
        let e = shard.map.get(key)?;
        (e.at.elapsed() < self.ttl).then(|| e.rec.clone())
    }

    /// Read before asking the backend; pass to [`HotCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Remember `rec`, unless something was invalidated since `seen_epoch`.
    pub async fn insert(&self, key: Digest, rec: Arc<SessionRecord>, seen_epoch: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut shard = self.shard(&key).write().await;
        // Checked under the shard lock that `invalidate` also takes, so an
        // invalidation of this key is ordered entirely before or after.
        if self.epoch.load(Ordering::Acquire) != seen_epoch {
            return;
        }
        let now = Instant::now();
        if shard.map.len() >= CAPACITY / SHARDS || now.duration_since(shard.last_sweep) > self.ttl * 4 {
            let ttl = self.ttl;
            shard.map.retain(|_, e| now.duration_since(e.at) < ttl);
            shard.last_sweep = now;
        }
        if shard.map.len() < CAPACITY / SHARDS {
            shard.map.insert(key, Entry { rec, at: now });
        }
    }

    /// Forget one session (logout, update, expiry on this replica).
    pub async fn invalidate(&self, key: &Digest) {
        let mut shard = self.shard(key).write().await;
        shard.map.remove(key);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Forget every session of one user.
    pub async fn invalidate_user(&self, email: &str) {
        let user = user_key(email);
        // Bump first: an insert racing with the sweep below either lands in a
        // shard before it is swept, or sees the new epoch and backs off.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            shard.write().await.map.retain(|_, e| user_key(&e.rec.email) != user);
        }
    }

    /// Forget everything.
    pub async fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            shard.write().await.map.clear();
        }
    }
}
