//! Unit tests of the metrics module: series land where they should, the
//! per-rule table survives reloads and forgets removed rules.

use std::path::Path;

use super::*;

fn config(routes: &str) -> Config {
    Config::from_str_at(Path::new("policy.toml"), routes).map(|(c, _)| c).expect("valid config")
}

const TWO_RULES: &str = r#"
[[route]]
path = "/api/a/"
methods = ["GET"]
roles = ["Office"]

[[route]]
path = "/api/b/"
roles = ["Admin"]
"#;

#[test]
fn counts_land_in_the_right_series() {
    let m = Metrics::default();
    m.request(Decision::Allow, 200, Duration::from_millis(3));
    m.request(Decision::Reject, 400, Duration::from_micros(100));
    m.request(Decision::Allow, 502, Duration::from_millis(1));
    let text = m.render();
    assert!(text.contains("prt_gate_requests_total{decision=\"allow\",status=\"2xx\"} 1\n"), "{text}");
    assert!(text.contains("prt_gate_requests_total{decision=\"reject\",status=\"4xx\"} 1\n"), "{text}");
    assert!(text.contains("prt_gate_requests_total{decision=\"allow\",status=\"5xx\"} 1\n"), "{text}");
    assert!(text.contains("prt_gate_requests_total{decision=\"allow\",status=\"4xx\"} 0\n"), "{text}");
    assert!(text.contains("prt_gate_request_duration_seconds_bucket{le=\"0.0025\"} 2\n"), "{text}");
    assert!(text.contains("prt_gate_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
    assert!(text.contains("prt_gate_request_duration_seconds_count 3\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn rule_decisions_are_counted_per_rule_role_and_decision() {
    let m = Metrics::default();
    let c = config(TWO_RULES);
    m.adopt(&c);
    let p = &c.policy;
    m.rule_decision(p, 0, Some(Role::Office), Decision::Allow);
    m.rule_decision(p, 0, Some(Role::Office), Decision::Allow);
    m.rule_decision(p, 0, Some(Role::Client), Decision::Deny);
    m.rule_decision(p, 1, None, Decision::Login);
    let text = m.render();
    let line = |rule: &str, role: &str, d: &str, n: u64| {
        format!("prt_gate_rule_decisions_total{{rule=\"{rule}\",role=\"{role}\",decision=\"{d}\"}} {n}\n")
    };
    assert!(text.contains(&line("GET /api/a/", "Office", "allow", 2)), "{text}");
    assert!(text.contains(&line("GET /api/a/", "Client", "deny", 1)), "{text}");
    assert!(text.contains(&line("ANY /api/b/", "none", "login", 1)), "{text}");
    // Only series that happened are exported.
    assert_eq!(text.matches("prt_gate_rule_decisions_total{").count(), 3, "{text}");
    let digest = &c.digest;
    assert_eq!(digest.len(), 64);
    assert!(text.contains(&format!("prt_gate_policy_info{{digest=\"{digest}\"}} 1\n")), "{text}");
    assert!(text.contains("prt_gate_policy_rules 2\n"), "{text}");
    assert!(text.contains(&format!("prt_gate_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn a_reload_keeps_counts_of_kept_rules_and_drops_removed_ones() {
    let m = Metrics::default();
    let old = config(TWO_RULES);
    m.adopt(&old);
    m.rule_decision(&old.policy, 0, Some(Role::Office), Decision::Allow);
    m.rule_decision(&old.policy, 1, Some(Role::Admin), Decision::Allow);

    // New version: /api/b/ is gone, /api/a/ moved to slot 1.
    let new = config("[[route]]\npath = \"/api/c/\"\nroles = [\"Client\"]\n\n[[route]]\npath = \"/api/a/\"\nmethods = [\"GET\"]\nroles = [\"Office\"]\n");
    m.adopt(&new);
    m.rule_decision(&new.policy, 1, Some(Role::Office), Decision::Allow);
    // A request still running under the old version is counted, by label.
    m.rule_decision(&old.policy, 0, Some(Role::Office), Decision::Allow);

    let text = m.render();
    assert!(text.contains("rule=\"GET /api/a/\",role=\"Office\",decision=\"allow\"} 3\n"), "{text}");
    assert!(!text.contains("/api/b/"), "{text}");
    let table = m.rule_table().expect("adopted");
    let counts = table.counts();
    assert_eq!(counts[1].0, "GET /api/a/");
    assert_eq!(counts[1].1[Role::Office as usize][Decision::Allow as usize], 3);
    assert_eq!(counts[0].1.iter().flatten().sum::<u64>(), 0);
}

#[test]
fn every_slot_has_a_label_and_rules_sit_at_their_index() {
    let c = config(TWO_RULES);
    let p = &c.policy;
    for (i, r) in p.rules().iter().enumerate() {
        assert_eq!(r.index, i);
    }
    let labels: Vec<String> = (0..p.slot_count()).filter_map(|s| p.slot_label(s)).collect();
    assert_eq!(labels, ["GET /api/a/", "ANY /api/b/", "no_rule", "default", "roles.pages"]);
    assert_eq!(p.slot_label(p.slot_count()), None);
}

#[test]
fn recent_refusals_are_bounded_and_newest_first() {
    let m = Metrics::default();
    for i in 0..recent::CAPACITY + 5 {
        m.refusal(RecentRefusal::new("Client", "GET", &format!("/api/x/{i}/"), Arc::from("r"), "deny"));
    }
    let r = m.recent_refusals();
    assert_eq!(r.len(), recent::CAPACITY);
    assert_eq!(r[0].path, format!("/api/x/{}/", recent::CAPACITY + 4));
    let long = RecentRefusal::new("none", "GET", &"é".repeat(500), Arc::from("r"), "deny");
    assert_eq!(long.path.chars().count(), 201);
}
