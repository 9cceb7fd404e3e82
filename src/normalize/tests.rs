use super::*;
use proptest::prelude::*;
use NormalizeError as E;

/// `(input, expected)`; an `Ok` equal to the input must also come back borrowed.
const CASES: &[(&str, Result<&str, NormalizeError>)] = &[
    // Already canonical: borrowed as is.
    ("/", Ok("/")),
    ("/api/bol/123/download/", Ok("/api/bol/123/download/")),
    ("/media/bols/2025/PRT-2025-0002.pdf", Ok("/media/bols/2025/PRT-2025-0002.pdf")),
    ("/api/x/", Ok("/api/x/")),
    ("/.well-known/openid-configuration", Ok("/.well-known/openid-configuration")),
    ("/a..b/.c/..d/...", Ok("/a..b/.c/..d/...")),
    ("/a.", Ok("/a.")),
    ("/a%20b", Ok("/a%20b")),
    ("/a%C3%A9", Ok("/a%C3%A9")),
    ("/a%E2%82%AC/%F0%9F%98%80", Ok("/a%E2%82%AC/%F0%9F%98%80")),
    ("/a%25b", Ok("/a%25b")),
    ("/a%25", Ok("/a%25")),
    ("/a%252", Ok("/a%252")),
    ("/a%2541", Ok("/a%2541")),
    ("/a%25/2e", Ok("/a%25/2e")),
    ("/a%3F%23%5B", Ok("/a%3F%23%5B")),
    ("/a:b@c!$&'()*+,=-._~", Ok("/a:b@c!$&'()*+,=-._~")),
    // Unreserved escapes are decoded once, others upper-cased.
    ("/%41pi/", Ok("/Api/")),
    ("/a%7eb", Ok("/a~b")),
    ("/a%7Eb", Ok("/a~b")),
    ("/%2D%2e%5F%7E%30%7a", Ok("/-._~0z")),
    ("/a%c3%a9", Ok("/a%C3%A9")),
    ("/a%e2%82%Ac", Ok("/a%E2%82%AC")),
    ("/a%5b%3f", Ok("/a%5B%3F")),
    // Escaped sub-delims, `:` and `@` are decoded like unreserved ones: Django resolves
    // the decoded path, so the gate must decide on it too.
    ("/a%3a%3f", Ok("/a:%3F")),
    ("/api/reports/q1%2Bq2/", Ok("/api/reports/q1+q2/")),
    ("/api/reports/q1%2bq2/", Ok("/api/reports/q1+q2/")),
    ("/ops%3Atools/", Ok("/ops:tools/")),
    ("/%21%24%26%27%28%29%2A%2B%2C%3D%3A%40", Ok("/!$&'()*+,=:@")),
    ("/a%2540", Ok("/a%2540")),
    ("/a%2e", Ok("/a.")),
    // Rule 3: printable ASCII outside the path characters gets encoded.
    ("/a\"b", Ok("/a%22b")),
    ("/a<b>", Ok("/a%3Cb%3E")),
    ("/{x}|[y]^`", Ok("/%7Bx%7D%7C%5By%5D%5E%60")),
    ("/a?b", Ok("/a%3Fb")),
    // Slashes merged, dot segments resolved.
    ("//api//x", Ok("/api/x")),
    ("//", Ok("/")),
    ("///", Ok("/")),
    ("/a//", Ok("/a/")),
    ("/api/x/../admin/", Ok("/api/admin/")),
    ("/api/%2e%2e/admin/", Ok("/admin/")),
    ("/api/%2E%2e/admin", Ok("/admin")),
    ("/api/.%2e/admin", Ok("/admin")),
    ("/api/x/.", Ok("/api/x/")),
    ("/a/b/..", Ok("/a/")),
    ("/a/.", Ok("/a/")),
    ("/a/..", Ok("/")),
    ("/a/%2e%2e", Ok("/")),
    ("/.", Ok("/")),
    ("/%2e", Ok("/")),
    ("/./", Ok("/")),
    ("/a/./b", Ok("/a/b")),
    ("/a/b/../../c", Ok("/c")),
    ("/a/b/./../c/", Ok("/a/c/")),
    ("//a//..//b", Ok("/b")),
    // Not absolute.
    ("", Err(E::NotAbsolute)),
    ("relative", Err(E::NotAbsolute)),
    ("a/b", Err(E::NotAbsolute)),
    ("*", Err(E::NotAbsolute)),
    ("%2Fa", Err(E::NotAbsolute)),
    ("http://evil/a", Err(E::NotAbsolute)),
    // Above the root: refused, not clamped.
    ("/..", Err(E::AboveRoot)),
    ("/../a", Err(E::AboveRoot)),
    ("/..//", Err(E::AboveRoot)),
    ("//..", Err(E::AboveRoot)),
    ("/%2e%2e", Err(E::AboveRoot)),
    ("/a/../..", Err(E::AboveRoot)),
    ("/a/./../../b", Err(E::AboveRoot)),
    ("/a/%2e%2e/%2e%2e/", Err(E::AboveRoot)),
    // Raw bytes refused.
    ("/a\\b", Err(E::Backslash)),
    ("/a#b", Err(E::Fragment)),
    ("/#", Err(E::Fragment)),
    ("/a;jsessionid=1", Err(E::PathParameter)),
    ("/a b", Err(E::Space)),
    ("/a\0", Err(E::ControlCharacter)),
    ("/a\tb", Err(E::ControlCharacter)),
    ("/a\r\nb", Err(E::ControlCharacter)),
    ("/a\x7f", Err(E::ControlCharacter)),
    ("/caf\u{e9}", Err(E::NonAscii)),
    ("/a\u{200b}", Err(E::NonAscii)),
    // Escapes refused.
    ("/a%2fb", Err(E::EncodedSeparator)),
    ("/a%2Fb", Err(E::EncodedSeparator)),
    ("/a%5cb", Err(E::EncodedSeparator)),
    ("/a%5Cb", Err(E::EncodedSeparator)),
    ("/..%2f..%2fetc", Err(E::EncodedSeparator)),
    ("/a%3bx", Err(E::PathParameter)),
    ("/a%3Bx", Err(E::PathParameter)),
    ("/a%00", Err(E::ControlCharacter)),
    ("/a%0a", Err(E::ControlCharacter)),
    ("/a%1F", Err(E::ControlCharacter)),
    ("/a%7f", Err(E::ControlCharacter)),
    ("/a%zz", Err(E::InvalidPercentEncoding)),
    ("/a%4", Err(E::InvalidPercentEncoding)),
    ("/a%", Err(E::InvalidPercentEncoding)),
    ("/a%%41", Err(E::InvalidPercentEncoding)),
    ("/a%g0", Err(E::InvalidPercentEncoding)),
    ("/a%+1", Err(E::InvalidPercentEncoding)),
    ("/a%c3%zz", Err(E::InvalidPercentEncoding)),
    // Double encoding, including a second level spelled with escapes.
    ("/a%252e%252e/", Err(E::DoubleEncoding)),
    ("/a%252E", Err(E::DoubleEncoding)),
    ("/a%252f", Err(E::DoubleEncoding)),
    ("/a%252F", Err(E::DoubleEncoding)),
    ("/a%255c", Err(E::DoubleEncoding)),
    ("/a%255C", Err(E::DoubleEncoding)),
    ("/a%25%32%65", Err(E::DoubleEncoding)),
    ("/a%25%32e", Err(E::DoubleEncoding)),
    ("/a%252%66", Err(E::DoubleEncoding)),
    ("/a%25%35%43", Err(E::DoubleEncoding)),
    // Invalid UTF-8 after decoding.
    ("/a%c3%28", Err(E::InvalidUtf8)),
    ("/a%c3", Err(E::InvalidUtf8)),
    ("/a%c3x", Err(E::InvalidUtf8)),
    ("/a%c3/%a9", Err(E::InvalidUtf8)),
    ("/a%a9", Err(E::InvalidUtf8)),
    ("/a%c3%c3", Err(E::InvalidUtf8)),
    ("/a%c0%af", Err(E::InvalidUtf8)),
    ("/a%e0%80%af", Err(E::InvalidUtf8)),
    ("/a%ed%a0%80", Err(E::InvalidUtf8)),
    ("/a%f4%90%80%80", Err(E::InvalidUtf8)),
    ("/a%f8%88%80%80%80", Err(E::InvalidUtf8)),
    ("/a%ff", Err(E::InvalidUtf8)),
    // First problem from the left wins; above-root only for otherwise valid paths.
    ("/a#b\\", Err(E::Fragment)),
    ("/a\\b#", Err(E::Backslash)),
    ("/a%zz;", Err(E::InvalidPercentEncoding)),
    ("/../a;", Err(E::PathParameter)),
    ("/../%2f", Err(E::EncodedSeparator)),
];

#[test]
fn table() {
    for &(input, expected) in CASES {
        let got = normalize(input);
        let got_str = got.as_ref().map(|p| p.as_str()).map_err(|e| *e);
        assert_eq!(got_str, expected, "input {input:?}");
        if let Ok(p) = got {
            assert_eq!(p.is_unchanged(), p.as_str() == input, "input {input:?}");
        }
    }
}

#[test]
fn fast_check_agrees_with_table() {
    for b in 0..=u8::MAX {
        let in_table = matches!(CLASS[usize::from(b)], Class::Plain | Class::Slash);
        assert_eq!(is_plain_or_slash(b), in_table, "byte {b:#04x}");
    }
}

#[test]
fn fast_path_sees_patterns_at_every_offset() {
    // The fast path works in chunks: slide each pattern across the chunk boundaries.
    let rows: &[(&str, Result<&str, NormalizeError>)] = &[
        ("//", Ok("/")),
        ("/./", Ok("/")),
        ("/x/../", Ok("/")),
        ("/%41", Ok("/A")),
        ("/\"", Ok("/%22")),
        ("\\", Err(E::Backslash)),
    ];
    let long_tail = "z".repeat(2 * CHUNK);
    for offset in 1..2 * CHUNK + 2 {
        let head = "a".repeat(offset);
        for &(pattern, replacement) in rows {
            for tail in ["z", "z/", long_tail.as_str()] {
                let input = format!("/{head}{pattern}{tail}");
                let want = replacement.map(|r| format!("/{head}{r}{tail}"));
                let got = normalize(&input).map(|p| p.as_str().to_owned());
                assert_eq!(got, want, "{input:?}");
            }
        }
        // At the very end, where the look-ahead runs out.
        for pattern in ["/.", "/x/.."] {
            let got = normalize(&format!("/{head}{pattern}")).map(|p| p.as_str().to_owned());
            assert_eq!(got, Ok(format!("/{head}/")), "{head}{pattern}");
        }
    }
}

#[test]
fn error_texts() {
    let texts = [
        (E::NotAbsolute, "path must start with '/'"),
        (E::Fragment, "path contains a fragment ('#')"),
        (E::Backslash, "path contains a backslash"),
        (E::PathParameter, "path contains a ';' path parameter"),
        (E::ControlCharacter, "path contains a control character"),
        (E::Space, "path contains a raw space"),
        (E::NonAscii, "path contains a raw non-ascii byte"),
        (E::InvalidPercentEncoding, "path contains invalid percent-encoding"),
        (E::EncodedSeparator, "path contains an encoded '/' or '\\'"),
        (E::DoubleEncoding, "path contains a double-encoded '.', '/' or '\\'"),
        (E::InvalidUtf8, "path is not valid utf-8 after percent-decoding"),
        (E::AboveRoot, "path climbs above the root"),
    ];
    for (err, text) in texts {
        assert_eq!(err.to_string(), text);
    }
    assert_eq!(
        normalize("/a/../../etc/passwd").map_err(|e| e.to_string()),
        Err("path climbs above the root".to_owned())
    );
    assert_eq!(normalize("/a%2fb").map_err(|e| e.to_string()), Err("path contains an encoded '/' or '\\'".to_owned()));
}

#[test]
fn cve_2019_9901_dot_segments_never_reach_policy() {
    // Envoy's CVE-2019-9901: `/public/../admin` matched a `/public` rule, then the
    // upstream resolved it to `/admin`. Here the policy only ever sees the result.
    let p = normalize("/api/open-releases/%2e%2e/%2E%2E/admin/").map(|p| p.into_owned());
    assert_eq!(p.as_ref().map(|p| p.as_str()), Ok("/admin/"));
}

#[test]
fn fast_path_borrows() {
    for input in ["/api/bol/123/download/", "/", "/a%C3%A9", "/api/x/"] {
        let p = normalize(input);
        assert!(p.is_ok_and(|p| p.is_unchanged() && matches!(p.path, Cow::Borrowed(s) if std::ptr::eq(s, input))));
    }
    let p = normalize("/api//x");
    assert!(p.is_ok_and(|p| !p.is_unchanged() && matches!(p.path, Cow::Owned(_))));
}

#[test]
fn into_owned_keeps_path_and_flag() {
    let borrowed = normalize("/api/x/");
    let owned = borrowed.clone().map(NormalizedPath::into_owned);
    assert_eq!(borrowed, owned);
    assert!(owned.is_ok_and(|p| p.is_unchanged()));
    let changed = normalize("/api//x").map(NormalizedPath::into_owned);
    assert!(changed.is_ok_and(|p| !p.is_unchanged() && p.as_str() == "/api/x"));
}

#[test]
fn segments_and_trailing_slash() {
    let rows: &[(&str, &[&str], bool)] = &[
        ("/", &[""], true),
        ("/api", &["api"], false),
        ("/api/x", &["api", "x"], false),
        ("/api/x/", &["api", "x", ""], true),
        ("//api/./x/../y/", &["api", "y", ""], true),
    ];
    for &(input, segments, trailing) in rows {
        let p = normalize(input);
        let got = p.as_ref().map(|p| p.segments().collect::<Vec<_>>());
        assert_eq!(got.as_deref(), Ok(segments), "input {input:?}");
        assert_eq!(p.map(|p| p.has_trailing_slash()), Ok(trailing), "input {input:?}");
    }
}

/// Decodes every escape; `None` if one is malformed.
fn decode_all(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            out.push(read_escape(bytes, i).ok()?.value);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// The path Django's URL resolver sees for a forwarded path: the WSGI server percent-decodes
/// every escape of `PATH_INFO`, and Django reads the bytes as UTF-8.
fn django_resolves(forwarded: &str) -> Option<String> {
    String::from_utf8(decode_all(forwarded)?).ok()
}

/// The one spelling of a decoded path the gate forwards: path characters raw, every other
/// byte escaped in upper-case hex. Written apart from the normalizer, as its model.
fn canonical_spelling(decoded: &str) -> String {
    let mut out = String::new();
    for b in decoded.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Everything that must hold for any accepted input.
fn check_accepted(input: &str, p: &NormalizedPath<'_>) {
    let out = p.as_str();
    // Idempotent, and the second run takes the borrowed fast path.
    let again = normalize(out);
    assert_eq!(again.as_ref(), Ok(p), "not idempotent: {input:?} -> {out:?}");
    assert!(again.is_ok_and(|q| q.is_unchanged()), "{out:?} not canonical");
    // The fast path agrees with the slow path, and the flag means output == input.
    assert_eq!(rewrite(input.as_bytes()).as_deref(), Ok(out), "{input:?}");
    assert_eq!(p.is_unchanged(), out == input, "{input:?}");
    // Shape.
    assert!(out.starts_with('/'), "{out:?}");
    for bad in ["//", "/./", "/../"] {
        assert!(!out.contains(bad), "{input:?} -> {out:?}");
    }
    assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{out:?}");
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "%2E", "%3B", "%252E", "%252F", "%255C"] {
        assert!(!upper.contains(bad), "{input:?} -> {out:?}");
    }
    // Only path characters, every escape canonical and not of a byte a path carries raw.
    let bytes = out.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        assert!(matches!(CLASS[usize::from(b)], Class::Plain | Class::Slash | Class::Percent), "{input:?} -> {out:?}");
        if b == b'%' {
            let escape = read_escape(bytes, i);
            assert!(escape.is_ok_and(|e| e.upper && !decodes(e.value)), "{input:?} -> {out:?}");
        }
    }
    let decoded = decode_all(out);
    assert!(decoded.is_some_and(|d| String::from_utf8(d).is_ok()), "{out:?}");
    // The path Django resolves (after its own decoding) determines the forwarded path:
    // two requests Django routes alike are checked alike.
    let django = django_resolves(out);
    assert_eq!(django.as_deref().map(canonical_spelling), Some(out.to_string()), "{input:?} -> {out:?}");
    // Segments put back together give the path.
    assert_eq!(format!("/{}", p.segments().collect::<Vec<_>>().join("/")), out);
    assert_eq!(p.has_trailing_slash(), p.segments().last() == Some(""));
}

/// Strings made of the pieces that matter to the rules, mostly absolute.
fn pathish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "/",
        "/",
        "/",
        ".",
        "..",
        "%",
        "%2e",
        "%2E",
        "%2f",
        "%5C",
        "%25",
        "%c3",
        "%A9",
        "%41",
        "%2B",
        "%3a",
        "%40",
        "%2c",
        "%3D",
        "+",
        ":",
        "%7e",
        "%20",
        "%3b",
        "%00",
        "%e2%82%ac",
        "%c3%a9",
        "a",
        "B",
        "0",
        "2",
        "5",
        "e",
        "E",
        "f",
        "c",
        ";",
        "\\",
        "#",
        " ",
        "\"",
        "?",
        "~",
        "-",
        "\u{e9}",
        "\t",
    ]);
    (prop::bool::weighted(0.95), prop::collection::vec(pieces, 0..24)).prop_map(|(absolute, pieces)| {
        let mut s = String::from(if absolute { "/" } else { "" });
        s.extend(pieces);
        s
    })
}

/// Long runs of quiet bytes with the odd dot, slash or escape: exercises the chunked
/// fast path, which random pieces rarely reach.
fn mostly_quiet() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "b", "z", "0", "-", "_", "~", "a", "b", "z", "0", "-", "_", "~", "/", "/", ".", "..", "%41", "%20", "%2e",
        "\"", "%c3%a9", "%25", "2e",
    ]);
    prop::collection::vec(pieces, 0..80).prop_map(|pieces| {
        let mut s = String::from("/");
        s.extend(pieces);
        s
    })
}

fn check(input: &str) {
    if let Ok(p) = normalize(input) {
        check_accepted(input, &p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn pathish_strings(s in pathish()) {
        check(&s);
    }

    #[test]
    fn mostly_quiet_strings(s in mostly_quiet()) {
        check(&s);
    }

    #[test]
    fn printable_ascii(s in "/[ -~]{0,60}") {
        check(&s);
    }

    #[test]
    fn arbitrary_strings(s in any::<String>()) {
        check(&s);
    }
}
