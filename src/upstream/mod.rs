//! The keep-alive HTTP/1.1 client to Django (the one upstream), used by `proxy::forward`.
//! Below the proxy: it knows the configuration, not the pipeline (`response::GateBody`
//! carries its [`Body`]).
//!
//! One upstream, so no pool key: idle connections wait in [`pool::Pool`] (LIFO, at most
//! `gate.upstream_pool_max_idle`, closed after `gate.upstream_pool_idle_timeout` idle),
//! each a `hyper::client::conn::http1` sender whose connection future runs as its own
//! task. A connection goes back to the pool only when its response body has been read to
//! the end ([`body::Body`]); one whose body is dropped early is closed.
//!
//! * **Connect**: `gate.upstream`'s `host:port` (resolved per connect unless it is an IP
//!   address), within `gate.upstream_connect_timeout` (resolving included), `TCP_NODELAY`,
//!   TCP keepalive after 60 s idle. Plain HTTP only (the configuration refuses others).
//! * **Request**: sent as prepared (`outbound::prepare`): origin-form target, the gate's
//!   own `Host`. The upstream address is the one the gate started with (a reload that
//!   changes `gate.upstream` takes effect at the next restart, `crate::reload`).
//! * **A stale pooled connection**: the upstream may close an idle keep-alive connection
//!   just as the gate picks it. A request that such a connection hands back unsent
//!   (`try_send_request`) is sent once more on a fresh connection; a request that was
//!   sent, even partly, is never repeated.

mod body;
mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::{http1, TrySendError};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use body::Body;
use pool::Pool;

use crate::config::GateConfig;

/// TCP keepalive probes start after this long without traffic on an upstream socket.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

type Sender = http1::SendRequest<Incoming>;

/// The client to the upstream, built once at start.
pub struct Upstream {
    /// `host:port` of `gate.upstream`.
    addr: String,
    connect_timeout: Duration,
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
    #[error(transparent)]
    Http(#[from] hyper::Error),
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
            pool: Pool::start(cfg.upstream_pool_max_idle, cfg.upstream_pool_idle_timeout),
        }
    }

    /// Sends `req` (origin-form target, `Host` set) on an idle connection or a new one.
    pub async fn send(&self, req: Request<Incoming>) -> Result<Response<Body>, Error> {
        let req = match self.pool.checkout() {
            Some(tx) => match self.exchange(tx, req).await {
                Ok(resp) => return Ok(resp),
                // The idle connection closed before it took the request: nothing was
                // sent, so the request goes once more, on a fresh connection.
                Err(mut e) => match e.take_message() {
                    Some(req) => req,
                    None => return Err(Error::Http(e.into_error())),
                },
            },
            None => req,
        };
        let tx = self.connect().await?;
        self.exchange(tx, req).await.map_err(|e| Error::Http(e.into_error()))
    }

    async fn exchange(
        &self,
        mut tx: Sender,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, TrySendError<Request<Incoming>>> {
        let resp = tx.try_send_request(req).await?;
        // A `101` leaves the connection to a protocol switch: never pooled.
        let keep = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then_some(tx);
        Ok(resp.map(|inner| Body::new(inner, keep, &self.pool)))
    }

    /// A new connection, its connection future spawned.
    async fn connect(&self) -> Result<Sender, Error> {
        let stream = match tokio::time::timeout(self.connect_timeout, tcp_connect(&self.addr)).await {
            Ok(stream) => stream.map_err(Error::Connect)?,
            Err(_elapsed) => return Err(Error::ConnectTimeout),
        };
        let (tx, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection closed with an error");
            }
        });
        Ok(tx)
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
mod tests;
