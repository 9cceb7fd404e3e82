//! Gate-owned routes (SPEC 3 step 3): login, callback, logout. These never
//! reach Django. (`/media/*` is gate-owned too, but only after the policy
//! has allowed the caller: see the pipeline.)

use http::{Request, StatusCode};

use super::body::GateBody;
use super::Gate;
use crate::config::Config;

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

pub async fn handle<B>(gate: &Gate, config: &Config, owned: Owned, req: &Request<B>) -> http::Response<GateBody> {
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
            resp
        }
        Owned::Logout => oidc.logout(&gate.store, req).await,
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
