//! Redaction engine cost (docs/design.md §15: `redact` ≥ 300 MB/s with all built-in
//! detectors). Per line kind (clean access line, Django request log, a line
//! with a session dict, a cookie header) and for a mixed 1 MiB block run
//! through the line filter. The end-to-end CLI number against `sed -E` comes
//! from `benches/redact/run.sh`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prt_gate::redact::stream::filter;
use prt_gate::redact::Redactor;

const LINES: &[(&str, &str)] = &[
    // Index 0..=1 clean, 2..=3 with secrets (see `mixed_block`); the access
    // line is what the gate's log writer scrubs per request.
    (
        "gunicorn_clean",
        r#"10.1.2.3 - - [01/Jan/2025:10:00:00 +0000] "GET /api/releases/open/?page=2 HTTP/1.1" 200 5120 "https://prt.barge2rail.com/office.html" "Mozilla/5.0 (X11; Linux x86_64)""#,
    ),
    ("django_clean", "INFO 2025-01-01 10:00:00,123 views 42 140213 BOL PRT-2025-0002 created for release 4711 by office@example.com"),
    (
        "session_dict",
        "DEBUG 2025-01-01 10:00:00,123 auth Session data: {'sso_access_token': 'Zm9vYmFyYmF6cXV4', 'sso_refresh_token': 'cmVmcmVzaHRva2Vu', 'primetrade_role': {'role': 'Client'}}",
    ),
    ("cookie_header", "DEBUG request headers: Cookie: csrftoken=abc123; sessionid=q1w2e3r4t5y6; Host: prt.barge2rail.com"),
    (
        "gate_access_json",
        r#"{"timestamp":"2026-11-27T18:50:03.748509Z","level":"INFO","method":"GET","path":"/api/user/context/","query":"page=1","status":200,"decision":"allow","rule":"/api/user/context/","role":"Office","tenant":"primetrade","user":"office@example.com","request_id":"7855b0fadae641a266adbc7f8cb77039","peer":"127.0.0.1","upstream_ms":0.21,"total_ms":0.31,"target":"access"}"#,
    ),
];

fn per_line(c: &mut Criterion) {
    let r = Redactor::builtin();
    let mut g = c.benchmark_group("redact_line");
    for &(name, line) in LINES {
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), line, |b, line| {
            b.iter(|| r.redact(black_box(line.as_bytes())).len())
        });
    }
    g.finish();
}

fn mixed_block(c: &mut Criterion) {
    let r = Arc::new(Redactor::builtin());
    // 19 clean lines to 1 with a secret, about 1 MiB.
    let mut block = Vec::new();
    let mut i = 0;
    while block.len() < 1 << 20 {
        let (_, line) = if i % 20 == 0 { LINES[2 + (i / 20) % 2] } else { LINES[i % 2] };
        block.extend_from_slice(line.as_bytes());
        block.push(b'\n');
        i += 1;
    }
    let mut g = c.benchmark_group("redact_filter");
    g.throughput(Throughput::Bytes(block.len() as u64));
    g.bench_function("mixed_1MiB", |b| {
        let mut out = Vec::with_capacity(block.len() * 2);
        b.iter(|| {
            out.clear();
            filter(r.clone(), black_box(block.as_slice()), &mut out).map(|()| out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, per_line, mixed_block);
criterion_main!(benches);
