//! The role a session record names, end to end: parsed once when the store reads the
//! record, a name the gate does not know is no role (denied on every rule that is not
//! public, never mapped to a role, never a fresh login), and rewriting the record (the
//! `last_seen` touch) keeps the name as it was written.

use std::collections::BTreeMap;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::*;
use prt_gate::config::{SessionConfig, StoreKind};
use prt_gate::devsso::{builtin_users, DevSso};
use prt_gate::policy::Role;
use prt_gate::session::{SessionRecord, SessionStore, Store, StoredRole};

/// Every known role may call `/api/any/`; `/api/open/` is public.
const POLICY: &str = "[[route]]\npath = \"/api/any/\"\nroles = [\"Admin\", \"Office\", \"Operator\", \"Client\"]\n\n\
                      [[route]]\npath = \"/api/open/\"\npublic = true\n";

fn json_get(gate: &Gate, path: &str, cookie: &str) -> Request<Full<Bytes>> {
    Request::get(gate.url(path))
        .header("cookie", cookie)
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A unique key prefix on the shared Redis; its keys are deleted on drop (also when the
/// test fails part way).
struct Prefix(String);

impl Prefix {
    fn new() -> Prefix {
        use rand::RngCore as _;
        Prefix(format!("prt-gate-test:{:016x}:", rand::rng().next_u64()))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(mut con) = redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection()) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", self.0)).query(&mut con).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut con);
        }
    }
}

/// The JSON of the one session record under `prefix`, and its key.
fn stored(con: &mut redis::Connection, prefix: &str) -> (String, String) {
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}s:*")).query(con).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let record: String = redis::cmd("GET").arg(&keys[0]).query(con).unwrap();
    (keys[0].clone(), record)
}

/// Rewrites the stored role name in place (same TTL), as another gate version might have
/// written it.
fn set_role(con: &mut redis::Connection, prefix: &str, from: &str, to: &str) {
    let (key, record) = stored(con, prefix);
    let changed = record.replace(&format!("\"role\":\"{from}\""), &format!("\"role\":\"{to}\""));
    assert_ne!(changed, record, "{record}");
    let () = redis::cmd("SET").arg(&key).arg(&changed).arg("KEEPTTL").query(con).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_role_the_gate_does_not_know_is_no_role_and_is_kept_as_written() {
    let guard = Prefix::new();
    let prefix = guard.0.as_str();
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    // No hot cache: every request reads the record Redis holds.
    let session = format!("store = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\ncache_ttl = \"0s\"\n");
    let gate = GateBuilder::new(up.addr).sso(sso.url()).session(&session).policy(POLICY).start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.expect("session cookie");
    let mut con = redis::Client::open("redis://127.0.0.1:6379").unwrap().get_connection().unwrap();
    assert!(stored(&mut con, prefix).1.contains("\"role\":\"Office\""), "the wire format is the role's name");

    // Positive control: the role as login wrote it passes, and Django is told who it is.
    let (parts, _) = send(&client(), json_get(&gate, "/api/any/", &cookie)).await;
    assert_eq!(parts.status, 200);
    assert_eq!(up.last().one("x-auth-role"), Some("Office"));

    // A name in another case (as a hand-written or older record may hold it) is the same
    // role: names compare case-insensitively, and Django gets the canonical one.
    set_role(&mut con, prefix, "Office", "office");
    let (parts, _) = send(&client(), json_get(&gate, "/api/any/", &cookie)).await;
    assert_eq!(parts.status, 200);
    assert_eq!(up.last().one("x-auth-role"), Some("Office"));

    // A role this gate does not know: 403 on a rule every known role passes (not a login,
    // not a default role), and nothing reaches the upstream.
    set_role(&mut con, prefix, "office", "Auditor");
    let before = up.count();
    let (parts, body) = send(&client(), json_get(&gate, "/api/any/", &cookie)).await;
    assert_eq!(parts.status, 403, "{}", String::from_utf8_lossy(&body));
    assert_eq!(up.count(), before, "a caller without a known role reached the upstream");
    // A public route still answers, without identity.
    let (parts, _) = send(&client(), json_get(&gate, "/api/open/", &cookie)).await;
    assert_eq!(parts.status, 200);
    assert_eq!(up.last().one("x-auth-role"), None);
}

/// The store's `last_seen` touch rewrites the whole record: a role name this gate does not
/// know is written back verbatim (a gate version that knows it still can), and a known
/// one as its canonical name.
#[tokio::test(flavor = "multi_thread")]
async fn the_touch_rewrites_the_record_with_the_role_name_it_read() {
    let guard = Prefix::new();
    let prefix = guard.0.as_str();
    // Idle 4 s: the store rewrites `last_seen` once a request comes a second after the last.
    let cfg = SessionConfig {
        store: StoreKind::Redis("redis://127.0.0.1:6379".into()),
        cookie_secure: true,
        idle_timeout: Duration::from_secs(4),
        absolute_timeout: Duration::from_secs(60),
        key_prefix: prefix.to_owned(),
        cache_ttl: Duration::ZERO,
    };
    let store = Store::from_config(&cfg).await.unwrap();
    let record = |role: &str| SessionRecord {
        subject: "sub".into(),
        email: format!("{role}@example.com"),
        name: "Test User".into(),
        role: role.into(),
        features: BTreeMap::new().into(),
        tenant_id: "primetrade".into(),
        tenant_name: "PrimeTrade Logistics".into(),
        tenant_code: None,
        created: 0,
        last_seen: 0,
        absolute_expiry: 0,
        idle_timeout_secs: 0,
        tokens: None,
    };
    let unknown = store.create(record("Auditor")).await.unwrap();
    let lower = store.create(record("operator")).await.unwrap();
    let mut con = redis::Client::open("redis://127.0.0.1:6379").unwrap().get_connection().unwrap();
    let raw = |con: &mut redis::Connection, id: &prt_gate::session::SessionId| -> serde_json::Value {
        let text: String =
            redis::cmd("GET").arg(format!("{prefix}s:{}", id.storage_key())).query(con).expect("record stored");
        serde_json::from_str(&text).unwrap()
    };
    let got = store.get(&unknown).await.unwrap().unwrap();
    assert_eq!((got.role.role(), got.role.as_str()), (None, "Auditor"));
    assert_eq!(got.principal().role, None, "an unknown role is no role");
    assert_eq!(store.get(&lower).await.unwrap().unwrap().role, StoredRole::Known(Role::Operator));
    let before = raw(&mut con, &unknown)["last_seen"].as_u64();

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(store.get(&unknown).await.unwrap().is_some());
    assert!(store.get(&lower).await.unwrap().is_some());
    let after = raw(&mut con, &unknown);
    assert!(after["last_seen"].as_u64() > before, "the record was not rewritten: {after}");
    assert_eq!(after["role"], "Auditor");
    assert_eq!(raw(&mut con, &lower)["role"], "Operator");
}
