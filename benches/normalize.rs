//! Path normalization cost (docs/design.md §15: ≤ 100 ns for typical paths).
//!
//! Groups: `canonical` (the fast path every ordinary request takes: one scan, borrowed
//! result), `rewrite` (decoding, upper-casing and dot segments: the allocating slow path)
//! and `long` (about 200 characters, both paths).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prt_gate::normalize::normalize;
use std::hint::black_box;

fn bench_group(c: &mut Criterion, group: &str, inputs: &[(&str, &str)]) {
    let mut g = c.benchmark_group(group);
    for &(name, path) in inputs {
        g.throughput(Throughput::Bytes(path.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| normalize(black_box(path)).map(|p| p.is_unchanged()))
        });
    }
    g.finish();
}

fn canonical(c: &mut Criterion) {
    bench_group(
        c,
        "canonical",
        &[("api_download", "/api/bol/123/download/"), ("media_pdf", "/media/bols/2025/PRT-2025-0002.pdf")],
    );
}

fn rewrite(c: &mut Criterion) {
    bench_group(
        c,
        "rewrite",
        &[
            ("dot_segments", "/api/bol/../x/./123//download/"),
            ("decode_and_dots", "/api/%62ol/%2e%2e/x/%2E/123/d%6Fwnload/%c3%a9/"),
        ],
    );
}

fn long(c: &mut Criterion) {
    // About 200 characters each.
    let canonical = "/media/bols/2025/tenant-primetrade/customer-ACME_Logistics-Inc/shipments/\
                     2025-11-01/release-000123/attachments/scans/PRT-2025-0002-signed-by-the-\
                     receiving-office-copy-final-v2.pdf";
    let rewrite = "/media/bols/2025/tenant-primetrade/customer-%41CME_Logistics-Inc/shipments/\
                   2025-11-01/./release-000123//attachments/scans/../scans/PRT-2025-0002-%73\
                   igned-by-the-receiving-office-copy%20final.pdf";
    bench_group(c, "long", &[("canonical", canonical), ("rewrite", rewrite)]);
}

criterion_group!(benches, canonical, rewrite, long);
criterion_main!(benches);
