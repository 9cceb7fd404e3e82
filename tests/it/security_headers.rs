//! Every answer of the login flow, through a real gate, the dev SSO and a recording
//! upstream, carries the same security headers as the gate's other answers
//! (`X-Content-Type-Options: nosniff`, `Cache-Control: no-store`, the request id): the
//! SSO redirect, each refused callback, the signed-in redirect, the logout pages and
//! redirect, the rate limit and the no-SSO page.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::*;

/// What is missing from the security header set (empty: all there).
fn missing(parts: &http::response::Parts) -> Vec<&'static str> {
    let h = &parts.headers;
    let mut missing = Vec::new();
    if h.get("x-content-type-options").is_none_or(|v| v != "nosniff") {
        missing.push("x-content-type-options: nosniff");
    }
    let cache = h.get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !cache.split(',').any(|d| d.trim() == "no-store") {
        missing.push("cache-control: no-store");
    }
    if h.get_all("x-request-id").iter().count() != 1 {
        missing.push("x-request-id");
    }
    missing
}

async fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(&client(), b.body(Full::new(Bytes::new())).unwrap()).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn every_login_flow_answer_carries_the_security_headers() {
    let up = Upstream::start().await;
    let sso = SsoProc::start(&[]);
    let env = [("PRT_GATE_GATE__LOGIN_RATE_LIMIT", "20")];
    let gate = GateBuilder::new(up.addr).sso(&sso.url).shipped_policy().envs(&env).start();
    let mut rows: Vec<(&str, http::response::Parts, u16)> = Vec::new();

    rows.push(("login → SSO", request("GET", &gate.url("/auth/login/?next=%2F"), &[]).await, 302));
    rows.push(("callback without state", request("GET", &gate.url("/auth/callback/"), &[]).await, 400));
    // Started in another browser: no login cookie.
    let (callback, cookies) = start_login(&gate, "office@example.com").await;
    rows.push(("callback unbound", request("GET", &callback, &[]).await, 403));
    // The SSO reported an error for a login this browser started.
    let jar = cookies.join("; ");
    let errored = format!("{callback}&error=access_denied");
    rows.push(("callback sso error", request("GET", &errored, &[("cookie", &jar)]).await, 400));
    // The state is single use: the same callback again.
    rows.push(("callback used state", request("GET", &callback, &[("cookie", &jar)]).await, 400));
    // A user without a PrimeTrade role.
    let (callback, cookies) = start_login(&gate, "nobody@example.com").await;
    rows.push(("callback no role", request("GET", &callback, &[("cookie", &cookies.join("; "))]).await, 403));
    let (callback, cookies) = start_login(&gate, "office@example.com").await;
    let signed_in = request("GET", &callback, &[("cookie", &cookies.join("; "))]).await;
    let session = cookies_set(&signed_in).into_iter().find(|c| c.starts_with("prt_session=")).expect("session");
    rows.push(("callback signed in", signed_in, 302));
    rows.push(("logout confirmation", request("GET", &gate.url("/auth/logout/"), &[]).await, 200));
    let cross = [("cookie", session.as_str()), ("origin", "https://evil.example")];
    rows.push(("logout cross-site", request("POST", &gate.url("/auth/logout/"), &cross).await, 403));
    rows.push(("logout wrong method", request("PUT", &gate.url("/auth/logout/"), &[]).await, 405));
    let origin = gate.url("");
    let same = [("cookie", session.as_str()), ("origin", origin.as_str())];
    rows.push(("logout", request("POST", &gate.url("/auth/logout/"), &same).await, 302));
    // The SSO goes away between the authorize redirect and the callback.
    let (callback, cookies) = start_login(&gate, "office@example.com").await;
    drop(sso);
    rows.push(("callback sso down", request("GET", &callback, &[("cookie", &cookies.join("; "))]).await, 503));
    let mut limited = None;
    for _ in 0..30 {
        let parts = request("GET", &gate.url("/auth/login/"), &[]).await;
        if parts.status == 429 {
            limited = Some(parts);
            break;
        }
    }
    rows.push(("rate limited", limited.expect("the login rate limit answered 429"), 429));

    for (name, parts, status) in &rows {
        assert_eq!(parts.status, *status, "{name}");
        assert_eq!(missing(parts), Vec::<&str>::new(), "{name}: {:?}", parts.headers);
    }
    assert_eq!(up.count(), 0, "no login-flow request reaches the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_no_sso_page_carries_the_security_headers() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    for path in ["/auth/login/", "/auth/callback/?state=x", "/auth/logout/"] {
        let parts = request("GET", &gate.url(path), &[]).await;
        assert_eq!(parts.status, 503, "{path}");
        assert_eq!(missing(&parts), Vec::<&str>::new(), "{path}");
    }
    // Positive control: the upstream's own answer is not the gate's and keeps its headers.
    let parts = request("GET", &gate.url("/api/health/"), &[]).await;
    assert_eq!(parts.status, 200);
    assert!(parts.headers.get("x-content-type-options").is_none(), "{:?}", parts.headers);
}
