//! Memory of 100,000 sessions in the in-memory store (the session half of
//! the docs/design.md §15 memory row; `benches/idle/run.sh` adds the connections).
//!
//! Creates the sessions the way logins do (`create` with a full record: the
//! Office user's seeded features, tenant, a refresh token) and prints the
//! process's RSS growth from `/proc/self/status` as `SESSIONS_KB <n>`.
//! Run: `cargo bench --bench session_memory`.

use std::time::Duration;

use prt_gate::config::{SessionConfig, StoreKind};
use prt_gate::secret::Secret;
use prt_gate::session::{MemoryStore, SessionRecord, SessionStore, StoredTokens};

/// Sessions created under `cargo bench`; `cargo test --all-targets` runs
/// this file without `--bench`, and a thousand prove it works.
const SESSIONS: usize = 100_000;
const SMOKE: usize = 1_000;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn record(i: usize) -> SessionRecord {
    let features = prt_gate::devsso::seeded_features("Office").unwrap_or_default();
    SessionRecord {
        subject: format!("{i:08x}-9d4e-4a43-9d55-6f1f6d1b2a11"),
        email: format!("user{i}@example.com"),
        name: format!("User Number {i}"),
        role: "Office".into(),
        features: features.into(),
        tenant_id: "primetrade".into(),
        tenant_name: "PrimeTrade Logistics".into(),
        tenant_code: Some("PRT".into()),
        created: 0,
        last_seen: 0,
        absolute_expiry: 0,
        idle_timeout_secs: 0,
        // Kept when token refresh is on: the larger record.
        tokens: Some(StoredTokens { refresh_token: Secret::new(format!("{i:032x}{i:032x}")), access_expiry: 0 }),
    }
}

fn main() {
    let cfg = SessionConfig {
        store: StoreKind::Memory,
        cookie_secure: true,
        idle_timeout: Duration::from_secs(8 * 3600),
        absolute_timeout: Duration::from_secs(14 * 86_400),
        key_prefix: "bench:".into(),
        cache_ttl: Duration::ZERO,
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let n = if std::env::args().any(|a| a == "--bench") { SESSIONS } else { SMOKE };
    let store = MemoryStore::new(&cfg);
    let before = rss_kb();
    let mut ids = Vec::with_capacity(n);
    rt.block_on(async {
        for i in 0..n {
            match store.create(record(i)).await {
                Ok(id) => ids.push(id),
                Err(e) => panic!("create: {e}"),
            }
        }
    });
    let after = rss_kb();
    // The ids are the cookies the browsers hold; they are not the store's memory.
    let id_bytes = ids.capacity() * std::mem::size_of_val(&ids[0]);
    let kb = after.saturating_sub(before).saturating_sub((id_bytes / 1024) as u64);
    println!("SESSIONS_KB {kb}");
    println!("{n} sessions: {:.1} MB ({:.0} bytes each)", kb as f64 / 1024.0, kb as f64 * 1024.0 / n as f64);
}
