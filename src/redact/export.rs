//! The built-in detector table as JSON, for redactors outside this binary.
//!
//! The Django adapter's logging filter (`deploy/django/prt_gate_auth/redact.py`)
//! runs the same detectors over Django's own log records. It reads
//! `deploy/django/prt_gate_auth/detectors.json`, which is generated from
//! [`super::detectors::BUILTINS`] by [`detectors_json`]; the test
//! `detectors_json_is_current` fails when the committed file differs from the
//! table (regenerate with `PRT_GATE_BLESS=1 cargo test --lib
//! detectors_json_is_current`), and `tests/it/redact.rs` runs both filters
//! over one corpus and compares their output byte for byte.
//!
//! Regexes are translated to Python `re` syntax for bytes patterns: the
//! leading inline flags become a `flags` string (`i`, `s`; `-u` is dropped,
//! Python bytes patterns are ASCII already) and `\z` becomes `\Z`.

use serde_json::{json, Value};

use super::detectors::{Secret, BUILTINS, COOKIE_ATTRIBUTES};

/// Where the committed copy lives, relative to the crate root.
pub const DETECTORS_JSON: &str = "deploy/django/prt_gate_auth/detectors.json";

/// The detector table as pretty JSON (with a trailing newline).
pub fn detectors_json() -> String {
    let rows: Vec<Value> = BUILTINS
        .iter()
        .map(|b| {
            let (flags, pattern) = python_regex(b.regex);
            json!({
                "name": b.name,
                "anchors": b.anchors,
                "flags": flags,
                "regex": pattern,
                "secret": match b.secret {
                    Secret::Whole => "whole",
                    Secret::Named => "named",
                    Secret::CookieValues => "cookie_values",
                },
                "check": b.check.map(check_name),
                "requires": b.requires.map(|r| String::from_utf8_lossy(r).into_owned()),
            })
        })
        .collect();
    let doc = json!({
        "generated_from": "src/redact/detectors.rs (prt-gate); do not edit, see src/redact/export.rs",
        "cookie_attributes": COOKIE_ATTRIBUTES,
        "detectors": rows,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// `(?i-u)rest` → (`"i"`, `rest`), with `\z` spelled as Python's `\Z`.
fn python_regex(regex: &str) -> (String, String) {
    let (flags, rest) = match regex.strip_prefix("(?").and_then(|r| r.split_once(')')) {
        Some((f, rest)) if !f.is_empty() && f.bytes().all(|b| b"imsux-".contains(&b)) => {
            let on = f.split('-').next().unwrap_or("");
            (on.chars().filter(|c| matches!(c, 'i' | 's' | 'm' | 'x')).collect(), rest)
        }
        _ => (String::new(), regex),
    };
    (flags, rest.replace(r"\z", r"\Z"))
}

/// The name of a check, told apart by behaviour (function pointers have no
/// stable identity): `looks_like_token` refuses a short plain word,
/// `not_redacted` only an already redacted value.
fn check_name(check: super::detectors::Check) -> &'static str {
    if !check(b"word") {
        "looks_like_token"
    } else if !check(b"[REDACTED:x]") {
        "not_redacted"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_end_anchor_are_translated() {
        assert_eq!(python_regex(r"(?i-u)ab\z"), ("i".into(), r"ab\Z".into()));
        assert_eq!(python_regex(r"(?s-u)a.b"), ("s".into(), "a.b".into()));
        assert_eq!(python_regex(r"(?-u)\beyJ"), (String::new(), r"\beyJ".into()));
        assert_eq!(python_regex(r"(?:x)"), (String::new(), "(?:x)".into()));
    }

    #[test]
    fn every_check_has_a_known_name() {
        for b in BUILTINS {
            if let Some(c) = b.check {
                assert_ne!(check_name(c), "unknown", "detector {}: teach export.rs and redact.py its check", b.name);
            }
        }
    }

    #[test]
    fn detectors_json_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DETECTORS_JSON);
        let want = detectors_json();
        if std::env::var_os("PRT_GATE_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{DETECTORS_JSON} is out of date with src/redact/detectors.rs: regenerate it with \
             `PRT_GATE_BLESS=1 cargo test --lib detectors_json_is_current` and commit it"
        );
    }
}
