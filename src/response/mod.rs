//! Every response the gate writes itself (the upstream's own answers pass through
//! `proxy::forward` instead): one module, named constructors, and one function,
//! [`secure`], that gives each of them the same security headers. The proxy and the
//! login flow both answer through here, so no page can miss a header.
//!
//! * [`login`], [`deny`], [`landing`] — the answers to policy verdicts that do not
//!   forward (design §6.1); [`media`] — the presigned media redirect;
//! * [`redirect`] — a bare 302 (login flow: to the SSO, to `next`, to the SSO's logout);
//! * [`page`] — a small HTML page with a fixed message (login-flow errors, 429, no SSO);
//!   [`logout_confirm`] — the sign-out confirmation;
//! * [`rescue`] — a [`Refusal`] (why the gate answered instead of the upstream) → status
//!   and body, in one place (linkerd2-proxy's `ServerRescue`);
//! * [`GateBody`] — the response body type: the upstream's stream or a small body the
//!   gate wrote.
//!
//! Every constructor takes the request id: the response carries it, and error bodies
//! name it. Bodies are fixed text; none echoes request or upstream data.

mod answer;
mod body;
mod pages;
mod rescue;

pub use answer::{deny, landing, login, media, redirect};
pub use body::GateBody;
pub use pages::{logout_confirm, page, too_many, Page};
pub use rescue::{rescue, Internal, Malformed, Refusal};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

/// The request id header: read from a trusted edge, sent upstream, and on every answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The headers every gate-written response carries, whatever its status or body:
/// never stored by a cache (gate answers depend on the caller's session), never
/// content-sniffed into something else, and named by the request id.
/// A constructor may narrow them further (a media grant is also `private` and sends no
/// `Referer`; the logout confirmation may not be framed).
fn secure(h: &mut HeaderMap, request_id: &HeaderValue) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_REQUEST_ID, request_id.clone());
}

/// The one place a gate-written response is built: status, body, content type (`""`
/// for none) and the security headers.
fn written(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
    request_id: &HeaderValue,
) -> Response<GateBody> {
    let mut resp = Response::new(GateBody::local(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if !content_type.is_empty() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    secure(h, request_id);
    resp
}

/// HTML pages and JSON bodies, by name.
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

#[cfg(test)]
mod tests;
