//! The Redis store: sessions shared by every gate replica.
//!
//! Connections: `redis://` / `rediss://` go through one
//! `ConnectionManager` (multiplexed, reconnects by itself); cluster URLs
//! (`redis+cluster://h1:p1,h2:p2,…`, see [`cluster_seeds`]) through the
//! async cluster client. Every command runs under a hard timeout
//! (500 ms), so a hung Redis cannot hang requests; every failure is
//! [`StoreError::Unavailable`], never "no session".
//!
//! Key layout (`P` = `session.key_prefix`, `H` = hex SHA-256 of a secret):
//!
//! | key | type | TTL | content |
//! |---|---|---|---|
//! | `P s:H` | string | min(absolute left, idle) — refreshed on touch | JSON [`SessionRecord`] |
//! | `P l:H` | string | login TTL (10 min) | JSON [`LoginState`], taken with `GETDEL` |
//! | `P{u}:EMAIL` | set | ≥ absolute timeout | `H` of that user's sessions |
//! | `P{u}` | set | ≥ absolute timeout | emails that have sessions (for `--all`) |
//!
//! Cluster: the hot path touches one key per command. The two index kinds
//! share the hash tag `{u}` so the small Lua scripts that keep them
//! consistent run on one slot; session keys spread over the cluster.
//! Invariant: a session's hash is indexed *before* its record is written, so
//! `revoke` can always find a live session; stale index members (expired
//! records) are removed lazily by `list`/`revoke`/`delete`.
//!
//! `last_seen` is refreshed with a compare-and-set script: a touch never
//! resurrects a record deleted by another replica, nor overwrites a
//! concurrent `update` with older roles. The [`HotCache`] answers repeated
//! lookups for `cache_ttl`.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, FromRedisValue};

use super::cache::HotCache;
use super::id::{parse_hex_digest, SessionId};
use super::record::{now_secs, ttl_whole_secs, user_key, LoginState, SessionRecord, SessionSummary, Timeouts};
use super::{SessionStore, StoreError, StoreStats};
use crate::config::SessionConfig;

/// Longest a single Redis command may take before the request gets a 503.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Attempts for a compare-and-set that keeps losing to concurrent writers.
const CAS_ATTEMPTS: usize = 3;

/// Add a session hash to its user's set and the user to the set of users;
/// stretch both TTLs to cover the new session. KEYS: users, user.
/// ARGV: email, hash, ttl seconds.
const INDEX_ADD: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
local ttl = tonumber(ARGV[3])
for i = 1, 2 do
  if redis.call('TTL', KEYS[i]) < ttl then redis.call('EXPIRE', KEYS[i], ttl) end
end
return 1";

/// Remove hashes from a user's set; drop the user from the set of users
/// once the set is empty (atomically, so a concurrent login is not lost).
/// KEYS: users, user. ARGV: email, hash…
const INDEX_REMOVE: &str = r"
for i = 2, #ARGV do redis.call('SREM', KEYS[2], ARGV[i]) end
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end
return 1";

/// Replace a record only if it is still exactly what we read.
/// KEYS: session. ARGV: expected, new, ttl seconds.
const COMPARE_AND_SET: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0";

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

pub struct RedisStore {
    conn: Conn,
    prefix: String,
    timeouts: Timeouts,
    command_timeout: Duration,
    cache: HotCache,
    stats: StoreStats,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        let mode = match self.conn {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore").field("mode", &mode).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Seed node URLs of a cluster URL.
///
/// Syntax: `redis+cluster://[user:password@]host:port[,host:port…][/]`, or
/// `rediss+cluster://…` for TLS. Credentials apply to every node; any seed
/// is enough, the client discovers the rest. No database number (a cluster
/// has only database 0) and no query string.
pub fn cluster_seeds(url: &str) -> Result<Vec<String>, StoreError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
        ("rediss", rest)
    } else {
        return Err(StoreError::Config("a cluster URL starts with redis+cluster:// or rediss+cluster://".into()));
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (Some(auth), hosts),
        None => (None, rest),
    };
    let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
    if hosts.contains(['/', '?', '#']) {
        return Err(StoreError::Config(
            "cluster URLs take no database or query: redis+cluster://[user:password@]host:port,host:port".into(),
        ));
    }
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| match auth {
            Some(a) => format!("{scheme}://{a}@{h}"),
            None => format!("{scheme}://{h}"),
        })
        .collect();
    if seeds.is_empty() {
        return Err(StoreError::Config("cluster URL names no node: redis+cluster://host:port,host:port".into()));
    }
    Ok(seeds)
}

impl RedisStore {
    /// Build the store without connecting: the first command connects, and
    /// the connection is re-established by itself after Redis comes back.
    pub fn open(url: &str, cfg: &SessionConfig) -> Result<RedisStore, StoreError> {
        Self::open_with_timeout(url, cfg, COMMAND_TIMEOUT)
    }

    pub fn open_with_timeout(url: &str, cfg: &SessionConfig, timeout: Duration) -> Result<RedisStore, StoreError> {
        if url.starts_with("rediss") {
            // redis-rs builds rustls configs from the process default
            // provider; pin ring (Err means one is installed already).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        // Errors from the URL parser may quote the URL: report without it.
        let conn = if url.contains("+cluster://") {
            let client = ClusterClientBuilder::new(cluster_seeds(url)?)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()
                .map_err(|e| StoreError::Config(format!("invalid Redis cluster URL ({:?})", e.kind())))?;
            let config = ClusterConfig::new().set_connection_timeout(timeout).set_response_timeout(timeout);
            Conn::Cluster(client.get_pending_async_connection_with_config(config))
        } else {
            let client = ::redis::Client::open(url)
                .map_err(|e| StoreError::Config(format!("invalid Redis URL ({:?})", e.kind())))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| StoreError::Config(format!("Redis client: {:?}", e.kind())))?;
            Conn::Single(manager)
        };
        Ok(RedisStore {
            conn,
            prefix: cfg.key_prefix.clone(),
            timeouts: Timeouts::from_config(cfg),
            command_timeout: timeout,
            cache: HotCache::new(cfg.cache_ttl),
            stats: StoreStats::default(),
        })
    }

    fn session_key(&self, hex: &str) -> String {
        format!("{}s:{hex}", self.prefix)
    }
    fn login_key(&self, hex: &str) -> String {
        format!("{}l:{hex}", self.prefix)
    }
    fn users_key(&self) -> String {
        format!("{}{{u}}", self.prefix)
    }
    fn user_key(&self, email: &str) -> String {
        format!("{}{{u}}:{email}", self.prefix)
    }

    /// One command, bounded by the command timeout, counted.
    async fn run<T: FromRedisValue>(&self, op: &'static str, cmd: &Cmd) -> Result<T, StoreError> {
        StoreStats::incr(&self.stats.ops);
        let started = std::time::Instant::now();
        let reply = tokio::time::timeout(self.command_timeout, async {
            match self.conn.clone() {
                Conn::Single(mut c) => cmd.query_async::<T>(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async::<T>(&mut c).await,
            }
        })
        .await;
        self.stats.latency.observe(started.elapsed());
        let err = match reply {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => StoreError::unavailable(op, e.to_string()),
            Err(_) => StoreError::unavailable(op, format!("no reply within {} ms", self.command_timeout.as_millis())),
        };
        StoreStats::incr(&self.stats.errors);
        tracing::debug!(error = %err, "session store command failed");
        Err(err)
    }

    fn eval(script: &str, keys: &[&str]) -> Cmd {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len()).arg(keys);
        cmd
    }

    async fn index_add(&self, email: &str, hex: &str) -> Result<(), StoreError> {
        let (users, user) = (self.users_key(), self.user_key(email));
        let ttl = self.timeouts.absolute_secs + 60;
        self.run::<i64>("index", Self::eval(INDEX_ADD, &[&users, &user]).arg(email).arg(hex).arg(ttl)).await?;
        Ok(())
    }

    async fn index_remove(&self, email: &str, hexes: &[String]) -> Result<(), StoreError> {
        let (users, user) = (self.users_key(), self.user_key(email));
        self.run::<i64>("unindex", Self::eval(INDEX_REMOVE, &[&users, &user]).arg(email).arg(hexes)).await?;
        Ok(())
    }

    async fn compare_and_set(&self, key: &str, old: &str, new: &SessionRecord, now: u64) -> Result<bool, StoreError> {
        let json = encode(new)?;
        let cmd = Self::eval(COMPARE_AND_SET, &[key]).arg(old).arg(json).arg(new.ttl_secs(now)).to_owned();
        Ok(self.run::<i64>("touch", &cmd).await? == 1)
    }

    /// Delete an expired or unreadable record and its index entry. Best
    /// effort: the caller already answers "no session".
    async fn discard(&self, key: &str, hex: &str, email: Option<&str>) {
        if self.run::<i64>("del", ::redis::cmd("DEL").arg(key)).await.is_ok() {
            if let Some(email) = email {
                let _ = self.index_remove(&user_key(email), &[hex.to_owned()]).await;
            }
        }
    }

    async fn revoke_user_key(&self, email: &str) -> Result<usize, StoreError> {
        let hexes: Vec<String> = self.run("smembers", ::redis::cmd("SMEMBERS").arg(self.user_key(email))).await?;
        let mut n = 0;
        for hex in &hexes {
            n += self.run::<usize>("del", ::redis::cmd("DEL").arg(self.session_key(hex))).await?;
        }
        self.index_remove(email, &hexes).await?;
        Ok(n)
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::unavailable("encode", e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, raw: &str) -> Option<T> {
    match serde_json::from_str(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            // Unreadable (another version's schema?): treated as absent, so the
            // user logs in again; never as a valid session.
            tracing::warn!(what, error = %e, "discarding unreadable session store entry");
            None
        }
    }
}

impl SessionStore for RedisStore {
    async fn create(&self, mut rec: SessionRecord) -> Result<SessionId, StoreError> {
        let now = now_secs();
        self.timeouts.stamp(&mut rec, now);
        let id = SessionId::generate().map_err(|e| StoreError::unavailable("create", e.to_string()))?;
        let hex = id.storage_key();
        let epoch = self.cache.epoch();
        // Index first: a record that exists is always reachable by revoke.
        self.index_add(&user_key(&rec.email), &hex).await?;
        let set = ::redis::cmd("SET")
            .arg(self.session_key(&hex))
            .arg(encode(&rec)?)
            .arg("EX")
            .arg(rec.ttl_secs(now))
            .arg("NX")
            .to_owned();
        let ok: Option<String> = self.run("create", &set).await?;
        if ok.is_none() {
            return Err(StoreError::unavailable("create", "session id collision"));
        }
        self.cache.insert(*id.digest(), Arc::new(rec), epoch).await;
        Ok(id)
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let now = now_secs();
        if let Some(rec) = self.cache.get(id.digest()).await {
            if !rec.is_expired(now) {
                StoreStats::incr(&self.stats.cache_hits);
                return Ok(Some(rec));
            }
        }
        StoreStats::incr(&self.stats.cache_misses);
        let epoch = self.cache.epoch();
        let hex = id.storage_key();
        let key = self.session_key(&hex);
        let mut attempts = 0;
        let rec = loop {
            let Some(raw) = self.run::<Option<String>>("get", ::redis::cmd("GET").arg(&key)).await? else {
                return Ok(None);
            };
            let Some(mut rec) = decode::<SessionRecord>("session", &raw) else {
                self.discard(&key, &hex, None).await;
                return Ok(None);
            };
            if rec.is_expired(now) {
                self.discard(&key, &hex, Some(&rec.email)).await;
                self.cache.invalidate(id.digest()).await;
                return Ok(None);
            }
            attempts += 1;
            if !rec.needs_touch(now) || attempts > CAS_ATTEMPTS {
                break rec;
            }
            rec.last_seen = now;
            match self.compare_and_set(&key, &raw, &rec, now).await {
                Ok(true) => break rec,
                // Changed (or deleted) since our read: read again.
                Ok(false) => continue,
                // The read succeeded, the session is valid: serve it; the
                // next lookup retries the touch.
                Err(_) => break rec,
            }
        };
        let rec = Arc::new(rec);
        self.cache.insert(*id.digest(), rec.clone(), epoch).await;
        Ok(Some(rec))
    }

    async fn update(&self, id: &SessionId, mut rec: SessionRecord) -> Result<bool, StoreError> {
        let now = now_secs();
        let hex = id.storage_key();
        let key = self.session_key(&hex);
        // Whatever happens, this replica must not keep serving the old record.
        let outcome = async {
            for _ in 0..CAS_ATTEMPTS {
                let Some(raw) = self.run::<Option<String>>("get", ::redis::cmd("GET").arg(&key)).await? else {
                    return Ok(false);
                };
                let Some(old) = decode::<SessionRecord>("session", &raw) else { return Ok(false) };
                if old.is_expired(now) {
                    return Ok(false);
                }
                rec.created = old.created;
                rec.absolute_expiry = old.absolute_expiry;
                rec.idle_timeout_secs = old.idle_timeout_secs;
                rec.last_seen = now;
                let moved = user_key(&rec.email) != user_key(&old.email);
                if moved {
                    // Index under the new email before the record says so.
                    self.index_add(&user_key(&rec.email), &hex).await?;
                }
                if self.compare_and_set(&key, &raw, &rec, now).await? {
                    if moved {
                        let _ = self.index_remove(&user_key(&old.email), std::slice::from_ref(&hex)).await;
                    }
                    return Ok(true);
                }
            }
            Err(StoreError::unavailable("update", "record kept changing under concurrent writers"))
        }
        .await;
        self.cache.invalidate(id.digest()).await;
        outcome
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let hex = id.storage_key();
        let taken = self.run::<Option<String>>("delete", ::redis::cmd("GETDEL").arg(self.session_key(&hex))).await;
        // Forget locally whatever Redis said: the user asked to log out.
        self.cache.invalidate(id.digest()).await;
        let Some(raw) = taken? else { return Ok(false) };
        if let Some(rec) = decode::<SessionRecord>("session", &raw) {
            // Best effort: a stale index member is cleaned by list/revoke.
            let _ = self.index_remove(&user_key(&rec.email), &[hex]).await;
        }
        Ok(true)
    }

    async fn list(&self, user: Option<&str>) -> Result<Vec<SessionSummary>, StoreError> {
        let now = now_secs();
        let emails: Vec<String> = match user {
            Some(u) => vec![user_key(u)],
            None => self.run("smembers", ::redis::cmd("SMEMBERS").arg(self.users_key())).await?,
        };
        let mut out = Vec::new();
        for email in emails {
            let hexes: Vec<String> = self.run("smembers", ::redis::cmd("SMEMBERS").arg(self.user_key(&email))).await?;
            let mut gone = Vec::new();
            for hex in hexes {
                let Some(digest) = parse_hex_digest(&hex) else {
                    gone.push(hex);
                    continue;
                };
                let raw: Option<String> = self.run("get", ::redis::cmd("GET").arg(self.session_key(&hex))).await?;
                match raw {
                    None => gone.push(hex),
                    Some(raw) => match decode::<SessionRecord>("session", &raw) {
                        Some(rec) if !rec.is_expired(now) => out.push(rec.summary(&digest)),
                        _ => {}
                    },
                }
            }
            // Lazy cleanup of members whose record expired; also drops the
            // user from the set of users once nothing is left.
            let _ = self.index_remove(&email, &gone).await;
        }
        out.sort_by(|a, b| (a.created, &a.handle).cmp(&(b.created, &b.handle)));
        Ok(out)
    }

    async fn revoke_user(&self, email: &str) -> Result<usize, StoreError> {
        let result = self.revoke_user_key(&user_key(email)).await;
        self.cache.invalidate_user(email).await;
        result
    }

    async fn revoke_all(&self) -> Result<usize, StoreError> {
        let result = async {
            let emails: Vec<String> = self.run("smembers", ::redis::cmd("SMEMBERS").arg(self.users_key())).await?;
            let mut n = 0;
            for email in emails {
                n += self.revoke_user_key(&email).await?;
            }
            Ok(n)
        }
        .await;
        self.cache.clear().await;
        result
    }

    async fn put_login_state(&self, state: &str, st: &LoginState, ttl: Duration) -> Result<(), StoreError> {
        let key = self.login_key(&super::id::hex(&super::id::sha256(state.as_bytes())));
        let cmd = ::redis::cmd("SET").arg(key).arg(encode(st)?).arg("EX").arg(ttl_whole_secs(ttl)).to_owned();
        self.run::<()>("login_put", &cmd).await
    }

    async fn take_login_state(&self, state: &str) -> Result<Option<LoginState>, StoreError> {
        let key = self.login_key(&super::id::hex(&super::id::sha256(state.as_bytes())));
        let raw: Option<String> = self.run("login_take", ::redis::cmd("GETDEL").arg(key)).await?;
        Ok(raw.and_then(|raw| decode("login state", &raw)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run::<String>("ping", &::redis::cmd("PING")).await.map(drop)
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }
}
