//! Header hygiene between client and upstream (design §3, §8).
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

pub use crate::response::X_REQUEST_ID;
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Standard hop-by-hop headers (RFC 9110 7.6.1, plus the non-standard
/// `proxy-connection` and `keep-alive`).
/// `connection` first: [`strip_hop_by_hop`] relies on its index.
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

// `strip_hop_by_hop` keeps a bit per name.
const _: () = assert!(HOP_BY_HOP.len() <= 32);

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
    // One pass over the names (no hashing): which hop-by-hop names are
    // there at all. Most requests carry none; responses often `Connection`.
    let mut present = 0u32;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name.as_str()) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // `Connection` (HOP_BY_HOP[0]) nominating other headers. Nominated
        // hop-by-hop names go in the loop below; an empty `Vec` (the usual
        // `keep-alive`) does not allocate.
        let nominated: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(t)))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| !is_protected(n.as_str()))
            .collect();
        for name in nominated {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            // no alloc: remove() with a &'static str looks the name up in place.
            headers.remove(*name);
        }
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
    if !f.trusted && headers.keys().any(|n| FORWARDING.contains(&n.as_str())) {
        for name in FORWARDING {
            headers.remove(*name);
        }
    }
    let mut peer = IpText::default();
    let peer = peer.of(f.peer);
    let chain = if f.trusted { joined(headers, &X_FORWARDED_FOR) } else { None };
    let xff = match chain {
        Some(mut chain) => {
            chain.push_str(", ");
            chain.push_str(peer);
            HeaderValue::from_str(&chain)
        }
        None => HeaderValue::from_str(peer),
    };
    if let Ok(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        headers.insert(X_FORWARDED_HOST, f.host.clone());
    }
}

/// An IP address as text without `fmt` for IPv4 (the per-request case);
/// IPv6 goes through `Display`.
#[derive(Default)]
pub struct IpText {
    buf: [u8; 15],
    owned: String,
}

impl IpText {
    pub fn of(&mut self, ip: IpAddr) -> &str {
        match ip {
            IpAddr::V4(v4) => {
                let mut len = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.buf[len] = b'.';
                        len += 1;
                    }
                    let digits = [octet / 100, octet / 10 % 10, octet % 10];
                    let skip = if octet >= 100 {
                        0
                    } else if octet >= 10 {
                        1
                    } else {
                        2
                    };
                    for d in &digits[skip..] {
                        self.buf[len] = b'0' + d;
                        len += 1;
                    }
                }
                std::str::from_utf8(&self.buf[..len]).unwrap_or("")
            }
            IpAddr::V6(v6) => {
                self.owned = v6.to_string();
                &self.owned
            }
        }
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
    fn hop_by_hop_without_connection_and_keep_alive_nomination() {
        // No `Connection` header: the others still go.
        let mut h = map(&[("te", "trailers"), ("keep-alive", "timeout=5"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), vec!["accept"]);
        // `Connection: keep-alive, x-drop` removes x-drop and keep-alive, keeps the rest.
        let mut h =
            map(&[("connection", "keep-alive, x-drop"), ("x-drop", "1"), ("keep-alive", "5"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), vec!["accept"]);
        // Nothing hop-by-hop: untouched.
        let mut h = map(&[("accept", "*/*"), ("cookie", "a=b")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
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
    fn peer_addresses_are_written_like_display() {
        let rows =
            ["0.0.0.0", "1.2.3.4", "10.0.0.255", "127.0.0.1", "192.168.100.9", "255.255.255.255", "::1", "2001:db8::7"];
        for ip in rows {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::default().of(ip), ip.to_string());
        }
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
}
