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
use std::time::Duration;

use http::uri::Authority;

use crate::config::Config;
use crate::identity::TenantHeaders;
use crate::metrics::Metrics;

/// Everything the pipeline needs, built once from the compiled config.
pub struct Gate {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub client: upstream::UpstreamClient,
    pub upstream_authority: Authority,
    pub public_authority: Option<Authority>,
    pub upstream_timeout: Duration,
    pub tenant: TenantHeaders,
    pub tenant_id: Arc<str>,
    pub access_log: bool,
    /// Set when shutdown begins; `/readyz` reports not ready from then on.
    pub draining: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum GateBuildError {
    #[error("tenant.id / tenant.name are not valid header values")]
    TenantHeader,
}

impl Gate {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Gate, GateBuildError> {
        let tenant = TenantHeaders::new(&config.tenant.id, &config.tenant.name).ok_or(GateBuildError::TenantHeader)?;
        Ok(Gate {
            client: upstream::client(&config.gate),
            upstream_authority: config.gate.upstream.authority.clone(),
            public_authority: config.gate.public_url.as_ref().map(|p| p.authority.clone()),
            upstream_timeout: config.gate.upstream_timeout,
            tenant,
            tenant_id: Arc::from(config.tenant.id.as_str()),
            access_log: config.log.access,
            draining: AtomicBool::new(false),
            metrics,
            config,
        })
    }
}
