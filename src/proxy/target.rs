//! The request target, checked and built once (`parse` and `normalize` phases): the
//! `Host` to forward, the normalized path everything after sees, and the path and query
//! Django gets (OAuth parameters removed), which is also its request target (origin-form).
//!
//! * origin-form, or absolute-form naming this gate (never a forward-proxy request);
//! * exactly one valid `Host` (HTTP/2: `:authority`, and both agree when present),
//!   naming a host this gate serves; no `CONNECT`;
//! * a target no longer than `gate.max_uri_bytes`, measured before anything parses it;
//! * the one path canonicalization (`normalize`, design §6.3).

use std::borrow::Cow;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Uri, Version};

use crate::config::GateConfig;
use crate::normalize::{normalize, NormalizedPath};
use crate::response::{Internal, Malformed, Refusal};

/// A checked request target. `path` borrows the client's target (`raw` of [`check`]).
pub struct Target<'a> {
    /// The `Host` the upstream gets.
    pub host: HeaderValue,
    /// The canonical path: routing, policy, media keys, logs and the upstream see this one.
    pub path: NormalizedPath<'a>,
    /// The normalized path and the query without OAuth parameters, as forwarded (the
    /// upstream request target, origin-form) and logged.
    pub forwarded: PathAndQuery,
}

/// Checks the target of a request whose head is `parts` and builds everything the later
/// phases need from it. `raw` is the client's target (a clone of `parts.uri`, sharing its
/// bytes), which the normalized path borrows.
pub fn check<'a>(gate: &GateConfig, parts: &http::request::Parts, raw: &'a Uri) -> Result<Target<'a>, Refusal> {
    // An over-long target is refused before anything parses it (design §13); heads
    // beyond `max_header_bytes` never get here (431 from the server).
    if target_len(raw) > gate.max_uri_bytes {
        return Err(Refusal::UriTooLong);
    }
    let host = check_host(gate.public_url.as_ref().map(|p| &p.authority), parts)?;
    // Only the hosts this gate serves: a request for another name is never forwarded
    // (Django's ALLOWED_HOSTS is not the only check).
    if !gate.serves_host(host.as_bytes()) {
        // Named so an operator can add a legitimate one (a platform health check) to
        // `gate.allowed_hosts`; the value passed `Authority` parsing and the line is redacted.
        tracing::info!(host = host.to_str().unwrap_or("-"), "Host not served by this gate; refused");
        return Err(Refusal::Request(Malformed::HostNotServed));
    }
    // normalize: once, first. This one path is what routing, policy, logs and the
    // upstream request line all see (design §3).
    let path = normalize(raw.path()).map_err(Refusal::Path)?;
    let forwarded = path_and_query(raw, &path)?;
    Ok(Target { host, path, forwarded })
}

/// Length of the request target as the client sent it (origin or absolute
/// form), without allocating.
fn target_len(uri: &Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    scheme + authority + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

/// Validates the request target's form and `Host`, and returns the `Host` to forward.
fn check_host(public_authority: Option<&Authority>, parts: &http::request::Parts) -> Result<HeaderValue, Refusal> {
    if parts.method == Method::CONNECT {
        return Err(Refusal::Request(Malformed::Connect));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::Request(Malformed::MultipleHost));
    }
    if let Some(h) = host_header {
        parse_authority(h)?;
    }
    let target_authority = parts.uri.authority();
    match parts.version {
        Version::HTTP_2 | Version::HTTP_3 => {
            // :authority is the Host of HTTP/2; both present must agree.
            let Some(a) = target_authority else {
                return host_header.cloned().ok_or(Refusal::Request(Malformed::MissingAuthority));
            };
            if host_header.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())) {
                return Err(Refusal::Request(Malformed::HostAuthorityDisagree));
            }
            HeaderValue::from_str(a.as_str()).map_err(|_| Refusal::Request(Malformed::InvalidAuthority))
        }
        _ => {
            if let Some(a) = target_authority {
                // absolute-form: only for this gate, never a forward-proxy request.
                if !matches!(parts.uri.scheme_str(), Some("http" | "https")) || a.as_str().contains('@') {
                    return Err(Refusal::Request(Malformed::ForeignScheme));
                }
                let expected: Option<&[u8]> = match public_authority {
                    Some(p) => Some(p.as_str().as_bytes()),
                    None => host_header.map(HeaderValue::as_bytes),
                };
                if !expected.is_some_and(|e| e.eq_ignore_ascii_case(a.as_str().as_bytes())) {
                    return Err(Refusal::Request(Malformed::ForeignHost));
                }
                return HeaderValue::from_str(a.as_str()).map_err(|_| Refusal::Request(Malformed::InvalidAuthority));
            }
            match host_header {
                Some(h) => Ok(h.clone()),
                None if parts.version == Version::HTTP_10 => match public_authority {
                    Some(p) => HeaderValue::from_str(p.as_str()).map_err(|_| Refusal::Request(Malformed::MissingHost)),
                    None => Err(Refusal::Request(Malformed::MissingHost)),
                },
                None => Err(Refusal::Request(Malformed::MissingHost)),
            }
        }
    }
}

fn parse_authority(h: &HeaderValue) -> Result<Authority, Refusal> {
    let a = Authority::try_from(h.as_bytes()).map_err(|_| Refusal::Request(Malformed::InvalidHost))?;
    if a.as_str().contains('@') || a.as_str().is_empty() {
        return Err(Refusal::Request(Malformed::InvalidHost));
    }
    Ok(a)
}

/// The upstream path and query for a normalized path, without OAuth
/// parameters (design §9: `code`, `state` and tokens never reach Django).
fn path_and_query(target: &Uri, path: &NormalizedPath<'_>) -> Result<PathAndQuery, Refusal> {
    let query = target.query().map(strip_oauth_params);
    let query_unchanged = matches!(query, None | Some(Cow::Borrowed(_)));
    if path.is_unchanged() && query_unchanged {
        // no alloc: the target is already canonical; reuse its bytes.
        return target.path_and_query().cloned().ok_or(Refusal::Internal(Internal::MissingPath));
    }
    let text = match query.as_deref() {
        Some("") => path.as_str().to_owned(),
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    PathAndQuery::try_from(text).map_err(|_| Refusal::Internal(Internal::UnrepresentablePath))
}

/// Query parameters the gate never forwards: the OAuth authorization
/// response (`code`, `state`), tokens and client credentials. Names compare
/// case-insensitively after percent-decoding (`%63ode` is `code`).
pub const OAUTH_PARAMS: &[&str] = &[
    "code",
    "state",
    "session_state",
    "access_token",
    "refresh_token",
    "id_token",
    "id_token_hint",
    "token",
    "client_secret",
    "code_verifier",
    "client_assertion",
];

/// `query` without [`OAUTH_PARAMS`]; borrowed (no alloc) when none is there.
pub fn strip_oauth_params(query: &str) -> Cow<'_, str> {
    if crate::redact::disabled_for_test() {
        return Cow::Borrowed(query);
    }
    let is_oauth = |pair: &str| {
        let name = pair.split('=').next().unwrap_or("");
        let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        OAUTH_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(decoded.trim()))
    };
    if !query.split('&').any(is_oauth) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(query.split('&').filter(|p| !p.is_empty() && !is_oauth(p)).collect::<Vec<_>>().join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, host: &str) -> http::request::Parts {
        http::Request::get(target).header(header::HOST, host).body(()).unwrap().into_parts().0
    }

    /// One call gives the `Host`, the normalized path and the forwarded path and query
    /// (OAuth parameters gone), built from the normalized target — never from the raw one. Controls: a canonical target is reused as is; a foreign `Host` and
    /// a bad path are refused before anything is built.
    #[test]
    fn check_builds_the_target_once_from_the_normalized_path() {
        let toml = "[gate]\npublic_url = \"https://gate.example\"\nupstream = \"http://10.0.0.7:8000\"\n";
        let config = crate::config::Config::from_str_at(std::path::Path::new("t.toml"), toml).unwrap().0;
        let rows = [
            ("/a/./b//c/?code=x&page=2&state=y", "/a/b/c/", "/a/b/c/?page=2"),
            ("/api/x/?code=x", "/api/x/", "/api/x/"),
            ("/api/x/?page=2", "/api/x/", "/api/x/?page=2"),
        ];
        for (raw_target, path, forwarded) in rows {
            let parts = head(raw_target, "gate.example");
            let raw = parts.uri.clone();
            let t = check(&config.gate, &parts, &raw).unwrap();
            assert_eq!((t.host.to_str().unwrap(), t.path.as_str()), ("gate.example", path), "{raw_target}");
            assert_eq!(t.forwarded.as_str(), forwarded, "{raw_target}");
        }
        let parts = head("/api/x/?page=2", "gate.example");
        let raw = parts.uri.clone();
        let t = check(&config.gate, &parts, &raw).unwrap();
        assert!(t.path.is_unchanged() && std::ptr::eq(t.forwarded.as_str(), raw.path_and_query().unwrap().as_str()));
        let foreign = head("/api/x/", "other.example");
        let refused = check(&config.gate, &foreign, &foreign.uri);
        assert_eq!(refused.err(), Some(Refusal::Request(Malformed::HostNotServed)));
        let bad = head("/a/%2e%2e/%2F/", "gate.example");
        assert!(matches!(check(&config.gate, &bad, &bad.uri), Err(Refusal::Path(_))));
    }

    #[test]
    fn oauth_parameters_are_stripped_from_the_query() {
        let rows = [
            ("page=2", "page=2"),
            ("code=abc&state=xyz", ""),
            ("page=2&code=abc", "page=2"),
            ("access_token=t&q=bol&ID_TOKEN=x&%63ode=y&refresh_token&client_secret=s", "q=bol"),
            ("zipcode=60601&codes=1&statement=x", "zipcode=60601&codes=1&statement=x"),
            ("a=1&&token=x&b=2", "a=1&b=2"),
        ];
        for (input, expected) in rows {
            assert_eq!(strip_oauth_params(input), expected, "{input}");
        }
        assert!(matches!(strip_oauth_params("page=2&q=x"), Cow::Borrowed(_)));
    }
}
