//! Session stores against real backends: the memory store and real Redis
//! (the shared server on 127.0.0.1:6379 with a unique key prefix per test,
//! cleaned up afterwards; and private `redis-server` children for outage and
//! cluster tests — the shared server is never flushed or stopped).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prt_gate::config::{SessionConfig, StoreKind};
use prt_gate::secret::Secret;
use prt_gate::session::{
    LoginState, MemoryStore, SessionId, SessionRecord, SessionStore, Store, StoreError, StoredTokens,
};
use rand::RngCore as _;

use crate::support::eventually_async;

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

// ---------------------------------------------------------------- helpers

fn config(store: StoreKind, prefix: &str, idle: u64, absolute: u64, cache_ms: u64) -> SessionConfig {
    SessionConfig {
        store,
        cookie_secure: true,
        idle_timeout: Duration::from_secs(idle),
        absolute_timeout: Duration::from_secs(absolute),
        key_prefix: prefix.to_string(),
        cache_ttl: Duration::from_millis(cache_ms),
    }
}

fn record(email: &str, role: &str) -> SessionRecord {
    SessionRecord {
        subject: format!("sub-{email}"),
        email: email.into(),
        name: "Test User".into(),
        role: role.into(),
        features: BTreeMap::from([("bol".to_string(), vec!["view".to_string()])]).into(),
        tenant_id: "primetrade".into(),
        tenant_name: "PrimeTrade Logistics".into(),
        tenant_code: Some("PRT".into()),
        created: 0,
        last_seen: 0,
        absolute_expiry: 0,
        idle_timeout_secs: 0,
        tokens: Some(StoredTokens { refresh_token: Secret::new("refresh-canary".into()), access_expiry: 1 }),
    }
}

fn login_state(next: &str) -> LoginState {
    LoginState {
        pkce_verifier: Secret::new("verifier".into()),
        nonce: Secret::new("nonce".into()),
        next: Some(next.into()),
        created: 1,
    }
}

/// A unique key prefix on the shared Redis; its keys are deleted on drop
/// (also when the test fails part way).
struct TestPrefix(String);

impl TestPrefix {
    fn new() -> TestPrefix {
        TestPrefix(format!("prt-gate-test:{:016x}:", rand::rng().next_u64()))
    }

    fn keys(&self) -> Vec<String> {
        let mut con = redis::Client::open(SHARED_REDIS).unwrap().get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", self.0)).query(&mut con).unwrap_or_default();
        keys
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let Ok(mut con) = redis::Client::open(SHARED_REDIS).and_then(|c| c.get_connection()) else { return };
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", self.0)).query(&mut con).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut con);
        }
    }
}

async fn redis_store(prefix: &TestPrefix, idle: u64, absolute: u64, cache_ms: u64) -> Store {
    let cfg = config(StoreKind::Redis(SHARED_REDIS.into()), &prefix.0, idle, absolute, cache_ms);
    Store::from_config(&cfg).await.unwrap()
}

fn memory_store(idle: u64, absolute: u64) -> Store {
    Store::Memory(MemoryStore::new(&config(StoreKind::Memory, "unused:", idle, absolute, 0)))
}

/// A private `redis-server` (never the shared one), killed on drop.
struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start(port: u16, extra: &[&str]) -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", dir.path().to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server on {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { child, port, _dir: dir }
    }

    fn kill(mut self) -> u16 {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.port
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port whose cluster-bus twin (port + 10000) is free too.
fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

// ------------------------------------------------- one suite, every store

/// The behaviour every store must have; run against memory, Redis and
/// Redis Cluster.
async fn store_contract(store: &impl SessionStore) {
    // create / get / delete
    let id = store.create(record("Ann@Example.com", "Office")).await.unwrap();
    let got = store.get(&id).await.unwrap().expect("fresh session");
    assert_eq!(got.email, "Ann@Example.com");
    assert_eq!(got.role, "Office");
    assert!(got.created > 0 && got.absolute_expiry > got.created, "the store stamps times: {got:?}");
    assert_eq!(got.tokens.as_ref().unwrap().refresh_token.expose(), "refresh-canary");
    let unknown = SessionId::generate().unwrap();
    assert!(store.get(&unknown).await.unwrap().is_none());
    assert!(store.delete(&id).await.unwrap());
    assert!(store.get(&id).await.unwrap().is_none(), "deleted session");
    assert!(!store.delete(&id).await.unwrap());

    // update keeps the lifetime, replaces identity
    let id = store.create(record("bob@example.com", "Client")).await.unwrap();
    let before = store.get(&id).await.unwrap().unwrap();
    let mut changed = record("bob@example.com", "Operator");
    changed.absolute_expiry = u64::MAX;
    assert!(store.update(&id, changed).await.unwrap());
    let after = store.get(&id).await.unwrap().unwrap();
    assert_eq!(after.role, "Operator");
    assert_eq!(after.absolute_expiry, before.absolute_expiry, "update cannot extend a session");
    assert!(!store.update(&unknown, record("x@example.com", "Admin")).await.unwrap());
    // An email change moves the session to the new user's index.
    assert!(store.update(&id, record("Bobby@example.com", "Operator")).await.unwrap());
    assert!(store.list(Some("bob@example.com")).await.unwrap().is_empty());
    assert_eq!(store.list(Some("bobby@example.com")).await.unwrap().len(), 1);

    // list / revoke
    let ann1 = store.create(record("ann@example.com", "Office")).await.unwrap();
    let ann2 = store.create(record("ANN@example.com", "Office")).await.unwrap();
    let all = store.list(None).await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    let anns = store.list(Some("Ann@Example.COM")).await.unwrap();
    assert_eq!(anns.len(), 2, "{anns:?}");
    let handles: Vec<&str> = anns.iter().map(|s| s.handle.as_str()).collect();
    assert!(handles.contains(&ann1.handle().as_str()) && handles.contains(&ann2.handle().as_str()));
    assert!(anns.iter().all(|s| s.handle.len() == 12 && s.role == "Office" && s.expires > s.created));
    assert_eq!(store.revoke_user("ann@EXAMPLE.com").await.unwrap(), 2);
    assert!(store.get(&ann1).await.unwrap().is_none());
    assert!(store.get(&ann2).await.unwrap().is_none());
    assert!(store.get(&id).await.unwrap().is_some(), "other users keep their sessions");
    assert_eq!(store.list(Some("ann@example.com")).await.unwrap().len(), 0);
    let carl = store.create(record("carl@example.com", "Admin")).await.unwrap();
    assert_eq!(store.revoke_all().await.unwrap(), 2);
    assert!(store.get(&id).await.unwrap().is_none());
    assert!(store.get(&carl).await.unwrap().is_none());
    assert!(store.list(None).await.unwrap().is_empty());

    // login state: single use, and per login (two tabs)
    store.put_login_state("state-one", &login_state("/a"), Duration::from_secs(600)).await.unwrap();
    store.put_login_state("state-two", &login_state("/b"), Duration::from_secs(600)).await.unwrap();
    let one = store.take_login_state("state-one").await.unwrap().expect("first take");
    assert_eq!(one.next.as_deref(), Some("/a"));
    assert_eq!(one.pkce_verifier.expose(), "verifier");
    assert!(store.take_login_state("state-one").await.unwrap().is_none(), "second take");
    assert_eq!(store.take_login_state("state-two").await.unwrap().unwrap().next.as_deref(), Some("/b"));
    assert!(store.take_login_state("never-put").await.unwrap().is_none());

    store.ping().await.unwrap();
}

/// Idle and absolute expiry, and login-state TTL (real time: a few seconds).
async fn expiry_contract(idle_store: &impl SessionStore, absolute_store: &impl SessionStore) {
    // Idle 3 s: activity keeps the session alive past the idle timeout (reads
    // come every ~0.3-0.8 s; with whole-second timestamps a gap under 2 s
    // is always safe, so a loaded machine does not make this flaky)...
    let id = idle_store.create(record("idle@example.com", "Office")).await.unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(4_500) {
        assert!(idle_store.get(&id).await.unwrap().is_some(), "active session expired after {:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // ...and inactivity ends it (second granularity: ≤ 4 s after the last use).
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    assert!(idle_store.get(&id).await.unwrap().is_none(), "idle session still valid");

    // Absolute 2 s: ends even while in use.
    let id = absolute_store.create(record("abs@example.com", "Office")).await.unwrap();
    assert!(absolute_store.get(&id).await.unwrap().is_some());
    let ended = eventually_async(Duration::from_secs(5), || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        absolute_store.get(&id).await.unwrap().is_none()
    })
    .await;
    assert!(ended, "absolute expiry not enforced");
    assert!(absolute_store.list(Some("abs@example.com")).await.unwrap().is_empty());

    // Login state TTL.
    idle_store.put_login_state("short", &login_state("/x"), Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(idle_store.take_login_state("short").await.unwrap().is_none(), "login state outlived its TTL");
}

#[tokio::test]
async fn memory_store_contract() {
    store_contract(&memory_store(3600, 86_400)).await;
}

#[tokio::test]
async fn redis_store_contract() {
    let prefix = TestPrefix::new();
    store_contract(&redis_store(&prefix, 3600, 86_400, 500).await).await;
}

#[tokio::test]
async fn memory_store_expiry() {
    expiry_contract(&memory_store(3, 60), &memory_store(60, 2)).await;
}

#[tokio::test]
async fn redis_store_expiry() {
    let prefix = TestPrefix::new();
    let (idle, absolute) = (redis_store(&prefix, 3, 60, 500).await, redis_store(&prefix, 60, 2, 500).await);
    expiry_contract(&idle, &absolute).await;
}

// --------------------------------------------------------- Redis specifics

#[tokio::test]
async fn redis_sees_only_the_hash_of_the_id() {
    let prefix = TestPrefix::new();
    let store = redis_store(&prefix, 3600, 86_400, 0).await;
    let id = store.create(record("hash@example.com", "Office")).await.unwrap();
    let keys = prefix.keys();
    let session_key = format!("{}s:{}", prefix.0, id.storage_key());
    assert!(keys.contains(&session_key), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(id.expose_cookie_value())), "{keys:?}");
    let mut con = redis::Client::open(SHARED_REDIS).unwrap().get_multiplexed_async_connection().await.unwrap();
    let raw: Option<String> = redis::cmd("GET")
        .arg(format!("{}s:{}", prefix.0, id.expose_cookie_value()))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(raw.is_none(), "a record is never stored under the raw id");
    let stored: String = redis::cmd("GET").arg(&session_key).query_async(&mut con).await.unwrap();
    assert!(!stored.contains(id.expose_cookie_value()));
    let ttl: i64 = redis::cmd("TTL").arg(&session_key).query_async(&mut con).await.unwrap();
    assert!((3590..=3600).contains(&ttl), "TTL = min(idle, absolute left): {ttl}");
    // A cookie whose hash is not stored is no session, whatever Redis holds.
    assert!(store.get(&SessionId::generate().unwrap()).await.unwrap().is_none());
}

#[tokio::test]
async fn two_replicas_share_sessions_and_revocation_reaches_both_within_a_second() {
    let prefix = TestPrefix::new();
    let a = redis_store(&prefix, 3600, 86_400, 500).await;
    let b = redis_store(&prefix, 3600, 86_400, 500).await;

    let id = a.create(record("rep@example.com", "Office")).await.unwrap();
    assert_eq!(b.get(&id).await.unwrap().expect("created on A, valid on B").email, "rep@example.com");

    // B's hot cache answers a repeated lookup without a round trip.
    let before = b.stats().snapshot();
    assert!(b.get(&id).await.unwrap().is_some());
    let after = b.stats().snapshot();
    assert_eq!(after.ops, before.ops, "cache hit must not touch Redis");
    assert_eq!(after.cache_hits, before.cache_hits + 1);

    // Revoke on A: B refuses within 1 s (its cache entry ages out).
    assert_eq!(a.revoke_user("rep@example.com").await.unwrap(), 1);
    assert!(a.get(&id).await.unwrap().is_none(), "A forgets at once");
    let t = Instant::now();
    assert!(eventually_async(Duration::from_secs(1), || async { b.get(&id).await.unwrap().is_none() }).await);
    assert!(t.elapsed() <= Duration::from_secs(1), "took {:?}", t.elapsed());

    // Same for a logout on B seen by A.
    let id = a.create(record("rep@example.com", "Office")).await.unwrap();
    assert!(b.get(&id).await.unwrap().is_some());
    assert!(b.delete(&id).await.unwrap());
    assert!(b.get(&id).await.unwrap().is_none());
    assert!(eventually_async(Duration::from_secs(1), || async { a.get(&id).await.unwrap().is_none() }).await);
}

#[tokio::test]
async fn redis_outage_fails_closed_and_recovers_by_itself() {
    let server = OwnRedis::start(free_port(), &[]);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let cfg = |cache_ms| config(StoreKind::Redis(url.clone()), "prt-gate-test:outage:", 3600, 86_400, cache_ms);
    // `writer` makes sessions; `reader` is another replica. The reader's
    // cache TTL is long here only so the cached-entry case is not timing
    // sensitive; production caps it at 1 s.
    let writer = Store::from_config(&cfg(0)).await.unwrap();
    let reader = Store::from_config(&cfg(30_000)).await.unwrap();
    let cached = writer.create(record("cached@example.com", "Office")).await.unwrap();
    let uncached = writer.create(record("uncached@example.com", "Office")).await.unwrap();
    assert!(reader.get(&cached).await.unwrap().is_some());

    let port = server.kill();
    let t = Instant::now();
    match reader.get(&uncached).await {
        Err(StoreError::Unavailable { op, .. }) => assert_eq!(op, "get"),
        other => panic!("Redis down must be Unavailable, never a verdict: {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_millis(1_500), "bounded by the command timeout: {:?}", t.elapsed());
    assert!(reader.get(&cached).await.unwrap().is_some(), "a fresh cache entry is still served");
    assert!(matches!(writer.create(record("new@example.com", "Office")).await, Err(StoreError::Unavailable { .. })));
    assert!(matches!(writer.take_login_state("s").await, Err(StoreError::Unavailable { .. })));
    assert!(writer.ping().await.is_err());
    assert!(writer.stats().snapshot().errors >= 3);

    // Same port, empty server: the stores reconnect on their own.
    let _server = OwnRedis::start(port, &[]);
    assert!(eventually_async(Duration::from_secs(10), || async { writer.ping().await.is_ok() }).await, "no recovery");
    let id = writer.create(record("after@example.com", "Office")).await.unwrap();
    assert!(eventually_async(Duration::from_secs(10), || async { matches!(reader.get(&id).await, Ok(Some(_))) }).await);
    assert!(reader.get(&uncached).await.unwrap().is_none(), "data did not survive the restart");
}

#[tokio::test]
async fn redis_cluster_store_contract() {
    let nodes: Vec<OwnRedis> = (0..3)
        .map(|_| {
            OwnRedis::start(
                free_port(),
                &["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"],
            )
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli on PATH");
    assert!(status.success(), "redis-cli --cluster create failed");
    let cluster_ok = |port: u16| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "info"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
    };
    let ready = eventually_async(Duration::from_secs(20), || {
        let ok = nodes.iter().all(|n| cluster_ok(n.port));
        async move { ok }
    })
    .await;
    assert!(ready, "cluster did not converge");

    let url = format!("redis+cluster://{},{}", addrs[0], addrs[1]);
    let cfg = config(StoreKind::Redis(url), "prt-gate:", 3600, 86_400, 500);
    let store = Store::from_config(&cfg).await.unwrap();
    // Topology may still be settling on a loaded machine.
    assert!(eventually_async(Duration::from_secs(10), || async { store.ping().await.is_ok() }).await);
    store_contract(&store).await;
}

#[tokio::test]
async fn bad_store_urls_are_config_errors() {
    let cfg = |url: &str| config(StoreKind::Redis(url.into()), "p:", 60, 60, 0);
    for url in ["redis+cluster://", "redis+cluster://a:1/3", "redis://:pw@[::1"] {
        match Store::from_config(&cfg(url)).await {
            Err(e @ StoreError::Config(_)) => assert!(!e.to_string().contains("pw"), "{e}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rediss_verifies_the_server_certificate() {
    // A TLS Redis with a self-signed certificate: the store must refuse it
    // (Unavailable), not fall back to plaintext or skip verification.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("openssl not available; skipping");
        return;
    }
    let port = free_port();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let tls = ["--port", "0", "--tls-port", &port.to_string(), "--tls-cert-file", cert, "--tls-key-file", key];
    let _server =
        OwnRedis::start(port, &[&tls[..], &["--tls-ca-cert-file", cert, "--tls-auth-clients", "no"]].concat());
    let url = format!("rediss://127.0.0.1:{port}");
    let store = Store::from_config(&config(StoreKind::Redis(url), "p:", 60, 60, 0)).await.unwrap();
    match store.ping().await {
        Err(StoreError::Unavailable { reason, .. }) => assert!(reason.contains("certificate"), "{reason}"),
        other => panic!("self-signed TLS Redis accepted: {other:?}"),
    }
}
