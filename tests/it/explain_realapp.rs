//! `prt-gate explain --format json` on the shipped policy agrees with the application's own
//! checks, row by row and role by role. Each caller holds the feature permissions the real
//! SSO gives its role, passed as `--feature` flags, and acts for tenant PRT. The table is
//! ours: what Django itself requires of each route (role list, feature), with the places
//! where the gate is deliberately stricter (the Phase 1 blocks) said in the row.

use std::process::Command;

use crate::support::BIN;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml");

/// `--feature` flags for what the real SSO grants each role (seeded features plus the
/// hand-granted `dashboard:view`, `client_portal:view`, `admin:modify`).
fn features(role: &str) -> &'static [&'static str] {
    match role {
        "Admin" => &[
            "bol:view",
            "bol:create",
            "bol:modify",
            "bol:delete",
            "bol:export",
            "releases:view",
            "releases:create",
            "releases:modify",
            "releases:delete",
            "releases:export",
            "schedule:view",
            "schedule:create",
            "schedule:modify",
            "schedule:delete",
            "schedule:export",
            "products:view",
            "products:create",
            "products:modify",
            "products:delete",
            "customers:view",
            "customers:create",
            "customers:modify",
            "customers:delete",
            "carriers:view",
            "carriers:create",
            "carriers:modify",
            "carriers:delete",
            "reports:view",
            "reports:export",
            "dashboard:view",
            "admin:modify",
        ],
        "Office" => &[
            "bol:view",
            "bol:create",
            "bol:modify",
            "releases:view",
            "releases:create",
            "releases:modify",
            "schedule:view",
            "schedule:create",
            "schedule:modify",
            "products:view",
            "customers:view",
            "carriers:view",
            "reports:view",
            "dashboard:view",
        ],
        "Operator" => &[
            "bol:view",
            "releases:view",
            "releases:modify",
            "schedule:view",
            "products:view",
            "customers:view",
            "carriers:view",
            "dashboard:view",
        ],
        _ => &["bol:view", "releases:view", "schedule:view", "client_portal:view"],
    }
}

/// `(method, path, who passes, what the application checks)`. `who`: initials of the
/// roles that pass holding their SSO features (`-` = public; `B:` = Bearer route).
const ROWS: &[(&str, &str, &str, &str)] = &[
    ("GET", "/", "AOP", "login and dashboard:view; Clients land on /client.html"),
    ("GET", "/client.html", "C", "client_portal:view (staff lack it)"),
    ("GET", "/client-schedule.html", "C", "client_portal:view"),
    ("GET", "/client-release.html", "C", "client_portal:view"),
    ("GET", "/api/client/shipments/", "C", "client_portal:view"),
    ("GET", "/api/client/inventory/", "C", "client_portal:view"),
    ("GET", "/api/client/pending-loads/", "C", "client_portal:view"),
    ("GET", "/office.html", "AO", "bol:create"),
    ("GET", "/bol.html", "AOP", "bol:view"),
    ("GET", "/bols/", "AOP", "bol:view"),
    ("GET", "/bol-weights.html", "AO", "bol:modify"),
    ("GET", "/products.html", "AOP", "products:view"),
    ("GET", "/customers.html", "AOP", "customers:view"),
    ("GET", "/carriers.html", "AOP", "carriers:view"),
    ("GET", "/releases.html", "AO", "releases:create"),
    ("GET", "/open-releases/", "AOP", "releases:view"),
    ("GET", "/loading-schedule/", "AOP", "schedule:view"),
    ("GET", "/loading-schedule.html", "AOP", "schedule:view"),
    ("GET", "/inventory-report.html", "AO", "reports:view"),
    ("GET", "/api/user/context/", "AO", "Admin/Office/Client and dashboard:view"),
    ("GET", "/api/products/", "AO", "Admin/Office/Client and products:view"),
    ("POST", "/api/products/", "A", "products:view; Django's lower-case `admin` check is its bug"),
    ("GET", "/api/customers/", "AO", "Admin/Office and customers:view"),
    ("GET", "/api/customers/9/", "AO", "Admin/Office and customers:view"),
    ("GET", "/api/customers/9/shiptos/", "AOP", "customers:view; writes Admin/Office"),
    ("POST", "/api/customers/9/shiptos/", "AO", "Admin/Office write"),
    ("GET", "/api/carriers/", "AOP", "carriers:view; writes Admin/Office"),
    ("POST", "/api/carriers/", "AO", "Admin/Office write"),
    ("GET", "/api/lots/", "AOP", "products:view; writes Admin/Office"),
    ("POST", "/api/lots/", "AO", "Admin/Office write"),
    ("POST", "/api/bol/", "AO", "Admin/Office and bol:create"),
    ("POST", "/api/bol/preview/", "AO", "Admin/Office and bol:create"),
    ("POST", "/api/bol/confirm/", "AO", "Admin/Office and bol:create"),
    ("GET", "/api/bol/42/", "AOC", "Admin/Office/Client and bol:view"),
    ("GET", "/api/bol/42/download/", "AOC", "Admin/Office/Client and bol:view"),
    ("GET", "/api/history/", "AOC", "Admin/Office/Client and bol:view"),
    ("POST", "/api/bol/42/set-official-weight/", "AO", "Admin/Office and bol:modify"),
    ("POST", "/api/bol/42/regenerate-pdf/", "A", "Admin and admin:modify"),
    ("GET", "/api/balances/", "AO", "reports:view; Django would let a Client in, Phase 1 does not"),
    ("GET", "/api/audit/", "AO", "Admin/Office and reports:view"),
    ("GET", "/api/inventory-report/", "AO", "Admin/Office and reports:view"),
    ("GET", "/api/variance-report/", "AO", "Admin/Office and reports:view"),
    ("GET", "/api/releases/", "AOC", "Admin/Office/Client and releases:view"),
    ("GET", "/api/releases/open/", "AO", "releases:view; Phase 1 keeps Clients out"),
    ("GET", "/api/releases/pending-loads/", "AO", "releases:view; Phase 1 keeps Clients out"),
    ("GET", "/api/releases/12/", "AOPC", "releases:view; writes Admin/Office"),
    ("PATCH", "/api/releases/12/", "AO", "Admin/Office write"),
    ("GET", "/api/releases/load/3/", "AOP", "releases:view; writes Admin/Office"),
    ("PATCH", "/api/releases/load/3/", "AO", "Admin/Office write"),
    ("POST", "/api/releases/upload/", "AO", "Admin/Office and releases:create"),
    ("POST", "/api/releases/approve/", "AO", "Admin/Office and releases:modify"),
    ("GET", "/api/open-releases/", "B:AO", "no session: the view verifies the SSO Bearer JWT, Admin/Office"),
    ("GET", "/kiosk/checkin/success/K7Q2/", "-", "drivers, no account"),
    ("POST", "/kiosk/checkin/", "-", "drivers, no account"),
    ("GET", "/kiosk/sw.js", "-", "drivers, no account"),
    ("GET", "/kiosk/office/", "AO", "nothing in Django: the gate is the only check"),
    ("GET", "/tenant/PRT/pigiron/releases/", "AO", "login only in Django; the gate adds the tenant"),
];

fn explain(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(["explain", "--config", SHIPPED, "--format", "json"]).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn initial(role: &str) -> char {
    match role {
        "Admin" => 'A',
        "Office" => 'O',
        "Operator" => 'P',
        _ => 'C',
    }
}

fn expected(method: &str, path: &str, who: &str, caller: Option<&str>) -> (String, u16) {
    let api = path.starts_with("/api/");
    let roles = who.trim_start_matches("B:");
    match caller {
        _ if who == "-" => ("allow".into(), 200),
        None if api => ("login".into(), 401),
        None => ("login".into(), 302),
        Some(r) if roles.contains(initial(r)) => ("allow".into(), 200),
        Some(_) if api => ("deny".into(), 403),
        Some(r) => {
            let landing = if r == "Client" { "/client.html" } else { "/" };
            match method {
                "GET" if path != landing => ("redirect".into(), 302),
                _ => ("deny".into(), 403),
            }
        }
    }
}

#[test]
fn explain_json_agrees_with_the_application_for_every_row_and_role() {
    let callers = [Some("Admin"), Some("Office"), Some("Operator"), Some("Client"), None];
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ROWS
            .chunks(ROWS.len().div_ceil(4))
            .map(|chunk| {
                s.spawn(move || {
                    let mut failures = Vec::new();
                    for &(method, path, who, why) in chunk {
                        for caller in callers {
                            let mut args: Vec<&str> = Vec::new();
                            match caller {
                                Some(role) => {
                                    args.extend(["--role", role, "--tenant", "PRT"]);
                                    for f in features(role) {
                                        args.extend(["--feature", f]);
                                    }
                                }
                                None => args.push("--anonymous"),
                            }
                            args.extend([method, path]);
                            let got = explain(&args);
                            let want = expected(method, path, who, caller);
                            let got_pair = (
                                got["decision"].as_str().unwrap_or("").to_string(),
                                got["status"].as_u64().unwrap_or(0) as u16,
                            );
                            if got_pair != want {
                                failures.push(format!("{caller:?} {method} {path} ({why}): got {got}, want {want:?}"));
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `explain` shows the tenant match, and `--tenant` decides it.
#[test]
fn explain_shows_the_tenant_match() {
    let args = ["--role", "Office", "--tenant", "ACME", "GET", "/tenant/PRT/pigiron/releases/"];
    let got = explain(&args);
    assert_eq!(got["decision"], "deny");
    assert_eq!(
        got["tenant"],
        serde_json::json!({"param": "code", "value": "PRT", "caller": "ACME", "unscoped_any": false})
    );
    let ok = explain(&["--role", "Office", "--tenant", "PRT", "GET", "/tenant/PRT/pigiron/releases/"]);
    assert_eq!(ok["decision"], "allow");
    // Without --tenant the static tenant code of the file (PRT by default) applies.
    assert_eq!(explain(&["--role", "Office", "GET", "/tenant/PRT/pigiron/releases/"])["decision"], "allow");
    assert_eq!(explain(&["--role", "Office", "GET", "/tenant/ACME/pigiron/releases/"])["decision"], "deny");
    let text = Command::new(BIN)
        .args(["explain", "--config", SHIPPED, "--role", "Office", "--tenant", "ACME", "GET", "/tenant/PRT/pigiron/x/"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("tenant:   {code} = `PRT` must equal the caller's tenant `ACME`"), "{text}");
}

/// `check` refuses a tenant match naming a parameter the pattern lacks: exit 2, with the
/// file, line and reason. The control is the same rule naming the right parameter.
#[test]
fn check_refuses_a_tenant_match_without_its_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |param: &str| {
        format!("[[route]]\npath = \"/tenant/{{code}}/pigiron/{{*rest}}\"\nroles = [\"Office\"]\ntenant = \"{{{param}}}\"\n")
    };
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, rule("tenant")).unwrap();
    let out = Command::new(BIN).arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "bad.toml:4:10: route.0.tenant: the pattern `/tenant/{code}/pigiron/{*rest}` has no `{tenant}` segment"
        ),
        "{err}"
    );
    let good = dir.path().join("good.toml");
    std::fs::write(&good, rule("code")).unwrap();
    let out = Command::new(BIN).arg("check").arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
