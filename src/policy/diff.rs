//! `prt-gate diff OLD NEW`: where two policies decide differently, found by asking both
//! compiled policies the same questions (never by comparing rule fields, so a new rule
//! attribute changes the answers, not this code).
//!
//! The questions: every caller of [`callers`] × every method of [`METHODS`] × every probe
//! path of [`probe_paths`]. The probe paths are each pattern of both files (rules and
//! `roles.pages`) instantiated, with and without the trailing slash, both files' landing
//! pages, and the defaults (an `/api` path and a page no rule names). A probe is reported
//! when its [`Outcome`] (decision, plus the landing page of a redirect) differs.

use http::Method;
use serde::Serialize;
use std::collections::BTreeSet;

use super::pattern::{Pattern, Segment};
use super::rule::{Access, Auth, Role};
use super::{Features, Policy, Verdict, Who};
use crate::normalize::normalize;

/// The methods every probe path is asked with.
pub const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

/// Paths no rule of a sensible policy names: the `no_rule` and `default` cases.
const DEFAULT_PROBES: [&str; 5] = ["/", "/api", "/api/", "/api/prt-gate-unmatched/", "/prt-gate-unmatched.html"];

/// A simulated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None`: no credential.
    pub role: Option<Role>,
    /// The credential presented (ignored for anonymous callers).
    pub auth: Auth,
    /// Holds every `feature:permission` either policy asks for (else none).
    pub features: bool,
    /// The caller's tenant code. Probe paths fill every parameter with [`PROBE_PARAM`], so
    /// `Own` matches a tenant constraint, `Other` does not, `Unscoped` is staff without one.
    pub tenant: Tenant,
}

/// The value every `{param}` of a probe path takes.
pub const PROBE_PARAM: &str = "1";

/// Which tenant a simulated caller acts for (asked only when a policy has tenant matches;
/// otherwise every caller is `Own`, which decides exactly as no tenant at all would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    Own,
    Other,
    Unscoped,
}

impl Tenant {
    fn code(self) -> Option<&'static str> {
        match self {
            Tenant::Own => Some(PROBE_PARAM),
            Tenant::Other => Some("OTHER"),
            Tenant::Unscoped => None,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Tenant::Own => "",
            Tenant::Other => ", other tenant",
            Tenant::Unscoped => ", no tenant",
        }
    }
}

impl Caller {
    /// `Client (session)`, `Admin (bearer, features)`, `anonymous`.
    pub fn label(&self) -> String {
        let t = self.tenant.suffix();
        match self.role {
            None => "anonymous".into(),
            Some(r) if self.features => format!("{r} ({}, features{t})", self.auth.as_str()),
            Some(r) => format!("{r} ({}{t})", self.auth.as_str()),
        }
    }
}

/// What a policy answers one probe with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// `allow`, `login`, `deny` or `redirect`.
    pub decision: &'static str,
    pub rule: String,
    /// The landing page of a redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Outcome {
    pub fn of(v: &Verdict<'_>) -> Outcome {
        let location = match v {
            Verdict::Redirect { to, .. } => Some(to.to_string()),
            _ => None,
        };
        Outcome { decision: v.decision(), rule: v.rule().to_string(), location }
    }

    /// Same answer for the caller (the deciding rule may differ).
    pub fn same_answer(&self, other: &Outcome) -> bool {
        self.decision == other.decision && self.location == other.location
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(to) => write!(f, "{} {to} [{}]", self.decision, self.rule),
            None => write!(f, "{} [{}]", self.decision, self.rule),
        }
    }
}

/// One probe whose answer changes.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub caller: String,
    pub method: String,
    pub path: String,
    pub old: Outcome,
    pub new: Outcome,
}

/// Every caller the diff simulates: anonymous, then each role with a session cookie and
/// with a Bearer token, and, when either policy asks for features, each of those again
/// holding all of them.
pub fn callers(old: &Policy, new: &Policy) -> (Vec<Caller>, Features) {
    let all = required_features(old, new);
    let tenants: &[Tenant] = if has_tenant_matches(old) || has_tenant_matches(new) {
        &[Tenant::Own, Tenant::Other, Tenant::Unscoped]
    } else {
        &[Tenant::Own]
    };
    let mut out = vec![Caller { role: None, auth: Auth::Session, features: false, tenant: Tenant::Own }];
    for role in Role::ALL {
        for auth in [Auth::Session, Auth::Bearer] {
            for &tenant in tenants {
                out.push(Caller { role: Some(role), auth, features: false, tenant });
                if !all.is_empty() {
                    out.push(Caller { role: Some(role), auth, features: true, tenant });
                }
            }
        }
    }
    (out, all)
}

fn has_tenant_matches(p: &Policy) -> bool {
    p.rules().iter().any(|r| r.tenant.is_some())
}

fn required_features(old: &Policy, new: &Policy) -> Features {
    let mut all = Features::new();
    for rule in old.rules().iter().chain(new.rules()) {
        if let Access::Roles { features, .. } = &rule.access {
            for (f, p) in features {
                let perms = all.entry(f.to_string()).or_default();
                if !perms.iter().any(|x| **x == **p) {
                    perms.push(p.to_string());
                }
            }
        }
    }
    all
}

/// The probe paths of both policies, sorted.
pub fn probe_paths(old: &Policy, new: &Policy) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = DEFAULT_PROBES.iter().map(|s| s.to_string()).collect();
    for policy in [old, new] {
        for rule in policy.rules() {
            instantiate(&rule.pattern, &mut out);
        }
        for role in Role::ALL {
            for p in policy.pages(role).unwrap_or(&[]) {
                instantiate(p, &mut out);
            }
            out.insert(policy.landing(role).to_string());
        }
    }
    // Only paths the gate would decide on as they are (normalized already).
    out.retain(|p| normalize(p).is_ok_and(|n| n.as_str() == p));
    out
}

/// Adds the paths `p` matches: parameters become `1`, a tail `x` and `x/y/`; each with
/// and without the trailing slash.
fn instantiate(p: &Pattern, out: &mut BTreeSet<String>) {
    let mut base = String::new();
    let mut tail = false;
    for seg in p.segments() {
        base.push('/');
        match seg {
            Segment::Exact(t) => base.push_str(t),
            Segment::Param(_) => base.push_str(PROBE_PARAM),
            Segment::CatchAll(_) => {
                base.push('x');
                tail = true;
            }
        }
    }
    if base.is_empty() {
        out.insert("/".into());
        return;
    }
    out.insert(format!("{base}/"));
    if tail {
        out.insert(format!("{base}/y/"));
    }
    out.insert(base);
}

/// Every probe whose answer differs between `old` and `new`, in caller, path, method order.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let (callers, all) = callers(old, new);
    let none = Features::new();
    let paths = probe_paths(old, new);
    let mut changes = Vec::new();
    for caller in &callers {
        let features = if caller.features { &all } else { &none };
        let who = match (caller.role, caller.auth) {
            (None, _) => Who::Anonymous,
            (Some(r), auth) => Who::claims(auth, r, features),
        };
        for path in &paths {
            let Ok(np) = normalize(path) else { continue };
            for method in &METHODS {
                let t = caller.tenant.code();
                let a = Outcome::of(&old.route_for(method, &np).decide_in(who, t));
                let b = Outcome::of(&new.route_for(method, &np).decide_in(who, t));
                if !a.same_answer(&b) {
                    changes.push(Change {
                        caller: caller.label(),
                        method: method.to_string(),
                        path: path.clone(),
                        old: a,
                        new: b,
                    });
                }
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyInput, RawRoute};
    use std::collections::BTreeMap;

    fn policy(features: &[&str]) -> Policy {
        let routes = vec![RawRoute {
            path: "/api/bol/{id}/".into(),
            methods: Some(vec!["PATCH".into()]),
            roles: vec!["Office".into()],
            features: features.iter().map(|f| f.to_string()).collect(),
            ..RawRoute::default()
        }];
        let (landing, pages) = (BTreeMap::new(), BTreeMap::new());
        Policy::compile(&PolicyInput { routes: &routes, landing: &landing, pages: &pages }, &|_| None).expect("valid").0
    }

    #[test]
    fn a_new_feature_requirement_shows_for_callers_without_it_only() {
        let (old, new) = (policy(&[]), policy(&["bol:edit"]));
        let rows: Vec<(String, String, String, &str, &str)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.caller, c.method, c.path, c.old.decision, c.new.decision))
            .collect();
        let row = |p: &str| ("Office (session)".to_string(), "PATCH".to_string(), p.to_string(), "allow", "deny");
        assert_eq!(rows, vec![row("/api/bol/1"), row("/api/bol/1/")]);
        // Control: the same policy twice changes nothing.
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn probes_cover_patterns_slash_variants_tails_and_defaults() {
        let routes = vec![RawRoute { path: "/kiosk/{*rest}".into(), public: true, ..RawRoute::default() }];
        let landing = BTreeMap::from([("Client".to_string(), "/portal.html".to_string())]);
        let pages = BTreeMap::new();
        let p = Policy::compile(&PolicyInput { routes: &routes, landing: &landing, pages: &pages }, &|_| None)
            .expect("valid")
            .0;
        let probes = probe_paths(&p, &policy(&[]));
        for want in [
            "/kiosk/x",
            "/kiosk/x/",
            "/kiosk/x/y/",
            "/api/bol/1",
            "/api/bol/1/",
            "/portal.html",
            "/api/prt-gate-unmatched/",
            "/prt-gate-unmatched.html",
            "/",
        ] {
            assert!(probes.contains(want), "{want} missing from {probes:?}");
        }
    }

    #[test]
    fn a_new_tenant_match_shows_for_foreign_and_unscoped_callers_only() {
        let pigiron = |tenant: Option<&str>| {
            let routes = vec![RawRoute {
                path: "/tenant/{code}/pigiron/".into(),
                methods: Some(vec!["GET".into()]),
                roles: vec!["Office".into()],
                tenant: tenant.map(str::to_string),
                ..RawRoute::default()
            }];
            let (landing, pages) = (BTreeMap::new(), BTreeMap::new());
            Policy::compile(&PolicyInput { routes: &routes, landing: &landing, pages: &pages }, &|_| None)
                .expect("valid")
                .0
        };
        let (old, new) = (pigiron(None), pigiron(Some("{code}")));
        let mut rows: Vec<(String, String, &str, &str)> = diff(&old, &new)
            .into_iter()
            .filter(|c| c.method == "GET")
            .map(|c| (c.caller, c.path, c.old.decision, c.new.decision))
            .collect();
        rows.sort();
        let mut want = Vec::new();
        for caller in ["Office (session, no tenant)", "Office (session, other tenant)"] {
            for path in ["/tenant/1/pigiron", "/tenant/1/pigiron/"] {
                want.push((caller.to_string(), path.to_string(), "allow", "deny"));
            }
        }
        assert_eq!(rows, want);
        // Control: without a tenant match in either file, tenants are not simulated.
        assert!(callers(&old, &old).0.iter().all(|c| c.tenant == Tenant::Own));
    }
}
