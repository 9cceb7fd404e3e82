//! Answers the gate-owned routes: login, callback, logout (the list and
//! `Owned::of` live in `crate::gate_owned`). These never reach Django.
//! (`/media/*` is gate-owned too, but only after the policy has allowed the
//! caller: see the pipeline.)
//!
//! * Login and callback are rate-limited per client address
//!   (`proxy::ratelimit`): 429 with `Retry-After`.
//! * Logout changes state, so a cross-site page must not trigger it: `GET`
//!   shows a confirmation page whose button POSTs; a `POST` is obeyed only
//!   from the gate's own origin (`Sec-Fetch-Site: same-origin` or a matching
//!   `Origin`). `/logout/` behaves the same.
//!
//! The login flow (`oidc::flow`) says what to answer; this module writes it with
//! `crate::response`, like every other gate answer.
//!
//! Every finished login, refused login and logout writes one `audit` line
//! (`event = "login" | "login_refused" | "logout"`): the user's email, role
//! and tenant, `sid` (the session's short handle: a hash prefix, never the
//! cookie value; not named `session*`, which the redaction engine masks) and
//! the request id. No token, code or cookie value is ever logged.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::Gate;
use crate::config::Config;
pub use crate::gate_owned::Owned;
use crate::oidc::flow::{Answer, Callback, LoginOutcome, NO_SSO};
use crate::response::{self, GateBody};
use crate::session::SessionStore;

/// Answers a gate-owned route for a request from `client` (its address as
/// `ratelimit::client_ip` determined it).
pub async fn handle<B>(
    gate: &Gate,
    config: &Config,
    owned: Owned,
    client: IpAddr,
    req: &Request<B>,
    request_id: &HeaderValue,
) -> Response<GateBody> {
    if matches!(owned, Owned::Login | Owned::Callback) {
        if let Err(retry_after) = gate.login_limiter.check(client, config.gate.login_rate_limit) {
            gate.metrics.login_rate_limited();
            return response::too_many(retry_after.as_secs(), request_id);
        }
    }
    let Some(oidc) = gate.oidc.as_ref() else {
        return response::page(NO_SSO, request_id);
    };
    match owned {
        Owned::Login => write(oidc.login(&gate.store, req).await, request_id),
        Owned::Callback => {
            let Callback { answer, outcome, session } = oidc.callback(&gate.store, &config.policy, req).await;
            gate.metrics.login(outcome.as_str());
            audit_callback(gate, config, outcome, session, request_id).await;
            write(answer, request_id)
        }
        Owned::Logout if req.method() == Method::POST => {
            if same_origin(req.headers(), &oidc.public_origin) {
                logout(gate, config, oidc, req, request_id).await
            } else {
                response::logout_confirm(StatusCode::FORBIDDEN, request_id)
            }
        }
        Owned::Logout if matches!(*req.method(), Method::GET | Method::HEAD) => {
            response::logout_confirm(StatusCode::OK, request_id)
        }
        Owned::Logout => {
            let mut resp = response::logout_confirm(StatusCode::METHOD_NOT_ALLOWED, request_id);
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            resp
        }
    }
}

/// The login flow's answer as a response, with the cookies it sets or expires.
fn write(answer: Answer, request_id: &HeaderValue) -> Response<GateBody> {
    let (mut resp, cookies) = match answer {
        Answer::Redirect { location, cookies } => (response::redirect(&location, request_id), cookies),
        Answer::Page { page, cookies } => (response::page(page, request_id), cookies),
    };
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Ends the session (the flow's logout) and writes its audit line, naming who left.
async fn logout<B>(
    gate: &Gate,
    config: &Config,
    oidc: &crate::oidc::flow::Oidc,
    req: &Request<B>,
    request_id: &HeaderValue,
) -> http::Response<GateBody> {
    // Who is leaving: read before the flow deletes the session.
    let leaving = match gate.cookie.lookup(req.headers()).id() {
        Some(id) => gate.store.get(&id).await.ok().flatten().map(|r| (id.handle(), r)),
        None => None,
    };
    let resp = write(oidc.logout(&gate.store, req).await, request_id);
    let (handle, email, role, tenant) = match &leaving {
        Some((h, r)) => (h.as_str(), r.email.as_str(), r.role.as_str(), tenant_of(config, r)),
        None => ("", "", "", ""),
    };
    tracing::info!(
        target: "audit",
        event = "logout",
        user = email,
        role,
        tenant,
        sid = handle,
        request_id = request_id.to_str().unwrap_or("-"),
    );
    resp
}

/// The tenant an audit line names: the session's tenant code, else its tenant id.
fn tenant_of<'a>(config: &'a Config, r: &'a crate::session::SessionRecord) -> &'a str {
    config.tenant.caller_code(r.tenant_code.as_deref()).unwrap_or(&r.tenant_id)
}

/// The audit line of a callback: who signed in (read back from the session the callback
/// just created), or why the login was refused.
async fn audit_callback(
    gate: &Gate,
    config: &Config,
    outcome: LoginOutcome,
    id: Option<crate::session::SessionId>,
    request_id: &HeaderValue,
) {
    let rid = request_id.to_str().unwrap_or("-");
    if outcome != LoginOutcome::Ok {
        tracing::info!(target: "audit", event = "login_refused", reason = outcome.as_str(), request_id = rid);
        return;
    }
    let record = match &id {
        Some(id) => gate.store.get(id).await.ok().flatten(),
        None => None,
    };
    match (id, record) {
        (Some(id), Some(r)) => tracing::info!(
            target: "audit",
            event = "login",
            user = r.email.as_str(),
            role = r.role.as_str(),
            tenant = tenant_of(config, &r),
            sid = id.handle().as_str(),
            request_id = rid,
        ),
        // The session vanished between creation and this read: still one line.
        _ => tracing::info!(target: "audit", event = "login", user = "", sid = "", request_id = rid),
    }
}

/// A state-changing request came from a page of the gate's own origin. The
/// browser's `Sec-Fetch-Site` and `Origin` must both agree when present,
/// and one of them must be present.
fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    let one = |name: &str| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (None, _) => None,
            (Some(v), None) => Some(v.to_str().ok()),
            (Some(_), Some(_)) => Some(None),
        }
    };
    let fetch_site = one("sec-fetch-site");
    let origin = one("origin");
    if fetch_site.is_none() && origin.is_none() {
        return false;
    }
    fetch_site.is_none_or(|v| v == Some("same-origin"))
        && origin.is_none_or(|v| v.is_some_and(|o| o.eq_ignore_ascii_case(public_origin)))
}

#[cfg(test)]
mod tests {
    use super::same_origin;
    use http::header::{HeaderMap, HeaderValue};

    #[test]
    fn logout_post_only_from_the_gate_origin() {
        let public = "https://prt.example.com";
        let rows: &[(&[(&str, &str)], bool)] = &[
            (&[("origin", "https://prt.example.com")], true),
            (&[("origin", "HTTPS://PRT.EXAMPLE.COM")], true),
            (&[("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "same-origin"), ("origin", "https://prt.example.com")], true),
            (&[], false),
            (&[("origin", "https://evil.example")], false),
            (&[("origin", "null")], false),
            (&[("origin", "https://prt.example.com.evil.example")], false),
            (&[("sec-fetch-site", "cross-site")], false),
            (&[("sec-fetch-site", "same-site")], false),
            (&[("sec-fetch-site", "none")], false),
            (&[("sec-fetch-site", "cross-site"), ("origin", "https://prt.example.com")], false),
            (&[("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")], false),
            (&[("origin", "https://prt.example.com"), ("origin", "https://prt.example.com")], false),
        ];
        for (headers, ok) in rows {
            let mut h = HeaderMap::new();
            for (k, v) in *headers {
                h.append(*k, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(same_origin(&h, public), *ok, "{headers:?}");
        }
    }
}
