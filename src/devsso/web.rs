//! Request and response plumbing for the dev SSO's endpoints: parameter
//! parsing (repeats refused), the loopback check for redirect targets, Basic
//! client credentials, HTML escaping, and the JSON / HTML / redirect
//! responses (all `Cache-Control: no-store`; pages under a strict CSP).
//!
//! Neighbours: only `endpoints` uses it.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use url::{form_urlencoded, Host, Url};

pub(crate) type Body = Full<Bytes>;

/// Request parameters (query or form); a repeated name is an error (RFC 6749
/// 3.1), an empty value counts as absent.
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(input: &[u8]) -> Result<Params, String> {
        let mut v: Vec<(String, String)> = Vec::new();
        for (k, val) in form_urlencoded::parse(input) {
            if v.iter().any(|(seen, _)| *seen == k) {
                return Err(k.into_owned());
            }
            v.push((k.into_owned(), val.into_owned()));
        }
        Ok(Params(v))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

/// A redirect target this provider accepts: http(s) on 127.0.0.0/8, `::1` or
/// `localhost`, any port and path, no credentials, no fragment.
pub(crate) fn loopback_url(s: &str) -> Option<Url> {
    let u = Url::parse(s).ok()?;
    let host_ok = match u.host()? {
        Host::Domain(d) => d == "localhost",
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    let clean = u.username().is_empty() && u.password().is_none() && u.fragment().is_none();
    (matches!(u.scheme(), "http" | "https") && host_ok && clean).then_some(u)
}

/// `Authorization: Basic` → (client_id, secret), each form-decoded (RFC 6749 2.3.1).
pub(crate) fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    let (scheme, b64) = v.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let decode = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((decode(id)?, decode(secret)?))
}

/// Compares digests, so the time taken says nothing about the secret.
pub(crate) fn eq_digest(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) use crate::status::esc;

pub(crate) fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body)
}

pub(crate) fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = response(status, "application/json", v.to_string());
    r.headers_mut().insert("pragma", HeaderValue::from_static("no-cache"));
    r
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    json(status, &json!({"error": error, "error_description": description}))
}

pub(crate) fn invalid_client() -> Response<Body> {
    let mut r = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="barge2rail dev SSO""#));
    r
}

pub(crate) fn page(status: StatusCode, body_html: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>barge2rail dev SSO</title>\n\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}li{{margin:.4em 0}}\
         .email,.role{{color:#555;margin-left:.5em}}</style></head>\n<body>\n{body_html}</body></html>\n"
    );
    let mut r = response(status, "text/html; charset=utf-8", html);
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

pub(crate) fn error_page(message: &str) -> Response<Body> {
    let body = format!("<h1>barge2rail dev SSO</h1>\n<p id=\"error\">{}</p>\n", esc(message));
    page(StatusCode::BAD_REQUEST, &body)
}

/// 302 to a validated URL plus `extra` and `state` query parameters.
pub(crate) fn redirect_to(url: &Url, extra: &[(&str, &str)], state: Option<&str>) -> Response<Body> {
    let mut u = url.clone();
    if !extra.is_empty() || state.is_some() {
        let mut q = u.query_pairs_mut();
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    let mut r = response(StatusCode::FOUND, "text/plain; charset=utf-8", "");
    match HeaderValue::try_from(u.as_str()) {
        Ok(v) => {
            r.headers_mut().insert(LOCATION, v);
            r
        }
        Err(_) => error_page("redirect_uri cannot be used in a Location header"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_url_rows() {
        let rows: &[(&str, bool)] = &[
            ("http://127.0.0.1:8080/auth/callback/", true),
            ("http://localhost/cb", true),
            ("http://[::1]:9/x?y=1", true),
            ("https://127.0.0.2/", true),
            ("http://127.0.0.1.evil.com/", false),
            ("http://evil.com/?127.0.0.1", false),
            ("http://localhost.evil.com/", false),
            ("http://user:pw@127.0.0.1/", false),
            ("http://127.0.0.1/#frag", false),
            ("https://prt.barge2rail.com/auth/callback/", false),
            ("javascript:alert(1)//127.0.0.1", false),
            ("//127.0.0.1/", false),
            ("ftp://127.0.0.1/", false),
            ("", false),
        ];
        for (s, want) in rows {
            assert_eq!(loopback_url(s).is_some(), *want, "{s}");
        }
    }

    #[test]
    fn basic_auth_rows() {
        let hv = |s: &str| HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(s))).unwrap();
        assert_eq!(parse_basic(&hv("prt-gate-dev:dev-secret")), Some(("prt-gate-dev".into(), "dev-secret".into())));
        assert_eq!(parse_basic(&hv("a%3Ab:c+d")), Some(("a:b".into(), "c d".into())));
        assert_eq!(parse_basic(&hv("nocolon")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")), None);
    }

    #[test]
    fn escaping() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
