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
    let gate = GateBuilder::new(up).start();
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
    let gate = GateBuilder::new(up).start();
    let (status, text) = raw_get(gate.addr, b"/ok", "");
    assert_eq!(status, 200, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("gunicorn") && !lower.contains("x-powered-by"), "{text}");
    assert!(lower.contains("x-frame-options: deny"), "other upstream headers pass: {text}");
    // Configurable: with an empty list they pass (positive control for the test itself).
    let open = GateBuilder::new(up).gate("hide_upstream_headers = []").start();
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
    let gate = GateBuilder::new(up.addr).start();
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
    let gate = GateBuilder::new(up.addr).gate("trusted_proxies = [\"127.0.0.1\"]").start();
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
    let gate = GateBuilder::new(up.addr)
        .gate("public_url = \"https://prt.example.com\"\nallowed_hosts = [\"internal.example:8080\"]")
        .start();
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

/// A raw `#` in an HTTP/1 request target is a 400 and never forwarded, also on a
/// keep-alive connection after a body, while `%23` (an encoded `#`) is an ordinary path
/// character and a body line that merely looks like a request is not mistaken for one.
#[tokio::test(flavor = "multi_thread")]
async fn raw_hash_in_the_request_target_is_a_400() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    for target in [&b"/api/health/#/../../admin/"[..], b"/api/x/?a=1#frag", b"/#", b"/api/x#"] {
        let before = up.count();
        let (status, text) = raw_get(gate.addr, target, "");
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(target));
        assert_eq!(up.count(), before, "{} was forwarded", String::from_utf8_lossy(target));
    }
    let (status, _) = raw_get(gate.addr, b"/api/a%23b/", "");
    assert_eq!(status, 200);
    assert_eq!(up.last().target, "/api/a%23b/");

    // Pipelined on one connection: a POST whose body holds a request-shaped line with `#`,
    // then a clean GET (answered), then a GET with `#` (refused).
    let body = "GET /api/c#x HTTP/1.1\r\nab";
    let pipelined = format!(
        "POST /api/b/ HTTP/1.1\r\nHost: prt.test\r\nContent-Length: {}\r\n\r\n{body}\
         GET /api/c HTTP/1.1\r\nHost: prt.test\r\n\r\n\
         GET /api/d/#x HTTP/1.1\r\nHost: prt.test\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let before = up.count();
    let (_, text) = raw(gate.addr, pipelined.as_bytes());
    let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(i, _)| &text[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["200", "200", "400"], "{text}");
    assert_eq!(up.count(), before + 2);
    assert_eq!(up.last().target, "/api/c");
}

// ---------------------------------------------------------------------------
// HTTP/2 bounds, with a raw client written frame by frame
// ---------------------------------------------------------------------------

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `GET http://prt.test/api/x/` from static-table names, no Huffman.
fn get_block() -> Vec<u8> {
    get_block_for(b"/api/x/")
}

fn get_block_for(path: &[u8]) -> Vec<u8> {
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http
    b.push(0x04); // :path, literal value
    b.push(path.len() as u8);
    b.extend_from_slice(path);
    b.push(0x01); // :authority, literal value
    b.push(8);
    b.extend_from_slice(b"prt.test");
    b
}

/// Connects and sends the preface and an empty SETTINGS frame, as every client does.
async fn h2_connect(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    s
}

/// Reads frames like a well-behaved idle client (acknowledging SETTINGS and PINGs) until
/// the gate closes the connection; the time that took, or `None` if still open at `limit`.
/// Also returns the status codes of the responses seen (`:status` as an indexed field).
async fn hold_until_closed(s: &mut tokio::net::TcpStream, limit: Duration) -> (Option<Duration>, Vec<u8>) {
    hold(s, limit, true).await
}

/// [`hold_until_closed`] for a client inside a header block, which may send nothing but
/// the block's CONTINUATION frames (an acknowledgement would be a protocol error).
async fn hold_silently(s: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    hold(s, limit, false).await.0
}

async fn hold(s: &mut tokio::net::TcpStream, limit: Duration, ack: bool) -> (Option<Duration>, Vec<u8>) {
    let start = std::time::Instant::now();
    let mut statuses = Vec::new();
    let read = async {
        loop {
            let mut head = [0u8; 9];
            if s.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            if s.read_exact(&mut payload).await.is_err() {
                return;
            }
            match (head[3], head[4] & 1) {
                _ if !ack => {}
                (0x4, 0) => {
                    let _ = s.write_all(&frame(0x4, 1, 0, &[])).await;
                }
                (0x6, 0) => {
                    let _ = s.write_all(&frame(0x6, 1, 0, &payload)).await;
                }
                // HEADERS: the first byte of a response block is its indexed `:status`.
                (0x1, _) => statuses.push(payload.first().copied().unwrap_or(0)),
                _ => {}
            }
        }
    };
    let closed = tokio::time::timeout(limit, read).await.is_ok();
    (closed.then(|| start.elapsed()), statuses)
}

const H2_LIMITS: &str = "h2_first_request_timeout = \"1s\"\nh2_idle_timeout = \"1s\"\nh2_header_block_timeout = \"1s\"";

/// `gate.h2_*` with one deadline at 1 s and the other two far away, so each test below
/// shows that its own deadline is what closed the connection.
fn h2_only(which: &str) -> String {
    ["h2_first_request_timeout", "h2_idle_timeout", "h2_header_block_timeout"]
        .iter()
        .map(|k| format!("{k} = \"{}\"\n", if *k == which { "1s" } else { "60s" }))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_h2_connections_are_closed_after_their_deadlines() {
    let up = Upstream::start().await;

    // Preface and SETTINGS, then nothing: no first request.
    let gate = GateBuilder::new(up.addr).gate(&h2_only("h2_first_request_timeout")).start();
    let mut idle = h2_connect(gate.addr).await;
    let (closed, _) = hold_until_closed(&mut idle, Duration::from_secs(8)).await;
    let took = closed.expect("a connection without a first request stayed open");
    assert!(took >= Duration::from_millis(900), "closed before its deadline: {took:?}");
    println!("h2 without a first request closed after {took:?} (limit 1 s)");

    // One request answered, then no open stream: closed after the idle timeout, not before
    // the response (0x88 is `:status 200`).
    let gate = GateBuilder::new(up.addr).gate(&h2_only("h2_idle_timeout")).start();
    let mut served = h2_connect(gate.addr).await;
    served.write_all(&frame(0x1, 0x4 | 0x1, 1, &get_block())).await.unwrap();
    let (closed, statuses) = hold_until_closed(&mut served, Duration::from_secs(8)).await;
    assert_eq!(statuses, [0x88], "the request was not answered");
    let took = closed.expect("an idle connection after its last response stayed open");
    assert!(took >= Duration::from_millis(900), "closed before its deadline: {took:?}");
    println!("h2 idle after one response closed after {took:?} (limit 1 s)");

    // A HEADERS frame without END_HEADERS, never continued.
    let gate = GateBuilder::new(up.addr).gate(&h2_only("h2_header_block_timeout")).start();
    let mut unfinished = h2_connect(gate.addr).await;
    unfinished.write_all(&frame(0x1, 0x1, 1, &get_block()[..2])).await.unwrap();
    let took = hold_silently(&mut unfinished, Duration::from_secs(8)).await;
    let took = took.expect("an unfinished header block kept its connection");
    assert!(took >= Duration::from_millis(900), "closed before its deadline: {took:?}");
    println!("h2 unfinished header block closed after {took:?} (limit 1 s)");
    // Positive control: the same block finished by a CONTINUATION is served.
    let mut finished = h2_connect(gate.addr).await;
    let block = get_block();
    let mut frames = frame(0x1, 0x1, 1, &block[..2]);
    frames.extend(frame(0x9, 0x4, 1, &block[2..]));
    finished.write_all(&frames).await.unwrap();
    let (closed, statuses) = hold_until_closed(&mut finished, Duration::from_secs(3)).await;
    assert_eq!(statuses, [0x88]);
    assert_eq!(closed, None, "a served connection was closed long before its idle timeout");
}

/// `gate.max_connections` idle HTTP/2 connections (and one stuck in a header block) no
/// longer lock everyone out: their slots come free within the deadlines and a waiting
/// HTTP/1 client is answered.
#[tokio::test(flavor = "multi_thread")]
async fn idle_h2_connections_free_their_slots_for_http1_clients() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate(&format!("{H2_LIMITS}\nmax_connections = 3")).start();
    let mut holders = Vec::new();
    for i in 0..3 {
        let mut s = h2_connect(gate.addr).await;
        let stuck = i == 2;
        if stuck {
            s.write_all(&frame(0x1, 0x1, 1, &get_block()[..2])).await.unwrap();
        }
        holders.push(tokio::spawn(async move { hold(&mut s, Duration::from_secs(20), !stuck).await.0 }));
    }
    // Let the gate accept all three before the HTTP/1 client queues behind them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = gate.addr;
    let answered = tokio::task::spawn_blocking(move || {
        let t = std::time::Instant::now();
        (raw_get(addr, b"/api/x/", "").0, t.elapsed())
    });
    let (status, waited) = answered.await.unwrap();
    assert_eq!(status, 200, "the HTTP/1 client was never answered");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    assert!(waited >= Duration::from_millis(500), "a slot was free: the test holds nothing: {waited:?}");
    println!("HTTP/1 client behind 3 held slots answered after {waited:?}");
    for h in holders {
        assert!(h.await.unwrap().is_some(), "an idle HTTP/2 connection kept its slot");
    }
    // And HTTP/1 keeps being answered.
    for _ in 0..3 {
        assert_eq!(raw_get(gate.addr, b"/api/x/", "").0, 200);
    }
}

/// Encoded sub-delimiters through the running gate: a policy with `/api/reports/q1+q2/`
/// (Admin) beside a public `/api/reports/{id}/`, and `/ops:tools/` (Admin) beside the
/// public `/{*rest}`. Every spelling of the literal is decided by the literal's rule (no
/// session here: login required, nothing forwarded); other ids pass and reach Django as
/// the path it resolves.
#[tokio::test(flavor = "multi_thread")]
async fn encoded_sub_delimiters_are_decided_on_the_path_django_resolves() {
    let up = Upstream::start().await;
    let policy = "[[route]]\npath = \"/api/reports/{id}/\"\npublic = true\n\n\
                  [[route]]\npath = \"/api/reports/q1+q2/\"\nroles = [\"Admin\"]\n\n\
                  [[route]]\npath = \"/ops:tools/\"\nroles = [\"Admin\"]\n";
    let gate = GateBuilder::new(up.addr).toml(policy).start();
    for target in [
        &b"/api/reports/q1+q2/"[..],
        b"/api/reports/q1%2Bq2/",
        b"/api/reports/q1%2bq2/",
        b"/api/reports/%71%31%2B%71%32/",
        b"/ops:tools/",
        b"/ops%3Atools/",
        b"/ops%3atools/",
    ] {
        let before = up.count();
        let (status, text) = raw_get(gate.addr, target, "");
        assert!(matches!(status, 401 | 302), "{}: {text}", String::from_utf8_lossy(target));
        assert_eq!(up.count(), before, "{} reached the upstream", String::from_utf8_lossy(target));
    }
    for (target, forwarded) in [
        (&b"/api/reports/7/"[..], "/api/reports/7/"),
        (b"/api/reports/q1%2Cq2/", "/api/reports/q1,q2/"),
        (b"/api/reports/a%40b%21/", "/api/reports/a@b!/"),
        (b"/ops%3Aother/", "/ops:other/"),
    ] {
        let (status, text) = raw_get(gate.addr, target, "");
        assert_eq!(status, 200, "{}: {text}", String::from_utf8_lossy(target));
        assert_eq!(up.last().target, forwarded);
    }
    // `%3B` decodes to `;`, which is refused raw: refused encoded too.
    assert_eq!(raw_get(gate.addr, b"/api/reports/q1%3Bq2/", "").0, 400);
}

/// HTTP/2 `:path` with a `#`: the h2 crate drops the fragment while it builds the request,
/// before the gate (or its tap, which would have to decode HPACK) can see it. What holds is
/// that the path checked and the path forwarded are the same fragment-free path.
#[tokio::test(flavor = "multi_thread")]
async fn h2_path_fragment_never_splits_the_checked_and_forwarded_path() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate(H2_LIMITS).start();
    let mut s = h2_connect(gate.addr).await;
    s.write_all(&frame(0x1, 0x4 | 0x1, 1, &get_block_for(b"/api/x/#/../../admin/"))).await.unwrap();
    let (_, statuses) = hold_until_closed(&mut s, Duration::from_secs(8)).await;
    assert_eq!(statuses, [0x88]);
    assert_eq!(up.last().target, "/api/x/");
    assert!(eventually(Duration::from_secs(5), || !gate.access_lines().is_empty()).await);
    assert_eq!(gate.access_lines()[0]["path"], "/api/x/");
}
