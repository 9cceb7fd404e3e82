//! The public listener: accept, configure each connection, drain on shutdown.
//!
//! One hyper-util `auto` builder serves HTTP/1.1 and prior-knowledge HTTP/2
//! (h2c) on the same port. Limits (SPEC 13): header read timeout, header
//! buffer size and header count for HTTP/1; header list size and stream
//! concurrency for HTTP/2. Bodies are streamed, never buffered.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::pipeline::{self, ConnInfo};
use super::Gate;

/// Serves until `shutdown` resolves, then stops accepting and waits up to
/// `gate.drain_timeout` for in-flight requests. Returns whether the drain
/// completed in time.
pub async fn serve(gate: Arc<Gate>, listener: TcpListener, shutdown: impl Future<Output = ()>) -> bool {
    // Listener-level settings are fixed at start (a reload logs that they
    // need a restart).
    let config = gate.live.get();
    let cfg = &config.gate;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_headers(cfg.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    let builder = Arc::new(builder);

    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
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
                let conn_info = Arc::new(ConnInfo { peer, trusted });
                let g = gate.clone();
                let service = service_fn(move |req| {
                    let g = g.clone();
                    let c = conn_info.clone();
                    async move { Ok::<_, Infallible>(pipeline::handle(g, c, req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                let metrics = gate.metrics.clone();
                metrics.connection_opened();
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with error");
                    }
                    metrics.connection_closed();
                });
            }
            () = &mut shutdown => break,
        }
    }
    gate.draining.store(true, Ordering::SeqCst);
    drop(listener);
    tracing::info!("shutdown: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(cfg.drain_timeout) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
            false
        }
    }
}
