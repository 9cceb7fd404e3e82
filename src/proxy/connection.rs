//! One client connection, from its first byte to its close (used by `proxy::server`).
//!
//! The first bytes decide the protocol, as hyper-util's `auto` builder does: the HTTP/2
//! preface, or HTTP/1. An HTTP/2 connection is one hyper connection for its whole life.
//!
//! HTTP/1 keep-alive connections are cheap while idle (docs/design.md §15): hyper keeps a
//! read buffer (8–16 KB) and a write buffer (8 KB) for as long as its connection lives,
//! and most keep-alive connections spend most of their life waiting for the next request.
//! So each hyper connection serves until it is idle: the [`Tap`] reports end of input
//! once every request read so far is answered and flushed, the bytes read end at a
//! request boundary — at once, or, for a client that came back within
//! [`super::tap::PARK_GRACE`] of an earlier park, once nothing has arrived for that long
//! ([`Tap::park_when_idle`]; back-to-back clients keep their hyper connection, so only a
//! request after a real pause pays for a fresh one); hyper ends the connection the way it ends
//! an idle keep-alive connection whose client left, without writing anything and without
//! shutting the socket down. The gate takes the socket back ([`http1::Connection::into_parts`]),
//! drops hyper's buffers and the tap, waits for the socket to become readable holding
//! nothing else, and starts a fresh hyper connection (and a resumed tap) for the next
//! request. To the client this is one
//! keep-alive connection: no `Connection: close`, nothing written in between, pipelined
//! bytes stay in order (any already read are handed to the next hyper connection first).
//!
//! The header read timeout keeps its meaning: it runs from the end of the previous
//! response until the next head is read, across the idle wait. `gate.drain_timeout`
//! drains as before: an idle connection closes at once, one serving a request gets
//! `Connection: close` on its response (hyper's graceful shutdown).

use std::convert::Infallible;
use std::future::{pending, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::ConnInfo;
use super::conn_watch::{ConnWatch, WatchedBody};
use super::pipeline;
use super::sniff_deadline::SniffDeadline;
use super::tap::Tap;
use super::Gate;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The listener-wide protocol settings (fixed at start).
pub struct Protocols {
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    pub header_read_timeout: Duration,
    pub max_uri_bytes: usize,
}

type Io = Tap<SniffDeadline<TcpStream>>;

/// Serves one accepted connection until it closes, or until `stop` asks for a drain.
/// `keep` is held for the connection's life and dropped with it (its slot, its count).
///
/// The returned future is the connection's tokio task, allocated once for its largest
/// state: so it holds only what an idle HTTP/1 connection needs (the socket, the
/// service's two `Arc`s, the idle wait's timer and drain signal), and everything else
/// lives in a box for as long as it is needed — the sniffing and the first busy period
/// (or an HTTP/2 connection's whole life), then one busy period at a time. Not an `async
/// fn`: its arguments would be kept next to the copies it moves on (see
/// `tests::an_idle_connection_task_stays_small`).
pub fn serve<K: Send + 'static>(
    stream: TcpStream,
    gate: Arc<Gate>,
    info: Arc<ConnInfo>,
    p: Arc<Protocols>,
    mut stop: watch::Receiver<bool>,
    keep: K,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let conn = info.clone();
    let service = service_fn(move |req| {
        let g = gate.clone();
        let c = info.clone();
        // The stream is open from here until its response body is done.
        let open = c.watch.stream();
        // Boxed per request: hyper keeps one allocation of this future's size for its
        // connection's life, and the pipeline's state is kilobytes.
        Box::pin(async move {
            let resp = pipeline::handle(g, c, req).await;
            Ok::<_, Infallible>(resp.map(|b| WatchedBody::new(b, open)))
        })
    });
    async move {
        let _keep = &keep;
        let first = Box::pin(first_period(stream, service.clone(), &conn, &p, &mut stop)).await;
        let Some(mut idle) = first else {
            return;
        };
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
            }
            let io = Tap::resumed(SniffDeadline::disarmed(idle.tcp), conn.watch.clone(), p.max_uri_bytes, idle.patient);
            // Boxed, and gone while idle: hyper's connection and everything that serves
            // it live only as long as a busy period.
            let next = Box::pin(busy(io, idle.pre, Some(idle.head_by), service.clone(), &p, &conn.watch, &mut stop));
            match next.await {
                Some(i) => idle = i,
                None => return,
            }
        }
    }
}

/// The connection's first bytes: sniffing, then HTTP/2 for the connection's whole life,
/// or HTTP/1 until its first idle end. `Some` when an HTTP/1 connection went idle.
async fn first_period<S>(
    stream: TcpStream,
    service: S,
    conn: &ConnInfo,
    p: &Protocols,
    stop: &mut watch::Receiver<bool>,
) -> Option<Idle>
where
    S: hyper::service::HttpService<hyper::body::Incoming> + Unpin + Clone,
    S::Future: Send + Unpin + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // hyper's header timer starts only once HTTP/1 is detected; the tap reads along for
    // what hyper does not report (HTTP/2 frames, raw `#`, the idle end).
    let mut io = Tap::new(SniffDeadline::new(stream, p.header_read_timeout), conn.watch.clone(), p.max_uri_bytes);
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
        http2(TokioIo::new(Rewind::new(first, io)), service, p, &conn.watch, conn.peer, stop).await;
        return None;
    }
    busy(io, first, None, service, p, &conn.watch, stop).await
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
async fn busy<S>(
    mut io: Io,
    pre: Bytes,
    head_by: Option<Instant>,
    service: S,
    p: &Protocols,
    watch: &ConnWatch,
    stop: &mut watch::Receiver<bool>,
) -> Option<Idle>
where
    S: hyper::service::HttpService<hyper::body::Incoming> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // The idle wait began `header_read_timeout` before `head_by`: a client back within
    // PARK_GRACE of it (or with pipelined bytes waiting) sends back to back.
    let back_soon = head_by.is_some_and(|by| {
        (Instant::now() + p.header_read_timeout).saturating_duration_since(by) < super::tap::PARK_GRACE
    });
    io.park_when_idle(back_soon);
    let mark = watch.requests();
    let mut conn = p.http1.serve_connection(TokioIo::new(Rewind::new(pre, io)), service);
    let mut stopping = *stop.borrow();
    if stopping {
        Pin::new(&mut conn).graceful_shutdown();
    }
    let mut head_pending = head_by.is_some();
    let head_deadline = async move {
        match head_by {
            Some(t) => tokio::time::sleep_until(t).await,
            None => pending().await,
        }
    };
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
            head_by: Instant::now() + p.header_read_timeout,
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
