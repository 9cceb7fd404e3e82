//! The `forward` phase: build the upstream request from the checked parts,
//! inject identity, send it on the pooled client, and shape the response.
//!
//! What reaches Django: the normalized path (never the raw one), the
//! client's headers minus hop-by-hop, reserved identity names, the gate's
//! cookies and any `Authorization`; plus `Host`,
//! `X-Forwarded-*`, `X-Request-Id` and — only with a policy `Permit` — the
//! identity headers and the signed `X-Prt-Assertion`.

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::auth::Caller;
use super::headers::{self, Forwarding, X_REQUEST_ID};
use super::pipeline::ConnInfo;
use super::{upstream, Gate};
use crate::config::Config;
use crate::cookie;
use crate::identity::{self, AssertionClaims, ASSERTION_ISSUER, ASSERTION_TTL_SECS};
use crate::metrics::UpstreamError;
use crate::normalize::NormalizedPath;
use crate::policy::Permit;
use crate::response::{GateBody, Internal, Refusal};

/// The upstream path and query for a normalized path, without OAuth
/// parameters (design §9: `code`, `state` and tokens never reach Django).
pub fn path_and_query(target: &Uri, path: &NormalizedPath<'_>) -> Result<PathAndQuery, Refusal> {
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

/// What the upstream request line and `Host` will be.
pub struct Upstream {
    pub path_and_query: PathAndQuery,
    pub host: HeaderValue,
    /// A bearer rule with `forward_authorization = true` verified this
    /// request's `Authorization`: the upstream gets it, unchanged.
    pub forward_authorization: bool,
}

/// Proof of authorization plus the verified caller it was issued for.
pub struct Identity<'a> {
    pub permit: &'a Permit,
    pub caller: &'a Caller,
}

pub struct Sent {
    pub result: Result<Response<GateBody>, Refusal>,
    pub upstream_latency: Option<Duration>,
}

#[allow(clippy::too_many_arguments)]
pub async fn send(
    gate: &Gate,
    config: &Config,
    conn: &ConnInfo,
    request_id: &HeaderValue,
    mut parts: http::request::Parts,
    body: Incoming,
    up: Upstream,
    identity: Option<Identity<'_>>,
    path: &NormalizedPath<'_>,
) -> Sent {
    let method = parts.method.clone();
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(config.gate.upstream.authority.clone());
    uri.path_and_query = Some(up.path_and_query);
    parts.uri = match Uri::from_parts(uri) {
        Ok(u) => u,
        Err(_) => return Sent { result: Err(Refusal::Internal(Internal::UpstreamTarget)), upstream_latency: None },
    };
    parts.version = Version::HTTP_11;
    let h = &mut parts.headers;
    cookie::for_upstream(h, |name| gate.cookie.is_gate_cookie(name));
    // The identity Django gets is the assertion: a consumed Bearer token, and
    // on cookie routes a browser's own `Authorization` (which the gate did
    // not check), never reach it. Only a bearer rule that forwards its
    // verified token lets the header through.
    if !up.forward_authorization {
        h.remove(header::AUTHORIZATION);
    }
    headers::set_forwarding(h, &Forwarding { peer: conn.peer.ip(), trusted: conn.trusted, host: &up.host });
    h.insert(header::HOST, up.host);
    h.insert(X_REQUEST_ID, request_id.clone());
    if let Some(id) = identity {
        if let Err(refusal) = inject(gate, config, h, &id, request_id, method.as_str(), path.as_str()) {
            return Sent { result: Err(refusal), upstream_latency: None };
        }
    }

    let sent = Instant::now();
    let result =
        tokio::time::timeout(config.gate.upstream_timeout, gate.client.request(Request::from_parts(parts, body))).await;
    let latency = sent.elapsed();
    let upstream_resp = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let refusal = upstream::classify(&e);
            gate.metrics.upstream_error(match refusal {
                Refusal::UpstreamConnect => UpstreamError::Connect,
                _ => UpstreamError::Protocol,
            });
            tracing::warn!(request_id = ?request_id, error = %e, "upstream request failed");
            return Sent { result: Err(refusal), upstream_latency: Some(latency) };
        }
        Err(_elapsed) => {
            gate.metrics.upstream_error(UpstreamError::Timeout);
            return Sent { result: Err(Refusal::UpstreamTimeout), upstream_latency: Some(latency) };
        }
    };
    gate.metrics.upstream_response(upstream_resp.status().as_u16(), latency);
    // The gate strips `Upgrade` from every request, so a `101 Switching Protocols` is an
    // upstream that switched on its own: never hand the client a raw tunnel.
    if upstream_resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        gate.metrics.upstream_error(UpstreamError::Protocol);
        tracing::warn!(request_id = ?request_id, "upstream answered 101 Switching Protocols; refused");
        return Sent { result: Err(Refusal::UpstreamProtocol), upstream_latency: Some(latency) };
    }

    // respond: stream the upstream body back; hop-by-hop headers are the
    // upstream's business, and the gate's cookie is the gate's alone.
    let (mut rparts, rbody) = upstream_resp.into_parts();
    headers::strip_hop_by_hop(&mut rparts.headers);
    // `Server`, `X-Powered-By` (configurable): the upstream's software is nobody's business.
    for name in &config.gate.hide_upstream_headers {
        rparts.headers.remove(name);
    }
    cookie::strip_set_cookie(&mut rparts.headers, |name| gate.cookie.is_gate_cookie(name));
    rparts.headers.insert(X_REQUEST_ID, request_id.clone());
    Sent { result: Ok(Response::from_parts(rparts, GateBody::upstream(rbody))), upstream_latency: Some(latency) }
}

/// Tenant, `X-Auth-*` and the signed assertion, from verified state only.
fn inject(
    gate: &Gate,
    config: &Config,
    h: &mut HeaderMap,
    id: &Identity<'_>,
    request_id: &HeaderValue,
    method: &str,
    path: &str,
) -> Result<(), Refusal> {
    let (subject, email, features, tenant_code) = match id.caller {
        Caller::Session { record, .. } => {
            (record.subject.as_str(), record.email.as_str(), &record.features, record.tenant_code.as_deref())
        }
        Caller::Bearer(b) => (b.subject.as_str(), b.email.as_str(), &b.features, b.tenant_code.as_deref()),
        // A permit is only issued to an authenticated caller.
        Caller::Anonymous => return Err(Refusal::Internal(Internal::PermitWithoutCaller)),
    };
    let role = id.permit.role().as_str();
    // The tenant fixed at login (session) or resolved now (Bearer); a caller
    // whose tenant cannot be resolved gets no identity and no request.
    let (tenant_id, tenant_name) = match (config.tenant.mode, id.caller) {
        (crate::config::TenantMode::Static, _) => (config.tenant.id.as_str(), config.tenant.name.as_str()),
        (_, Caller::Session { record, .. }) => (record.tenant_id.as_str(), record.tenant_name.as_str()),
        _ => config.tenant.resolve(tenant_code).ok_or(Refusal::BearerNoRole)?,
    };
    if config.tenant.mode == crate::config::TenantMode::Static {
        // no alloc: prebuilt header values.
        identity::inject_tenant(h, &config.tenant);
    } else {
        let (Ok(i), Ok(n)) = (HeaderValue::from_str(tenant_id), HeaderValue::from_str(tenant_name)) else {
            return Err(Refusal::Internal(Internal::TenantHeader));
        };
        h.insert(identity::X_TENANT_ID, i);
        h.insert(identity::X_TENANT_NAME, n);
    }
    if let Ok(v) = HeaderValue::from_str(email) {
        h.insert(identity::X_AUTH_EMAIL, v);
    }
    h.insert(identity::X_AUTH_ROLE, HeaderValue::from_static(role));
    if let Some(signer) = gate.assertion.as_ref() {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = AssertionClaims {
            iss: ASSERTION_ISSUER,
            aud: &config.assertion.audience,
            sub: subject,
            email,
            role,
            features,
            tenant_id,
            tenant_name,
            tenant_code,
            iat,
            exp: iat + ASSERTION_TTL_SECS,
            jti: request_id.to_str().unwrap_or(""),
            method,
            path,
        };
        let v = signer.sign(&claims).map_err(|_| Refusal::Internal(Internal::AssertionSign))?;
        h.insert(identity::X_PRT_ASSERTION, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
