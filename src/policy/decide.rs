//! The decision: a [`Route`] found by the matcher plus the authenticated caller ([`Who`])
//! gives a [`Verdict`]. Order of the checks (design §6.1):
//!
//! 1. `/api` path without a rule, or a rule-covered path without a rule for the method:
//!    [`Verdict::Deny`] for everyone, anonymous included (logging in would not help).
//! 2. Public rule: [`Verdict::Public`], whoever asks.
//! 3. Anonymous: [`Verdict::Login`].
//! 4. Wrong credential kind for the rule (cookie on a Bearer route or the reverse), a role
//!    the gate does not know, a role not in the rule, a missing feature permission: denied.
//! 5. A tenant match (`tenant = "{code}"`) whose path parameter is not the caller's
//!    tenant code: denied (a 403, never a redirect). A caller without a tenant code
//!    (unscoped staff) is denied unless the rule says `tenant_unscoped = "any"`.
//! 6. Allowed by the rule or the default, but the role has a page allow-list
//!    (`roles.pages`) that does not cover this non-API path: denied.
//!
//! A denial of a browser navigation (GET/HEAD of a non-API path) becomes
//! [`Verdict::Redirect`] to the role's landing page, unless the caller is already there.
//! Nothing here allocates: verdicts carry `Arc<str>` clones, bitsets and the caller's
//! [`Principal`], borrowed.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use super::rule::{Access, Auth, Role, RoleSet};
use super::{Features, Route, RouteKind};

/// An authenticated caller: what its verified credential (the session record written at
/// login, or an SSO Bearer JWT) says it is. Borrowed from that credential, so building one
/// per request copies no string and no feature map; a [`Permit`] carries it from the
/// decision to identity injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The SSO subject (`sub`).
    pub subject: &'a str,
    pub email: &'a str,
    /// The role, parsed once where the credential was read. `None` is a role the gate does
    /// not know (a session stored by another version): every rule that is not public
    /// denies it ([`DenyReason::UnknownRole`]).
    pub role: Option<Role>,
    pub features: &'a Features,
    /// The `Arc` that holds `features`, when the credential keeps it in one (a session
    /// record). Per-thread caches of what is derived from a feature map (the assertion's
    /// identity part, the access line's `features`) keep a clone, and later recognise the
    /// map by address: a `features` that points into an allocation the cache holds alive
    /// is that map. A cache stores it only after checking it holds `features`.
    pub features_arc: Option<&'a Arc<Features>>,
    /// The `tenant_code` claim; `None` for unscoped staff.
    pub tenant_code: Option<&'a str>,
    /// Tenant id and name fixed at login (a session). `None` for a Bearer token: its
    /// tenant is resolved from the configuration per request.
    pub tenant: Option<(&'a str, &'a str)>,
}

impl<'a> Principal<'a> {
    /// A caller known only by its role and features (what `explain`, `diff`, `replay` and
    /// the policy lint ask about): no subject, email or tenant.
    pub fn claims(role: impl Into<Option<Role>>, features: &'a Features) -> Principal<'a> {
        Principal {
            subject: "",
            email: "",
            role: role.into(),
            features,
            features_arc: None,
            tenant_code: None,
            tenant: None,
        }
    }
}

/// The caller, as authentication established it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    /// No valid credential.
    Anonymous,
    /// A session cookie resolved to this session.
    Session(Principal<'a>),
    /// A verified SSO Bearer JWT.
    Bearer(Principal<'a>),
}

impl<'a> Who<'a> {
    /// A caller with `role` and `features` presenting the credential `auth`
    /// ([`Principal::claims`]).
    pub fn claims(auth: Auth, role: impl Into<Option<Role>>, features: &'a Features) -> Who<'a> {
        match auth {
            Auth::Session => Who::Session(Principal::claims(role, features)),
            Auth::Bearer => Who::Bearer(Principal::claims(role, features)),
        }
    }

    /// The authenticated principal; `None` for an anonymous caller.
    pub fn principal(&self) -> Option<&Principal<'a>> {
        match self {
            Who::Anonymous => None,
            Who::Session(p) | Who::Bearer(p) => Some(p),
        }
    }

    /// The credential that authenticated the caller; `None` for an anonymous caller.
    pub fn auth(&self) -> Option<Auth> {
        match self {
            Who::Anonymous => None,
            Who::Session(_) => Some(Auth::Session),
            Who::Bearer(_) => Some(Auth::Bearer),
        }
    }
}

/// Proof that the policy allowed a request, and for whom: only `policy` can build one, and
/// only from an authenticated [`Principal`] with a known role, so identity injection
/// (`identity::inject`) never meets a permit without a caller (linkerd2-proxy's
/// `Permitted<T>`: the permit and the target it was issued for travel together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit<'a> {
    rule: Arc<str>,
    role: Role,
    auth: Auth,
    principal: Principal<'a>,
}

impl<'a> Permit<'a> {
    /// Id of the rule that allowed the request (`name`, pattern, or `default`).
    pub fn rule(&self) -> &Arc<str> {
        &self.rule
    }

    /// The principal's role, known: the policy checked it.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The credential kind that was accepted.
    pub fn auth(&self) -> Auth {
        self.auth
    }

    /// Who the request was allowed for.
    pub fn principal(&self) -> &Principal<'a> {
        &self.principal
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// `/api` path that no rule matches.
    NoRule,
    /// The path has rules, none for this method.
    Method,
    /// The rule wants the other credential kind (cookie vs Bearer).
    Credential,
    /// The caller's role is not one the gate knows.
    UnknownRole,
    /// The role is not among the rule's roles.
    Role,
    /// A required `feature:permission` is missing.
    Feature,
    /// The route's tenant parameter is not the caller's tenant.
    Tenant,
    /// The role's page allow-list does not include this page.
    Page,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NoRule => "no rule matches this /api path (fail closed)",
            DenyReason::Method => "the rules for this path do not allow this method",
            DenyReason::Credential => "this route does not accept this kind of credential",
            DenyReason::UnknownRole => "the caller has no known role",
            DenyReason::Role => "the caller's role is not allowed by the rule",
            DenyReason::Feature => "a required feature permission is missing",
            DenyReason::Tenant => "the tenant in the path is not the caller's tenant",
            DenyReason::Page => "the page is outside the role's page allow-list",
        }
    }
}

/// A refusal, built only here: the rule that refused, the roles it would have accepted
/// (for the 403 body; never anything about the caller) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    rule: Arc<str>,
    required: RoleSet,
    reason: DenyReason,
}

impl Denial {
    pub fn rule(&self) -> &Arc<str> {
        &self.rule
    }

    /// Roles the rule accepts (empty for `no_rule` and method denials).
    pub fn required_roles(&self) -> RoleSet {
        self.required
    }

    pub fn reason(&self) -> DenyReason {
        self.reason
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied by `{}`: {}", self.rule, self.reason.as_str())
    }
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Forward, with identity from the permit.
    Allow(Permit<'a>),
    /// Forward without identity (public rule).
    Public { rule: Arc<str> },
    /// Authenticate first: 401 JSON for API clients, 302 to `/auth/login/?next=…` for pages.
    Login { rule: Arc<str> },
    /// 403 (JSON naming the required roles, or an HTML page).
    Deny(Denial),
    /// The role may not open this page: 302 to its landing page `to`.
    Redirect { to: Arc<str>, denial: Denial },
}

impl Verdict<'_> {
    /// `allow`, `login`, `deny` or `redirect` (public requests are `allow`).
    pub fn decision(&self) -> &'static str {
        match self {
            Verdict::Allow(_) | Verdict::Public { .. } => "allow",
            Verdict::Login { .. } => "login",
            Verdict::Deny(_) => "deny",
            Verdict::Redirect { .. } => "redirect",
        }
    }

    /// The rule id to log.
    pub fn rule(&self) -> &Arc<str> {
        match self {
            Verdict::Allow(p) => &p.rule,
            Verdict::Public { rule } | Verdict::Login { rule } => rule,
            Verdict::Deny(d) | Verdict::Redirect { denial: d, .. } => &d.rule,
        }
    }

    /// The status the gate answers with: `browser` is a page request from a browser
    /// (HTML wanted), else an API or machine client. Allowed requests show 200 here; the
    /// real status is the upstream's.
    pub fn status(&self, browser: bool) -> StatusCode {
        match self {
            Verdict::Allow(_) | Verdict::Public { .. } => StatusCode::OK,
            Verdict::Login { .. } if browser => StatusCode::FOUND,
            Verdict::Login { .. } => StatusCode::UNAUTHORIZED,
            Verdict::Deny(_) => StatusCode::FORBIDDEN,
            Verdict::Redirect { .. } if browser => StatusCode::FOUND,
            Verdict::Redirect { .. } => StatusCode::FORBIDDEN,
        }
    }
}

impl Route<'_> {
    /// Decides for `who`, a caller without a tenant code (see [`Route::decide_in`]).
    pub fn decide<'w>(&self, who: Who<'w>) -> Verdict<'w> {
        self.decide_in(who, None)
    }

    /// Decides for `who` acting for tenant `tenant` (its tenant code; `None` for unscoped
    /// staff), see the module doc for the order. No allocation.
    pub fn decide_in<'w>(&self, who: Who<'w>, tenant: Option<&str>) -> Verdict<'w> {
        let rule = match self.kind {
            RouteKind::NoRuleApi => return self.deny(&self.policy.no_rule, RoleSet::EMPTY, DenyReason::NoRule),
            RouteKind::MethodNotAllowed(r) => return self.deny(&r.id, RoleSet::EMPTY, DenyReason::Method),
            RouteKind::Rule(r) => Some(r),
            RouteKind::Default => None,
        };
        let (roles, features, want_auth) = match rule.map(|r| &r.access) {
            Some(Access::Public) => return Verdict::Public { rule: self.rule_arc().clone() },
            Some(Access::Roles { roles, features, auth }) => (Some(*roles), features.as_slice(), *auth),
            None => (None, &[][..], Auth::Session),
        };
        let (principal, auth) = match who {
            Who::Anonymous => return Verdict::Login { rule: self.rule_arc().clone() },
            Who::Session(p) => (p, Auth::Session),
            Who::Bearer(p) => (p, Auth::Bearer),
        };
        let required = roles.unwrap_or(RoleSet::EMPTY);
        if auth != want_auth {
            return self.deny(self.rule_arc(), required, DenyReason::Credential);
        }
        let Some(role) = principal.role else {
            return self.deny(self.rule_arc(), required, DenyReason::UnknownRole);
        };
        if roles.is_some_and(|r| !r.contains(role)) {
            return self.refuse_page(role, self.rule_arc(), required, DenyReason::Role);
        }
        let have = principal.features;
        if !features.iter().all(|(f, p)| have.get(&**f).is_some_and(|ps| ps.iter().any(|x| **x == **p))) {
            return self.refuse_page(role, self.rule_arc(), required, DenyReason::Feature);
        }
        if rule.and_then(|r| r.tenant.as_ref()).is_some_and(|t| !t.allows(self.path, tenant)) {
            return self.deny(self.rule_arc(), required, DenyReason::Tenant);
        }
        if !self.api && !self.policy.page_allowed(role, self.path) {
            return self.refuse_page(role, &self.policy.pages_rule, required, DenyReason::Page);
        }
        Verdict::Allow(Permit { rule: self.rule_arc().clone(), role, auth, principal })
    }

    fn rule_arc(&self) -> &Arc<str> {
        match self.kind {
            RouteKind::Rule(r) | RouteKind::MethodNotAllowed(r) => &r.id,
            RouteKind::NoRuleApi => &self.policy.no_rule,
            RouteKind::Default => &self.policy.default_rule,
        }
    }

    fn deny<'w>(&self, rule: &Arc<str>, required: RoleSet, reason: DenyReason) -> Verdict<'w> {
        Verdict::Deny(Denial { rule: rule.clone(), required, reason })
    }

    /// A browser navigation to a page the role may not open goes to its landing page
    /// (unless it is that page: no redirect loops); everything else is a 403.
    fn refuse_page<'w>(&self, role: Role, rule: &Arc<str>, required: RoleSet, reason: DenyReason) -> Verdict<'w> {
        let denial = Denial { rule: rule.clone(), required, reason };
        let landing = &self.policy.landing[role as usize];
        if !self.api && self.navigation && **landing != *self.path {
            return Verdict::Redirect { to: landing.clone(), denial };
        }
        Verdict::Deny(denial)
    }
}
