//! Issue 15's authentication edges, end to end against the real gate, the
//! dev SSO and a recording upstream: login CSRF (the callback is bound to the
//! browser that started the login), cross-site logout, duplicate session
//! cookies, Bearer `iat`/`nbf`, a browser's `Authorization` header, and the
//! login rate limit.

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

fn set_cookies(parts: &http::response::Parts) -> Vec<String> {
    parts.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// Status of `GET /api/history/` with `cookie`, and the email the upstream saw.
async fn history(gate: &Gate, up: &Upstream, cookie: &str) -> (u16, Option<String>) {
    let before = up.count();
    let (parts, _) = send(&client(), get_with(&gate.url("/api/history/"), Some(cookie), None)).await;
    let email = (up.count() > before).then(|| up.last().one("x-auth-email").map(str::to_string)).flatten();
    (parts.status.as_u16(), email)
}

#[tokio::test(flavor = "multi_thread")]
async fn login_csrf_callback_link_from_another_browser_is_refused_and_victim_session_kept() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let victim = login(&gate, "office@example.com", "", None).await.cookie.expect("victim session");
    assert_eq!(history(&gate, &up, &victim).await, (200, Some("office@example.com".into())));

    // The attacker starts a login, signs in at the SSO as themself and does
    // not follow the redirect back: they hold a valid callback link.
    let (callback, attacker_cookies) = start_login(&gate, "client@example.com").await;

    // The victim opens the link in their browser (their session cookie, no
    // login cookie for that state): 403, no session set, none deleted.
    let (parts, body) =
        send(&client(), get_with(&callback, Some(&victim), Some("text/html,application/xhtml+xml"))).await;
    assert_eq!(parts.status, 403);
    assert!(String::from_utf8_lossy(&body).contains("not started in this browser"), "{body:?}");
    assert!(set_cookies(&parts).iter().all(|c| !c.contains("prt_session")), "{:?}", set_cookies(&parts));
    assert_eq!(history(&gate, &up, &victim).await, (200, Some("office@example.com".into())), "victim's session");

    // A login cookie of another login of the victim's does not unlock it either.
    let (_, victim_login) = start_login(&gate, "office@example.com").await;
    let jar = format!("{victim}; {}", victim_login.join("; "));
    assert_eq!(send(&client(), get_with(&callback, Some(&jar), None)).await.0.status, 403);
    assert_eq!(history(&gate, &up, &victim).await.0, 200);

    // Positive control: the browser that started the login (holding its one
    // login cookie) completes it with the same link (the refused attempts
    // did not consume it).
    assert_eq!(attacker_cookies.len(), 1, "{attacker_cookies:?}");
    assert!(attacker_cookies[0].starts_with("prt_login_"), "{attacker_cookies:?}");
    let (parts, _) = send(&client(), get_with(&callback, Some(&attacker_cookies.join("; ")), None)).await;
    assert_eq!(parts.status, 302);
    let sc = set_cookies(&parts);
    let session = sc.iter().find(|c| c.starts_with("prt_session=")).expect("session set").clone();
    // The used login cookie is expired with the answer.
    let login_name = attacker_cookies[0].split('=').next().unwrap();
    assert!(sc.iter().any(|c| c.starts_with(&format!("{login_name}=;")) && c.contains("Max-Age=0")), "{sc:?}");
    let attacker = session.split(';').next().unwrap();
    assert_eq!(history(&gate, &up, attacker).await, (200, Some("client@example.com".into())));
    // The login cookies never reach the upstream.
    let jar = format!("{attacker}; {}; csrftoken=t", victim_login.join("; "));
    send(&client(), get_with(&gate.url("/api/history/"), Some(&jar), None)).await;
    assert_eq!(up.last().all("cookie"), vec!["csrftoken=t"]);

    let metrics = scrape(&gate).await;
    assert!(metrics.contains("prt_gate_logins_total{outcome=\"unbound\"} 2\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_is_not_triggered_cross_site_and_works_same_origin() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let post = |path: &str, headers: &[(&str, String)]| {
        let mut b = Request::post(gate.url(path)).header("cookie", cookie.as_str());
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };

    // A cross-site GET (an <img> or a link on another site) on both paths:
    // a confirmation page, no cookie change, the session lives on.
    for path in ["/auth/logout/", "/logout/", "/auth/logout"] {
        let req = Request::get(gate.url(path))
            .header("cookie", cookie.as_str())
            .header("sec-fetch-site", "cross-site")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (parts, body) = send(&client(), req).await;
        assert_eq!(parts.status, 200, "{path}");
        assert!(set_cookies(&parts).is_empty(), "{path}: {:?}", set_cookies(&parts));
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("<form method=\"post\" action=\"/auth/logout/\">"), "{body}");
        assert_eq!(parts.headers["x-frame-options"], "DENY");
        assert_eq!(history(&gate, &up, &cookie).await.0, 200, "GET {path} logged out");
    }
    // Cross-site or unattributable POSTs (a form on another site): refused.
    let evil = "https://evil.example".to_string();
    let refused: [&[(&str, String)]; 5] = [
        &[("origin", evil.clone())],
        &[("origin", "null".into())],
        &[("sec-fetch-site", "cross-site".into())],
        &[("sec-fetch-site", "same-site".into()), ("origin", gate.url(""))],
        &[],
    ];
    for headers in refused {
        for path in ["/auth/logout/", "/logout/"] {
            let (parts, _) = send(&client(), post(path, headers)).await;
            assert_eq!(parts.status, 403, "{path} {headers:?}");
            assert!(set_cookies(&parts).is_empty(), "{path} {headers:?}");
            assert_eq!(history(&gate, &up, &cookie).await.0, 200, "POST {path} {headers:?} logged out");
        }
    }
    // Other methods: 405.
    let req = Request::delete(gate.url("/auth/logout/")).header("cookie", cookie.as_str());
    let (parts, _) = send(&client(), req.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!((parts.status.as_u16(), parts.headers["allow"].to_str().unwrap()), (405, "GET, HEAD, POST"));
    assert_eq!(history(&gate, &up, &cookie).await.0, 200);

    // Same origin (the confirmation page's button): signed out, on the
    // legacy alias too.
    let (parts, _) = send(&client(), post("/logout/", &[("origin", gate.url(""))])).await;
    assert_eq!(parts.status, 302);
    assert!(parts.headers["location"].to_str().unwrap().starts_with(&format!("{}/o/logout/", sso.url())));
    assert!(set_cookies(&parts).iter().any(|c| c.starts_with("prt_session=;") && c.contains("Max-Age=0")));
    assert_eq!(history(&gate, &up, &cookie).await.0, 401, "same-origin POST did not log out");
    let other = login(&gate, "client@example.com", "", None).await.cookie.unwrap();
    let req = Request::post(gate.url("/auth/logout/"))
        .header("cookie", other.as_str())
        .header("sec-fetch-site", "same-origin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), req).await.0.status, 302);
    assert_eq!(history(&gate, &up, &other).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_session_cookies_authenticate_nobody_and_are_cleared() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let victim = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let tossed = login(&gate, "client@example.com", "", None).await.cookie.unwrap();
    // Positive control: each alone is a session.
    assert_eq!(history(&gate, &up, &victim).await, (200, Some("office@example.com".into())));
    assert_eq!(history(&gate, &up, &tossed).await, (200, Some("client@example.com".into())));

    let served = up.count();
    let expired = |parts: &http::response::Parts| {
        set_cookies(parts).iter().any(|c| c.starts_with("prt_session=;") && c.contains("Max-Age=0"))
    };
    // In one header either way round, in two headers, and the same id twice.
    let one_header = [format!("{tossed}; {victim}"), format!("{victim}; {tossed}"), format!("{victim}; {victim}")];
    for jar in &one_header {
        let (parts, _) = send(&client(), get_with(&gate.url("/api/history/"), Some(jar), None)).await;
        assert_eq!(parts.status, 401, "{jar}");
        assert!(expired(&parts), "{jar}: {:?}", set_cookies(&parts));
    }
    let req = Request::get(gate.url("/dashboard/"))
        .header("cookie", victim.as_str())
        .header("cookie", tossed.as_str())
        .header("accept", "text/html")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, _) = send(&client(), req).await;
    assert_eq!(parts.status, 302);
    assert!(parts.headers["location"].to_str().unwrap().contains("/auth/login/"));
    assert!(expired(&parts));
    assert_eq!(up.count(), served, "a request with two session cookies reached the upstream");
    // The sessions themselves are not ended (the gate cannot tell whose is whose).
    assert_eq!(history(&gate, &up, &victim).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_iat_in_the_future_is_refused_and_nbf_honoured() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let iss = sso.issuer().to_string();
    let token = |iat: i64, nbf: Option<i64>| {
        let t = now() as i64;
        let mut claims = json!({"sub": "svc-1", "iss": iss, "aud": "prt-gate-dev", "iat": t + iat, "exp": t + 3600,
               "email": "svc@example.com",
               "application_roles": {"primetrade": {"role": "Office", "features": {"releases": ["view"]}}}});
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(t + nbf);
        }
        sso.mint(claims)
    };
    let call = |token: String| bearer_get(gate.url("/api/open-releases/"), token);
    // Positive controls: now, within the 60 s clock skew, nbf passed.
    let ok = [("iat now", token(0, None)), ("iat +30 s", token(30, None)), ("nbf past", token(0, Some(-10)))];
    for (what, t) in ok {
        assert_eq!(call(t).await, 200, "{what}");
    }
    let served = up.count();
    let refused =
        [("iat +10 min", token(600, None)), ("iat +1 day", token(86_400, None)), ("nbf +10 min", token(0, Some(600)))];
    for (what, t) in refused {
        assert_eq!(call(t).await, 401, "{what} accepted");
    }
    assert_eq!(up.count(), served, "a refused token reached the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browsers_authorization_header_is_not_forwarded_on_cookie_routes() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let bearer = sso.mint(json!({"sub": "x", "iss": sso.issuer(), "aud": "prt-gate-dev", "exp": now() + 600}));
    for (path, auth) in [
        ("/api/history/", "Basic dXNlcjpwYXNz".to_string()),
        ("/api/history/", format!("Bearer {bearer}")),
        ("/api/health/", "Basic dXNlcjpwYXNz".to_string()),
    ] {
        let req = Request::get(gate.url(path))
            .header("cookie", cookie.as_str())
            .header("authorization", auth.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(send(&client(), req).await.0.status, 200, "{path}");
        let seen = up.last();
        assert_eq!(seen.target, path);
        assert!(seen.all("authorization").is_empty(), "{path}: {:?}", seen.all("authorization"));
        if path == "/api/history/" {
            // The identity Django gets is the gate's.
            assert!(seen.one("x-prt-assertion").is_some());
            assert_eq!(seen.one("x-auth-email"), Some("office@example.com"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_endpoints_are_rate_limited_per_client_address() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let env = [("PRT_GATE_GATE__LOGIN_RATE_LIMIT", "4"), ("PRT_GATE_GATE__TRUSTED_PROXIES", "[\"127.0.0.1\"]")];
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    // A session logged in before (its login counted for 127.0.0.1 itself).
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let attempt = |path: &'static str, client_ip: &'static str| {
        let req = Request::get(gate.url(path))
            .header("x-forwarded-for", format!("198.51.100.9, {client_ip}"))
            .header("accept", "text/html")
            .body(Full::new(Bytes::new()))
            .unwrap();
        async move { send(&client(), req).await.0 }
    };
    for _ in 0..3 {
        assert_eq!(attempt("/auth/login/", "203.0.113.7").await.status, 302);
    }
    // The callback counts too (400: no state; but not limited yet).
    assert_eq!(attempt("/auth/callback/", "203.0.113.7").await.status, 400);
    for path in ["/auth/login/", "/auth/callback/", "/login/"] {
        let parts = attempt(path, "203.0.113.7").await;
        assert_eq!(parts.status, 429, "{path}");
        let retry: u64 = parts.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(set_cookies(&parts).is_empty());
    }
    // Another client behind the same proxy is unaffected.
    assert_eq!(attempt("/auth/login/", "203.0.113.8").await.status, 302);
    // The limited address's logged-in session is never slowed.
    for _ in 0..20 {
        let req = Request::get(gate.url("/api/history/"))
            .header("cookie", cookie.as_str())
            .header("x-forwarded-for", "203.0.113.7")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(send(&client(), req).await.0.status, 200);
    }
    let metrics = scrape(&gate).await;
    assert!(metrics.contains("prt_gate_login_rate_limited_total 3\n"), "{metrics}");
    // Access lines reach stdout in batches: wait for the third 429 before counting.
    let refused = || gate.access_lines().into_iter().filter(|l| l["status"] == 429).count();
    assert!(eventually(std::time::Duration::from_secs(5), || refused() >= 3).await, "{}", gate.log_text());
    let limited: Vec<_> = gate.access_lines().into_iter().filter(|l| l["status"] == 429).collect();
    assert_eq!(limited.len(), 3);
    assert!(limited.iter().all(|l| l["decision"] == "deny"), "{limited:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_rate_limit_is_not_escaped_by_forging_forwarded_for() {
    let up = Upstream::start().await;
    let sso = sso().await;
    // No trusted proxies: X-Forwarded-For is the client's word, not believed.
    let gate =
        GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().env("PRT_GATE_GATE__LOGIN_RATE_LIMIT", "3").start();
    let mut statuses = Vec::new();
    for i in 0..5 {
        let req = Request::get(gate.url("/auth/login/"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        statuses.push(send(&client(), req).await.0.status.as_u16());
    }
    assert_eq!(statuses, [302, 302, 302, 429, 429]);
}
