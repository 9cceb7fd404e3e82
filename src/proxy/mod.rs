//! The data plane: hyper server and the request pipeline (the client to Django is
//! `crate::upstream`)
//! (`docs/phases.md`).
//!
//! * [`server`] — the public listener: accepts HTTP/1.1 and cleartext HTTP/2,
//!   applies connection and header limits, drains on shutdown;
//! * [`connection`] — one client connection: protocol sniffing, HTTP/2, and
//!   HTTP/1 keep-alive connections that hold no buffers while idle;
//! * [`fast_path`] — the gate's own HTTP/1.1 server for body-less `GET`/`HEAD`
//!   requests (hyper serves everything else);
//! * [`request_body`] — the request body the pipeline forwards: hyper's, or none;
//! * [`sniff_deadline`] — a deadline on the bytes read before HTTP/1 or
//!   HTTP/2 is known (slow or silent clients);
//! * [`tap`] — reads along with hyper on each connection and tells
//!   [`conn_watch`] what hyper does not report (HTTP/2 frames and streams, a
//!   raw `#` in an HTTP/1 request line);
//! * [`conn_watch`] — the per-connection HTTP/2 deadlines (first request,
//!   idle, unfinished header block);
//! * [`conn`] — facts about one client connection (peer, trusted, its watch);
//! * [`pipeline`] — the per-request path, readable top to bottom: one function
//!   per phase;
//! * [`context`] — the request context each phase gets and the log phase reads;
//! * [`target`] — the `parse` and `normalize` phases' target: `Host`, normalized
//!   path, forwarded path and query (OAuth parameters removed: the upstream target);
//! * [`owned`] — the gate-owned routes: login, callback, logout;
//! * [`ratelimit`] — the per-client rate limit on login and callback;
//! * [`auth`] — the `authenticate` phase: session cookie or SSO Bearer JWT;
//! * [`outbound`] — the `forward` phase's upstream request: header hygiene for
//!   the upstream, `X-Forwarded-*`, identity injection from the permit;
//! * [`forward`] — the `forward` phase's send and the `respond` phase: the
//!   pooled request with its timeout, the response shaped for the client;
//! * [`headers`] — header hygiene: hop-by-hop, `Connection` nominations,
//!   `X-Forwarded-*`, `X-Request-Id`;
//! * [`access_line`] — the access log line, written by a fixed-schema writer.
//!
//! What the gate answers itself (verdicts, refusals, login-flow pages) is written by
//! `crate::response`; cookies are read and kept from the upstream by `crate::cookie`.

/// `AsyncWrite` for a read-side I/O wrapper (a pin-projected struct whose inner
/// stream is the field `io`): every write call goes straight to `io`. One
/// definition for [`sniff_deadline::SniffDeadline`] and [`connection::Rewind`].
macro_rules! write_passthrough {
    ($wrapper:ident) => {
        impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for $wrapper<T> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.project().io.poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.project().io.poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.project().io.poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.project().io.poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }
        }
    };
}
pub(crate) use write_passthrough;

pub mod access_line;
pub mod auth;
pub mod conn;
pub mod conn_watch;
pub mod connection;
pub mod context;
pub mod fast_path;
pub mod forward;
pub mod headers;
pub mod outbound;
pub mod owned;
pub mod pipeline;
pub mod ratelimit;
pub mod request_body;
pub mod server;
pub mod sniff_deadline;
pub mod tap;
pub mod target;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cookie::CookieSpec;
use crate::identity::{AssertionError, AssertionSigner};
use crate::media::{Media, MediaBuildError};
use crate::metrics::Metrics;
use crate::oidc::flow::{Oidc, OidcBuildError};
use crate::reload::Live;
use crate::session::{Store, StoreError};

/// Everything the pipeline needs. Per-request settings come from
/// `live.get()`; sockets, pools, the session store and the SSO client are
/// built once at start.
pub struct Gate {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub upstream: crate::upstream::Upstream,
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
    /// Attempts per client on the login endpoints (`gate.login_rate_limit`).
    pub login_limiter: ratelimit::LoginLimiter,
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

/// What `serve` builds from the configuration and its environment (`PRT_GATE_*` secrets,
/// `AWS_*` credentials) before it binds anything: the session store client (no connection
/// yet), the login flow, the assertion signer and the media presigner. `check` builds it
/// too and drops it, so `check` refuses everything `serve` refuses at start-up, with the
/// same message.
pub struct Prepared {
    store: Store,
    oidc: Option<Arc<Oidc>>,
    assertion: Option<AssertionSigner>,
    media: Option<Media>,
}

impl Prepared {
    pub async fn new(config: &crate::config::Config) -> Result<Prepared, GateBuildError> {
        let store = Store::from_config(&config.session).await?;
        let oidc = match config.sso.endpoints {
            Some(_) => Some(Arc::new(Oidc::from_config(config)?)),
            None => None,
        };
        let assertion = match (&config.assertion.secret, &oidc) {
            (Some(secret), _) => Some(AssertionSigner::new(secret)?),
            (None, Some(_)) => return Err(GateBuildError::NoAssertionSecret),
            (None, None) => None,
        };
        let media = Media::from_config(&config.media)?;
        Ok(Prepared { store, oidc, assertion, media })
    }
}

impl Gate {
    pub async fn new(live: Arc<Live>, metrics: Arc<Metrics>) -> Result<Gate, GateBuildError> {
        let config = live.get();
        let Prepared { store, oidc, assertion, media } = Prepared::new(&config).await?;
        let store = Arc::new(store);
        metrics.adopt(&config);
        metrics.watch_store(store.clone());
        Ok(Gate {
            media,
            assertion,
            upstream: crate::upstream::Upstream::new(&config.gate),
            cookie: CookieSpec::from_config(&config),
            store,
            oidc,
            live,
            metrics,
            draining: AtomicBool::new(false),
            login_limiter: ratelimit::LoginLimiter::default(),
        })
    }
}
