//! The real application's pages through a running gate on the shipped `policy.toml`: the
//! dev SSO (issuing the real SSO's roles and features), the real gate binary and a
//! recording upstream standing in for Django. Each page's request list is written here in
//! our own words (what the page's JavaScript and the browser ask for); every request must
//! reach the upstream, and what the Phase 1 plan keeps from Clients must not.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use prt_gate::devsso::{builtin_users, DevSso};

use crate::support::*;

async fn sso() -> DevSso {
    DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap()
}

/// A request as a page sends it: pages ask for HTML, scripts for JSON.
fn page_request(gate: &Gate, method: &str, target: &str, cookie: Option<&str>) -> Request<Full<Bytes>> {
    let accept = if target.starts_with("/api/") { "application/json" } else { "text/html,*/*" };
    let mut b = Request::builder().method(method).uri(gate.url(target)).header("accept", accept);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    if method != "GET" {
        b = b.header("x-csrftoken", "t0k3n").header("content-type", "application/json");
    }
    b.body(Full::new(Bytes::from(if method == "GET" { "" } else { "{}" }))).unwrap()
}

/// Sends every request of `pages` as the user of `cookie`; each must answer 200 from the
/// upstream, which must have seen exactly that method and target.
async fn every_request_reaches_upstream(
    gate: &Gate,
    up: &Upstream,
    who: &str,
    cookie: &str,
    pages: &[(&str, &[&str])],
) {
    let c = client();
    let mut failures = Vec::new();
    for (page, requests) in pages {
        for line in *requests {
            let (method, target) = line.split_once(' ').unwrap_or(("GET", line));
            let before = up.count();
            let (parts, _) = send(&c, page_request(gate, method, target, Some(cookie))).await;
            let reached = up.count() == before + 1 && {
                let seen = up.last();
                seen.method == method && seen.target == target
            };
            if parts.status != 200 || !reached {
                failures.push(format!(
                    "{who} on {page}: {method} {target} -> {} (reached upstream: {reached})",
                    parts.status
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What each Client page loads: the page, its stylesheet and images, the branding, the
/// identity, its panels' data, and the browser's icon.
const CLIENT_PAGES: &[(&str, &[&str])] = &[
    (
        "/client.html",
        &[
            "/client.html",
            "/static/css/cbrt-brand.css",
            "/static/images/cbrt-logo.svg",
            "/static/images/barges.jpg",
            "/api/customers/branding/",
            "/api/auth/me/",
            "/api/client/inventory/",
            "/api/client/shipments/",
            "/api/releases/?status=OPEN",
            "/api/releases/?status=COMPLETE",
            "/api/releases/?status=CANCELLED",
            "/api/releases/",
            "/favicon.ico",
        ],
    ),
    (
        "/client-schedule.html",
        &[
            "/client-schedule.html",
            "/api/auth/me/",
            "/api/customers/branding/",
            "/api/client/pending-loads/",
            "/favicon.ico",
        ],
    ),
    (
        "/client-release.html",
        &["/client-release.html?id=12", "/api/customers/branding/", "/api/releases/12/", "/favicon.ico"],
    ),
];

/// Staff pages and the calls their screens make (both Admin and Office).
const STAFF_PAGES: &[(&str, &[&str])] = &[
    ("/", &["/", "/api/user/context/", "/api/auth/me/", "/api/customers/branding/", "/favicon.ico"]),
    (
        "/office.html",
        &[
            "/office.html",
            "/api/products/",
            "/api/customers/",
            "/api/customers/9/",
            "/api/customers/9/shiptos/",
            "/api/carriers/",
            "/api/lots/",
            "/api/releases/load/3/",
            "POST /api/bol/preview/",
            "POST /api/bol/confirm/",
            "POST /api/customers/9/shiptos/",
            "POST /api/carriers/",
        ],
    ),
    ("/bols/", &["/bols/", "/bol.html", "/api/history/", "/api/bol/42/", "/api/bol/42/download/"]),
    ("/bol-weights.html", &["/bol-weights.html", "/api/history/", "POST /api/bol/42/set-official-weight/"]),
    (
        "/open-releases/",
        &[
            "/open-releases/",
            "/api/releases/open/",
            "/api/releases/pending-loads/",
            "/api/releases/7/",
            "PATCH /api/releases/7/",
            "PATCH /api/releases/load/3/",
        ],
    ),
    (
        "/releases.html",
        &[
            "/releases.html",
            "POST /api/releases/upload/",
            "POST /api/releases/approve/",
            "/api/releases/view/",
            "/api/releases/7/view/",
        ],
    ),
    ("/loading-schedule/", &["/loading-schedule/", "/loading-schedule.html", "/api/releases/pending-loads/"]),
    (
        "/inventory-report.html",
        &[
            "/inventory-report.html",
            "/api/inventory-report/",
            "/api/inventory-report/pdf/",
            "/api/variance-report/",
            "/api/balances/",
            "/api/audit/",
        ],
    ),
    ("/products.html", &["/products.html", "/customers.html", "/carriers.html", "/api/products/"]),
    (
        "/kiosk/office/",
        &[
            "/kiosk/office/",
            "POST /kiosk/office/session/4/assign/",
            "/kiosk/api/waiting-drivers/",
            "/kiosk/api/bol-search/?q=PRT",
        ],
    ),
    (
        "/tenant/PRT/pigiron/",
        &["/tenant/PRT/pigiron/releases/", "/tenant/PRT/pigiron/inventory/", "POST /tenant/PRT/pigiron/bol/create/"],
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn client_pages_every_request_reaches_the_upstream() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let cookie = login(&gate, "client@example.com", "", None).await.cookie.expect("client session");
    every_request_reaches_upstream(&gate, &up, "Client", &cookie, CLIENT_PAGES).await;
    // The BOL links of the shipments list: the gate answers media itself (no bucket
    // here: 404), after the policy allowed the Client, never a login or landing redirect.
    let (parts, _) =
        send(&client(), page_request(&gate, "GET", "/media/bols/2025/PRT-2025-0002.pdf", Some(&cookie))).await;
    assert_eq!(parts.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_pages_every_request_reaches_the_upstream() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    for email in ["office@example.com", "admin@example.com"] {
        let cookie = login(&gate, email, "", None).await.cookie.expect("staff session");
        every_request_reaches_upstream(&gate, &up, email, &cookie, STAFF_PAGES).await;
    }
    let admin = login(&gate, "admin@example.com", "", None).await.cookie.unwrap();
    let admin_only: &[(&str, &[&str])] =
        &[("/cbrt-ops/", &["/cbrt-ops/", "POST /api/bol/42/regenerate-pdf/", "POST /api/products/"])];
    every_request_reaches_upstream(&gate, &up, "Admin", &admin, admin_only).await;
}

/// The Phase 1 decisions hold for a signed-in Client: what it may not read or write is
/// refused by the gate (403 for API calls, the Client's own landing page for pages) and
/// never reaches Django. The last rows are the positive control.
#[tokio::test(flavor = "multi_thread")]
async fn phase_one_blocks_hold_for_client() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let cookie = login(&gate, "client@example.com", "", None).await.cookie.unwrap();
    let blocked = [
        "GET /api/releases/open/",
        "GET /api/releases/open/?status=OPEN",
        "GET /api/releases/pending-loads/",
        "GET /api/balances/",
        "GET /api/audit/",
        "GET /api/releases/view/",
        "GET /api/releases/12/view/",
        "GET /api/customers/",
        "GET /api/inventory-report/",
        "GET /api/user/context/",
        "PATCH /api/releases/12/",
        "PATCH /api/releases/load/3/",
        "POST /api/releases/upload/",
        "POST /api/releases/approve/",
        "POST /api/bol/",
        "POST /api/bol/preview/",
        "POST /api/bol/confirm/",
        "POST /api/bol/42/set-official-weight/",
        "POST /api/bol/42/regenerate-pdf/",
        "POST /api/products/",
        "POST /api/customers/",
        "POST /api/carriers/",
        "POST /api/lots/",
        "DELETE /api/releases/12/",
        "GET /",
        "GET /office.html",
        "GET /open-releases/",
        "GET /kiosk/office/",
        "GET /tenant/PRT/pigiron/releases/",
        "GET /cbrt-ops/",
    ];
    let c = client();
    let before = up.count();
    for line in blocked {
        let (method, target) = line.split_once(' ').unwrap();
        let (parts, _) = send(&c, page_request(&gate, method, target, Some(&cookie))).await;
        let refused = match (target.starts_with("/api/"), method) {
            (false, "GET") => {
                parts.status == 302 && parts.headers["location"].to_str().unwrap().ends_with("/client.html")
            }
            _ => parts.status == 403,
        };
        assert!(refused, "Client {line}: {} {:?}", parts.status, parts.headers.get("location"));
    }
    assert_eq!(up.count(), before, "a blocked Client request reached the upstream");
    for line in ["GET /api/releases/?status=OPEN", "GET /api/releases/12/", "GET /api/history/"] {
        let (method, target) = line.split_once(' ').unwrap();
        let (parts, _) = send(&c, page_request(&gate, method, target, Some(&cookie))).await;
        assert_eq!(parts.status, 200, "control {line}");
    }
    assert_eq!(up.count(), before + 3);
}

/// Truck drivers use the kiosk without an account: check-in (a form POST carrying
/// Django's CSRF cookie and token), its success page, the PWA manifest and service worker
/// all reach the upstream. The office side of the kiosk still asks for a login.
#[tokio::test(flavor = "multi_thread")]
async fn kiosk_driver_flow_is_public() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let c = client();
    let form = "csrfmiddlewaretoken=t0k3n&driver_name=Dee&pickup_number=PU-1&truck_number=7";
    let post = Request::post(gate.url("/kiosk/checkin/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", "csrftoken=t0k3n")
        .header("accept", "text/html")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let before = up.count();
    let (parts, _) = send(&c, post).await;
    assert_eq!(parts.status, 200);
    let seen = up.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str(), seen.body_len),
        ("POST", "/kiosk/checkin/", form.len() as u64)
    );
    assert_eq!(seen.one("cookie"), Some("csrftoken=t0k3n"), "Django's CSRF cookie must reach Django");
    assert!(seen.one("x-auth-email").is_none(), "a public request carries no identity");
    for target in [
        "/kiosk/checkin/success/K7Q2/",
        "/kiosk/manifest.json",
        "/kiosk/sw.js",
        "/kiosk/",
        "/kiosk/checkout/",
        "/kiosk/checkout/K7Q2/",
        "/kiosk/checkout/K7Q2/sign/",
        "/kiosk/checkout/K7Q2/complete/",
    ] {
        let (parts, _) = send(&c, get_with(&gate.url(target), None, Some("text/html"))).await;
        assert_eq!(parts.status, 200, "{target}");
        assert_eq!(up.last().target, target);
    }
    assert_eq!(up.count(), before + 9);
    // Control: the staff side of the kiosk is not public.
    for target in ["/kiosk/office/", "/kiosk/api/waiting-drivers/"] {
        let (parts, _) = send(&c, get_with(&gate.url(target), None, Some("text/html"))).await;
        assert_eq!(parts.status, 302, "{target}");
        assert!(parts.headers["location"].to_str().unwrap().contains("/auth/login/"), "{target}");
    }
    assert_eq!(up.count(), before + 9);
}

const CLAIM_TENANTS: &str = "[tenant]\nmode = \"claim\"\n\n[tenant.codes]\n\
    PRT = { id = \"primetrade\", name = \"PrimeTrade Logistics\" }\n\
    ACME = { id = \"acme\", name = \"Acme Metals\" }\n";

/// `GET target` as the user of `cookie`: the status and whether the upstream saw it.
async fn probe(gate: &Gate, up: &Upstream, method: &str, target: &str, cookie: &str) -> (u16, bool) {
    let before = up.count();
    let (parts, _) = send(&client(), page_request(gate, method, target, Some(cookie))).await;
    let reached = up.count() > before;
    (parts.status.as_u16(), reached)
}

/// Pig iron is per tenant and the application checks nothing: the gate keeps a PRT
/// session out of `/tenant/ACME/…` and an ACME session out of `/tenant/PRT/…` (claim mode:
/// each user's own `tenant_code`), and a Client out of both.
#[tokio::test(flavor = "multi_thread")]
async fn pigiron_is_kept_to_the_callers_tenant() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().toml(CLAIM_TENANTS).start();
    let prt = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let acme = login(&gate, "acme-office@example.com", "", None).await.cookie.unwrap();
    let client_cookie = login(&gate, "client@example.com", "", None).await.cookie.unwrap();
    let rows: &[(&str, &str, &str, (u16, bool))] = &[
        (&prt, "GET", "/tenant/ACME/pigiron/releases/", (403, false)),
        (&prt, "POST", "/tenant/ACME/pigiron/bol/create/", (403, false)),
        (&prt, "GET", "/tenant/acme/pigiron/releases/", (403, false)),
        (&prt, "GET", "/tenant/PRT/pigiron/releases/", (200, true)),
        (&acme, "GET", "/tenant/PRT/pigiron/releases/", (403, false)),
        (&acme, "GET", "/tenant/PRT/pigiron/bol/3/pdf/", (403, false)),
        (&acme, "GET", "/tenant/ACME/pigiron/releases/", (200, true)),
        (&acme, "POST", "/tenant/ACME/pigiron/releases/upload/", (200, true)),
        (&client_cookie, "GET", "/tenant/PRT/pigiron/releases/", (403, false)),
        (&client_cookie, "GET", "/tenant/ACME/pigiron/releases/", (403, false)),
    ];
    for (cookie, method, target, want) in rows {
        // API-style callers (JSON): refusals are 403, never a redirect.
        let before = up.count();
        let req = {
            let mut b = Request::builder().method(*method).uri(gate.url(target)).header("cookie", *cookie);
            b = b.header("accept", "application/json");
            b.body(Full::new(Bytes::new())).unwrap()
        };
        let (parts, _) = send(&client(), req).await;
        let got = (parts.status.as_u16(), up.count() > before);
        assert_eq!(got, *want, "{method} {target}");
    }
    // The upstream sees the tenant of the session that was let in.
    let _ = probe(&gate, &up, "GET", "/tenant/ACME/pigiron/inventory/", &acme).await;
    assert_eq!(up.last().one("x-tenant-id"), Some("acme"));

    // Static mode (the shipped default): everyone acts for `tenant.code` = PRT.
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let office = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    assert_eq!(probe(&gate, &up, "GET", "/tenant/PRT/pigiron/releases/", &office).await, (200, true));
    let (status, reached) = probe(&gate, &up, "GET", "/tenant/ACME/pigiron/releases/", &office).await;
    assert!(status != 200 && !reached, "static mode let PRT into ACME: {status}");
}

/// A real ID token from the dev SSO's code flow (what a machine client of the real SSO
/// holds), for `email`.
async fn id_token(sso: &DevSso, email: &str) -> String {
    tokens(sso, email).await.0
}

/// The ID token and the (opaque) access token of one code flow for `email`.
async fn tokens(sso: &DevSso, email: &str) -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let verifier = b64(&rand::random::<[u8; 32]>());
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let cb = "http://127.0.0.1:8000/auth/callback/";
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "prt-gate-dev"),
            ("redirect_uri", cb),
            ("scope", "openid email profile roles"),
            ("state", "s-1"),
            ("nonce", "n-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", email),
        ])
        .finish();
    let c = client();
    let (parts, _) = send(&c, get(&format!("{}/o/authorize/?{q}", sso.url()))).await;
    let loc = url::Url::parse(parts.headers["location"].to_str().unwrap()).unwrap();
    let code = loc.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", cb),
            ("code_verifier", verifier.as_str()),
            ("client_id", "prt-gate-dev"),
            ("client_secret", DEV_CLIENT_SECRET),
        ])
        .finish();
    let req = Request::post(format!("{}/o/token/", sso.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let (_, body) = send(&c, req).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (
        v["id_token"].as_str().expect("id_token").to_string(),
        v["access_token"].as_str().expect("access_token").to_string(),
    )
}

/// `/api/open-releases/` verifies the SSO token itself: the gate checks it, then forwards
/// the same `Authorization`. Expired, forged and Client tokens stop at the gate. Without
/// `forward_authorization` the header stays consumed (the control).
#[tokio::test(flavor = "multi_thread")]
async fn open_releases_forwards_the_verified_bearer_token() {
    let up = Upstream::start().await;
    let sso = sso().await;
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().start();
    let call = |token: String| bearer_get(gate.url("/api/open-releases/"), token);
    let (office, office_access) = tokens(&sso, "office@example.com").await;
    assert_eq!(call(office.clone()).await, 200);
    let seen = up.last();
    assert_eq!(seen.target, "/api/open-releases/");
    assert_eq!(seen.all("authorization"), vec![format!("Bearer {office}")]);
    assert_eq!(seen.one("x-auth-role"), Some("Office"));

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut expired = builtin_users().into_iter().find(|u| u.email == "office@example.com").unwrap().claims();
    expired.insert("iss".into(), sso.issuer().into());
    expired.insert("aud".into(), "prt-gate-dev".into());
    expired.insert("iat".into(), (now - 7200).into());
    expired.insert("exp".into(), (now - 3600).into());
    let forged = {
        let (head, sig) = office.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        format!("{head}.{flipped}{}", &sig[1..])
    };
    let client_token = id_token(&sso, "client@example.com").await;
    let before = up.count();
    assert_eq!(call(sso.mint(serde_json::Value::Object(expired))).await, 401, "expired");
    assert_eq!(call(forged).await, 401, "forged");
    assert_eq!(call(client_token).await, 403, "client");
    // The SSO's access tokens are opaque (no signature to check): refused, as documented.
    assert!(!office_access.contains('.'), "the dev SSO's access token is opaque: {office_access}");
    assert_eq!(call(office_access).await, 401, "opaque access token");
    assert_eq!(up.count(), before, "a refused token reached the upstream");

    // Control: the same route without forward_authorization consumes the header.
    let policy = "[[route]]\npath = \"/api/open-releases/\"\nmethods = [\"GET\"]\nauth = \"bearer\"\nroles = [\"Admin\", \"Office\"]\n";
    let consuming = GateBuilder::new(up.addr).sso(sso.url()).policy(policy).start();
    let req = Request::get(consuming.url("/api/open-releases/"))
        .header("authorization", format!("Bearer {office}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), req).await.0.status, 200);
    assert!(up.last().all("authorization").is_empty(), "consumed header forwarded");
}

/// A failure inside the gate answers 500, not 400: a session whose tenant name cannot be a
/// header value (a control character, as a damaged record in the gate's own session store
/// could hold) cannot be sent upstream, and that is the gate's fault, not the caller's.
/// Controls: an intact session is let through (200), and a malformed request (two `Host`
/// headers) is still a 400.
#[tokio::test(flavor = "multi_thread")]
async fn an_internal_failure_answers_500_and_a_malformed_request_400() {
    use rand::RngCore as _;
    let prefix = format!("prt-gate-test:{:016x}:", rand::rng().next_u64());
    let up = Upstream::start().await;
    let sso = sso().await;
    let env = [
        ("PRT_GATE_SESSION__STORE", "redis://127.0.0.1:6379"),
        ("PRT_GATE_SESSION__KEY_PREFIX", prefix.as_str()),
        ("PRT_GATE_SESSION__CACHE_TTL", "0s"),
    ];
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).toml(CLAIM_TENANTS).start();
    let acme = login(&gate, "acme-office@example.com", "", None).await.cookie.unwrap();
    // Damage the one session record in place (same TTL).
    let mut con = redis::Client::open("redis://127.0.0.1:6379").unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}s:*")).query(&mut con).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let record: String = redis::cmd("GET").arg(&keys[0]).query(&mut con).unwrap();
    let damaged = record.replace("\"Acme Metals\"", "\"Acme\\nMetals\"");
    assert_ne!(damaged, record, "{record}");
    let () = redis::cmd("SET").arg(&keys[0]).arg(&damaged).arg("KEEPTTL").query(&mut con).unwrap();
    let prt = login(&gate, "office@example.com", "", None).await.cookie.unwrap();

    let before = up.count();
    let req = Request::get(gate.url("/tenant/ACME/pigiron/releases/"))
        .header("cookie", &acme)
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, body) = send(&client(), req).await;
    assert_eq!(parts.status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"error\":\"internal\""), "{body:?}");
    assert_eq!(up.count(), before, "nothing reaches the upstream");
    assert_eq!(probe(&gate, &up, "GET", "/tenant/PRT/pigiron/releases/", &prt).await, (200, true));
    let (status, _) =
        raw(gate.addr, b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400);
}
