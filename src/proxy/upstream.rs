//! The pooled keep-alive HTTP/1.1 client to Django, and its failure mapping.

use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::GateConfig;
use crate::response::Refusal;

pub type UpstreamClient = Client<HttpConnector, Incoming>;

pub fn client(cfg: &GateConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(cfg.upstream_connect_timeout));
    connector.enforce_http(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.upstream_pool_idle_timeout)
        .pool_max_idle_per_host(cfg.upstream_pool_max_idle)
        // The gate sets Host itself (the client's), never the upstream's address.
        .set_host(false)
        .build(connector)
}

/// Classifies a client error without exposing its text to the client.
pub fn classify(e: &hyper_util::client::legacy::Error) -> Refusal {
    if e.is_connect() {
        Refusal::UpstreamConnect
    } else {
        Refusal::UpstreamProtocol
    }
}
