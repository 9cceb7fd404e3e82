use super::*;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use crate::redact::writer::RedactingMakeWriter;

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVlLWhlcmU";

fn plain<'a>() -> GrantAudit<'a> {
    GrantAudit {
        user: "client@example.com",
        role: "Client",
        tenant: "primetrade",
        key: "bols/2025/PRT-2025-0002.pdf",
        expires_at: UNIX_EPOCH + Duration::from_secs(1_796_000_000),
        request_id: "0123456789abcdef0123456789abcdef",
        request_id_is_ours: true,
    }
}

/// Quotes, backslashes, control characters and non-ASCII in every text field.
fn awkward<'a>() -> GrantAudit<'a> {
    GrantAudit {
        user: "o'brien \"q\"@example.com",
        role: "",
        tenant: "",
        key: "bols/é \"x\"\\back\u{7}\t✓.pdf",
        expires_at: UNIX_EPOCH + Duration::new(951_782_400, 999_999_999),
        request_id: "-",
        request_id_is_ours: false,
    }
}

/// Secrets where a client or the SSO could put them.
fn secretive<'a>(key: &'a str) -> GrantAudit<'a> {
    GrantAudit {
        user: "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123",
        key,
        request_id: "access_token=supersecretvalue123",
        request_id_is_ours: false,
        ..plain()
    }
}

fn parse(line: &[u8]) -> serde_json::Value {
    assert_eq!(line.last(), Some(&b'\n'), "one line, newline-terminated");
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
    serde_json::from_slice(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)))
}

fn rendered(a: &GrantAudit<'_>, r: Option<&Redactor>) -> serde_json::Value {
    let mut out = Vec::new();
    a.render(r, SystemTime::now(), &mut out);
    parse(&out)
}

#[test]
fn every_field_parses_back() {
    for a in [plain(), awkward()] {
        let v = rendered(&a, None);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["event", "expires_at", "key", "level", "request_id", "role", "target", "tenant", "timestamp", "user"]
        );
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "audit");
        assert_eq!(v["event"], "media_grant");
        assert_eq!(v["user"], a.user);
        assert_eq!(v["role"], a.role);
        assert_eq!(v["tenant"], a.tenant);
        assert_eq!(v["key"], a.key);
        assert_eq!(v["request_id"], a.request_id);
        let expires = v["expires_at"].as_str().unwrap();
        assert_eq!(expires, humantime::format_rfc3339_seconds(a.expires_at).to_string());
        let ts = v["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
    }
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Buf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What the gate wrote for a grant before this writer: the `tracing` JSON
/// formatter, the whole line through the engine (`RedactingMakeWriter`).
fn via_tracing(a: &GrantAudit<'_>, redactor: Arc<Redactor>) -> serde_json::Value {
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_timer(crate::logwriter::CachedTime)
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(RedactingMakeWriter::new(move || sink.clone(), redactor))
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(
            target: "audit",
            event = "media_grant",
            user = a.user,
            role = a.role,
            tenant = a.tenant,
            key = a.key,
            expires_at = %humantime::format_rfc3339_seconds(a.expires_at),
            request_id = a.request_id,
        );
    });
    parse(&buf.take())
}

#[test]
fn same_line_as_the_tracing_json_formatter() {
    let key = format!("bols/{JWT}/x.pdf");
    let r = Arc::new(Redactor::builtin());
    for a in [plain(), awkward(), secretive(&key)] {
        crate::logwriter::assert_same_line_but_timestamp(rendered(&a, Some(&r)), via_tracing(&a, r.clone()));
    }
}

#[test]
fn client_and_user_fields_are_redacted_and_the_gates_own_fields_kept() {
    let key = format!("bols/{JWT}/x.pdf");
    let a = secretive(&key);
    let r = Redactor::builtin();
    let mut out = Vec::new();
    a.render(Some(&r), SystemTime::now(), &mut out);
    let text = String::from_utf8_lossy(&out);
    for secret in [JWT, "supersecretvalue123", "abcdefghijklmnopqrstuvwxyz0123"] {
        assert!(!text.contains(secret), "{secret} survived: {text}");
    }
    let v = parse(&out);
    for field in ["user", "key", "request_id"] {
        assert!(v[field].as_str().unwrap().contains("[REDACTED"), "{field}: {text}");
    }
    assert_eq!((v["role"].as_str(), v["tenant"].as_str()), (Some("Client"), Some("primetrade")));
    // Positive control: without the engine every secret is in the line.
    out.clear();
    a.render(None, SystemTime::now(), &mut out);
    let raw = String::from_utf8_lossy(&out);
    for secret in [JWT, "supersecretvalue123", "abcdefghijklmnopqrstuvwxyz0123"] {
        assert!(raw.contains(secret), "control: {secret} missing");
    }
    // Only a request id the gate generated skips the engine (one that came with the
    // request is the client's text).
    let theirs = GrantAudit { request_id: JWT, request_id_is_ours: false, ..plain() };
    assert_ne!(rendered(&theirs, Some(&r))["request_id"], JWT);
    let ours = GrantAudit { request_id: JWT, request_id_is_ours: true, ..plain() };
    assert_eq!(rendered(&ours, Some(&r))["request_id"], JWT);
}

#[test]
fn written_redacted_and_only_when_the_log_filter_wants_audit_events() {
    let out = Buf::default();
    let (writer, guard) = crate::logwriter::new(out.clone()).unwrap();
    install(writer.clone(), Some(Arc::new(Redactor::builtin())));
    let key = format!("bols/{JWT}/x.pdf");
    for (filter, lines) in [("warn", 0), ("info", 1), ("warn,audit=info", 1), ("info,audit=off", 0)] {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || secretive(&key).write());
        // Lines arrive in order: once the marker is out, so is any grant line.
        writer.write_line(b"marker\n").unwrap();
        let mut text = String::new();
        for _ in 0..500 {
            text.push_str(&String::from_utf8(out.take()).unwrap());
            if text.ends_with("marker\n") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let grants: Vec<&str> = text.lines().filter(|l| *l != "marker").collect();
        assert_eq!(grants.len(), lines, "{filter}: {text}");
        for g in grants {
            assert_eq!(parse(format!("{g}\n").as_bytes())["event"], "media_grant");
        }
        assert!(!text.contains(JWT), "{text}");
    }
    drop(guard);
}

/// `user` and `key` reuse a verdict only for exactly the text the same engine found
/// clean (`Redactor::redact_field`): a secret in either, right after a clean look-alike
/// in the same memo slot, is redacted.
#[test]
fn remembered_clean_user_and_key_never_hide_a_secret() {
    use crate::redact::memo::{CLEAN_TWIN, SECRET_TWIN};
    let r = Redactor::builtin();
    for _ in 0..2 {
        let v = rendered(&GrantAudit { user: CLEAN_TWIN, key: CLEAN_TWIN, ..plain() }, Some(&r));
        assert_eq!((v["user"].as_str(), v["key"].as_str()), (Some(CLEAN_TWIN), Some(CLEAN_TWIN)));
    }
    let v = rendered(&GrantAudit { user: SECRET_TWIN, key: SECRET_TWIN, ..plain() }, Some(&r));
    for field in ["user", "key"] {
        let text = v[field].as_str().unwrap();
        assert!(!text.contains("secretpw") && text.contains("[REDACTED:userinfo]"), "{field}: {text}");
    }
}
