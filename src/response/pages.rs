//! The login flow's pages: a small HTML page with a fixed message (sign-in errors,
//! refused logins, too many attempts, no SSO), and the sign-out confirmation.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::{written, GateBody, HTML};

/// A page's status and fixed text. The login flow names what to show (`oidc::flow`),
/// this module writes it: `msg` is a constant, never request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub status: StatusCode,
    pub title: &'static str,
    pub msg: &'static str,
}

/// A small HTML page with a link back to the sign-in.
pub fn page(p: Page, rid: &HeaderValue) -> Response<GateBody> {
    let Page { status, title, msg } = p;
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\
         <h1>{title}</h1><p>{msg}</p><p><a href=\"/auth/login/\">Sign in again</a></p></body></html>\n"
    );
    written(status, HTML, body, rid)
}

/// The sign-out confirmation: a button that POSTs to `/auth/logout/`.
pub fn logout_confirm(status: StatusCode, rid: &HeaderValue) -> Response<GateBody> {
    let body = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign out</title></head><body>\
                <h1>Sign out</h1><p>Sign out of PrimeTrade on this browser?</p>\
                <form method=\"post\" action=\"/auth/logout/\"><button type=\"submit\" id=\"confirm-logout\">\
                Sign out</button></form></body></html>\n";
    let mut resp = written(status, HTML, body, rid);
    let h = resp.headers_mut();
    // Not framable: a click on the button must be the user's own.
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'"));
    resp
}

/// 429 for the login endpoints, with when to try again.
pub fn too_many(retry_after_secs: u64, rid: &HeaderValue) -> Response<GateBody> {
    let mut resp = page(
        Page {
            status: StatusCode::TOO_MANY_REQUESTS,
            title: "Too many sign-in attempts",
            msg: "Too many sign-in attempts from your network. Please wait a minute and try again.",
        },
        rid,
    );
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}
