//! Responses the gate writes itself, and `rescue`: the one place that maps a
//! failure cause to a status code and a body (linkerd2-proxy's
//! `ServerRescue`). Bodies name the problem class, never upstream details.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::GateBody;
use super::headers::X_REQUEST_ID;
use crate::normalize::NormalizeError;

/// Why the gate answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed path: {0}")]
    Path(NormalizeError),
    #[error("malformed request: {0}")]
    Request(&'static str),
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
            Refusal::UpstreamConnect | Refusal::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::StoreUnavailable | Refusal::SsoUnavailable | Refusal::MediaStore => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::BearerInvalid => StatusCode::UNAUTHORIZED,
            Refusal::BearerNoRole => StatusCode::FORBIDDEN,
            Refusal::MediaMissing => StatusCode::NOT_FOUND,
        }
    }

    /// Stable machine-readable code for JSON bodies and logs.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Path(_) | Refusal::Request(_) | Refusal::MediaKey => "bad_request",
            Refusal::UpstreamConnect | Refusal::UpstreamProtocol => "bad_gateway",
            Refusal::UpstreamTimeout => "gateway_timeout",
            Refusal::StoreUnavailable | Refusal::SsoUnavailable | Refusal::MediaStore => "unavailable",
            Refusal::BearerInvalid => "invalid_token",
            Refusal::BearerNoRole => "forbidden",
            Refusal::MediaMissing => "not_found",
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
            "text/html; charset=utf-8",
            format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\
                 <body><h1>{code} {title}</h1><p>{msg}</p><p><small>Request id: {rid}</small></p></body></html>\n",
                code = status.as_u16(),
                msg = human(refusal),
            ),
        )
    } else {
        (
            "application/json",
            format!(
                "{{\"error\":\"{}\",\"message\":\"{}\",\"request_id\":\"{rid}\"}}\n",
                refusal.code(),
                human(refusal)
            ),
        )
    };
    let mut resp = Response::new(GateBody::local(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_REQUEST_ID, request_id.clone());
    if refusal == Refusal::BearerInvalid {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    }
    resp
}

/// A fixed, human sentence per refusal. Never echoes request or upstream text.
fn human(r: Refusal) -> &'static str {
    match r {
        Refusal::Path(_) => "The request path is malformed or ambiguous.",
        Refusal::Request(_) => "The request is malformed.",
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
    }
}
