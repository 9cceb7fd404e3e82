//! Gate-owned routes (SPEC 3 step 3): login, callback, logout. These never
//! reach Django. (`/media/*` is gate-owned too, but only after the policy
//! has allowed the caller: see the pipeline.)
//!
//! Every finished login, refused login and logout writes one `audit` line
//! (`event = "login" | "login_refused" | "logout"`): the user's email, role
//! and tenant, `sid` (the session's short handle: a hash prefix, never the
//! cookie value; not named `session*`, which the redaction engine masks) and
//! the request id. No token, code or cookie value is ever logged.

use http::header::{self, HeaderValue};
use http::{Request, StatusCode};

use super::body::GateBody;
use super::Gate;
use crate::config::Config;
use crate::oidc::flow::LoginOutcome;
use crate::session::{SessionId, SessionStore};

/// Which gate-owned route a normalized path names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    Login,
    Callback,
    Logout,
}

impl Owned {
    /// Exact paths, with or without the trailing slash (Django's APPEND_SLASH
    /// would have redirected; the gate answers both directly).
    pub fn of(path: &str) -> Option<Owned> {
        match path.strip_suffix('/').unwrap_or(path) {
            "/auth/login" | "/login" => Some(Owned::Login),
            "/auth/callback" => Some(Owned::Callback),
            "/auth/logout" | "/logout" => Some(Owned::Logout),
            _ => None,
        }
    }

    pub fn rule(self) -> &'static str {
        match self {
            Owned::Login => "gate:login",
            Owned::Callback => "gate:callback",
            Owned::Logout => "gate:logout",
        }
    }
}

pub async fn handle<B>(
    gate: &Gate,
    config: &Config,
    owned: Owned,
    req: &Request<B>,
    request_id: &HeaderValue,
) -> http::Response<GateBody> {
    let Some(oidc) = gate.oidc.as_ref() else {
        return crate::oidc::flow::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "No SSO is configured for this gate (sso.base_url).",
        );
    };
    match owned {
        Owned::Login => oidc.login(&gate.store, req).await,
        Owned::Callback => {
            let (resp, outcome) = oidc.callback(&gate.store, &config.policy, req).await;
            gate.metrics.login(outcome.as_str());
            audit_callback(gate, config, outcome, &resp, request_id).await;
            resp
        }
        Owned::Logout => logout(gate, config, oidc, req, request_id).await,
    }
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
    let leaving = match gate.cookie.read(req.headers()) {
        Some(id) => gate.store.get(&id).await.ok().flatten().map(|r| (id.handle(), r)),
        None => None,
    };
    let resp = oidc.logout(&gate.store, req).await;
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
/// just created, found through its `Set-Cookie`), or why the login was refused.
async fn audit_callback(
    gate: &Gate,
    config: &Config,
    outcome: LoginOutcome,
    resp: &http::Response<GateBody>,
    request_id: &HeaderValue,
) {
    let rid = request_id.to_str().unwrap_or("-");
    if outcome != LoginOutcome::Ok {
        tracing::info!(target: "audit", event = "login_refused", reason = outcome.as_str(), request_id = rid);
        return;
    }
    let id = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(name, _)| name.trim() == gate.cookie.name)
        .and_then(|(_, value)| SessionId::parse(value.trim()));
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

#[cfg(test)]
mod tests {
    use super::Owned;

    #[test]
    fn owned_paths() {
        let rows = [
            ("/auth/login/", Some(Owned::Login)),
            ("/auth/login", Some(Owned::Login)),
            ("/login/", Some(Owned::Login)),
            ("/auth/callback/", Some(Owned::Callback)),
            ("/auth/logout/", Some(Owned::Logout)),
            ("/logout/", Some(Owned::Logout)),
            ("/auth/loginx/", None),
            ("/auth/", None),
            ("/api/auth/me/", None),
            ("/auth/login/x", None),
        ];
        for (p, o) in rows {
            assert_eq!(Owned::of(p), o, "{p}");
        }
    }
}
