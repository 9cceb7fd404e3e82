//! HTTP/1 keep-alive connections across idle periods: the gate frees hyper's buffers
//! while a connection is idle and serves the next request on a fresh hyper connection
//! (`proxy::connection`). To the client that must stay one ordinary keep-alive
//! connection: every request answered, in order, no `Connection: close`, nothing lost or
//! repeated, pipelined bytes kept, and the header read timeout still counted from the end
//! of the previous response.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

/// One response read off a keep-alive connection: status, head (lower case), body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads exactly one response (`Content-Length` or chunked), leaving the connection open.
fn read_answer(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Answer> {
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(s, pending)?;
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
    pending.drain(..head_end);
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok());
    let body = match length {
        Some(n) => {
            while pending.len() < n {
                fill(s, pending)?;
            }
            pending.drain(..n).collect()
        }
        None if head.contains("transfer-encoding: chunked") => {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    fill(s, pending)?;
                };
                let size = usize::from_str_radix(String::from_utf8_lossy(&pending[..line_end]).trim(), 16).ok()?;
                pending.drain(..line_end + 2);
                while pending.len() < size + 2 {
                    fill(s, pending)?;
                }
                body.extend(pending.drain(..size));
                pending.drain(..2);
                if size == 0 {
                    break body;
                }
            }
        }
        None => Vec::new(),
    };
    Some(Answer { status, head, body })
}

fn fill(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<()> {
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            pending.extend_from_slice(&buf[..n]);
            Some(())
        }
    }
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: prt.test\r\n\r\n")
}

/// Whether the peer closed the connection (end of input, or a reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    let closed = match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    closed
}

#[tokio::test(flavor = "multi_thread")]
async fn one_keep_alive_connection_serves_many_requests_across_idle_periods() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let addr = gate.addr;
    let seen = tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        let mut pending = Vec::new();
        for i in 0..60 {
            // Every request kind the idle end must frame: no body, a Content-Length body,
            // a chunked body with a trailer; some after an idle pause, some back to back.
            let req = match i % 3 {
                0 => get(&format!("/api/n/{i}")),
                1 => format!("POST /api/n/{i} HTTP/1.1\r\nHost: prt.test\r\nContent-Length: 5\r\n\r\nhello"),
                _ => format!(
                    "POST /api/n/{i} HTTP/1.1\r\nHost: prt.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                     3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
                ),
            };
            s.write_all(req.as_bytes()).unwrap();
            let a = read_answer(&mut s, &mut pending).unwrap_or_else(|| panic!("request {i}: connection closed"));
            assert_eq!(a.status, 200, "request {i}: {}", a.head);
            let want = match i % 3 {
                0 => "ok 0",
                1 => "ok 5",
                _ => "ok 7",
            };
            assert_eq!(String::from_utf8_lossy(&a.body), want, "request {i}");
            assert!(!a.head.contains("connection: close"), "request {i}: {}", a.head);
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        assert!(pending.is_empty(), "bytes after the last answer: {pending:?}");
        // The client ends the connection when it asks to: then the gate closes it.
        s.write_all(b"GET /api/last HTTP/1.1\r\nHost: prt.test\r\nConnection: close\r\n\r\n").unwrap();
        let a = read_answer(&mut s, &mut pending).expect("last answer");
        assert_eq!(a.status, 200);
        assert!(a.head.contains("connection: close"), "{}", a.head);
        assert!(closed_within(&mut s, Duration::from_secs(5)), "not closed after Connection: close");
    })
    .await;
    seen.unwrap();
    // Each request reached the upstream once, in order.
    let targets: Vec<String> = up.seen.lock().unwrap().iter().map(|s| s.target.clone()).collect();
    let want: Vec<String> = (0..60).map(|i| format!("/api/n/{i}")).chain(["/api/last".to_string()]).collect();
    assert_eq!(targets, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order_across_the_idle_handoff() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let addr = gate.addr;
    tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        let mut pending = Vec::new();
        for round in 0..3 {
            // One request, then an idle pause: the connection is parked.
            s.write_all(get(&format!("/api/r{round}/a")).as_bytes()).unwrap();
            assert_eq!(read_answer(&mut s, &mut pending).expect("first").status, 200);
            std::thread::sleep(Duration::from_millis(200));
            // Four requests in one write, bodies of both framings among them, then a
            // head split across another pause.
            let burst = format!(
                "{}POST /api/r{round}/c HTTP/1.1\r\nHost: prt.test\r\nContent-Length: 3\r\n\r\nxyz\
                 POST /api/r{round}/d HTTP/1.1\r\nHost: prt.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n{}",
                get(&format!("/api/r{round}/b")),
                get(&format!("/api/r{round}/e")),
            );
            s.write_all(burst.as_bytes()).unwrap();
            for want in ["ok 0", "ok 3", "ok 2", "ok 0"] {
                let a = read_answer(&mut s, &mut pending).expect("pipelined answer");
                assert_eq!((a.status, String::from_utf8_lossy(&a.body).into_owned()), (200, want.to_string()));
                assert!(!a.head.contains("connection: close"), "{}", a.head);
            }
            s.write_all(format!("GET /api/r{round}/f HTTP/1.1\r\nHo").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            s.write_all(b"st: prt.test\r\n\r\n").unwrap();
            assert_eq!(read_answer(&mut s, &mut pending).expect("split head").status, 200);
        }
        assert!(pending.is_empty());
    })
    .await
    .unwrap();
    let targets: Vec<String> = up.seen.lock().unwrap().iter().map(|s| s.target.clone()).collect();
    let want: Vec<String> =
        (0..3).flat_map(|r| ["a", "b", "c", "d", "e", "f"].map(move |x| format!("/api/r{r}/{x}"))).collect();
    assert_eq!(targets, want);
}

/// The header read timeout runs from the end of the previous response until the next head
/// is complete, idle wait included (as when one hyper connection served them all).
#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_connections_close_at_the_header_read_timeout() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate("header_read_timeout = \"1s\"").start();
    let addr = gate.addr;
    tokio::task::spawn_blocking(move || {
        // Positive control: a pause shorter than the timeout, then a request: served.
        let mut s = connect(addr);
        let mut pending = Vec::new();
        s.write_all(get("/api/x").as_bytes()).unwrap();
        assert_eq!(read_answer(&mut s, &mut pending).expect("first").status, 200);
        std::thread::sleep(Duration::from_millis(400));
        s.write_all(get("/api/y").as_bytes()).unwrap();
        assert_eq!(read_answer(&mut s, &mut pending).expect("after a short pause").status, 200);

        // Silent after a response: closed about a second later.
        let t = Instant::now();
        assert!(closed_within(&mut s, Duration::from_secs(5)), "idle connection never closed");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(3), "closed after {took:?}");

        // Idle for most of the timeout, then a head trickled in: the deadline is the end
        // of the previous response plus the timeout, not the first byte of the next head.
        let mut s = connect(addr);
        s.write_all(get("/api/z").as_bytes()).unwrap();
        assert_eq!(read_answer(&mut s, &mut pending).expect("first").status, 200);
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(700));
        s.write_all(b"GET /api/late HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let _ = s.write_all(b"Host: prt.test\r\n");
        assert!(closed_within(&mut s, Duration::from_secs(5)), "slow head after idle never closed");
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1600), "closed only after {took:?}: the timeout restarted");
    })
    .await
    .unwrap();
    assert!(!up.seen.lock().unwrap().iter().any(|s| s.target == "/api/late"));
}

/// A drain (SIGTERM) closes idle keep-alive connections at once, holding only their
/// socket in the idle wait, and the gate exits without waiting for the drain timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_closes_idle_keep_alive_connections_at_once() {
    let up = Upstream::start().await;
    let mut gate = GateBuilder::new(up.addr).gate("drain_timeout = \"30s\"\nheader_read_timeout = \"30s\"").start();
    let addr = gate.addr;
    let mut idle = tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        let mut pending = Vec::new();
        s.write_all(get("/api/x").as_bytes()).unwrap();
        assert_eq!(read_answer(&mut s, &mut pending).expect("first").status, 200);
        // Past the grace: the connection has parked.
        std::thread::sleep(Duration::from_millis(300));
        s
    })
    .await
    .unwrap();
    let t = Instant::now();
    gate.signal("TERM");
    let (closed, status) = tokio::task::spawn_blocking(move || {
        let closed = closed_within(&mut idle, Duration::from_secs(10));
        (closed, gate.child.wait().unwrap())
    })
    .await
    .unwrap();
    assert!(closed, "the idle connection stayed open through the drain");
    assert!(t.elapsed() < Duration::from_secs(5), "drained only after {:?}", t.elapsed());
    assert_eq!(status.code(), Some(0));
}
