//! The access line: one JSON object per request, written by a fixed-schema
//! writer straight into the batched log buffer ([`crate::logwriter`]).
//!
//! The line has exactly the shape the `tracing` JSON formatter gave it
//! (`timestamp`, `level`, the fields in order, `target` = `"access"`; absent
//! optional fields are left out), so log consumers see no difference; a test
//! here compares the two field by field. What changes is the cost: no
//! `fmt` machinery, no per-fragment UTF-8 checks, the timestamp formatted
//! once per second ([`crate::logwriter::timestamp`]), one buffer per thread.
//!
//! Every field whose text comes from the client or the SSO's user data
//! (`method` unless standard, `path`, `query`, `user`, `request_id` unless the gate
//! generated it, `rule`, `error`) passes the
//! redaction engine on its own before the line is rendered; the fields the gate
//! itself writes from its own vocabulary (`decision`, `role`, `auth`, `features`,
//! `tenant`, `tenant_code`, numbers, the peer address) do not: they hold no
//! secret, and scanning them only woke detectors (`"auth":"session"` looks like a
//! `session*` key to the engine and cost a regex pass per authenticated line).
//!
//! To add a field: a member of [`AccessLine`] and one `field` call in
//! [`AccessLine::render`], in the order the line should show it.

use std::net::IpAddr;
use std::sync::Arc;

use crate::jsonw::{escaped, key, str_field, uint};
use crate::logwriter::{LineSink, LogWriter};
use crate::policy::Features;
use crate::redact::Redactor;

/// The facts of one request, as the log phase has them.
#[derive(Debug, Clone)]
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub status: u16,
    pub decision: &'a str,
    pub rule: &'a str,
    pub role: &'a str,
    /// The credential that authenticated the caller: `session`, `bearer` or empty.
    pub auth: &'a str,
    /// The caller's feature permissions, written `feature:permission,…` (not secret;
    /// `prt-gate replay` reads them back: [`crate::replay::format_features`]).
    pub features: Option<&'a Features>,
    /// The `Arc` holding `features`, if the caller's credential has one
    /// ([`crate::policy::Principal::features_arc`]): its text is then kept per thread.
    pub features_arc: Option<&'a Arc<Features>>,
    pub tenant: &'a str,
    /// The tenant code the policy's tenant matches compared (empty: none).
    pub tenant_code: &'a str,
    pub user: &'a str,
    pub request_id: &'a str,
    /// The gate made `request_id` up (not the platform edge's `X-Request-Id`): hex it
    /// generated holds no secret, so it skips the engine.
    pub request_id_is_ours: bool,
    pub peer: IpAddr,
    pub upstream_ms: Option<f64>,
    pub total_ms: f64,
    pub error: Option<&'a str>,
}

/// An [`AccessLine`] whose client- and user-supplied fields went through the engine.
pub struct Redacted<'a> {
    line: &'a AccessLine<'a>,
    method: std::borrow::Cow<'a, str>,
    path: std::borrow::Cow<'a, str>,
    query: Option<std::borrow::Cow<'a, str>>,
    rule: std::borrow::Cow<'a, str>,
    user: std::borrow::Cow<'a, str>,
    request_id: std::borrow::Cow<'a, str>,
    error: Option<std::borrow::Cow<'a, str>>,
}

impl Redacted<'_> {
    /// Renders the line with the redacted fields in place.
    pub fn render(&self, now: std::time::SystemTime, out: &mut Vec<u8>) {
        AccessLine {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            rule: &self.rule,
            user: &self.user,
            request_id: &self.request_id,
            error: self.error.as_deref(),
            ..self.line.clone()
        }
        .render(now, out);
    }
}

/// Where access lines go.
static SINK: LineSink = LineSink::new();

/// Installs the destination (once, when logging starts: `cli`).
pub fn install(writer: LogWriter, redactor: Option<Arc<Redactor>>) {
    SINK.install(writer, redactor);
}

impl AccessLine<'_> {
    /// Renders, redacts and writes the line. Before [`install`] (a library
    /// user that never started logging) there is nowhere to write, as with
    /// `tracing` and no subscriber: the line is dropped, never written
    /// unredacted.
    pub fn write(&self) {
        SINK.emit(|redactor, line| match redactor {
            Some(r) => self.redacted(r).render(std::time::SystemTime::now(), line),
            None => self.render(std::time::SystemTime::now(), line),
        });
    }

    /// The same facts with every client- or user-supplied text field through the
    /// engine (borrowed, no allocation, when a field holds nothing to redact).
    pub fn redacted<'b>(&'b self, r: &Redactor) -> Redacted<'b> {
        let opt = |v: Option<&'b str>| v.map(|v| r.redact_str(v));
        let ours = |v: &'b str, ours: bool| if ours { std::borrow::Cow::Borrowed(v) } else { r.redact_str(v) };
        Redacted {
            line: self,
            // A standard method's name is the gate's vocabulary; an extension method is
            // the client's text.
            method: ours(self.method, is_standard_method(self.method)),
            // Texts that repeat per caller, rule and endpoint: a verdict of this engine on
            // exactly this text is reused (`Redactor::redact_field`).
            path: r.redact_field(self.path),
            query: opt(self.query),
            rule: r.redact_field(self.rule),
            user: r.redact_field(self.user),
            request_id: ours(self.request_id, self.request_id_is_ours),
            error: opt(self.error),
        }
    }

    /// The JSON object and its newline, appended to `out`.
    pub fn render(&self, now: std::time::SystemTime, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        out.extend_from_slice(&crate::logwriter::timestamp(now));
        out.extend_from_slice(b"\",\"level\":\"INFO\"");
        str_field(out, "method", self.method);
        str_field(out, "path", self.path);
        if let Some(q) = self.query {
            str_field(out, "query", q);
        }
        key(out, "status");
        uint(out, u64::from(self.status));
        str_field(out, "decision", self.decision);
        str_field(out, "rule", self.rule);
        str_field(out, "role", self.role);
        str_field(out, "auth", self.auth);
        key(out, "features");
        features(out, self.features, self.features_arc);
        str_field(out, "tenant", self.tenant);
        str_field(out, "tenant_code", self.tenant_code);
        str_field(out, "user", self.user);
        str_field(out, "request_id", self.request_id);
        key(out, "peer");
        out.push(b'"');
        out.extend_from_slice(super::headers::IpText::default().bytes(self.peer));
        out.push(b'"');
        if let Some(ms) = self.upstream_ms {
            key(out, "upstream_ms");
            float(out, ms);
        }
        key(out, "total_ms");
        float(out, self.total_ms);
        if let Some(e) = self.error {
            str_field(out, "error", e);
        }
        out.extend_from_slice(b",\"target\":\"access\"}\n");
    }
}

/// `"feature:permission,…"`, as `crate::replay::format_features` writes it, straight
/// into the line (no string in between). A session's map is written once per thread and
/// then copied: a slot keeps the map's `Arc` alive with its text, so a `features` at that
/// address is that map (`arc` is stored only if it holds exactly `f`).
fn features(out: &mut Vec<u8>, f: Option<&Features>, arc: Option<&Arc<Features>>) {
    out.push(b'"');
    if let Some(f) = f {
        let slot = (std::ptr::from_ref(f).addr() >> 4) % FEATURE_SLOTS;
        let hit = FEATURE_TEXT.with(|c| {
            let Ok(slots) = c.try_borrow() else { return false };
            match slots.get(slot) {
                Some(Some(t)) if std::ptr::eq(&*t.map, f) => {
                    out.extend_from_slice(&t.text);
                    true
                }
                _ => false,
            }
        });
        if !hit {
            let start = out.len();
            write_features(out, f);
            if let Some(map) = arc.filter(|a| std::ptr::eq(&***a, f)) {
                let text = out.get(start..).unwrap_or_default();
                if text.len() <= FEATURE_TEXT_MAX {
                    FEATURE_TEXT.with(|c| {
                        if let Some(s) = c.try_borrow_mut().ok().as_deref_mut().and_then(|s| s.get_mut(slot)) {
                            *s = Some(FeatureText { map: map.clone(), text: text.to_vec() });
                        }
                    });
                }
            }
        }
    }
    out.push(b'"');
}

/// Feature texts kept per thread (direct-mapped by the map's address).
const FEATURE_SLOTS: usize = 8;
/// A longer text (an unusual feature map) is written each time.
const FEATURE_TEXT_MAX: usize = 4096;

struct FeatureText {
    map: Arc<Features>,
    text: Vec<u8>,
}

thread_local! {
    static FEATURE_TEXT: std::cell::RefCell<[Option<FeatureText>; FEATURE_SLOTS]> =
        const { std::cell::RefCell::new([const { None }; FEATURE_SLOTS]) };
}

/// The inside of the `features` string for `f`.
fn write_features(out: &mut Vec<u8>, f: &Features) {
    let mut first = true;
    for (feature, perms) in f {
        // The feature's name, escaped once and copied before each of its permissions.
        let mut name = 0..0;
        for p in perms {
            if !first {
                out.push(b',');
            }
            first = false;
            if name.is_empty() {
                let start = out.len();
                escaped(out, feature);
                name = start..out.len();
            } else {
                out.extend_from_within(name.clone());
            }
            out.push(b':');
            escaped(out, p);
        }
    }
}

/// One of the methods RFC 9110 and RFC 5789 define.
fn is_standard_method(m: &str) -> bool {
    matches!(m, "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH")
}

/// A float as `serde_json` writes it (`null` when not finite).
fn float(out: &mut Vec<u8>, v: f64) {
    if serde_json::to_writer(&mut *out, &v).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_types)] // a std `Mutex` around the test buffer, as in `logwriter`
mod tests {
    use super::*;
    use std::sync::Mutex;

    static FEATURES: std::sync::LazyLock<Features> =
        std::sync::LazyLock::new(|| [("bol".to_string(), vec!["view".to_string(), "create".to_string()])].into());

    fn full<'a>() -> AccessLine<'a> {
        AccessLine {
            method: "POST",
            path: "/api/bol/\"quoted\"\\back\u{7}/ünï/",
            query: Some("page=2&q=a\tb"),
            status: 403,
            decision: "deny",
            rule: "office-bol-edit",
            role: "Office",
            auth: "session",
            features: Some(&FEATURES),
            features_arc: None,
            tenant: "primetrade",
            tenant_code: "PRT",
            user: "office@example.com",
            request_id: "0123456789abcdef0123456789abcdef",
            request_id_is_ours: true,
            peer: "10.1.2.3".parse().unwrap(),
            upstream_ms: Some(1.25),
            total_ms: 2.0,
            error: Some("forbidden by policy"),
        }
    }

    fn bare<'a>() -> AccessLine<'a> {
        AccessLine {
            method: "GET",
            path: "-",
            query: None,
            status: 200,
            decision: "allow",
            rule: "",
            role: "",
            auth: "",
            features: None,
            features_arc: None,
            tenant: "",
            tenant_code: "",
            user: "",
            request_id: "-",
            request_id_is_ours: false,
            peer: "2001:db8::1".parse().unwrap(),
            upstream_ms: None,
            total_ms: 0.000_123_4,
            error: None,
        }
    }

    fn parse(line: &[u8]) -> serde_json::Value {
        assert_eq!(line.last(), Some(&b'\n'), "one line, newline-terminated");
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        serde_json::from_slice(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)))
    }

    #[test]
    fn every_field_parses_back() {
        let mut out = Vec::new();
        full().render(std::time::SystemTime::now(), &mut out);
        let v = parse(&out);
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut expected = vec![
            "timestamp",
            "level",
            "method",
            "path",
            "query",
            "status",
            "decision",
            "rule",
            "role",
            "auth",
            "features",
            "tenant",
            "tenant_code",
            "user",
            "request_id",
            "peer",
            "upstream_ms",
            "total_ms",
            "error",
            "target",
        ];
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "access");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/api/bol/\"quoted\"\\back\u{7}/ünï/");
        assert_eq!(v["query"], "page=2&q=a\tb");
        assert_eq!(v["status"], 403);
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["rule"], "office-bol-edit");
        assert_eq!(v["role"], "Office");
        assert_eq!(v["auth"], "session");
        assert_eq!(v["features"], "bol:view,bol:create");
        assert_eq!(v["tenant"], "primetrade");
        assert_eq!(v["tenant_code"], "PRT");
        assert_eq!(v["user"], "office@example.com");
        assert_eq!(v["request_id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(v["peer"], "10.1.2.3");
        assert_eq!(v["upstream_ms"], 1.25);
        assert_eq!(v["total_ms"], 2.0);
        assert_eq!(v["error"], "forbidden by policy");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");

        // Absent optional fields are left out, as `tracing` leaves out `None`.
        out.clear();
        bare().render(std::time::SystemTime::now(), &mut out);
        let v = parse(&out);
        for absent in ["query", "upstream_ms", "error"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
        assert_eq!(v["peer"], "2001:db8::1");
        assert_eq!(v["total_ms"], 0.000_123_4);
    }

    /// A `MakeWriter` into a shared buffer, for the `tracing` reference.
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

    /// What the gate's `tracing` JSON subscriber wrote for the same fields
    /// before this writer existed.
    fn via_tracing(l: &AccessLine<'_>) -> serde_json::Value {
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_timer(crate::logwriter::CachedTime)
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "access",
                method = l.method,
                path = l.path,
                query = l.query,
                status = l.status,
                decision = l.decision,
                rule = l.rule,
                role = l.role,
                auth = l.auth,
                features = l.features.map(crate::replay::format_features).unwrap_or_default(),
                tenant = l.tenant,
                tenant_code = l.tenant_code,
                user = l.user,
                request_id = l.request_id,
                peer = %l.peer,
                upstream_ms = l.upstream_ms,
                total_ms = l.total_ms,
                error = l.error,
            );
        });
        let bytes = buf.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        parse(&bytes)
    }

    #[test]
    fn same_line_as_the_tracing_json_formatter() {
        for line in [full(), bare()] {
            let mut ours = Vec::new();
            line.render(std::time::SystemTime::now(), &mut ours);
            crate::logwriter::assert_same_line_but_timestamp(parse(&ours), via_tracing(&line));
        }
    }

    #[test]
    fn client_and_user_fields_are_redacted_and_the_gates_own_fields_kept() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVlLWhlcmU";
        let path = format!("/api/bol/{jwt}/");
        let query = "page=2&access_token=supersecretvalue123";
        let error = "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123";
        let line = AccessLine { path: &path, query: Some(query), error: Some(error), ..full() };
        let r = Redactor::builtin();
        let mut out = Vec::new();
        line.redacted(&r).render(std::time::SystemTime::now(), &mut out);
        let v = parse(&out);
        let text = String::from_utf8_lossy(&out);
        for secret in [jwt, "supersecretvalue123", "abcdefghijklmnopqrstuvwxyz0123"] {
            assert!(!text.contains(secret), "{secret} survived: {text}");
        }
        assert!(v["path"].as_str().unwrap().contains("[REDACTED"), "{text}");
        // The gate's own vocabulary is written as is.
        assert_eq!(
            (v["auth"].as_str(), v["role"].as_str(), v["decision"].as_str()),
            (Some("session"), Some("Office"), Some("deny"))
        );
        assert_eq!(v["features"], "bol:view,bol:create");
        // Positive control: without the engine every secret is in the line.
        out.clear();
        line.render(std::time::SystemTime::now(), &mut out);
        let raw = String::from_utf8_lossy(&out);
        for secret in [jwt, "supersecretvalue123", "abcdefghijklmnopqrstuvwxyz0123"] {
            assert!(raw.contains(secret), "control: {secret} missing");
        }
    }

    /// The features text is what `prt-gate replay` reads back (`format_features`), with
    /// JSON escaping, for several features, an empty permission list and none at all.
    #[test]
    fn features_are_written_as_replay_reads_them() {
        let f: Features = [
            ("a\"b".to_string(), vec!["x".to_string(), "y\n".to_string()]),
            ("lots".to_string(), vec![]),
            ("z".to_string(), vec!["read".to_string()]),
        ]
        .into();
        for (features, text) in [(Some(&f), crate::replay::format_features(&f)), (None, String::new())] {
            let mut out = Vec::new();
            AccessLine { features, ..full() }.render(std::time::SystemTime::now(), &mut out);
            assert_eq!(parse(&out)["features"], text.as_str());
        }
        assert_eq!(crate::replay::format_features(&f), "a\"b:x,a\"b:y\n,z:read");
    }

    /// An extension method and an edge-supplied request id are the client's text and pass
    /// the engine; a standard method and a request id the gate generated skip it.
    #[test]
    fn only_the_gates_own_method_and_request_id_skip_the_engine() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVlLWhlcmU";
        let r = Redactor::builtin();
        let render = |line: &AccessLine<'_>| {
            let mut out = Vec::new();
            line.redacted(&r).render(std::time::SystemTime::now(), &mut out);
            parse(&out)
        };
        let theirs = AccessLine { method: jwt, request_id: jwt, request_id_is_ours: false, ..full() };
        let v = render(&theirs);
        for field in ["method", "request_id"] {
            let text = v[field].as_str().unwrap();
            assert!(!text.contains(jwt) && text.contains("[REDACTED"), "{field}: {text}");
        }
        // The gate's own text is written as is: `request_id_is_ours` is what skips the
        // engine (the same text, marked as the client's, was redacted above).
        let ours = AccessLine { method: "PATCH", request_id: jwt, request_id_is_ours: true, ..full() };
        let v = render(&ours);
        assert_eq!((v["method"].as_str(), v["request_id"].as_str()), (Some("PATCH"), Some(jwt)));
    }

    /// `user`, `rule` and `path` skip the scan only for exactly a text the same engine
    /// already found clean (`Redactor::redact_field`): a secret in the caller's e-mail is
    /// redacted right after a clean look-alike in the same memo slot, and a reload's
    /// engine with an operator pattern redacts a text the old engine found clean.
    #[test]
    fn remembered_clean_fields_never_hide_a_secret() {
        use crate::redact::memo::{CLEAN_TWIN, SECRET_TWIN};
        let render = |r: &Redactor, user: &str, rule: &str| {
            let line = AccessLine { user, rule, ..full() };
            let mut out = Vec::new();
            line.redacted(r).render(std::time::SystemTime::now(), &mut out);
            let v = parse(&out);
            (v["user"].as_str().unwrap().to_string(), v["rule"].as_str().unwrap().to_string())
        };
        let builtin = Redactor::builtin();
        for _ in 0..2 {
            assert_eq!(render(&builtin, CLEAN_TWIN, "rule-a"), (CLEAN_TWIN.to_string(), "rule-a".to_string()));
        }
        let (user, _) = render(&builtin, SECRET_TWIN, "rule-a");
        assert!(!user.contains("secretpw") && user.contains("[REDACTED:userinfo]"), "{user}");
        // Control: the same text through the engine alone.
        assert_eq!(builtin.redact_str(SECRET_TWIN), user);

        let reloaded = Redactor::new(&[crate::redact::RawPattern {
            name: "rule_pin".to_string(),
            regex: "rule-[a-z]".to_string(),
        }])
        .unwrap();
        assert_eq!(render(&builtin, CLEAN_TWIN, "rule-a").1, "rule-a");
        assert_eq!(render(&reloaded, CLEAN_TWIN, "rule-a").1, "[REDACTED:rule_pin]");
    }

    /// A session's feature map is written from the per-thread copy only when the line's
    /// `features` is the very map the kept `Arc` holds: a line whose `features` is another
    /// map (with that `Arc` beside it) gets its own text.
    #[test]
    fn a_kept_feature_text_is_used_only_for_its_own_map() {
        let shared = Arc::new(FEATURES.clone());
        let other: Features = [("x".to_string(), vec!["y".to_string()])].into();
        let text = |features: &Features, arc: Option<&Arc<Features>>| {
            let mut out = Vec::new();
            AccessLine { features: Some(features), features_arc: arc, ..full() }
                .render(std::time::SystemTime::now(), &mut out);
            parse(&out)["features"].as_str().unwrap().to_string()
        };
        for _ in 0..2 {
            assert_eq!(text(&shared, Some(&shared)), "bol:view,bol:create");
        }
        assert_eq!(text(&other, Some(&shared)), "x:y");
        assert_eq!(text(&other, None), "x:y");
        assert_eq!(text(&shared, None), "bol:view,bol:create");
    }
}
