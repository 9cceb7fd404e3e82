//! Warnings about secrets written into `policy.toml` (design §6.2, §11): the file is committed
//! and shipped; secrets belong in `PRT_GATE_*` environment variables.
//!
//! Two scans, neither of which ever echoes the value it found:
//!
//! * key names: a string value under a key that names a secret (`*token*`, `*secret*`,
//!   `password`, `api_key`, `private_key`, `credential`, …);
//! * text: every line, comments included, for values that are secrets whatever their key
//!   (AWS access key ids `AKIA…`/`ASIA…`, JWTs, PEM private keys, `Bearer …` tokens, URL
//!   passwords).
//!
//! `sso.client_secret` and `assertion.secret` are refused outright by `config`, not here.

use super::{Diagnostic, Locator};

/// Key fragments that name a secret.
const SECRET_KEYS: &[&str] =
    &["secret", "password", "passwd", "token", "api_key", "apikey", "private_key", "credential", "access_key"];

/// Keys `config` already refuses (an error, not a warning).
const REFUSED: &[&str] = &["sso.client_secret", "assertion.secret"];

pub(super) fn secret_warnings(loc: &Locator<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(doc) = &loc.doc {
        walk_table(loc, doc.as_table(), "", &mut out);
    }
    let mut start = 0;
    for line in loc.text.split_inclusive('\n') {
        let line_start = start;
        start += line.len();
        if let Some((col, what)) = secret_in_text(line) {
            let offset = line_start + col;
            out.push(Diagnostic {
                origin: loc.at_offset(offset),
                key: None,
                message: format!(
                    "looks like {what} in the file; secrets belong in the environment, never in policy.toml"
                ),
            });
        }
    }
    out
}

fn walk_table(loc: &Locator<'_>, table: &dyn toml_edit::TableLike, prefix: &str, out: &mut Vec<Diagnostic>) {
    for (k, item) in table.iter() {
        let key = if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match item {
            toml_edit::Item::Table(t) => walk_table(loc, t, &key, out),
            toml_edit::Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    walk_table(loc, t, &format!("{key}.{i}"), out);
                }
            }
            toml_edit::Item::Value(v) => walk_value(loc, k, v, &key, out),
            toml_edit::Item::None => {}
        }
    }
}

fn walk_value(loc: &Locator<'_>, name: &str, v: &toml_edit::Value, key: &str, out: &mut Vec<Diagnostic>) {
    match v {
        toml_edit::Value::InlineTable(t) => walk_table(loc, t, key, out),
        toml_edit::Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                walk_value(loc, name, e, &format!("{key}.{i}"), out);
            }
        }
        toml_edit::Value::String(s) if !s.value().is_empty() && names_secret(name) => {
            if REFUSED.contains(&key) {
                return;
            }
            out.push(Diagnostic {
                origin: v.span().map_or(super::Origin::Default, |s| loc.at_offset(s.start)),
                key: Some(key.to_string()),
                message: "looks like a secret; set it through a PRT_GATE_* environment variable, not in the file"
                    .into(),
            });
        }
        _ => {}
    }
}

fn names_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

/// The first secret-looking value in `line`: its byte column and what it looks like.
fn secret_in_text(line: &str) -> Option<(usize, &'static str)> {
    let b = line.as_bytes();
    for i in 0..b.len() {
        let rest = &b[i..];
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary
            && (rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"))
            && rest.len() >= 20
            && rest[4..20].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && rest.get(20).is_none_or(|c| !c.is_ascii_alphanumeric())
        {
            return Some((i, "an AWS access key id"));
        }
        if boundary && rest.starts_with(b"eyJ") && is_jwt(rest) {
            return Some((i, "a JWT"));
        }
        if rest.starts_with(b"-----BEGIN") && line[i..].contains("PRIVATE KEY") {
            return Some((i, "a PEM private key"));
        }
        if boundary && rest.len() > 7 && rest[..7].eq_ignore_ascii_case(b"bearer ") && token_len(&rest[7..]) >= 16 {
            return Some((i, "a Bearer token"));
        }
        if rest.starts_with(b"://") && userinfo_password(&rest[3..]) {
            return Some((i, "a password in a URL"));
        }
    }
    None
}

fn token_len(b: &[u8]) -> usize {
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'='))
        .count()
}

/// `eyJ…​.eyJ…​.…`: three base64url parts, the first two JSON objects.
fn is_jwt(b: &[u8]) -> bool {
    let part = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')).count();
    let a = part(b);
    if a < 10 || b.get(a) != Some(&b'.') {
        return false;
    }
    let rest = &b[a + 1..];
    let p = part(rest);
    rest.starts_with(b"eyJ") && p >= 10 && rest.get(p) == Some(&b'.')
}

/// `user:password@host` right after `://`.
fn userinfo_password(b: &[u8]) -> bool {
    let end = b.iter().position(|c| matches!(c, b'/' | b'"' | b'\'' | b' ' | b'?' | b'#')).unwrap_or(b.len());
    let auth = &b[..end];
    match auth.iter().rposition(|&c| c == b'@') {
        Some(at) => auth[..at].iter().position(|&c| c == b':').is_some_and(|colon| colon + 1 < at),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::secret_in_text;

    #[test]
    fn text_detectors() {
        let rows: &[(&str, Option<&str>)] = &[
            ("key = \"AKIAIOSFODNN7EXAMPLE\"", Some("an AWS access key id")),
            ("# ASIAIOSFODNN7EXAMPL3 in a comment", Some("an AWS access key id")),
            ("x = \"AKIAshort\"", None),
            ("x = \"XAKIAIOSFODNN7EXAMPLE\"", None),
            ("t = \"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig\"", Some("a JWT")),
            ("-----BEGIN RSA PRIVATE KEY-----", Some("a PEM private key")),
            ("-----BEGIN PUBLIC KEY-----", None),
            ("h = \"Bearer abcdefghijklmnopqrstuvwxyz\"", Some("a Bearer token")),
            ("auth = \"bearer\"", None),
            ("store = \"redis://:hunter2@redis:6379/0\"", Some("a password in a URL")),
            ("store = \"redis://redis:6379/0\"", None),
            ("path = \"/api/bol/{id}/\"", None),
        ];
        for (line, want) in rows {
            assert_eq!(secret_in_text(line).map(|(_, w)| w), *want, "{line}");
        }
    }
}
