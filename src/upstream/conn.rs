//! One upstream connection and one exchange on it, driven by the request's own task: the
//! socket and its read buffer ([`Conn`]), the request writer ([`Writer`]: head, then the
//! body framed as declared) and [`exchange`], which writes the request and reads the
//! response head at the same time (an upstream may answer before it has read the whole
//! body). No task of its own: whoever polls the exchange, then the response body, moves
//! the bytes.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::codec::{self, Head, Limits, Outgoing};
use super::{BoxError, Error};

/// Read buffer: allocated this large, and refilled to at least this much room.
const READ_BUF: usize = 8 * 1024;
/// A larger body is read in pieces up to this size.
const READ_MAX: usize = 64 * 1024;

/// A connection to the upstream: the socket and the bytes read but not used yet (empty
/// between exchanges).
pub struct Conn {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn { stream, buf: BytesMut::with_capacity(READ_BUF) }
    }

    /// A non-blocking look at the socket (one `recv(MSG_PEEK)`): true when the upstream
    /// has closed it, it failed, or the upstream sent something nobody asked for. An idle
    /// connection is only good while it has nothing to read.
    pub fn is_stale(&self) -> bool {
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(&self.stream).peek(&mut probe) {
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            Ok(_) => true,
        }
    }

    /// Reads what the socket has into the buffer, with room for at least `want` bytes
    /// (bounded by [`READ_BUF`] and [`READ_MAX`]); `Ok(0)` is the end of the stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>, want: u64) -> Poll<io::Result<usize>> {
        let room = usize::try_from(want).unwrap_or(READ_MAX).clamp(READ_BUF, READ_MAX);
        if self.buf.capacity() - self.buf.len() < room / 2 {
            self.buf.reserve(room);
        }
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read),
            }
        }
    }
}

/// The request on its way out: bytes due (`segs`, written in order with one vectored
/// write), then the rest of the body.
pub struct Writer<B> {
    /// Head or chunk-size line, data, chunk end: written in this order.
    segs: [Bytes; 3],
    /// The body while it may still have frames.
    body: Option<B>,
    outgoing: Outgoing,
    /// The socket has accepted at least one byte of this request.
    pub sent: bool,
    /// Writing failed: the rest of the request never goes out.
    pub failed: bool,
}

impl<B> Writer<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// The request head for `parts` and, after it in the same write, `first` (the body's
    /// first frame if it was ready at once).
    pub fn new(parts: &http::request::Parts, body: B, first: Option<Frame<Bytes>>) -> Result<Writer<B>, Error> {
        let ended = http_body::Body::is_end_stream(&body);
        let first = first.and_then(|f| f.into_data().ok()).filter(|d| !d.is_empty());
        let first_len = first.as_ref().map_or(0, |d| d.len() as u64);
        // The first frame is already out of the body: it counts towards the length.
        let exact = http_body::Body::size_hint(&body).exact().map(|n| n + first_len);
        let (mut head, outgoing) = codec::encode_head(parts, ended && first.is_none(), exact, 18)?;
        let mut writer = Writer {
            segs: [Bytes::new(), Bytes::new(), Bytes::new()],
            body: (!ended).then_some(body),
            outgoing,
            sent: false,
            failed: false,
        };
        let (data, tail) = match first {
            Some(data) => {
                let (line, data, tail) = writer.frame(data)?;
                head.extend_from_slice(line.as_ref());
                (data, tail)
            }
            None => (Bytes::new(), Bytes::new()),
        };
        writer.segs = [Bytes::from(head), data, tail];
        if writer.body.is_none() {
            writer.finish()?;
        }
        Ok(writer)
    }

    /// Everything is written: head and the whole body.
    pub fn is_done(&self) -> bool {
        !self.failed && self.body.is_none() && self.segs.iter().all(Bytes::is_empty)
    }

    /// Writes what is due and pulls the body's next frames until the socket or the body
    /// has to wait, or all is written. After an error it writes nothing more.
    pub fn poll_write(&mut self, stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.failed {
            return Poll::Ready(Err(Error::Request("the request could not be written")));
        }
        let result = ready!(self.poll_write_inner(stream, cx));
        self.failed = result.is_err();
        Poll::Ready(result)
    }

    fn poll_write_inner(&mut self, stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            ready!(self.poll_segs(stream, cx)).map_err(Error::Io)?;
            let Some(body) = self.body.as_mut() else { return Poll::Ready(Ok(())) };
            match ready!(Pin::new(body).poll_frame(cx)) {
                None => {
                    self.body = None;
                    self.finish()?;
                }
                Some(Err(e)) => return Poll::Ready(Err(Error::RequestBody(e.into()))),
                Some(Ok(frame)) => {
                    // Trailers are not forwarded.
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    let (line, data, tail) = self.frame(data)?;
                    self.segs = [Bytes::copy_from_slice(line.as_ref()), data, tail];
                    if self.body.as_ref().is_some_and(http_body::Body::is_end_stream) {
                        self.body = None;
                        self.finish()?;
                    }
                }
            }
        }
    }

    /// Frames one data piece: the chunk-size line (chunked only), the data, the chunk end.
    fn frame(&mut self, data: Bytes) -> Result<(ChunkLine, Bytes, Bytes), Error> {
        match &mut self.outgoing {
            Outgoing::Length(left) => {
                *left =
                    left.checked_sub(data.len() as u64).ok_or(Error::Request("body longer than its content-length"))?;
                Ok((ChunkLine::default(), data, Bytes::new()))
            }
            Outgoing::Chunked => Ok((ChunkLine::new(data.len()), data, Bytes::from_static(b"\r\n"))),
            Outgoing::Empty => Err(Error::Request("body on a request without one")),
        }
    }

    /// The body ended: a length must be complete; a chunked body gets its last chunk.
    fn finish(&mut self) -> Result<(), Error> {
        match self.outgoing {
            Outgoing::Length(0) | Outgoing::Empty => Ok(()),
            Outgoing::Length(_) => Err(Error::Request("body shorter than its content-length")),
            Outgoing::Chunked => {
                self.outgoing = Outgoing::Empty;
                self.last_chunk();
                Ok(())
            }
        }
    }

    /// Adds the last chunk after what is due: alone, or after the chunk end that is.
    fn last_chunk(&mut self) {
        self.segs[2] = match self.segs[2].is_empty() {
            true => Bytes::from_static(b"0\r\n\r\n"),
            false => Bytes::from_static(b"\r\n0\r\n\r\n"),
        };
    }

    /// Writes the due segments, one vectored write per round.
    fn poll_segs(&mut self, stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let due = [IoSlice::new(&self.segs[0]), IoSlice::new(&self.segs[1]), IoSlice::new(&self.segs[2])];
            if due.iter().all(|s| s.is_empty()) {
                return Poll::Ready(Ok(()));
            }
            let mut n = ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &due))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent = true;
            for seg in &mut self.segs {
                let take = n.min(seg.len());
                seg.advance(take);
                n -= take;
            }
        }
    }

    /// The writer with its body boxed, to travel in the response body.
    pub fn boxed(self) -> Writer<BoxedBody>
    where
        B: Send + 'static,
    {
        use http_body_util::BodyExt;
        Writer {
            segs: self.segs,
            body: self.body.map(|b| b.map_err(Into::into).boxed_unsync()),
            outgoing: self.outgoing,
            sent: self.sent,
            failed: self.failed,
        }
    }
}

/// A request body still being written after the response head arrived.
pub type BoxedBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A chunk-size line, on the stack.
#[derive(Default)]
struct ChunkLine {
    buf: [u8; 18],
    len: usize,
}

impl ChunkLine {
    fn new(size: usize) -> ChunkLine {
        let mut buf = [0u8; 18];
        let len = codec::chunk_line(size, &mut buf).len();
        ChunkLine { buf, len }
    }
}

impl AsRef<[u8]> for ChunkLine {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.buf.len() - self.len..]
    }
}

/// How an exchange ended before a response head.
pub enum Failed<B> {
    /// Not one byte of the request reached the connection, which the upstream had closed:
    /// the request can go again, on another connection.
    Unsent(Writer<B>, Error),
    Error(Error),
}

/// Writes the request on `conn` and reads the response head, both as far as they can go
/// each time the task is woken; skips interim responses (`1xx` but `101`). `pooled`: the
/// connection served an earlier exchange (only then can a failure leave the request
/// [`Failed::Unsent`]).
pub async fn exchange<B>(
    mut conn: Conn,
    mut writer: Writer<B>,
    pooled: bool,
    limits: Limits,
    head_request: bool,
) -> Result<(Head, Conn, Writer<B>), Failed<B>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    // A write the upstream's socket refused after part of the request went out: the answer
    // may still come (an upstream that refuses a body answers and closes); if none does,
    // this is the error.
    let mut write_error = None;
    let head = poll_fn(|cx| {
        if !writer.failed && !writer.is_done() {
            match writer.poll_write(&mut conn.stream, cx) {
                // Nothing went out, or the request itself is broken: no answer to wait for.
                Poll::Ready(Err(e)) if !writer.sent || !matches!(e, Error::Io(_)) => return Poll::Ready(Err(e)),
                Poll::Ready(Err(e)) => write_error = Some(e),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        loop {
            // Parsed only when there are bytes: most heads arrive in one read.
            while !conn.buf.is_empty() {
                match codec::parse_head(&mut conn.buf, limits, head_request)? {
                    Some(head) if head.parts.status.is_informational() && head.parts.status != 101 => {}
                    Some(head) => return Poll::Ready(Ok(head)),
                    None => break,
                }
            }
            match ready!(conn.poll_fill(cx, 0)) {
                Ok(0) => return Poll::Ready(Err(write_error.take().unwrap_or(Error::Closed))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(write_error.take().unwrap_or(Error::Io(e)))),
            }
        }
    })
    .await;
    match head {
        Ok(head) => Ok((head, conn, writer)),
        Err(e) if pooled && !writer.sent && peer_closed(&e) => Err(Failed::Unsent(writer, e)),
        Err(e) => Err(Failed::Error(e)),
    }
}

/// The error of a first write on a connection the upstream had already closed.
fn peer_closed(e: &Error) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, NotConnected};
    matches!(e, Error::Io(io) if matches!(io.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected))
}
