//! The request pipeline: one function a reader can follow top to bottom.
//!
//! ```text
//! parse → normalize → strip_identity → [authenticate → authorize: issues 3/4]
//!       → forward (inject_identity) → respond → log
//! ```
//!
//! Each phase either continues with what the next one needs or ends the
//! request with a [`Refusal`], which `respond::rescue` turns into the answer.
//! The log phase always runs, with the refusal if there was one. Phase names
//! match `docs/phases.md` and the access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::body::GateBody;
use super::headers::{self, Forwarding, X_REQUEST_ID};
use super::respond::{self, Refusal};
use super::upstream;
use super::Gate;
use crate::config::Config;
use crate::identity;
use crate::metrics::{Decision, UpstreamError};
use crate::normalize::normalize;

/// Facts about the client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer is in `gate.trusted_proxies` (the platform edge).
    pub trusted: bool,
}

/// Per-request state carried between phases and into the log phase.
struct Ctx {
    method: Method,
    request_id: HeaderValue,
    /// Answer refusals with an HTML page (browser page request) or JSON.
    html: bool,
    /// The normalized path and query actually forwarded (or checked).
    forwarded: Option<PathAndQuery>,
    refusal: Option<Refusal>,
    upstream_latency: Option<Duration>,
}

/// Entry point from the server: never fails; every error becomes a response.
pub async fn handle(gate: Arc<Gate>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Response<GateBody> {
    let start = Instant::now();
    let mut ctx = Ctx {
        method: req.method().clone(),
        request_id: request_id(&conn, &req),
        html: wants_html(&req),
        forwarded: None,
        refusal: None,
        upstream_latency: None,
    };
    // The configuration in force when the request arrived, for all of it.
    let config = gate.live.get();
    let resp = match run(&gate, &config, &conn, &mut ctx, req).await {
        Ok(resp) => resp,
        Err(refusal) => {
            ctx.refusal = Some(refusal);
            respond::rescue(refusal, ctx.html, &ctx.request_id)
        }
    };
    log(&gate, &config, &conn, &ctx, resp.status().as_u16(), start.elapsed());
    resp
}

async fn run(
    gate: &Gate,
    config: &Config,
    conn: &ConnInfo,
    ctx: &mut Ctx,
    req: Request<Incoming>,
) -> Result<Response<GateBody>, Refusal> {
    let (mut parts, body) = req.into_parts();

    // parse: the target must be origin-form (or absolute-form naming this
    // gate) and the Host unambiguous, before anything looks at the path.
    let public_authority = config.gate.public_url.as_ref().map(|p| &p.authority);
    let host = check_target(public_authority, &parts)?;

    // normalize: once, first. This one path is what routing, policy, logs and
    // the upstream request line all see (SPEC 3 step 2).
    let path_and_query = {
        let path = normalize(parts.uri.path()).map_err(Refusal::Path)?;
        if path.is_unchanged() {
            // no alloc: the target is already canonical; reuse its bytes.
            parts.uri.path_and_query().cloned().ok_or(Refusal::Request("missing path"))?
        } else {
            let text = match parts.uri.query() {
                Some(q) => format!("{}?{q}", path.as_str()),
                None => path.as_str().to_owned(),
            };
            PathAndQuery::try_from(text).map_err(|_| Refusal::Request("unrepresentable path"))?
        }
    };
    ctx.forwarded = Some(path_and_query.clone());

    // strip_identity: hop-by-hop and Connection-nominated headers, every
    // client copy of identity headers and underscore names, and forwarding
    // headers from untrusted peers — before any phase reads headers.
    headers::strip_hop_by_hop(&mut parts.headers);
    gate.metrics.stripped(identity::strip_inbound(&mut parts.headers));

    // authenticate / authorize: sessions (issue 3) and policy (issue 4) go here.

    // forward: rebuild the request for the upstream and inject identity.
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(config.gate.upstream.authority.clone());
    uri.path_and_query = Some(path_and_query);
    parts.uri = Uri::from_parts(uri).map_err(|_| Refusal::Request("unrepresentable target"))?;
    parts.version = Version::HTTP_11;
    headers::merge_cookies(&mut parts.headers);
    headers::set_forwarding(
        &mut parts.headers,
        &Forwarding { peer: conn.peer.ip(), trusted: conn.trusted, host: &host },
    );
    parts.headers.insert(header::HOST, host);
    parts.headers.insert(X_REQUEST_ID, ctx.request_id.clone());
    identity::inject_tenant(&mut parts.headers, &config.tenant);

    let sent = Instant::now();
    let result =
        tokio::time::timeout(config.gate.upstream_timeout, gate.client.request(Request::from_parts(parts, body))).await;
    ctx.upstream_latency = Some(sent.elapsed());
    let upstream_resp = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let refusal = upstream::classify(&e);
            gate.metrics.upstream_error(match refusal {
                Refusal::UpstreamConnect => UpstreamError::Connect,
                _ => UpstreamError::Protocol,
            });
            tracing::warn!(request_id = ?ctx.request_id, error = %e, "upstream request failed");
            return Err(refusal);
        }
        Err(_elapsed) => {
            gate.metrics.upstream_error(UpstreamError::Timeout);
            return Err(Refusal::UpstreamTimeout);
        }
    };
    if let Some(d) = ctx.upstream_latency {
        gate.metrics.upstream_latency(d);
    }

    // respond: stream the upstream body back; hop-by-hop headers are the
    // upstream's business, not the client's.
    let (mut rparts, rbody) = upstream_resp.into_parts();
    headers::strip_hop_by_hop(&mut rparts.headers);
    rparts.headers.insert(X_REQUEST_ID, ctx.request_id.clone());
    Ok(Response::from_parts(rparts, GateBody::upstream(rbody)))
}

/// Validates the request target and returns the `Host` to forward.
fn check_target(public_authority: Option<&Authority>, parts: &http::request::Parts) -> Result<HeaderValue, Refusal> {
    if parts.method == Method::CONNECT {
        return Err(Refusal::Request("CONNECT is not supported"));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::Request("multiple Host headers"));
    }
    if let Some(h) = host_header {
        parse_authority(h)?;
    }
    let target_authority = parts.uri.authority();
    match parts.version {
        Version::HTTP_2 | Version::HTTP_3 => {
            // :authority is the Host of HTTP/2; both present must agree.
            let Some(a) = target_authority else {
                return host_header.cloned().ok_or(Refusal::Request("missing :authority"));
            };
            if host_header.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())) {
                return Err(Refusal::Request("Host and :authority disagree"));
            }
            HeaderValue::from_str(a.as_str()).map_err(|_| Refusal::Request("invalid :authority"))
        }
        _ => {
            if let Some(a) = target_authority {
                // absolute-form: only for this gate, never a forward-proxy request.
                if !matches!(parts.uri.scheme_str(), Some("http" | "https")) || a.as_str().contains('@') {
                    return Err(Refusal::Request("absolute-form target with foreign scheme"));
                }
                let expected: Option<&[u8]> = match public_authority {
                    Some(p) => Some(p.as_str().as_bytes()),
                    None => host_header.map(HeaderValue::as_bytes),
                };
                if !expected.is_some_and(|e| e.eq_ignore_ascii_case(a.as_str().as_bytes())) {
                    return Err(Refusal::Request("absolute-form target names another host"));
                }
                return HeaderValue::from_str(a.as_str()).map_err(|_| Refusal::Request("invalid authority"));
            }
            match host_header {
                Some(h) => Ok(h.clone()),
                None if parts.version == Version::HTTP_10 => match public_authority {
                    Some(p) => HeaderValue::from_str(p.as_str()).map_err(|_| Refusal::Request("missing Host")),
                    None => Err(Refusal::Request("missing Host")),
                },
                None => Err(Refusal::Request("missing Host")),
            }
        }
    }
}

fn parse_authority(h: &HeaderValue) -> Result<Authority, Refusal> {
    let a = Authority::try_from(h.as_bytes()).map_err(|_| Refusal::Request("invalid Host"))?;
    if a.as_str().contains('@') || a.as_str().is_empty() {
        return Err(Refusal::Request("invalid Host"));
    }
    Ok(a)
}

fn request_id(conn: &ConnInfo, req: &Request<Incoming>) -> HeaderValue {
    if conn.trusted {
        let mut ids = req.headers().get_all(&X_REQUEST_ID).iter();
        if let (Some(id), None) = (ids.next(), ids.next()) {
            if headers::valid_request_id(id) {
                return id.clone();
            }
        }
    }
    headers::new_request_id()
}

/// Browsers asking for a page get HTML error pages; API and machine clients JSON.
fn wants_html(req: &Request<Incoming>) -> bool {
    !req.uri().path().starts_with("/api/")
        && req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// The log phase: one JSON access line and the request metrics.
fn log(gate: &Gate, config: &Config, conn: &ConnInfo, ctx: &Ctx, status: u16, total: Duration) {
    let decision = match ctx.refusal {
        Some(Refusal::Path(_) | Refusal::Request(_)) => Decision::Reject,
        _ => Decision::Allow,
    };
    gate.metrics.request(decision, status, total);
    if !config.log.access {
        return;
    }
    let error = ctx.refusal.map(|r| r.to_string());
    tracing::info!(
        target: "access",
        method = ctx.method.as_str(),
        path = ctx.forwarded.as_ref().map_or("-", |pq| pq.path()),
        status,
        decision = decision.as_str(),
        rule = "",
        role = "",
        tenant = config.tenant.id.as_str(),
        user = "",
        request_id = ctx.request_id.to_str().unwrap_or("-"),
        peer = %conn.peer.ip(),
        upstream_ms = ctx.upstream_latency.map(|d| d.as_secs_f64() * 1e3),
        total_ms = total.as_secs_f64() * 1e3,
        error,
    );
}
