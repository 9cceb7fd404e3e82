//! The route → role policy of `policy.toml` (design §6): which caller may send which request.
//!
//! * [`pattern`] parses rule paths (`/api/bol/{id}/`, `/media/{*key}`);
//! * [`rule`] holds the rule model (roles, methods, credential kinds, tenant match);
//! * [`matcher`] is the segment trie that finds the most specific route;
//! * [`compile`] validates `[[route]]` and `[roles]` into a [`Policy`], rejecting ties;
//! * [`decide`] turns a route and a caller into a [`Verdict`];
//! * [`diff`] compares two policies by asking both the same questions (`prt-gate diff`);
//! * [`explain`] is what `prt-gate explain` and the route-map table test run.
//!
//! The pipeline (`proxy`) asks [`Policy::route_for`] before authenticating (does this route
//! take a Bearer token or the session cookie? is it public?), then [`Route::decide`] with the
//! authenticated caller. Only this module can build a [`Permit`], and only for an
//! authenticated [`Principal`] with a known role; identity injection takes one as proof and
//! reads the principal from it. `config` compiles the policy once per file version and
//! keeps it behind an `Arc`, so a reload swaps one pointer.
//!
//! Pure: no I/O, no clock, no global state. Lookups and decisions borrow the
//! [`NormalizedPath`] and never allocate (cloning an `Arc<str>` rule id is a counter bump).

pub mod compile;
pub mod decide;
pub mod diff;
pub mod explain;
pub mod matcher;
pub mod pattern;
pub mod rule;

#[cfg(test)]
mod spec14_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;

use crate::normalize::NormalizedPath;

pub use compile::{PolicyDiag, PolicyInput};
pub use decide::{Denial, DenyReason, Permit, Principal, Verdict, Who};
pub use pattern::{Pattern, PatternError};
pub use rule::{Access, Auth, MethodSet, RawRoute, Role, RoleSet, Rule, TenantMatch};

/// Feature permissions of a caller: `feature → [permission, …]`
/// (`application_roles.primetrade.features`).
pub type Features = BTreeMap<String, Vec<String>>;

/// Rule id logged for `/api/*` requests that no rule matches.
pub const NO_RULE: &str = "no_rule";
/// Rule id logged for non-API requests that no rule matches (any authenticated session).
pub const DEFAULT_RULE: &str = "default";
/// Rule id logged when a role's page allow-list (`roles.pages`) refuses a page.
pub const PAGES_RULE: &str = "roles.pages";

/// Whether `path` is an API path (`/api` or under `/api/`): JSON answers, no redirects,
/// and the fail-closed `no_rule` default.
pub fn is_api(path: &NormalizedPath<'_>) -> bool {
    is_api_str(path.as_str())
}

fn is_api_str(p: &str) -> bool {
    p == "/api" || p.starts_with("/api/")
}

/// Rules of one route (one pattern shape), indexed by method.
#[derive(Debug, Clone, Default)]
struct RouteSlot {
    /// Method-specific rule per nameable method (`MethodSet` index).
    by_method: [Option<u32>; MethodSet::COUNT],
    /// The any-method rule.
    any: Option<u32>,
    /// Every rule of the route, in file order (for messages).
    rules: Vec<u32>,
}

/// A role's page allow-list.
#[derive(Debug, Clone)]
struct Pages {
    trie: matcher::Trie,
    patterns: Vec<Pattern>,
}

/// A compiled, immutable policy. Cheap to share (`Arc<Policy>`), rebuilt whole on reload.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    slots: Vec<RouteSlot>,
    trie: matcher::Trie,
    /// Landing page per role (`Role as usize`).
    landing: [Arc<str>; 4],
    /// Page allow-list per role; `None` = any page the rules allow.
    pages: [Option<Pages>; 4],
    no_rule: Arc<str>,
    default_rule: Arc<str>,
    pages_rule: Arc<str>,
}

/// What governs a request, found before authentication.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    policy: &'a Policy,
    kind: RouteKind<'a>,
    path: &'a str,
    api: bool,
    /// GET or HEAD: a browser navigation that may be redirected.
    navigation: bool,
}

#[derive(Debug, Clone, Copy)]
enum RouteKind<'a> {
    /// The rule that governs the request.
    Rule(&'a Rule),
    /// Rules exist for the path, none for the method (denied for everyone).
    MethodNotAllowed(&'a Rule),
    /// An `/api` path without a rule (denied for everyone).
    NoRuleApi,
    /// Any other path without a rule (any authenticated session).
    Default,
}

impl Policy {
    /// Finds what governs `method path`. No allocation.
    pub fn route_for<'a>(&'a self, method: &Method, path: &'a NormalizedPath<'_>) -> Route<'a> {
        let p = path.as_str();
        let api = is_api_str(p);
        let kind = match self.trie.find(p) {
            Some(slot) => {
                let s = &self.slots[slot as usize];
                let specific = MethodSet::index_of(method).and_then(|i| s.by_method[i]);
                match specific.or(s.any) {
                    Some(r) => RouteKind::Rule(&self.rules[r as usize]),
                    None => match s.rules.first() {
                        Some(&r) => RouteKind::MethodNotAllowed(&self.rules[r as usize]),
                        // The built-in `/api` slots hold no rules.
                        None if api => RouteKind::NoRuleApi,
                        None => RouteKind::Default,
                    },
                }
            }
            None if api => RouteKind::NoRuleApi,
            None => RouteKind::Default,
        };
        let navigation = *method == Method::GET || *method == Method::HEAD;
        Route { policy: self, kind, path: p, api, navigation }
    }

    /// `route_for` then `decide`, for callers that know the caller up front.
    pub fn decide<'w>(&self, method: &Method, path: &NormalizedPath<'_>, who: Who<'w>) -> Verdict<'w> {
        self.route_for(method, path).decide(who)
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Number of per-rule counter slots ([`Route::slot`]): the rules in file order, then
    /// the built-in `no_rule`, `default` and `roles.pages`.
    pub fn slot_count(&self) -> usize {
        self.rules.len() + 3
    }

    /// The metrics label of a slot: `METHODS /pattern` for a rule (unique in a policy:
    /// ties are refused), the built-in id for the others. Stable across reloads while the
    /// rule's methods and pattern stay the same.
    pub fn slot_label(&self, slot: usize) -> Option<String> {
        match slot.checked_sub(self.rules.len()) {
            None => self.rules.get(slot).map(Rule::label),
            Some(0) => Some(self.no_rule.to_string()),
            Some(1) => Some(self.default_rule.to_string()),
            Some(2) => Some(self.pages_rule.to_string()),
            Some(_) => None,
        }
    }

    /// The landing page of `role` (`roles.landing`; Client → `/client.html`, others → `/`).
    pub fn landing(&self, role: Role) -> &str {
        &self.landing[role as usize]
    }

    /// The page allow-list of `role`, if it has one.
    pub fn pages(&self, role: Role) -> Option<&[Pattern]> {
        self.pages[role as usize].as_ref().map(|p| p.patterns.as_slice())
    }

    fn page_allowed(&self, role: Role, path: &str) -> bool {
        match &self.pages[role as usize] {
            None => true,
            Some(p) => p.trie.find(path).is_some(),
        }
    }
}

impl<'a> Route<'a> {
    /// The rule that matched, if any (`None` for the defaults).
    pub fn rule(&self) -> Option<&'a Rule> {
        match self.kind {
            RouteKind::Rule(r) => Some(r),
            _ => None,
        }
    }

    /// The rule whose pattern matched, even when it does not allow the method.
    pub fn matched_rule(&self) -> Option<&'a Rule> {
        match self.kind {
            RouteKind::Rule(r) | RouteKind::MethodNotAllowed(r) => Some(r),
            _ => None,
        }
    }

    /// The rule id that will be logged for this request.
    pub fn rule_id(&self) -> &'a str {
        match self.kind {
            RouteKind::Rule(r) | RouteKind::MethodNotAllowed(r) => &r.id,
            RouteKind::NoRuleApi => &self.policy.no_rule,
            RouteKind::Default => &self.policy.default_rule,
        }
    }

    /// The counter slot of this route ([`Policy::slot_count`]), before the caller is known.
    pub fn slot(&self) -> usize {
        let n = self.policy.rules.len();
        match self.kind {
            RouteKind::Rule(r) | RouteKind::MethodNotAllowed(r) => r.index,
            RouteKind::NoRuleApi => n,
            RouteKind::Default => n + 1,
        }
    }

    /// The counter slot of the rule `verdict` names: the route's, or `roles.pages` when
    /// the role's page allow-list refused. No allocation (a pointer comparison).
    pub fn verdict_slot(&self, verdict: &Verdict<'_>) -> usize {
        if Arc::ptr_eq(verdict.rule(), &self.policy.pages_rule) {
            self.policy.rules.len() + 2
        } else {
            self.slot()
        }
    }

    /// The credential the pipeline must look for: `Bearer` means read the
    /// `Authorization: Bearer` JWT and ignore the cookie; `Session` means the cookie only.
    pub fn auth(&self) -> Auth {
        match self.rule().map(|r| &r.access) {
            Some(Access::Roles { auth, .. }) => *auth,
            _ => Auth::Session,
        }
    }

    /// No identity needed: the pipeline can skip authentication and sends no identity.
    pub fn is_public(&self) -> bool {
        matches!(self.rule().map(|r| &r.access), Some(Access::Public))
    }

    /// The request is decided without looking at the caller (public, `no_rule`, method
    /// not allowed): the pipeline need not authenticate.
    pub fn needs_identity(&self) -> bool {
        match self.kind {
            RouteKind::Rule(r) => !matches!(r.access, Access::Public),
            RouteKind::Default => true,
            RouteKind::MethodNotAllowed(_) | RouteKind::NoRuleApi => false,
        }
    }

    /// A bearer rule that forwards the verified `Authorization` header to the upstream.
    pub fn forwards_authorization(&self) -> bool {
        self.rule().is_some_and(|r| r.forward_authorization)
    }

    /// `/api` path: answers are JSON, never redirects.
    pub fn is_api(&self) -> bool {
        self.api
    }
}
