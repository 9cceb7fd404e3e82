//! The admin listener (default `127.0.0.1:9090`): `/healthz`, `/readyz`,
//! `/metrics`. Plain HTTP/1.1, separate from the public listener so these
//! endpoints are never reachable through the platform edge.
//!
//! * `/healthz` — the process is up (always 200 while it serves).
//! * `/readyz` — 200 only while the gate accepts traffic: configuration
//!   loaded, not draining, and the upstream accepting TCP connections.
//! * `/metrics` — OpenMetrics text from [`crate::metrics`].
//! * `/status` — a read-only HTML page for people ([`crate::status`]).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::proxy::Gate;

pub async fn serve(gate: Arc<Gate>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let g = gate.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let g = g.clone();
                async move { Ok::<_, Infallible>(route(&g, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(gate: &Gate, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into());
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let (ready, why) = readiness(gate).await;
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            text(status, format!("{why}\n"))
        }
        "/metrics" => {
            let mut resp = text(StatusCode::OK, gate.metrics.render());
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
            resp
        }
        "/status" => {
            let mut resp = text(StatusCode::OK, crate::status::page(gate).await);
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/html; charset=utf-8"));
            // Nothing on the page runs or loads anything.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

async fn readiness(gate: &Gate) -> (bool, &'static str) {
    if gate.draining.load(Ordering::SeqCst) {
        return (false, "draining");
    }
    let config = gate.live.get();
    let addr = config.gate.upstream.addr_hint.as_str();
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => (true, "ready"),
        _ => (false, "upstream not accepting connections"),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp
}
