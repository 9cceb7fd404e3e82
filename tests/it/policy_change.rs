//! Policy changes without surprises: `prt-gate diff`, `prt-gate replay` and the shadow
//! policy of a running gate, on two policies with known differences:
//!
//! * `/api/bol/{id}/` no longer admits Client;
//! * a new `/api/audit/` rule opens an `/api` path that had no rule (Admin);
//! * `/reports/` admits Operator, who was sent to the landing page before.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use prt_gate::devsso::{builtin_users, DevSso};
use serde_json::{json, Value};

use crate::support::*;

const OLD: &str = r#"
[roles]
landing = { Client = "/client.html" }

[roles.pages]
Client = ["/client.html"]

[[route]]
path = "/api/health/"
methods = ["GET"]
public = true

[[route]]
path = "/api/bol/{id}/"
methods = ["GET"]
roles = ["Admin", "Client"]

[[route]]
path = "/client.html"
methods = ["GET"]
roles = ["Client", "Admin"]

[[route]]
path = "/reports/"
methods = ["GET"]
roles = ["Admin"]
"#;

fn new_policy() -> String {
    OLD.replace("roles = [\"Admin\", \"Client\"]", "roles = [\"Admin\"]").replace(
        "path = \"/reports/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]",
        "path = \"/reports/\"\nmethods = [\"GET\"]\nroles = [\"Admin\", \"Operator\"]",
    ) + "\n[[route]]\npath = \"/api/audit/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]\n"
}

fn prt_gate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run prt-gate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The 16 changes, in the order `diff` reports them (caller, path, method).
fn expected_changes() -> Vec<(&'static str, &'static str, &'static str, &'static str, &'static str)> {
    let mut rows = Vec::new();
    for path in ["/api/audit", "/api/audit/"] {
        for m in ["GET", "HEAD"] {
            rows.push(("anonymous", m, path, "deny [no_rule]", "login [/api/audit/]"));
        }
    }
    for path in ["/api/audit", "/api/audit/"] {
        for m in ["GET", "HEAD"] {
            rows.push(("Admin (session)", m, path, "deny [no_rule]", "allow [/api/audit/]"));
        }
    }
    for path in ["/reports", "/reports/"] {
        for m in ["GET", "HEAD"] {
            rows.push(("Operator (session)", m, path, "redirect / [/reports/]", "allow [/reports/]"));
        }
    }
    for path in ["/api/bol/1", "/api/bol/1/"] {
        for m in ["GET", "HEAD"] {
            rows.push(("Client (session)", m, path, "allow [/api/bol/{id}/]", "deny [/api/bol/{id}/]"));
        }
    }
    rows
}

#[test]
fn diff_reports_the_exact_changed_rows_in_both_formats_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let old = tmpfile(&dir, "old.toml", OLD);
    let new = tmpfile(&dir, "new.toml", &new_policy());
    let (old, new) = (path_str(&old), path_str(&new));

    // Text: a header and exactly the 16 rows.
    let (code, out, err) = prt_gate(&["diff", old, new]);
    assert_eq!(code, 1, "changes → exit 1\n{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("16 change(s) from "), "{out}");
    assert!(lines[1].starts_with("CALLER") && lines[1].contains("METHOD") && lines[1].ends_with("NEW"), "{out}");
    let rows: Vec<Vec<String>> = lines[2..]
        .iter()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect())
        .collect();
    let want: Vec<Vec<String>> = expected_changes()
        .into_iter()
        .map(|(c, m, p, o, n)| vec![c.into(), m.into(), p.into(), o.into(), n.into()])
        .collect();
    assert_eq!(rows, want, "{out}");

    // JSON: the same rows, structured.
    let (code, out, _) = prt_gate(&["diff", old, new, "--format", "json"]);
    assert_eq!(code, 1);
    let j: Value = serde_json::from_str(&out).unwrap();
    let changes = j["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 16, "{out}");
    assert_eq!(
        changes[0],
        json!({"caller": "anonymous", "method": "GET", "path": "/api/audit",
               "old": {"decision": "deny", "rule": "no_rule"},
               "new": {"decision": "login", "rule": "/api/audit/"}})
    );
    assert_eq!(
        changes[8],
        json!({"caller": "Operator (session)", "method": "GET", "path": "/reports",
               "old": {"decision": "redirect", "rule": "/reports/", "location": "/"},
               "new": {"decision": "allow", "rule": "/reports/"}})
    );
    let summary: Vec<(String, String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["caller"].as_str().unwrap().into(),
                c["method"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> =
        expected_changes().into_iter().map(|(c, m, p, _, _)| (c.into(), m.into(), p.into())).collect();
    assert_eq!(summary, want);

    // No change → exit 0 (both formats).
    let (code, out, _) = prt_gate(&["diff", old, old]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("no changes:"), "{out}");
    let (code, out, _) = prt_gate(&["diff", old, old, "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["changes"], json!([]));

    // Invalid policy → exit 2 naming file, line and reason; usage error → exit 2.
    let bad = tmpfile(&dir, "bad.toml", "[[route]]\npath = \"/api/x/\"\nroles = [\"Guest\"]\n");
    let (code, _, err) = prt_gate(&["diff", old, path_str(&bad)]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:3:") && err.contains("unknown role `Guest`"), "{err}");
    let typo = tmpfile(&dir, "typo.toml", "[[routes]]\npath = \"/api/x/\"\nroles = [\"Admin\"]\n");
    let (code, _, err) = prt_gate(&["diff", old, path_str(&typo)]);
    assert_eq!(code, 2, "a misspelt section is not an empty policy");
    assert!(err.contains("typo.toml:1:") && err.contains("unknown section `routes`"), "{err}");
    let (code, _, _) = prt_gate(&["diff", old]);
    assert_eq!(code, 2);
}

/// One access line as the gate writes it (the fields a decision needs plus the others);
/// `who` is (role, auth, features).
fn access_line(i: usize, method: &str, path: &str, decision: &str, rule: &str, who: (&str, &str, &str)) -> String {
    let (role, auth, features) = who;
    let user = if role.is_empty() { String::new() } else { format!("{}@example.com", role.to_lowercase()) };
    serde_json::to_string(&json!({
        "timestamp": "2026-11-28T10:00:00.000000Z", "level": "INFO",
        "method": method, "path": path, "status": 200, "decision": decision, "rule": rule,
        "role": role, "auth": auth, "features": features, "tenant": "primetrade", "user": user,
        "request_id": format!("{i:032x}"), "peer": "10.0.0.7", "upstream_ms": 1.25, "total_ms": 1.5,
        "target": "access"
    }))
    .unwrap()
}

const LINES: usize = 120_000;

/// A day of traffic: ten kinds of line in turn, `i` making every path unique.
fn generate_log(path: &Path) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..LINES {
        let line = match i % 10 {
            0 => access_line(i, "GET", &format!("/api/bol/{i}/"), "allow", "/api/bol/{id}/", ("Client", "session", "bol:view")),
            1 => access_line(i, "GET", "/api/audit/", "deny", "no_rule", ("Admin", "session", "audit:view,bol:view")),
            2 => access_line(i, "GET", "/api/audit/", "deny", "no_rule", ("", "", "")),
            3 => access_line(i, "GET", "/reports/", "redirect", "/reports/", ("Operator", "session", "")),
            4 => access_line(i, "GET", &format!("/api/bol/{i}/"), "allow", "/api/bol/{id}/", ("Admin", "session", "")),
            5 => format!("{{\"timestamp\":\"2026-11-28T10:00:00Z\",\"level\":\"INFO\",\"message\":\"configuration reloaded\",\"target\":\"prt_gate::reload\",\"n\":{i}}}"),
            6 => access_line(i, "GET", "/auth/callback/", "allow", "gate:callback", ("", "", "")),
            7 => access_line(i, "GET", "/api/bol/1/", "deny", "/api/bol/{id}/", ("Office", "bearer", "")),
            8 => access_line(i, "GET", "/client.html", "allow", "/client.html", ("Client", "session", "bol:view")),
            // Roles the gate does not know: every line its own group (the group bound).
            _ => access_line(i, "GET", "/api/bol/1/", "allow", "/api/bol/{id}/", (&format!("Guest{i}"), "session", "")),
        };
        writeln!(f, "{line}").unwrap();
    }
    f.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn replay_of_a_generated_log_counts_exact_groups_in_bounded_memory_plain_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let policy = tmpfile(&dir, "new.toml", &new_policy());
    let log = dir.path().join("access.log");
    let size = generate_log(&log);
    // Gzip copy, as logrotate leaves yesterday's log.
    let gz = dir.path().join("access.log.1.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        std::io::copy(&mut std::fs::File::open(&log).unwrap(), &mut enc).unwrap();
        enc.finish().unwrap();
    }

    let tenth = (LINES / 10) as u64;
    // The same binary replaying one line: its peak RSS is the baseline (code, runtime).
    let one =
        tmpfile(&dir, "one.log", &format!("{}\n", std::fs::read_to_string(&log).unwrap().lines().next().unwrap()));
    let (_, out, _) = prt_gate(&["replay", "--policy", path_str(&policy), "--format", "json", path_str(&one)]);
    let baseline = serde_json::from_str::<Value>(&out).unwrap()["peak_rss_kib"].as_u64().expect("VmHWM");
    for input in [&log, &gz] {
        let (code, out, err) = prt_gate(&[
            "replay",
            "--policy",
            path_str(&policy),
            "--max-groups",
            "5",
            "--format",
            "json",
            path_str(input),
        ]);
        assert_eq!(code, 1, "changes → exit 1\n{err}");
        let j: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["lines"], LINES as u64);
        assert_eq!(j["skipped"], 2 * tenth, "reload lines and gate-owned callbacks");
        assert_eq!(j["replayed"], 8 * tenth);
        assert_eq!(j["changed"], 5 * tenth);
        assert_eq!(j["ungrouped"], tenth - 1, "one Guest group fits under --max-groups 5, the rest do not");
        let groups: Vec<(String, String, String, String, String, u64)> = j["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let s = |k: &str| g[k].as_str().unwrap().to_string();
                (
                    s("role"),
                    s("old_decision"),
                    s("old_rule"),
                    s("new_decision"),
                    s("new_rule"),
                    g["count"].as_u64().unwrap(),
                )
            })
            .collect();
        let g = |r: &str, od: &str, or: &str, nd: &str, nr: &str, n: u64| {
            (r.to_string(), od.to_string(), or.to_string(), nd.to_string(), nr.to_string(), n)
        };
        assert_eq!(
            groups,
            vec![
                g("Admin", "deny", "no_rule", "allow", "/api/audit/", tenth),
                g("Client", "allow", "/api/bol/{id}/", "deny", "/api/bol/{id}/", tenth),
                g("Operator", "redirect", "/reports/", "allow", "/reports/", tenth),
                g("anonymous", "deny", "no_rule", "login", "/api/audit/", tenth),
                g("Guest9", "allow", "/api/bol/{id}/", "deny", "/api/bol/{id}/", 1),
            ],
            "{out}"
        );
        let client = &j["groups"][1]["samples"];
        assert_eq!(
            client,
            &json!(["GET /api/bol/0/", "GET /api/bol/10/", "GET /api/bol/20/"]),
            "three samples, no more"
        );
        // Bounded memory: the replay's own peak RSS (VmHWM) grows by less than 3 MiB over
        // a one-line replay for a log of more than 32 MiB (every path unique and a tenth of
        // the lines a group of their own, so keeping lines, samples or groups would show).
        let peak = j["peak_rss_kib"].as_u64().expect("VmHWM");
        assert!(size > 32 * 1024 * 1024, "the log must be bigger than the bound: {size}");
        eprintln!("replay peak RSS {peak} KiB, baseline {baseline} KiB, log {size} bytes");
        assert!(
            peak < baseline + 3 * 1024,
            "peak RSS {peak} KiB (baseline {baseline} KiB) for a {} MiB log",
            size / 1024 / 1024
        );
    }

    // Text form: the summary and one row per group.
    let (code, out, _) = prt_gate(&["replay", "--policy", path_str(&policy), "--max-groups", "5", path_str(&gz)]);
    assert_eq!(code, 1);
    assert!(out.starts_with(&format!("replayed {} requests of {LINES} lines", 8 * tenth)), "{out}");
    let row = out.lines().find(|l| l.starts_with("Client")).unwrap();
    let cols: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(
        cols,
        [
            "Client",
            "12000",
            "allow [/api/bol/{id}/]",
            "deny [/api/bol/{id}/]",
            "GET /api/bol/0/, GET /api/bol/10/, GET /api/bol/20/"
        ]
    );

    // The old policy decides the log as logged: exit 0, nothing changes (a control for
    // the counts above). Only the lines it can decide: the Guest roles are unknown.
    let old = tmpfile(&dir, "old.toml", OLD);
    let same = dir.path().join("same.log");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&same, text.lines().filter(|l| !l.contains("Guest")).collect::<Vec<_>>().join("\n")).unwrap();
    let (code, out, _) = prt_gate(&["replay", "--policy", path_str(&old), "--format", "json", path_str(&same)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["changed"], 0);

    // Unreadable log or invalid policy → exit 2.
    let (code, _, _) = prt_gate(&["replay", "--policy", path_str(&policy), path_str(&dir.path().join("missing.log"))]);
    assert_eq!(code, 2);
    let (code, _, _) = prt_gate(&["replay", "--policy", path_str(&dir.path().join("missing.toml")), path_str(&log)]);
    assert_eq!(code, 2);
}

/// A series in a scrape; 0 until the gate first counts it.
fn metric(text: &str, series: &str) -> i64 {
    sample(text, series).unwrap_or(0)
}

const CLIENT_DIFF: &str = "prt_gate_shadow_diff_total{role=\"Client\",active=\"allow\",shadow=\"deny\"} ";
const ADMIN_DIFF: &str = "prt_gate_shadow_diff_total{role=\"Admin\",active=\"deny\",shadow=\"allow\"} ";
const SHADOW_FAILED: &str = "prt_gate_shadow_reloads_total{result=\"failed\"} ";
const SHADOW_OK: &str = "prt_gate_shadow_reloads_total{result=\"ok\"} ";

fn shadow_log(gate: &Gate) -> Vec<Value> {
    gate.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "prt_gate::shadow")
        .collect()
}

/// The logged differences.
fn shadow_lines(gate: &Gate) -> Vec<Value> {
    shadow_log(gate).into_iter().filter(|v| v.get("shadow_rule").is_some()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn shadow_policy_is_counted_and_logged_never_enforced_and_a_broken_file_changes_nothing() {
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).toml("[policy]\nshadow = \"shadow.toml\"").policy(OLD).start();
    // The shadow file appears after start: the gate runs without one, then picks it up.
    let shadow = gate.dir.path().join("shadow.toml");
    std::fs::write(&shadow, new_policy()).unwrap();
    assert!(eventually_async(Duration::from_secs(10), || async { metric(&scrape(&gate).await, SHADOW_OK) == 1 }).await);
    assert_eq!(metric(&scrape(&gate).await, SHADOW_FAILED), 1, "missing at start: one warning and one count");

    let client_cookie = login(&gate, "client@example.com", "", None).await.cookie.unwrap();
    let admin_cookie = login(&gate, "admin@example.com", "", None).await.cookie.unwrap();
    let c = client();
    let status = |url: &str, cookie: &str| {
        let req = get_with(&gate.url(url), Some(cookie), None);
        let c = c.clone();
        async move { send(&c, req).await.0.status.as_u16() }
    };
    let before = up.count();
    // Active allows Client on /api/bol/{id}/ (the shadow would not); active has no rule
    // for /api/audit/ (the shadow would let Admin in). Enforcement is the active policy's.
    for _ in 0..3 {
        assert_eq!(status("/api/bol/7/", &client_cookie).await, 200);
        assert_eq!(status("/api/audit/", &admin_cookie).await, 403);
    }
    assert_eq!(status("/api/bol/8/", &admin_cookie).await, 200, "same answer in both: no difference");
    let seen: Vec<(String, String)> =
        up.seen.lock().unwrap()[before..].iter().map(|s| (s.method.clone(), s.target.clone())).collect();
    let want: Vec<(String, String)> = ["/api/bol/7/", "/api/bol/7/", "/api/bol/7/", "/api/bol/8/"]
        .iter()
        .map(|t| ("GET".to_string(), t.to_string()))
        .collect();
    assert_eq!(seen, want, "the upstream sees exactly what the active policy allows");

    let m = scrape(&gate).await;
    assert_eq!(metric(&m, CLIENT_DIFF), 3, "{m}");
    assert_eq!(metric(&m, ADMIN_DIFF), 3, "{m}");
    assert!(!m.contains("role=\"Admin\",active=\"allow\""), "the agreeing request is not a difference\n{m}");
    // Logged once per (role, method, rule pair) per minute, with a sample path.
    assert!(eventually_async(Duration::from_secs(5), || async { shadow_lines(&gate).len() >= 2 }).await);
    let lines = shadow_lines(&gate);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let client_line = lines.iter().find(|l| l["role"] == "Client").unwrap();
    assert_eq!(
        (&client_line["method"], &client_line["path"], &client_line["active"], &client_line["shadow"]),
        (&json!("GET"), &json!("/api/bol/7/"), &json!("allow"), &json!("deny"))
    );
    assert_eq!(client_line["shadow_rule"], "/api/bol/{id}/");
    let admin_line = lines.iter().find(|l| l["role"] == "Admin").unwrap();
    assert_eq!((&admin_line["active_rule"], &admin_line["shadow_rule"]), (&json!("no_rule"), &json!("/api/audit/")));

    // The access line carries what a replay needs: credential kind and features.
    let access = gate.access_lines();
    let bol = access.iter().find(|l| l["path"] == "/api/bol/7/").unwrap();
    assert_eq!((&bol["role"], &bol["auth"]), (&json!("Client"), &json!("session")));
    assert!(bol["features"].as_str().unwrap().split(',').any(|f| f == "bol:view"), "{bol}");

    // A broken shadow file: a warning and a counter; the previous shadow stays, the
    // active policy and what the upstream sees do not change.
    let reloads_failed = metric(&scrape(&gate).await, "prt_gate_config_reloads_total{result=\"failed\"} ");
    std::fs::write(&shadow, "[[route]]\npath = \"/api/bol/{id}/\"\nroles = [\"Guest\"]\n").unwrap();
    assert!(
        eventually_async(Duration::from_secs(10), || async { metric(&scrape(&gate).await, SHADOW_FAILED) == 2 }).await
    );
    // The warning names the file's line and the reason.
    let refused = || {
        shadow_log(&gate).into_iter().any(|l| {
            l["message"].as_str().is_some_and(|m| m.starts_with("shadow policy refused"))
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("shadow.toml:3:") && e.contains("unknown role `Guest`"))
        })
    };
    assert!(eventually_async(Duration::from_secs(5), || async { refused() }).await, "{}", gate.log_text());
    let before = up.count();
    assert_eq!(status("/api/bol/7/", &client_cookie).await, 200);
    assert_eq!(status("/api/audit/", &admin_cookie).await, 403);
    assert_eq!(up.count(), before + 1);
    assert_eq!(up.last().target, "/api/bol/7/");
    let m = scrape(&gate).await;
    assert_eq!(metric(&m, CLIENT_DIFF), 4, "the previous shadow still decides\n{m}");
    assert_eq!(metric(&m, "prt_gate_config_reloads_total{result=\"failed\"} "), reloads_failed);
    assert_eq!(metric(&m, SHADOW_OK), 1);

    // Promote-equivalent: the shadow becomes the active policy's twin → no more differences.
    std::fs::write(&shadow, OLD).unwrap();
    assert!(eventually_async(Duration::from_secs(10), || async { metric(&scrape(&gate).await, SHADOW_OK) == 2 }).await);
    assert_eq!(status("/api/bol/7/", &client_cookie).await, 200);
    assert_eq!(metric(&scrape(&gate).await, CLIENT_DIFF), 4);
}

#[test]
fn check_warns_about_an_invalid_shadow_policy_and_refuses_an_empty_name() {
    let dir = tempfile::tempdir().unwrap();
    tmpfile(&dir, "shadow.toml", "[[route]]\npath = \"/api/x/\"\nroles = [\"Guest\"]\n");
    let cfg = tmpfile(&dir, "policy.toml", &format!("[policy]\nshadow = \"shadow.toml\"\n{OLD}"));
    let (code, _, err) = prt_gate(&["check", path_str(&cfg)]);
    assert_eq!(code, 0, "serve runs without an invalid shadow, so check passes\n{err}");
    assert!(err.contains("warning: shadow policy") && err.contains("shadow.toml:3:") && err.contains("Guest"), "{err}");
    // Control: a valid shadow draws no warning.
    tmpfile(&dir, "shadow.toml", &new_policy());
    let (code, _, err) = prt_gate(&["check", path_str(&cfg)]);
    assert_eq!(code, 0);
    assert!(!err.contains("shadow"), "{err}");
    let empty = tmpfile(&dir, "empty.toml", &format!("[policy]\nshadow = \"\"\n{OLD}"));
    let (code, _, err) = prt_gate(&["check", path_str(&empty)]);
    assert_eq!(code, 2);
    assert!(err.contains("empty.toml:2:") && err.contains("policy.shadow"), "{err}");
}
