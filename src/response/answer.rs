//! The gate's answers to policy verdicts that do not forward (design §6.1):
//!
//! * login — API or non-browser: 401 JSON
//!   `{"error":"unauthenticated","login":"/auth/login/"}`; browser page
//!   navigation: 302 to `/auth/login/?next=<path>`;
//! * deny — API: 403 JSON naming the roles the rule accepts (never anything
//!   about the caller); pages: a 403 HTML page;
//! * redirect — a role outside its page allow-list: 302 to its landing page
//!   (403 JSON for non-browser clients).
//!
//! Every answer carries the gate's security headers (`super::secure`).

use http::header::{self, HeaderValue, InvalidHeaderValue};
use http::{Response, StatusCode};

use super::{written, GateBody, HTML, JSON};
use crate::policy::{Denial, Role};

/// 302 to `location` (dropped if not a valid header value: never a half-built `Location`).
pub fn redirect(location: &str, rid: &HeaderValue) -> Response<GateBody> {
    found(HeaderValue::from_str(location), rid)
}

fn found(location: Result<HeaderValue, InvalidHeaderValue>, rid: &HeaderValue) -> Response<GateBody> {
    let mut resp = written(StatusCode::FOUND, "", bytes::Bytes::new(), rid);
    if let Ok(v) = location {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A media grant: 302 to the presigned URL, never cached (it is a bearer
/// credential) and never leaked through `Referer` by the page it opens. The
/// URL's own buffer becomes the `Location` value (checked, not copied).
pub fn media(location: String, rid: &HeaderValue) -> Response<GateBody> {
    let mut resp = found(HeaderValue::from_maybe_shared(bytes::Bytes::from(location)), rid);
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, private"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// Unauthenticated. `next` is the normalized path and query of the request.
pub fn login(browser: bool, next: &str, public_origin: Option<&str>, rid: &HeaderValue) -> Response<GateBody> {
    if browser {
        return redirect(&crate::gate_owned::login_location(public_origin, next), rid);
    }
    let body = "{\"error\":\"unauthenticated\",\"login\":\"/auth/login/\"}\n";
    let mut resp = written(StatusCode::UNAUTHORIZED, JSON, body, rid);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Session realm=\"prt-gate\""));
    resp
}

/// Forbidden by the policy.
pub fn deny(browser: bool, denial: &Denial, rid: &HeaderValue) -> Response<GateBody> {
    if browser {
        let body = "<!doctype html><html><head><meta charset=\"utf-8\"><title>403 Forbidden</title></head>\
                    <body><h1>403 Forbidden</h1><p>Your role does not give access to this page.</p>\
                    <p><a href=\"/\">Home</a> · <a href=\"/auth/logout/\">Sign out</a></p></body></html>\n";
        return written(StatusCode::FORBIDDEN, HTML, body, rid);
    }
    let roles: Vec<&str> =
        Role::ALL.into_iter().filter(|r| denial.required_roles().contains(*r)).map(Role::as_str).collect();
    let body = serde_json::json!({
        "error": "forbidden",
        "required_roles": roles,
        "rule": denial.rule().as_ref(),
    });
    written(StatusCode::FORBIDDEN, JSON, format!("{body}\n"), rid)
}

/// The role may not open this page: its landing page instead.
pub fn landing(
    browser: bool,
    to: &str,
    denial: &Denial,
    public_origin: Option<&str>,
    rid: &HeaderValue,
) -> Response<GateBody> {
    if browser {
        return redirect(&format!("{}{to}", public_origin.unwrap_or("")), rid);
    }
    deny(false, denial, rid)
}
