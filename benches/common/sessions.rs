//! The session record the memory benches store: the Office user's seeded features, the
//! default tenant, a refresh token (kept when token refresh is on: the larger record).
//! Shared by `session_memory.rs` and `memory_row.rs`.

use prt_gate::secret::Secret;
use prt_gate::session::{SessionRecord, StoredTokens};

pub fn record(i: usize) -> SessionRecord {
    // A fresh map per login, as the SSO's claims give one: the store decides what to share.
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
        tokens: Some(StoredTokens { refresh_token: Secret::new(format!("{i:032x}{i:032x}")), access_expiry: 0 }),
    }
}

/// This process's resident set size in kB (`VmRSS`).
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
