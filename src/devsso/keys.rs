//! The dev SSO's signing key: RSA-2048 generated at start (kept in memory
//! only, never written anywhere), its public JWK with an RFC 7638 `kid`, and
//! RS256 signing.
//!
//! Neighbours: `endpoints` signs ID tokens and serves the JWKS; tests verify
//! with `jsonwebtoken` against that JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::DevSsoError;

pub(crate) struct SigningKey {
    encoding: EncodingKey,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh RSA-2048 key from the OS CSPRNG (blocking: call off the runtime).
    pub(crate) fn generate() -> Result<SigningKey, DevSsoError> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| DevSsoError::Key(e.to_string()))?;
        Self::from_private(&key)
    }

    pub(crate) fn from_private(key: &RsaPrivateKey) -> Result<SigningKey, DevSsoError> {
        let der = key.to_pkcs1_der().map_err(|e| DevSsoError::Key(e.to_string()))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = thumbprint(&n, &e);
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Ok(SigningKey { encoding: EncodingKey::from_rsa_der(der.as_bytes()), kid, jwk })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// `{"keys": [jwk]}`.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// RS256 JWT over `claims` exactly as given, header `kid` set.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        // Only fails on a malformed key or unserializable claims; neither can
        // happen with a key we generated and a `serde_json::Value`.
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("RS256 signing with the dev key")
    }
}

/// RFC 7638 JWK thumbprint of an RSA key: base64url(SHA-256) of the
/// canonical JSON `{"e":…,"kty":"RSA","n":…}` (members sorted, no spaces).
pub fn thumbprint(n_b64: &str, e_b64: &str) -> String {
    let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 section 3.1: the example key and its thumbprint.
    #[test]
    fn rfc7638_section_3_1_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(thumbprint(n, "AQAB"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn jwk_and_signature_verify() {
        let key = SigningKey::generate().unwrap();
        let jwk = &key.jwks()["keys"][0];
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(thumbprint(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()), key.kid());
        assert_eq!(jwk["e"], "AQAB");
        let token = key.sign(&json!({"sub": "x", "exp": 4_000_000_000u64}));
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some(key.kid()));
        let dk = jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(&token, &dk, &v).unwrap();
        assert_eq!(data.claims["sub"], "x");
    }
}
