//! Header hygiene between client and upstream (SPEC 3 step 7, SPEC 8).
//!
//! * hop-by-hop headers are removed, after removing the headers a
//!   `Connection` header nominates — except protected ones, which a client
//!   must not be able to make the gate drop (framing, identity, forwarding);
//! * the `X-Forwarded-*` family is believed only from `gate.trusted_proxies`;
//! * `X-Request-Id` is kept only from a trusted proxy, else generated;
//! * headers that make some server reinterpret the request (original-path, HTTPS-flag,
//!   client-IP and method-override look-alikes) are never forwarded, whoever sends them.
//!
//! Pure functions over `HeaderMap`s.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Standard hop-by-hop headers (RFC 9110 7.6.1, plus the non-standard
/// `proxy-connection` and `keep-alive`).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a `Connection` nomination may never remove: message framing and
/// the headers the gate's security decisions rest on.
const PROTECTED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "authorization",
    "cookie",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];

/// Forwarding headers believed only from trusted proxies.
const FORWARDING: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-real-ip",
    "forwarded",
];

/// Never forwarded, from anyone: a framework or middleware that honours one of these would
/// route, authorize or log something other than what the gate checked (original path,
/// method override), believe the request came over HTTPS, or believe another client
/// address. `X-Real-IP` is in [`FORWARDING`] (kept from trusted proxies only).
const NEVER_FORWARDED: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-envoy-original-path",
    "x-forwarded-ssl",
    "x-forwarded-protocol",
    "x-forwarded-scheme",
    "front-end-https",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Removes every [`NEVER_FORWARDED`] header (all copies).
pub fn strip_never_forwarded(headers: &mut HeaderMap) {
    for name in NEVER_FORWARDED {
        // no alloc: remove() with a &'static str looks the name up in place.
        headers.remove(*name);
    }
}

pub fn is_protected(name: &str) -> bool {
    PROTECTED.contains(&name) || crate::identity::is_reserved(name)
}

/// Removes `Connection`-nominated headers (unless protected), then the
/// standard hop-by-hop set.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        // Rare path (HTTP/1.1 keep-alive is the default): small allocation is fine.
        let nominated: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !is_protected(n.as_str()))
            .collect();
        for name in nominated {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        // no alloc: remove() with a &'static str looks the name up in place.
        headers.remove(*name);
    }
}

/// The facts about the client connection that forwarding headers describe.
pub struct Forwarding<'a> {
    pub peer: IpAddr,
    pub trusted: bool,
    /// `Host` the client addressed (already validated).
    pub host: &'a HeaderValue,
}

/// Sets `X-Forwarded-For/Proto/Host`. From an untrusted peer every client
/// copy of the forwarding family is discarded first; from a trusted proxy the
/// chain is extended with the proxy's address and Proto/Host are kept.
pub fn set_forwarding(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    if !f.trusted {
        for name in FORWARDING {
            headers.remove(*name);
        }
    }
    let peer = f.peer.to_string();
    let xff = match joined(headers, &X_FORWARDED_FOR) {
        Some(chain) if f.trusted => format!("{chain}, {peer}"),
        _ => peer,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        headers.insert(X_FORWARDED_HOST, f.host.clone());
    }
}

/// All lines of `name` joined with ", " (`None` if absent or not text).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out = String::new();
    for v in headers.get_all(name) {
        let s = v.to_str().ok()?.trim();
        if s.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(s);
    }
    (!out.is_empty()).then_some(out)
}

/// Accepts an inbound request id only if it is short and plain.
pub fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// A fresh 128-bit request id as 32 lowercase hex characters.
pub fn new_request_id() -> HeaderValue {
    let n: u128 = rand::random();
    let mut buf = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        let shift = 124 - 4 * i;
        *b = HEX[((n >> shift) & 0xf) as usize];
    }
    // no alloc beyond the HeaderValue itself.
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// HTTP/2 clients may split `Cookie` into several fields (RFC 9113 8.2.3);
/// an HTTP/1.1 upstream expects one, joined with "; ".
pub fn merge_cookies(headers: &mut HeaderMap) {
    let mut it = headers.get_all(header::COOKIE).iter();
    if it.next().is_none() || it.next().is_none() {
        return;
    }
    let merged: Vec<&[u8]> = headers.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes).collect();
    let merged = merged.join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&merged) {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn connection_nominations_are_honoured_except_protected() {
        let mut h = map(&[
            ("connection", "close, x-custom, Content-Length, cookie, x-forwarded-for, x-tenant-id"),
            ("connection", "x-other"),
            ("x-custom", "1"),
            ("x-other", "1"),
            ("content-length", "5"),
            ("cookie", "a=b"),
            ("x-forwarded-for", "1.2.3.4"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["accept", "content-length", "cookie", "x-forwarded-for"]);
    }

    #[test]
    fn untrusted_peer_cannot_set_forwarding_headers() {
        let host = HeaderValue::from_static("prt.example");
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-prefix", "/admin"),
        ]);
        set_forwarding(&mut h, &Forwarding { peer: "10.1.1.1".parse().unwrap(), trusted: false, host: &host });
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.1.1.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "prt.example");
        assert!(h.get("x-real-ip").is_none() && h.get("forwarded").is_none() && h.get("x-forwarded-prefix").is_none());
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn trusted_proxy_chain_is_extended() {
        let host = HeaderValue::from_static("internal:8080");
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "prt.example"),
        ]);
        set_forwarding(&mut h, &Forwarding { peer: "10.0.0.3".parse().unwrap(), trusted: true, host: &host });
        assert_eq!(h.get("x-forwarded-for").unwrap(), "203.0.113.9, 10.0.0.2, 10.0.0.3");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "prt.example");
    }

    #[test]
    fn request_ids() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(valid_request_id(&a));
        for (v, ok) in [("abc-123", true), ("a.b:c_d", true), ("", false), ("a b", false), ("<script>", false)] {
            assert_eq!(valid_request_id(&HeaderValue::from_str(v).unwrap()), ok, "{v:?}");
        }
        assert!(!valid_request_id(&HeaderValue::from_str(&"a".repeat(129)).unwrap()));
    }

    #[test]
    fn cookies_merged_for_http1_upstream() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        merge_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), vec!["a=1; b=2"]);
    }
}
