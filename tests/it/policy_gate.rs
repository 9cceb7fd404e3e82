//! The shipped policy through the running gate agrees with `explain` for
//! every rule of `policy.toml` (docs/design.md §14), every role, anonymous, and the
//! methods that matter — the same decision code, observed from outside.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use prt_gate::config::Config;
use prt_gate::devsso::{builtin_users, DevSso};
use prt_gate::normalize::normalize;
use prt_gate::policy::explain::{explain, Caller};
use prt_gate::policy::{Auth, Role};
use serde_json::json;

use crate::support::*;

type Features = std::collections::BTreeMap<String, Vec<String>>;

/// A concrete path for a rule pattern: `{x}` → `7`, `{*x}` → `bols/2025/x.pdf`.
fn instantiate(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                "bols/2025/x.pdf".to_string()
            } else if seg.starts_with('{') {
                "7".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread")]
async fn running_gate_agrees_with_explain_for_every_rule_role_and_method() {
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let (config, _) = Config::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml"))).unwrap();
    let policy = config.policy.clone();

    let users = builtin_users();
    let mut callers: Vec<(Option<Role>, Option<String>, &Features)> = Vec::new();
    let empty = std::collections::BTreeMap::new();
    callers.push((None, None, &empty));
    for role in Role::ALL {
        let user = users.iter().find(|u| u.role.as_deref() == Some(role.as_str())).unwrap();
        let cookie = login(&gate, &user.email, "", None).await.cookie.unwrap();
        callers.push((Some(role), Some(cookie), &user.features));
    }

    let mut paths: Vec<String> = policy.rules().iter().map(|r| instantiate(r.pattern.as_str())).collect();
    paths.extend(["/api/not-in-the-policy/".to_string(), "/some/page.html".to_string(), "/api/history".to_string()]);
    paths.sort();
    paths.dedup();
    let methods = [http::Method::GET, http::Method::POST, http::Method::PATCH, http::Method::DELETE];
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for path in &paths {
        let normalized = normalize(path).unwrap();
        let api = path.starts_with("/api/");
        for method in &methods {
            for (role, cookie, features) in &callers {
                let caller = match role {
                    None => Caller::Anonymous,
                    Some(r) => Caller::Role { role: *r, features },
                };
                let ex = explain(&policy, method, &normalized, caller);
                let mut b = Request::builder().method(method.clone()).uri(gate.url(path));
                if !api {
                    b = b.header("accept", "text/html");
                }
                match (role, ex.auth) {
                    (Some(r), Auth::Bearer) => {
                        let user = users.iter().find(|u| u.role.as_deref() == Some(r.as_str())).unwrap();
                        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                        let token = sso.mint(json!({"sub": user.sub(), "iss": sso.issuer(), "aud": "prt-gate-dev",
                            "iat": now, "exp": now + 600, "email": user.email,
                            "application_roles": {"primetrade": {"role": r.as_str(), "features": user.features}}}));
                        b = b.header("authorization", format!("Bearer {token}"));
                    }
                    (Some(_), Auth::Session) => b = b.header("cookie", cookie.as_deref().unwrap()),
                    (None, _) => {}
                }
                let (parts, _) = send(&client(), b.body(Full::new(Bytes::new())).unwrap()).await;
                let mut expected = ex.status;
                if expected == 200 && path.starts_with("/media/") {
                    expected = 404; // allowed, then answered by the gate: no bucket in this test
                }
                if parts.status.as_u16() != expected {
                    mismatches.push(format!(
                        "{method} {path} as {}: gate {} explain {} ({})",
                        role.map_or("anonymous", |r| r.as_str()),
                        parts.status,
                        ex.status,
                        ex.rule()
                    ));
                }
                if expected == 302 {
                    let loc =
                        parts.headers.get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                    assert!(loc.starts_with(&gate.url("/")), "{method} {path}: {loc}");
                }
                checked += 1;
            }
        }
    }
    assert!(mismatches.is_empty(), "{} of {checked} disagree:\n{}", mismatches.len(), mismatches.join("\n"));
    assert!(checked > 1000, "{checked}");
}
