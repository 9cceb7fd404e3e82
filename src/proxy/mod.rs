//! The data plane: hyper server, upstream pool and the request pipeline.
//!
//! * [`server`] accepts connections (HTTP/1.1 and cleartext HTTP/2), applies
//!   limits and timeouts, and drains on shutdown;
//! * [`pipeline`] is the per-request path, readable top to bottom;
//! * [`headers`], [`respond`], [`upstream`], [`body`] are its helpers;
//! * [`tap`] reads along with hyper on each connection and tells [`conn_watch`] what hyper
//!   does not report (HTTP/2 frames and streams, a raw `#` in an HTTP/1 request line).

pub mod answer;
pub mod auth;
pub mod body;
pub mod conn_watch;
pub mod forward;
pub mod headers;
pub mod owned;
pub mod pipeline;
pub mod respond;
pub mod server;
pub mod sniff_deadline;
pub mod tap;
pub mod upstream;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::identity::{AssertionError, AssertionSigner};
use crate::media::{Media, MediaBuildError};
use crate::metrics::Metrics;
use crate::oidc::flow::{CookieSpec, Oidc, OidcBuildError};
use crate::reload::Live;
use crate::session::{Store, StoreError};

/// Everything the pipeline needs. Per-request settings come from
/// `live.get()`; sockets, pools, the session store and the SSO client are
/// built once at start.
pub struct Gate {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub client: upstream::UpstreamClient,
    pub store: Arc<Store>,
    /// `None` when no SSO is configured: nobody can log in, and every route
    /// that is not public answers "login" (fail closed).
    pub oidc: Option<Arc<Oidc>>,
    pub cookie: CookieSpec,
    /// Signs `X-Prt-Assertion`; required whenever an SSO is configured.
    pub assertion: Option<AssertionSigner>,
    /// Presigns `/media/` grants; `None` when no bucket is configured.
    pub media: Option<Media>,
    /// Set when shutdown begins; `/readyz` reports not ready from then on.
    pub draining: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum GateBuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Oidc(#[from] OidcBuildError),
    #[error(transparent)]
    Assertion(#[from] AssertionError),
    #[error(transparent)]
    Media(#[from] MediaBuildError),
    #[error("PRT_GATE_ASSERTION__SECRET is required when sso.base_url is set (Django verifies identity with it)")]
    NoAssertionSecret,
}

impl Gate {
    pub async fn new(live: Arc<Live>, metrics: Arc<Metrics>) -> Result<Gate, GateBuildError> {
        let config = live.get();
        let store = Arc::new(Store::from_config(&config.session).await?);
        let oidc = match config.sso.endpoints {
            Some(_) => Some(Arc::new(Oidc::from_config(&config)?)),
            None => None,
        };
        let assertion = match (&config.assertion.secret, &oidc) {
            (Some(secret), _) => Some(AssertionSigner::new(secret)?),
            (None, Some(_)) => return Err(GateBuildError::NoAssertionSecret),
            (None, None) => None,
        };
        let media = Media::from_config(&config.media)?;
        Ok(Gate {
            media,
            assertion,
            client: upstream::client(&config.gate),
            cookie: CookieSpec::from_config(&config),
            store,
            oidc,
            live,
            metrics,
            draining: AtomicBool::new(false),
        })
    }
}
