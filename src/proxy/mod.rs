//! The data plane: hyper server, upstream pool and the request pipeline.
//!
//! * [`server`] accepts connections (HTTP/1.1 and cleartext HTTP/2), applies
//!   limits and timeouts, and drains on shutdown;
//! * [`pipeline`] is the per-request path, readable top to bottom;
//! * [`headers`], [`respond`], [`upstream`], [`body`] are its helpers.

pub mod body;
pub mod headers;
pub mod pipeline;
pub mod respond;
pub mod server;
pub mod upstream;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::reload::Live;

/// Everything the pipeline needs. Per-request settings come from
/// `live.get()`; sockets and pools are built once.
pub struct Gate {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub client: upstream::UpstreamClient,
    /// Set when shutdown begins; `/readyz` reports not ready from then on.
    pub draining: AtomicBool,
}

impl Gate {
    pub fn new(live: Arc<Live>, metrics: Arc<Metrics>) -> Gate {
        let config = live.get();
        Gate { client: upstream::client(&config.gate), live, metrics, draining: AtomicBool::new(false) }
    }
}
