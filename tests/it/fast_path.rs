//! The gate's own HTTP/1.1 server for body-less `GET`/`HEAD` (`proxy::fast_path`), from
//! a raw socket: it answers like hyper does, hands everything else to hyper with today's
//! answer, keeps pipelined requests in order, and frames its responses exactly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::*;

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one response head (lower case) off `s`, and its body (`Content-Length`, or none
/// for `HEAD`).
fn answer(s: &mut TcpStream, pending: &mut Vec<u8>, head_request: bool) -> (String, Vec<u8>) {
    let end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("no answer");
        assert!(n > 0, "closed before an answer; read so far: {:?}", String::from_utf8_lossy(pending));
        pending.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
    pending.drain(..end);
    let len: usize = match head_request {
        true => 0,
        false => head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.trim().parse().unwrap()),
    };
    while pending.len() < len {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed inside a body");
        pending.extend_from_slice(&buf[..n]);
    }
    (head, pending.drain(..len).collect())
}

/// Whether the gate closed `s` within two seconds (without sending anything more).
fn closes(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

/// Status line and header lines, without those that change per request.
fn fixed(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = head
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("date:") && !l.starts_with("x-request-id:"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Runs `f` with the address of a gate in front of `upstream`, on a blocking thread (the
/// tests here speak raw HTTP/1.1 over std sockets); the gate lives until `f` returns.
async fn through_a_gate(upstream: SocketAddr, f: impl FnOnce(SocketAddr) + Send + 'static) {
    let gate = GateBuilder::new(upstream).start();
    let addr = gate.addr;
    tokio::task::spawn_blocking(move || f(addr)).await.unwrap();
}

/// Positive control: the same requests, once on the fast path and once padded with more
/// header lines than it parses (so hyper serves them), get the same answers.
#[tokio::test(flavor = "multi_thread")]
async fn the_fast_path_answers_like_hyper() {
    let up = Upstream::start().await;
    through_a_gate(up.addr, move |addr| {
        let pad: String = (0..70).map(|i| format!("X-Pad-{i}: 1\r\n")).collect();
        for (req, head_request) in [
            ("GET /api/a HTTP/1.1\r\nHost: prt.test\r\n", false),
            ("HEAD /api/a HTTP/1.1\r\nHost: prt.test\r\n", true),
            ("GET /api/a HTTP/1.1\r\nHost: elsewhere.test\r\n", false),
            ("GET /a/../../b HTTP/1.1\r\nHost: prt.test\r\nAccept: text/html\r\n", false),
        ] {
            let mut answers = Vec::new();
            for extra in ["", pad.as_str()] {
                let mut s = connect(addr);
                s.write_all(format!("{req}{extra}\r\n").as_bytes()).unwrap();
                answers.push(answer(&mut s, &mut Vec::new(), head_request));
            }
            assert_eq!(fixed(&answers[0].0), fixed(&answers[1].0), "{req}");
            // A page the gate wrote names its request id.
            let [a, b] = [&answers[0], &answers[1]].map(|(head, body)| {
                let id = head.lines().find_map(|l| l.strip_prefix("x-request-id: ")).unwrap_or("-");
                String::from_utf8_lossy(body).replace(id, "<id>")
            });
            assert_eq!(a, b, "{req}");
            assert!(answers[0].0.contains("\r\ndate: "), "no date: {}", answers[0].0);
        }
    })
    .await;
}

/// Requests with a body, other framings, HTTP/1.0 and a raw `#` are hyper's, with
/// today's answers; the connection goes on in order after each.
#[tokio::test(flavor = "multi_thread")]
async fn whatever_the_fast_path_does_not_take_hyper_serves_as_before() {
    let up = Upstream::start().await;
    let up2 = up.clone();
    through_a_gate(up.addr, move |addr| {
        let mut s = connect(addr);
        let mut pending = Vec::new();
        // A GET with a body: the body is the request's, never a next request.
        s.write_all(b"GET /api/cl HTTP/1.1\r\nHost: prt.test\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!(answer(&mut s, &mut pending, false).1, b"ok 5");
        s.write_all(
            b"GET /api/te HTTP/1.1\r\nHost: prt.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .unwrap();
        // (What the upstream gets of a GET's chunked body is the upstream client's business.)
        assert!(answer(&mut s, &mut pending, false).0.starts_with("http/1.1 200 "));
        // A raw `#`: refused by the pipeline as before, never forwarded.
        s.write_all(b"GET /api/frag#x HTTP/1.1\r\nHost: prt.test\r\n\r\n").unwrap();
        assert!(answer(&mut s, &mut pending, false).0.starts_with("http/1.1 400 "));
        s.write_all(b"GET /api/after HTTP/1.1\r\nHost: prt.test\r\n\r\n").unwrap();
        assert_eq!(answer(&mut s, &mut pending, false).1, b"ok 0");
        // HTTP/1.0: hyper answers in HTTP/1.0 and closes.
        s.write_all(b"GET /api/old HTTP/1.0\r\nHost: prt.test\r\n\r\n").unwrap();
        assert!(answer(&mut s, &mut pending, false).0.starts_with("http/1.0 200 "));
        assert!(closes(&mut s), "HTTP/1.0 connection left open");
        // An obs-fold: hyper's 400.
        let mut s = connect(addr);
        s.write_all(b"GET /api/fold HTTP/1.1\r\nHost: prt.test\r\nX-A: 1\r\n 2\r\n\r\n").unwrap();
        assert!(answer(&mut s, &mut Vec::new(), false).0.starts_with("http/1.1 400 "));
    })
    .await;
    let seen: Vec<String> = up2.seen.lock().unwrap().iter().map(|s| s.target.clone()).collect();
    assert_eq!(seen, ["/api/cl", "/api/te", "/api/after", "/api/old"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_gets_and_heads_are_answered_in_order() {
    let up = Upstream::start().await;
    through_a_gate(up.addr, move |addr| {
        let mut s = connect(addr);
        s.write_all(
            b"GET /slow/200 HTTP/1.1\r\nHost: prt.test\r\n\r\n\
              HEAD /api/h HTTP/1.1\r\nHost: prt.test\r\n\r\n\
              GET /api/b HTTP/1.1\r\nHost: prt.test\r\n\r\n",
        )
        .unwrap();
        let mut pending = Vec::new();
        assert_eq!(answer(&mut s, &mut pending, false).1, b"slow ok");
        // HEAD: the length a GET would get, and not a byte of body.
        let (head, _) = answer(&mut s, &mut pending, true);
        assert!(head.starts_with("http/1.1 200 ") && head.contains("content-length: 4\r\n"), "{head}");
        let (head, body) = answer(&mut s, &mut pending, false);
        assert!(head.starts_with("http/1.1 200 "), "a HEAD body was read as the next answer: {head}");
        assert_eq!(body, b"ok 0");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_close_ends_the_connection_after_its_answer() {
    let up = Upstream::start().await;
    through_a_gate(up.addr, move |addr| {
        let mut s = connect(addr);
        s.write_all(b"GET /api/a HTTP/1.1\r\nHost: prt.test\r\nConnection: close\r\n\r\n").unwrap();
        let (head, body) = answer(&mut s, &mut Vec::new(), false);
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert_eq!(body, b"ok 0");
        assert!(closes(&mut s), "the connection stayed open");
    })
    .await;
}

/// An upstream that answers every request on a connection with `reply`, then closes.
fn raw_upstream(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(reply);
            });
        }
    });
    addr
}

/// The upstream's body ends before its `Content-Length`: the client gets what came and
/// then the end of the connection, never a next answer on it.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_body_short_of_its_length_closes_the_connection() {
    let up = raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
    through_a_gate(up, move |addr| {
        let mut s = connect(addr);
        s.write_all(b"GET /api/short HTTP/1.1\r\nHost: prt.test\r\n\r\n").unwrap();
        let mut got = Vec::new();
        // The end of input, not the read timeout: the gate closed the connection.
        assert!(s.read_to_end(&mut got).is_ok(), "the connection stayed open: {:?}", String::from_utf8_lossy(&got));
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 200 ") && text.contains("content-length: 10\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nabc"), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_upstream_body_reaches_the_client_chunked() {
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
          5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
    );
    through_a_gate(up, move |addr| {
        let mut s = connect(addr);
        s.write_all(b"GET /api/chunked HTTP/1.1\r\nHost: prt.test\r\n\r\n").unwrap();
        let mut pending = Vec::new();
        let (head, _) = answer(&mut s, &mut pending, true);
        assert!(head.contains("\r\ntransfer-encoding: chunked\r\n") && !head.contains("content-length"), "{head}");
        // Read the chunks to the last one; the connection stays usable after it.
        while !pending.ends_with(b"0\r\n\r\n") {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed inside the chunked body");
            pending.extend_from_slice(&buf[..n]);
        }
        let mut body = Vec::new();
        let mut rest = &pending[..];
        loop {
            let line = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap(), 16).unwrap();
            rest = &rest[line + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
        }
        assert_eq!(body, b"hello, world");
    })
    .await;
}

/// Idle keep-alive connections hold only their socket (design §15): once each has its
/// answer, none is still in a busy period (`prt_gate_connections_busy`), however the
/// socket's readiness was left by the request just served. Positive control: a
/// connection with half a head sent is busy until its head completes.
#[tokio::test(flavor = "multi_thread")]
async fn answered_keep_alive_connections_wait_idle() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let addr = gate.addr;
    let (held, mut half) = tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..10)
            .map(|_| {
                let mut s = connect(addr);
                s.write_all(b"GET /api/a HTTP/1.1\r\nHost: prt.test\r\n\r\n").unwrap();
                let (head, _) = answer(&mut s, &mut Vec::new(), false);
                assert!(head.starts_with("http/1.1 "), "{head}");
                assert!(!head.contains("connection: close"), "{head}");
                s
            })
            .collect();
        let mut half = connect(addr);
        half.write_all(b"GET /api/a HTTP/1.1\r\nHost: pr").unwrap();
        (held, half)
    })
    .await
    .unwrap();
    let mut counts = (0, 0);
    let settled = open_and_busy(&gate, &mut counts, (11, 1)).await;
    assert!(settled, "(open, busy) = {counts:?}, want (11, 1): answered connections must wait idle");
    // The half head completes: answered on the same connection, which then idles too.
    let half = tokio::task::spawn_blocking(move || {
        half.write_all(b"t.test\r\n\r\n").unwrap();
        let (head, _) = answer(&mut half, &mut Vec::new(), false);
        assert!(head.starts_with("http/1.1 "), "{head}");
        half
    })
    .await
    .unwrap();
    let settled = open_and_busy(&gate, &mut counts, (11, 0)).await;
    assert!(settled, "(open, busy) = {counts:?}, want (11, 0)");
    drop((held, half));
}

/// Polls `(prt_gate_connections_open, prt_gate_connections_busy)` into `counts` for up to
/// three seconds until it is `want`.
async fn open_and_busy(gate: &Gate, counts: &mut (i64, i64), want: (i64, i64)) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        *counts = (metric(gate, "prt_gate_connections_open").await, metric(gate, "prt_gate_connections_busy").await);
        if *counts == want || std::time::Instant::now() > deadline {
            return *counts == want;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
