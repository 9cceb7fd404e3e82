//! Fuzz target for `prt_gate::normalize` (docs/design.md §6.3): on any input `normalize` returns
//! without panicking, and whatever it accepts is canonical, idempotent and free of every
//! construct it must refuse; and the forwarded path is the one spelling of the path Django
//! resolves after its own decoding (so two requests Django routes alike are checked alike).
//!
//!     cd fuzz && cargo +nightly fuzz run normalize -- -dict=normalize.dict
#![no_main]

use libfuzzer_sys::fuzz_target;
use prt_gate::normalize::normalize;

fuzz_target!(|data: &[u8]| {
    // The gate hands normalize a `&str` (hyper's `uri.path()`); other bytes never get here.
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalize(input) else {
        return;
    };
    let out = path.as_str();

    // Idempotent; the second pass takes the borrowed fast path.
    let again = normalize(out).expect("a normalized path was refused on a second pass");
    assert_eq!(again, path, "not idempotent: {input:?}");
    assert!(again.is_unchanged(), "not canonical: {out:?}");
    assert_eq!(path.is_unchanged(), out == input, "{input:?}");

    // Absolute, no empty or dot segments.
    assert!(out.starts_with('/'), "{out:?}");
    for bad in ["//", "/./", "/../"] {
        assert!(!out.contains(bad), "{input:?} -> {out:?}");
    }
    assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{out:?}");

    // No encoded separator, dot, `;` or NUL, nor a double-encoded one.
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "%2E", "%3B", "%252E", "%252F", "%255C"] {
        assert!(!upper.contains(bad), "{input:?} -> {out:?}");
    }

    // Only path characters (no `\`, `;`, `#`, space, control or non-ASCII byte), and every
    // escape is two upper-case hex digits of a byte a path cannot carry raw.
    let bytes = out.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).expect("truncated escape");
            assert!(hex.iter().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)), "{out:?}");
            let text = std::str::from_utf8(hex).expect("hex digits are ASCII");
            let value = u8::from_str_radix(text, 16).expect("two hex digits");
            assert!(!is_path_char(value), "path character left encoded: {out:?}");
            decoded.push(value);
            i += 3;
        } else {
            assert!(is_path_char(b), "byte {b:#04x} in {out:?}");
            decoded.push(b);
            i += 1;
        }
    }
    // `decoded` is what Django's URL resolver sees (the WSGI server decodes every escape of
    // PATH_INFO, Django reads UTF-8). Spelled back the one canonical way, it must give the
    // forwarded path: the decision made on `out` is the decision on Django's path.
    let django = String::from_utf8(decoded).expect("invalid UTF-8 once decoded");
    let mut respelled = String::with_capacity(out.len());
    for b in django.bytes() {
        if is_path_char(b) {
            respelled.push(char::from(b));
        } else {
            respelled.push_str(&format!("%{b:02X}"));
        }
    }
    assert_eq!(respelled, out, "Django resolves {django:?}, the gate checked {out:?} ({input:?})");

    // Segments put back together give the path.
    let joined: Vec<&str> = path.segments().collect();
    assert_eq!(format!("/{}", joined.join("/")), out);
    assert_eq!(path.has_trailing_slash(), out.ends_with('/'));
});

/// A byte a path carries raw: unreserved, sub-delims but `;`, `:`, `@`, `/`.
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/".contains(&b)
}
