//! Dev SSO users: the built-in seed (one user per role, with the SSO's seeded
//! features), the `--users` TOML file, and the identity claims a user yields
//! for ID tokens and userinfo.
//!
//! Neighbours: `store` keeps the live user list (roles change at run time
//! through [`super::DevSso::set_role`]); `endpoints` turns claims into tokens.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::DevSsoError;

/// The application whose entry in `application_roles` the gate reads.
pub const APPLICATION: &str = "primetrade";
/// Tenant code of every built-in user.
pub const DEFAULT_TENANT: &str = "PRT";

/// Feature → allowed actions (`{"bol": ["view", "create"]}`).
pub type Features = BTreeMap<String, Vec<String>>;

/// One account of the dev SSO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name and `email` claim; matched case-insensitively.
    pub email: String,
    /// `name` claim.
    pub name: String,
    /// Role in `primetrade` (`Admin`, `Office`, `Operator`, `Client`, any
    /// spelling); `None`: the user has no entry for the application.
    pub role: Option<String>,
    /// The `features` of the `primetrade` entry.
    pub features: Features,
    /// The `tenant_code` of the `primetrade` entry.
    pub tenant_code: String,
    /// `is_sso_admin` claim.
    pub is_sso_admin: bool,
    /// Roles in other applications (application → role). They appear in
    /// `application_roles` and must be ignored by the gate.
    pub other_applications: BTreeMap<String, String>,
}

impl User {
    /// A user holding `role` in `primetrade` with that role's seeded features
    /// (none for a role the SSO does not seed) and tenant `PRT`.
    pub fn with_role(email: &str, name: &str, role: Option<&str>) -> User {
        User {
            email: email.to_string(),
            name: name.to_string(),
            role: role.map(str::to_string),
            features: role.and_then(seeded_features).unwrap_or_default(),
            tenant_code: DEFAULT_TENANT.to_string(),
            is_sso_admin: role.is_some_and(|r| r.eq_ignore_ascii_case("admin")),
            other_applications: BTreeMap::new(),
        }
    }

    /// Stable subject: a UUID (version 8, RFC 9562) derived from the
    /// lower-cased email, so restarts and `--users` files keep `sub`.
    pub fn sub(&self) -> String {
        let digest = Sha256::digest(format!("barge2rail-dev-sso:{}", self.email.to_ascii_lowercase()));
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
    }

    /// Identity claims shared by the ID token and userinfo: `sub`, `email`,
    /// `email_verified`, `name`, `is_sso_admin`, `application_roles`.
    pub fn claims(&self) -> Map<String, Value> {
        let mut apps = Map::new();
        for (app, role) in &self.other_applications {
            apps.insert(
                app.clone(),
                json!({"role": role, "permissions": [], "features": {}, "tenant_code": self.tenant_code}),
            );
        }
        if let Some(role) = &self.role {
            apps.insert(
                APPLICATION.to_string(),
                json!({"role": role, "permissions": [], "features": self.features, "tenant_code": self.tenant_code}),
            );
        }
        let mut c = Map::new();
        c.insert("sub".into(), self.sub().into());
        c.insert("email".into(), self.email.clone().into());
        c.insert("email_verified".into(), true.into());
        c.insert("name".into(), self.name.clone().into());
        c.insert("is_sso_admin".into(), self.is_sso_admin.into());
        c.insert("application_roles".into(), Value::Object(apps));
        c
    }
}

/// The built-in users: `admin@`, `office@`, `operator@`, `client@` (tenant `PRT`),
/// `acme-office@example.com` (Office of a second tenant, `ACME`) and
/// `nobody@example.com` (no `primetrade` role, only a `sacks` one).
pub fn builtin_users() -> Vec<User> {
    let mut nobody = User::with_role("nobody@example.com", "Nobody Outsider", None);
    nobody.other_applications.insert("sacks".into(), "Client".into());
    let mut acme = User::with_role("acme-office@example.com", "Abe Acme", Some("Office"));
    acme.tenant_code = SECOND_TENANT.to_string();
    vec![
        User::with_role("admin@example.com", "Ada Admin", Some("Admin")),
        User::with_role("office@example.com", "Olive Office", Some("Office")),
        User::with_role("operator@example.com", "Otto Operator", Some("Operator")),
        User::with_role("client@example.com", "Cleo Client", Some("Client")),
        acme,
        nobody,
    ]
}

/// Tenant code of the built-in user of a second tenant (`acme-office@example.com`).
pub const SECOND_TENANT: &str = "ACME";

/// The features the real SSO grants a role (matched case-insensitively), or `None` for a
/// role it does not know. Permission codes are the SSO's: `view`, `create`, `modify`,
/// `delete`, `export`. Besides the seeded features, staff carry `dashboard:view`, Clients
/// `client_portal:view` and Admins `admin:modify`, which the production SSO grants by hand
/// and the application checks (docs/routes.md lists where).
pub fn seeded_features(role: &str) -> Option<Features> {
    const ALL: &[&str] = &["view", "create", "modify", "delete", "export"];
    const ADMIN: &[(&str, &[&str])] = &[
        ("bol", ALL),
        ("releases", ALL),
        ("schedule", ALL),
        ("products", &["view", "create", "modify", "delete"]),
        ("customers", &["view", "create", "modify", "delete"]),
        ("carriers", &["view", "create", "modify", "delete"]),
        ("reports", &["view", "export"]),
        ("dashboard", &["view"]),
        ("admin", &["view", "modify"]),
    ];
    // Office runs the day-to-day: creates and changes BOLs, releases and the schedule;
    // reads everything else.
    const OFFICE: &[(&str, &[&str])] = &[
        ("bol", &["view", "create", "modify"]),
        ("releases", &["view", "create", "modify"]),
        ("schedule", &["view", "create", "modify"]),
        ("products", &["view"]),
        ("customers", &["view"]),
        ("carriers", &["view"]),
        ("reports", &["view"]),
        ("dashboard", &["view"]),
    ];
    const OPERATOR: &[(&str, &[&str])] = &[
        ("bol", &["view"]),
        ("releases", &["view", "modify"]),
        ("schedule", &["view"]),
        ("products", &["view"]),
        ("customers", &["view"]),
        ("carriers", &["view"]),
        ("dashboard", &["view"]),
    ];
    const CLIENT: &[(&str, &[&str])] =
        &[("bol", &["view"]), ("releases", &["view"]), ("schedule", &["view"]), ("client_portal", &["view"])];
    let table = match role.to_ascii_lowercase().as_str() {
        "admin" => ADMIN,
        "office" => OFFICE,
        "operator" => OPERATOR,
        "client" => CLIENT,
        _ => return None,
    };
    Some(table.iter().map(|(f, a)| (f.to_string(), a.iter().map(|s| s.to_string()).collect())).collect())
}

/// One `[[user]]` table of a `--users` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    email: String,
    name: String,
    role: Option<String>,
    features: Option<Features>,
    tenant_code: Option<String>,
    is_sso_admin: Option<bool>,
    #[serde(default)]
    other_applications: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

/// Reads a `--users` file (format in the module doc of [`super`]).
pub fn load_users(path: &Path) -> Result<Vec<User>, DevSsoError> {
    let fail = |at: String, message: String| DevSsoError::UsersFile { path: path.to_path_buf(), at, message };
    let text = std::fs::read_to_string(path).map_err(|e| fail(String::new(), e.to_string()))?;
    let file: UsersFile = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| line_col(&text, s.start)).map_or(String::new(), |(l, c)| format!(":{l}:{c}"));
        fail(at, e.message().trim().to_string())
    })?;
    let users = file
        .user
        .into_iter()
        .map(|r| {
            let mut u = User::with_role(&r.email, &r.name, r.role.as_deref());
            if let Some(f) = r.features {
                u.features = f;
            }
            if let Some(t) = r.tenant_code {
                u.tenant_code = t;
            }
            if let Some(a) = r.is_sso_admin {
                u.is_sso_admin = a;
            }
            u.other_applications = r.other_applications;
            u
        })
        .collect::<Vec<_>>();
    validate(&users).map_err(|problems| fail(String::new(), problems.join("; ")))?;
    Ok(users)
}

/// Every problem with a user list (not just the first).
pub fn validate(users: &[User]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if users.is_empty() {
        problems.push("no users (add at least one [[user]] table)".to_string());
    }
    for (i, u) in users.iter().enumerate() {
        let at = format!("user {} ({:?})", i + 1, u.email);
        let at_sign = u.email.find('@');
        if at_sign.is_none_or(|p| p == 0 || p + 1 == u.email.len())
            || u.email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            problems.push(format!("{at}: email must look like name@domain"));
        }
        if u.name.trim().is_empty() {
            problems.push(format!("{at}: name is empty"));
        }
        if u.role.as_deref().is_some_and(|r| r.trim().is_empty()) {
            problems.push(format!("{at}: role is empty (omit it for a user without a {APPLICATION} role)"));
        }
        if u.tenant_code.trim().is_empty() {
            problems.push(format!("{at}: tenant_code is empty"));
        }
        if users[..i].iter().any(|o| o.email.eq_ignore_ascii_case(&u.email)) {
            problems.push(format!("{at}: duplicate email"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_claims_have_the_contract_shape() {
        let users = builtin_users();
        let client = users.iter().find(|u| u.email == "client@example.com").unwrap();
        let c = Value::Object(client.claims());
        assert_eq!(
            c["application_roles"],
            json!({"primetrade": {"role": "Client", "permissions": [], "tenant_code": "PRT",
                "features": {"bol": ["view"], "releases": ["view"], "schedule": ["view"],
                             "client_portal": ["view"]}}})
        );
        // The second tenant's user: an Office of ACME.
        let acme = Value::Object(users.iter().find(|u| u.email == "acme-office@example.com").unwrap().claims());
        assert_eq!(acme["application_roles"][APPLICATION]["tenant_code"], "ACME");
        assert_eq!(acme["application_roles"][APPLICATION]["role"], "Office");
        assert_eq!(c["is_sso_admin"], false);
        let nobody = Value::Object(users.iter().find(|u| u.email == "nobody@example.com").unwrap().claims());
        assert!(nobody["application_roles"].get(APPLICATION).is_none());
        assert_eq!(nobody["application_roles"]["sacks"]["role"], "Client");
        assert_eq!(users[0].claims()["is_sso_admin"], true);
    }

    /// The real SSO's vocabulary, written out here per role: the application checks these
    /// exact `feature:permission` pairs, so a dev SSO speaking another one gets 403s.
    #[test]
    fn seeded_features_speak_the_real_sso_vocabulary() {
        let has = |role: &str, pair: &str| {
            let (f, p) = pair.split_once(':').unwrap();
            seeded_features(role).unwrap().get(f).is_some_and(|ps| ps.iter().any(|x| x == p))
        };
        let rows: &[(&str, &[&str], &[&str])] = &[
            (
                "Admin",
                &[
                    "bol:export",
                    "releases:delete",
                    "schedule:create",
                    "carriers:delete",
                    "reports:export",
                    "dashboard:view",
                    "admin:modify",
                ],
                &["client_portal:view", "products:export", "reports:create"],
            ),
            (
                "Office",
                &[
                    "bol:create",
                    "bol:modify",
                    "releases:modify",
                    "schedule:modify",
                    "customers:view",
                    "reports:view",
                    "dashboard:view",
                ],
                &["bol:delete", "customers:create", "admin:modify", "client_portal:view", "reports:export"],
            ),
            (
                "Operator",
                &["bol:view", "releases:modify", "schedule:view", "products:view", "dashboard:view"],
                &["bol:create", "reports:view", "client_portal:view"],
            ),
            (
                "Client",
                &["bol:view", "releases:view", "schedule:view", "client_portal:view"],
                &["dashboard:view", "products:view", "reports:view"],
            ),
        ];
        for (role, yes, no) in rows {
            for pair in *yes {
                assert!(has(role, pair), "{role} lacks {pair}");
            }
            for pair in *no {
                assert!(!has(role, pair), "{role} has {pair}");
            }
        }
        // No code outside the SSO's five (the old dev SSO said `edit`, `approve`).
        for role in ["Admin", "Office", "Operator", "Client"] {
            for (f, ps) in seeded_features(role).unwrap() {
                for p in ps {
                    assert!(["view", "create", "modify", "delete", "export"].contains(&p.as_str()), "{role} {f}:{p}");
                }
            }
        }
    }

    #[test]
    fn sub_is_a_stable_uuid_per_email() {
        let a = User::with_role("a@x.com", "A", None);
        let a2 = User::with_role("A@X.com", "Other", Some("Admin"));
        let b = User::with_role("b@x.com", "B", None);
        assert_eq!(a.sub(), a2.sub());
        assert_ne!(a.sub(), b.sub());
        let s = a.sub();
        assert_eq!(s.len(), 36);
        assert_eq!(s.as_bytes()[14], b'8', "{s}");
    }

    #[test]
    fn users_file_rows() {
        let dir = tempfile::tempdir().unwrap();
        let rows: &[(&str, Result<usize, &str>)] = &[
            (
                "[[user]]\nemail = \"a@x.com\"\nname = \"A\"\nrole = \"Office\"\n\
                 [[user]]\nemail = \"b@x.com\"\nname = \"B\"\nfeatures = { bol = [\"view\"] }\nrole = \"client\"\ntenant_code = \"ACME\"\n",
                Ok(2),
            ),
            ("[[user]]\nemail = \"a@x.com\"\nname = \"A\"\nrol = \"Office\"\n", Err("u1.toml:4:1: unknown field `rol`")),
            ("", Err("no users")),
            (
                "[[user]]\nemail = \"a@x.com\"\nname = \"A\"\n[[user]]\nemail = \"A@x.com\"\nname = \"\"\n",
                Err("user 2 (\"A@x.com\"): name is empty; user 2 (\"A@x.com\"): duplicate email"),
            ),
            ("[[user]]\nemail = \"nope\"\nname = \"A\"\n", Err("user 1 (\"nope\"): email must look like name@domain")),
        ];
        for (i, (text, want)) in rows.iter().enumerate() {
            let p = dir.path().join(format!("u{i}.toml"));
            std::fs::write(&p, text).unwrap();
            match (load_users(&p), want) {
                (Ok(u), Ok(n)) => assert_eq!(u.len(), *n, "row {i}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "row {i}: {e}"),
                (got, want) => panic!("row {i}: got {got:?}, want {want:?}"),
            }
        }
        let p = dir.path().join("u0.toml");
        let u = load_users(&p).unwrap();
        assert_eq!(u[0].features, seeded_features("Office").unwrap());
        assert_eq!(u[1].features, BTreeMap::from([("bol".to_string(), vec!["view".to_string()])]));
        assert_eq!(u[1].tenant_code, "ACME");
    }
}
