use super::*;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

use crate::secret::Secret;

fn claims<'a>(features: &'a Features) -> AssertionClaims<'a> {
    AssertionClaims {
        iss: ASSERTION_ISSUER,
        aud: "django",
        sub: "u-1",
        email: "client@example.com",
        role: "Client",
        features,
        features_arc: None,
        tenant_id: "primetrade",
        tenant_name: "PrimeTrade Logistics",
        tenant_code: Some("PRT"),
        iat: 1_900_000_000,
        exp: 1_900_000_030,
        jti: "rid",
        method: "GET",
        path: "/api/history/",
    }
}

#[test]
fn assertion_verifies_with_its_secret_only() {
    use crate::secret::Secret;
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let secret = Secret::new("s".repeat(32));
    let signer = AssertionSigner::new(&secret).unwrap();
    let features = [("bol".to_string(), vec!["view".to_string()])].into_iter().collect();
    let token = signer.sign(&claims(&features)).unwrap();
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["django"]);
    v.set_issuer(&[ASSERTION_ISSUER]);
    v.validate_exp = false;
    let ok =
        decode::<serde_json::Value>(token.to_str().unwrap(), &DecodingKey::from_secret(secret.expose().as_bytes()), &v)
            .unwrap();
    assert_eq!(ok.claims["email"], "client@example.com");
    assert_eq!(ok.claims["features"]["bol"][0], "view");
    assert_eq!(ok.claims["path"], "/api/history/");
    let other = DecodingKey::from_secret("t".repeat(32).as_bytes());
    assert!(decode::<serde_json::Value>(token.to_str().unwrap(), &other, &v).is_err());
    assert_eq!(AssertionSigner::new(&Secret::new("short".into())).unwrap_err(), AssertionError::ShortSecret);
    assert_eq!(format!("{signer:?}"), "AssertionSigner([REDACTED])");
}

#[test]
fn reused_buffer_never_leaks_claims_between_assertions() {
    use crate::secret::Secret;
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let secret = Secret::new("k".repeat(32));
    let signer = AssertionSigner::new(&secret).unwrap();
    let big: Features =
        (0..40).map(|i| (format!("feature{i}"), vec!["view".to_string(), "edit".to_string()])).collect();
    let small = std::collections::BTreeMap::new();
    let first = signer.sign(&claims(&big)).unwrap();
    let mut c = claims(&small);
    c.email = "other@example.com";
    c.tenant_code = None;
    let second = signer.sign(&c).unwrap();
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["django"]);
    v.validate_exp = false;
    let key = DecodingKey::from_secret(secret.expose().as_bytes());
    let a = decode::<serde_json::Value>(first.to_str().unwrap(), &key, &v).unwrap();
    let b = decode::<serde_json::Value>(second.to_str().unwrap(), &key, &v).unwrap();
    assert_eq!(a.claims["features"].as_object().map(|m| m.len()), Some(40));
    assert_eq!(b.claims["email"], "other@example.com");
    assert_eq!(b.claims["features"], serde_json::json!({}));
    assert!(b.claims.get("tenant_code").is_none());
    // The header names HS256 only; a flipped signature byte fails.
    let token = second.to_str().unwrap();
    let header = token.split('.').next().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(header).unwrap(), JOSE_HEADER);
    let sig_at = token.rfind('.').unwrap() + 1;
    let flipped = if token.as_bytes()[sig_at] == b'A' { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &token[..sig_at], &token[sig_at + 1..]);
    assert!(decode::<serde_json::Value>(&forged, &key, &v).is_err());
}

/// The hand-written claims JSON is byte for byte the derived `Serialize` output:
/// with and without `tenant_code`, empty and large feature maps, text that needs
/// escaping in every string claim.
#[test]
fn claims_json_is_serde_json_byte_for_byte() {
    let empty = std::collections::BTreeMap::new();
    let big: Features =
        (0..12).map(|i| (format!("feat\"{i}\\"), (0..i % 4).map(|j| format!("perm{j}\n\u{1}")).collect())).collect();
    let odd = "q\"uote\\ \u{7} ünï ✓ \t";
    let mut rows = vec![claims(&empty), claims(&big)];
    let mut c = claims(&big);
    (c.email, c.sub, c.role, c.tenant_id, c.tenant_name, c.jti, c.method, c.path, c.aud) =
        (odd, odd, odd, odd, odd, odd, odd, odd, odd);
    c.tenant_code = None;
    c.iat = 0;
    c.exp = u64::MAX;
    rows.push(c);
    for c in &rows {
        let mut ours = Vec::new();
        c.write_json(&mut ours);
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(c).unwrap());
    }
}

/// The claims of `token`, verified with `secret` (expiry not checked: fixed test times).
fn verified(token: &str, secret: &str) -> serde_json::Value {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["django"]);
    v.set_issuer(&[ASSERTION_ISSUER]);
    v.validate_exp = false;
    decode::<serde_json::Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &v).unwrap().claims
}

/// The token for `c` as a thread with nothing cached computes it.
fn fresh(signer: &AssertionSigner, c: &AssertionClaims<'_>) -> String {
    std::thread::scope(|s| s.spawn(|| signer.sign(c).unwrap().to_str().unwrap().to_owned()).join().unwrap())
}

/// The payload carries the claims `serde_json` would write, padded with whitespace only
/// (the identity part ends on a whole base64 group).
#[test]
fn payload_is_the_claims_padded_with_whitespace() {
    let features: Features = [("bol".to_string(), vec!["view".to_string(), "edit".to_string()])].into();
    let signer = AssertionSigner::new(&Secret::new("p".repeat(32))).unwrap();
    for email in ["a@x.io", "ab@x.io", "abc@x.io"] {
        let mut c = claims(&features);
        c.email = email;
        let token = signer.sign(&c).unwrap();
        let payload = URL_SAFE_NO_PAD.decode(token.to_str().unwrap().split('.').nth(1).unwrap()).unwrap();
        let compact = serde_json::to_vec(&c).unwrap();
        let unpadded: Vec<u8> = payload.iter().copied().filter(|b| *b != b' ').collect();
        assert_eq!(unpadded, compact.iter().copied().filter(|b| *b != b' ').collect::<Vec<_>>(), "{email}");
        assert!(payload.len() - compact.len() < 3, "at most two padding bytes");
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v, serde_json::to_value(&c).unwrap());
    }
}

/// The same caller's second request reuses the kept identity state, and the token is
/// byte for byte the one a fresh thread computes; every identity field, changed alone,
/// changes the signed claims (a stale cached identity would sign the old value).
#[test]
fn kept_identity_state_signs_what_a_fresh_one_signs() {
    let secret = "c".repeat(32);
    let signer = AssertionSigner::new(&Secret::new(secret.clone())).unwrap();
    let features: Features = [("bol".to_string(), vec!["view".to_string()])].into();
    let more: Features = [("bol".to_string(), vec!["view".to_string(), "edit".to_string()])].into();
    let base = claims(&features);
    // Warm this thread's cache, then a second request (new jti/path) hits it.
    signer.sign(&base).unwrap();
    let second = AssertionClaims { jti: "rid-2", path: "/api/other/", ..claims(&features) };
    assert_eq!(signer.sign(&second).unwrap().to_str().unwrap(), fresh(&signer, &second));
    assert_eq!(verified(&fresh(&signer, &second), &secret)["path"], "/api/other/");

    type Edit = fn(&mut AssertionClaims<'_>);
    let edits: &[(&str, Edit)] = &[
        ("aud", |c| c.aud = "other-aud"),
        ("sub", |c| c.sub = "u-2"),
        ("email", |c| c.email = "else@example.com"),
        ("role", |c| c.role = "Office"),
        ("tenant_id", |c| c.tenant_id = "acme"),
        ("tenant_name", |c| c.tenant_name = "Acme Metals"),
        ("tenant_code", |c| c.tenant_code = Some("ACME")),
    ];
    for (field, edit) in edits {
        signer.sign(&base).unwrap();
        let mut c = claims(&features);
        edit(&mut c);
        let token = signer.sign(&c).unwrap();
        assert_eq!(token.to_str().unwrap(), fresh(&signer, &c), "{field}");
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.set_audience(&[c.aud]);
        let got =
            decode::<serde_json::Value>(token.to_str().unwrap(), &DecodingKey::from_secret(secret.as_bytes()), &v)
                .unwrap()
                .claims;
        assert_eq!(got, serde_json::to_value(&c).unwrap(), "{field}");
    }
    // No tenant code at all, and more features, for the same subject and e-mail.
    signer.sign(&base).unwrap();
    let without = AssertionClaims { tenant_code: None, ..claims(&features) };
    assert!(verified(signer.sign(&without).unwrap().to_str().unwrap(), &secret).get("tenant_code").is_none());
    signer.sign(&base).unwrap();
    let edited = claims(&more);
    assert_eq!(verified(signer.sign(&edited).unwrap().to_str().unwrap(), &secret)["features"]["bol"][1], "edit");
}

/// A kept state belongs to its signer: after a secret change (a new signer), the same
/// caller's token verifies with the new secret only.
#[test]
fn a_new_secret_never_uses_the_old_state() {
    let features = Features::new();
    let (old, new) = ("o".repeat(32), "n".repeat(32));
    let a = AssertionSigner::new(&Secret::new(old.clone())).unwrap();
    let b = AssertionSigner::new(&Secret::new(new.clone())).unwrap();
    a.sign(&claims(&features)).unwrap();
    let token = b.sign(&claims(&features)).unwrap();
    let token = token.to_str().unwrap();
    assert_eq!(verified(token, &new)["email"], "client@example.com");
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["django"]);
    v.validate_exp = false;
    assert!(decode::<serde_json::Value>(token, &DecodingKey::from_secret(old.as_bytes()), &v).is_err());
}

/// An identity part too large to keep is still signed, correctly, every time.
#[test]
fn an_oversized_identity_is_signed_without_being_kept() {
    let secret = "l".repeat(32);
    let signer = AssertionSigner::new(&Secret::new(secret.clone())).unwrap();
    let big: Features = (0..400).map(|i| (format!("feature-{i:04}"), vec!["view".to_string()])).collect();
    for jti in ["r1", "r2"] {
        let c = AssertionClaims { jti, ..claims(&big) };
        let token = signer.sign(&c).unwrap();
        assert_eq!(token.to_str().unwrap(), fresh(&signer, &c));
        let v = verified(token.to_str().unwrap(), &secret);
        assert_eq!((v["jti"].as_str(), v["features"].as_object().map(|m| m.len())), (Some(jti), Some(400)));
    }
}

/// A session's feature map is known again by the `Arc` the cache keeps, and only when
/// the claims' `features` is that very map: claims with another map beside that `Arc`
/// are signed with their own features.
#[test]
fn a_kept_feature_map_is_recognised_only_at_its_own_address() {
    let secret = Secret::new("k".repeat(32));
    let signer = AssertionSigner::new(&secret).unwrap();
    let shared = std::sync::Arc::new(Features::from([("bol".to_string(), vec!["view".to_string()])]));
    let other = Features::from([("bol".to_string(), vec!["edit".to_string()])]);
    let features_of = |c: &AssertionClaims<'_>| {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&["django"]);
        let token = signer.sign(c).unwrap();
        let claims = decode::<serde_json::Value>(
            token.to_str().unwrap(),
            &DecodingKey::from_secret(secret.expose().as_bytes()),
            &v,
        )
        .unwrap()
        .claims;
        claims["features"].clone()
    };
    let with_arc = AssertionClaims { features_arc: Some(&shared), ..claims(&shared) };
    for _ in 0..2 {
        assert_eq!(features_of(&with_arc), serde_json::json!({"bol": ["view"]}));
        assert_eq!(signer.sign(&with_arc).unwrap().to_str().unwrap(), fresh(&signer, &with_arc));
    }
    let mismatched = AssertionClaims { features_arc: Some(&shared), ..claims(&other) };
    assert_eq!(features_of(&mismatched), serde_json::json!({"bol": ["edit"]}));
}
