//! Tighter edges from an independent review (issue 15): upstream `101`, `Host` checks,
//! headers that are never forwarded or passed back, raw `#` in the request target.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A raw upstream: `GET /ok` gets a 200 naming its software (`Server`, `X-Powered-By`); anything else a `101 Switching Protocols` followed
/// by tunnel bytes, as an upstream that switches protocols on its own would send.
async fn switching_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer: &[u8] = if head.starts_with(b"GET /ok ") {
                    b"HTTP/1.1 200 OK\r\nserver: gunicorn/23.0\r\nx-powered-by: Django\r\nx-frame-options: DENY\r\ncontent-length: 2\r\n\r\nok"
                } else {
                    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nTUNNEL-BYTES"
                };
                let _ = s.write_all(answer).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_101_switching_protocols_is_a_502() {
    let up = switching_upstream().await;
    let gate = Gate::start(up, "", "");
    // Positive control: the same upstream's ordinary answer passes.
    let (status, text) = raw_get(gate.addr, b"/ok", "");
    assert_eq!(status, 200, "{text}");
    for extra in ["", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"] {
        let (status, text) = raw_get(gate.addr, b"/ws/", extra);
        assert_eq!(status, 502, "{text}");
        assert!(!text.contains("TUNNEL-BYTES") && !text.to_ascii_lowercase().contains("upgrade: websocket"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_server_and_powered_by_are_dropped_unless_configured() {
    let up = switching_upstream().await;
    let gate = Gate::start(up, "", "");
    let (status, text) = raw_get(gate.addr, b"/ok", "");
    assert_eq!(status, 200, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("gunicorn") && !lower.contains("x-powered-by"), "{text}");
    assert!(lower.contains("x-frame-options: deny"), "other upstream headers pass: {text}");
    // Configurable: with an empty list they pass (positive control for the test itself).
    let open = Gate::start(up, "hide_upstream_headers = []", "");
    let (_, text) = raw_get(open.addr, b"/ok", "");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("server: gunicorn/23.0") && lower.contains("x-powered-by: django"), "{text}");
}

/// Each header that some server would reinterpret, as seen by a recording upstream: gone,
/// in every spelling of its name and with several copies, from an untrusted client; the
/// ordinary header sent beside it arrives (positive control).
#[tokio::test(flavor = "multi_thread")]
async fn reinterpretable_request_headers_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let gate = Gate::start(up.addr, "", "");
    let rows = [
        ("X-Original-URL", "/admin/"),
        ("X-Rewrite-URL", "/admin/"),
        ("X-Forwarded-Uri", "/admin/"),
        ("X-Envoy-Original-Path", "/admin/"),
        ("X-Forwarded-Ssl", "on"),
        ("X-Forwarded-Protocol", "https"),
        ("X-Forwarded-Scheme", "https"),
        ("Front-End-Https", "on"),
        ("X-Client-IP", "10.9.9.9"),
        ("True-Client-IP", "10.9.9.9"),
        ("CF-Connecting-IP", "10.9.9.9"),
        ("X-Real-IP", "10.9.9.9"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
    ];
    for (name, value) in rows {
        let extra = format!("{name}: {value}\r\n{}: {value}\r\nX-Benign: kept\r\n", name.to_ascii_uppercase());
        let (status, text) = raw_get(gate.addr, b"/api/x/", &extra);
        assert_eq!(status, 200, "{name}: {text}");
        let seen = up.last();
        assert!(seen.all(name).is_empty(), "{name} reached the upstream: {:?}", seen.headers);
        assert_eq!(seen.one("x-benign"), Some("kept"), "{name}");
        assert!(seen.headers.iter().all(|(_, v)| !v.contains("10.9.9.9") && v != "DELETE"), "{:?}", seen.headers);
        assert_eq!(seen.method, "GET");
    }
}

/// `X-Real-IP` from a trusted proxy (the platform edge) is kept: the edge set it.
#[tokio::test(flavor = "multi_thread")]
async fn real_ip_is_kept_from_a_trusted_proxy_only() {
    let up = Upstream::start().await;
    let gate = Gate::start(up.addr, "trusted_proxies = [\"127.0.0.1\"]", "");
    let (status, _) = raw_get(gate.addr, b"/api/x/", "X-Real-IP: 10.9.9.9\r\nTrue-Client-IP: 10.9.9.9\r\n");
    assert_eq!(status, 200);
    let seen = up.last();
    assert_eq!(seen.one("x-real-ip"), Some("10.9.9.9"));
    assert!(seen.all("true-client-ip").is_empty(), "{:?}", seen.headers);
}

/// `Host` (HTTP/1) and `:authority` (HTTP/2) must name this gate: `gate.public_url`'s host
/// or one of `gate.allowed_hosts`; anything else is a 400 and never forwarded.
#[tokio::test(flavor = "multi_thread")]
async fn host_must_be_the_public_url_or_an_allowed_host() {
    let up = Upstream::start().await;
    let gate = Gate::start(
        up.addr,
        "public_url = \"https://prt.example.com\"\nallowed_hosts = [\"internal.example:8080\"]",
        "",
    );
    let ask = |host: &str| {
        let head = format!("GET /api/x/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        raw(gate.addr, head.as_bytes()).0
    };
    for host in ["prt.example.com", "PRT.Example.COM", "prt.example.com:443", "internal.example:8080"] {
        let before = up.count();
        assert_eq!(ask(host), 200, "{host}");
        assert_eq!(up.count(), before + 1, "{host}");
        assert_eq!(up.last().one("host"), Some(host));
    }
    for host in
        ["evil.example", "prt.example.com:8443", "prt.example.com.evil.example", "internal.example", "127.0.0.1"]
    {
        let before = up.count();
        assert_eq!(ask(host), 400, "{host}");
        assert_eq!(up.count(), before, "{host} was forwarded");
    }
    // Absolute-form naming another host, and HTTP/2 `:authority`.
    let (status, _) = raw(
        gate.addr,
        b"GET http://evil.example/api/x/ HTTP/1.1\r\nHost: prt.example.com\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400);
    for (authority, want) in [("prt.example.com", 200), ("evil.example", 400)] {
        assert_eq!(h2_get(gate.addr, &format!("http://{authority}/api/x/")).await, want, "{authority}");
    }
}

/// One prior-knowledge HTTP/2 (h2c) GET over a fresh connection; the status.
async fn h2_get(addr: std::net::SocketAddr, uri: &str) -> u16 {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(uri).body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    send.send_request(req).await.unwrap().status().as_u16()
}
