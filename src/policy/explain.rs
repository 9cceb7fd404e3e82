//! `prt-gate explain`: what the policy decides for one request and what the gate would
//! answer. The route-map table test runs this same function, so the CLI, the tests and the
//! pipeline (which calls `route_for` → authenticate → `decide` in the same order) agree.
//!
//! Page or API: paths under `/api/` are API requests (JSON answers: 401, 403); other
//! paths are browser page requests (302 to login or to the landing page).

use std::sync::Arc;

use http::Method;
use serde::Serialize;

use super::rule::{Auth, Role};
use super::{is_api, Features, Policy, Verdict, Who};
use crate::normalize::NormalizedPath;

/// The caller to simulate.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    Anonymous,
    /// A caller with this role and features, presenting the credential the route asks for
    /// (session cookie, or Bearer JWT on `auth = "bearer"` routes).
    Role {
        role: Role,
        features: &'a Features,
    },
}

/// The outcome, with the fields of the JSON form.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    pub verdict: Verdict<'a>,
    /// The credential the route asks for (what the pipeline looks at).
    pub auth: Auth,
    pub status: u16,
    pub normalized_path: String,
    /// `file:line` of the deciding rule, when a rule decided.
    pub at: Option<String>,
    /// The matched rule's tenant match, if it has one.
    pub tenant: Option<TenantCheck>,
}

/// A tenant match as `explain` shows it: which parameter, its value in the path and the
/// caller's tenant code it must equal.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TenantCheck {
    pub param: String,
    pub value: String,
    /// The caller's tenant code; `None` for unscoped staff.
    pub caller: Option<String>,
    /// Unscoped staff pass (`tenant_unscoped = "any"`).
    pub unscoped_any: bool,
}

/// The JSON form (`--format json`), field order as in design §6.2.
#[derive(Debug, Serialize)]
pub struct ExplainJson<'a> {
    pub decision: &'static str,
    pub status: u16,
    pub rule: &'a str,
    pub normalized_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a TenantCheck>,
}

impl Explanation<'_> {
    pub fn rule(&self) -> &Arc<str> {
        self.verdict.rule()
    }

    /// `Location` of a redirect (landing page or login), relative to the gate.
    pub fn location(&self) -> Option<String> {
        self.location_at(None)
    }

    /// `Location` of a redirect as the gate answers it behind `public_origin`
    /// (`gate.public_url`): the login's comes from the function the pipeline's answer uses.
    pub fn location_at(&self, public_origin: Option<&str>) -> Option<String> {
        match &self.verdict {
            Verdict::Redirect { to, .. } if self.status == 302 => Some(format!("{}{to}", public_origin.unwrap_or(""))),
            Verdict::Login { .. } if self.status == 302 => {
                Some(crate::gate_owned::login_location(public_origin, &self.normalized_path))
            }
            _ => None,
        }
    }

    pub fn to_json(&self) -> String {
        self.to_json_at(None)
    }

    /// The JSON form with `Location` behind `public_origin` (see [`Self::location_at`]).
    pub fn to_json_at(&self, public_origin: Option<&str>) -> String {
        let location = self.location_at(public_origin);
        let j = ExplainJson {
            decision: self.verdict.decision(),
            status: self.status,
            rule: self.rule(),
            normalized_path: &self.normalized_path,
            location: location.as_deref(),
            tenant: self.tenant.as_ref(),
        };
        serde_json::to_string(&j).unwrap_or_default()
    }
}

/// Decides `method path` for `caller` without a tenant code (unscoped).
pub fn explain<'a>(policy: &Policy, method: &Method, path: &NormalizedPath<'_>, caller: Caller<'a>) -> Explanation<'a> {
    explain_in(policy, method, path, caller, None)
}

/// Decides `method path` for `caller` acting for tenant `tenant` exactly as the gate does.
pub fn explain_in<'a>(
    policy: &Policy,
    method: &Method,
    path: &NormalizedPath<'_>,
    caller: Caller<'a>,
    tenant: Option<&str>,
) -> Explanation<'a> {
    let route = policy.route_for(method, path);
    let auth = route.auth();
    let who = match caller {
        Caller::Anonymous => Who::Anonymous,
        Caller::Role { role, features } => Who::claims(auth, role, features),
    };
    let verdict = route.decide_in(who, tenant);
    let check = route.matched_rule().and_then(|r| r.tenant.as_ref()).map(|t| TenantCheck {
        param: t.param.to_string(),
        value: t.value(path.as_str()).unwrap_or("").to_string(),
        caller: tenant.map(str::to_string),
        unscoped_any: t.unscoped_any,
    });
    let at = route.matched_rule().filter(|r| Arc::ptr_eq(&r.id, verdict.rule())).map(|r| r.at.clone());
    let browser = !is_api(path);
    Explanation {
        status: verdict.status(browser).as_u16(),
        verdict,
        auth,
        normalized_path: path.as_str().to_string(),
        at,
        tenant: check,
    }
}
