//! Metrics recording and rendering (issue 18).
//!
//! * `metrics/per_request`: everything the request path records for one forwarded,
//!   policy-checked request — the upstream answer (status class + latency), the request
//!   (decision × status class + latency) and the per-rule decision (rule × role ×
//!   decision, through the table resolved once per policy version).
//! * `metrics/rule_decision`: the per-rule decision alone.
//! * `metrics/request_only`: `Metrics::request` alone (same call before and after).
//! * `metrics/render_100_rules_5_roles`: `/metrics` text with 100 rules × 5 roles × 2
//!   decisions bound (1,000 per-rule series) plus every fixed series.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use prt_gate::config::Config;
use prt_gate::metrics::{Decision, Metrics};
use prt_gate::policy::Role;

fn policy(rules: usize) -> Config {
    let mut text = String::new();
    for i in 0..rules {
        text.push_str(&format!(
            "[[route]]\npath = \"/api/r{i}/{{id}}/\"\nmethods = [\"GET\"]\nroles = [\"Office\"]\n\n"
        ));
    }
    Config::from_str_at(Path::new("bench.toml"), &text).expect("valid").0
}

fn bench(c: &mut Criterion) {
    let m = Metrics::default();
    let config = policy(100);
    m.adopt(&config);
    let p = &config.policy;
    c.bench_function("metrics/per_request", |b| {
        b.iter(|| {
            m.upstream_response(black_box(200), black_box(Duration::from_micros(700)));
            m.request(black_box(Decision::Allow), black_box(200), black_box(Duration::from_micros(900)));
            m.rule_decision(p, black_box(42), black_box(Some(Role::Office)), black_box(Decision::Allow));
        })
    });
    c.bench_function("metrics/rule_decision", |b| {
        b.iter(|| m.rule_decision(p, black_box(42), black_box(Some(Role::Office)), black_box(Decision::Allow)))
    });
    c.bench_function("metrics/request_only", |b| {
        b.iter(|| m.request(black_box(Decision::Allow), black_box(200), black_box(Duration::from_micros(900))))
    });

    let roles = [Some(Role::Admin), Some(Role::Office), Some(Role::Operator), Some(Role::Client), None];
    for slot in 0..100 {
        for role in roles {
            m.rule_decision(p, slot, role, Decision::Allow);
            m.rule_decision(p, slot, role, Decision::Deny);
        }
    }
    let text = m.render();
    assert_eq!(text.matches("prt_gate_rule_decisions_total{").count(), 1000);
    c.bench_function("metrics/render_100_rules_5_roles", |b| b.iter(|| black_box(m.render())));
}

criterion_group!(benches, bench);
criterion_main!(benches);
