//! The JWT handling in front of `jsonwebtoken` (`oidc::jwt::rs256_kid` and
//! `verify_with_key`, the two halves of `Verifier::verify`): random input never
//! verifies, and a valid token with any one byte changed never verifies.
//!
//! The first input byte picks the mode: even — the rest is a token; odd — the next
//! bytes name a position and a replacement byte in a valid token signed at start.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use prt_gate::oidc::jwt::{rs256_kid, verify_with_key};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;

const ISS: &str = "https://sso.example/o";
const AUD: &str = "prt-gate";

struct Fixture {
    key: DecodingKey,
    token: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key");
        let der = private.to_pkcs1_der().expect("DER");
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        let key = DecodingKey::from_rsa_components(&n, &e).expect("public key");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let claims = serde_json::json!({
            "iss": ISS, "aud": AUD, "sub": "42", "email": "office@example.com",
            "exp": 4_102_444_800u64, // 2100-01-01
            "application_roles": {"primetrade": {"role": "Office"}},
        });
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(der.as_bytes())).expect("sign");
        // Positive control: the untouched token verifies.
        assert_eq!(rs256_kid(&token).expect("kid"), "k1");
        let c = verify_with_key(&token, &key, ISS, AUD).expect("the valid token verifies");
        assert_eq!(c.sub, "42");
        Fixture { key, token }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        let _ = rs256_kid(&token);
        assert!(verify_with_key(&token, &f.key, ISS, AUD).is_err(), "random input verified: {token:?}");
    } else {
        let [a, b, byte, ..] = rest else { return };
        let mut bytes = f.token.clone().into_bytes();
        let at = usize::from(u16::from_le_bytes([*a, *b])) % bytes.len();
        if bytes[at] == *byte {
            return;
        }
        bytes[at] = *byte;
        let token = String::from_utf8_lossy(&bytes);
        assert!(verify_with_key(&token, &f.key, ISS, AUD).is_err(), "mutated token verified (byte {at} -> {byte:#04x})");
    }
});
