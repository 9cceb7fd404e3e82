//! The stale-connection race, made deterministic: a current-thread runtime that is kept
//! from seeing the upstream's FIN until the request is already queued on the pooled
//! connection. (The integration tests in `tests/it/upstream_pool.rs` cover reuse, the pool's
//! limits and the error mapping through the real binary.)

#![allow(clippy::disallowed_types)] // std Mutex around the test upstream's sockets

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::Limits;
use super::pool::Pool;
use super::{Error, Upstream};

const LIMITS: Limits = Limits { max_head: 64 * 1024, max_headers: 100 };

/// A blocking HTTP/1.1 upstream on its own threads, invisible to the test's runtime.
/// `GET /drop` is read and answered by closing the connection; anything else gets `ok`.
struct StdUpstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl StdUpstream {
    fn start() -> StdUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = StdUpstream {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            requests: Arc::default(),
            conns: Arc::default(),
        };
        let (accepted, requests, conns) = (up.accepted.clone(), up.requests.clone(), up.conns.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                accepted.fetch_add(1, Ordering::SeqCst);
                conns.lock().unwrap().push(stream.try_clone().unwrap());
                let requests = requests.clone();
                std::thread::spawn(move || serve(stream, &requests));
            }
        });
        up
    }

    /// Closes every connection now (FIN to the gate side).
    fn close_all(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn serve(stream: TcpStream, requests: &AtomicUsize) {
    let mut out = stream.try_clone().unwrap();
    let mut lines = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if lines.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        requests.fetch_add(1, Ordering::SeqCst);
        if request_line.starts_with("GET /drop ") {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
        if out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_err() {
            return;
        }
    }
}

fn client(up: &StdUpstream) -> Upstream {
    Upstream {
        addr: up.addr.to_string(),
        connect_timeout: Duration::from_secs(5),
        limits: LIMITS,
        pool: Pool::start(8, Duration::from_secs(90)),
    }
}

/// A `GET path` whose body is a real (empty) `Incoming`, as the gate forwards them: taken
/// from an in-memory exchange, so no socket of the test upstream is involved.
async fn get(path: &str) -> http::Request<Incoming> {
    let (client_io, mut server_io) = tokio::io::duplex(1024);
    let (mut tx, conn) = hyper::client::conn::http1::handshake::<_, http_body_util::Empty<bytes::Bytes>>(
        hyper_util::rt::TokioIo::new(client_io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        let _ = server_io.read(&mut buf).await;
        let _ = server_io.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    });
    let resp =
        tx.send_request(http::Request::get("/").header("host", "x").body(Default::default()).unwrap()).await.unwrap();
    http::Request::get(path).header("host", "gate.test").body(resp.into_body()).unwrap()
}

async fn text(resp: http::Response<super::Body>) -> String {
    String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// The upstream closed the pooled connection, and the FIN reached the gate's runtime in the
/// same I/O poll as the next request: the pool still saw an open, ready connection and the
/// request was queued on it. The connection task then reads the EOF before it takes the
/// request and hands it back unsent; the client sends it on a fresh connection. Without the
/// retry this request fails (a 502 in the gate).
#[tokio::test(flavor = "current_thread")]
async fn a_request_handed_back_by_a_closing_pooled_connection_goes_on_a_fresh_one() {
    let up = StdUpstream::start();
    let client = client(&up);
    assert_eq!(text(client.send(get("/a").await).await.unwrap()).await, "ok");
    // Let the connection task finish the exchange: the sender is pooled and ready.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(client.pool.idle(), 1);
    let req = get("/b").await;

    let (signal, signal_rx) = std::os::unix::net::UnixStream::pair().unwrap();
    signal_rx.set_nonblocking(true).unwrap();
    let mut signal_rx = tokio::net::UnixStream::from_std(signal_rx).unwrap();
    up.close_all();
    (&signal).write_all(b"x").unwrap();
    // Block the runtime thread: the FIN and the signal both arrive before its next I/O poll,
    // which wakes this test first and the connection task after it.
    std::thread::sleep(Duration::from_millis(100));
    signal_rx.read_exact(&mut [0u8]).await.unwrap();

    let resp = client.send(req).await.expect("sent again on a fresh connection");
    assert_eq!(text(resp).await, "ok");
    assert_eq!((up.accepted.load(Ordering::SeqCst), up.requests.load(Ordering::SeqCst)), (2, 2));
}

/// A request the upstream received is never sent twice, even when its pooled connection
/// then fails: the upstream saw it once and the client gets the error.
#[tokio::test(flavor = "current_thread")]
async fn a_request_that_was_sent_is_never_repeated() {
    let up = StdUpstream::start();
    let client = client(&up);
    assert_eq!(text(client.send(get("/a").await).await.unwrap()).await, "ok");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = client.send(get("/drop").await).await.err().expect("the upstream closed without answering");
    assert!(matches!(err, Error::Closed | Error::Io(_)) && !err.is_connect(), "{err:?}");
    assert_eq!((up.accepted.load(Ordering::SeqCst), up.requests.load(Ordering::SeqCst)), (1, 2));
    // A fresh connection that fails the same way is not retried either.
    let err = client.send(get("/drop").await).await.err().expect("closed again");
    assert!(matches!(err, Error::Closed | Error::Io(_)), "{err:?}");
    assert_eq!((up.accepted.load(Ordering::SeqCst), up.requests.load(Ordering::SeqCst)), (2, 3));
}

/// Nothing listening: a connect error, which the gate maps to `UpstreamConnect`.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_connection_is_a_connect_error() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let client = Upstream {
        addr: addr.to_string(),
        connect_timeout: Duration::from_secs(5),
        limits: LIMITS,
        pool: Pool::start(8, Duration::from_secs(90)),
    };
    let err = client.send(get("/a").await).await.err().expect("nothing listens");
    assert!(matches!(err, Error::Connect(_)) && err.is_connect(), "{err:?}");
}
