//! Reads along with hyper: an I/O wrapper that looks at the bytes a client sends, without
//! changing them, and tells the connection's [`ConnWatch`] what hyper does not.
//!
//! * The first bytes decide the protocol, like hyper-util's `auto` builder: the HTTP/2
//!   preface, or HTTP/1.
//! * HTTP/2: frame headers are followed (nine bytes, then the payload is skipped) to know
//!   when a header block is open: a `HEADERS` or `PUSH_PROMISE` frame without
//!   `END_HEADERS` until the `CONTINUATION` that carries it.
//! * HTTP/1: request lines are read as they arrive; a line `METHOD SP target SP HTTP/…`
//!   whose target holds a raw `#` is reported with the target before the `#`. Heads are
//!   followed to the empty line, and the body is skipped by its framing (`Content-Length`,
//!   or the chunks of a chunked body up to its trailer's empty line), so the next request
//!   line is found where it starts.
//! * HTTP/1 idle end ([`Tap::park_when_idle`]): once every request read so far has been
//!   answered and flushed, and the bytes read end exactly at a request boundary, a read
//!   that would wait instead reports end of input — at once, or, on a connection whose
//!   client came back within [`PARK_GRACE`] of an earlier park, once no byte has arrived
//!   for that long (back-to-back keep-alive clients stop paying for a new hyper connection
//!   per request; a connection that really idles still parks). hyper then ends its connection as it
//!   ends an idle keep-alive connection whose client left, without writing anything, and
//!   `proxy::connection` keeps the socket and frees hyper's buffers until the client
//!   sends again.
//!
//! The bytes are read by [`scanner::Scanner`] (`tap/scanner.rs`). Memory per connection:
//! the method and target of the request line being read, the target up to
//! `gate.max_uri_bytes` (a longer one gets 414 from the pipeline anyway). A parked
//! connection holds no tap at all: `proxy::connection` keeps only the socket and starts a
//! resumed tap ([`Tap::resumed`]) for the next busy period. Used only by `proxy::connection`.

mod scanner;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::conn_watch::ConnWatch;
use scanner::Scanner;

/// The grace of a connection whose client has shown it sends back to back: it parks only
/// after this long idle (everything answered, nothing arriving). Parking frees hyper's
/// buffers, but the next request then builds a fresh hyper connection (~7.5k instructions
/// under callgrind), so a client that came back within this time after a park keeps its
/// hyper connection from then on, until it really idles. A connection that has not shown
/// it (most: one page load, then silence) parks at once, holding no buffers a moment
/// longer: a grace for every connection left the idle bench (10,000 clients arriving one
/// after another, each making one request) at 4.15 KB per connection with 10 ms and 5.00
/// KB with 100 ms, against 3.93 KB parking at once (heap high-water mark).
pub const PARK_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

pin_project_lite::pin_project! {
    /// An I/O stream whose incoming bytes are followed by a [`Scanner`].
    pub struct Tap<T> {
        #[pin]
        io: T,
        scanner: Scanner,
        park: Park,
    }
}

/// The idle end of one hyper HTTP/1 connection (see the module documentation).
#[derive(Debug, Default)]
struct Park {
    /// The grace timer: allocated at the first idle moment of a hyper connection, reset at
    /// each later one, dropped when the connection parks (a parked connection holds none).
    grace: Option<Pin<Box<Sleep>>>,
    /// The grace timer runs for the current idle moment (reset on entering it; a timer
    /// left from an earlier moment is never trusted).
    idling: bool,
    /// Armed for the current hyper connection.
    armed: bool,
    /// Requests the watch had counted when the hyper connection started.
    mark: u64,
    /// Written since the last completed flush.
    unflushed: bool,
    /// End of input was reported to hyper.
    parked: bool,
    /// The client came back within [`PARK_GRACE`] of a park: idle moments get the grace.
    patient: bool,
}

impl<T> Tap<T> {
    pub fn new(io: T, watch: Arc<ConnWatch>, max_target: usize) -> Tap<T> {
        Tap { io, scanner: Scanner::new(watch, max_target), park: Park::default() }
    }

    /// A tap for an HTTP/1 connection resumed after an idle wait: at a request boundary,
    /// with what the connection showed about its client (`patient`: see [`Tap::patient`]).
    pub fn resumed(io: T, watch: Arc<ConnWatch>, max_target: usize, patient: bool) -> Tap<T> {
        Tap { io, scanner: Scanner::resumed(watch, max_target), park: Park { patient, ..Park::default() } }
    }

    /// Bytes read from the stream by someone else (the fast path), which the stream's
    /// reader gets first: followed as if read through the tap.
    pub fn seen(&mut self, bytes: &[u8]) {
        self.scanner.feed(bytes);
    }

    /// The stream, for the next busy period or the idle wait.
    pub fn into_inner(self) -> T {
        self.io
    }

    /// A new hyper HTTP/1 connection starts on this stream: once it has answered at least
    /// one request and is idle, report end of input instead of waiting. `back_soon`: the
    /// client's request came within [`PARK_GRACE`] of the last park (the connection keeps
    /// no clock of its own for that; `proxy::connection` knows when the idle wait began).
    pub fn park_when_idle(&mut self, back_soon: bool) {
        self.park = Park {
            grace: None,
            idling: false,
            armed: true,
            mark: self.scanner.watch.requests(),
            unflushed: false,
            parked: false,
            patient: self.park.patient || back_soon,
        };
    }

    /// Whether the hyper connection ended because this stream reported its idle end (the
    /// client did not leave; the socket stays open).
    pub fn parked(&self) -> bool {
        self.park.parked
    }

    /// Whether the client came back within [`PARK_GRACE`] of a park: it keeps its hyper
    /// connection through idle moments shorter than that.
    pub fn patient(&self) -> bool {
        self.park.patient
    }
}

impl<T: AsyncRead> AsyncRead for Tap<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        let park = this.park;
        match polled {
            Poll::Ready(Ok(())) => {
                park.idling = false;
                this.scanner.feed(buf.filled().get(before..).unwrap_or_default());
            }
            Poll::Pending
                if park.armed
                    && !park.unflushed
                    && this.scanner.at_boundary()
                    && this.scanner.watch.answered_since(park.mark) =>
            {
                // Idle: park now, or (a client that sends back to back) once the idle
                // moment has lasted PARK_GRACE; the timer then wakes this task, so hyper
                // reads again and gets here.
                let waited = if park.patient {
                    let deadline = Instant::now() + PARK_GRACE;
                    let grace = park.grace.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if !park.idling {
                        grace.as_mut().reset(deadline);
                        park.idling = true;
                    }
                    grace.as_mut().poll(cx).is_ready()
                } else {
                    true
                };
                if waited {
                    park.armed = false;
                    park.parked = true;
                    park.idling = false;
                    park.grace = None;
                    return Poll::Ready(Ok(()));
                }
            }
            _ => park.idling = false,
        }
        polled
    }
}

// Writes pass straight through; the tap only notes whether they were flushed.
impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for Tap<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        this.park.unflushed = true;
        this.io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flushed = this.io.poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.park.unflushed = false;
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        this.park.unflushed = true;
        this.io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
