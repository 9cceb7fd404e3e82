//! Builds a [`Policy`] from `[[route]]` and `[roles]`: validates every rule (collecting
//! every error, not the first), inserts the patterns into the trie, rejects ties (two rules
//! that can match the same request with equal specificity and overlapping methods), adds
//! the built-in fail-closed `/api` slots, and reports warnings for `check`.
//!
//! Errors and warnings are [`PolicyDiag`]s keyed by their TOML path (`route.3.roles`);
//! `config` turns the key into `file:line:col`. The `at` callback gives `file:line` of a
//! rule for messages that name two rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::matcher::Trie;
use super::pattern::{Pattern, Segment};
use super::rule::{Access, Auth, MethodSet, RawRoute, Role, RoleSet, Rule, TenantMatch};
use super::{Pages, Policy, RouteSlot, Who, DEFAULT_RULE, NO_RULE, PAGES_RULE};
use crate::normalize::normalize;

/// What the policy is built from (borrowed from the raw configuration).
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub routes: &'a [RawRoute],
    /// `roles.landing`: role → landing page.
    pub landing: &'a BTreeMap<String, String>,
    /// `roles.pages`: role → page patterns the role may open.
    pub pages: &'a BTreeMap<String, Vec<String>>,
}

/// One error or warning about the policy, located by TOML key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiag {
    pub key: String,
    pub message: String,
}

struct Builder<'a> {
    at: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<PolicyDiag>,
    warnings: Vec<PolicyDiag>,
}

impl Builder<'_> {
    fn error(&mut self, key: String, message: String) {
        self.errors.push(PolicyDiag { key, message });
    }

    fn warn(&mut self, key: String, message: String) {
        self.warnings.push(PolicyDiag { key, message });
    }

    fn at(&self, key: &str) -> String {
        (self.at)(key).unwrap_or_else(|| key.to_string())
    }
}

fn known_roles() -> String {
    Role::ALL.map(Role::as_str).join(", ")
}

impl Policy {
    /// Validates and compiles. On success also returns warnings (shadowed rules, rules the
    /// gate never consults, grants that a page allow-list cancels).
    pub fn compile(
        input: &PolicyInput<'_>,
        at: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Policy, Vec<PolicyDiag>), Vec<PolicyDiag>> {
        let mut b = Builder { at, errors: Vec::new(), warnings: Vec::new() };

        let mut rules: Vec<Rule> = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, raw) in input.routes.iter().enumerate() {
            if let Some(rule) = compile_rule(&mut b, i, raw) {
                if let Some(name) = &raw.name {
                    if let Some(&j) = names.get(name) {
                        let first = b.at(&format!("route.{j}"));
                        b.error(
                            format!("route.{i}.name"),
                            format!("name `{name}` is already used by the rule at {first}"),
                        );
                    }
                    names.insert(name.clone(), i);
                }
                rules.push(rule);
            }
        }

        // Insert into the trie; same-shape patterns share a slot, indexed by method.
        let mut trie = Trie::default();
        let mut slots: Vec<RouteSlot> = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            let slot = match trie.insert(&rule.pattern, slots.len() as u32) {
                Ok(()) => {
                    slots.push(RouteSlot::default());
                    slots.len() - 1
                }
                Err(existing) => existing as usize,
            };
            let s = &mut slots[slot];
            let mut clash: Option<u32> = None;
            if rule.methods.is_any() {
                clash = s.any;
                s.any = s.any.or(Some(r as u32));
            } else {
                for m in 0..MethodSet::COUNT {
                    if rule.methods.contains_index(m) {
                        match s.by_method[m] {
                            Some(other) => clash = clash.or(Some(other)),
                            None => s.by_method[m] = Some(r as u32),
                        }
                    }
                }
            }
            s.rules.push(r as u32);
            if let Some(other) = clash {
                let o = &rules[other as usize];
                b.error(
                    format!("route.{}.path", rule.index),
                    format!(
                        "rules `{}` ({}) and `{}` ({}) overlap; remove one or make one more specific",
                        o.label(),
                        o.at,
                        rule.label(),
                        rule.at
                    ),
                );
            }
        }
        // Built-in fail-closed slots: `/api`, `/api/` and `/api/{*rest}` without a rule of
        // their own deny everyone (`no_rule`). Operator rules of the same shape take over.
        for builtin in ["/api", "/api/", "/api/{*rest}"] {
            if let Ok(p) = Pattern::parse(builtin) {
                if trie.insert(&p, slots.len() as u32).is_ok() {
                    slots.push(RouteSlot::default());
                }
            }
        }

        let landing = compile_landing(&mut b, input.landing);
        let pages = compile_pages(&mut b, input.pages);

        for rule in &rules {
            if let Some(owned) = only_gate_owned(&rule.pattern) {
                b.warn(
                    format!("route.{}.path", rule.index),
                    format!(
                        "rule `{}` is never consulted: the gate answers `{}` itself before the policy ({})",
                        rule.label(),
                        rule.pattern.as_str(),
                        owned.rule()
                    ),
                );
            }
        }

        for rule in &rules {
            if let Some((segment, c)) = rule.pattern.literal_needing_care() {
                let spelled = if c == '%' { "a percent-escape".to_string() } else { format!("`{c}`") };
                b.warn(
                    format!("route.{}.path", rule.index),
                    format!(
                        "rule `{}`: segment `{segment}` contains {spelled}; requests may spell it encoded or not, and the \
                         gate matches the decoded form as Django resolves it: make sure no broader rule is meant to \
                         catch these paths",
                        rule.label()
                    ),
                );
            }
        }

        if !b.errors.is_empty() {
            return Err(b.errors);
        }
        let policy = Policy {
            rules,
            slots,
            trie,
            landing,
            pages,
            no_rule: Arc::from(NO_RULE),
            default_rule: Arc::from(DEFAULT_RULE),
            pages_rule: Arc::from(PAGES_RULE),
        };
        policy.lint(&mut b);
        Ok((policy, b.warnings))
    }

    /// Warnings that need the compiled policy.
    fn lint(&self, b: &mut Builder<'_>) {
        let no_features = super::Features::new();
        for rule in &self.rules {
            let Access::Roles { roles, .. } = &rule.access else { continue };
            let sample = sample_path(&rule.pattern);
            if super::is_api_str(&sample) {
                continue;
            }
            for role in roles.iter() {
                if !self.page_allowed(role, &sample) {
                    b.warn(
                        format!("route.{}.roles", rule.index),
                        format!(
                            "rule `{}` grants {role}, but roles.pages.{role} does not include it: {role} is sent to {} instead",
                            rule.label(),
                            self.landing(role)
                        ),
                    );
                }
            }
        }
        for role in Role::ALL {
            let page = self.landing(role).to_string();
            let Ok(path) = normalize(&page) else { continue };
            let route = self.route_for(&http::Method::GET, &path);
            // Roles and pages decide here; the feature permissions the landing rule asks
            // for are the SSO's business (a user without them is refused by Django too).
            let mut wanted = no_features.clone();
            if let Some(Access::Roles { features, .. }) = route.rule().map(|r| &r.access) {
                for (f, p) in features {
                    wanted.entry(f.to_string()).or_default().push(p.to_string());
                }
            }
            let who = Who::claims(route.auth(), role, &wanted);
            let v = route.decide(who);
            if !matches!(v, super::Verdict::Allow(_) | super::Verdict::Public { .. }) {
                b.warn(
                    format!("roles.landing.{role}"),
                    format!(
                        "the landing page `{page}` of {role} is not open to {role} (rule `{}`): it gets 403 there",
                        v.rule()
                    ),
                );
            }
        }
    }
}

fn compile_rule(b: &mut Builder<'_>, i: usize, raw: &RawRoute) -> Option<Rule> {
    let before = b.errors.len();
    let key = |field: &str| format!("route.{i}.{field}");

    let pattern = match Pattern::parse(&raw.path) {
        Ok(p) => Some(p),
        Err(e) => {
            b.error(key("path"), format!("`{}`: {e}", raw.path));
            None
        }
    };

    let methods = match &raw.methods {
        None => MethodSet::ANY,
        Some(list) if list.is_empty() => {
            b.error(key("methods"), "empty list matches nothing; omit `methods` to allow any method".into());
            MethodSet::NONE
        }
        Some(list) => {
            let mut set = MethodSet::NONE;
            for (j, m) in list.iter().enumerate() {
                match MethodSet::parse_one(m) {
                    Ok(one) => set = set.union(one),
                    Err(msg) => b.error(format!("route.{i}.methods.{j}"), msg),
                }
            }
            set
        }
    };

    let mut roles = RoleSet::EMPTY;
    for (j, name) in raw.roles.iter().enumerate() {
        match Role::parse(name) {
            Some(r) => roles = roles.with(r),
            None => {
                b.error(format!("route.{i}.roles.{j}"), format!("unknown role `{name}` (expected {})", known_roles()))
            }
        }
    }

    let mut features = Vec::new();
    for (j, f) in raw.features.iter().enumerate() {
        match f.split_once(':') {
            Some((feat, perm)) if valid_word(feat) && valid_word(perm) => features.push((feat.into(), perm.into())),
            _ => b.error(
                format!("route.{i}.features.{j}"),
                format!("`{f}` is not `feature:permission` (for example `bol:view`)"),
            ),
        }
    }

    let auth = match raw.auth.as_deref() {
        None | Some("session") => Auth::Session,
        Some("bearer") => Auth::Bearer,
        Some(other) => {
            b.error(key("auth"), format!("unknown auth `{other}` (expected `session` or `bearer`)"));
            Auth::Session
        }
    };

    let access = if raw.public {
        if !raw.roles.is_empty() || !raw.features.is_empty() || raw.auth.is_some() {
            b.error(
                key("public"),
                "a public rule checks no identity: remove roles, features and auth, or remove public = true".into(),
            );
        }
        Access::Public
    } else {
        if raw.roles.is_empty() {
            b.error(key("roles"), "no roles: add roles = [...] or public = true".into());
        }
        Access::Roles { roles, features, auth }
    };

    if raw.forward_authorization && auth != Auth::Bearer {
        b.error(
            key("forward_authorization"),
            "only a bearer rule (auth = \"bearer\") has an Authorization header to forward".into(),
        );
    }
    let tenant = compile_tenant(b, i, raw, pattern.as_ref());

    if let Some(name) = &raw.name {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            b.error(key("name"), "must be non-empty text without control characters".into());
        } else if [NO_RULE, DEFAULT_RULE, PAGES_RULE].contains(&name.as_str()) {
            b.error(key("name"), format!("`{name}` is reserved for the gate's defaults"));
        }
    }

    if b.errors.len() != before {
        return None;
    }
    let pattern = pattern?;
    let id: Arc<str> = Arc::from(raw.name.as_deref().unwrap_or(pattern.as_str()));
    let at = b.at(&format!("route.{i}"));
    Some(Rule { id, pattern, methods, access, index: i, at, tenant, forward_authorization: raw.forward_authorization })
}

/// `tenant = "{param}"` and `tenant_unscoped`: the parameter must be a `{param}` segment
/// of the rule's own pattern, and the rule must check an identity.
fn compile_tenant(b: &mut Builder<'_>, i: usize, raw: &RawRoute, pattern: Option<&Pattern>) -> Option<TenantMatch> {
    let key = |field: &str| format!("route.{i}.{field}");
    let unscoped_any = match raw.tenant_unscoped.as_deref() {
        None | Some("deny") => false,
        Some("any") => true,
        Some(other) => {
            b.error(key("tenant_unscoped"), format!("unknown value `{other}` (expected `deny` or `any`)"));
            false
        }
    };
    let Some(text) = raw.tenant.as_deref() else {
        if raw.tenant_unscoped.is_some() {
            b.error(key("tenant_unscoped"), "only meaningful with tenant = \"{param}\"".into());
        }
        return None;
    };
    if raw.public {
        b.error(key("tenant"), "a public rule checks no identity, so no tenant either".into());
        return None;
    }
    let Some(param) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).filter(|p| !p.is_empty()) else {
        b.error(key("tenant"), format!("`{text}` is not a path parameter (write tenant = \"{{code}}\")"));
        return None;
    };
    let pattern = pattern?;
    let segment = pattern.segments().iter().position(|s| matches!(s, Segment::Param(n) if &**n == param));
    let Some(segment) = segment else {
        b.error(
            key("tenant"),
            format!("the pattern `{}` has no `{{{param}}}` segment for the tenant match", pattern.as_str()),
        );
        return None;
    };
    Some(TenantMatch { param: param.into(), segment, unscoped_any })
}

fn valid_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic() && c != b':')
}

fn compile_landing(b: &mut Builder<'_>, raw: &BTreeMap<String, String>) -> [Arc<str>; 4] {
    let mut landing: [Arc<str>; 4] = Role::ALL.map(|r| Arc::from(if r == Role::Client { "/client.html" } else { "/" }));
    for (name, page) in raw {
        let key = format!("roles.landing.{name}");
        let Some(role) = Role::parse(name) else {
            b.error(key, format!("unknown role `{name}` (expected {})", known_roles()));
            continue;
        };
        match normalize(page) {
            Ok(p) if p.is_unchanged() && !page.starts_with("//") => landing[role as usize] = Arc::from(page.as_str()),
            _ => b.error(key, format!("landing page `{page}` must be a canonical local path starting with one `/`")),
        }
    }
    landing
}

fn compile_pages(b: &mut Builder<'_>, raw: &BTreeMap<String, Vec<String>>) -> [Option<Pages>; 4] {
    let mut pages: [Option<Pages>; 4] = Default::default();
    for (name, list) in raw {
        let key = format!("roles.pages.{name}");
        let Some(role) = Role::parse(name) else {
            b.error(key, format!("unknown role `{name}` (expected {})", known_roles()));
            continue;
        };
        if pages[role as usize].is_some() {
            b.error(key, format!("{role} has two page lists (role names are case-insensitive)"));
            continue;
        }
        let mut trie = Trie::default();
        let mut patterns = Vec::new();
        for (j, text) in list.iter().enumerate() {
            match Pattern::parse(text) {
                Ok(p) => {
                    let _ = trie.insert(&p, 0);
                    patterns.push(p);
                }
                Err(e) => b.error(format!("{key}.{j}"), format!("`{text}`: {e}")),
            }
        }
        pages[role as usize] = Some(Pages { trie, patterns });
    }
    pages
}

/// A path the pattern matches: parameters and tails replaced by `x`.
fn sample_path(p: &Pattern) -> String {
    let mut s = String::new();
    for seg in p.segments() {
        s.push('/');
        match seg {
            Segment::Exact(t) => s.push_str(t),
            Segment::Param(_) | Segment::CatchAll(_) => s.push('x'),
        }
    }
    if p.has_trailing_slash() {
        s.push('/');
    }
    s
}

/// The gate-owned route every path the pattern matches names, if it names only one
/// (an exact pattern such as `/auth/login/`): a rule the policy can never consult. A
/// pattern with a parameter also matches paths the gate forwards, so it is consulted.
fn only_gate_owned(p: &Pattern) -> Option<crate::gate_owned::Owned> {
    if !p.segments().iter().all(|s| matches!(s, Segment::Exact(_))) {
        return None;
    }
    crate::gate_owned::Owned::of(p.as_str())
}
