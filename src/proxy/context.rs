//! The request context: what the pipeline's phases share. Each phase gets it in turn
//! (`&mut Ctx`), reads the gate, the configuration and the connection from it, and
//! records there what the log phase writes (decision, rule, caller, latency).

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request};

use super::conn::ConnInfo;
use super::headers::{self, X_REQUEST_ID};
use super::Gate;
use crate::config::Config;
use crate::metrics::Decision;
use crate::policy::{Auth, Role};
use crate::response::Refusal;

/// Per-request state carried between phases and into the log phase.
pub struct Ctx<'a> {
    pub gate: &'a Gate,
    /// The configuration in force when the request arrived, for all of it.
    pub config: &'a Config,
    pub conn: &'a ConnInfo,
    pub method: Method,
    pub request_id: HeaderValue,
    /// The gate generated `request_id` (it is not the platform edge's).
    pub request_id_is_ours: bool,
    /// Answer with HTML pages and redirects (browser page request) or JSON.
    pub html: bool,
    /// The normalized path and query actually forwarded (or checked).
    pub forwarded: Option<PathAndQuery>,
    pub decision: Option<Decision>,
    pub rule: Option<Arc<str>>,
    /// The policy's counter slot for `rule` (`Route::slot`), once a route was found.
    pub slot: Option<usize>,
    /// The caller's role, when authentication found one the gate knows.
    pub role: Option<Role>,
    /// The credential that authenticated the caller.
    pub auth: Option<Auth>,
    pub refusal: Option<Refusal>,
    pub upstream_latency: Option<Duration>,
    /// The request brought more than one session cookie: expire it.
    pub clear_session: bool,
}

impl<'a> Ctx<'a> {
    /// The context of a request that just arrived: nothing decided yet.
    pub fn new<B>(gate: &'a Gate, config: &'a Config, conn: &'a ConnInfo, req: &Request<B>) -> Ctx<'a> {
        let (request_id, edge) = match edge_request_id(conn, req) {
            Some(id) => (id, true),
            None => (headers::new_request_id(), false),
        };
        Ctx {
            gate,
            config,
            conn,
            method: req.method().clone(),
            request_id_is_ours: !edge,
            request_id,
            html: wants_html(req),
            forwarded: None,
            decision: None,
            rule: None,
            slot: None,
            role: None,
            auth: None,
            refusal: None,
            upstream_latency: None,
            clear_session: false,
        }
    }
}

/// The platform edge's request id (a trusted peer, one valid `X-Request-Id`), if any;
/// otherwise the gate makes one up.
fn edge_request_id<B>(conn: &ConnInfo, req: &Request<B>) -> Option<HeaderValue> {
    if conn.trusted {
        let mut ids = req.headers().get_all(&X_REQUEST_ID).iter();
        if let (Some(id), None) = (ids.next(), ids.next()) {
            if headers::valid_request_id(id) {
                return Some(id.clone());
            }
        }
    }
    None
}

/// Browsers asking for a page get HTML error pages; API and machine clients
/// JSON. (Refined once the path is normalized: API paths always get JSON.)
fn wants_html<B>(req: &Request<B>) -> bool {
    !req.uri().path().starts_with("/api/")
        && req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}
