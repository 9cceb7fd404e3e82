//! The shipped `policy.toml` against the real application, row by row: the route map
//! (docs/routes.md) with the application's own role and feature checks, for Admin, Office,
//! Operator and Client holding the features the real SSO gives their role, for each of
//! them holding no feature at all, and for an anonymous caller, with every method the row
//! lists (plus HEAD where it lists GET) and the methods it does not list, through
//! [`explain`] — the code path of `prt-gate explain` and of the pipeline's
//! `route_for → authenticate → decide`.

use std::path::Path;

use http::Method;

use super::explain::{explain, Caller};
use super::{Features, Role};
use crate::config::Config;
use crate::normalize::normalize;

const A: Role = Role::Admin;
const O: Role = Role::Office;
const P: Role = Role::Operator;
const C: Role = Role::Client;

#[derive(Clone, Copy)]
enum Who {
    Public,
    /// Session cookie with one of these roles, holding the feature permission if one is
    /// named.
    Roles(&'static [Role], Option<&'static str>),
    /// SSO Bearer JWT with one of these roles.
    Bearer(&'static [Role]),
}

use Who::Roles as R;

/// The feature permissions the real SSO gives each role (seeded, plus `dashboard:view` for
/// staff, `client_portal:view` for Clients and `admin:modify` for Admins, granted by hand).
fn sso_features(role: Role) -> Features {
    let text: &[(&str, &[&str])] = match role {
        Role::Admin => &[
            ("bol", &["view", "create", "modify", "delete", "export"]),
            ("releases", &["view", "create", "modify", "delete", "export"]),
            ("schedule", &["view", "create", "modify", "delete", "export"]),
            ("products", &["view", "create", "modify", "delete"]),
            ("customers", &["view", "create", "modify", "delete"]),
            ("carriers", &["view", "create", "modify", "delete"]),
            ("reports", &["view", "export"]),
            ("dashboard", &["view"]),
            ("admin", &["modify"]),
        ],
        Role::Office => &[
            ("bol", &["view", "create", "modify"]),
            ("releases", &["view", "create", "modify"]),
            ("schedule", &["view", "create", "modify"]),
            ("products", &["view"]),
            ("customers", &["view"]),
            ("carriers", &["view"]),
            ("reports", &["view"]),
            ("dashboard", &["view"]),
        ],
        Role::Operator => &[
            ("bol", &["view"]),
            ("releases", &["view", "modify"]),
            ("schedule", &["view"]),
            ("products", &["view"]),
            ("customers", &["view"]),
            ("carriers", &["view"]),
            ("dashboard", &["view"]),
        ],
        Role::Client => {
            &[("bol", &["view"]), ("releases", &["view"]), ("schedule", &["view"]), ("client_portal", &["view"])]
        }
    };
    text.iter().map(|(f, ps)| (f.to_string(), ps.iter().map(|p| p.to_string()).collect())).collect()
}

fn holds(features: &Features, pair: &str) -> bool {
    let (f, p) = pair.split_once(':').unwrap_or((pair, ""));
    features.get(f).is_some_and(|ps| ps.iter().any(|x| x == p))
}

/// `(paths, methods, who)`: one row of the route map. `{id}` and tails are filled with
/// samples. `ANY` rows are probed with GET, POST, PUT, PATCH, DELETE. Where the
/// application checks a role and a feature, the row names both; where the Phase 1 plan is
/// stricter than the application (balances, open releases, pending loads), the row says
/// what the gate does.
const ROWS: &[(&[&str], &[&str], Who)] = &[
    (&["/api/health/", "/api/csrf/", "/api/customers/branding/"], &["GET"], Who::Public),
    (&["/api/auth/me/"], &["GET"], R(&[A, O, P, C], None)),
    // The staff dashboard's context: Operators are not in the view's role list, Clients
    // lack dashboard:view.
    (&["/api/user/context/"], &["GET"], R(&[A, O, C], Some("dashboard:view"))),
    (&["/api/products/"], &["GET"], R(&[A, O, C], Some("products:view"))),
    // Django also wants the role spelled `admin` here (its bug); the gate lets Admin in.
    (&["/api/products/"], &["POST"], R(&[A], Some("products:view"))),
    (&["/api/history/", "/api/bol/42/", "/api/bol/42/download/"], &["GET"], R(&[A, O, C], Some("bol:view"))),
    (&["/api/balances/", "/api/audit/"], &["GET"], R(&[A, O], Some("reports:view"))),
    (&["/api/releases/"], &["GET"], R(&[A, O, C], Some("releases:view"))),
    (&["/api/releases/open/", "/api/releases/pending-loads/"], &["GET"], R(&[A, O], Some("releases:view"))),
    (&["/api/releases/7/"], &["GET"], R(&[A, O, P, C], Some("releases:view"))),
    (&["/api/releases/load/7/"], &["GET"], R(&[A, O, P], Some("releases:view"))),
    (&["/api/releases/load/7/", "/api/releases/7/"], &["PATCH"], R(&[A, O], Some("releases:view"))),
    (&["/api/releases/upload/"], &["POST"], R(&[A, O], Some("releases:create"))),
    (&["/api/releases/approve/"], &["POST"], R(&[A, O], Some("releases:modify"))),
    (&["/api/releases/view/", "/api/releases/7/view/"], &["GET"], R(&[A, O], None)),
    (&["/api/customers/"], &["GET", "POST"], R(&[A, O], Some("customers:view"))),
    (&["/api/customers/9/"], &["GET"], R(&[A, O], Some("customers:view"))),
    (&["/api/customers/9/shiptos/"], &["GET"], R(&[A, O, P], Some("customers:view"))),
    (&["/api/customers/9/shiptos/"], &["POST"], R(&[A, O], Some("customers:view"))),
    (&["/api/carriers/"], &["GET"], R(&[A, O, P], Some("carriers:view"))),
    (&["/api/carriers/"], &["POST"], R(&[A, O], Some("carriers:view"))),
    (&["/api/lots/"], &["GET"], R(&[A, O, P], Some("products:view"))),
    (&["/api/lots/"], &["POST"], R(&[A, O], Some("products:view"))),
    (&["/api/bol/preview/", "/api/bol/confirm/", "/api/bol/"], &["POST"], R(&[A, O], Some("bol:create"))),
    (&["/api/bol/42/set-official-weight/"], &["POST"], R(&[A, O], Some("bol:modify"))),
    (&["/api/bol/42/regenerate-pdf/"], &["POST"], R(&[A], Some("admin:modify"))),
    (
        &["/api/inventory-report/", "/api/inventory-report/pdf/", "/api/variance-report/", "/api/variance-report/pdf/"],
        &["GET"],
        R(&[A, O], Some("reports:view")),
    ),
    (
        &["/api/client/context/", "/api/client/shipments/", "/api/client/pending-loads/", "/api/client/inventory/"],
        &["GET"],
        R(&[C, A, O], Some("client_portal:view")),
    ),
    (&["/api/open-releases/"], &["GET"], Who::Bearer(&[A, O])),
    (&["/media/bols/2025/PRT-2025-0002.pdf", "/media/bol_pdfs/x.pdf"], &["GET"], R(&[A, O, C, P], None)),
    (&["/kiosk/", "/kiosk/checkin/success/K7Q2/", "/kiosk/checkout/K7Q2/"], &["GET"], Who::Public),
    (&["/kiosk/checkout/K7Q2/complete/", "/kiosk/manifest.json", "/kiosk/sw.js"], &["GET"], Who::Public),
    (&["/kiosk/checkin/", "/kiosk/checkout/", "/kiosk/checkout/K7Q2/sign/"], &["GET", "POST"], Who::Public),
    (
        &["/kiosk/office/", "/kiosk/office/session/3/assign/", "/kiosk/api/", "/kiosk/api/waiting-drivers/"],
        &["ANY"],
        R(&[A, O], None),
    ),
    (
        &["/tenant/PRT/pigiron/", "/tenant/PRT/pigiron/releases/", "/tenant/PRT/pigiron/bol/3/void/"],
        &["ANY"],
        R(&[A, O], None),
    ),
    (&["/cbrt-ops/", "/cbrt-ops/auth/user/1/change/"], &["ANY"], R(&[A], None)),
    (&["/static/css/cbrt-brand.css", "/static/js/app.js", "/robots.txt", "/favicon.ico"], &["GET"], Who::Public),
    (
        &["/client.html", "/client-schedule.html", "/client-release.html"],
        &["GET"],
        R(&[C, A, O], Some("client_portal:view")),
    ),
    (&["/"], &["GET"], R(&[A, O, P], Some("dashboard:view"))),
    (&["/office.html"], &["GET"], R(&[A, O, P], Some("bol:create"))),
    (&["/bol.html", "/bols/"], &["GET"], R(&[A, O, P], Some("bol:view"))),
    (&["/bol-weights.html"], &["GET"], R(&[A, O, P], Some("bol:modify"))),
    (&["/products.html"], &["GET"], R(&[A, O, P], Some("products:view"))),
    (&["/customers.html"], &["GET"], R(&[A, O, P], Some("customers:view"))),
    (&["/carriers.html"], &["GET"], R(&[A, O, P], Some("carriers:view"))),
    (&["/releases.html"], &["GET"], R(&[A, O, P], Some("releases:create"))),
    (&["/open-releases/"], &["GET"], R(&[A, O, P], Some("releases:view"))),
    (&["/loading-schedule/", "/loading-schedule.html"], &["GET"], R(&[A, O, P], Some("schedule:view"))),
    (&["/inventory-report.html"], &["GET"], R(&[A, O, P], Some("reports:view"))),
    // "All other pages": GET for A O P; a Client is redirected to /client.html.
    (&["/index.html", "/bol/new/", "/schedule.html"], &["GET"], R(&[A, O, P], None)),
];

const PROBE: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

fn shipped() -> Config {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml"));
    match Config::load(path) {
        Ok((c, warnings)) => {
            assert!(warnings.is_empty(), "the shipped policy has warnings: {warnings:?}");
            c
        }
        Err(e) => panic!("shipped policy.toml is invalid:\n{e}"),
    }
}

/// Whether a row's method list covers `method` (GET covers HEAD; ANY covers all).
fn lists(listed: &[&str], method: &str) -> bool {
    listed.contains(&"ANY") || listed.contains(&method) || (method == "HEAD" && listed.contains(&"GET"))
}

/// Expected `decision status [location]`: the row that lists `method` for `path` decides;
/// a method no row lists for the path is denied for everyone. `features` are the caller's.
fn expected(path: &str, method: &str, caller: Option<Role>, features: &Features) -> String {
    let api = path.starts_with("/api/");
    let Some(&(_, _, row)) = ROWS.iter().find(|(paths, listed, _)| paths.contains(&path) && lists(listed, method))
    else {
        return "deny 403".into();
    };
    let (roles, feature) = match row {
        Who::Public => return "allow 200".into(),
        Who::Roles(r, f) => (r, f),
        Who::Bearer(r) => (r, None),
    };
    // The tenant rows are asked by a caller of tenant PRT (the path's own).
    match caller {
        None if api => "login 401".into(),
        None => "login 302".into(),
        Some(role) if roles.contains(&role) && feature.is_none_or(|f| holds(features, f)) => "allow 200".into(),
        Some(_) if api => "deny 403".into(),
        Some(role) if method == "GET" || method == "HEAD" => {
            let landing = if role == C { "/client.html" } else { "/" };
            // Refused on its own landing page: a 403, never a redirect loop.
            if path == landing {
                return "deny 403".into();
            }
            format!("redirect 302 {landing}")
        }
        Some(_) => "deny 403".into(),
    }
}

#[test]
fn every_row_for_every_role_and_method() {
    let config = shipped();
    let policy = &config.policy;
    let none = Features::new();
    let real: Vec<(Role, Features)> = Role::ALL.iter().map(|&r| (r, sso_features(r))).collect();
    let mut callers: Vec<(Option<Role>, &Features, String)> = Vec::new();
    for (role, features) in &real {
        callers.push((Some(*role), features, role.to_string()));
        callers.push((Some(*role), &none, format!("{role}-nofeat")));
    }
    callers.push((None, &none, "anonymous".into()));
    let mut failures = Vec::new();
    let mut checked = 0;
    for &(paths, _, _) in ROWS {
        for &path in paths {
            let normalized = normalize(path).unwrap();
            for &method in PROBE {
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                for (role, features, label) in &callers {
                    let caller = match role {
                        Some(role) => Caller::Role { role: *role, features },
                        None => Caller::Anonymous,
                    };
                    let x = super::explain::explain_in(policy, &m, &normalized, caller, Some("PRT"));
                    let mut got = format!("{} {}", x.verdict.decision(), x.status);
                    if let super::Verdict::Redirect { to, .. } = &x.verdict {
                        got.push_str(&format!(" {to}"));
                    }
                    let want = expected(path, method, *role, features);
                    checked += 1;
                    if got != want {
                        failures.push(format!(
                            "{label:9} {method:6} {path}: got `{got}` (rule {}), want `{want}`",
                            x.rule()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases disagree with the route map:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 4500, "{checked}");
}

/// Trailing-slash variants (Django APPEND_SLASH) are governed by the same rule.
#[test]
fn paths_without_trailing_slash_follow_the_same_rule() {
    let config = shipped();
    for (path, role, want) in [
        ("/api/audit", C, "deny"),
        ("/api/audit", O, "allow"),
        ("/api/history", C, "allow"),
        ("/api/releases/open", P, "deny"),
        ("/api/releases/7", P, "allow"),
        ("/cbrt-ops", O, "redirect"),
        ("/cbrt-ops", A, "allow"),
        ("/kiosk/checkin/success/K7Q2", C, "allow"),
    ] {
        let features = sso_features(role);
        let x = explain(
            &config.policy,
            &Method::GET,
            &normalize(path).unwrap(),
            Caller::Role { role, features: &features },
        );
        assert_eq!(x.verdict.decision(), want, "{role} GET {path} ({})", x.rule());
    }
}

/// Paths the table does not name: fail closed on /api, staff-only pages elsewhere.
#[test]
fn unlisted_routes_are_closed() {
    let config = shipped();
    let none = Features::new();
    let rows: &[(&str, &str, Option<Role>, &str)] = &[
        ("GET", "/api/admin/", Some(A), "deny 403 no_rule"),
        ("GET", "/api/adminx", None, "deny 403 no_rule"),
        ("GET", "/api/users/", Some(A), "deny 403 no_rule"),
        ("GET", "/api/bol/42/extra/", Some(A), "deny 403 no_rule"),
        ("POST", "/api/health/", None, "deny 403 /api/health/"),
        ("GET", "/api/bol/preview/", Some(A), "deny 403 /api/bol/preview/"),
        ("GET", "/api/releases/upload/", Some(P), "deny 403 /api/releases/upload/"),
        ("GET", "/api", Some(A), "deny 403 no_rule"),
        ("GET", "/static/", None, "login 302 /{*page}"),
        ("GET", "/kiosk/unknown/", Some(C), "redirect 302 /{*page}"),
        ("GET", "/media/", Some(C), "redirect 302 /{*page}"),
    ];
    for &(method, path, role, want) in rows {
        let caller = match role {
            Some(role) => Caller::Role { role, features: &none },
            None => Caller::Anonymous,
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let x = explain(&config.policy, &m, &normalize(path).unwrap(), caller);
        assert_eq!(format!("{} {} {}", x.verdict.decision(), x.status, x.rule()), want, "{method} {path} {role:?}");
    }
}
