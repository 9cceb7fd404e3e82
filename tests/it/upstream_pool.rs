//! The gate's connections to the upstream (`crate::upstream`): reuse, what is never reused,
//! the pool's limits, the upstream closing idle connections, and connect failures. The
//! upstream here counts the TCP connections it accepts and still has open.

// The test upstream runs on plain threads; its std Mutex is never held across an await.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

/// A blocking HTTP/1.1 upstream on its own threads (`GET` only): `/big/N` answers N bytes,
/// `/slow/MS` answers `ok` after a delay, `/garbage` answers something that is not HTTP,
/// anything else `ok`. It closes a connection that stays idle for `idle_close`, and
/// [`close_idle`](Self::close_idle) closes every idle one at once.
#[derive(Clone)]
struct CountingUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    /// The sockets waiting for their next request.
    idle: Arc<Mutex<Vec<(usize, TcpStream)>>>,
}

impl CountingUpstream {
    fn start(idle_close: Option<Duration>) -> CountingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = CountingUpstream {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            open: Arc::default(),
            idle: Arc::default(),
        };
        let server = up.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let id = server.accepted.fetch_add(1, Ordering::SeqCst);
                server.open.fetch_add(1, Ordering::SeqCst);
                let conn = server.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(idle_close);
                    conn.serve(id, stream);
                    conn.idle.lock().unwrap().retain(|(i, _)| *i != id);
                    conn.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        up
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Closes every connection that waits for a request (FIN to the gate), now.
    fn close_idle(&self) {
        for (_, s) in self.idle.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn serve(&self, id: usize, stream: TcpStream) {
        let mut out = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream);
        loop {
            self.idle.lock().unwrap().push((id, out.try_clone().unwrap()));
            let mut request_line = String::new();
            // EOF, the idle timeout or `close_idle`: the connection ends.
            if lines.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            self.idle.lock().unwrap().retain(|(i, _)| *i != id);
            loop {
                let mut line = String::new();
                if lines.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
            if !respond(&mut out, &path) {
                return;
            }
        }
    }
}

/// Writes the answer for `path`; false when the connection is done.
fn respond(out: &mut TcpStream, path: &str) -> bool {
    if path == "/garbage" {
        let _ = out.write_all(b"this is not HTTP\r\n\r\n");
        return false;
    }
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|s| s.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let Some(n) = path.strip_prefix("/big/").and_then(|s| s.parse::<usize>().ok()) else {
        return out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_ok();
    };
    if out.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let take = left.min(chunk.len());
        if out.write_all(&chunk[..take]).is_err() {
            return false;
        }
        left -= take;
    }
    true
}

async fn ok(gate: &Gate, path: &str) -> (u16, usize) {
    let (parts, body) = send(&client(), get(&gate.url(path))).await;
    (parts.status.as_u16(), body.len())
}

/// Sequential requests, each from its own client connection, share one upstream connection.
#[tokio::test(flavor = "multi_thread")]
async fn sequential_requests_share_one_upstream_connection() {
    let up = CountingUpstream::start(None);
    let gate = GateBuilder::new(up.addr).start();
    for _ in 0..10 {
        assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    }
    assert_eq!(ok(&gate, "/big/300000").await, (200, 300_000));
    assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    assert_eq!((up.accepted(), up.open()), (1, 1));
}

/// A client that leaves before the response body ends takes the upstream connection with
/// it: the gate closes it rather than pooling a connection with unread bytes. Control: a
/// body read to the end leaves its connection pooled (one connection so far).
#[tokio::test(flavor = "multi_thread")]
async fn a_response_body_not_read_to_the_end_is_not_reused() {
    let up = CountingUpstream::start(None);
    let gate = GateBuilder::new(up.addr).start();
    assert_eq!(ok(&gate, "/big/1000000").await, (200, 1_000_000));
    assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    assert_eq!(up.accepted(), 1);

    let mut s = TcpStream::connect(gate.addr).unwrap();
    s.write_all(b"GET /big/16000000 HTTP/1.1\r\nHost: prt.test\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    assert!(s.read(&mut first).unwrap() > 0);
    drop(s);
    assert!(eventually(Duration::from_secs(5), || up.open() == 0).await, "the half-read connection stayed open");
    assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    assert_eq!((up.accepted(), up.open()), (2, 1));
}

/// An upstream that closes idle keep-alive connections (Django behind gunicorn does) never
/// costs a client a 502. Once the gate has seen the close, the connection is not handed out;
/// and when the upstream's FIN reaches the gate together with a client's request (one
/// worker: the request is picked up first), the pooled connection hands the unsent request
/// back and it goes on a fresh connection. Without that retry, some of the second loop's
/// requests are answered 502.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_closes_idle_connections_causes_no_502() {
    let up = CountingUpstream::start(Some(Duration::from_millis(100)));
    let gate = GateBuilder::new(up.addr).gate("workers = 1").start();
    for _ in 0..5 {
        assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(up.accepted(), 5, "each request after an idle close needs a new connection");

    let raced = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(gate.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut statuses = Vec::new();
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(20));
            up.close_idle();
            s.write_all(b"GET /api/x/ HTTP/1.1\r\nHost: prt.test\r\n\r\n").unwrap();
            statuses.push(read_status(&mut s));
        }
        (statuses, gate)
    });
    let (statuses, gate) = raced.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(metric(&gate, "prt_gate_upstream_errors_total{kind=\"protocol\"}").await, 0);
}

/// Reads one response with a `Content-Length` body off a keep-alive connection; its status.
fn read_status(s: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).unwrap().trim().parse().unwrap();
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// After a burst the pool keeps `upstream_pool_max_idle` connections and closes the rest;
/// the next requests reuse the kept ones.
#[tokio::test(flavor = "multi_thread")]
async fn the_pool_keeps_at_most_max_idle_connections() {
    let up = CountingUpstream::start(None);
    let gate = GateBuilder::new(up.addr).gate("upstream_pool_max_idle = 2").start();
    let url = gate.url("/slow/300");
    let burst: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { send(&client(), get(&url)).await })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap().0.status, 200);
    }
    assert_eq!(up.accepted(), 5);
    assert!(eventually(Duration::from_secs(5), || up.open() == 2).await, "open: {}", up.open());
    for _ in 0..4 {
        assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    }
    assert_eq!((up.accepted(), up.open()), (5, 2));
}

/// An idle connection is closed after `upstream_pool_idle_timeout` even if no request comes
/// (the pool's sweep), and the next request gets a new one. Control: within the timeout
/// the connection is still open and reused.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let up = CountingUpstream::start(None);
    let gate = GateBuilder::new(up.addr).gate("upstream_pool_idle_timeout = \"1s\"").start();
    assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    assert_eq!((up.accepted(), up.open()), (1, 1));
    let started = std::time::Instant::now();
    assert!(eventually(Duration::from_secs(5), || up.open() == 0).await, "the idle connection stayed open");
    let closed_after = started.elapsed();
    assert!(closed_after >= Duration::from_millis(900), "closed after {closed_after:?}, before the idle timeout");
    assert!(closed_after < Duration::from_millis(1600), "closed after {closed_after:?}");
    assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    assert_eq!((up.accepted(), up.open()), (2, 1));
}

/// Connect failures and broken answers are 502 without detail, counted by kind.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_are_502_counted_by_kind() {
    let down = closed_port();
    let gate = GateBuilder::new(down).start();
    let (parts, body) = send(&client(), get(&gate.url("/api/x/"))).await;
    assert_eq!(parts.status, 502);
    assert!(String::from_utf8_lossy(&body).starts_with("{\"error\":\"bad_gateway\""));
    assert_eq!(metric(&gate, "prt_gate_upstream_errors_total{kind=\"connect\"}").await, 1);
    assert_eq!(metric(&gate, "prt_gate_upstream_errors_total{kind=\"protocol\"}").await, 0);

    let up = CountingUpstream::start(None);
    let gate = GateBuilder::new(up.addr).start();
    let (parts, body) = send(&client(), get(&gate.url("/garbage"))).await;
    assert_eq!(parts.status, 502);
    assert!(String::from_utf8_lossy(&body).starts_with("{\"error\":\"bad_gateway\""));
    assert_eq!(metric(&gate, "prt_gate_upstream_errors_total{kind=\"protocol\"}").await, 1);
    assert_eq!(metric(&gate, "prt_gate_upstream_errors_total{kind=\"connect\"}").await, 0);
    // The broken connection is not reused.
    assert_eq!(ok(&gate, "/api/x/").await, (200, 2));
    assert_eq!(up.accepted(), 2);
}
