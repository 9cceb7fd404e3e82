//! One client connection, from its first byte to its close (used by `proxy::server`).
//!
//! The first bytes decide the protocol, as hyper-util's `auto` builder does: the HTTP/2
//! preface, or HTTP/1. An HTTP/2 connection is one hyper connection for its whole life.
//!
//! HTTP/1 connections are served in busy periods, and hold only their socket in between
//! (docs/design.md §15: keep-alive connections spend most of their life waiting). Each
//! busy period starts on the gate's own server for the common request
//! ([`fast_path`]: a body-less `GET` or `HEAD`, parsed with `httparse` and answered
//! without hyper), which serves requests until everything read is answered — then the
//! connection waits idle again — or until a request it does not take (a body, another
//! method, HTTP/1.0, `Expect`, `Upgrade`, a raw `#`, a head it cannot parse or that runs
//! into a limit; the list is in `fast_path`'s documentation). That request and the rest of
//! the busy period go to hyper, with every byte read so far first, so hyper's answers are
//! exactly what they are without the fast path.
//!
//! hyper serves until it is idle: the [`Tap`] (fed the bytes the fast path read, then
//! reading along) reports end of input once every request read so far is answered and
//! flushed, the bytes read end at a request boundary — at once, or, for a client that came
//! back within [`super::tap::PARK_GRACE`] of an earlier idle wait, once nothing has arrived
//! for that long ([`Tap::park_when_idle`]; back-to-back clients keep their hyper
//! connection, so only a request after a real pause pays for a fresh one); hyper ends the
//! connection the way it ends an idle keep-alive connection whose client left, without
//! writing anything and without shutting the socket down. The gate takes the socket back
//! ([`http1::Connection::into_parts`]), drops hyper's buffers and the tap, waits for the
//! socket to become readable holding nothing else, and starts the next busy period. To the
//! client this is one keep-alive connection: no `Connection: close`, nothing written in
//! between, pipelined bytes stay in order (any already read are served first).
//!
//! The header read timeout keeps its meaning: it runs from the end of the sniffing or of
//! the previous response until the next head is read, across the idle wait and from the
//! fast path to hyper. `gate.drain_timeout` drains as before: an idle connection closes at
//! once, one serving a request gets `Connection: close` on its response.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::ConnInfo;
use super::conn_watch::ConnWatch;
use super::fast_path::{self, Handler, Limits, Outcome};
use super::sniff_deadline::SniffDeadline;
use super::tap::Tap;
use super::Gate;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The listener-wide protocol settings (fixed at start).
pub struct Protocols {
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    /// HTTP/1 limits, the fast path's and the tap's (hyper's own are in `http1`).
    pub limits: Limits,
}

type Io = Tap<SniffDeadline<TcpStream>>;

/// Serves one accepted connection until it closes, or until `stop` asks for a drain.
/// `keep` is held for the connection's life and dropped with it (its slot, its count).
///
/// The returned future is the connection's tokio task, allocated once for its largest
/// state: so it holds only what an idle HTTP/1 connection needs (the socket, the
/// handler's two `Arc`s, the idle wait's timer and drain signal), and everything else
/// lives in a box for as long as it is needed — the sniffing (or an HTTP/2 connection's
/// whole life), then one busy period at a time. Not an `async fn`: its arguments would be
/// kept next to the copies it moves on (see `tests::an_idle_connection_task_stays_small`).
pub fn serve<K: Send + 'static>(
    stream: TcpStream,
    gate: Arc<Gate>,
    info: Arc<ConnInfo>,
    p: Arc<Protocols>,
    mut stop: watch::Receiver<bool>,
    keep: K,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let h = Handler { gate, info };
    async move {
        let _keep = &keep;
        let first = Box::pin(first_period(stream, h.clone(), &p, &mut stop)).await;
        let Some(mut idle) = first else {
            return;
        };
        // See `Tap::park_when_idle`: the first busy period is not back soon.
        let mut back_soon = false;
        loop {
            if idle.pre.is_empty() {
                // Idle: only the socket is held until the client sends again.
                let deadline = tokio::time::sleep_until(idle.head_by);
                tokio::pin!(deadline);
                let woke = tokio::select! {
                    ready = poll_fn(|cx| idle.tcp.poll_read_ready(cx)) => ready.is_ok(),
                    () = &mut deadline => return,
                    _ = stop.changed() => false,
                };
                if !woke {
                    let _ = idle.tcp.shutdown().await;
                    return;
                }
                // The idle wait began `header_read_timeout` before `head_by`.
                let began = idle.head_by.checked_sub(p.limits.header_read_timeout).unwrap_or(idle.head_by);
                back_soon = began.elapsed() < super::tap::PARK_GRACE;
            }
            // Boxed, and gone while idle: the fast path's buffers, or hyper's connection
            // and everything that serves it, live only as long as a busy period.
            match Box::pin(period(idle, back_soon, &h, &p, &mut stop)).await {
                // Pipelined bytes waiting count as back soon; an idle wait decides anew.
                Some(i) => (idle, back_soon) = (i, true),
                None => return,
            }
        }
    }
}

/// One busy period of an HTTP/1 connection: the fast path, then hyper if a request
/// needs it. `Some` when the connection went idle.
async fn period(
    idle: Idle,
    back_soon: bool,
    h: &Handler,
    p: &Protocols,
    stop: &mut watch::Receiver<bool>,
) -> Option<Idle> {
    let _busy = h.gate.metrics.connection_busy();
    let patient = idle.patient || back_soon;
    let (tcp, pre, head_by) =
        match fast_path::serve(idle.tcp, idle.pre, idle.head_by, patient, h, &p.limits, stop).await {
            Outcome::Idle(tcp, head_by) => return Some(Idle { tcp, pre: Bytes::new(), head_by, patient }),
            Outcome::Hyper { tcp, pre, head_by } => (tcp, pre, head_by),
            Outcome::Closed => return None,
        };
    let mut io = Tap::resumed(SniffDeadline::disarmed(tcp), h.info.watch.clone(), p.limits.max_uri_bytes, patient);
    // The tap follows the bytes the fast path read as if it had read them itself.
    io.seen(&pre);
    Box::pin(busy(io, pre, head_by, back_soon, h, p, stop)).await
}

/// The connection's first bytes: sniffing, then HTTP/2 for the connection's whole life,
/// or HTTP/1: `Some` with the bytes read, for the fast path.
async fn first_period(stream: TcpStream, h: Handler, p: &Protocols, stop: &mut watch::Receiver<bool>) -> Option<Idle> {
    let _busy = h.gate.metrics.connection_busy();
    // The tap reads along for what hyper does not report (HTTP/2 frames).
    let mut io = Tap::new(
        SniffDeadline::new(stream, p.limits.header_read_timeout),
        h.info.watch.clone(),
        p.limits.max_uri_bytes,
    );
    let sniffed = tokio::select! {
        s = sniff(&mut io) => s,
        _ = stop.changed() => return None,
    };
    let (h2, first) = match sniffed {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "connection ended with error");
            return None;
        }
    };
    if h2 {
        let (watch, peer) = (h.info.watch.clone(), h.info.peer);
        http2(TokioIo::new(Rewind::new(first, io)), h, p, &watch, peer, stop).await;
        return None;
    }
    // HTTP/1: the header read timeout runs from here, as hyper's did.
    let head_by = Instant::now() + p.limits.header_read_timeout;
    Some(Idle { tcp: io.into_inner().into_inner(), pre: first, head_by, patient: false })
}

async fn http2<S>(
    io: TokioIo<Rewind<Io>>,
    service: S,
    p: &Protocols,
    watch: &ConnWatch,
    peer: std::net::SocketAddr,
    stop: &mut watch::Receiver<bool>,
) where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = p.http2.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                return;
            }
            // HTTP/2 bounds: dropping the connection closes it.
            why = watch.expired() => {
                return tracing::info!(peer = %peer, reason = why.as_str(), "HTTP/2 connection closed");
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Reads until the protocol is known (at most the 24 bytes of the HTTP/2 preface):
/// whether it is HTTP/2, and the bytes read.
async fn sniff(io: &mut Io) -> io::Result<(bool, Bytes)> {
    let mut buf = [0u8; 24];
    let mut filled = 0;
    while filled < H2_PREFACE.len() {
        let n = io.read(buf.get_mut(filled..).unwrap_or_default()).await?;
        let read = buf.get(filled..filled + n).unwrap_or_default();
        let h1 = n == 0 || read != H2_PREFACE.get(filled..filled + n).unwrap_or_default();
        filled += n;
        if h1 {
            return Ok((false, Bytes::copy_from_slice(buf.get(..filled).unwrap_or_default())));
        }
    }
    Ok((true, Bytes::copy_from_slice(&buf)))
}

/// An HTTP/1 connection between two hyper connections: all it holds while idle.
struct Idle {
    tcp: TcpStream,
    /// Bytes already read (and followed by the tap) that the next hyper connection gets
    /// first; the idle wait is skipped when there are any.
    pre: Bytes,
    /// The next head must be read by then: the header timeout runs from the end of the
    /// previous response, as on one hyper connection.
    head_by: Instant,
    /// See [`Tap::patient`].
    patient: bool,
}

/// One hyper connection, from the first request of a busy period to its idle end
/// (`Some`), or the connection's close (`None`: `Connection: close`, HTTP/1.0, an error, a
/// drain, or a head after an idle wait that came too late).
async fn busy(
    mut io: Io,
    pre: Bytes,
    head_by: Instant,
    back_soon: bool,
    h: &Handler,
    p: &Protocols,
    stop: &mut watch::Receiver<bool>,
) -> Option<Idle> {
    io.park_when_idle(back_soon);
    let watch = &h.info.watch;
    let mark = watch.requests();
    let mut conn = p.http1.serve_connection(TokioIo::new(Rewind::new(pre, io)), h.clone());
    let mut stopping = *stop.borrow();
    if stopping {
        Pin::new(&mut conn).graceful_shutdown();
    }
    let mut head_pending = true;
    let head_deadline = tokio::time::sleep_until(head_by);
    tokio::pin!(head_deadline);
    let result = loop {
        tokio::select! {
            r = poll_fn(|cx| conn.poll_without_shutdown(cx)) => break r.map(|()| true),
            _ = stop.changed(), if !stopping => {
                stopping = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            () = &mut head_deadline, if head_pending => {
                if watch.requests() == mark {
                    break Ok(false);
                }
                head_pending = false;
            }
        }
    };
    let parts = conn.into_parts();
    let (rest, mut io) = parts.io.into_inner().into_parts();
    match result {
        Err(e) => {
            tracing::debug!(error = %e, "connection ended with error");
            None
        }
        // The head after an idle wait did not arrive in time: closed without a word,
        // as hyper closes a keep-alive connection whose next head is late.
        Ok(false) => None,
        Ok(true) if io.parked() && !stopping => Some(Idle {
            pre: join(parts.read_buf, rest),
            head_by: Instant::now() + p.limits.header_read_timeout,
            patient: io.patient(),
            tcp: io.into_inner().into_inner(),
        }),
        Ok(true) => {
            // hyper ended the exchange itself and, in this mode, left the socket open.
            let _ = io.shutdown().await;
            None
        }
    }
}

/// Bytes read but not yet served: hyper's unparsed input, then what it had not read of
/// the bytes handed to it. An empty buffer holds no allocation (hyper's read buffer is
/// not kept alive through an empty view of it).
fn join(first: Bytes, then: Bytes) -> Bytes {
    match (first.is_empty(), then.is_empty()) {
        (true, true) => Bytes::new(),
        (false, true) => Bytes::copy_from_slice(&first),
        (true, false) => then,
        (false, false) => {
            let mut b = BytesMut::with_capacity(first.len() + then.len());
            b.extend_from_slice(&first);
            b.extend_from_slice(&then);
            b.freeze()
        }
    }
}

pin_project_lite::pin_project! {
    /// A stream that first yields bytes already read from it.
    pub struct Rewind<T> {
        pre: Bytes,
        #[pin]
        io: T,
    }
}

impl<T> Rewind<T> {
    pub fn new(pre: Bytes, io: T) -> Rewind<T> {
        Rewind { pre, io }
    }

    /// What was not read yet of the bytes given first, and the stream.
    pub fn into_parts(self) -> (Bytes, T) {
        (self.pre, self.io)
    }
}

impl<T: AsyncRead> AsyncRead for Rewind<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.pre.is_empty() {
            return this.io.poll_read(cx, buf);
        }
        let n = this.pre.len().min(buf.remaining());
        buf.put_slice(this.pre.get(..n).unwrap_or_default());
        this.pre.advance(n);
        Poll::Ready(Ok(()))
    }
}

super::write_passthrough!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn output_size<A, B, C, D, E, K, F>(_: fn(A, B, C, D, E, K) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The connection's future is its tokio task's size for its whole life, idle
    /// included (docs/design.md §15: ≤ 4 KB per idle keep-alive connection, everything
    /// counted). 568 bytes today (debug and release); it was 2,760 (release) while the
    /// idle wait shared an `async fn` with the tap and the sniffing, which made tokio's
    /// task 3,456 bytes per connection. With a busy period inline it is kilobytes.
    #[test]
    fn an_idle_connection_task_stays_small() {
        let size = output_size(serve::<()>);
        println!("connection future: {size} bytes");
        assert!(size <= 640, "the connection task's future is {size} bytes");
    }
}
