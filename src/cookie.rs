//! The gate's cookies, in one place: the one parser of `Cookie` headers, the session
//! cookie (its name, `Set-Cookie` text, lookup), which names are the gate's (session and
//! per-login cookies), and keeping them from the upstream both ways.
//!
//! * [`pairs`] — `(name, value)` of every cookie a request brought, in order, without
//!   allocating. Names and values are trimmed of spaces and tabs and otherwise kept
//!   verbatim (a quoted value keeps its quotes); a segment without `=` is no cookie; a
//!   `Cookie` header that is not visible ASCII is skipped whole.
//! * [`CookieSpec::lookup`] — the session cookie and whether it came twice, in one pass.
//! * [`for_upstream`] / [`strip_set_cookie`] — the upstream never sees the gate's
//!   cookies and cannot set them.
//!
//! Users: `proxy::pipeline` (lookup), `proxy::auth` (session id), `proxy::forward`
//! (upstream request and response), `oidc::flow` (set, expire, every session id) and
//! `oidc::binding` (the per-login cookies). No cookie value is ever logged.

use http::header::{self, HeaderMap, HeaderValue};

use crate::config::Config;
use crate::session::{IdMemo, SessionId};

/// One `;`-separated segment of a `Cookie` header as `(name, value)`, both trimmed;
/// `None` without `=` (an empty segment, a bare word).
fn pair(segment: &str) -> Option<(&str, &str)> {
    let (name, value) = segment.split_once('=')?;
    Some((name.trim_ascii(), value.trim_ascii()))
}

/// The name a segment (of `Cookie`) or the first segment (of `Set-Cookie`) gives a
/// cookie: up to the first `=`, or all of it without one, trimmed.
fn name_of(segment: &str) -> &str {
    segment.split_once('=').map_or(segment, |(name, _)| name).trim_ascii()
}

/// `(name, value)` of every cookie in one `Cookie` header value, in order.
pub fn pairs_in(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(';').filter_map(pair)
}

/// `(name, value)` of every cookie across all `Cookie` headers (HTTP/2 clients may send
/// several), in order. No allocation.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(pairs_in)
}

/// The name a `Set-Cookie` value sets.
pub fn set_cookie_name(v: &HeaderValue) -> Option<&str> {
    Some(name_of(v.to_str().ok()?.split(';').next()?))
}

/// Name and attributes of the gate's session cookie; the per-login cookies
/// (`oidc::binding`) share its attributes.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    pub name: &'static str,
    pub secure: bool,
    pub max_age: u64,
}

/// The session cookie as a request brought it, found in one pass over its cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCookie<'a> {
    Absent,
    /// Exactly one; the value is not checked yet ([`SessionCookie::id`]).
    One(&'a str),
    /// Two or more (one tossed in from a sibling subdomain): never resolved by picking
    /// one. Nobody is authenticated, and the answer expires the cookie.
    Duplicated,
}

impl SessionCookie<'_> {
    /// The session id, if exactly one well-formed session cookie came.
    pub fn id(self) -> Option<SessionId> {
        match self {
            SessionCookie::One(v) => SessionId::parse(v),
            SessionCookie::Absent | SessionCookie::Duplicated => None,
        }
    }

    /// [`SessionCookie::id`], through the connection's memo of its last session id.
    pub fn id_via(self, memo: &IdMemo) -> Option<SessionId> {
        match self {
            SessionCookie::One(v) => memo.parse(v),
            SessionCookie::Absent | SessionCookie::Duplicated => None,
        }
    }

    pub fn duplicated(self) -> bool {
        self == SessionCookie::Duplicated
    }
}

impl CookieSpec {
    pub fn from_config(config: &Config) -> CookieSpec {
        let secure = config.session.cookie_secure;
        CookieSpec {
            // `__Host-` requires Secure, Path=/ and no Domain (design §5).
            name: if secure { "__Host-prt_session" } else { "prt_session" },
            secure,
            max_age: config.session.absolute_timeout.as_secs(),
        }
    }

    /// `Set-Cookie` text of every gate cookie: host-only, whole site, HttpOnly,
    /// SameSite=Lax, Secure when configured.
    pub(crate) fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!("{name}={value}; Path=/; HttpOnly{secure}; SameSite=Lax; Max-Age={max_age}");
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` for a new session.
    pub fn set(&self, id: &SessionId) -> HeaderValue {
        self.set_cookie(self.name, id.expose_cookie_value(), self.max_age)
    }

    /// `Set-Cookie` ending the session cookie.
    pub fn expire(&self) -> HeaderValue {
        self.set_cookie(self.name, "", 0)
    }

    /// The session cookie and whether it came more than once, in one pass and without
    /// allocating: the pipeline expires a duplicated cookie whatever the route, and
    /// authenticates with a single one only where the route needs it.
    pub fn lookup<'h>(&self, headers: &'h HeaderMap) -> SessionCookie<'h> {
        let mut found = SessionCookie::Absent;
        for (name, value) in pairs(headers) {
            if name == self.name {
                if found != SessionCookie::Absent {
                    return SessionCookie::Duplicated;
                }
                found = SessionCookie::One(value);
            }
        }
        found
    }

    /// Every well-formed session id the request carries (logout and a new login end
    /// them all).
    pub fn read_all(&self, headers: &HeaderMap) -> Vec<SessionId> {
        pairs(headers).filter(|(name, _)| *name == self.name).filter_map(|(_, v)| SessionId::parse(v)).collect()
    }

    /// Name prefix of the per-login cookies (`oidc::binding`).
    pub fn login_prefix(&self) -> &'static str {
        // `__Host-` requires Secure, Path=/ and no Domain: a sibling
        // subdomain cannot plant one.
        if self.secure {
            "__Host-prt_login_"
        } else {
            "prt_login_"
        }
    }

    /// Whether `name` is one of the gate's cookies (session or login).
    pub fn is_gate_cookie(&self, name: &str) -> bool {
        name == self.name || name.starts_with(self.login_prefix())
    }
}

/// The `Cookie` the upstream gets: one header (an HTTP/1.1 upstream expects one; HTTP/2
/// clients may split it, RFC 9113 8.2.3), joined with "; ", without the gate's cookies
/// (`is_gate`). A header that is not text drops `Cookie` whole rather than forward
/// something unparsed. No allocation when there is one header and no gate cookie.
pub fn for_upstream(h: &mut HeaderMap, is_gate: impl Fn(&str) -> bool) {
    let (mut headers, mut len) = (0, 0);
    let mut gate = false;
    for v in h.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else {
            h.remove(header::COOKIE);
            return;
        };
        headers += 1;
        len += s.len() + 2;
        gate = gate || s.split(';').any(|segment| is_gate(name_of(segment)));
    }
    if !gate {
        if headers > 1 {
            let all: Vec<&[u8]> = h.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes).collect();
            if let Ok(v) = HeaderValue::from_bytes(&all.join(&b"; "[..])) {
                h.insert(header::COOKIE, v);
            }
        }
        return;
    }
    let mut kept = String::new();
    let segments = h.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|s| s.split(';'));
    for segment in segments.map(str::trim_ascii).filter(|s| !s.is_empty() && !is_gate(name_of(s))) {
        if kept.is_empty() {
            kept.reserve(len); // one allocation, and none when only gate cookies came
        } else {
            kept.push_str("; ");
        }
        kept.push_str(segment);
    }
    if kept.is_empty() {
        h.remove(header::COOKIE);
        return;
    }
    match HeaderValue::from_str(&kept) {
        Ok(v) => {
            h.insert(header::COOKIE, v);
        }
        // Never expected (the segments came from text values): no gate cookie passes.
        Err(_) => {
            h.remove(header::COOKIE);
        }
    }
}

/// The upstream may not set (or clear) the gate's cookies (`is_gate`).
pub fn strip_set_cookie(h: &mut HeaderMap, is_gate: impl Fn(&str) -> bool) {
    let gate = |v: &HeaderValue| set_cookie_name(v).is_some_and(&is_gate);
    if !h.get_all(header::SET_COOKIE).iter().any(gate) {
        return;
    }
    let kept: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().filter(|v| !gate(v)).cloned().collect();
    h.remove(header::SET_COOKIE);
    for v in kept {
        h.append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests;
