//! `Refusal` and `rescue`: the one place that maps a failure cause to a status
//! code and a body (linkerd2-proxy's `ServerRescue`). Bodies name the problem
//! class, never upstream details.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::{written, GateBody, HTML, JSON};
use crate::normalize::NormalizeError;

/// Why a request is malformed (400): the client sent something the gate will not guess at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("CONNECT is not supported")]
    Connect,
    #[error("multiple Host headers")]
    MultipleHost,
    #[error("missing :authority")]
    MissingAuthority,
    #[error("Host and :authority disagree")]
    HostAuthorityDisagree,
    #[error("invalid authority")]
    InvalidAuthority,
    #[error("absolute-form target with foreign scheme")]
    ForeignScheme,
    #[error("absolute-form target names another host")]
    ForeignHost,
    #[error("missing Host")]
    MissingHost,
    #[error("invalid Host")]
    InvalidHost,
    #[error("Host not served by this gate")]
    HostNotServed,
}

/// A failure inside the gate (500): building the upstream request from data the gate
/// owns or checked (the normalized target, the upstream URI, the caller's identity
/// headers, the assertion) failed. The client is not to blame, so never a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Internal {
    #[error("normalized target has no path")]
    MissingPath,
    #[error("normalized path and query not representable")]
    UnrepresentablePath,
    #[error("tenant id or name not representable as a header value")]
    TenantHeader,
    #[error("cannot sign the assertion")]
    AssertionSign,
}

/// Why the gate answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed path: {0}")]
    Path(NormalizeError),
    #[error("malformed request: {0}")]
    Request(Malformed),
    /// A failure inside the gate: nothing the client sent is wrong (500).
    #[error("internal failure: {0}")]
    Internal(Internal),
    #[error("request target longer than gate.max_uri_bytes")]
    UriTooLong,
    #[error("upstream refused the connection")]
    UpstreamConnect,
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("upstream failed")]
    UpstreamProtocol,
    #[error("session store unavailable")]
    StoreUnavailable,
    #[error("SSO unavailable")]
    SsoUnavailable,
    #[error("bearer token invalid")]
    BearerInvalid,
    #[error("bearer token grants no role for this application")]
    BearerNoRole,
    #[error("media key refused")]
    MediaKey,
    #[error("media object not found")]
    MediaMissing,
    #[error("media store unavailable")]
    MediaStore,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Path(_) | Refusal::Request(_) | Refusal::MediaKey => StatusCode::BAD_REQUEST,
            Refusal::UriTooLong => StatusCode::URI_TOO_LONG,
            Refusal::UpstreamConnect | Refusal::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::StoreUnavailable | Refusal::SsoUnavailable | Refusal::MediaStore => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::BearerInvalid => StatusCode::UNAUTHORIZED,
            Refusal::BearerNoRole => StatusCode::FORBIDDEN,
            Refusal::MediaMissing => StatusCode::NOT_FOUND,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code for JSON bodies and logs.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Path(_) | Refusal::Request(_) | Refusal::MediaKey => "bad_request",
            Refusal::UriTooLong => "uri_too_long",
            Refusal::UpstreamConnect | Refusal::UpstreamProtocol => "bad_gateway",
            Refusal::UpstreamTimeout => "gateway_timeout",
            Refusal::StoreUnavailable | Refusal::SsoUnavailable | Refusal::MediaStore => "unavailable",
            Refusal::BearerInvalid => "invalid_token",
            Refusal::BearerNoRole => "forbidden",
            Refusal::MediaMissing => "not_found",
            Refusal::Internal(_) => "internal",
        }
    }
}

/// Maps a refusal to the client-facing response. `html` selects a page for
/// browsers; everything else gets JSON.
pub fn rescue(refusal: Refusal, html: bool, request_id: &HeaderValue) -> Response<GateBody> {
    let status = refusal.status();
    let rid = request_id.to_str().unwrap_or("");
    let (content_type, body) = if html {
        let title = status.canonical_reason().unwrap_or("Error");
        (
            HTML,
            format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\
                 <body><h1>{code} {title}</h1><p>{msg}</p><p><small>Request id: {rid}</small></p></body></html>\n",
                code = status.as_u16(),
                msg = human(refusal),
            ),
        )
    } else {
        (
            JSON,
            format!(
                "{{\"error\":\"{}\",\"message\":\"{}\",\"request_id\":\"{rid}\"}}\n",
                refusal.code(),
                human(refusal)
            ),
        )
    };
    let mut resp = written(status, content_type, body, request_id);
    if refusal == Refusal::BearerInvalid {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    }
    resp
}

/// A fixed, human sentence per refusal. Never echoes request or upstream text.
fn human(r: Refusal) -> &'static str {
    match r {
        Refusal::Path(_) => "The request path is malformed or ambiguous.",
        Refusal::Request(_) => "The request is malformed.",
        Refusal::UriTooLong => "The request address is too long.",
        Refusal::UpstreamConnect | Refusal::UpstreamProtocol => "The application is unavailable.",
        Refusal::UpstreamTimeout => "The application did not answer in time.",
        Refusal::StoreUnavailable | Refusal::SsoUnavailable => {
            "Sign-in is temporarily unavailable; please retry shortly."
        }
        Refusal::BearerInvalid => "The bearer token is invalid or expired.",
        Refusal::BearerNoRole => "The bearer token grants no access to this application.",
        Refusal::MediaKey => "This document address is not valid.",
        Refusal::MediaMissing => "This document is not available.",
        Refusal::MediaStore => "Documents are temporarily unavailable; please retry shortly.",
        Refusal::Internal(_) => "The gate could not handle this request; please retry or report the request id.",
    }
}

#[cfg(test)]
mod tests {
    use super::{rescue, Internal, Malformed, Refusal};
    use http::header::HeaderValue;

    /// Internal failures answer 500 and name no cause; malformed requests stay 400.
    #[test]
    fn internal_is_500_malformed_is_400() {
        let rid = HeaderValue::from_static("rid-1");
        let rows = [
            (Refusal::Internal(Internal::TenantHeader), 500, "internal"),
            (Refusal::Internal(Internal::AssertionSign), 500, "internal"),
            (Refusal::Request(Malformed::MultipleHost), 400, "bad_request"),
            (Refusal::Request(Malformed::MissingHost), 400, "bad_request"),
        ];
        for (refusal, status, code) in rows {
            let resp = rescue(refusal, false, &rid);
            assert_eq!(resp.status().as_u16(), status, "{refusal}");
            assert_eq!(refusal.code(), code, "{refusal}");
            assert_eq!(resp.headers()["x-request-id"], "rid-1");
        }
        // The cause stays in the gate's log, never in the body.
        assert!(!super::human(Refusal::Internal(Internal::TenantHeader)).contains("tenant"));
    }
}
