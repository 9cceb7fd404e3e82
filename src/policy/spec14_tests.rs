//! SPEC section 14, row by row, against the shipped `policy.toml`: every path of every row,
//! for Admin, Office, Operator, Client and an anonymous caller, with every method the row
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
    /// Session cookie with one of these roles.
    Roles(&'static [Role]),
    /// SSO Bearer JWT with one of these roles.
    Bearer(&'static [Role]),
}

/// `(paths, methods, who)`: one SPEC 14 row. `{id}` and tails are filled with samples.
/// `ANY` rows are probed with GET, POST, PUT, PATCH, DELETE.
const ROWS: &[(&[&str], &[&str], Who)] = &[
    (&["/api/health/", "/api/csrf/", "/api/customers/branding/"], &["GET"], Who::Public),
    (&["/api/user/context/", "/api/auth/me/"], &["GET"], Who::Roles(&[A, O, P, C])),
    (&["/api/products/"], &["GET"], Who::Roles(&[A, O, P, C])),
    (&["/api/products/"], &["POST"], Who::Roles(&[A])),
    (&["/api/history/"], &["GET"], Who::Roles(&[A, O, C])),
    (&["/api/bol/42/", "/api/bol/42/download/"], &["GET"], Who::Roles(&[A, O, P, C])),
    (&["/api/balances/"], &["GET"], Who::Roles(&[A, O])),
    (&["/api/audit/"], &["GET"], Who::Roles(&[A, O])),
    (&["/api/releases/open/", "/api/releases/pending-loads/"], &["GET"], Who::Roles(&[A, O])),
    (&["/api/releases/", "/api/releases/load/7/", "/api/releases/7/"], &["GET"], Who::Roles(&[A, O, P])),
    (&["/api/releases/load/7/", "/api/releases/7/"], &["PATCH"], Who::Roles(&[A, O])),
    (&["/api/releases/upload/", "/api/releases/approve/"], &["POST"], Who::Roles(&[A, O])),
    (&["/api/releases/view/", "/api/releases/7/view/"], &["GET"], Who::Roles(&[A, O])),
    (&["/api/customers/", "/api/customers/9/"], &["GET"], Who::Roles(&[A, O, P])),
    (&["/api/customers/"], &["POST"], Who::Roles(&[A, O])),
    (&["/api/customers/9/shiptos/", "/api/carriers/", "/api/lots/"], &["GET"], Who::Roles(&[A, O, P])),
    (&["/api/customers/9/shiptos/", "/api/carriers/", "/api/lots/"], &["POST"], Who::Roles(&[A, O])),
    (&["/api/bol/preview/", "/api/bol/confirm/", "/api/bol/"], &["POST"], Who::Roles(&[A, O])),
    (&["/api/bol/42/set-official-weight/"], &["POST"], Who::Roles(&[A, O])),
    (&["/api/bol/42/regenerate-pdf/"], &["POST"], Who::Roles(&[A])),
    (
        &["/api/inventory-report/", "/api/inventory-report/pdf/", "/api/variance-report/", "/api/variance-report/pdf/"],
        &["GET"],
        Who::Roles(&[A, O]),
    ),
    (
        &["/api/client/context/", "/api/client/shipments/", "/api/client/pending-loads/", "/api/client/inventory/"],
        &["GET"],
        Who::Roles(&[C, A, O]),
    ),
    (&["/api/open-releases/"], &["GET"], Who::Bearer(&[A, O])),
    (&["/media/bols/2025/PRT-2025-0002.pdf", "/media/bol_pdfs/x.pdf"], &["GET"], Who::Roles(&[A, O, C, P])),
    (&["/kiosk/", "/kiosk/checkin/", "/kiosk/checkout/", "/kiosk/checkout/12/done/"], &["GET", "POST"], Who::Public),
    (&["/kiosk/office/", "/kiosk/office/queue/", "/kiosk/api/", "/kiosk/api/trucks/1/"], &["ANY"], Who::Roles(&[A, O])),
    (&["/tenant/PRT/pigiron/", "/tenant/PRT/pigiron/lots/3/"], &["ANY"], Who::Roles(&[A, O])),
    (&["/cbrt-ops/", "/cbrt-ops/auth/user/1/change/"], &["ANY"], Who::Roles(&[A])),
    (&["/static/app.css", "/static/js/app.js", "/robots.txt"], &["GET"], Who::Public),
    (&["/client.html", "/client-schedule.html", "/client-release.html"], &["GET"], Who::Roles(&[C, A, O])),
    // "All other pages": GET for A O P; a Client is redirected to /client.html.
    (&["/", "/index.html", "/bol/new/", "/releases/", "/schedule.html"], &["GET"], Who::Roles(&[A, O, P])),
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
/// a method no row lists for the path is denied for everyone.
fn expected(path: &str, method: &str, caller: Option<Role>) -> String {
    let api = path.starts_with("/api/");
    let Some(&(_, _, row)) = ROWS.iter().find(|(paths, listed, _)| paths.contains(&path) && lists(listed, method))
    else {
        return "deny 403".into();
    };
    let roles = match row {
        Who::Public => return "allow 200".into(),
        Who::Roles(r) | Who::Bearer(r) => r,
    };
    match caller {
        None if api => "login 401".into(),
        None => "login 302".into(),
        Some(role) if roles.contains(&role) => "allow 200".into(),
        Some(_) if api => "deny 403".into(),
        Some(role) if method == "GET" || method == "HEAD" => {
            format!("redirect 302 {}", if role == C { "/client.html" } else { "/" })
        }
        Some(_) => "deny 403".into(),
    }
}

#[test]
fn every_row_of_spec_section_14_for_every_role_and_method() {
    let config = shipped();
    let policy = &config.policy;
    let none = Features::new();
    let callers: [(Option<Role>, &str); 5] =
        [(Some(A), "Admin"), (Some(O), "Office"), (Some(P), "Operator"), (Some(C), "Client"), (None, "anonymous")];
    let mut failures = Vec::new();
    let mut checked = 0;
    for &(paths, _, _) in ROWS {
        for &path in paths {
            let normalized = normalize(path).unwrap();
            for &method in PROBE {
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                for (role, label) in callers {
                    let caller = match role {
                        Some(role) => Caller::Role { role, features: &none },
                        None => Caller::Anonymous,
                    };
                    let x = explain(policy, &m, &normalized, caller);
                    let mut got = format!("{} {}", x.verdict.decision(), x.status);
                    if let super::Verdict::Redirect { to, .. } = &x.verdict {
                        got.push_str(&format!(" {to}"));
                    }
                    let want = expected(path, method, role);
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
        "{} of {checked} cases disagree with SPEC 14:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 1000, "{checked}");
}

/// Trailing-slash variants (Django APPEND_SLASH) are governed by the same rule.
#[test]
fn spec14_paths_without_trailing_slash_follow_the_same_rule() {
    let config = shipped();
    let none = Features::new();
    for (path, role, want) in [
        ("/api/audit", C, "deny"),
        ("/api/audit", O, "allow"),
        ("/api/history", C, "allow"),
        ("/api/releases/open", P, "deny"),
        ("/api/releases/7", P, "allow"),
        ("/cbrt-ops", O, "redirect"),
        ("/cbrt-ops", A, "allow"),
    ] {
        let x =
            explain(&config.policy, &Method::GET, &normalize(path).unwrap(), Caller::Role { role, features: &none });
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
