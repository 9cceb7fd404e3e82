//! The public listener: accept, configure each connection, drain on shutdown.
//!
//! HTTP/1.1 and prior-knowledge HTTP/2 (h2c) on the same port; each accepted
//! connection is served by `proxy::connection` (protocol sniffing, and HTTP/1
//! keep-alive connections that hold no hyper buffers while idle). Limits
//! (design §13): header read timeout, header buffer size and header count for
//! HTTP/1; header list size, stream concurrency, and the first-request, idle
//! and header-block deadlines of `conn_watch` for HTTP/2. Bodies are
//! streamed, never buffered.
//!
//! `gate.max_connections` caps concurrent client connections. At the cap the
//! gate stops calling `accept`: new connections wait in the kernel's listen
//! backlog (and are served in order as others close) instead of being
//! accepted and reset. Clients beyond the backlog see their SYN dropped or
//! refused by the kernel and retry; nothing already accepted is disturbed.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::conn::ConnInfo;
use super::conn_watch::{ConnWatch, H2Limits};
use super::connection::{self, Protocols};
use super::fast_path::Limits;
use super::Gate;
use crate::metrics::Metrics;

/// A connection's place under `gate.max_connections` and in the metrics' count, given
/// back when its task ends (dropped with the task's future).
struct Slot {
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// Serves until `shutdown` resolves, then stops accepting and waits up to
/// `gate.drain_timeout` for in-flight requests. Returns whether the drain
/// completed in time.
pub async fn serve(gate: Arc<Gate>, listener: TcpListener, shutdown: impl Future<Output = ()>) -> bool {
    // Listener-level settings are fixed at start (a reload logs that they
    // need a restart).
    let config = gate.live.get();
    let cfg = &config.gate;
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_headers(cfg.max_headers)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    let protocols = Arc::new(Protocols {
        http1: h1,
        http2: h2,
        limits: Limits {
            header_read_timeout: cfg.header_read_timeout,
            max_headers: cfg.max_headers,
            max_header_bytes: cfg.max_header_bytes,
            max_uri_bytes: cfg.max_uri_bytes,
        },
    });
    let h2_limits = H2Limits {
        first_request: cfg.h2_first_request_timeout,
        idle: cfg.h2_idle_timeout,
        header_block: cfg.h2_header_block_timeout,
    };

    // Every connection task holds a receiver: `true` asks it to drain, and the drain is
    // complete once every receiver is gone.
    let (stop, stopped) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let mut at_cap_logged = false;
    tokio::pin!(shutdown);
    loop {
        // A free connection slot first: at the cap, new connections stay in
        // the listen backlog until one closes.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !at_cap_logged {
                    tracing::warn!(max = cfg.max_connections, "gate.max_connections reached; new connections wait");
                    at_cap_logged = true;
                }
                gate.metrics.connection_limited();
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        // The semaphore is never closed; stop serving if it were.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let trusted = gate.live.get().gate.trusted_proxies.iter().any(|n| n.contains(&peer.ip()));
                let watch = ConnWatch::new(h2_limits);
                let conn_info = Arc::new(ConnInfo { peer, trusted, watch, session_id: Default::default() });
                gate.metrics.connection_opened();
                let slot = Slot { metrics: gate.metrics.clone(), _permit: permit };
                // The connection's future is the task itself (no wrapper around it: an
                // `async` block awaiting it would hold a second copy of its state).
                tokio::spawn(connection::serve(stream, gate.clone(), conn_info, protocols.clone(), stopped.clone(), slot));
                if at_cap_logged && slots.available_permits() > 0 {
                    at_cap_logged = false;
                }
            }
            () = &mut shutdown => break,
        }
    }
    gate.draining.store(true, Ordering::SeqCst);
    drop(listener);
    tracing::info!("shutdown: draining in-flight requests");
    drop(stopped);
    let _ = stop.send(true);
    tokio::select! {
        () = stop.closed() => true,
        () = tokio::time::sleep(cfg.drain_timeout) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
            false
        }
    }
}
