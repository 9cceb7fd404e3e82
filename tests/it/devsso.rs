//! `prt-gate dev-sso` over real HTTP: the binary on port 0 (and the
//! in-process `DevSso` where a test changes roles or mints tokens), checked
//! the way the gate will use it: discovery, JWKS, code flow with PKCE and
//! nonce, ID token verification with `jsonwebtoken`, refresh rotation, errors.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use prt_gate::devsso::{self, DevSso};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::*;

const CB: &str = "http://127.0.0.1:8000/auth/callback/";

fn random() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// One login attempt's secrets, as the gate keeps them.
struct Attempt {
    state: String,
    nonce: String,
    verifier: String,
}

impl Attempt {
    fn new() -> Attempt {
        Attempt { state: random(), nonce: random(), verifier: random() }
    }

    fn authorize_url(&self, sso: &str, extra: &[(&str, &str)]) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()));
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.extend_pairs([
            ("response_type", "code"),
            ("client_id", "prt-gate-dev"),
            ("redirect_uri", CB),
            ("scope", "openid email profile roles"),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        q.extend_pairs(extra);
        format!("{sso}/o/authorize/?{}", q.finish())
    }
}

fn location(parts: &http::response::Parts) -> url::Url {
    let loc = parts.headers.get("location").expect("Location header").to_str().unwrap();
    url::Url::parse(loc).unwrap()
}

fn query(u: &url::Url) -> HashMap<String, String> {
    u.query_pairs().into_owned().collect()
}

/// Authorize with `login_hint`: must come straight back with a code.
async fn login(c: &Client, sso: &str, email: &str) -> (Attempt, String) {
    let a = Attempt::new();
    let (parts, body) = send(c, get(&a.authorize_url(sso, &[("login_hint", email)]))).await;
    assert_eq!(parts.status, 302, "{}", String::from_utf8_lossy(&body));
    let loc = location(&parts);
    assert!(loc.as_str().starts_with(CB), "{loc}");
    let q = query(&loc);
    assert_eq!(q.get("state"), Some(&a.state));
    let code = q.get("code").expect("code").clone();
    (a, code)
}

async fn post_form(c: &Client, url: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req = Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        req = req.header("authorization", format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))));
    }
    let (parts, body) = send(c, req.body(Full::new(Bytes::from(body))).unwrap()).await;
    if parts.status == 401 {
        assert!(parts.headers.contains_key("www-authenticate"));
    }
    assert_eq!(parts.headers["cache-control"], "no-store");
    (parts.status.as_u16(), serde_json::from_slice(&body).expect("JSON body"))
}

/// Code exchange with client_secret_post.
async fn exchange(c: &Client, sso: &str, code: &str, verifier: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CB),
        ("code_verifier", verifier),
        ("client_id", "prt-gate-dev"),
        ("client_secret", "dev-secret"),
    ];
    post_form(c, &format!("{sso}/o/token/"), &form, None).await
}

async fn get_json(c: &Client, url: &str) -> Value {
    let (parts, body) = send(c, get(url)).await;
    assert_eq!(parts.status, 200, "{url}");
    serde_json::from_slice(&body).unwrap()
}

/// Verifies an ID token as the gate must: JWKS from discovery, `kid` lookup,
/// RS256 pinned, `exp`/`iss`/`aud` required, then `nonce`.
async fn verify(c: &Client, sso: &str, id_token: &str, nonce: Option<&str>) -> Value {
    let disco = get_json(c, &format!("{sso}/o/.well-known/openid-configuration")).await;
    let jwks: JwkSet = serde_json::from_value(get_json(c, disco["jwks_uri"].as_str().unwrap()).await).unwrap();
    let kid = jsonwebtoken::decode_header(id_token).unwrap().kid.expect("kid");
    let jwk = jwks.find(&kid).expect("kid in JWKS");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[format!("{sso}/o")]);
    v.set_audience(&["prt-gate-dev"]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap().claims;
    assert_eq!(claims["nonce"].as_str(), nonce, "{claims}");
    claims
}

#[tokio::test(flavor = "multi_thread")]
async fn code_flow_with_pkce_and_nonce_verifies_against_the_jwks() {
    let sso = SsoProc::start(&[]);
    let (c, u) = (client(), sso.url.as_str());

    let disco = get_json(&c, &format!("{u}/o/.well-known/openid-configuration")).await;
    let want = json!({
        "issuer": format!("{u}/o"),
        "authorization_endpoint": format!("{u}/o/authorize/"),
        "token_endpoint": format!("{u}/o/token/"),
        "userinfo_endpoint": format!("{u}/o/userinfo/"),
        "jwks_uri": format!("{u}/api/auth/.well-known/jwks.json"),
        "end_session_endpoint": format!("{u}/o/logout/"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    });
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&disco[k], v, "{k}");
    }
    assert!(disco["scopes_supported"].as_array().unwrap().contains(&json!("roles")));

    // Both JWKS paths serve the same key; kid is its RFC 7638 thumbprint.
    let jwks = get_json(&c, &format!("{u}/api/auth/.well-known/jwks.json")).await;
    assert_eq!(jwks, get_json(&c, &format!("{u}/o/.well-known/jwks.json")).await);
    let k = &jwks["keys"][0];
    assert_eq!(
        (&k["kty"], &k["alg"], &k["use"], &k["e"]),
        (&json!("RSA"), &json!("RS256"), &json!("sig"), &json!("AQAB"))
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(k["n"].as_str().unwrap()).unwrap().len(), 256);
    assert_eq!(k["kid"], devsso::thumbprint(k["n"].as_str().unwrap(), "AQAB"));

    let (a, code) = login(&c, u, "client@example.com").await;
    let (status, tok) = exchange(&c, u, &code, &a.verifier).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 900);
    assert_eq!(tok["scope"], "openid email profile roles");
    assert!(tok["access_token"].as_str().unwrap().len() >= 43);
    assert!(tok["refresh_token"].as_str().unwrap().len() >= 43);

    let claims = verify(&c, u, tok["id_token"].as_str().unwrap(), Some(&a.nonce)).await;
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 36_000);
    assert_eq!(claims["email"], "client@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["is_sso_admin"], false);
    assert_eq!(claims["sub"].as_str().unwrap().len(), 36);
    assert_eq!(
        claims["application_roles"],
        json!({"primetrade": {"role": "Client", "permissions": [], "tenant_code": "PRT",
            "features": {"bol": ["view"], "releases": ["view"], "schedule": ["view"],
                "client_portal": ["view"]}}})
    );

    // userinfo: the same identity for the access token, 401 otherwise.
    let bearer = |t: &str| {
        Request::get(format!("{u}/o/userinfo/"))
            .header("authorization", format!("Bearer {t}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let (parts, body) = send(&c, bearer(tok["access_token"].as_str().unwrap())).await;
    assert_eq!(parts.status, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    for k in ["sub", "email", "email_verified", "name", "is_sso_admin", "application_roles"] {
        assert_eq!(info[k], claims[k], "{k}");
    }
    let (parts, _) = send(&c, bearer("not-a-token")).await;
    assert_eq!(parts.status, 401);
    assert_eq!(parts.headers["www-authenticate"], r#"Bearer error="invalid_token""#);

    // The code is single use; replaying it also revokes what it produced.
    let (status, err) = exchange(&c, u, &code, &a.verifier).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")));
    let (parts, _) = send(&c, bearer(tok["access_token"].as_str().unwrap())).await;
    assert_eq!(parts.status, 401);

    // The same subject on the next login.
    let (a2, code2) = login(&c, u, "CLIENT@example.com").await;
    let (_, tok2) = exchange(&c, u, &code2, &a2.verifier).await;
    assert_eq!(verify(&c, u, tok2["id_token"].as_str().unwrap(), Some(&a2.nonce)).await["sub"], claims["sub"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_has_no_primetrade_role_and_basic_auth_works() {
    let sso = SsoProc::start(&[]);
    let (c, u) = (client(), sso.url.as_str());
    let (a, code) = login(&c, u, "nobody@example.com").await;
    let form =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &a.verifier)];
    let (status, tok) = post_form(&c, &format!("{u}/o/token/"), &form, Some(("prt-gate-dev", "dev-secret"))).await;
    assert_eq!(status, 200, "{tok}");
    let claims = verify(&c, u, tok["id_token"].as_str().unwrap(), Some(&a.nonce)).await;
    assert_eq!(claims["email"], "nobody@example.com");
    let apps = claims["application_roles"].as_object().unwrap();
    assert!(!apps.contains_key("primetrade"), "{claims}");
    assert_eq!(apps["sacks"]["role"], "Client");

    let (a, code) = login(&c, u, "admin@example.com").await;
    let (_, tok) = exchange(&c, u, &code, &a.verifier).await;
    let claims = verify(&c, u, tok["id_token"].as_str().unwrap(), Some(&a.nonce)).await;
    assert_eq!(claims["is_sso_admin"], true);
    assert_eq!(claims["application_roles"]["primetrade"]["role"], "Admin");
    assert_eq!(
        claims["application_roles"]["primetrade"]["features"]["bol"],
        json!(["view", "create", "modify", "delete", "export"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_auth_and_grant_errors() {
    let sso = SsoProc::start(&[]);
    let (c, u) = (client(), sso.url.as_str());
    let token_url = format!("{u}/o/token/");

    // Wrong secret, both ways: 401 invalid_client, and the code is still good.
    let (a, code) = login(&c, u, "operator@example.com").await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", a.verifier.as_str()),
        ("client_id", "prt-gate-dev"),
        ("client_secret", "wrong"),
    ];
    let (status, err) = post_form(&c, &token_url, &form, None).await;
    assert_eq!((status, &err["error"]), (401, &json!("invalid_client")));
    let (status, err) = post_form(&c, &token_url, &form[..4], Some(("prt-gate-dev", "wrong"))).await;
    assert_eq!((status, &err["error"]), (401, &json!("invalid_client")));
    let (status, err) = post_form(&c, &token_url, &form[..4], None).await;
    assert_eq!((status, &err["error"]), (401, &json!("invalid_client")));
    form[5].1 = "dev-secret";
    // Two client authentication methods at once.
    let (status, err) = post_form(&c, &token_url, &form, Some(("prt-gate-dev", "dev-secret"))).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_request")));
    let (status, tok) = post_form(&c, &token_url, &form, None).await;
    assert_eq!(status, 200, "{tok}");

    // Wrong code_verifier: invalid_grant, and the code is spent.
    let (_, code) = login(&c, u, "operator@example.com").await;
    let (status, err) = exchange(&c, u, &code, &random()).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")), "{err}");
    let (status, err) = exchange(&c, u, &code, &a.verifier).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")));

    // Missing verifier, other redirect_uri, unknown code, unknown grant type.
    let (a, code) = login(&c, u, "operator@example.com").await;
    let secret = [("client_id", "prt-gate-dev"), ("client_secret", "dev-secret")];
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)], 400, "invalid_grant"),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", CB),
                ("code_verifier", &a.verifier),
            ],
            400,
            "invalid_grant",
        ),
        (vec![("grant_type", "password"), ("username", "x")], 400, "unsupported_grant_type"),
        (vec![("code", "x")], 400, "invalid_request"),
        (vec![("grant_type", "refresh_token"), ("refresh_token", "nope")], 400, "invalid_grant"),
    ];
    for (i, (mut form, want_status, want)) in cases.into_iter().enumerate() {
        form.extend(secret);
        let (status, err) = post_form(&c, &token_url, &form, None).await;
        assert_eq!((status, err["error"].as_str().unwrap()), (want_status, want), "case {i}: {err}");
    }
    let (_, code) = login(&c, u, "operator@example.com").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:8000/other/"),
        ("code_verifier", a.verifier.as_str()),
        ("client_id", "prt-gate-dev"),
        ("client_secret", "dev-secret"),
    ];
    let (status, err) = post_form(&c, &token_url, &form, None).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")));
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_and_rereads_the_current_role() {
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), devsso::builtin_users()).await.unwrap();
    let (c, u) = (client(), sso.url());
    let (a, code) = login(&c, u, "operator@example.com").await;
    let (_, tok) = exchange(&c, u, &code, &a.verifier).await;
    let first = verify(&c, u, tok["id_token"].as_str().unwrap(), Some(&a.nonce)).await;
    assert_eq!(first["application_roles"]["primetrade"]["role"], "Operator");

    sso.set_role("operator@example.com", Some("Client")).await.unwrap();
    let refresh = |rt: String| {
        let c = c.clone();
        let url = format!("{u}/o/token/");
        async move {
            let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
            post_form(&c, &url, &form, Some(("prt-gate-dev", "dev-secret"))).await
        }
    };
    let old = tok["refresh_token"].as_str().unwrap().to_string();
    let (status, tok2) = refresh(old.clone()).await;
    assert_eq!(status, 200, "{tok2}");
    assert_ne!(tok2["access_token"], tok["access_token"]);
    assert_ne!(tok2["refresh_token"], tok["refresh_token"]);
    assert_eq!(tok2["expires_in"], 900);
    // A refreshed ID token carries no nonce (OIDC Core 12.2) and the new role.
    let second = verify(&c, u, tok2["id_token"].as_str().unwrap(), None).await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
    assert_eq!(
        second["application_roles"]["primetrade"],
        json!({"role": "Client", "permissions": [], "tenant_code": "PRT",
            "features": {"bol": ["view"], "releases": ["view"], "schedule": ["view"],
                "client_portal": ["view"]}})
    );

    // Rotation: the old refresh token is dead, the new one works once.
    let (status, err) = refresh(old).await;
    assert_eq!((status, &err["error"]), (400, &json!("invalid_grant")));
    sso.set_role("operator@example.com", None).await.unwrap();
    let (status, tok3) = refresh(tok2["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(status, 200, "{tok3}");
    let third = verify(&c, u, tok3["id_token"].as_str().unwrap(), None).await;
    assert_eq!(third["application_roles"], json!({}));
    let (status, _) = refresh(tok2["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(status, 400);
    assert!(sso.set_role("ghost@example.com", Some("Admin")).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn minted_bearer_tokens_verify_against_the_served_jwks() {
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), devsso::builtin_users()).await.unwrap();
    let c = client();
    let now = jsonwebtoken::get_current_timestamp();
    let token = sso.mint(json!({"iss": sso.issuer(), "aud": "prt-gate-dev", "sub": "svc-sacks", "exp": now + 60,
        "application_roles": {"primetrade": {"role": "Operator"}}}));
    let claims = verify(&c, sso.url(), &token, None).await;
    assert_eq!(claims["sub"], "svc-sacks");
    assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some(sso.kid()));
}

#[tokio::test(flavor = "multi_thread")]
async fn authorize_never_redirects_to_an_unvalidated_uri() {
    let sso = SsoProc::start(&[]);
    let (c, u) = (client(), sso.url.as_str());
    let a = Attempt::new();
    let hint = ("login_hint", "client@example.com");
    for evil in ["https://evil.example/cb", "http://127.0.0.1.evil.example/", "http://user@127.0.0.1/", "//127.0.0.1/"]
    {
        let url = a.authorize_url(u, &[hint]).replace(&url_enc(CB), &url_enc(evil));
        let (parts, body) = send(&c, get(&url)).await;
        assert_eq!(parts.status, 400, "{evil}");
        assert!(!parts.headers.contains_key("location"), "{evil}");
        assert!(String::from_utf8_lossy(&body).contains("<title>barge2rail dev SSO</title>"));
    }
    let (parts, _) = send(&c, get(&a.authorize_url(u, &[hint]).replace("prt-gate-dev", "other"))).await;
    assert_eq!((parts.status.as_u16(), parts.headers.contains_key("location")), (400, false));
    let (parts, _) = send(&c, get(&format!("{}&client_id=prt-gate-dev", a.authorize_url(u, &[hint])))).await;
    assert_eq!((parts.status.as_u16(), parts.headers.contains_key("location")), (400, false));

    // Once the redirect_uri is trusted, protocol errors go back to it with state.
    let rows: &[(&str, &str, &str)] = &[
        ("scope=openid+email+profile+roles", "scope=email", "invalid_scope"),
        ("scope=openid+email+profile+roles", "scope=openid+offline_access", "invalid_scope"),
        ("response_type=code", "response_type=token", "unsupported_response_type"),
        ("code_challenge_method=S256", "code_challenge_method=S512", "invalid_request"),
        ("code_challenge=", "code_challenge=x", "invalid_request"),
    ];
    for (from, to, want) in rows {
        let url = a.authorize_url(u, &[hint]);
        assert!(url.contains(from), "{url}");
        let url = url.replace(from, to);
        let (parts, _) = send(&c, get(&url)).await;
        assert_eq!(parts.status, 302, "{want}");
        let q = query(&location(&parts));
        assert_eq!((q["error"].as_str(), q["state"].as_str()), (*want, a.state.as_str()));
        assert!(!q.contains_key("code"));
    }
}

fn url_enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn picker_lists_every_user_and_its_links_log_in() {
    let sso = SsoProc::start(&[]);
    let (c, u) = (client(), sso.url.as_str());
    let a = Attempt { state: r#""><script>alert(1)</script>"#.into(), ..Attempt::new() };
    for extra in [&[][..], &[("login_hint", "stranger@example.com")][..]] {
        let (parts, body) = send(&c, get(&a.authorize_url(u, extra))).await;
        assert_eq!(parts.status, 200);
        assert!(parts.headers["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("<title>barge2rail dev SSO</title>"));
        for email in ["admin", "office", "operator", "client", "nobody"].map(|n| format!("{n}@example.com")) {
            assert!(html.contains(&format!(r#"id="user-{email}""#)), "{email} missing:\n{html}");
        }
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(html.contains("stranger@example.com"), !extra.is_empty());
    }

    // Following a user's link is the login_hint path: straight back with a code.
    let (_, body) = send(&c, get(&a.authorize_url(u, &[]))).await;
    let html = String::from_utf8(body.to_vec()).unwrap();
    let start = html.find(r#"id="user-office@example.com" href=""#).unwrap() + 35;
    let href = html[start..][..html[start..].find('"').unwrap()].replace("&amp;", "&");
    let (parts, _) = send(&c, get(&format!("{u}{href}"))).await;
    assert_eq!(parts.status, 302);
    let q = query(&location(&parts));
    assert_eq!(q["state"], a.state);
    let (status, tok) = exchange(&c, u, &q["code"], &a.verifier).await;
    assert_eq!(status, 200);
    let claims = verify(&c, u, tok["id_token"].as_str().unwrap(), Some(&a.nonce)).await;
    assert_eq!(claims["email"], "office@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_redirects_only_to_loopback() {
    let sso = SsoProc::start(&[]);
    let (c, u) = (client(), sso.url.as_str());
    let back = "http://127.0.0.1:8000/auth/login/";
    let (parts, _) =
        send(&c, get(&format!("{u}/o/logout/?client_id=prt-gate-dev&post_logout_redirect_uri={}", url_enc(back))))
            .await;
    assert_eq!((parts.status.as_u16(), location(&parts).as_str()), (302, back));
    let (parts, body) =
        send(&c, get(&format!("{u}/o/logout/?post_logout_redirect_uri={}", url_enc("https://evil.example/")))).await;
    assert_eq!((parts.status.as_u16(), parts.headers.contains_key("location")), (200, false));
    assert!(String::from_utf8_lossy(&body).contains("logged out"));
}

#[test]
fn non_loopback_listen_and_bad_users_file_exit_2() {
    let out = std::process::Command::new(BIN).args(["dev-sso", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "prt-gate dev-sso: dev-sso serves loopback only; 0.0.0.0:0 is not a loopback address (use 127.0.0.1 or [::1])\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = tmpfile(&dir, "users.toml", "[[user]]\nemail = \"a@x.com\"\nnmae = \"A\"\n");
    let out = std::process::Command::new(BIN)
        .args(["dev-sso", "--listen", "127.0.0.1:0", "--users"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("prt-gate dev-sso: invalid users file: ") && err.contains("users.toml:3:1:"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_file_replaces_the_builtin_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = tmpfile(
        &dir,
        "users.toml",
        "[[user]]\nemail = \"dana@acme.test\"\nname = \"Dana <Dispatch>\"\nrole = \"office\"\ntenant_code = \"ACME\"\n\
         [user.features]\nschedule = [\"view\"]\n",
    );
    let sso = SsoProc::start(&["--users", file.to_str().unwrap()]);
    let (c, u) = (client(), sso.url.as_str());
    let (_, body) = send(&c, get(&Attempt::new().authorize_url(u, &[]))).await;
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains(r#"id="user-dana@acme.test""#) && html.contains("Dana &lt;Dispatch&gt;"), "{html}");
    assert!(!html.contains("admin@example.com"));
    let (a, code) = login(&c, u, "dana@acme.test").await;
    let (_, tok) = exchange(&c, u, &code, &a.verifier).await;
    let claims = verify(&c, u, tok["id_token"].as_str().unwrap(), Some(&a.nonce)).await;
    assert_eq!(
        claims["application_roles"]["primetrade"],
        json!({"role": "office", "permissions": [], "features": {"schedule": ["view"]}, "tenant_code": "ACME"})
    );
    assert!(sso.stderr_text().contains("dana@acme.test"), "{}", sso.stderr_text());
}
