//! Table tests: `(input, expected)` per detector, negative rows included,
//! and which detector fired.

use std::sync::Arc;

use super::stream::{filter, LineFilter, MAX_LINE, OVERLAP};
use super::*;

fn r() -> Redactor {
    Redactor::new(&[]).expect("built-in detectors compile")
}

fn red(s: &str) -> String {
    r().redact_str(s).into_owned()
}

const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLWJ5dGVz_-x";

#[test]
fn every_builtin_compiles() {
    let r = r();
    assert_eq!(r.detectors.len(), detectors::BUILTINS.len());
}

/// True positives: (input, expected output). Every detector has rows.
#[test]
fn detectors_redact_secrets_and_keep_keys() {
    let jwt_line = format!("id_token_hint {JWT} end");
    let jwt_out = "id_token_hint [REDACTED:jwt] end".to_string();
    let rows: Vec<(&str, String)> = vec![
        // jwt
        (jwt_line.as_str(), jwt_out),
        // bearer / authorization
        ("Authorization: Bearer abc123def456ghi", "Authorization: Bearer [REDACTED:bearer]".into()),
        ("curl -H 'authorization: bearer 9f8e7d6c5b4a' x", "curl -H 'authorization: bearer [REDACTED:bearer]' x".into()),
        ("sent Bearer tok_live_1234 to sso", "sent Bearer [REDACTED:bearer] to sso".into()),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED:authorization]".into()),
        ("{'HTTP_AUTHORIZATION': 'Token abcdef'}", "{'HTTP_AUTHORIZATION': 'Token [REDACTED:authorization]'}".into()),
        // oauth
        (
            "GET /auth/callback/?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj HTTP/1.1",
            "GET /auth/callback/?code=[REDACTED:oauth]&state=[REDACTED:oauth] HTTP/1.1".into(),
        ),
        ("https://x/cb#access_token=abc.def&expires_in=900", "https://x/cb#access_token=[REDACTED:oauth]&expires_in=900".into()),
        (
            "grant_type=authorization_code&code_verifier=dBjftJeZ4CVP&client_secret=s3cr3t",
            "grant_type=authorization_code&code_verifier=[REDACTED:oauth]&client_secret=[REDACTED:oauth]".into(),
        ),
        ("refresh_token=8xLOxBtZp8 id_token=x.y.z", "refresh_token=[REDACTED:oauth] id_token=[REDACTED:oauth]".into()),
        // cookies
        (
            "Cookie: sessionid=abc123; csrftoken=xyz",
            "Cookie: sessionid=[REDACTED:cookie]; csrftoken=[REDACTED:cookie]".into(),
        ),
        (
            "Set-Cookie: prt_session=q1w2e3; Path=/; HttpOnly; SameSite=Lax",
            "Set-Cookie: prt_session=[REDACTED:cookie]; Path=/; HttpOnly; SameSite=Lax".into(),
        ),
        (
            "set-cookie: a=b; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure",
            "set-cookie: a=[REDACTED:cookie]; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure".into(),
        ),
        ("'HTTP_COOKIE': 'sessionid=zzz'", "'HTTP_COOKIE': 'sessionid=[REDACTED:cookie]'".into()),
        // generic keys: Python repr (dict and dict_items), JSON, key=value, headers
        (
            "Session data: {'sso_access_token': 'Zm9vYmFy', 'sso_refresh_token': 'cmVmcmVzaA', 'role': 'Client'}",
            "Session data: {'sso_access_token': '[REDACTED:secret]', 'sso_refresh_token': '[REDACTED:secret]', 'role': 'Client'}".into(),
        ),
        (
            "dict_items([('sso_access_token', 'Zm9vYmFy'), ('sso_refresh_token', \"cmVm'cmVzaA\"), ('x', 1)])",
            "dict_items([('sso_access_token', '[REDACTED:secret]'), ('sso_refresh_token', \"[REDACTED:secret]\"), ('x', 1)])".into(),
        ),
        (
            r#"{"access_token":"abc","token_type":"Bearer","expires_in":900,"password": "p\"w"}"#,
            r#"{"access_token":"[REDACTED:secret]","token_type":"[REDACTED:secret]","expires_in":900,"password": "[REDACTED:secret]"}"#.into(),
        ),
        (
            r#"{"error":"{\"refresh_token\": \"r3fr3sh\"}"}"#,
            r#"{"error":"{\"refresh_token\": \"[REDACTED:secret]\"}"}"#.into(),
        ),
        ("{'session_key': b'abc'}", "{'session_key': b'[REDACTED:secret]'}".into()),
        ("DB_PASSWORD=hunter2 other=1", "DB_PASSWORD=[REDACTED:secret] other=1".into()),
        ("login password='hunter 2' ok", "login password='[REDACTED:secret]' ok".into()),
        ("X-CSRFToken: abc123", "X-CSRFToken: [REDACTED:secret]".into()),
        ("/?next=/a&sessionid=abc", "/?next=/a&sessionid=[REDACTED:secret]".into()),
        ("api_key=AIzaSy0123", "api_key=[REDACTED:secret]".into()),
        // AWS
        ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED:aws_key_id] used".into()),
        ("ASIAY34FZKBOKMUTVV7A", "[REDACTED:aws_key_id]".into()),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret]".into(),
        ),
        ("aws_secret_access_key = \"wJalrXUtnFEMI\"", "aws_secret_access_key = \"[REDACTED:aws_secret]\"".into()),
        (
            r#"{"SecretAccessKey": "wJalr/XUtn", "AccessKeyId": "ASIAY34FZKBOKMUTVV7A"}"#,
            r#"{"SecretAccessKey": "[REDACTED:secret]", "AccessKeyId": "[REDACTED:aws_key_id]"}"#.into(),
        ),
        // SigV4
        (
            "https://b.s3.us-east-2.amazonaws.com/bols/a.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20250101%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=86400&X-Amz-Security-Token=IQoJb3&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
            "https://b.s3.us-east-2.amazonaws.com/bols/a.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[REDACTED:sigv4]&X-Amz-Date=20250101T000000Z&X-Amz-Expires=86400&X-Amz-Security-Token=[REDACTED:sigv4]&X-Amz-SignedHeaders=host&X-Amz-Signature=[REDACTED:sigv4]".into(),
        ),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=5d672d79",
            "Authorization: AWS4-HMAC-SHA256 [REDACTED:sigv4]".into(),
        ),
        // PEM within one line (JSON-escaped newlines)
        (
            r#"{"key":"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"}"#,
            r#"{"key":"-----BEGIN RSA PRIVATE KEY-----[REDACTED:private_key]-----END RSA PRIVATE KEY-----\n"}"#.into(),
        ),
        // URL userinfo
        ("redis://default:p4ss@redis:6379/0", "redis://default:[REDACTED:userinfo]@redis:6379/0".into()),
        ("postgres://:s3cr3t@db/prt", "postgres://:[REDACTED:userinfo]@db/prt".into()),
    ];
    let mut failures = Vec::new();
    for (input, expected) in &rows {
        let got = red(input);
        if &got != expected {
            failures.push(format!("\n  in:   {input}\n  want: {expected}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "{} rows failed:{}", failures.len(), failures.concat());
}

/// False positives: these stay byte-identical.
#[test]
fn ordinary_log_text_is_left_alone() {
    let rows = [
        "BOL PRT-2025-0002 created for release 4711",
        "GET /media/bols/2025/PRT-2025-0002.pdf HTTP/1.1",
        "user client@example.com logged in",
        "mailto:office@barge2rail.com",
        "https://prt.barge2rail.com/api/releases/open/?page=2",
        "https://prt.barge2rail.com:8443/client.html",
        "GET /api/bol/3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b/download/ HTTP/1.1",
        "the session_id field is rotated at login",
        "Session data: {'role': 'Client', 'tenant_id': 'primetrade'}",
        "we use a bearer token for machine clients",
        "Bearer authentication is required",
        "cookie policy accepted",
        "zipcode=60601 barcode=123 unicode=yes",
        "10.0.0.1 - - [01/Jan/2025:10:00:00 +0000] \"GET /api/history/ HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"",
        "Asia/Tokyo timezone; Aida arrived",
        "INFO django.request: Not Found: /favicon.ico",
        "sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "[REDACTED:oauth]",
        "",
    ];
    for row in rows {
        assert_eq!(red(row), row, "false positive");
    }
}

#[test]
fn the_right_detector_fires() {
    let r = r();
    let rows = [
        (format!("t {JWT}"), "jwt"),
        ("Bearer abcdefgh12345".into(), "bearer"),
        ("?code=abc".into(), "oauth"),
        ("Cookie: a=b".into(), "cookie"),
        ("AKIAIOSFODNN7EXAMPLE".into(), "aws_key_id"),
        ("X-Amz-Signature=abc".into(), "sigv4"),
        ("'sso_access_token': 'v'".into(), "secret"),
        ("https://u:p@h/".into(), "userinfo"),
    ];
    for (input, name) in rows {
        let mut hits = Vec::new();
        r.find(input.as_bytes(), &mut hits);
        assert_eq!(hits.len(), 1, "{input}: {hits:?}");
        assert_eq!(r.name(hits[0].detector), name, "{input}");
    }
}

#[test]
fn redaction_is_idempotent_and_overlaps_merge() {
    let r = r();
    let inputs = [
        format!("access_token={JWT}&state=x Authorization: Bearer {JWT}"),
        "Cookie: sessionid=AKIAIOSFODNN7EXAMPLE".to_string(),
        "{'sso_access_token': 'Bearer abcdefgh1234'}".to_string(),
    ];
    for input in inputs {
        let once = r.redact(input.as_bytes()).into_owned();
        let twice = r.redact(&once).into_owned();
        assert_eq!(once, twice, "{input}");
        let text = String::from_utf8(once).unwrap();
        assert!(!text.contains("eyJ") && !text.contains("AKIA") && !text.contains("abcdefgh"), "{text}");
    }
}

#[test]
fn invalid_utf8_passes_through_and_is_still_searched() {
    let r = r();
    let input = b"\xff\xfe token=s3cr3t \xc3\x28 end";
    assert_eq!(&*r.redact(input), b"\xff\xfe token=[REDACTED:oauth] \xc3\x28 end".as_slice());
    let clean = b"\xff\xfe plain \x80";
    assert!(matches!(r.redact(clean), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn operator_patterns_whole_match_or_named_groups() {
    let pats = vec![
        RawPattern { name: "pin".into(), regex: r"PIN-[0-9]{6}".into() },
        RawPattern { name: "ssn".into(), regex: r"ssn=(?P<v>[0-9-]+)".into() },
    ];
    let r = Redactor::new(&pats).unwrap();
    assert_eq!(r.redact_str("driver PIN-123456 ssn=123-45-6789 ok"), "driver [REDACTED:pin] ssn=[REDACTED:ssn] ok");
    assert_eq!(r.redact_str("PIN-12 only"), "PIN-12 only");
}

#[test]
fn operator_pattern_errors_name_the_field() {
    let pats = vec![
        RawPattern { name: "ok".into(), regex: "(unclosed".into() },
        RawPattern { name: "bad name".into(), regex: "x+".into() },
        RawPattern { name: "empty".into(), regex: "a*".into() },
    ];
    let errs = Redactor::new(&pats).unwrap_err();
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.index, e.field)).collect();
    assert_eq!(got, vec![(0, "regex"), (1, "name"), (2, "regex")]);
    assert!(errs[0].message.starts_with("invalid regex:"), "{}", errs[0].message);
    assert_eq!(errs[1].message, "invalid name `bad name` (letters, digits, `_`, `-`)");
    assert_eq!(errs[2].message, "`a*` matches the empty string (it would redact nothing useful)");
}

fn run_filter(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    filter(Arc::new(r()), input, &mut out).unwrap();
    out
}

#[test]
fn filter_keeps_every_line_in_order() {
    let input = b"one\r\ntoken=abc\n\n\xff bad utf8 token=x\nlast without newline";
    let out = run_filter(input);
    assert_eq!(
        out,
        b"one\r\ntoken=[REDACTED:oauth]\n\n\xff bad utf8 token=[REDACTED:oauth]\nlast without newline".to_vec()
    );
}

#[test]
fn filter_redacts_multi_line_pem_blocks_line_by_line() {
    let input = "before\nkey: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAAAAAAAAAABAAAAMwAAAAt\n-----END OPENSSH PRIVATE KEY----- tail token=t\nafter\n";
    let out = String::from_utf8(run_filter(input.as_bytes())).unwrap();
    assert_eq!(
        out,
        "before\nkey: -----BEGIN OPENSSH PRIVATE KEY-----\n[REDACTED:private_key]\n[REDACTED:private_key]\n-----END OPENSSH PRIVATE KEY----- tail token=[REDACTED:oauth]\nafter\n"
    );
    // A public key or certificate is not a secret.
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    assert_eq!(String::from_utf8(run_filter(cert.as_bytes())).unwrap(), cert);
}

/// A secret straddling a window boundary of a huge line is found whole.
#[test]
fn huge_line_windows_never_split_a_secret() {
    let mut line = vec![b'a'; MAX_LINE - OVERLAP - 5];
    line.extend_from_slice(b" token=CANARYCANARYCANARY ");
    line.extend(std::iter::repeat_n(b'b', MAX_LINE));
    line.extend_from_slice(b" password=SECONDCANARY ");
    line.extend(std::iter::repeat_n(b'c', 3 * MAX_LINE));
    line.extend_from_slice(b"\nnext token=x\n");
    let out = run_filter(&line);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("CANARY"), "secret leaked across a window boundary");
    assert_eq!(text.matches("[REDACTED:").count(), 3);
    assert_eq!(text.lines().count(), 2);
    assert_eq!(text.len(), line.len() - "CANARYCANARYCANARY".len() - "SECONDCANARY".len() - 1 + 16 + 17 + 16);
}

/// A value longer than a window stays redacted into the next window.
#[test]
fn a_value_longer_than_a_window_is_redacted_whole() {
    let mut line = b"x token=".to_vec();
    line.extend(std::iter::repeat_n(b'Z', 3 * MAX_LINE));
    line.extend_from_slice(b" tail\n");
    let text = String::from_utf8(run_filter(&line)).unwrap();
    assert!(!text.contains('Z'), "value tail leaked ({} bytes)", text.len());
    assert!(text.ends_with(" tail\n"), "{}", &text[text.len().saturating_sub(40)..]);
}

#[test]
fn line_filter_state_is_per_stream() {
    let r = Arc::new(r());
    let mut a = LineFilter::new(r.clone());
    let mut b = LineFilter::new(r);
    let mut out = Vec::new();
    a.line(b"-----BEGIN PRIVATE KEY-----", &mut out);
    out.clear();
    b.line(b"MIIB plain", &mut out);
    assert_eq!(out, b"MIIB plain");
    out.clear();
    a.line(b"MIIB secret", &mut out);
    assert_eq!(out, b"[REDACTED:private_key]");
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]
    /// Around any mix of log-ish fragments: the line count is kept and a
    /// planted secret never survives.
    #[test]
    fn planted_secret_never_survives(parts in proptest::collection::vec(proptest::sample::select(vec![
        "token", "=", ":", " ", "'", "\"", "\\", "&", "?", ";", ",", "(", ")", "{", "}", "[", "]", "\n",
        "cookie", "Bearer ", "eyJ", ".", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
        "https://", "@", "AKIA", "x", "session", "code=", "\u{e9}", "\r",
    ]), 0..24)) {
        let r = Arc::new(r());
        let noise = parts.concat();
        let input = format!("{noise} access_token=PROPCANARY77 {noise}");
        let once = r.redact(input.as_bytes()).into_owned();
        proptest::prop_assert!(!String::from_utf8_lossy(&once).contains("PROPCANARY77"));
        let mut out = Vec::new();
        filter(r.clone(), input.as_bytes(), &mut out).unwrap();
        let nl = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
        proptest::prop_assert_eq!(nl(input.as_bytes()), nl(&out));
        let text = String::from_utf8_lossy(&out);
        proptest::prop_assert!(!text.contains("PROPCANARY77"), "{:?} -> {:?}", input, text);
    }
}

/// OAuth/OIDC login-flow secrets in session dumps, under any key spelling and in every
/// dict, JSON and Python-repr form (issue 15, item 7).
#[test]
fn login_flow_secrets_in_session_dumps() {
    let rows: &[(&str, &str)] = &[
        (
            "Session data: {'oauth_state': 'af0ifjsldkj', 'next': '/dashboard/'}",
            "Session data: {'oauth_state': '[REDACTED:oauth]', 'next': '/dashboard/'}",
        ),
        (r#"{"state": "af0ifjsldkj", "status": "pending"}"#, r#"{"state": "[REDACTED:oauth]", "status": "pending"}"#),
        (r#"{"nonce":"n-0S6_WzA2Mj","code_verifier":"dBjftJeZ4CVP"}"#, r#"{"nonce":"[REDACTED:oauth]","code_verifier":"[REDACTED:oauth]"}"#),
        (
            "{'pkce_verifier': 'dBjftJeZ4CVP', 'pkce_code_challenge': 'E9Melhoa2Ow', 'code_challenge': 'E9Melhoa'}",
            "{'pkce_verifier': '[REDACTED:oauth]', 'pkce_code_challenge': '[REDACTED:oauth]', 'code_challenge': '[REDACTED:oauth]'}",
        ),
        (
            "dict_items([('oauth_state', 'af0ifj'), ('oidc_nonce', \"n-0S6\"), ('role', 'Client')])",
            "dict_items([('oauth_state', '[REDACTED:oauth]'), ('oidc_nonce', \"[REDACTED:oauth]\"), ('role', 'Client')])",
        ),
        (r#"{"data":"{\"state\": \"af0ifj\", \"nonce\": \"n0\"}"}"#, r#"{"data":"{\"state\": \"[REDACTED:oauth]\", \"nonce\": \"[REDACTED:oauth]\"}"}"#),
        ("{'STATE': b'af0ifj', 'Code-Verifier': 'abc'}", "{'STATE': b'[REDACTED:oauth]', 'Code-Verifier': '[REDACTED:oauth]'}"),
        ("login started oauth_state=af0ifj nonce=n0S6 pkce_verifier: dBjft", "login started oauth_state=[REDACTED:oauth] nonce=[REDACTED:oauth] pkce_verifier: [REDACTED:oauth]"),
        ("{'sso_state': 'x1', 'login_state': 'x2', 'auth_state': 'x3'}", "{'sso_state': '[REDACTED:oauth]', 'login_state': '[REDACTED:oauth]', 'auth_state': '[REDACTED:oauth]'}"),
    ];
    let mut failures = Vec::new();
    for (input, expected) in rows {
        let got = red(input);
        if &got != expected {
            failures.push(format!("\n  in:   {input}\n  want: {expected}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "{} rows failed:{}", failures.len(), failures.concat());
    // False positives: `state` and its look-alikes in ordinary fields and prose.
    for row in [
        r#"{"status": "pending", "shipping_state": "OH", "statement": "x"}"#,
        "{'state_code': 'OH', 'estate': 'x', 'stateless': True}",
        "Connection state: open; the state machine is idle",
        "INFO release state changed to shipped",
        "{'state': None, 'nonce': 42}",
    ] {
        assert_eq!(red(row), row, "false positive");
    }
}

/// A second pass over redacted text changes nothing: the fuzz finding
/// `fuzz/seeds/redact/reredact-cookie-authorization`, and the same through the line filter.
#[test]
fn reredacting_the_cookie_authorization_finding_changes_nothing() {
    let r = Arc::new(r());
    let seed = include_bytes!("../../fuzz/seeds/redact/reredact-cookie-authorization");
    let once = r.redact(seed).into_owned();
    assert_eq!(r.redact(&once).as_ref(), once.as_slice());
    assert!(!once.windows(4).any(|w| w == b"Bear"), "{}", String::from_utf8_lossy(&once));
    let mut filtered = Vec::new();
    filter(r.clone(), seed.as_slice(), &mut filtered).unwrap();
    let mut again = Vec::new();
    filter(r.clone(), filtered.as_slice(), &mut again).unwrap();
    assert_eq!(again, filtered);
    assert_eq!(filtered, once);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(256))]
    /// Idempotence over mixes of the fragments detectors read (keys, separators, quotes,
    /// cookie and authorization headers, markers): redacting twice equals redacting once,
    /// through the engine and through the line filter.
    #[test]
    fn redaction_is_idempotent(parts in proptest::collection::vec(proptest::sample::select(vec![
        "Cookie: ", "Authorization: ", "Bearer ", "Bear", "=", ": ", " ", "'", "\"", "\\\"", ";", ",", "&", "?",
        "(", ")", "{", "}", "[REDACTED:cookie]", "prt_", "token", "state", "oauth_state", "nonce", "code=",
        "session", "eyJhbGciOi", ".", "AKIAIOSFODNN7EXAMPLE", "https://u:p@h/", "x", "zy", "\0", "\u{eb}",
    ]), 0..20)) {
        let r = Arc::new(r());
        let input = parts.concat();
        let once = r.redact(input.as_bytes()).into_owned();
        let twice = r.redact(&once).into_owned();
        proptest::prop_assert_eq!(&once, &twice, "{:?}", input);
        let mut filtered = Vec::new();
        filter(r.clone(), input.as_bytes(), &mut filtered).unwrap();
        let mut again = Vec::new();
        filter(r.clone(), filtered.as_slice(), &mut again).unwrap();
        proptest::prop_assert_eq!(&filtered, &again, "{:?}", input);
    }
}
