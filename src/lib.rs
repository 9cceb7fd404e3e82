//! prt-gate: a security sidecar in front of the PrimeTrade Django application.
//!
//! The crate is shaped around the gate's duties; each module opens with a doc
//! comment naming what it does and which neighbours it talks to. A comment's
//! `design §n` is section n of `docs/design.md`, the product contract.
//!
//! * [`normalize`] — the one path canonicalization (pure).
//! * [`config`] — `policy.toml` + `PRT_GATE_*` environment → typed [`config::Config`].
//! * [`policy`] — `[[route]]` rules compiled into a matcher; decisions and `explain` (pure).
//! * [`gate_owned`] — the one list of routes the gate answers itself (login, callback, logout).
//! * [`media`] — `/media/<key>` → presigned S3 redirect (SigV4, existence check).
//! * [`identity`] — strip client-supplied identity headers, inject the gate's.
//! * [`proxy`] — hyper server and the request pipeline.
//! * [`upstream`] — the keep-alive HTTP/1.1 client to Django and its pool of idle connections.
//! * [`response`] — every answer the gate writes itself (verdicts, refusals, login-flow
//!   pages), each with the same security headers.
//! * [`cookie`] — the one `Cookie` parser, the session cookie, the gate's cookie names.
//! * [`admin`] — `/healthz`, `/readyz`, `/metrics`, `/status` (page: [`status`]).
//! * [`demo`] — `prt-gate demo`: dev SSO, demo upstream, S3 target and the gate, one command.
//! * [`devsso`] — `prt-gate dev-sso`, a local OIDC provider with the SSO's contract.
//!
//! `demo` and `devsso` are development servers, built only with the default `dev-tools`
//! feature; a production build (`--no-default-features`) answers their commands with exit 2.
//! * [`metrics`] — counters and histograms (per rule × role × decision), OpenMetrics text.
//! * [`session`] — session ids, records and the memory / Redis stores.
//! * [`redact`] — the secret-redaction engine (logs, `redact`, `run`; pure).
//! * [`shadow`] — the shadow policy: decided next to the active one, compared, never enforced.
//! * [`replay`] — `prt-gate replay`: re-decides an access log under another policy.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod cookie;
#[cfg(feature = "dev-tools")]
pub mod demo;
#[cfg(feature = "dev-tools")]
pub mod devsso;
pub mod gate_owned;
pub mod identity;
pub mod jsonw;
pub mod logwriter;
pub mod media;
pub mod metrics;
pub mod normalize;
pub mod oidc;
pub mod policy;
pub mod proxy;
pub mod redact;
pub mod reload;
pub mod replay;
pub mod response;
pub mod secret;
pub mod session;
pub mod shadow;
pub mod status;
pub mod upstream;
