//! The built-in detectors of design §9, as data: one row per detector with its
//! name (the `[REDACTED:name]` label), the case-insensitive literal anchors
//! that must occur in a line before its regex runs, the regex, and how the
//! secret part of a match is found.
//!
//! Order is priority: when two detectors find overlapping secrets, the span
//! is widened to cover both and keeps the label of the earlier row.
//!
//! Regexes are `regex::bytes` with Unicode off (`(?-u)`): they match any
//! byte, so invalid UTF-8 is scanned like anything else, and the character
//! classes stay ASCII (fast, predictable). Secret spans always start and end
//! at ASCII delimiters, so redacting valid UTF-8 yields valid UTF-8.

/// How the secret bytes of a match are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The whole match is the secret (a JWT, an AWS key id).
    Whole,
    /// Every named capture group that took part in the match is a secret;
    /// the rest of the match (the key, quotes, separators) is kept.
    Named,
    /// The named group `c` is a `Cookie`/`Set-Cookie` value: each cookie's
    /// value is a secret; names and attributes (`Path`, `HttpOnly`…) stay.
    CookieValues,
}

/// A value the detector's regex found that is not a secret after all.
pub type Check = fn(&[u8]) -> bool;

pub struct Builtin {
    pub name: &'static str,
    pub anchors: &'static [&'static str],
    pub regex: &'static str,
    pub secret: Secret,
    /// Extra test on each secret span (the regex alone would over-match).
    pub check: Option<Check>,
    /// Bytes every match contains; lines without them skip the regex.
    pub requires: Option<&'static [u8]>,
}

/// Key fragments that make a `key=value` (or `"key": "value"`) secret:
/// `*token*`, `*secret*`, `password`, `session*` and their usual spellings.
macro_rules! secret_key {
    () => {
        r"[A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|pwd|session|api[_-]?key|apikey|private[_-]?key|auth[_-]?key)[A-Za-z0-9_.-]*"
    };
}

/// Keys of OAuth/OIDC login-flow secrets kept in a session between the redirect and the
/// callback: `state` (bare, or `oauth_state`, `oidc_state`, `sso_state`, `login_state`,
/// `auth_state`; never `shipping_state`), and anything naming a `nonce`, a PKCE
/// `code_verifier` / `code_challenge` or `pkce…`.
macro_rules! oauth_flow_key {
    () => {
        r"(?:(?:(?:oauth|oidc|sso|login|auth)[_.-]?)?state|[A-Za-z0-9_.-]*(?:nonce|code[_-]?verifier|code[_-]?challenge|pkce)[A-Za-z0-9_.-]*)"
    };
}

/// A quoted string in JSON or Python repr (`"…"` with `\"` escapes, `'…'`,
/// optionally `b'…'`), each alternative in its own named group.
macro_rules! quoted_value {
    () => {
        concat!(
            r#"b?(?:\\"(?P<eq>(?:[^"\\\r\n]|\\[^"\r\n])+)\\""#,
            r#"|"(?P<dq>(?:[^"\\\r\n]|\\.)+)""#,
            r#"|'(?P<sq>(?:[^'\\\r\n]|\\.)+)')"#
        )
    };
}

/// Literal anchors of the `secret_key!()` fragments (both `secret` detectors).
const SECRET_KEY_ANCHORS: &[&str] =
    &["token", "secret", "passw", "pwd", "session", "api_key", "api-key", "apikey", "private_key", "auth_key"];

pub const BUILTINS: &[Builtin] = &[
    // -----BEGIN RSA PRIVATE KEY----- … -----END RSA PRIVATE KEY----- within
    // one line (JSON-escaped newlines); across lines, `stream` carries state.
    Builtin {
        name: "private_key",
        anchors: &["private key-----"],
        regex: r"(?s-u)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?P<s>.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\z)",
        secret: Secret::Named,
        check: None,
        requires: None,
    },
    // Presigned URLs (query) and SigV4 Authorization headers.
    Builtin {
        name: "sigv4",
        anchors: &["x-amz-", "signature=", "credential="],
        regex: r#"(?i-u)(?:x-amz-(?:signature|credential|security-token)|\bsignature|\bcredential)=(?P<s>[^&\s"'#,<>]+)"#,
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // OAuth parameters in URLs and forms: `?code=…&state=…`, `access_token=…`.
    // The parameter must start at a boundary: `zipcode=` is not `code=`.
    Builtin {
        name: "oauth",
        anchors: &["code=", "state=", "token=", "secret=", "verifier=", "assertion="],
        regex: r#"(?i-u)(?:^|[?&;#\s"'(,{\[])(?:code|state|session_state|access_token|refresh_token|id_token|id_token_hint|token|client_secret|code_verifier|client_assertion|assertion)=(?P<s>[^&\s"'#;,)<>]+)"#,
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // Login-flow secrets in session dumps, whatever the key spelling: JSON, dict repr,
    // `dict_items` pairs, JSON inside JSON (`{\"state\": \"…\"}`).
    Builtin {
        name: "oauth",
        anchors: &["state", "nonce", "verifier", "challenge", "pkce"],
        regex: concat!(
            r#"(?i-u)(?:\\?["']"#,
            oauth_flow_key!(),
            r#"\\?["'][ \t]*:|\([ \t]*["']"#,
            oauth_flow_key!(),
            r#"["'][ \t]*,)[ \t]*"#,
            quoted_value!()
        ),
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // … and as `key=value` / `key: value` (a bare `state` only with `=`, which the URL row
    // above covers: "state: ready" is prose).
    Builtin {
        name: "oauth",
        anchors: &["nonce", "verifier", "challenge", "pkce", "_state", "-state", ".state"],
        regex: r#"(?i-u)(?:^|[^A-Za-z0-9_.-])(?:(?:oauth|oidc|sso|login|auth)[_.-]state|[A-Za-z0-9_.-]*(?:nonce|code[_-]?verifier|code[_-]?challenge|pkce)[A-Za-z0-9_.-]*)(?:=|:[ \t]*)(?:"(?P<dq>(?:[^"\\\r\n]|\\.)+)"|'(?P<sq>(?:[^'\\\r\n]|\\.)+)'|(?P<s>[^\s&;,"'<>(){}\[\]]+))"#,
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // `Cookie:` / `Set-Cookie:` headers, also as `'HTTP_COOKIE': '…'`.
    Builtin {
        name: "cookie",
        anchors: &["cookie"],
        regex: r#"(?i-u)(?:^|[^a-z0-9-])(?:set-)?cookies?["']?[ \t]*[:=][ \t]*["']?(?P<c>[^\r\n"']+)"#,
        secret: Secret::CookieValues,
        check: Some(not_redacted),
        requires: None,
    },
    // `Bearer <token>` anywhere (prose "bearer token" is left alone).
    Builtin {
        name: "bearer",
        anchors: &["bearer"],
        regex: r"(?i-u)\bbearer[ \t]+(?P<s>[A-Za-z0-9._~+/=-]{8,})",
        secret: Secret::Named,
        check: Some(looks_like_token),
        requires: None,
    },
    // `Authorization: <scheme> <credentials>`, also `'HTTP_AUTHORIZATION': '…'`.
    Builtin {
        name: "authorization",
        anchors: &["authorization"],
        regex: r#"(?i-u)(?:^|[^a-z0-9-])(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?(?:(?:basic|bearer|token|digest|negotiate|aws4-hmac-sha256)[ \t]+)?(?P<s>[^\r\n"']+)"#,
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // AWS secret access keys in context (env, config, JSON from STS).
    Builtin {
        name: "aws_secret",
        anchors: &["secret"],
        regex: concat!(
            r#"(?i-u)aws_?secret_?(?:access_?)?key["']?[ \t]*[:=][ \t]*"#,
            r#"(?:"(?P<dq>[^"\r\n]+)"|'(?P<sq>[^'\r\n]+)'|(?P<s>[^\s"',;&]+))"#
        ),
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // `*token*`, `*secret*`, `password`, `session*` keys, three spellings:
    // JSON / Python repr (`"k": "v"`, `'k': 'v'`, `('k', 'v')`) …
    Builtin {
        name: "secret",
        anchors: SECRET_KEY_ANCHORS,
        regex: concat!(
            r#"(?i-u)(?:\\?["']"#,
            secret_key!(),
            r#"\\?["'][ \t]*:|\([ \t]*["']"#,
            secret_key!(),
            r#"["'][ \t]*,)[ \t]*"#,
            quoted_value!()
        ),
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // … and `key=value`, `key="v"`, `Key: value` (headers, logfmt, env).
    Builtin {
        name: "secret",
        anchors: SECRET_KEY_ANCHORS,
        regex: concat!(
            r#"(?i-u)(?:^|[^A-Za-z0-9_.-])"#,
            secret_key!(),
            r#"(?:=|:[ \t]*)(?:"(?P<dq>(?:[^"\\\r\n]|\\.)+)"|'(?P<sq>(?:[^'\\\r\n]|\\.)+)'|(?P<s>[^\s&;,"'<>(){}\[\]]+))"#
        ),
        secret: Secret::Named,
        check: Some(not_redacted),
        requires: None,
    },
    // JSON Web Tokens (header and payload are base64url JSON objects).
    Builtin {
        name: "jwt",
        anchors: &["eyj"],
        regex: r"(?-u)\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
        secret: Secret::Whole,
        check: None,
        requires: None,
    },
    // AWS access key ids (long-term AKIA, temporary ASIA, and the other
    // documented unique-id prefixes).
    Builtin {
        name: "aws_key_id",
        anchors: &["akia", "asia", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "abia", "acca"],
        regex: r"(?-u)\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b",
        secret: Secret::Whole,
        check: None,
        requires: None,
    },
    // `scheme://user:password@host`: the password goes, the user stays.
    Builtin {
        name: "userinfo",
        // `@` is rarer than `://` in access logs (every referrer has one).
        anchors: &["@"],
        regex: r#"(?i-u)\b[a-z][a-z0-9+.-]*://[^/@\s:"'<>]*:(?P<s>[^/@\s"'<>]+)@"#,
        secret: Secret::Named,
        check: None,
        requires: Some(b"://"),
    },
];

/// A value the engine wrote before is not a new secret (keeps a second pass
/// over redacted text idempotent).
pub fn not_redacted(v: &[u8]) -> bool {
    !v.starts_with(b"[REDACTED")
}

/// `Bearer <x>`: a token, not a word. Tokens carry digits or symbols, or are
/// long; "Bearer authentication" is prose.
pub fn looks_like_token(v: &[u8]) -> bool {
    not_redacted(v) && (v.len() >= 20 || v.iter().any(|b| b.is_ascii_digit() || b"._~+/=-".contains(b)))
}

/// Cookie attributes whose values are not secrets.
pub const COOKIE_ATTRIBUTES: &[&str] =
    &["path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority", "partitioned"];
