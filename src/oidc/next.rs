//! `next` validation for the login flow (design §4 "`next` safety").
//!
//! A `next` value is honoured only when it is a same-origin path: it starts
//! with a single `/`, contains no `\`, no control or whitespace characters,
//! and — after one more round of percent-decoding — still has no scheme, no
//! authority (`//host`), no `\` and no control characters. The path part must
//! normalize (design §6.3) and must not point back into the login machinery.
//! The caller then prefixes the gate's public origin, so the `Location`
//! header is absolute and can never leave that origin.
//!
//! Pure; fuzzed and tested against `tests/fixtures/openredirects.txt` (the oauth2-proxy corpus).

use percent_encoding::percent_decode_str;

use crate::normalize::normalize;

/// Returns the same-origin path (with query) to redirect to, or `None`.
///
/// `value` is the parameter as the query parser produced it (decoded once).
pub fn safe_next(value: &str) -> Option<String> {
    if !plain_path(value) {
        return None;
    }
    // Decode once more: what a lenient browser or framework might do later.
    let decoded = percent_decode_str(value).decode_utf8().ok()?;
    if !plain_path(&decoded) || has_scheme_or_authority(&decoded) {
        return None;
    }
    let (path, query) = match value.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (value, None),
    };
    if path.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return None;
    }
    let path = normalize(path).ok()?;
    if is_login_machinery(path.as_str()) {
        return None;
    }
    Some(match query {
        Some(q) if !q.is_empty() => format!("{}?{q}", path.as_str()),
        _ => path.as_str().to_owned(),
    })
}

/// Starts with exactly one `/`; no `\`, control or whitespace anywhere.
fn plain_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && !s.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

fn has_scheme_or_authority(s: &str) -> bool {
    if s.contains("://") || s.starts_with("//") {
        return true;
    }
    // `/javascript:…` is harmless behind our origin, but no real `next` looks
    // like that: refuse a first segment shaped like `scheme:`.
    let first = s.trim_start_matches('/').split(['/', '?']).next().unwrap_or("");
    match first.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

fn is_login_machinery(path: &str) -> bool {
    ["/auth/", "/login/", "/logout/"].iter().any(|p| path.starts_with(p))
        || path == "/login"
        || path == "/logout"
        || path == "/auth"
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn table() {
        let rows: &[(&str, Option<&str>)] = &[
            ("/", Some("/")),
            ("/client.html", Some("/client.html")),
            ("/api/history/?page=2", Some("/api/history/?page=2")),
            ("/a/../b/", Some("/b/")),
            ("/dashboard?x=http%3A%2F%2Fa", None),
            ("//evil.example", None),
            ("/\\evil.example", None),
            ("/%2fevil.example", None),
            ("/%5cevil.example", None),
            ("/%09/evil.example", None),
            ("https://evil.example", None),
            ("evil.example", None),
            ("", None),
            ("/javascript:alert(1)", None),
            ("/ evil", None),
            ("/a\nb", None),
            ("/auth/login/", None),
            ("/logout/", None),
            ("/a#frag", None),
            ("/..", None),
        ];
        for (input, expected) in rows {
            assert_eq!(safe_next(input).as_deref(), *expected, "{input:?}");
        }
    }

    #[test]
    fn open_redirect_corpus_never_leaves_the_origin() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openredirects.txt");
        let Ok(corpus) = std::fs::read_to_string(path) else {
            // Committed with its licence in tests/fixtures/.
            panic!("corpus not found at {path}");
        };
        let origin = url::Url::parse("https://prt.barge2rail.com").unwrap();
        let mut accepted = 0;
        for line in corpus.lines() {
            let decoded_once = percent_encoding::percent_decode_str(line).decode_utf8_lossy().into_owned();
            for value in [line, decoded_once.as_str()] {
                if let Some(p) = safe_next(value) {
                    accepted += 1;
                    let target = origin.join(&p).unwrap();
                    assert_eq!(target.origin(), origin.origin(), "{value:?} → {p:?}");
                    assert!(p.starts_with('/') && !p.starts_with("//"), "{value:?} → {p:?}");
                }
            }
        }
        assert!(corpus.lines().count() > 500);
        // A few corpus lines are harmless same-origin paths; most are refused.
        assert!(accepted < 50, "{accepted}");
    }
}
