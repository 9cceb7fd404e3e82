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
/// `connection` first: [`strip_hop_by_hop`] and [`strip_inbound`] rely on its index.
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

// `strip_hop_by_hop` and `strip_inbound` keep a bit per name.
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

/// What the inbound pass does with one request header name; each name is classified once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inbound {
    Keep,
    /// [`HOP_BY_HOP`]`[i]`.
    HopByHop(u8),
    /// [`NEVER_FORWARDED`].
    NeverForwarded,
    /// [`crate::identity::is_reserved`]: counted by the `stripped` metric.
    Reserved,
}

fn classify(name: &str) -> Inbound {
    if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name) {
        // HOP_BY_HOP.len() <= 32 (asserted above).
        return Inbound::HopByHop(i as u8);
    }
    if NEVER_FORWARDED.contains(&name) {
        return Inbound::NeverForwarded;
    }
    if crate::identity::is_reserved(name) {
        return Inbound::Reserved;
    }
    Inbound::Keep
}

/// The request's header hygiene in one pass over the names (design §3, §8): removes the
/// headers a `Connection` header nominates (unless protected), the hop-by-hop set,
/// every [`NEVER_FORWARDED`] header and every reserved identity name
/// ([`crate::identity::is_reserved`]), all copies of each. Returns how many reserved
/// names were removed (the `stripped` metric).
///
/// The common request carries none of them: one scan over the names, no hashing, no
/// allocation.
pub fn strip_inbound(headers: &mut HeaderMap) -> usize {
    let mut hop = 0u32;
    let mut other = false;
    for name in headers.keys() {
        match classify(name.as_str()) {
            Inbound::Keep => {}
            Inbound::HopByHop(i) => hop |= 1 << i,
            Inbound::NeverForwarded | Inbound::Reserved => other = true,
        }
    }
    if hop == 0 && !other {
        return 0;
    }
    if hop & 1 != 0 {
        remove_nominated(headers);
    }
    // Every name left that is not kept (nominations never remove a reserved name: it is
    // protected).
    let mut reserved = 0;
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| match classify(n.as_str()) {
            Inbound::Keep => false,
            Inbound::Reserved => {
                reserved += 1;
                true
            }
            Inbound::HopByHop(_) | Inbound::NeverForwarded => true,
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    reserved
}

pub fn is_protected(name: &str) -> bool {
    PROTECTED.contains(&name) || crate::identity::is_reserved(name)
}

/// Removes the non-protected, non-hop-by-hop names every `Connection` line nominates
/// (the hop-by-hop ones are removed with the rest of the set). An empty nomination (the
/// usual `keep-alive`) does not allocate.
fn remove_nominated(headers: &mut HeaderMap) {
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

/// Removes `Connection`-nominated headers (unless protected), then the
/// standard hop-by-hop set (responses; requests go through [`strip_inbound`]).
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
        // `Connection` (HOP_BY_HOP[0]) nominating other headers.
        remove_nominated(headers);
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
    let mut text = IpText::default();
    if !f.trusted {
        let peer = text.bytes(f.peer);
        if headers.keys().any(|n| FORWARDING.contains(&n.as_str())) {
            for name in FORWARDING {
                headers.remove(*name);
            }
        }
        // None of the family is left: the gate's three, no lookups first.
        if let Ok(v) = HeaderValue::from_bytes(peer) {
            headers.insert(X_FORWARDED_FOR, v);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        headers.insert(X_FORWARDED_HOST, f.host.clone());
        return;
    }
    let peer = text.of(f.peer);
    let xff = match joined(headers, &X_FORWARDED_FOR) {
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
            IpAddr::V4(_) => std::str::from_utf8(self.bytes(ip)).unwrap_or(""),
            IpAddr::V6(v6) => {
                self.owned = v6.to_string();
                &self.owned
            }
        }
    }

    /// [`IpText::of`] as bytes (no UTF-8 check for IPv4: the writers that copy it into
    /// bytes need none).
    pub fn bytes(&mut self, ip: IpAddr) -> &[u8] {
        let IpAddr::V4(v4) = ip else { return self.of(ip).as_bytes() };
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                self.buf[len] = b'.';
                len += 1;
            }
            // Three bytes written, the octet's length kept: the next `.` (or the end)
            // cuts what follows its digits.
            let [d0, d1, d2, n] = OCTETS[usize::from(octet)];
            self.buf[len..len + 3].copy_from_slice(&[d0, d1, d2]);
            len += usize::from(n);
        }
        &self.buf[..len]
    }
}

/// Each octet's decimal digits, left-aligned in three bytes, and how many there are.
const OCTETS: [[u8; 4]; 256] = {
    let mut t = [[b'0'; 4]; 256];
    let mut o = 0;
    while o < 256 {
        let digits = [b'0' + (o / 100) as u8, b'0' + (o / 10 % 10) as u8, b'0' + (o % 10) as u8];
        let n = if o >= 100 {
            3
        } else if o >= 10 {
            2
        } else {
            1
        };
        let mut i = 0;
        while i < n {
            t[o][i] = digits[3 - n + i];
            i += 1;
        }
        t[o][3] = n as u8;
        o += 1;
    }
    t
};

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

    /// One request carrying every class the inbound pass removes, each name twice
    /// (two lines, two spellings of the case), plus benign headers that must survive.
    #[test]
    fn inbound_pass_removes_every_class_and_counts_reserved() {
        let reserved: &[&str] =
            &["x-tenant-id", "x-tenant-name", "x-auth-email", "x-prt-assertion", "x-forwarded-user", "remote-user"];
        let underscored = ["x_tenant_id", "any_thing"];
        let mut pairs: Vec<(String, &str)> = Vec::new();
        for name in HOP_BY_HOP.iter().chain(NEVER_FORWARDED).chain(reserved).chain(&underscored) {
            let value = if *name == "connection" { "x-nominated, keep-alive" } else { "evil" };
            pairs.push((name.to_string(), value));
            pairs.push((name.to_ascii_uppercase(), value));
        }
        for (name, value) in [("x-nominated", "1"), ("accept", "*/*"), ("cookie", "a=b"), ("x-benign", "kept")] {
            pairs.push((name.to_string(), value));
        }
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut h = map(&refs);
        let counted = strip_inbound(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["accept", "cookie", "x-benign"]);
        assert_eq!(h.len(), 3, "every copy of a removed name goes");
        assert_eq!(counted, reserved.len() + underscored.len(), "the stripped metric counts reserved names");

        // Each class alone (so one class cannot hide behind another's slow path).
        let classes: [(&str, &[&str]); 3] =
            [("hop-by-hop", HOP_BY_HOP), ("never forwarded", NEVER_FORWARDED), ("reserved", reserved)];
        for (class, names) in classes {
            for name in names {
                let mut h = map(&[(name, "v"), (name, "w"), ("accept", "*/*")]);
                let counted = strip_inbound(&mut h);
                assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), vec!["accept"], "{class}: {name}");
                assert_eq!(counted, usize::from(class == "reserved"), "{class}: {name}");
            }
        }
        // Nothing to strip: untouched, nothing counted.
        let mut h = map(&[("accept", "*/*"), ("host", "prt.example"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(strip_inbound(&mut h), 0);
        assert_eq!(h.len(), 3);
    }

    /// `Connection` nominations in the inbound pass: honoured except for protected names,
    /// and a nominated identity name is removed as reserved (and counted) anyway.
    #[test]
    fn inbound_pass_connection_nominations() {
        let mut h = map(&[
            ("connection", "close, x-custom, Content-Length, cookie, x-forwarded-for, x-tenant-id"),
            ("x-custom", "1"),
            ("content-length", "5"),
            ("cookie", "a=b"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-tenant-id", "evil"),
            ("accept", "*/*"),
        ]);
        assert_eq!(strip_inbound(&mut h), 1);
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
    fn peer_addresses_are_written_like_display() {
        let rows =
            ["0.0.0.0", "1.2.3.4", "10.0.0.255", "127.0.0.1", "192.168.100.9", "255.255.255.255", "::1", "2001:db8::7"];
        for ip in rows {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::default().of(ip), ip.to_string());
            assert_eq!(IpText::default().bytes(ip), ip.to_string().as_bytes());
        }
        // Every octet value in every position (one, two and three digits side by side).
        for o in 0..=255u8 {
            for ip in [[o, 7, 10, 200], [99, o, 100, 5], [1, 255, o, 0], [100, 10, 1, o]] {
                let ip = IpAddr::from(ip);
                assert_eq!(IpText::default().bytes(ip), ip.to_string().as_bytes());
            }
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
