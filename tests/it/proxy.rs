//! The data plane against a real upstream: normalization, malformed targets,
//! header hygiene, forwarding headers, streaming, limits, failures, drain.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::Request;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn cve_2019_9901_dot_segments_are_resolved_before_forwarding() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let rows: &[(&[u8], &str)] = &[
        (b"/api/x/../admin/", "/api/admin/"),
        (b"/api/x/%2e%2e/admin/?a=1&b=%2F", "/api/admin/?a=1&b=%2F"),
        (b"//api///history/", "/api/history/"),
        (b"/api/./bol/1/", "/api/bol/1/"),
        (b"/%61pi/health/", "/api/health/"),
        (b"/api/bol/12/download/", "/api/bol/12/download/"),
    ];
    for (target, expected) in rows {
        let (status, text) = raw_get(gate.addr, target, "");
        assert_eq!(status, 200, "{}: {text}", String::from_utf8_lossy(target));
        assert_eq!(up.last().target, *expected, "{}", String::from_utf8_lossy(target));
    }
    // Nothing under /media/ ever reaches Django, however it is spelled (no
    // bucket here: 404; dot or empty segments in a media path: 400).
    let before = up.count();
    for (target, want) in [
        (&b"/media/bols/2025/PRT-2025-0002.pdf"[..], 404),
        (b"/api/../media/bols/x.pdf", 400),
        (b"//media//bols/x.pdf", 400),
    ] {
        let (status, _) = raw_get(gate.addr, target, "");
        assert_eq!(status, want, "{}", String::from_utf8_lossy(target));
    }
    assert_eq!(up.count(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_targets_get_400_and_never_reach_upstream() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate("public_url = \"http://prt.test\"").start();
    let rows: &[&[u8]] = &[
        b"/a%2fb",
        b"/a%2Fb",
        b"/a%5cb",
        b"/a%5Cb",
        b"/a\\b",
        b"/a%00b",
        b"/a%01",
        b"/a;jsessionid=1",
        b"/a%3bx",
        b"/a%zz",
        b"/a%4",
        b"/a%c3%28",
        b"/a%252e%252e/",
        b"/a%252F",
        b"/..",
        b"/api/../../etc/passwd",
        b"/a\xc3\xa9",
        b"http://evil.example/api/x",
        b"https://evil.example/api/x",
        b"http://user@prt.test/api/x",
        b"*",
    ];
    for target in rows {
        let (status, text) = raw_get(gate.addr, target, "");
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(target));
    }
    // Raw control characters and spaces are refused by the HTTP parser itself.
    for target in [&b"/a\x01b"[..], b"/a\x7fb"] {
        assert_eq!(raw_get(gate.addr, target, "").0, 400);
    }
    assert_eq!(up.count(), 0, "a malformed request reached the upstream: {:?}", up.seen.lock().unwrap());
    // Positive control: the same gate forwards a well-formed request, and an
    // absolute-form target naming the gate's own origin.
    assert_eq!(raw_get(gate.addr, b"/api/ok/", "").0, 200);
    assert_eq!(raw_get(gate.addr, b"http://prt.test/api/ok2/", "").0, 200);
    assert_eq!(up.last().target, "/api/ok2/");
    assert_eq!(up.count(), 2);
}

/// The `http` crate discards a `#fragment` while hyper parses the request line; the
/// connection's tap saw it, so the gate answers 400 and logs no path (the raw target of a
/// refused request is never written).
#[tokio::test(flavor = "multi_thread")]
async fn fragment_is_refused_and_never_reaches_upstream() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let (status, _) = raw_get(gate.addr, b"/api/health/#/../../admin/", "");
    assert_eq!(status, 400);
    assert_eq!(up.count(), 0);
    assert!(eventually(Duration::from_secs(5), || !gate.access_lines().is_empty()).await);
    assert_eq!(gate.access_lines()[0]["path"], "-");
    assert_eq!(gate.access_lines()[0]["decision"], "reject");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_identity_headers_never_reach_upstream() {
    let up = Upstream::start().await;
    let gate =
        GateBuilder::new(up.addr).toml("[tenant]\nid = \"primetrade\"\nname = \"PrimeTrade Logistics\"\n").start();
    let forged = "X-Tenant-Id: evil\r\nx-tenant-id: evil2\r\nX-TENANT-ID: evil3\r\nX-Tenant_Id: evil4\r\nX_Tenant_Id: evil5\r\n\
                  X-Tenant-Name: Evil Corp\r\nX-Auth-Email: boss@evil.example, admin@evil.example\r\nX-Auth-Email: second@evil.example\r\n\
                  X-Auth-Role: Admin\r\nX-Auth-Whatever: 1\r\nX-Prt-Assertion: eyJhbGciOiJub25lIn0.e30.\r\nX-Forwarded-User: admin\r\n\
                  X-Remote-User: admin\r\nRemote-User: admin\r\nRemote_User: admin\r\nHTTP_X_TENANT_ID: evil6\r\nX-Custom_Header: 1\r\n";
    let (status, text) = raw_get(gate.addr, b"/api/history/", forged);
    assert_eq!(status, 200, "{text}");
    let seen = up.last();
    for (name, value) in &seen.headers {
        assert!(
            !value.contains("evil") && !value.contains("admin") && value != "Admin",
            "forged {name}: {value} reached upstream"
        );
        assert!(!name.contains('_'), "underscore header {name} reached upstream");
        assert!(!name.starts_with("x-auth-") && !name.starts_with("x-prt-"), "{name} reached upstream");
        assert!(
            !["x-forwarded-user", "x-remote-user", "remote-user"].contains(&name.as_str()),
            "{name} reached upstream"
        );
    }
    // A public route carries no identity at all (the gate's own identity
    // headers on allowed requests are checked in tests/it/login.rs).
    assert_eq!(seen.all("x-tenant-id"), Vec::<&str>::new());
    assert_eq!(seen.all("x-tenant-name"), Vec::<&str>::new());
    // Positive control: ordinary headers do reach the upstream.
    assert!(seen.one("host").is_some());
    let metrics = scrape(&gate).await;
    assert!(metrics.contains("prt_gate_stripped_headers_total "), "{metrics}");
    assert!(!metrics.contains("prt_gate_stripped_headers_total 0\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_and_connection_nominations() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let head = b"POST /api/bol/ HTTP/1.1\r\nHost: prt.test\r\nConnection: close, X-Drop-Me, Content-Length, Cookie, X-Forwarded-For\r\n\
                 X-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
                 X-Keep-Me: 1\r\nCookie: csrftoken=abc\r\nContent-Length: 5\r\n\r\nhello";
    let (status, text) = raw(gate.addr, head);
    assert_eq!(status, 200, "{text}");
    let seen = up.last();
    for gone in ["x-drop-me", "keep-alive", "te", "upgrade", "proxy-authorization"] {
        assert!(seen.all(gone).is_empty(), "{gone} reached upstream: {:?}", seen.headers);
    }
    // Protected headers survive a nomination; the body arrives intact.
    assert_eq!(seen.one("x-keep-me"), Some("1"));
    assert_eq!(seen.one("cookie"), Some("csrftoken=abc"));
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.body_len, 5);
    assert_eq!(seen.one("content-length"), Some("5"));
    // Response side: the upstream's hop-by-hop headers do not reach the client.
    assert!(!text.to_ascii_lowercase().contains("x-upstream-hop"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("keep-alive: timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_only_from_trusted_proxies() {
    let up = Upstream::start().await;
    let forged = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Request-Id: forged-id\r\n";

    let untrusted = GateBuilder::new(up.addr).start();
    let (_, text) = raw_get(untrusted.addr, b"/x", forged);
    let seen = up.last();
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.one("x-forwarded-host"), Some("prt.test"));
    assert!(seen.all("x-real-ip").is_empty() && seen.all("forwarded").is_empty());
    let rid = seen.one("x-request-id").unwrap().to_string();
    assert_ne!(rid, "forged-id");
    assert_eq!(rid.len(), 32);
    assert!(text.contains(&format!("x-request-id: {rid}")), "response carries the request id: {text}");

    let trusted = GateBuilder::new(up.addr).gate("trusted_proxies = [\"127.0.0.1/32\"]").start();
    raw_get(trusted.addr, b"/x", forged);
    let seen = up.last();
    assert_eq!(seen.one("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.one("x-forwarded-host"), Some("evil.example"));
    assert_eq!(seen.one("x-request-id"), Some("forged-id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_one_gib_both_ways_with_flat_memory() {
    const GIB: u64 = 1 << 30;
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let up_client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();

    // Upload: a generated stream, never held in memory by anyone.
    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    let chunks = GIB / chunk.len() as u64;
    let stream = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))),
    );
    let req = Request::post(gate.url("/upload")).body(StreamBody::new(stream)).unwrap();
    let resp = up_client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("ok {GIB}"));
    assert_eq!(up.last().body_len, GIB);

    // Download: counted as it arrives.
    let resp = client().request(get(&gate.url(&format!("/download/{GIB}")))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        n += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(n, GIB);
    let peak = gate.peak_rss_kib();
    assert!(peak < 64 * 1024, "gate peak RSS {peak} KiB while streaming 1 GiB each way");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_502_without_detail() {
    let down = closed_port();
    let gate = GateBuilder::new(down).start();
    let (parts, body) = send(&client(), get(&gate.url("/api/history/"))).await;
    assert_eq!(parts.status, 502);
    let body = String::from_utf8_lossy(&body).into_owned();
    assert!(body.starts_with("{\"error\":\"bad_gateway\""), "{body}");
    assert!(
        !body.contains(&down.port().to_string()) && !body.to_lowercase().contains("refused"),
        "leaks detail: {body}"
    );
    assert_eq!(parts.headers["cache-control"], "no-store");
    // Browsers get a page, not JSON.
    let req = Request::get(gate.url("/dashboard")).header("accept", "text/html").body(Full::new(Bytes::new())).unwrap();
    let (parts, body) = send(&client(), req).await;
    assert_eq!(parts.status, 502);
    assert!(parts.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&body).contains("502 Bad Gateway"));
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_504() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate("upstream_timeout = \"300ms\"").start();
    let (parts, body) = send(&client(), get(&gate.url("/slow/3000"))).await;
    assert_eq!(parts.status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("gateway_timeout"));
    // Positive control: within the timeout the same route answers.
    let (parts, _) = send(&client(), get(&gate.url("/slow/10"))).await;
    assert_eq!(parts.status, 200);
    let metrics = scrape(&gate).await;
    assert!(metrics.contains("prt_gate_upstream_errors_total{kind=\"timeout\"} 1\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests() {
    let up = Upstream::start().await;
    let mut gate = GateBuilder::new(up.addr).gate("drain_timeout = \"10s\"").start();
    let url = gate.url("/slow/1500");
    let in_flight = tokio::spawn(async move { send(&client(), get(&url)).await });
    assert!(eventually(Duration::from_secs(5), || up.count() == 1).await, "request did not reach upstream");
    gate.signal("TERM");
    let (parts, body) = in_flight.await.unwrap();
    assert_eq!(parts.status, 200);
    assert_eq!(body, "slow ok");
    let status = tokio::task::spawn_blocking(move || {
        let s = gate.child.wait().unwrap();
        (s, gate)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0));
    // After the drain the listener is gone.
    assert!(std::net::TcpStream::connect(status.1.addr).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn header_limits_and_read_timeout() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr)
        .gate("max_headers = 20\nmax_header_bytes = 8192\nheader_read_timeout = \"300ms\"")
        .start();
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _) = raw_get(gate.addr, b"/x", &many);
    assert_eq!(status, 431);
    let big = format!("X-Big: {}\r\n", "a".repeat(16 * 1024));
    let (status, _) = raw_get(gate.addr, b"/x", &big);
    assert_eq!(status, 431);
    assert_eq!(up.count(), 0);

    // A client that never finishes its headers is cut off.
    let mut s = std::net::TcpStream::connect(gate.addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /x HTTP/1.1\r\nHost: prt.test\r\nX-Slow: ").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(4), "slow-headers connection was not closed");
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_cleartext_clients_are_served() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = Request::get(gate.url("/api/x/../health/"))
        .header("x-tenant-id", "evil")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.target, "/api/health/");
    assert_eq!(seen.version, "HTTP/1.1");
    assert_eq!(seen.one("host"), Some(gate.addr.to_string().as_str()));
    assert_eq!(seen.all("x-tenant-id"), Vec::<&str>::new(), "forged header survived h2");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_has_one_line_per_request_and_no_raw_rejected_path() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    raw_get(gate.addr, b"/api/x/../history/?token=secret-canary", "");
    raw_get(gate.addr, b"/a%2fsecret-canary-2", "");
    assert!(eventually(Duration::from_secs(5), || gate.access_lines().len() == 2).await, "{}", gate.log_text());
    let lines = gate.access_lines();
    let ok = &lines[0];
    for field in [
        "method",
        "path",
        "status",
        "decision",
        "rule",
        "role",
        "auth",
        "features",
        "tenant",
        "user",
        "request_id",
        "upstream_ms",
        "total_ms",
    ] {
        assert!(ok.get(field).is_some(), "access line lacks {field}: {ok}");
    }
    assert_eq!(ok["path"], "/api/history/");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["decision"], "allow");
    let bad = &lines[1];
    assert_eq!(bad["status"], 400);
    assert_eq!(bad["decision"], "reject");
    assert_eq!(bad["path"], "-");
    let text = gate.log_text();
    assert!(!text.contains("secret-canary"), "query or rejected path logged: {text}");
}
