//! Sessions and SSO login end to end: the real gate binary, the dev SSO,
//! a recording upstream, the shipped policy, and real Redis where stated.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use prt_gate::devsso::{builtin_users, DevSso};
use serde_json::json;

use crate::support::*;

async fn sso() -> DevSso {
    DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_logs_in_and_upstream_sees_its_identity() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let rows = [
        ("admin@example.com", "Admin", "/"),
        ("office@example.com", "Office", "/"),
        ("operator@example.com", "Operator", "/"),
        ("client@example.com", "Client", "/client.html"),
    ];
    for (email, role, landing) in rows {
        let l = login(&gate, email, "", None).await;
        assert_eq!(l.status, 302, "{email}: {l:?}");
        assert_eq!(l.location.as_deref(), Some(gate.url(landing).as_str()), "{email} landing");
        let cookie = l.cookie.expect("session cookie");
        let set = &l.set_cookie[0];
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");

        // /api/auth/me/ is open to every role.
        let (parts, _) = send(&client(), get_with(&gate.url("/api/auth/me/"), Some(&cookie), None)).await;
        assert_eq!(parts.status, 200, "{email}");
        let seen = up.last();
        assert_eq!(seen.one("x-auth-email"), Some(email));
        assert_eq!(seen.one("x-auth-role"), Some(role));
        assert_eq!(seen.one("x-tenant-id"), Some("primetrade"));
        assert_eq!(seen.one("x-tenant-name"), Some("PrimeTrade Logistics"));
        // The gate's cookie never reaches Django.
        assert!(seen.all("cookie").iter().all(|c| !c.contains("prt_session")), "{:?}", seen.all("cookie"));
        // The assertion verifies with the shared secret and names this request.
        let token = seen.one("x-prt-assertion").expect("assertion");
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_audience(&["django"]);
        v.set_issuer(&["prt-gate"]);
        let key = jsonwebtoken::DecodingKey::from_secret(TEST_ASSERTION_SECRET.as_bytes());
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).unwrap().claims;
        assert_eq!(claims["email"], email);
        assert_eq!(claims["role"], role);
        assert_eq!(claims["method"], "GET");
        assert_eq!(claims["path"], "/api/auth/me/");
        assert_eq!(claims["jti"].as_str(), seen.one("x-request-id"));
        assert!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() <= 60);
        let other = jsonwebtoken::DecodingKey::from_secret(b"another-secret-another-secret-0123");
        assert!(jsonwebtoken::decode::<serde_json::Value>(token, &other, &v).is_err());
    }
    // The policy applies to sessions: Client may not read the audit log.
    let client_cookie = login(&gate, "client@example.com", "", None).await.cookie.unwrap();
    let (parts, body) = send(&client(), get_with(&gate.url("/api/audit/"), Some(&client_cookie), None)).await;
    assert_eq!(parts.status, 403);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["required_roles"], json!(["Admin", "Office"]));
    let metrics = scrape(&gate).await;
    assert!(metrics.contains("prt_gate_logins_total{outcome=\"ok\"} 5\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_without_primetrade_role_is_refused_without_session() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let l = login(&gate, "nobody@example.com", "/", None).await;
    assert_eq!(l.status, 403);
    // No session cookie (only the used login cookie is expired).
    assert!(
        l.cookie.is_none() && l.set_cookie.iter().all(|c| c.starts_with("prt_login_") && c.contains("Max-Age=0")),
        "{l:?}"
    );
    let metrics = scrape(&gate).await;
    assert!(metrics.contains("prt_gate_logins_total{outcome=\"no_role\"} 1\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_answers_api_401_page_302() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let (parts, body) = send(&client(), get(&gate.url("/api/history/"))).await;
    assert_eq!(parts.status, 401);
    assert_eq!(&body[..], b"{\"error\":\"unauthenticated\",\"login\":\"/auth/login/\"}\n");
    assert_eq!(parts.headers["cache-control"], "no-store");
    let (parts, _) = send(&client(), get_with(&gate.url("/dashboard?tab=2"), None, Some("text/html"))).await;
    assert_eq!(parts.status, 302);
    assert_eq!(parts.headers["location"], gate.url("/auth/login/?next=%2Fdashboard%3Ftab%3D2").as_str());
    // A made-up cookie is just anonymous.
    let fake = "prt_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (parts, _) = send(&client(), get_with(&gate.url("/api/history/"), Some(fake), None)).await;
    assert_eq!(parts.status, 401);
    assert_eq!(up.count(), 0);
    // Public routes need nothing and carry no identity.
    let (parts, _) = send(&client(), get(&gate.url("/api/health/"))).await;
    assert_eq!(parts.status, 200);
    assert!(up.last().all("x-auth-email").is_empty() && up.last().all("x-tenant-id").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_session_and_login_never_reuses_a_cookie() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let first = login(&gate, "office@example.com", "/api/history/", None).await;
    assert_eq!(first.location.as_deref(), Some(gate.url("/api/history/").as_str()));
    let first = first.cookie.unwrap();

    // No fixation: logging in with a cookie already set mints a new id and
    // ends the old session.
    let second = login(&gate, "client@example.com", "", Some(&first)).await.cookie.unwrap();
    assert_ne!(first, second);
    let (parts, _) = send(&client(), get_with(&gate.url("/api/history/"), Some(&first), None)).await;
    assert_eq!(parts.status, 401, "old session survived a new login");

    // An attacker-chosen cookie value is never adopted.
    let planted = "prt_session=plantedplantedplantedplantedplantedplanted1";
    let l = login(&gate, "client@example.com", "", Some(planted)).await;
    assert_ne!(l.cookie.as_deref(), Some(planted));

    let (parts, _) = send(&client(), get_with(&gate.url("/api/history/"), Some(&second), None)).await;
    assert_eq!(parts.status, 200);
    let parts = logout(&gate, &second).await;
    assert_eq!(parts.status, 302);
    let loc = parts.headers["location"].to_str().unwrap();
    assert!(
        loc.starts_with(&format!("{}/o/logout/?client_id=prt-gate-dev&post_logout_redirect_uri=", sso.url())),
        "{loc}"
    );
    let expired = parts.headers["set-cookie"].to_str().unwrap();
    assert!(expired.starts_with("prt_session=;") && expired.contains("Max-Age=0"), "{expired}");
    let (parts, _) = send(&client(), get_with(&gate.url("/api/history/"), Some(&second), None)).await;
    assert_eq!(parts.status, 401, "session survived logout");
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_logins_in_two_tabs_both_succeed_and_state_is_single_use() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let c = client();
    let start = |hint: &str| gate.url(&format!("/auth/login/?login_hint={hint}"));
    let (a, _) = send(&c, get(&start("client%40example.com"))).await;
    // The second tab's request carries the first tab's login cookie, as
    // the browser would send it.
    let jar_a = cookies_set(&a);
    let (b, _) = send(&c, get_with(&start("office%40example.com"), Some(&jar_a.join("; ")), None)).await;
    let jar: Vec<String> = jar_a.into_iter().chain(cookies_set(&b)).collect();
    assert_eq!(jar.len(), 2, "one login cookie per tab: {jar:?}");
    let jar = jar.join("; ");
    let cb_a = send(&c, get(a.headers["location"].to_str().unwrap())).await.0.headers["location"]
        .to_str()
        .unwrap()
        .to_string();
    let cb_b = send(&c, get(b.headers["location"].to_str().unwrap())).await.0.headers["location"]
        .to_str()
        .unwrap()
        .to_string();
    let (rb, _) = send(&c, get_with(&cb_b, Some(&jar), None)).await;
    let (ra, _) = send(&c, get_with(&cb_a, Some(&jar), None)).await;
    assert_eq!((ra.status.as_u16(), rb.status.as_u16()), (302, 302));
    for r in [&ra, &rb] {
        assert!(cookies_set(r).iter().any(|c| c.starts_with("prt_session=")), "{:?}", r.headers);
    }
    // Replaying a callback: the state was consumed.
    let (again, _) = send(&c, get_with(&cb_a, Some(&jar), None)).await;
    assert_eq!(again.status, 400);
    assert!(cookies_set(&again).is_empty(), "{:?}", again.headers);
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_are_verified_like_id_tokens() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let iss = sso.issuer().to_string();
    let good = |role: &str| {
        json!({"sub": "svc-1", "iss": iss, "aud": "prt-gate-dev", "iat": now(), "exp": now() + 600,
               "email": "svc@example.com",
               "application_roles": {"primetrade": {"role": role, "features": {"releases": ["view"]}}}})
    };
    let call = |token: String| bearer_get(gate.url("/api/open-releases/"), token);
    // Positive control: a valid Office token passes and Django sees the
    // identity and, on this route (`forward_authorization = true`, the view
    // verifies it again), the same token. The consuming default is checked
    // in `realapp::open_releases_forwards_the_verified_bearer_token`.
    let office = sso.mint(good("Office"));
    assert_eq!(call(office.clone()).await, 200);
    let seen = up.last();
    assert_eq!(seen.one("x-auth-role"), Some("Office"));
    assert_eq!(seen.all("authorization"), vec![format!("Bearer {office}")]);
    assert_eq!(call(sso.mint(good("Client"))).await, 403);

    let mut expired = good("Admin");
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = good("Admin");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = good("Admin");
    wrong_iss["iss"] = json!("https://evil.example/o");
    let mut string_exp = good("Admin");
    string_exp["exp"] = json!((now() + 600).to_string());
    let mut no_exp = good("Admin");
    no_exp.as_object_mut().unwrap().remove("exp");
    let b64 = |v: &serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&good("Admin")));
    // HS256 keyed with the SSO's public key material (the classic confusion).
    let jwks = sso.jwks();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_string();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(sso.kid().to_string());
    let hs256 =
        jsonwebtoken::encode(&h, &good("Admin"), &jsonwebtoken::EncodingKey::from_secret(n.as_bytes())).unwrap();
    let forged_sig = {
        let t = sso.mint(good("Admin"));
        let (head, _) = t.rsplit_once('.').unwrap();
        format!("{head}.AAAA")
    };
    let rows = [
        ("expired", sso.mint(expired)),
        ("wrong aud", sso.mint(wrong_aud)),
        ("wrong iss", sso.mint(wrong_iss)),
        ("string exp", sso.mint(string_exp)),
        ("no exp", sso.mint(no_exp)),
        ("alg none", alg_none),
        ("hs256 with public key", hs256),
        ("forged signature", forged_sig),
        ("garbage", "not.a.jwt".to_string()),
    ];
    let before = up.count();
    for (what, token) in rows {
        assert_eq!(call(token).await, 401, "{what} accepted");
    }
    assert_eq!(up.count(), before, "a refused token reached the upstream");
    // A cookie is not a credential on a bearer route.
    let cookie = login(&gate, "admin@example.com", "", None).await.cookie.unwrap();
    let (parts, _) = send(&client(), get_with(&gate.url("/api/open-releases/"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_redirect_corpus_never_leaves_the_origin() {
    let up = Upstream::start().await;
    let sso = sso().await;
    // Over a thousand logins from one address: no login rate limit here.
    let gate =
        GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().env("PRT_GATE_GATE__LOGIN_RATE_LIMIT", "0").start();
    let corpus = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openredirects.txt"))
        .expect("tests/fixtures/openredirects.txt");
    let origin = gate.url("");
    let mut checked = 0;
    for line in corpus.lines().filter(|l| !l.is_empty()) {
        // Raw (the browser sends it as is) and percent-encoded once.
        let encoded: String = url::form_urlencoded::byte_serialize(line.as_bytes()).collect();
        for next_param in [line.to_string(), encoded] {
            let c = client();
            let Ok(req) =
                Request::get(gate.url(&format!("/auth/login/?login_hint=client%40example.com&next={next_param}")))
                    .body(Full::new(Bytes::new()))
            else {
                continue; // not even a valid request target
            };
            let Ok(resp) = c.request(req).await else { continue };
            if resp.status() != 302 {
                assert_eq!(resp.status(), 400, "{line:?}");
                continue;
            }
            let jar = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
                .collect::<Vec<_>>()
                .join("; ");
            let authorize = resp.headers()["location"].to_str().unwrap().to_string();
            let (parts, _) = send(&c, get(&authorize)).await;
            let callback = parts.headers["location"].to_str().unwrap().to_string();
            let (parts, _) = send(&c, get_with(&callback, Some(&jar), None)).await;
            assert_eq!(parts.status, 302, "{line:?}");
            let loc = parts.headers["location"].to_str().unwrap();
            let parsed = url::Url::parse(loc).unwrap();
            assert!(
                loc.starts_with(&format!("{origin}/")) && parsed.origin() == url::Url::parse(&origin).unwrap().origin(),
                "{line:?} → {loc}"
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

fn unique_prefix() -> String {
    format!("prt-gate-it:{:016x}:", rand::random::<u64>())
}

/// Deletes the test's keys from the shared Redis afterwards (never FLUSH).
struct PrefixCleanup(String);

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        let keys =
            std::process::Command::new("redis-cli").args(["--scan", "--pattern", &format!("{}*", self.0)]).output();
        if let Ok(out) = keys {
            for k in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = std::process::Command::new("redis-cli").args(["del", k]).output();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gates_share_redis_sessions_and_revocation_reaches_both_within_a_second() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let prefix = unique_prefix();
    let _cleanup = PrefixCleanup(prefix.clone());
    let env =
        [("PRT_GATE_SESSION__STORE", "redis://127.0.0.1:6379"), ("PRT_GATE_SESSION__KEY_PREFIX", prefix.as_str())];
    let a = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let b = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let status = |gate: &Gate, cookie: &str| {
        let req = get_with(&gate.url("/api/history/"), Some(cookie), None);
        async move { send(&client(), req).await.0.status.as_u16() }
    };

    // Log in on A, use the cookie on B.
    let cookie = login(&a, "office@example.com", "", None).await.cookie.unwrap();
    assert_eq!(status(&b, &cookie).await, 200);
    assert_eq!(status(&a, &cookie).await, 200);

    // Logout on A: B refuses within 1 s (its hot cache may hold the session
    // for at most session.cache_ttl).
    assert_eq!(logout(&a, &cookie).await.status, 302);
    let t = std::time::Instant::now();
    while status(&b, &cookie).await != 401 {
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "B still accepts a logged-out session");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Operator revocation with the CLI against the same configuration.
    let cookie = login(&b, "client@example.com", "", None).await.cookie.unwrap();
    assert_eq!(status(&a, &cookie).await, 200);
    let out = std::process::Command::new(BIN)
        .args(["sessions", "list", "--user", "CLIENT@example.com", "--config"])
        .arg(a.dir.path().join("policy.toml"))
        .envs(env)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("client@example.com"),
        "{listed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!listed.contains(cookie.trim_start_matches("prt_session=")), "session id printed by sessions list");
    let out = std::process::Command::new(BIN)
        .args(["sessions", "revoke", "--user", "client@example.com", "--config"])
        .arg(a.dir.path().join("policy.toml"))
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "revoked 1 session(s)");
    let t = std::time::Instant::now();
    loop {
        let (sa, sb) = (status(&a, &cookie).await, status(&b, &cookie).await);
        if sa == 401 && sb == 401 {
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "revoked session still accepted: {sa} {sb}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_fails_closed_with_503_and_recovers() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let mut redis = Redis::start(&[]);
    let url = redis.url();
    let gate =
        GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().env("PRT_GATE_SESSION__STORE", url.as_str()).start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let status = |cookie: Option<String>, html: bool| {
        let req = get_with(&gate.url("/api/history/"), cookie.as_deref(), html.then_some("text/html"));
        async move { send(&client(), req).await.0.status.as_u16() }
    };
    assert_eq!(status(Some(cookie.clone()), false).await, 200);
    let served_before = up.count();

    redis.kill();
    // Past the hot-cache window, every protected request is 503 — never 200,
    // never treated as anonymous.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..5 {
        assert_eq!(status(Some(cookie.clone()), false).await, 503);
    }
    let (parts, body) = send(&client(), get_with(&gate.url("/api/history/"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 503);
    assert!(String::from_utf8_lossy(&body).contains("\"error\":\"unavailable\""));
    // Logins cannot start either.
    let (parts, _) = send(&client(), get(&gate.url("/auth/login/"))).await;
    assert_eq!(parts.status, 503);
    assert_eq!(up.count(), served_before, "a request reached Django while the session store was down");
    // Public routes need no session and keep working.
    assert_eq!(send(&client(), get(&gate.url("/api/health/"))).await.0.status, 200);

    // Redis back (empty: it keeps nothing on disk): the gate recovers alone.
    redis.restart();
    let mut recovered = false;
    for _ in 0..100 {
        if status(Some(cookie.clone()), false).await == 401 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recovered, "gate did not recover after Redis came back");
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    assert_eq!(status(Some(cookie), false).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rereads_roles_so_a_revoked_role_ends_access() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let env = [("PRT_GATE_SSO__REFRESH", "true"), ("PRT_GATE_SSO__REFRESH_INTERVAL", "1s")];
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let status = |path: &'static str| {
        let req = get_with(&gate.url(path), Some(&cookie), None);
        async move { send(&client(), req).await.0.status.as_u16() }
    };
    assert_eq!(status("/api/audit/").await, 200);

    // Demoted to Client at the SSO: after the next refresh the audit log is closed.
    sso.set_role("office@example.com", Some("Client")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(status("/api/audit/").await, 403);
    assert_eq!(status("/api/history/").await, 200);
    assert_eq!(up.last().one("x-auth-role"), Some("Client"));

    // Role removed at the SSO: the session ends.
    sso.set_role("office@example.com", None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(status("/api/history/").await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_refresh_roles_are_fixed_for_the_session() {
    // Positive control for the test above: refresh is off by default.
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate =
        GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().env("PRT_GATE_SSO__REFRESH_INTERVAL", "1s").start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    sso.set_role("office@example.com", Some("Client")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (parts, _) = send(&client(), get_with(&gate.url("/api/audit/"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_from_claim_mode_maps_codes_and_refuses_unknown() {
    use prt_gate::devsso::User;
    let up = Upstream::start().await;
    let sso = sso().await;
    let mut stranger = User::with_role("stranger@example.com", "Stranger", Some("Client"));
    stranger.tenant_code = "ZZZ".into();
    sso.upsert_user(stranger).await.unwrap();
    let env = [
        ("PRT_GATE_TENANT__MODE", "claim"),
        ("PRT_GATE_TENANT__CODES", "{PRT = {id = \"prt-tenant\", name = \"PrimeTrade (claim)\"}}"),
    ];
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let cookie = login(&gate, "client@example.com", "", None).await.cookie.expect("PRT user logs in");
    let (parts, _) = send(&client(), get_with(&gate.url("/api/history/"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 200);
    let seen = up.last();
    assert_eq!(seen.one("x-tenant-id"), Some("prt-tenant"));
    assert_eq!(seen.one("x-tenant-name"), Some("PrimeTrade (claim)"));
    let token = seen.one("x-prt-assertion").unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["django"]);
    let key = jsonwebtoken::DecodingKey::from_secret(TEST_ASSERTION_SECRET.as_bytes());
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).unwrap().claims;
    assert_eq!((claims["tenant_id"].as_str(), claims["tenant_code"].as_str()), (Some("prt-tenant"), Some("PRT")));
    // Unknown tenant code: refused at login, no session.
    let l = login(&gate, "stranger@example.com", "", None).await;
    assert_eq!(l.status, 403);
    assert!(l.cookie.is_none());
}
