//! `next` validation (docs/design.md §4 "`next` safety"): whatever `safe_next` accepts stays on the
//! gate's origin, however a browser resolves it — as the absolute `Location` the gate
//! builds (origin + value), as a relative reference against a page of the origin, and
//! after one more round of percent-decoding.
//!
//!     RUSTC_BOOTSTRAP=1 cargo fuzz run next fuzz/corpus/next
#![no_main]

use libfuzzer_sys::fuzz_target;
use prt_gate::oidc::next::safe_next;

const ORIGIN: &str = "https://prt.example";

fn assert_same_origin(url: &str, what: &str, input: &str) {
    let base = url::Url::parse("https://prt.example/some/page?x=1").expect("base");
    for resolved in [url::Url::parse(url), base.join(url)] {
        let Ok(u) = resolved else { continue };
        assert_eq!(u.scheme(), "https", "{what}: {input:?} -> {u}");
        assert_eq!(u.host_str(), Some("prt.example"), "{what}: {input:?} -> {u}");
        assert_eq!(u.port(), None, "{what}: {input:?} -> {u}");
        assert!(u.username().is_empty() && u.password().is_none(), "{what}: {input:?} -> {u}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let Some(out) = safe_next(input) else { return };
    // A same-origin absolute path, never scheme-relative or backslashed.
    assert!(out.starts_with('/') && !out.starts_with("//"), "{input:?} -> {out:?}");
    assert!(!out.contains('\\') && !out.chars().any(|c| c.is_control() || c.is_whitespace()), "{out:?}");
    assert_same_origin(&format!("{ORIGIN}{out}"), "location", input);
    assert_same_origin(&out, "relative", input);
    if let Ok(decoded) = percent_encoding::percent_decode_str(&out).decode_utf8() {
        assert_same_origin(&format!("{ORIGIN}{decoded}"), "decoded location", input);
        assert_same_origin(&decoded, "decoded relative", input);
    }
    // Deterministic.
    assert_eq!(safe_next(input).as_deref(), Some(out.as_str()));
});
