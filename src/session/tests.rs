//! Unit tests: ids, records, expiry rules, cluster URLs, the hot cache.
//! Store behaviour against real Redis lives in `tests/it/session.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::cache::HotCache;
use super::id::{hex, parse_hex_digest, sha256, IdMemo, SessionId, ID_LEN};
use super::record::{LoginState, SessionRecord, StoredTokens};
use super::redis::cluster_seeds;
use super::StoreError;
use crate::secret::Secret;

const CANARY: &str = "canary-refresh-7c1e";

fn record(email: &str) -> SessionRecord {
    SessionRecord {
        subject: "3f0c".into(),
        email: email.into(),
        name: "Ada".into(),
        role: "Office".into(),
        features: BTreeMap::from([("bol".to_string(), vec!["view".to_string()])]).into(),
        tenant_id: "primetrade".into(),
        tenant_name: "PrimeTrade Logistics".into(),
        tenant_code: Some("PRT".into()),
        created: 100,
        last_seen: 1_000,
        absolute_expiry: 10_000,
        idle_timeout_secs: 600,
        tokens: Some(StoredTokens { refresh_token: Secret::new(CANARY.into()), access_expiry: 2_000 }),
    }
}

#[test]
fn generated_ids_are_43_base64url_chars_and_parse_back() {
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let id = SessionId::generate().unwrap();
        let v = id.expose_cookie_value();
        assert_eq!(v.len(), ID_LEN);
        assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{v}");
        assert_eq!(SessionId::parse(v).as_ref(), Some(&id));
        assert!(seen.insert(v.to_string()), "duplicate id");
    }
}

/// A connection's memo gives back the remembered id only for the very same cookie: a
/// different one (another user, one character changed, a malformed one) is parsed
/// afresh and never answered with the previous id; the digest is always the cookie's own.
#[test]
fn the_connection_memo_answers_only_the_same_cookie() {
    let memo = IdMemo::default();
    let (a, b) = (SessionId::generate().unwrap(), SessionId::generate().unwrap());
    let (va, vb) = (a.expose_cookie_value().to_string(), b.expose_cookie_value().to_string());
    for _ in 0..2 {
        assert_eq!(memo.parse(&va).as_ref(), Some(&a));
    }
    // One character off, same length: not the remembered id (valid ids differ in digest).
    let last = if va.ends_with('A') { 'Q' } else { 'A' };
    let near = format!("{}{last}", &va[..ID_LEN - 1]);
    assert_eq!(memo.parse(&near), SessionId::parse(&near));
    assert_ne!(memo.parse(&near).as_ref(), Some(&a));
    assert_eq!(memo.parse(&vb).as_ref(), Some(&b));
    assert_eq!(memo.parse(&va).as_ref(), Some(&a));
    for bad in ["", "short", &va[..ID_LEN - 1], &format!("{va}A"), &va.replace(|_: char| true, "=")] {
        assert_eq!(memo.parse(bad), None, "{bad:?}");
    }
    // Every answer carries the digest of its own cookie text.
    for v in [&va, &vb] {
        assert_eq!(memo.parse(v).unwrap().digest(), &sha256(v.as_bytes()));
    }
}

#[test]
fn generated_ids_look_uniform() {
    // 2000 ids × 256 bits: each bit position should be set about half the
    // time. A broken RNG (zeros, a counter) fails this by a wide margin.
    let mut ones = [0u32; 256];
    for _ in 0..2000 {
        let id = SessionId::generate().unwrap();
        let mut raw = [0u8; 33];
        use base64::Engine as _;
        let n =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(id.expose_cookie_value(), &mut raw).unwrap();
        assert_eq!(n, 32);
        for (i, count) in ones.iter_mut().enumerate() {
            *count += u32::from(raw[i / 8] >> (i % 8) & 1);
        }
    }
    for (bit, &n) in ones.iter().enumerate() {
        assert!((800..1200).contains(&n), "bit {bit} set {n}/2000 times");
    }
}

#[test]
fn parse_is_strict() {
    let good = SessionId::generate().unwrap().expose_cookie_value().to_string();
    let rows: &[(&str, String, bool)] = &[
        ("generated", good.clone(), true),
        ("all A", "A".repeat(43), true),
        ("empty", String::new(), false),
        ("42 chars", "A".repeat(42), false),
        ("44 chars", "A".repeat(44), false),
        ("padded", format!("{}=", "A".repeat(43)), false),
        ("padding inside", format!("{}=", "A".repeat(42)), false),
        ("standard alphabet +", format!("{}+", "A".repeat(42)), false),
        ("standard alphabet /", format!("{}/", "A".repeat(42)), false),
        ("space", format!("{} ", "A".repeat(42)), false),
        ("dot", format!("{}.", "A".repeat(42)), false),
        // 43 chars carry 258 bits; the last char's low two bits must be 0.
        ("non-canonical trailing bits", format!("{}B", "A".repeat(42)), false),
        ("canonical trailing char", format!("{}E", "A".repeat(42)), true),
        ("non-ASCII, 43 bytes", format!("{}é", "A".repeat(41)), false),
        ("NUL", format!("{}\0", "A".repeat(42)), false),
    ];
    for (name, input, ok) in rows {
        assert_eq!(SessionId::parse(input).is_some(), *ok, "{name}: {input:?}");
    }
}

#[test]
fn storage_key_is_the_sha256_of_the_cookie_and_never_the_cookie() {
    let id = SessionId::generate().unwrap();
    let key = id.storage_key();
    assert_eq!(key, hex(&sha256(id.expose_cookie_value().as_bytes())));
    assert_eq!(key.len(), 64);
    assert!(!key.contains(id.expose_cookie_value()));
    assert_eq!(id.handle(), key[..12]);
    assert_eq!(parse_hex_digest(&key), Some(sha256(id.expose_cookie_value().as_bytes())));
    assert_eq!(parse_hex_digest(&key.to_uppercase()), None);
    assert_eq!(parse_hex_digest(&key[1..]), None);
}

#[test]
fn debug_and_display_never_print_secrets() {
    let id = SessionId::generate().unwrap();
    assert_eq!(format!("{id:?}"), "SessionId([REDACTED])");
    assert_eq!(format!("{id}"), "[REDACTED]");
    let rec = record("a@x.com");
    let login = LoginState {
        pkce_verifier: Secret::new(format!("{CANARY}-pkce")),
        nonce: Secret::new(format!("{CANARY}-nonce")),
        next: Some("/bol/".into()),
        created: 1,
    };
    for printed in [
        format!("{rec:?}"),
        format!("{rec:#?}"),
        format!("{:?}", rec.tokens),
        format!("{login:?}"),
        format!("{:?}", Some(&id)),
    ] {
        assert!(!printed.contains(CANARY), "{printed}");
        assert!(!printed.contains(id.expose_cookie_value()), "{printed}");
    }
}

#[test]
fn records_serialize_their_secrets_for_the_store_and_round_trip() {
    let rec = record("a@x.com");
    let json = serde_json::to_string(&rec).unwrap();
    assert!(json.contains(CANARY), "the store must keep the real refresh token");
    assert_eq!(serde_json::from_str::<SessionRecord>(&json).unwrap(), rec);
    let login =
        LoginState { pkce_verifier: Secret::new("v".into()), nonce: Secret::new("n".into()), next: None, created: 7 };
    let json = serde_json::to_string(&login).unwrap();
    assert_eq!(json, r#"{"pkce_verifier":"v","nonce":"n","next":null,"created":7}"#);
    assert_eq!(serde_json::from_str::<LoginState>(&json).unwrap(), login);
}

#[test]
fn expiry_rules() {
    // last_seen 1000, idle 600, absolute 10000 → expires at 1600.
    let mut rec = record("a@x.com");
    assert_eq!(rec.expires_at(), 1_600);
    let rows =
        [(1_000, false, false), (1_059, false, false), (1_060, false, true), (1_599, false, true), (1_600, true, true)];
    for (now, expired, touch) in rows {
        assert_eq!(rec.is_expired(now), expired, "expired at {now}");
        assert_eq!(rec.needs_touch(now), touch, "touch at {now}");
    }
    assert_eq!(rec.ttl_secs(1_100), 500);
    // Absolute expiry wins over activity.
    rec.last_seen = 9_900;
    assert_eq!(rec.expires_at(), 10_000);
    assert!(rec.is_expired(10_000));
    // Short idle timeouts touch more often than once a minute.
    rec.idle_timeout_secs = 2;
    assert!(rec.needs_touch(9_901));
    assert!(!rec.needs_touch(9_900));
}

#[test]
fn cluster_urls() {
    let ok: &[(&str, &[&str])] = &[
        ("redis+cluster://10.0.0.1:7000", &["redis://10.0.0.1:7000"]),
        ("redis+cluster://a:7000,b:7001/", &["redis://a:7000", "redis://b:7001"]),
        ("rediss+cluster://u:p%40ss@a:7000, b:7001", &["rediss://u:p%40ss@a:7000", "rediss://u:p%40ss@b:7001"]),
        ("redis+cluster://[::1]:7000,[::1]:7001", &["redis://[::1]:7000", "redis://[::1]:7001"]),
    ];
    for (url, seeds) in ok {
        assert_eq!(cluster_seeds(url).unwrap(), *seeds, "{url}");
    }
    let bad = [
        ("redis://a:7000", "session.store: a cluster URL starts with redis+cluster:// or rediss+cluster://"),
        ("redis+cluster://", "session.store: cluster URL names no node: redis+cluster://host:port,host:port"),
        ("redis+cluster://a:7000/2", "session.store: cluster URLs take no database or query: redis+cluster://[user:password@]host:port,host:port"),
        ("redis+cluster://a:7000?x=1", "session.store: cluster URLs take no database or query: redis+cluster://[user:password@]host:port,host:port"),
    ];
    for (url, msg) in bad {
        assert_eq!(cluster_seeds(url).unwrap_err().to_string(), msg, "{url}");
    }
}

#[test]
fn error_text_is_pinned() {
    let e = StoreError::unavailable("get", "no reply within 500 ms");
    assert_eq!(e.to_string(), "session store unavailable: get: no reply within 500 ms");
    assert_eq!(StoreError::LoginCapacity.to_string(), "too many logins in progress; try again shortly");
}

#[tokio::test]
async fn hot_cache_serves_fresh_entries_only() {
    let cache = HotCache::new(Duration::from_millis(200));
    let k = sha256(b"one");
    assert!(cache.get(&k).await.is_none());
    cache.insert(k, Arc::new(record("a@x.com")), cache.epoch()).await;
    assert_eq!(cache.get(&k).await.unwrap().email, "a@x.com");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(cache.get(&k).await.is_none(), "entries age out after the ttl");
}

#[tokio::test]
async fn hot_cache_invalidation_wins_over_a_lookup_in_flight() {
    let cache = HotCache::new(Duration::from_secs(5));
    let (a, b) = (sha256(b"a"), sha256(b"b"));
    // A lookup notes the epoch, then a logout happens, then the lookup's
    // (stale) answer arrives: it must not be cached.
    let epoch = cache.epoch();
    cache.invalidate(&a).await;
    cache.insert(a, Arc::new(record("a@x.com")), epoch).await;
    assert!(cache.get(&a).await.is_none());

    cache.insert(a, Arc::new(record("A@x.com")), cache.epoch()).await;
    cache.insert(b, Arc::new(record("b@x.com")), cache.epoch()).await;
    cache.invalidate_user("a@X.com").await;
    assert!(cache.get(&a).await.is_none(), "user match is case-insensitive");
    assert!(cache.get(&b).await.is_some());
    cache.clear().await;
    assert!(cache.get(&b).await.is_none());
}

#[tokio::test]
async fn hot_cache_with_zero_ttl_is_off() {
    let cache = HotCache::new(Duration::ZERO);
    let k = sha256(b"k");
    cache.insert(k, Arc::new(record("a@x.com")), cache.epoch()).await;
    assert!(cache.get(&k).await.is_none());
}

/// The role is stored as its name, as before `StoredRole`: records written by earlier gates
/// load unchanged, a name in another case is the same role, and a name this gate does not
/// know loads (it is no role, never a reason to drop the session) and is written back
/// verbatim.
#[test]
fn stored_roles_are_their_names_on_the_wire_and_unknown_names_survive() {
    use super::record::StoredRole;
    use crate::policy::Role;
    let written_before = |role: &str| {
        format!(
            r#"{{"subject":"3f0c","email":"a@x.com","name":"Ada","role":"{role}","features":{{"bol":["view"]}},"tenant_id":"primetrade","tenant_name":"PrimeTrade Logistics","tenant_code":"PRT","created":100,"last_seen":1000,"absolute_expiry":10000,"idle_timeout_secs":600,"tokens":null}}"#
        )
    };
    let rows: &[(&str, StoredRole, &str)] = &[
        ("Office", StoredRole::Known(Role::Office), "Office"),
        ("client", StoredRole::Known(Role::Client), "Client"),
        ("ADMIN", StoredRole::Known(Role::Admin), "Admin"),
        ("Auditor", StoredRole::Unknown("Auditor".into()), "Auditor"),
        // Not trimmed: the policy never matched a padded name either.
        (" Office", StoredRole::Unknown(" Office".into()), " Office"),
        ("", StoredRole::Unknown("".into()), ""),
    ];
    for (stored, role, written_back) in rows {
        let rec: SessionRecord = serde_json::from_str(&written_before(stored)).unwrap();
        assert_eq!(&rec.role, role, "{stored:?}");
        assert_eq!(rec.principal().role, role.role(), "{stored:?}");
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(json, written_before(written_back), "{stored:?}");
    }
    // The principal is the record's own data, borrowed.
    let rec = record("a@x.com");
    let p = rec.principal();
    assert_eq!((p.subject, p.email, p.role, p.tenant_code), ("3f0c", "a@x.com", Some(Role::Office), Some("PRT")));
    assert_eq!(p.tenant, Some(("primetrade", "PrimeTrade Logistics")));
    assert!(std::ptr::eq(p.features, &*rec.features));
}
