//! The rule model: what one `[[route]]` table says, in its raw (serde) and compiled forms,
//! and the small closed vocabularies it uses (roles, methods, credential kinds).
//!
//! `config` deserializes [`RawRoute`]s from the file; `policy::compile` validates them into
//! [`Rule`]s. No catch-all variants: a role, method or credential kind the gate does not
//! know is a configuration error, never a silent "other".

use std::fmt;
use std::sync::Arc;

use http::Method;
use serde::{Deserialize, Serialize};

use super::pattern::Pattern;

/// One `[[route]]` table as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Path pattern (`/api/bol/{id}/`).
    pub path: String,
    /// HTTP methods; absent means any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Roles allowed (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Required `feature:permission` claims (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// No identity needed.
    #[serde(default)]
    pub public: bool,
    /// `"session"` (default) or `"bearer"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Bearer rules only: forward the verified `Authorization` header to the upstream
    /// instead of consuming it (the upstream verifies the token again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_authorization: bool,
    /// Tenant match: `"{param}"` names a path parameter that must equal the caller's
    /// tenant code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// With `tenant`: what a caller without a tenant code (unscoped staff) gets,
    /// `"deny"` (default) or `"any"` (every tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_unscoped: Option<String>,
    /// Name used in logs and `explain` instead of the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text for operators; ignored by the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The roles of the PrimeTrade application (`application_roles.primetrade.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Admin,
    Office,
    Operator,
    Client,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Office, Role::Operator, Role::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Office => "Office",
            Role::Operator => "Operator",
            Role::Client => "Client",
        }
    }

    /// Case-insensitive; `None` for anything else (no catch-all role). No allocation.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(name))
    }

    /// The role an SSO token claims (`application_roles.<app>.role`, at login and on a
    /// Bearer JWT): surrounding whitespace ignored, then [`Role::parse`]. `None` refuses the
    /// login or the token.
    pub fn from_claim(claim: &str) -> Option<Role> {
        Role::parse(claim.trim())
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles (a bitset: copying it never allocates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleSet(u8);

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);

    pub fn with(self, r: Role) -> RoleSet {
        RoleSet(self.0 | r.bit())
    }

    pub fn contains(self, r: Role) -> bool {
        self.0 & r.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

/// Methods a rule can name. `GET` also covers `HEAD` (as in Django and axum).
const METHODS: [(&str, Method); 8] = [
    ("GET", Method::GET),
    ("HEAD", Method::HEAD),
    ("POST", Method::POST),
    ("PUT", Method::PUT),
    ("PATCH", Method::PATCH),
    ("DELETE", Method::DELETE),
    ("OPTIONS", Method::OPTIONS),
    ("TRACE", Method::TRACE),
];

/// A set of methods; `ANY` also covers extension methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSet(u16);

const ANY_BITS: u16 = u16::MAX;

impl MethodSet {
    pub const ANY: MethodSet = MethodSet(ANY_BITS);
    pub const NONE: MethodSet = MethodSet(0);

    /// Parses one method name (upper case only).
    pub fn parse_one(name: &str) -> Result<MethodSet, String> {
        if let Some(i) = METHODS.iter().position(|(n, _)| *n == name) {
            let mut bits = 1u16 << i;
            if name == "GET" {
                bits |= 1 << 1; // GET implies HEAD
            }
            return Ok(MethodSet(bits));
        }
        if let Some((n, _)) = METHODS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(format!("method `{name}` must be written in upper case: `{n}`"));
        }
        if name == "CONNECT" {
            return Err("method `CONNECT` is never forwarded by the gate".into());
        }
        let known: Vec<&str> = METHODS.iter().map(|(n, _)| *n).collect();
        Err(format!("unknown method `{name}` (expected one of {})", known.join(", ")))
    }

    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    pub fn overlaps(self, other: MethodSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_any(self) -> bool {
        self.0 == ANY_BITS
    }

    /// Index of `m` among the nameable methods, `None` for extension methods.
    pub fn index_of(m: &Method) -> Option<usize> {
        // no alloc: compare against the constants, most frequent first (iterating the
        // `METHODS` table would build and drop a temporary array per call).
        let i = if *m == Method::GET {
            0
        } else if *m == Method::POST {
            2
        } else if *m == Method::HEAD {
            1
        } else if *m == Method::PATCH {
            4
        } else if *m == Method::PUT {
            3
        } else if *m == Method::DELETE {
            5
        } else if *m == Method::OPTIONS {
            6
        } else if *m == Method::TRACE {
            7
        } else {
            return None;
        };
        Some(i)
    }

    pub const COUNT: usize = METHODS.len();

    pub fn contains_index(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("ANY");
        }
        let get = self.contains_index(0);
        let mut first = true;
        for (i, (name, _)) in METHODS.iter().enumerate() {
            // HEAD is implied by GET; only show it when named alone.
            if self.contains_index(i) && !(i == 1 && get) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Which credential a rule accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The gate's session cookie (browsers).
    Session,
    /// An SSO-signed `Authorization: Bearer` JWT (machine clients).
    Bearer,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Session => "session",
            Auth::Bearer => "bearer",
        }
    }
}

/// Who a rule lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no identity needed.
    Public,
    /// Callers holding one of `roles` and every feature in `features`, with the credential
    /// kind `auth`.
    Roles { roles: RoleSet, features: Vec<(Box<str>, Box<str>)>, auth: Auth },
}

/// A rule's tenant match (`tenant = "{code}"`): the path parameter at `segment` must
/// equal the caller's tenant code, compared byte for byte on the normalized path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMatch {
    /// The parameter's name (`code`).
    pub param: Box<str>,
    /// Index of the parameter among the pattern's segments.
    pub segment: usize,
    /// A caller without a tenant code (unscoped staff) passes (`tenant_unscoped = "any"`);
    /// by default it is refused.
    pub unscoped_any: bool,
}

impl TenantMatch {
    /// The value of the parameter in `path` (a path the rule's pattern matched).
    pub fn value<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.strip_prefix('/')?.split('/').nth(self.segment)
    }

    /// Whether a caller of tenant `caller` may send a request for `path`.
    pub fn allows(&self, path: &str, caller: Option<&str>) -> bool {
        match caller {
            None => self.unscoped_any,
            Some(code) => self.value(path).is_some_and(|v| !v.is_empty() && v == code),
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Name in logs and `explain`: the `name`, else the pattern.
    pub id: Arc<str>,
    pub pattern: Pattern,
    pub methods: MethodSet,
    pub access: Access,
    /// Index in the file (`route.N`).
    pub index: usize,
    /// `file:line` of the rule, for messages.
    pub at: String,
    /// Tenant match, if the rule has one.
    pub tenant: Option<TenantMatch>,
    /// Bearer rule that forwards the verified `Authorization` header upstream.
    pub forward_authorization: bool,
}

impl Rule {
    /// `GET /api/x/`.
    pub fn label(&self) -> String {
        format!("{} {}", self.methods, self.pattern)
    }

    /// Who may pass, for the route table.
    pub fn who(&self) -> String {
        match &self.access {
            Access::Public => "public".into(),
            Access::Roles { roles, features, auth } => {
                let mut s = String::new();
                if *auth == Auth::Bearer {
                    s.push_str("bearer: ");
                }
                s.push_str(&roles.to_string());
                for (f, p) in features {
                    s.push_str(&format!(" +{f}:{p}"));
                }
                if let Some(t) = &self.tenant {
                    s.push_str(&format!(" tenant={{{}}}", t.param));
                    if t.unscoped_any {
                        s.push_str(" (unscoped: any)");
                    }
                }
                if self.forward_authorization {
                    s.push_str(" (forwards Authorization)");
                }
                s
            }
        }
    }
}
