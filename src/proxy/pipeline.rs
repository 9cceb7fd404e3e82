//! The request pipeline: one function a reader can follow top to bottom.
//!
//! ```text
//! parse → normalize → strip_identity → gate-owned routes → authenticate
//!       → authorize → media → forward (inject_identity) → respond → log
//! ```
//!
//! Each phase either continues with what the next one needs or ends the
//! request with a [`Refusal`], which `response::rescue` turns into the answer.
//! The log phase always runs, with the refusal if there was one. Phase names
//! match `docs/phases.md` and the access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

use super::access_line::AccessLine;
use super::auth::{self, Caller};
use super::headers::{self, X_REQUEST_ID};
use super::owned::{self, Owned};
use super::{forward, Gate};
use crate::config::Config;
use crate::media::{self, MediaError};
use crate::metrics::recent::RecentRefusal;
use crate::metrics::rules::{role_index, ROLE_LABELS};
use crate::metrics::Decision;
use crate::normalize::{normalize, NormalizedPath};
use crate::policy::{Auth, Policy, Role, Route, Verdict, Who};
use crate::response::{self, GateBody, Malformed, Refusal};

/// Facts about the client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer is in `gate.trusted_proxies` (the platform edge).
    pub trusted: bool,
    /// What the connection's bytes showed (raw `#` in a request line, HTTP/2 streams).
    pub watch: Arc<super::conn_watch::ConnWatch>,
}

/// Per-request state carried between phases and into the log phase.
struct Ctx {
    method: Method,
    request_id: HeaderValue,
    /// Answer with HTML pages and redirects (browser page request) or JSON.
    html: bool,
    /// The normalized path and query actually forwarded (or checked).
    forwarded: Option<PathAndQuery>,
    decision: Option<Decision>,
    rule: Option<Arc<str>>,
    /// The policy's counter slot for `rule` (`Route::slot`), once a route was found.
    slot: Option<usize>,
    role: &'static str,
    /// The credential that authenticated the caller (`session`, `bearer`, `""`).
    auth: &'static str,
    /// The caller's feature permissions, `feature:permission,…` (not secret).
    features: String,
    /// The tenant code tenant matches compared (`prt-gate replay` decides with it).
    tenant_code: Option<String>,
    user: Option<String>,
    refusal: Option<Refusal>,
    upstream_latency: Option<Duration>,
    /// The request brought more than one session cookie: expire it.
    clear_session: bool,
}

/// Entry point from the server: never fails; every error becomes a response.
pub async fn handle(gate: Arc<Gate>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Response<GateBody> {
    let start = Instant::now();
    let mut ctx = Ctx {
        method: req.method().clone(),
        request_id: request_id(&conn, &req),
        html: wants_html(&req),
        forwarded: None,
        decision: None,
        rule: None,
        slot: None,
        role: "",
        auth: "",
        features: String::new(),
        tenant_code: None,
        user: None,
        refusal: None,
        upstream_latency: None,
        clear_session: false,
    };
    // The configuration in force when the request arrived, for all of it.
    let config = gate.live.get();
    let mut resp = match run(&gate, &config, &conn, &mut ctx, req).await {
        Ok(resp) => resp,
        Err(refusal) => {
            ctx.refusal = Some(refusal);
            response::rescue(refusal, ctx.html, &ctx.request_id)
        }
    };
    if ctx.clear_session {
        resp.headers_mut().append(header::SET_COOKIE, gate.cookie.expire());
    }
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

    // A raw `#` in the request target, which the `http` crate dropped while hyper parsed
    // the request line (the connection's tap saw it), is a 400 like any malformed path.
    if conn.watch.take_fragment(&parts.method, &parts.uri) {
        return Err(Refusal::Path(crate::normalize::NormalizeError::Fragment));
    }

    // parse: the target must be origin-form (or absolute-form naming this
    // gate) and the Host unambiguous, before anything looks at the path.
    // An over-long target is refused before anything parses it (design §13);
    // heads beyond `max_header_bytes` never get here (431 from the server).
    if target_len(&parts.uri) > config.gate.max_uri_bytes {
        return Err(Refusal::UriTooLong);
    }
    let public = config.gate.public_url.as_ref();
    let host = check_target(public.map(|p| &p.authority), &parts)?;
    // Only the hosts this gate serves: a request for another name is never forwarded
    // (Django's ALLOWED_HOSTS is not the only check).
    if !config.gate.serves_host(host.as_bytes()) {
        // Named so an operator can add a legitimate one (a platform health check) to
        // `gate.allowed_hosts`; the value passed `Authority` parsing and the line is redacted.
        tracing::info!(host = host.to_str().unwrap_or("-"), "Host not served by this gate; refused");
        return Err(Refusal::Request(Malformed::HostNotServed));
    }

    // normalize: once, first. This one path is what routing, policy, logs and
    // the upstream request line all see (design §3).
    let target = parts.uri.clone(); // no alloc: `Uri` clones share their bytes.
    let path = normalize(target.path()).map_err(Refusal::Path)?;
    let path_and_query = forward::path_and_query(&target, &path)?;
    ctx.forwarded = Some(path_and_query.clone());
    // Page or API is a property of the checked path, not of the raw one.
    ctx.html = ctx.html && !crate::policy::is_api(&path);
    // A media path names an object key: map it now (pure), so a malformed
    // or out-of-bounds key is a 400 whoever asks (design §7).
    let media_key = if is_media(path.as_str()) {
        Some(media::object_key(&config.media, target.path(), &path).map_err(|_| {
            gate.metrics.presign("bad_key");
            Refusal::MediaKey
        })?)
    } else {
        None
    };

    // strip_identity: hop-by-hop and Connection-nominated headers, every
    // client copy of identity headers and underscore names, the never-forwarded
    // look-alikes (one pass) — before any phase reads headers, so nothing
    // downstream can see a forged one.
    gate.metrics.stripped(headers::strip_inbound(&mut parts.headers));

    // gate-owned routes: login, callback, logout never reach Django.
    if let Some(owned) = Owned::of(path.as_str()) {
        ctx.decision = Some(Decision::Allow);
        ctx.rule = Some(Arc::from(owned.rule()));
        let client =
            super::ratelimit::client_ip(conn.peer.ip(), conn.trusted, &parts.headers, &config.gate.trusted_proxies);
        let req = Request::from_parts(parts, ());
        let mut resp = owned::handle(gate, config, owned, client, &req, &ctx.request_id).await;
        if resp.status() == http::StatusCode::TOO_MANY_REQUESTS {
            ctx.decision = Some(Decision::Deny);
        }
        resp.headers_mut().insert(X_REQUEST_ID, ctx.request_id.clone());
        return Ok(resp);
    }

    // authenticate: only what the route accepts (cookie, or Bearer on
    // `auth = "bearer"` routes), and only when the decision depends on it.
    // Several session cookies (cookie tossing) authenticate nobody and are
    // expired in the answer.
    let session = gate.cookie.lookup(&parts.headers);
    ctx.clear_session = session.duplicated();
    let route = config.policy.route_for(&parts.method, &path);
    ctx.slot = Some(route.slot());
    let bearer_route = route.auth() == Auth::Bearer;
    let caller = if route.needs_identity() {
        auth::authenticate(gate, &parts.headers, session, bearer_route)
            .await
            .inspect_err(|_| ctx.decision = Some(Decision::Error))?
    } else {
        Caller::Anonymous
    };
    ctx.role = Role::parse(caller.role()).map_or("", Role::as_str);
    if !matches!(caller, Caller::Anonymous) {
        ctx.user = Some(caller.email().to_owned());
    }
    // What a replay needs to decide this request again (`prt-gate replay`).
    if let Who::Session { features, .. } | Who::Bearer { features, .. } = caller.who() {
        ctx.auth = if matches!(caller, Caller::Bearer(_)) { "bearer" } else { "session" };
        ctx.features = crate::replay::format_features(features);
    }

    // authorize: the policy decides; only an `Allow` carries a `Permit`.
    // Tenant matches compare the path with the caller's tenant code.
    let tenant = config.tenant.caller_code(caller.tenant_code());
    let verdict = route.decide_in(caller.who(), tenant);
    if !matches!(caller, Caller::Anonymous) {
        ctx.tenant_code = tenant.map(str::to_owned);
    }
    // shadow: a candidate policy decides too; counted and logged, never enforced.
    if let Some(shadow) = gate.live.shadow.get() {
        shadow_decide(gate, config, &shadow, &parts, &path, &route, &caller, &verdict).await;
    }
    ctx.decision = Some(Decision::from_verdict(verdict.decision()));
    ctx.rule = Some(verdict.rule().clone());
    ctx.slot = Some(route.verdict_slot(&verdict));
    // A browser asking for a page (any method: an expired session on a form
    // post goes back through the login too); API and machine clients get JSON.
    let browser = ctx.html;
    let origin = public.map(|p| p.origin.as_str());
    let permit = match verdict {
        Verdict::Allow(permit) => Some(permit),
        Verdict::Public { .. } => None,
        Verdict::Login { .. } => return Ok(response::login(browser, path_and_query.as_str(), origin, &ctx.request_id)),
        Verdict::Deny(denial) => return Ok(response::deny(ctx.html, &denial, &ctx.request_id)),
        Verdict::Redirect { to, denial } => {
            return Ok(response::landing(browser, &to, &denial, origin, &ctx.request_id));
        }
    };

    // media: `/media/*` is the gate's, never Django's (design §7): the allowed
    // caller gets a presigned redirect, audited; nothing is forwarded.
    if let Some(key) = media_key {
        return media_grant(gate, config, ctx, key).await;
    }

    // forward: rebuild the request for the upstream; inject_identity from
    // the permit and the verified caller only.
    let identity = permit.as_ref().map(|p| forward::Identity { permit: p, caller: &caller });
    // `Authorization` never reaches the upstream, except on a bearer rule that
    // forwards the verified token (the upstream view verifies it again).
    let forward_authorization = bearer_route && route.forwards_authorization();
    let upstream = forward::Upstream { path_and_query, host, forward_authorization };
    let resp = forward::send(gate, config, conn, &ctx.request_id, parts, body, upstream, identity, &path).await;
    if let Some(d) = resp.upstream_latency {
        ctx.upstream_latency = Some(d);
    }
    resp.result
}

/// The shadow policy's decision for the same request and caller. When the shadow route
/// needs an identity the active one did not check (or another credential kind), the
/// caller is authenticated for the shadow alone; a failure there counts as anonymous and
/// never changes the request.
#[allow(clippy::too_many_arguments)]
async fn shadow_decide(
    gate: &Gate,
    config: &Config,
    shadow: &Policy,
    parts: &http::request::Parts,
    path: &NormalizedPath<'_>,
    active: &Route<'_>,
    caller: &Caller,
    verdict: &Verdict,
) {
    let route = shadow.route_for(&parts.method, path);
    let own;
    let caller = if route.needs_identity() && (!active.needs_identity() || route.auth() != active.auth()) {
        let session = gate.cookie.lookup(&parts.headers);
        own = auth::authenticate(gate, &parts.headers, session, route.auth() == Auth::Bearer)
            .await
            .unwrap_or(Caller::Anonymous);
        &own
    } else {
        caller
    };
    let v = route.decide_in(caller.who(), config.tenant.caller_code(caller.tenant_code()));
    gate.live.shadow.observe(&gate.metrics, &parts.method, path.as_str(), caller.role(), verdict, &v);
}

/// The media phase: existence check, presign, audit event, 302.
async fn media_grant(gate: &Gate, config: &Config, ctx: &Ctx, key: String) -> Result<Response<GateBody>, Refusal> {
    let Some(media) = &gate.media else {
        gate.metrics.presign("missing");
        return Err(Refusal::MediaMissing);
    };
    match media.grant(&config.media, key, SystemTime::now()).await {
        Ok(grant) => {
            gate.metrics.presign("granted");
            // The audit event names the grant; the URL (a bearer credential) stays out.
            tracing::info!(
                target: "audit",
                event = "media_grant",
                user = ctx.user.as_deref().unwrap_or(""),
                role = ctx.role,
                tenant = config.tenant.id.as_str(),
                key = grant.key.as_str(),
                expires_at = %humantime::format_rfc3339_seconds(grant.expires_at),
                request_id = ctx.request_id.to_str().unwrap_or("-"),
            );
            Ok(response::media(&grant.url, &ctx.request_id))
        }
        Err(MediaError::Missing) => {
            gate.metrics.presign("missing");
            Err(Refusal::MediaMissing)
        }
        Err(MediaError::Key(_)) => {
            gate.metrics.presign("bad_key");
            Err(Refusal::MediaKey)
        }
        Err(MediaError::Unavailable(e)) => {
            gate.metrics.presign("unavailable");
            tracing::warn!(target: "media", error = %e, request_id = ctx.request_id.to_str().unwrap_or("-"), "existence check failed");
            Err(Refusal::MediaStore)
        }
    }
}

fn is_media(path: &str) -> bool {
    path == "/media" || path.starts_with("/media/")
}

/// Validates the request target and returns the `Host` to forward.
/// Length of the request target as the client sent it (origin or absolute
/// form), without allocating.
fn target_len(uri: &http::Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    scheme + authority + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

fn check_target(public_authority: Option<&Authority>, parts: &http::request::Parts) -> Result<HeaderValue, Refusal> {
    if parts.method == Method::CONNECT {
        return Err(Refusal::Request(Malformed::Connect));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::Request(Malformed::MultipleHost));
    }
    if let Some(h) = host_header {
        parse_authority(h)?;
    }
    let target_authority = parts.uri.authority();
    match parts.version {
        Version::HTTP_2 | Version::HTTP_3 => {
            // :authority is the Host of HTTP/2; both present must agree.
            let Some(a) = target_authority else {
                return host_header.cloned().ok_or(Refusal::Request(Malformed::MissingAuthority));
            };
            if host_header.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())) {
                return Err(Refusal::Request(Malformed::HostAuthorityDisagree));
            }
            HeaderValue::from_str(a.as_str()).map_err(|_| Refusal::Request(Malformed::InvalidAuthority))
        }
        _ => {
            if let Some(a) = target_authority {
                // absolute-form: only for this gate, never a forward-proxy request.
                if !matches!(parts.uri.scheme_str(), Some("http" | "https")) || a.as_str().contains('@') {
                    return Err(Refusal::Request(Malformed::ForeignScheme));
                }
                let expected: Option<&[u8]> = match public_authority {
                    Some(p) => Some(p.as_str().as_bytes()),
                    None => host_header.map(HeaderValue::as_bytes),
                };
                if !expected.is_some_and(|e| e.eq_ignore_ascii_case(a.as_str().as_bytes())) {
                    return Err(Refusal::Request(Malformed::ForeignHost));
                }
                return HeaderValue::from_str(a.as_str()).map_err(|_| Refusal::Request(Malformed::InvalidAuthority));
            }
            match host_header {
                Some(h) => Ok(h.clone()),
                None if parts.version == Version::HTTP_10 => match public_authority {
                    Some(p) => HeaderValue::from_str(p.as_str()).map_err(|_| Refusal::Request(Malformed::MissingHost)),
                    None => Err(Refusal::Request(Malformed::MissingHost)),
                },
                None => Err(Refusal::Request(Malformed::MissingHost)),
            }
        }
    }
}

fn parse_authority(h: &HeaderValue) -> Result<Authority, Refusal> {
    let a = Authority::try_from(h.as_bytes()).map_err(|_| Refusal::Request(Malformed::InvalidHost))?;
    if a.as_str().contains('@') || a.as_str().is_empty() {
        return Err(Refusal::Request(Malformed::InvalidHost));
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

/// Browsers asking for a page get HTML error pages; API and machine clients
/// JSON. (Refined once the path is normalized: API paths always get JSON.)
fn wants_html(req: &Request<Incoming>) -> bool {
    !req.uri().path().starts_with("/api/")
        && req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// The log phase: one JSON access line and the request metrics.
fn log(gate: &Gate, config: &Config, conn: &ConnInfo, ctx: &Ctx, status: u16, total: Duration) {
    let decision = match (ctx.refusal, ctx.decision) {
        (Some(Refusal::Path(_) | Refusal::Request(_) | Refusal::UriTooLong), _) => Decision::Reject,
        (Some(Refusal::Internal(_)), _) => Decision::Error,
        (_, Some(d)) => d,
        (Some(_), None) => Decision::Error,
        (None, None) => Decision::Allow,
    };
    gate.metrics.request(decision, status, total);
    if let Some(slot) = ctx.slot {
        let role = Role::parse(ctx.role);
        gate.metrics.rule_decision(&config.policy, slot, role, decision);
        if matches!(decision, Decision::Deny | Decision::Redirect) {
            let path = ctx.forwarded.as_ref().map_or("-", |pq| pq.path());
            gate.metrics.refusal(RecentRefusal::new(
                ROLE_LABELS[role_index(role)],
                ctx.method.as_str(),
                &config.redactor.redact_str(path),
                ctx.rule.clone().unwrap_or_else(|| Arc::from("")),
                decision.as_str(),
            ));
        }
    }
    if !config.log.access {
        return;
    }
    let error = ctx.refusal.map(|r| r.to_string());
    // The query as forwarded (OAuth parameters already gone), values kept
    // only for allow-listed names; the whole line then passes the engine.
    let query = ctx.forwarded.as_ref().and_then(|pq| pq.query()).map(crate::redact::query::filter_query);
    AccessLine {
        method: ctx.method.as_str(),
        path: ctx.forwarded.as_ref().map_or("-", |pq| pq.path()),
        query: query.as_deref(),
        status,
        decision: decision.as_str(),
        rule: ctx.rule.as_deref().unwrap_or(""),
        role: ctx.role,
        auth: ctx.auth,
        features: ctx.features.as_str(),
        tenant: if ctx.user.is_some() { config.tenant.id.as_str() } else { "" },
        tenant_code: ctx.tenant_code.as_deref().unwrap_or(""),
        user: ctx.user.as_deref().unwrap_or(""),
        request_id: ctx.request_id.to_str().unwrap_or("-"),
        peer: conn.peer.ip(),
        upstream_ms: ctx.upstream_latency.map(|d| d.as_secs_f64() * 1e3),
        total_ms: total.as_secs_f64() * 1e3,
        error: error.as_deref(),
    }
    .write();
}
