//! One exchange against a scripted upstream: interim responses, what ends a body and
//! whether its connection is pooled, how request bodies go out, an answer that comes
//! before the request body ends, and when a failed first write leaves a request unsent.

#![allow(clippy::disallowed_types)] // std Mutex around the scripted upstream's records

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::codec::Limits;
use super::conn::{exchange, Conn, Failed, Writer};
use super::pool::Pool;
use super::{Error, Upstream};

const LIMITS: Limits = Limits { max_head: 64 * 1024, max_headers: 100 };

/// What the scripted upstream does with one request.
#[derive(Clone, Copy)]
struct Step {
    /// Read the request body (by its framing) before answering; else answer after the head.
    read_body: bool,
    answer: &'static [u8],
}

fn after_body(answer: &'static [u8]) -> Step {
    Step { read_body: true, answer }
}

/// An upstream that plays `steps` in order over however many connections the client opens,
/// recording each request as received. A connection stays open after its answer until the
/// client closes it, or the steps run out.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Scripted {
    async fn start(steps: &[Step]) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Scripted { addr: listener.local_addr().unwrap(), accepted: Arc::default(), requests: Arc::default() };
        let steps = Arc::new(Mutex::new(steps.iter().copied().collect::<VecDeque<_>>()));
        let (accepted, requests) = (up.accepted.clone(), up.requests.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (steps, requests) = (steps.clone(), requests.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(step) = steps.lock().unwrap().front().copied() else { return };
                        let Some(request) = read_request(&mut s, step.read_body).await else { return };
                        steps.lock().unwrap().pop_front();
                        requests.lock().unwrap().push(request);
                        if s.write_all(step.answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        up
    }

    fn client(&self) -> Upstream {
        Upstream {
            addr: self.addr.to_string(),
            connect_timeout: Duration::from_secs(5),
            limits: LIMITS,
            pool: Pool::start(8, Duration::from_secs(90)),
        }
    }

    fn request(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.requests.lock().unwrap()[i]).into_owned()
    }
}

/// A request's bytes: the head, and with `body` its Content-Length or chunked body.
async fn read_request(s: &mut TcpStream, body: bool) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        (s.read(&mut byte).await.ok()? == 1).then_some(())?;
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let length = head.lines().find_map(|l| l.strip_prefix("content-length: ")).and_then(|n| n.parse::<usize>().ok());
    if !body {
        return Some(got);
    }
    if let Some(n) = length {
        let mut body = vec![0u8; n];
        s.read_exact(&mut body).await.ok()?;
        got.extend_from_slice(&body);
    } else if head.contains("transfer-encoding: chunked") {
        while !got.ends_with(b"\r\n0\r\n\r\n") {
            (s.read(&mut byte).await.ok()? == 1).then_some(())?;
            got.push(byte[0]);
        }
    }
    Some(got)
}

/// A body of unknown length: these frames, then (with `hang`) never an end.
struct Frames {
    frames: VecDeque<Bytes>,
    hang: bool,
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.frames.pop_front() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None if self.hang => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn frames(parts: &[&'static str], hang: bool) -> Frames {
    Frames { frames: parts.iter().map(|p| Bytes::from_static(p.as_bytes())).collect(), hang }
}

fn post<B>(body: B) -> http::Request<B> {
    http::Request::post("/p").header("host", "gate.test").body(body).unwrap()
}

fn get(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(path).header("host", "gate.test").body(Empty::new()).unwrap()
}

async fn text(resp: http::Response<super::Body>) -> String {
    String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[tokio::test]
async fn interim_responses_are_skipped_but_101_is_passed_up() {
    let up = Scripted::start(&[
        after_body(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
        after_body(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"),
    ])
    .await;
    let client = up.client();
    let resp = client.send(get("/a")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(text(resp).await, "ok");
    assert_eq!(client.pool.idle(), 1);
    let resp = client.send(get("/b")).await.unwrap();
    assert_eq!(resp.status(), 101);
    // Never pooled: the connection belongs to a protocol switch nobody asked for.
    assert_eq!(client.pool.idle(), 0);
}

#[tokio::test]
async fn a_body_read_to_its_end_pools_its_connection_a_close_delimited_one_does_not() {
    let up = Scripted::start(&[
        after_body(OK),
        after_body(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
        after_body(b"HTTP/1.1 200 OK\r\n\r\nuntil the close"),
    ])
    .await;
    let client = up.client();
    assert_eq!(text(client.send(get("/a")).await.unwrap()).await, "ok");
    assert_eq!(client.pool.idle(), 1);
    assert_eq!(text(client.send(get("/b")).await.unwrap()).await, "abcde");
    assert_eq!(client.pool.idle(), 1);
    let resp = client.send(get("/c")).await.unwrap();
    // The upstream closes when it runs out of steps: the body ends there.
    assert_eq!(text(resp).await, "until the close");
    assert_eq!(client.pool.idle(), 0);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_with_more_than_the_response_or_a_close_is_not_pooled() {
    let up = Scripted::start(&[
        after_body(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA"),
        after_body(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"),
        after_body(OK),
    ])
    .await;
    let client = up.client();
    assert_eq!(text(client.send(get("/a")).await.unwrap()).await, "ok");
    assert_eq!(client.pool.idle(), 0, "bytes past the body");
    assert_eq!(text(client.send(get("/b")).await.unwrap()).await, "ok");
    assert_eq!(client.pool.idle(), 0, "connection: close");
    assert_eq!(text(client.send(get("/c")).await.unwrap()).await, "ok");
    assert_eq!(client.pool.idle(), 1);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn head_204_and_304_have_no_body_and_keep_the_connection() {
    let up = Scripted::start(&[
        after_body(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"),
        after_body(b"HTTP/1.1 204 No Content\r\n\r\n"),
        after_body(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 1000\r\n\r\n"),
        after_body(OK),
    ])
    .await;
    let client = up.client();
    let head = http::Request::head("/a").header("host", "gate.test").body(Empty::<Bytes>::new()).unwrap();
    let resp = client.send(head).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "1000");
    assert_eq!(text(resp).await, "");
    for status in [204, 304] {
        let resp = client.send(get("/x")).await.unwrap();
        assert_eq!((resp.status().as_u16(), text(resp).await.as_str()), (status, ""));
    }
    assert_eq!(text(client.send(get("/d")).await.unwrap()).await, "ok");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_bodies_go_out_as_declared_or_chunked() {
    let up = Scripted::start(&[after_body(OK), after_body(OK), after_body(OK)]).await;
    let client = up.client();
    let known = post(Full::new(Bytes::from_static(b"hello")));
    assert_eq!(text(client.send(known).await.unwrap()).await, "ok");
    assert!(up.request(0).ends_with("content-length: 5\r\n\r\nhello"), "{}", up.request(0));
    let unknown = post(frames(&["hel", "", "lo wor", "ld"], false));
    assert_eq!(text(client.send(unknown).await.unwrap()).await, "ok");
    assert!(
        up.request(1).ends_with("transfer-encoding: chunked\r\n\r\n3\r\nhel\r\n6\r\nlo wor\r\n2\r\nld\r\n0\r\n\r\n"),
        "{}",
        up.request(1)
    );
    let declared = http::Request::post("/p").header("content-length", "4").body(frames(&["ab", "cd"], false)).unwrap();
    assert_eq!(text(client.send(declared).await.unwrap()).await, "ok");
    assert!(up.request(2).ends_with("content-length: 4\r\n\r\nabcd"), "{}", up.request(2));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_longer_or_shorter_than_declared_is_an_error() {
    let up = Scripted::start(&[after_body(OK), after_body(OK)]).await;
    let client = up.client();
    let longer = http::Request::post("/p").header("content-length", "3").body(frames(&["ab", "cd"], false)).unwrap();
    let err = client.send(longer).await.err().expect("more than declared");
    assert!(matches!(err, Error::Request("body longer than its content-length")), "{err:?}");
    let shorter = http::Request::post("/p").header("content-length", "5").body(frames(&["ab", "cd"], false)).unwrap();
    // Without the check the upstream would wait for the fifth byte, and the client with it.
    let sent = tokio::time::timeout(Duration::from_secs(5), client.send(shorter)).await.expect("an error, not a wait");
    let err = sent.err().expect("fewer than declared");
    assert!(matches!(err, Error::Request("body shorter than its content-length")), "{err:?}");
}

/// The upstream answers after the head while the body is still coming: the response goes
/// through (no deadlock on a body that never ends), and the connection is not pooled since
/// the request never finished.
#[tokio::test]
async fn an_answer_before_the_request_body_ends_is_delivered_and_not_pooled() {
    let up = Scripted::start(&[Step {
        read_body: false,
        answer: b"HTTP/1.1 413 Too Large\r\ncontent-length: 3\r\n\r\nbig",
    }])
    .await;
    let client = up.client();
    let req = http::Request::post("/p").header("host", "gate.test").body(frames(&["part"], true)).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), client.send(req)).await.expect("no deadlock").unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(text(resp).await, "big");
    assert_eq!(client.pool.idle(), 0);
}

/// A pooled connection the upstream reset before the request: the first write fails with
/// nothing accepted, so the request is handed back unsent (with all its bytes), and goes
/// out whole on the next connection. On a fresh connection the same failure is an error.
#[tokio::test]
async fn a_first_write_refused_by_a_reset_connection_leaves_the_request_unsent() {
    for pooled in [true, false] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (peer, _) = listener.accept().unwrap();
        socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO)).unwrap();
        drop(peer);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let conn = Conn::new(stream);
        assert!(conn.is_stale(), "a reset connection is never handed out of the pool");
        let (parts, body) =
            http::Request::post("/p").body(Full::new(Bytes::from_static(b"data"))).unwrap().into_parts();
        let writer = Writer::new(&parts, body, None).unwrap();
        match exchange(conn, writer, pooled, LIMITS, false).await {
            Err(Failed::Unsent(mut writer, _)) if pooled => {
                assert!(!writer.sent);
                writer.failed = false;
                let up = Scripted::start(&[after_body(OK)]).await;
                let conn = Conn::new(TcpStream::connect(up.addr).await.unwrap());
                let Ok((head, _, _)) = exchange(conn, writer, false, LIMITS, false).await else { panic!("resent") };
                assert_eq!(head.parts.status, 200);
                assert!(up.request(0).ends_with("content-length: 4\r\n\r\ndata"), "{}", up.request(0));
            }
            Err(Failed::Error(e)) if !pooled => assert!(matches!(e, Error::Io(_)), "{e:?}"),
            Err(Failed::Unsent(_, e) | Failed::Error(e)) => panic!("pooled {pooled}: {e:?}"),
            Ok(_) => panic!("pooled {pooled}: answered"),
        }
    }
}
