//! The policy tools through the real binary: `check` on the shipped `policy.toml`,
//! `explain` in both formats, exit codes.

use std::process::Command;

use crate::support::*;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env_remove("PRT_GATE_CONFIG").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_passes_on_the_shipped_policy_and_prints_the_route_table() {
    let (code, out, err) = run(&["check", SHIPPED]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "the shipped policy must check without warnings: {err}");
    assert!(out.contains("routes: "), "{out}");
    for line in [
        "GET       /api/audit/                         Admin, Office",
        "GET       /api/open-releases/                 bearer: Admin, Office",
        "GET       /media/{*key}                       Admin, Office, Operator, Client",
        "ANY       /cbrt-ops/{*rest}                   Admin",
        "GET       /robots.txt                         public",
        "/api/* without a rule      deny everyone (403, rule `no_rule`)",
        "Client    landing /client.html",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
}

#[test]
fn check_fails_on_a_tie_and_warns_about_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmpfile(
        &dir,
        "policy.toml",
        "[[route]]\npath = \"/api/x/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]\n\n\
         [[route]]\npath = \"/api/x/\"\nmethods = [\"GET\"]\nroles = [\"Office\"]\n",
    );
    let (code, _, err) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    let f = p.display();
    assert!(
        err.contains(&format!(
            "{f}:7:8: route.1.path: rules `GET /api/x/` ({f}:1) and `GET /api/x/` ({f}:6) overlap; remove one or make one more specific"
        )),
        "{err}"
    );

    let p = tmpfile(&dir, "policy.toml", "# deploy key AKIAIOSFODNN7EXAMPLE\n[gate]\n");
    let (code, _, err) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: "), "{err}");
    assert!(err.contains("looks like an AWS access key id"), "{err}");
    assert!(!err.contains("AKIAIOSFODNN7EXAMPLE"), "a warning must not echo the secret: {err}");
}

#[test]
fn explain_json_is_exactly_the_spec_form() {
    let (code, out, err) =
        run(&["explain", "--config", SHIPPED, "--role", "Client", "GET", "/api/audit/", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "{\"decision\":\"deny\",\"status\":403,\"rule\":\"/api/audit/\",\"normalized_path\":\"/api/audit/\"}\n"
    );
}

#[test]
fn explain_rows() {
    let rows: &[(&[&str], &str)] = &[
        (
            &["--role", "client", "--feature", "bol:view", "GET", "/api/%68istory", "--format", "json"],
            r#"{"decision":"allow","status":200,"rule":"/api/history/","normalized_path":"/api/history"}"#,
        ),
        (
            &["--anonymous", "GET", "/api/history/", "--format", "json"],
            r#"{"decision":"login","status":401,"rule":"/api/history/","normalized_path":"/api/history/"}"#,
        ),
        (
            &["--anonymous", "GET", "/bol/new/", "--format", "json"],
            r#"{"decision":"login","status":302,"rule":"/{*page}","normalized_path":"/bol/new/","location":"/auth/login/?next=%2Fbol%2Fnew%2F"}"#,
        ),
        (
            &["--role", "Client", "GET", "/bol/new/", "--format", "json"],
            r#"{"decision":"redirect","status":302,"rule":"/{*page}","normalized_path":"/bol/new/","location":"/client.html"}"#,
        ),
        (
            &["--role", "Admin", "GET", "/api/unknown/", "--format", "json"],
            r#"{"decision":"deny","status":403,"rule":"no_rule","normalized_path":"/api/unknown/"}"#,
        ),
        (
            &["--role", "Office", "GET", "/api/open-releases/", "--format", "json"],
            r#"{"decision":"allow","status":200,"rule":"/api/open-releases/","normalized_path":"/api/open-releases/"}"#,
        ),
    ];
    for (args, want) in rows {
        let mut full = vec!["explain", "--config", SHIPPED];
        full.extend_from_slice(args);
        let (code, out, err) = run(&full);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(out.trim_end(), *want, "{args:?}");
    }
}

#[test]
fn explain_text_names_the_rule_and_its_line() {
    let (code, out, err) = run(&["explain", "--config", SHIPPED, "--role", "Operator", "GET", "/api/releases/open/"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("decision: deny\nstatus:   403\nrule:     /api/releases/open/ ("), "{out}");
    assert!(out.contains("policy.toml:"), "{out}");
    assert!(out.contains("allowed:  Admin, Office"), "{out}");
}

#[test]
fn explain_exit_2_on_bad_input() {
    for (args, msg) in [
        (&["--role", "Admin", "GET", "/api/../../etc/passwd"][..], "invalid path: path climbs above the root"),
        (&["--role", "Admin", "GET", "/api/a%2Fb/"][..], "invalid path: path contains an encoded '/' or '\\'"),
        (&["--role", "Admin", "GET", "api/x"][..], "invalid path: path must start with '/'"),
        (&["--role", "Guest", "GET", "/api/x/"][..], "unknown role `Guest`"),
        (&["--role", "Admin", "--feature", "bol", "GET", "/api/x/"][..], "is not `feature:permission`"),
        (&["GET", "/api/x/"][..], "--role"),
    ] {
        let mut full = vec!["explain", "--config", SHIPPED];
        full.extend_from_slice(args);
        let (code, out, err) = run(&full);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

/// `explain`'s login `Location` is the live gate's, byte for byte, for a path whose
/// characters the `next` parameter must encode (`/`, `%`, `'`, `(`) or must leave alone
/// (`-`, `_`, `.`): both come from one function.
#[tokio::test(flavor = "multi_thread")]
async fn explain_login_location_is_the_live_gates() {
    let upstream = Upstream::start().await;
    let more = "[[route]]\npath = \"/private/{*rest}\"\nroles = [\"Admin\"]\n";
    let gate = GateBuilder::new(upstream.addr).toml(more).start();
    let path = "/private/my-file_v2.pdf/a%20b/it's(1)/";
    let (parts, _) = send(&client(), get_with(&gate.url(path), None, Some("text/html"))).await;
    assert_eq!(parts.status, 302);
    let live = parts.headers["location"].to_str().unwrap();
    assert_eq!(live, "/auth/login/?next=%2Fprivate%2Fmy-file_v2.pdf%2Fa%2520b%2Fit%27s%281%29%2F");
    let cfg = gate.dir.path().join("policy.toml");
    let (code, out, err) = run(&["explain", "--config", cfg.to_str().unwrap(), "--anonymous", "GET", path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("\nlocation: {live}\n")), "explain:\n{out}\nlive: {live}");
}

/// The gate-owned routes are one list: `check` prints it, `explain` answers from it, and
/// a rule for another `/auth/` path is consulted (no warning) while one for a gate-owned
/// path is not (warning).
#[test]
fn gate_owned_routes_are_one_list() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmpfile(
        &dir,
        "policy.toml",
        "[[route]]\npath = \"/auth/extra/\"\nroles = [\"Admin\"]\n\n[[route]]\npath = \"/auth/logout/\"\nroles = [\"Admin\"]\n",
    );
    let cfg = p.to_str().unwrap();
    let (code, out, err) = run(&["check", cfg]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("gate-owned                 /auth/login/, /login/, /auth/callback/, /auth/logout/, /logout/"),
        "{out}"
    );
    assert!(!err.contains("/auth/extra/"), "/auth/extra/ is consulted: {err}");
    assert!(err.contains("rule `ANY /auth/logout/` is never consulted"), "{err}");

    let (code, out, err) = run(&["explain", "--config", cfg, "--role", "Admin", "GET", "/auth/extra/"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("decision: allow\n"), "{out}");
    for (path, rule) in
        [("/auth/login/", "gate:login"), ("/logout", "gate:logout"), ("/auth/callback/", "gate:callback")]
    {
        let (code, out, err) = run(&["explain", "--config", cfg, "--anonymous", "GET", path, "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!((v["decision"].as_str(), v["rule"].as_str()), (Some("gate"), Some(rule)), "{path}: {out}");
    }
}
