//! Login events in the audit log: one line per finished login, per refused login and per
//! logout, naming the user, role, tenant, the session's short handle and the request id,
//! and never a token or a cookie value.

use std::time::Duration;

use prt_gate::devsso::{builtin_users, DevSso};

use crate::support::*;

fn audit_lines(gate: &Gate) -> Vec<serde_json::Value> {
    gate.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "audit" && v["event"].as_str().is_some_and(|e| e.starts_with("log")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refusal_and_logout_are_audited_without_secrets() {
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();

    let l = login(&gate, "office@example.com", "", None).await;
    let cookie = l.cookie.expect("session");
    let cookie_value = cookie.split_once('=').unwrap().1.to_string();
    let refused = login(&gate, "nobody@example.com", "", None).await;
    assert_eq!(refused.status, 403);
    // A same-origin sign-out, as the gate's own page sends it.
    let req = hyper::Request::post(gate.url("/auth/logout/"))
        .header("cookie", &cookie)
        .header("origin", gate.url(""))
        .header("sec-fetch-site", "same-origin")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (parts, _) = send(&client(), req).await;
    assert_eq!(parts.status, 302);
    let logout_request_id = parts.headers["x-request-id"].to_str().unwrap().to_string();

    assert!(eventually(Duration::from_secs(5), || audit_lines(&gate).len() >= 3).await, "{}", gate.log_text());
    let lines = audit_lines(&gate);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let (ok, no, out) = (&lines[0], &lines[1], &lines[2]);

    assert_eq!(ok["event"], "login");
    assert_eq!(ok["user"], "office@example.com");
    assert_eq!(ok["role"], "Office");
    assert_eq!(ok["tenant"], "PRT");
    let handle = ok["sid"].as_str().unwrap();
    assert!(handle.len() == 12 && handle.bytes().all(|b| b.is_ascii_hexdigit()), "{ok}");
    assert!(!ok["request_id"].as_str().unwrap_or("").is_empty(), "{ok}");

    assert_eq!(no["event"], "login_refused");
    assert_eq!(no["reason"], "no_role");

    assert_eq!(out["event"], "logout");
    assert_eq!(out["user"], "office@example.com");
    assert_eq!(out["sid"], handle, "logout names the same session");
    assert_eq!(out["request_id"], logout_request_id.as_str());

    // No secret in the log: the session cookie value, a JWT, the OAuth code. Positive
    // control: the same search finds the cookie value where it does occur.
    let log = gate.log_text();
    assert!(l.set_cookie.iter().any(|s| s.contains(&cookie_value)), "control: the search string is the real value");
    assert!(!log.contains(&cookie_value), "session cookie value in the log");
    for line in &lines {
        let text = line.to_string();
        assert!(!text.contains("eyJ"), "a JWT in an audit line: {text}");
        assert!(!text.contains(&cookie_value), "{text}");
    }
}
