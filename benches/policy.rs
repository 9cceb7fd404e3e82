//! Policy decision cost (docs/design.md §15: ≤ 200 ns at 1,000 rules).
//!
//! Generated policies of 10, 100 and 1,000 rules shaped like the real one: per resource
//! `GET`/`POST /api/resN/`, `GET`/`PATCH /api/resN/{id}/` and `POST /api/resN/{id}/actN/`,
//! plus staff pages behind `/{*page}`. Each measurement is `route_for` + `decide` for a
//! session caller, on an already normalized path (normalization is benched apart).
//! Requests: `param_hit` (a `{id}` route of the last resource: the deepest search),
//! `exact_hit`, `no_rule` (an `/api` path without a rule) and `page` (the catch-all).
//!
//! Two groups measure the same thing: `decide` in wall time (criterion's default) and
//! `decide_cpu` in the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which stays
//! meaningful when the machine is shared with other builds and the wall time is not.
//!
//! `shadow_cpu` measures the shadow policy's cost per request (thread CPU time) on the
//! shipped `policy.toml` with a same-size shadow (the same file with one grant changed),
//! as the pipeline runs it: the active decision alone (`active`), then the active
//! decision plus loading the shadow, its decision and the comparison, for a request both
//! answer alike (`with_shadow_same`) and one they answer differently (`with_shadow_diff`:
//! counter and rate-limiter lookup; the sample line was logged once, before timing).

use std::collections::BTreeMap;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::Method;
use prt_gate::normalize::normalize;
use prt_gate::policy::{Auth, Features, Policy, PolicyInput, RawRoute, Role, Who};
use std::hint::black_box;

fn route(path: String, method: &str, roles: &[&str]) -> RawRoute {
    RawRoute {
        path,
        methods: Some(vec![method.to_string()]),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..RawRoute::default()
    }
}

fn generated(n: usize) -> Policy {
    let mut routes = vec![route("/".into(), "GET", &["Admin", "Office"]), route("/{*page}".into(), "GET", &["Admin"])];
    let mut i = 0;
    while routes.len() < n {
        let base = format!("/api/res{i}/");
        routes.push(route(base.clone(), "GET", &["Admin", "Office", "Operator", "Client"]));
        routes.push(route(base.clone(), "POST", &["Admin"]));
        routes.push(route(format!("{base}{{id}}/"), "GET", &["Admin", "Office", "Client"]));
        routes.push(route(format!("{base}{{id}}/"), "PATCH", &["Admin", "Office"]));
        routes.push(route(format!("{base}{{id}}/act{i}/"), "POST", &["Admin", "Office"]));
        i += 1;
    }
    routes.truncate(n);
    let landing = BTreeMap::new();
    let pages = BTreeMap::from([("Client".to_string(), vec!["/client.html".to_string()])]);
    let input = PolicyInput { routes: &routes, landing: &landing, pages: &pages };
    let (policy, _) = Policy::compile(&input, &|_| None).expect("generated policy is valid");
    assert_eq!(policy.rules().len(), n);
    policy
}

fn requests(n: usize) -> Vec<(&'static str, Method, String)> {
    let last = (n - 2) / 5 - 1;
    vec![
        ("param_hit", Method::GET, format!("/api/res{last}/12345/")),
        ("exact_hit", Method::POST, format!("/api/res{last}/")),
        ("no_rule", Method::GET, "/api/unknown/thing/".to_string()),
        ("page", Method::GET, "/reports/2025/summary.html".to_string()),
    ]
}

fn run<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let features: Features = BTreeMap::from([("bol".to_string(), vec!["view".to_string()])]);
    let who = Who::claims(Auth::Session, Role::Office, &features);
    let mut g = c.benchmark_group(group);
    for n in [10usize, 100, 1000] {
        let policy = generated(n);
        for (name, method, path) in requests(n) {
            let path = normalize(&path).unwrap();
            g.bench_with_input(BenchmarkId::new(name, n), &path, |b, path| {
                b.iter(|| black_box(policy.route_for(&method, black_box(path)).decide(who)))
            });
        }
    }
    g.finish();
}

fn decide(c: &mut Criterion<WallTime>) {
    run(c, "decide");
}

fn decide_cpu(c: &mut Criterion<ThreadCpu>) {
    run(c, "decide_cpu");
}

/// CPU time of the benchmarking thread, in nanoseconds.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

/// Formats CPU nanoseconds like wall time (`ns`, `µs`, `ms`).
struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            _ => (1e-6, "ms"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Elements(n) => *n as f64,
        };
        values.iter_mut().for_each(|v| *v = n * 1e9 / *v);
        "elem/s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn shadow_cpu(c: &mut Criterion<ThreadCpu>) {
    use prt_gate::config::Config;
    use prt_gate::metrics::Metrics;
    use prt_gate::shadow::Shadow;

    let shipped = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml"));
    let (active, _) = Config::load_policy(shipped).expect("shipped policy");
    let dir = tempfile::tempdir().expect("tempdir");
    let next = dir.path().join("policy.next.toml");
    let text = std::fs::read_to_string(shipped).expect("read policy.toml");
    // The same rules, one grant changed: Client may read balances.
    let changed = text.replacen(
        "path = \"/api/balances/\"\nmethods = [\"GET\"]\nroles = [\"Admin\", \"Office\"]",
        "path = \"/api/balances/\"\nmethods = [\"GET\"]\nroles = [\"Admin\", \"Office\", \"Client\"]",
        1,
    );
    assert_ne!(changed, text, "the shipped /api/balances/ rule moved; update the bench");
    std::fs::write(&next, changed).expect("write shadow");
    let metrics = Metrics::default();
    let shadow = Shadow::default();
    shadow.poll(Some(&next), &metrics, true);
    assert_eq!(shadow.get().map(|p| p.rules().len()), Some(active.rules().len()), "same-size shadow");

    let features: Features = BTreeMap::new();
    let who = Who::claims(Auth::Session, Role::Client, &features);
    let mut g = c.benchmark_group("shadow_cpu");
    for (name, path) in [("same", "/api/bol/12345/"), ("diff", "/api/balances/")] {
        let path = normalize(path).unwrap();
        let method = Method::GET;
        if name == "same" {
            g.bench_function("active", |b| {
                b.iter(|| black_box(active.route_for(&method, black_box(&path)).decide(who)))
            });
        }
        g.bench_function(format!("with_shadow_{name}"), |b| {
            b.iter(|| {
                let v = active.route_for(&method, black_box(&path)).decide(who);
                if let Some(s) = shadow.get() {
                    let sv = s.route_for(&method, &path).decide(who);
                    shadow.observe(&metrics, &method, path.as_str(), &who, &v, &sv);
                }
                black_box(v)
            })
        });
    }
    g.finish();
}

criterion_group!(wall, decide);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = decide_cpu, shadow_cpu
}
criterion_main!(wall, cpu);
