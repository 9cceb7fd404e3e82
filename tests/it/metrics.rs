//! `/metrics` after a known request mix, parsed by a real Prometheus parser
//! (the Prometheus project's Python OpenMetrics parser): exact counts per rule ×
//! role × decision. And `/status` shows refusals without user or query string.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use prt_gate::devsso::{builtin_users, DevSso};

use crate::support::*;

pub const MIX_POLICY: &str = r#"
[roles.pages]
Client = ["/client.html"]

[[route]]
path = "/api/health/"
methods = ["GET"]
public = true

[[route]]
path = "/api/balances/"
methods = ["GET"]
roles = ["Office", "Admin"]

[[route]]
path = "/api/client/shipments/"
methods = ["GET"]
roles = ["Client"]
name = "client-shipments"
"#;

/// One parsed sample.
#[derive(Debug, serde::Deserialize)]
pub struct Sample {
    pub family: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses an OpenMetrics text with `prometheus_client`'s parser (fails the test if
/// the text is not valid OpenMetrics).
pub fn parse(text: &str) -> Vec<Sample> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "parser refused the exposition: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Runs the mix against a gate with [`MIX_POLICY`]; returns the expected per-rule counts.
pub async fn request_mix(gate: &Gate) -> BTreeMap<(String, String, String), f64> {
    let c = client();
    let office = login(gate, "office@example.com", "", None).await.cookie.unwrap();
    let client_cookie = login(gate, "client@example.com", "", None).await.cookie.unwrap();
    let json = Some("application/json");
    let html = Some("text/html");
    // (path, cookie, accept, times, expected status)
    type Step<'a> = (&'a str, Option<&'a str>, Option<&'a str>, usize, u16);
    let mix: [Step; 8] = [
        ("/api/health/", None, json, 3, 200),
        ("/api/balances/", None, json, 2, 401),
        ("/api/balances/", Some(&office), json, 4, 200),
        ("/api/balances/?token=sekrit-query-value", Some(&client_cookie), json, 2, 403),
        ("/api/client/shipments/", Some(&office), json, 1, 403),
        ("/api/client/shipments/", Some(&client_cookie), json, 2, 200),
        ("/api/not-in-the-policy/", Some(&client_cookie), json, 1, 403),
        ("/office.html", Some(&client_cookie), html, 1, 302),
    ];
    for (path, cookie, accept, n, want) in mix {
        for _ in 0..n {
            let (parts, _) = send(&c, get_with(&gate.url(path), cookie, accept)).await;
            assert_eq!(parts.status.as_u16(), want, "{path}");
        }
    }
    let e = |r: &str, role: &str, d: &str, n: f64| ((r.to_string(), role.to_string(), d.to_string()), n);
    BTreeMap::from([
        e("GET /api/health/", "none", "allow", 3.0),
        e("GET /api/balances/", "none", "login", 2.0),
        e("GET /api/balances/", "Office", "allow", 4.0),
        e("GET /api/balances/", "Client", "deny", 2.0),
        e("GET /api/client/shipments/", "Office", "deny", 1.0),
        e("GET /api/client/shipments/", "Client", "allow", 2.0),
        e("no_rule", "none", "deny", 1.0),
        e("roles.pages", "Client", "redirect", 1.0),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_each_rule_role_and_decision_exactly() {
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).policy(MIX_POLICY).start();
    let expected = request_mix(&gate).await;

    let (parts, body) = send(&client(), get(&format!("http://{}/metrics", gate.admin))).await;
    assert_eq!(parts.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let samples = parse(std::str::from_utf8(&body).unwrap());

    let got: BTreeMap<(String, String, String), f64> = samples
        .iter()
        .filter(|s| s.name == "prt_gate_rule_decisions_total")
        .map(|s| ((s.labels["rule"].clone(), s.labels["role"].clone(), s.labels["decision"].clone()), s.value))
        .collect();
    assert_eq!(got, expected);
    let family = samples.iter().find(|s| s.name == "prt_gate_rule_decisions_total").unwrap();
    assert_eq!((family.family.as_str(), family.kind.as_str()), ("prt_gate_rule_decisions", "counter"));

    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
    };
    assert_eq!(value("prt_gate_logins_total", &[("outcome", "ok")]), Some(2.0));
    // Forwarded: 3 health + 4 balances + 2 shipments, all 200 from the test upstream.
    assert_eq!(value("prt_gate_upstream_responses_total", &[("status", "2xx")]), Some(9.0));
    assert_eq!(value("prt_gate_upstream_duration_seconds_count", &[]), Some(9.0));
    assert_eq!(value("prt_gate_requests_total", &[("decision", "deny"), ("status", "4xx")]), Some(4.0));
    assert_eq!(value("prt_gate_requests_total", &[("decision", "redirect"), ("status", "3xx")]), Some(1.0));
    assert_eq!(value("prt_gate_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    let digest = samples.iter().find(|s| s.name == "prt_gate_policy_info").unwrap().labels["digest"].clone();
    let file = std::fs::read(gate.dir.path().join("policy.toml")).unwrap();
    use sha2::Digest as _;
    let want: String = sha2::Sha256::digest(&file).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, want);
    assert_eq!(value("prt_gate_policy_rules", &[]), Some(3.0));
    assert!(value("prt_gate_policy_loaded_timestamp_seconds", &[]).is_some_and(|t| t > 1.7e9));
    // The memory store answers without round trips to a backend; the series exist.
    assert!(value("prt_gate_session_store_errors_total", &[]).is_some());
    assert!(value("prt_gate_session_store_duration_seconds_count", &[]).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_page_shows_refusals_without_user_or_query() {
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).policy(MIX_POLICY).start();
    request_mix(&gate).await;
    let (parts, body) = send(&client(), get(&format!("http://{}/status", gate.admin))).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-type"], "text/html; charset=utf-8");
    assert!(parts.headers["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let page = String::from_utf8(body.to_vec()).unwrap();
    let refusals = &page[page.find("id=\"refusals\"").unwrap()..];
    // Positive control: the refused request is listed, with role, path and rule.
    assert!(
        refusals.contains("<td>Client</td><td>GET</td><td><code>/api/balances/</code></td><td><code>/api/balances/</code></td><td>deny</td>"),
        "{refusals}"
    );
    assert!(refusals.contains("<code>roles.pages</code></td><td>redirect</td>"), "{refusals}");
    assert!(!page.contains("sekrit-query-value"), "{page}");
    assert!(!page.contains("@example.com"), "{page}");
    // The route table: GET /api/balances/ had 8 hits, 4 allowed, 2 logins, 2 refused (Client).
    assert!(
        page.contains(
            "<td><code>GET /api/balances/</code></td><td>Admin, Office</td><td class=\"n\">8</td><td class=\"n\">4</td>\
             <td class=\"n\">2</td><td class=\"n\">2</td><td>Client 2</td>"
        ),
        "{page}"
    );
}

/// Metric names (`prt_gate_…`) a query text mentions.
fn names_in(query: &str) -> Vec<String> {
    let re = regex::Regex::new(r"prt_gate_[a-z0-9_]+").unwrap();
    re.find_iter(query).map(|m| m.as_str().to_string()).collect()
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_and_alert_query_names_an_exported_metric() {
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).policy(MIX_POLICY).start();
    request_mix(&gate).await;
    let exported: std::collections::BTreeSet<String> =
        parse(&scrape(&gate).await).into_iter().map(|s| s.name).collect();

    let dir = env!("CARGO_MANIFEST_DIR");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/deploy/grafana/prt-gate.json")).unwrap()).unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 20, "{queries:?}");
    let mut unknown = Vec::new();
    for q in &queries {
        let names = names_in(q);
        assert!(!names.is_empty(), "query names no gate metric: {q}");
        unknown.extend(names.into_iter().filter(|n| !exported.contains(n)).map(|n| format!("{n} in {q}")));
    }
    let alerts = std::fs::read_to_string(format!("{dir}/deploy/prometheus/alerts.yml")).unwrap();
    let alert_names = names_in(&alerts);
    assert!(alert_names.len() >= 10);
    unknown.extend(alert_names.into_iter().filter(|n| !exported.contains(n)).map(|n| format!("{n} in alerts.yml")));
    assert!(unknown.is_empty(), "not exported by the gate: {unknown:#?}\nexported: {exported:#?}");
}
