//! The in-process store: the embedded default for a single gate process.
//!
//! One `tokio::sync::RwLock` over maps keyed by the id's SHA-256 (the same
//! rule as Redis: the map holds no usable cookie), a per-user index for
//! `revoke --user`, and expiry queues swept a bounded number of entries at a
//! time on writes, so no request pays for a full scan. Expiry is also
//! checked on every read, so an unswept record is never served.
//!
//! Memory per session (docs/design.md §15, `benches/session_memory.rs`): records of one
//! role and tenant usually carry the same feature map, so the store keeps one copy of
//! each distinct map ([`Interned`]) and every record points at it; the per-user index is
//! keyed by the digest of the user key and holds a single session inline.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use super::id::{sha256, Digest, DigestHash, SessionId};
use super::record::{now_secs, user_key, LoginState, SessionRecord, SessionSummary, SharedFeatures, Timeouts};
use super::{SessionStore, StoreError, StoreStats};
use crate::config::SessionConfig;

/// Expired entries removed per write, at most.
const SWEEP_BUDGET: usize = 64;
/// Logins in flight, at most: each costs memory for 10 minutes, and
/// `/auth/login/` is reachable without a session.
const MAX_LOGIN_STATES: usize = 100_000;
/// Queue entries allowed beyond twice the live entries before the queue is
/// rebuilt from the live maps.
const COMPACT_SLACK: usize = 1024;
/// Distinct feature maps kept for sharing, at most; beyond it a record keeps its own.
const MAX_INTERNED: usize = 4096;

pub struct MemoryStore {
    timeouts: Timeouts,
    inner: RwLock<Inner>,
    stats: StoreStats,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<Digest, Arc<SessionRecord>, DigestHash>,
    /// Keyed by the SHA-256 of [`user_key`]: no string per user.
    by_user: HashMap<Digest, UserSessions, DigestHash>,
    features: Interned,
    /// (deadline, key): one entry per live session, re-queued when a popped
    /// session turns out to have been touched since.
    expiry: BinaryHeap<Reverse<(u64, Digest)>>,
    logins: HashMap<Digest, (Instant, LoginState), DigestHash>,
    login_expiry: BinaryHeap<Reverse<(Instant, Digest)>>,
}

/// The sessions of one user: almost always one, kept inline.
enum UserSessions {
    One(Digest),
    Many(HashSet<Digest, DigestHash>),
}

impl UserSessions {
    fn insert(&mut self, key: Digest) {
        match self {
            UserSessions::One(k) if *k == key => {}
            UserSessions::One(k) => *self = UserSessions::Many([*k, key].into_iter().collect()),
            UserSessions::Many(set) => {
                set.insert(key);
            }
        }
    }

    /// Removes `key`; whether none is left.
    fn remove(&mut self, key: &Digest) -> bool {
        match self {
            UserSessions::One(k) => k == key,
            UserSessions::Many(set) => {
                set.remove(key);
                set.is_empty()
            }
        }
    }

    fn keys(&self) -> impl Iterator<Item = &Digest> {
        let (one, many) = match self {
            UserSessions::One(k) => (Some(k), None),
            UserSessions::Many(set) => (None, Some(set)),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// One shared copy of each distinct feature map held by a live record.
#[derive(Default)]
struct Interned {
    maps: HashSet<SharedFeatures>,
}

impl Interned {
    /// The shared copy equal to `features` (registered if new and there is room).
    fn share(&mut self, features: SharedFeatures) -> SharedFeatures {
        if let Some(shared) = self.maps.get(&features) {
            return shared.clone();
        }
        if self.maps.len() >= MAX_INTERNED {
            // Maps no record holds any more.
            self.maps.retain(|m| Arc::strong_count(m) > 1);
        }
        if self.maps.len() < MAX_INTERNED {
            self.maps.insert(features.clone());
        }
        features
    }
}

fn user_digest(email: &str) -> Digest {
    sha256(user_key(email).as_bytes())
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("timeouts", &self.timeouts).finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new(cfg: &SessionConfig) -> MemoryStore {
        MemoryStore { timeouts: Timeouts::from_config(cfg), inner: RwLock::default(), stats: StoreStats::default() }
    }

    /// Remove up to `SWEEP_BUDGET` expired sessions and login states. Runs on
    /// writes; a timer may call it too.
    pub async fn sweep(&self) {
        self.inner.write().await.sweep(now_secs(), Instant::now());
    }

    /// Sessions held, expired-but-unswept included (for tests and metrics).
    pub async fn len(&self) -> usize {
        self.inner.read().await.sessions.len()
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

impl Inner {
    fn sweep(&mut self, now: u64, now_i: Instant) {
        for _ in 0..SWEEP_BUDGET {
            let Some(&Reverse((deadline, key))) = self.expiry.peek() else { break };
            if deadline > now {
                break;
            }
            self.expiry.pop();
            match self.sessions.get(&key).map(|rec| rec.expires_at()) {
                Some(expires) if expires <= now => {
                    self.remove(&key);
                }
                // Touched since it was queued: queue its new deadline.
                Some(expires) => self.expiry.push(Reverse((expires, key))),
                None => {}
            }
        }
        for _ in 0..SWEEP_BUDGET {
            let Some(&Reverse((deadline, key))) = self.login_expiry.peek() else { break };
            if deadline > now_i {
                break;
            }
            self.login_expiry.pop();
            if self.logins.get(&key).is_some_and(|(exp, _)| *exp <= now_i) {
                self.logins.remove(&key);
            }
        }
        // Logouts, revocations, updates and used logins leave their queue
        // entries behind until the old deadline (hours for a session): with
        // churn the queues, not the maps, would grow with the login rate
        // (found by the soak, benches/soak). Rebuild them from the live maps
        // once they are more than twice as long: amortized O(1) per entry.
        if self.expiry.len() > 2 * self.sessions.len() + COMPACT_SLACK {
            self.expiry = self.sessions.iter().map(|(k, rec)| Reverse((rec.expires_at(), *k))).collect();
        }
        if self.login_expiry.len() > 2 * self.logins.len() + COMPACT_SLACK {
            self.login_expiry = self.logins.iter().map(|(k, (deadline, _))| Reverse((*deadline, *k))).collect();
        }
    }

    fn remove(&mut self, key: &Digest) -> Option<Arc<SessionRecord>> {
        let rec = self.sessions.remove(key)?;
        let user = user_digest(&rec.email);
        if self.by_user.get_mut(&user).is_some_and(|s| s.remove(key)) {
            self.by_user.remove(&user);
        }
        Some(rec)
    }

    fn insert(&mut self, key: Digest, mut rec: SessionRecord) {
        rec.features = self.features.share(rec.features);
        match self.by_user.entry(user_digest(&rec.email)) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().insert(key),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(UserSessions::One(key));
            }
        }
        self.expiry.push(Reverse((rec.expires_at(), key)));
        self.sessions.insert(key, Arc::new(rec));
    }
}

impl SessionStore for MemoryStore {
    async fn create(&self, mut rec: SessionRecord) -> Result<SessionId, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let now = now_secs();
        self.timeouts.stamp(&mut rec, now);
        let id = SessionId::generate().map_err(|e| StoreError::unavailable("create", e.to_string()))?;
        let mut inner = self.inner.write().await;
        inner.sweep(now, Instant::now());
        inner.insert(*id.digest(), rec);
        Ok(id)
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let now = now_secs();
        let key = id.digest();
        {
            let inner = self.inner.read().await;
            match inner.sessions.get(key) {
                None => return Ok(None),
                Some(rec) if !rec.is_expired(now) && !rec.needs_touch(now) => return Ok(Some(rec.clone())),
                Some(_) => {}
            }
        }
        // Expired or due a touch: take the write lock and look again (it may
        // have changed in between).
        let mut inner = self.inner.write().await;
        let Some(rec) = inner.sessions.get(key) else { return Ok(None) };
        if rec.is_expired(now) {
            inner.remove(key);
            return Ok(None);
        }
        if rec.needs_touch(now) {
            let mut touched = SessionRecord::clone(rec);
            touched.last_seen = now;
            // The queued deadline is now early; the sweep re-queues it.
            inner.sessions.insert(*key, Arc::new(touched));
        }
        Ok(inner.sessions.get(key).cloned())
    }

    async fn update(&self, id: &SessionId, mut rec: SessionRecord) -> Result<bool, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let now = now_secs();
        let key = *id.digest();
        let mut inner = self.inner.write().await;
        let Some(old) = inner.sessions.get(&key) else { return Ok(false) };
        if old.is_expired(now) {
            inner.remove(&key);
            return Ok(false);
        }
        rec.created = old.created;
        rec.absolute_expiry = old.absolute_expiry;
        rec.idle_timeout_secs = old.idle_timeout_secs;
        rec.last_seen = now;
        // Re-insert so the per-user index follows an email change.
        inner.remove(&key);
        inner.insert(key, rec);
        Ok(true)
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        StoreStats::incr(&self.stats.ops);
        Ok(self.inner.write().await.remove(id.digest()).is_some())
    }

    async fn list(&self, user: Option<&str>) -> Result<Vec<SessionSummary>, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let now = now_secs();
        let inner = self.inner.read().await;
        let mut out: Vec<SessionSummary> = match user {
            Some(email) => inner
                .by_user
                .get(&user_digest(email))
                .into_iter()
                .flat_map(UserSessions::keys)
                .filter_map(|k| inner.sessions.get(k).map(|r| (k, r)))
                .filter(|(_, r)| !r.is_expired(now))
                .map(|(k, r)| r.summary(k))
                .collect(),
            None => inner.sessions.iter().filter(|(_, r)| !r.is_expired(now)).map(|(k, r)| r.summary(k)).collect(),
        };
        out.sort_by(|a, b| (a.created, &a.handle).cmp(&(b.created, &b.handle)));
        Ok(out)
    }

    async fn revoke_user(&self, email: &str) -> Result<usize, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let mut inner = self.inner.write().await;
        let keys: Vec<Digest> =
            inner.by_user.get(&user_digest(email)).into_iter().flat_map(UserSessions::keys).copied().collect();
        Ok(keys.iter().filter(|k| inner.remove(k).is_some()).count())
    }

    async fn revoke_all(&self) -> Result<usize, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let mut inner = self.inner.write().await;
        let n = inner.sessions.len();
        inner.sessions.clear();
        inner.by_user.clear();
        inner.expiry.clear();
        inner.features = Interned::default();
        Ok(n)
    }

    async fn put_login_state(&self, state: &str, st: &LoginState, ttl: Duration) -> Result<(), StoreError> {
        StoreStats::incr(&self.stats.ops);
        let key = sha256(state.as_bytes());
        let now = Instant::now();
        let mut inner = self.inner.write().await;
        inner.sweep(now_secs(), now);
        if inner.logins.len() >= MAX_LOGIN_STATES {
            return Err(StoreError::LoginCapacity);
        }
        let deadline = now + ttl;
        inner.logins.insert(key, (deadline, st.clone()));
        inner.login_expiry.push(Reverse((deadline, key)));
        Ok(())
    }

    async fn take_login_state(&self, state: &str) -> Result<Option<LoginState>, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let key = sha256(state.as_bytes());
        let taken = self.inner.write().await.logins.remove(&key);
        Ok(taken.filter(|(deadline, _)| *deadline > Instant::now()).map(|(_, st)| st))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn record(email: &str) -> SessionRecord {
        SessionRecord {
            subject: "s".into(),
            email: email.into(),
            name: "N".into(),
            role: "Office".into(),
            features: Default::default(),
            tenant_id: "t".into(),
            tenant_name: "T".into(),
            tenant_code: None,
            created: 0,
            last_seen: 0,
            absolute_expiry: 0,
            idle_timeout_secs: 0,
            tokens: None,
        }
    }

    /// Sessions with equal feature maps share one copy; a different map stays its own; the
    /// per-user index follows one, several and no sessions of a user.
    #[tokio::test]
    async fn equal_feature_maps_are_shared_and_the_user_index_follows_sessions() {
        let cfg = crate::config::Config::from_str_at(std::path::Path::new("p.toml"), "").expect("defaults").0;
        let store = MemoryStore::new(&cfg.session);
        let with = |email: &str, features: &[(&str, &str)]| {
            let mut r = record(email);
            let map = features.iter().map(|(f, p)| (f.to_string(), vec![p.to_string()])).collect();
            r.features = Arc::new(map);
            r
        };
        let a = store.create(with("a@example.com", &[("bol", "view")])).await.expect("create");
        let b = store.create(with("B@example.com", &[("bol", "view")])).await.expect("create");
        let c = store.create(with("a@example.com", &[("bol", "edit")])).await.expect("create");
        let mut live = Vec::new();
        for id in [&a, &b, &c] {
            live.push(store.get(id).await.expect("get").expect("live"));
        }
        let [ra, rb, rc] = [&live[0], &live[1], &live[2]];
        assert!(Arc::ptr_eq(&ra.features, &rb.features), "equal maps not shared");
        assert!(!Arc::ptr_eq(&ra.features, &rc.features));
        assert_eq!(rc.features.get("bol"), Some(&vec!["edit".to_string()]));

        assert_eq!(store.list(Some("A@example.com")).await.expect("list").len(), 2);
        assert_eq!(store.list(Some("b@example.com")).await.expect("list").len(), 1);
        assert!(store.delete(&a).await.expect("delete"));
        assert_eq!(store.list(Some("a@example.com")).await.expect("list").len(), 1);
        assert_eq!(store.revoke_user("a@example.com").await.expect("revoke"), 1);
        assert!(store.list(Some("a@example.com")).await.expect("list").is_empty());
        assert!(!store.inner.read().await.by_user.contains_key(&user_digest("a@example.com")));
        assert!(store.get(&b).await.expect("get").is_some());
    }

    /// Regression (soak): login + logout churn grew the expiry queues by one
    /// entry per login for the whole idle timeout (8 h by default).
    #[tokio::test]
    async fn login_logout_churn_keeps_the_expiry_queues_bounded() {
        let cfg = crate::config::Config::from_str_at(std::path::Path::new("p.toml"), "").expect("defaults").0;
        let store = MemoryStore::new(&cfg.session);
        let keep = store.create(record("kept@example.com")).await.expect("create");
        for i in 0..20_000 {
            let state = format!("state-{i}");
            let st = LoginState {
                pkce_verifier: Secret::new("v".into()),
                nonce: Secret::new("n".into()),
                next: None,
                created: 0,
            };
            store.put_login_state(&state, &st, Duration::from_secs(600)).await.expect("login state");
            assert!(store.take_login_state(&state).await.expect("take").is_some());
            let id = store.create(record("churn@example.com")).await.expect("create");
            store.update(&id, record("churn@example.com")).await.expect("update");
            assert!(store.delete(&id).await.expect("delete"));
        }
        let inner = store.inner.read().await;
        assert_eq!(inner.sessions.len(), 1);
        assert!(inner.expiry.len() <= 2 + COMPACT_SLACK, "session queue: {}", inner.expiry.len());
        assert!(inner.login_expiry.len() <= 1 + COMPACT_SLACK, "login queue: {}", inner.login_expiry.len());
        drop(inner);
        // The live session is still there and still expires.
        assert!(store.get(&keep).await.expect("get").is_some());
        assert!(store.inner.read().await.expiry.iter().any(|Reverse((_, k))| k == keep.digest()));
    }
}
