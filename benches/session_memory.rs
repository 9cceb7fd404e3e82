//! Memory of 100,000 sessions in the in-memory store (the session half of
//! the docs/design.md §15 memory row; `benches/idle/run.sh` adds the connections).
//!
//! Creates the sessions the way logins do (`create` with a full record: the
//! Office user's seeded features, tenant, a refresh token) and prints the
//! process's RSS growth from `/proc/self/status` as `SESSIONS_KB <n>`.
//! Run: `cargo bench --bench session_memory`.

use std::time::Duration;

use prt_gate::config::{SessionConfig, StoreKind};
use prt_gate::session::{MemoryStore, SessionStore};

#[path = "common/sessions.rs"]
mod sessions;
use sessions::{record, rss_kb};

/// Sessions created under `cargo bench`; `cargo test --all-targets` runs
/// this file without `--bench`, and a thousand prove it works.
const SESSIONS: usize = 100_000;
const SMOKE: usize = 1_000;

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
