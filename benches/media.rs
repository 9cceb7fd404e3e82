//! Cost of one presigned media URL (docs/design.md §7, §15: ≥ 50,000 redirects/s on
//! one worker thread leaves 20 µs per redirect for everything; the signature
//! must be a small part of it).
//!
//! * `presign/get` — key mapping is not included: one SigV4 query signature
//!   with the cached daily signing key (the steady state);
//! * `presign/get+disposition` — with a signed `response-content-disposition`;
//! * `presign/object_key` — mapping `/media/…` to the key (normalize + checks).
//!
//! Credentials are generated per run. Run: `cargo bench --bench media`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use prt_gate::media::key::{object_key, KeyRules};
use prt_gate::media::sigv4::{Credentials, Presigner, Target, Verb};
use prt_gate::normalize::normalize;
use prt_gate::secret::Secret;
use rand::distr::{Alphanumeric, SampleString};

fn presigner() -> Presigner {
    let mut rng = rand::rng();
    let creds = Credentials {
        access_key_id: format!("AKIA{}", Alphanumeric.sample_string(&mut rng, 16).to_uppercase()),
        secret_access_key: Secret::new(Alphanumeric.sample_string(&mut rng, 40)),
        session_token: None,
        expires_at: None,
    };
    Presigner::new(creds, "us-east-2", Target::new("prt-media", "us-east-2", None, false))
}

fn bench(c: &mut Criterion) {
    let p = presigner();
    let key = "bols/2025/PRT-2025-0002.pdf";
    let day = Duration::from_secs(86_400);
    let mut g = c.benchmark_group("presign");
    g.bench_function("get", |b| {
        b.iter(|| black_box(p.presign(Verb::Get, black_box(key), day, SystemTime::now(), &[])))
    });
    let disposition = [("response-content-disposition", "inline; filename=\"PRT-2025-0002.pdf\"")];
    g.bench_function("get+disposition", |b| {
        b.iter(|| black_box(p.presign(Verb::Get, black_box(key), day, SystemTime::now(), &disposition)))
    });
    let allowed = vec!["bols/".to_owned(), "bol_pdfs/".to_owned()];
    let rules = KeyRules { key_prefix: "", allowed_prefixes: &allowed, strip_prefixes: &[] };
    let raw = "/media/bols/2025/PRT-2025-0002.pdf";
    g.bench_function("object_key", |b| {
        b.iter(|| {
            let path = normalize(black_box(raw)).unwrap();
            black_box(object_key(raw, &path, rules).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
