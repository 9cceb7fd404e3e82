//! `get` on the session stores: hot-cache hit, Redis round trip, memory.
//!
//! Needs the Redis on 127.0.0.1:6379 (override with `PRT_GATE_BENCH_REDIS`);
//! keys go under a random `prt-gate-bench:` prefix and are deleted after.
//! Run: `cargo bench --bench session`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use prt_gate::config::{SessionConfig, StoreKind};
use prt_gate::session::{MemoryStore, RedisStore, SessionId, SessionRecord, SessionStore};
use rand::RngCore as _;

fn config(store: StoreKind, prefix: &str, cache_ttl: Duration) -> SessionConfig {
    SessionConfig {
        store,
        cookie_secure: true,
        idle_timeout: Duration::from_secs(8 * 3600),
        absolute_timeout: Duration::from_secs(14 * 86_400),
        key_prefix: prefix.into(),
        cache_ttl,
    }
}

fn record() -> SessionRecord {
    SessionRecord {
        subject: "0b7c3a52-9d4e-4a43-9d55-6f1f6d1b2a11".into(),
        email: "office@example.com".into(),
        name: "Office User".into(),
        role: "Office".into(),
        features: BTreeMap::from([
            ("bol".to_string(), vec!["view".to_string(), "create".to_string()]),
            ("releases".to_string(), vec!["view".to_string()]),
            ("schedule".to_string(), vec!["view".to_string()]),
        ])
        .into(),
        tenant_id: "primetrade".into(),
        tenant_name: "PrimeTrade Logistics".into(),
        tenant_code: Some("PRT".into()),
        created: 0,
        last_seen: 0,
        absolute_expiry: 0,
        idle_timeout_secs: 0,
        tokens: None,
    }
}

fn bench_get<S: SessionStore>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &S) {
    let id = rt.block_on(store.create(record())).unwrap();
    let cookie = id.expose_cookie_value().to_string();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    // What a request does: parse the cookie, look it up.
                    let id = SessionId::parse(black_box(&cookie)).unwrap();
                    black_box(store.get(&id).await.unwrap().unwrap());
                }
                t.elapsed()
            })
        })
    });
}

fn session(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let cookie = SessionId::generate().unwrap().expose_cookie_value().to_string();
    c.bench_function("session/parse_id", |b| b.iter(|| SessionId::parse(black_box(&cookie))));

    let memory = MemoryStore::new(&config(StoreKind::Memory, "unused:", Duration::ZERO));
    bench_get(c, &rt, "session/get/memory", &memory);

    let url = std::env::var("PRT_GATE_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("prt-gate-bench:{:016x}:", rand::rng().next_u64());
    let open = |cache_ttl| {
        let cfg = config(StoreKind::Redis(url.clone()), &prefix, cache_ttl);
        rt.block_on(async { RedisStore::open(&url, &cfg) }).unwrap()
    };
    // The cache TTL is a minute here so the hit case never refills; with the
    // production 500 ms it refills once per 500 ms, i.e. amortized to noise.
    let cached = open(Duration::from_secs(60));
    let uncached = open(Duration::ZERO);
    if rt.block_on(uncached.ping()).is_err() {
        eprintln!("session bench: no Redis at {url}; skipping the Redis cases");
        return;
    }
    bench_get(c, &rt, "session/get/redis_hot_cache_hit", &cached);
    bench_get(c, &rt, "session/get/redis_round_trip", &uncached);
    rt.block_on(async {
        cached.revoke_all().await.unwrap();
        uncached.revoke_all().await.unwrap();
    });
}

criterion_group!(benches, session);
criterion_main!(benches);
