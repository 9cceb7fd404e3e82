//! The keep-alive HTTP/1.1 client to Django (the one upstream), used by `proxy::forward`.
//! Below the proxy: it knows the configuration, not the pipeline (`response::GateBody`
//! carries its [`Body`]).
//!
//! The gate's own client, with no task of its own: the request's task writes the request
//! and reads the response head ([`conn::exchange`]), and whoever polls the response body
//! (hyper's server, in the client connection's task) reads the body off the socket. One
//! upstream, so no pool key: idle connections (a socket and its read buffer) wait in
//! [`pool::Pool`] (LIFO, at most `gate.upstream_pool_max_idle`, closed after
//! `gate.upstream_pool_idle_timeout` idle). A connection goes back to the pool only when
//! its response body was read to the end, nothing more arrived, the response did not say
//! `Connection: close` and the whole request went out ([`body::Body`]); one whose body is
//! dropped early is closed.
//!
//! * **Connect**: `gate.upstream`'s `host:port` (resolved per connect unless it is an IP
//!   address), within `gate.upstream_connect_timeout` (resolving included), `TCP_NODELAY`,
//!   TCP keepalive after 60 s idle. Plain HTTP only (the configuration refuses others).
//! * **Request**: sent as prepared (`outbound::prepare`): origin-form target, the gate's
//!   own `Host`. The upstream address is the one the gate started with (a reload that
//!   changes `gate.upstream` takes effect at the next restart, `crate::reload`). The head
//!   (and the body's first frame if it is already there) goes out in one vectored write;
//!   a body with a `Content-Length` (declared, or known) goes as is and must have exactly
//!   that many bytes, one of unknown length goes chunked ([`codec::encode_head`]). The
//!   body is written while the response is read: an upstream may answer first.
//! * **Response** ([`codec::parse_head`]): head within `gate.max_header_bytes` and
//!   `gate.max_headers` (as for clients' requests); interim `1xx` answers skipped, `101`
//!   passed up (`forward` refuses it). Body framing as RFC 9112 §6.3 says; a response with
//!   both `Transfer-Encoding` and `Content-Length`, or with differing lengths, is refused
//!   (a 502), never guessed at.
//! * **A stale pooled connection**: the upstream may close an idle keep-alive connection
//!   just as the gate picks it. Checkout looks at each pooled socket without blocking
//!   ([`conn::Conn::is_stale`]) and drops one that is closed or has anything to read. A
//!   request whose first write on a pooled connection fails with the upstream gone and
//!   nothing accepted is sent once more on a fresh connection; a request that was sent,
//!   even partly, is never repeated.

mod body;
mod codec;
mod conn;
mod pool;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use tokio::net::TcpStream;

pub use body::Body;
use codec::Limits;
use conn::{Conn, Failed, Writer};
use pool::Pool;

use crate::config::GateConfig;

/// TCP keepalive probes start after this long without traffic on an upstream socket.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A request body's error, whatever the body type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client to the upstream, built once at start.
pub struct Upstream {
    /// `host:port` of `gate.upstream`.
    addr: String,
    connect_timeout: Duration,
    limits: Limits,
    pool: Arc<Pool>,
}

/// Why an upstream request failed; the client never sees the text. The gate answers a
/// connect failure ([`Error::is_connect`]) and any other failure alike (502) and counts
/// them apart (`prt_gate_upstream_errors_total{kind}`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the upstream: {0}")]
    Connect(std::io::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("upstream connection failed: {0}")]
    Io(std::io::Error),
    #[error("the upstream closed the connection before the response ended")]
    Closed,
    #[error("malformed upstream response: {0}")]
    Parse(httparse::Error),
    #[error("malformed upstream response: {0}")]
    Malformed(&'static str),
    #[error("upstream response head or chunk line too large")]
    TooLarge,
    #[error("request not sendable: {0}")]
    Request(&'static str),
    #[error("request body failed: {0}")]
    RequestBody(BoxError),
}

impl Error {
    /// No connection could be made (refused, unresolvable, timed out); otherwise the
    /// connection failed during the exchange or the upstream's answer was not HTTP.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_) | Error::ConnectTimeout)
    }
}

impl Upstream {
    /// The client for `cfg.upstream`; starts the pool's idle sweep (needs a runtime).
    pub fn new(cfg: &GateConfig) -> Upstream {
        Upstream {
            addr: cfg.upstream.addr_hint.clone(),
            connect_timeout: cfg.upstream_connect_timeout,
            limits: Limits { max_head: cfg.max_header_bytes, max_headers: cfg.max_headers },
            pool: Pool::start(cfg.upstream_pool_max_idle, cfg.upstream_pool_idle_timeout),
        }
    }

    /// Sends `req` (origin-form target, `Host` set) on an idle connection or a new one.
    pub async fn send<B>(&self, req: Request<B>) -> Result<Response<Body>, Error>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, mut body) = req.into_parts();
        // The body's first frame, if it is there already, goes out with the head.
        let first = poll_fn(|cx| {
            Poll::Ready(match http_body::Body::is_end_stream(&body) {
                true => Ok(None),
                false => match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => Ok(Some(frame)),
                    Poll::Ready(Some(Err(e))) => Err(Error::RequestBody(e.into())),
                    Poll::Ready(None) | Poll::Pending => Ok(None),
                },
            })
        })
        .await?;
        let head_request = parts.method == Method::HEAD;
        let mut writer = Writer::new(&parts, body, first)?;
        if let Some(conn) = self.pool.checkout() {
            match conn::exchange(conn, writer, true, self.limits, head_request).await {
                Ok(done) => return Ok(self.response(done)),
                // The idle connection was closed by the upstream before it took a byte:
                // nothing was sent, so the request goes once more, on a fresh connection.
                Err(Failed::Unsent(unsent, e)) => {
                    tracing::debug!(error = %e, "pooled upstream connection closed; sending on a new one");
                    writer = unsent;
                    writer.failed = false;
                }
                Err(Failed::Error(e)) => return Err(e),
            }
        }
        let conn = self.connect().await?;
        match conn::exchange(conn, writer, false, self.limits, head_request).await {
            Ok(done) => Ok(self.response(done)),
            Err(Failed::Unsent(_, e) | Failed::Error(e)) => Err(e),
        }
    }

    fn response<B>(&self, (head, conn, writer): (codec::Head, Conn, Writer<B>)) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        // A `101` leaves the connection to a protocol switch: never pooled.
        let reusable = head.reusable && head.parts.status != StatusCode::SWITCHING_PROTOCOLS;
        let body = Body::new(conn, head.framing, reusable, writer, self.limits, &self.pool);
        Response::from_parts(head.parts, body)
    }

    /// A new connection.
    async fn connect(&self) -> Result<Conn, Error> {
        match tokio::time::timeout(self.connect_timeout, tcp_connect(&self.addr)).await {
            Ok(stream) => Ok(Conn::new(stream.map_err(Error::Connect)?)),
            Err(_elapsed) => Err(Error::ConnectTimeout),
        }
    }
}

/// Connects to `addr` (`host:port`): directly when the host is an IP address, else to each
/// resolved address in turn until one accepts. Sets `TCP_NODELAY` and TCP keepalive.
async fn tcp_connect(addr: &str) -> std::io::Result<TcpStream> {
    let stream = match addr.parse::<SocketAddr>() {
        Ok(ip) => TcpStream::connect(ip).await?,
        Err(_) => {
            let mut last = None;
            let mut found = None;
            for ip in tokio::net::lookup_host(addr).await? {
                match TcpStream::connect(ip).await {
                    Ok(stream) => {
                        found = Some(stream);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match (found, last) {
                (Some(stream), _) => stream,
                (None, Some(e)) => return Err(e),
                (None, None) => return Err(std::io::Error::other("the upstream host resolved to no address")),
            }
        }
    };
    // Failing options leave a working connection, as hyper-util's connector did: logged only.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "upstream socket: TCP_NODELAY not set");
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "upstream socket: TCP keepalive not set");
    }
    Ok(stream)
}

#[cfg(test)]
mod exchange_tests;
#[cfg(test)]
mod tests;
