//! Fuzz the redaction engine: never panics; the line filter keeps the line
//! count and never lets a planted secret through whatever bytes surround it;
//! a secret-free input (no hit) comes out byte for byte, so redaction never
//! grows nor alters it; and redaction is idempotent: a second pass over the
//! output (engine or line filter) changes nothing (the finding kept as seed
//! `reredact-cookie-authorization` once broke this).
//!
//!     cd fuzz && cargo +nightly fuzz run redact
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use prt_gate::redact::stream::filter;
use prt_gate::redact::Redactor;

fn engine() -> &'static Arc<Redactor> {
    static R: OnceLock<Arc<Redactor>> = OnceLock::new();
    R.get_or_init(|| Arc::new(Redactor::builtin()))
}

fuzz_target!(|data: &[u8]| {
    let r = engine();
    let once = r.redact(data);
    let mut hits = Vec::new();
    r.find(data, &mut hits);
    if hits.is_empty() {
        assert_eq!(&*once, data, "a secret-free input was changed");
    }
    assert_eq!(&*r.redact(&once), &*once, "a second pass changed the output");

    // The planted canary must be the only one: libFuzzer learns the literal from the
    // comparison below and writes it into inputs, in places that are not secrets.
    if data.windows(12).any(|w| w == b"FUZZCANARY42") {
        return;
    }
    let mut planted = data.to_vec();
    planted.extend_from_slice(b" access_token=FUZZCANARY42 ");
    planted.extend_from_slice(data);
    let mut out = Vec::new();
    filter(r.clone(), planted.as_slice(), &mut out).unwrap();
    let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    assert_eq!(lines(&planted), lines(&out), "line count changed");
    assert!(!out.windows(12).any(|w| w == b"FUZZCANARY42"), "planted secret leaked");
    let mut again = Vec::new();
    filter(r.clone(), out.as_slice(), &mut again).unwrap();
    assert_eq!(again, out, "a second pass of the line filter changed the output");
});
