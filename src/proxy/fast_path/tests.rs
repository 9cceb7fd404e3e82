//! The fast path's own rules: which heads it takes (and what it leaves in the buffer),
//! and how it frames what it writes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;

const LIMITS: Limits =
    Limits { header_read_timeout: Duration::from_secs(5), max_headers: 100, max_header_bytes: 8192, max_uri_bytes: 64 };

fn parsed(bytes: &[u8]) -> (Head, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    let head = parse(&mut buf, &LIMITS);
    (head, buf)
}

/// Whether `bytes` are handed to hyper, every byte still in the buffer.
fn for_hyper(bytes: &[u8]) -> bool {
    let (head, buf) = parsed(bytes);
    matches!(head, Head::Hyper) && buf[..] == *bytes
}

#[test]
fn a_get_is_taken_and_pipelined_bytes_stay() {
    let (head, buf) = parsed(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\nGET /next HTTP/1.1\r\n");
    let Head::Take(req, close) = head else { panic!("not taken") };
    assert!(!close);
    assert_eq!((req.method(), req.uri().to_string(), req.version()), (&Method::GET, "/a?b=1".into(), Version::HTTP_11));
    assert_eq!(req.headers().get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(req.headers().get("host").unwrap(), "x");
    assert_eq!(&buf[..], b"GET /next HTTP/1.1\r\n");

    let (head, buf) =
        parsed(b"HEAD http://x/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: keep-alive, Close\r\n\r\n");
    let Head::Take(req, close) = head else { panic!("not taken") };
    assert!(close, "Connection: close not seen");
    assert_eq!((req.method(), req.uri().to_string()), (&Method::HEAD, "http://x/a".into()));
    assert!(buf.is_empty());
}

#[test]
fn a_partial_head_waits_with_its_bytes() {
    let (head, buf) = parsed(b"GET /a HTTP/1.1\r\nHost:");
    assert!(matches!(head, Head::Partial));
    assert_eq!(&buf[..], b"GET /a HTTP/1.1\r\nHost:");
}

#[test]
fn every_disqualifier_goes_to_hyper() {
    let cases: &[&[u8]] = &[
        // A body, or framing the fast path does not follow.
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: identity\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 00\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n",
        // Other methods, versions and target forms.
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        // A raw `#` (the tap reports it to the pipeline), an over-long target.
        b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n\r\n",
        // What httparse refuses: obs-fold, a control byte, a bad name.
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\x01\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let taken: Vec<_> = cases.iter().filter(|c| !for_hyper(c)).map(|c| String::from_utf8_lossy(c)).collect();
    assert!(taken.is_empty(), "taken by the fast path: {taken:#?}");
}

#[test]
fn heads_past_the_limits_go_to_hyper() {
    let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(for_hyper(&many), "more header lines than parsed");

    let mut long = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
    long.resize(LIMITS.max_header_bytes + 1, b'a');
    long.extend_from_slice(b"\r\n\r\n");
    assert!(for_hyper(&long), "a head over max_header_bytes");
}

/// A body whose frames and size hint are given (it may lie about its length).
struct Given {
    frames: VecDeque<Result<Bytes, ()>>,
    hint: Option<u64>,
}

impl Given {
    fn new(frames: &[&'static [u8]], hint: Option<u64>) -> Given {
        Given { frames: frames.iter().map(|f| Ok(Bytes::from_static(f))).collect(), hint }
    }
}

impl http_body::Body for Given {
    type Data = Bytes;
    type Error = ();

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ()>>> {
        Poll::Ready(self.frames.pop_front().map(|f| f.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        self.hint.map_or_else(SizeHint::new, SizeHint::with_exact)
    }
}

/// What `respond::write` writes for `resp`, whether it kept the connection, and whether
/// the client then saw the end of input (`keep == false` closes by dropping the stream).
async fn written(resp: Response<Given>, head: bool, close: bool) -> (String, bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let keep = respond::write(&mut server, &mut Vec::new(), resp, head, close).await;
    drop(server);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    let text = String::from_utf8(got).unwrap();
    // The date changes; everything else is fixed.
    let text = text.lines().filter(|l| !l.starts_with("date: ")).collect::<Vec<_>>().join("\n");
    (text, keep)
}

fn resp(status: u16, headers: &[(&'static str, &'static str)], body: Given) -> Response<Given> {
    let mut r = Response::new(body);
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().append(*k, HeaderValue::from_static(v));
    }
    r
}

#[tokio::test]
async fn bodies_are_framed_by_their_length_or_chunked() {
    let exact = resp(200, &[("x-a", "1")], Given::new(&[b"hel", b"lo"], Some(5)));
    assert_eq!(
        written(exact, false, false).await,
        ("HTTP/1.1 200 OK\nx-a: 1\ncontent-length: 5\n\nhello".into(), true)
    );

    let chunked = resp(404, &[("transfer-encoding", "gzip")], Given::new(&[b"hel", b"", b"lo!"], None));
    let want = "HTTP/1.1 404 Not Found\ntransfer-encoding: chunked\n\n3\nhel\n3\nlo!\n0\n";
    assert_eq!(written(chunked, false, false).await, (want.into(), true));

    // An unknown length with the response's own single Content-Length keeps it.
    let declared = resp(200, &[("content-length", "2")], Given::new(&[b"o", b"k"], None));
    assert_eq!(written(declared, false, false).await, ("HTTP/1.1 200 OK\ncontent-length: 2\n\nok".into(), true));
}

#[tokio::test]
async fn a_body_off_its_declared_length_closes_the_connection() {
    // Short: what was written goes out, then the connection ends.
    let short = resp(200, &[], Given::new(&[b"abc"], Some(10)));
    assert_eq!(written(short, false, false).await, ("HTTP/1.1 200 OK\ncontent-length: 10\n\nabc".into(), false));
    // Long: never a byte past the declared length.
    let long = resp(200, &[("content-length", "3")], Given::new(&[b"ab", b"cdef"], None));
    assert_eq!(written(long, false, false).await, ("HTTP/1.1 200 OK\ncontent-length: 3\n\nab".into(), false));
    // A failing body.
    let mut failing = Given::new(&[b"ab"], None);
    failing.frames.push_back(Err(()));
    let (text, keep) = written(resp(200, &[], failing), false, false).await;
    assert_eq!((text.as_str(), keep), ("HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n2\nab", false));
}

#[tokio::test]
async fn head_204_and_304_get_no_body_bytes() {
    let head = resp(200, &[], Given::new(&[b"hello"], Some(5)));
    assert_eq!(written(head, true, false).await, ("HTTP/1.1 200 OK\ncontent-length: 5\n".into(), true));
    let no_content = resp(204, &[("content-length", "0")], Given::new(&[b"x"], Some(1)));
    assert_eq!(written(no_content, false, false).await, ("HTTP/1.1 204 No Content\n".into(), true));
    let not_modified = resp(304, &[("content-length", "7")], Given::new(&[], Some(0)));
    assert_eq!(
        written(not_modified, false, false).await,
        ("HTTP/1.1 304 Not Modified\ncontent-length: 7\n".into(), true)
    );
}

#[tokio::test]
async fn a_closing_connection_says_so() {
    let asked = resp(200, &[], Given::new(&[b"ok"], Some(2)));
    assert_eq!(
        written(asked, false, true).await,
        ("HTTP/1.1 200 OK\ncontent-length: 2\nconnection: close\n\nok".into(), false)
    );
    // The response's own `Connection: close` ends the connection too.
    let own = resp(200, &[("connection", "close")], Given::new(&[b"ok"], Some(2)));
    assert_eq!(
        written(own, false, false).await,
        ("HTTP/1.1 200 OK\nconnection: close\ncontent-length: 2\n\nok".into(), false)
    );
}
