//! Cookie and session-id parsing (`cookie::pairs`, `SessionId::parse`):
//! nothing panics; every accepted id is exactly 43 base64url characters that decode to
//! 32 bytes and re-encode to themselves (one spelling per id), is found verbatim in the
//! header, and keys the stores by the SHA-256 of its text.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderMap, HeaderValue, COOKIE};
use libfuzzer_sys::fuzz_target;
use prt_gate::cookie;
use prt_gate::session::SessionId;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, value);
    let text = String::from_utf8_lossy(data).into_owned();
    for v in cookie::pairs(&headers).filter(|(name, _)| *name == "prt_session").map(|(_, v)| v) {
        assert!(!v.contains(';'), "{v:?}");
        assert_eq!(v, v.trim(), "{v:?}");
        assert!(text.contains(v), "{v:?} not in {text:?}");
        let Some(id) = SessionId::parse(v) else { continue };
        let cookie = id.expose_cookie_value();
        assert_eq!(cookie, v);
        assert_eq!(cookie.len(), 43);
        let raw = URL_SAFE_NO_PAD.decode(cookie).expect("accepted id decodes");
        assert_eq!(raw.len(), 32);
        assert_eq!(URL_SAFE_NO_PAD.encode(&raw), cookie, "two spellings of one id");
        let want: String = Sha256::digest(cookie.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(id.storage_key(), want);
        assert!(!format!("{id:?}").contains(cookie), "Debug shows the id");
    }
    // The id parser alone, on the raw input.
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(id) = SessionId::parse(s) {
            assert_eq!(id.expose_cookie_value(), s);
        }
    }
});
