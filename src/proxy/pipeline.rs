//! The request pipeline: one function a reader can follow top to bottom.
//!
//! ```text
//! parse → normalize (→ media key) → strip_identity → gate-owned routes → authenticate
//!       → authorize → media → forward (prepare, inject identity, send) → respond → log
//! ```
//!
//! Each phase gets the request context ([`Ctx`]) and either continues with what the next
//! one needs or ends the request with a [`Refusal`], which `response::rescue` turns into
//! the answer. The log phase always runs, with the refusal if there was one. Phase names
//! match `docs/phases.md` and the access log.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderMap};
use http::{Request, Response, Uri};

use super::access_line::AccessLine;
use super::auth::{self, Caller};
use super::conn::ConnInfo;
use super::context::Ctx;
use super::headers::{self, X_REQUEST_ID};
use super::owned::{self, Owned};
use super::request_body::RequestBody;
use super::target::{self, Target};
use super::{forward, outbound, Gate};
use crate::media::{self, MediaError};
use crate::metrics::recent::RecentRefusal;
use crate::metrics::rules::{role_index, ROLE_LABELS};
use crate::metrics::Decision;
use crate::normalize::NormalizedPath;
use crate::policy::{Auth, Policy, Principal, Role, Route, Verdict, Who};
use crate::response::{self, GateBody, Refusal};

/// Entry point from the server: never fails; every error becomes a response.
pub async fn handle(gate: Arc<Gate>, conn: Arc<ConnInfo>, req: Request<RequestBody>) -> Response<GateBody> {
    let start = Instant::now();
    // The configuration in force when the request arrived, for all of it.
    let config = gate.live.get();
    let mut ctx = Ctx::new(&gate, &config, &conn, &req);
    // Who the caller is, once authenticated: owned here so that the log phase reads the
    // principal itself (no copies of its fields per request).
    let mut caller = Caller::Anonymous;
    let mut resp = match run(&mut ctx, &mut caller, req).await {
        Ok(resp) => resp,
        Err(refusal) => {
            ctx.refusal = Some(refusal);
            response::rescue(refusal, ctx.html, &ctx.request_id)
        }
    };
    if ctx.clear_session {
        resp.headers_mut().append(header::SET_COOKIE, gate.cookie.expire());
    }
    log(&ctx, caller.who().principal(), resp.status().as_u16(), start.elapsed());
    resp
}

async fn run(ctx: &mut Ctx<'_>, caller: &mut Caller, req: Request<RequestBody>) -> Result<Response<GateBody>, Refusal> {
    let (mut parts, body) = req.into_parts();

    // parse + normalize: the target must be origin-form (or absolute-form naming this
    // gate) and the Host unambiguous, before anything looks at the path; then the one
    // normalized path, which routing, policy, logs and the upstream request line all see.
    let raw = parts.uri.clone(); // no alloc: `Uri` clones share their bytes.
    let target = parse(ctx, &parts, &raw)?;
    // media key: a media path names an object key: map it now (pure), so a malformed
    // or out-of-bounds key is a 400 whoever asks (design §7).
    let media_key = media_key(ctx, &raw, &target.path)?;

    // strip_identity: hop-by-hop and Connection-nominated headers, every
    // client copy of identity headers and underscore names, the never-forwarded
    // look-alikes (one pass) — before any phase reads headers, so nothing
    // downstream can see a forged one.
    strip_identity(ctx, &mut parts.headers);

    // gate-owned routes: login, callback, logout never reach Django.
    if let Some(owned) = Owned::of(target.path.as_str()) {
        // Boxed, as are the other rare phases below: the common request's future (moved
        // a few times per request) stays the size of the common path.
        return Ok(Box::pin(gate_owned(ctx, owned, parts)).await);
    }

    // authenticate: only what the route accepts (cookie, or Bearer on
    // `auth = "bearer"` routes), and only when the decision depends on it.
    let route = ctx.config.policy.route_for(&parts.method, &target.path);
    *caller = authenticate(ctx, &route, &parts.headers).await?;
    let caller: &Caller = caller;

    // authorize: the policy decides; only an `Allow` carries a `Permit`, and the permit
    // carries the caller it was issued for.
    let verdict = authorize(ctx, &route, caller, &parts, &target.path).await;
    // A browser asking for a page (any method: an expired session on a form
    // post goes back through the login too); API and machine clients get JSON.
    let (browser, rid) = (ctx.html, &ctx.request_id);
    let origin = ctx.config.gate.public_url.as_ref().map(|p| p.origin.as_str());
    let permit = match verdict {
        Verdict::Allow(permit) => Some(permit),
        Verdict::Public { .. } => None,
        Verdict::Login { .. } => return Ok(response::login(browser, target.forwarded.as_str(), origin, rid)),
        Verdict::Deny(denial) => return Ok(response::deny(browser, &denial, rid)),
        Verdict::Redirect { to, denial } => return Ok(response::landing(browser, &to, &denial, origin, rid)),
    };

    // media: `/media/*` is the gate's, never Django's (design §7): the allowed
    // caller gets a presigned redirect, audited; nothing is forwarded.
    if let Some(key) = media_key {
        let user = permit.as_ref().map_or("", |p| p.principal().email);
        return Box::pin(media_grant(ctx, key, user)).await;
    }

    // forward: the upstream request, prepared from the checked parts with identity
    // from the permit only; then sent, and its response shaped (respond).
    // `Authorization` never reaches the upstream, except on a bearer rule that
    // forwards the verified token (the upstream view verifies it again).
    let forward_authorization = route.auth() == Auth::Bearer && route.forwards_authorization();
    let upstream = outbound::prepare(ctx, parts, body, target, permit.as_ref(), forward_authorization)?;
    forward::send(ctx, upstream).await
}

/// The parse and normalize phases: a raw `#`, the target and `Host`, the path.
fn parse<'r>(ctx: &mut Ctx<'_>, parts: &http::request::Parts, raw: &'r Uri) -> Result<Target<'r>, Refusal> {
    // A raw `#` in the request target, which the `http` crate dropped while hyper parsed
    // the request line (the connection's tap saw it), is a 400 like any malformed path.
    if ctx.conn.watch.take_fragment(&parts.method, &parts.uri) {
        return Err(Refusal::Path(crate::normalize::NormalizeError::Fragment));
    }
    let target = target::check(&ctx.config.gate, parts, raw)?;
    ctx.forwarded = Some(target.forwarded.clone());
    // Page or API is a property of the checked path, not of the raw one.
    ctx.html = ctx.html && !crate::policy::is_api(&target.path);
    Ok(target)
}

/// The media key phase (right after `normalize`): the S3 key a `/media/*` path names.
fn media_key(ctx: &Ctx<'_>, raw: &Uri, path: &NormalizedPath<'_>) -> Result<Option<String>, Refusal> {
    let p = path.as_str();
    if p != "/media" && !p.starts_with("/media/") {
        return Ok(None);
    }
    media::object_key(&ctx.config.media, raw.path(), path).map(Some).map_err(|_| {
        ctx.gate.metrics.presign("bad_key");
        Refusal::MediaKey
    })
}

/// The strip_identity phase: one pass over the headers (`headers::strip_inbound`).
fn strip_identity(ctx: &Ctx<'_>, h: &mut HeaderMap) {
    ctx.gate.metrics.stripped(headers::strip_inbound(h));
}

/// The gate-owned routes phase: the gate answers; the policy is not consulted.
async fn gate_owned(ctx: &mut Ctx<'_>, owned: Owned, parts: http::request::Parts) -> Response<GateBody> {
    ctx.decision = Some(Decision::Allow);
    ctx.rule = Some(Arc::from(owned.rule()));
    let (conn, config) = (ctx.conn, ctx.config);
    let client =
        super::ratelimit::client_ip(conn.peer.ip(), conn.trusted, &parts.headers, &config.gate.trusted_proxies);
    let req = Request::from_parts(parts, ());
    let mut resp = owned::handle(ctx.gate, config, owned, client, &req, &ctx.request_id).await;
    if resp.status() == http::StatusCode::TOO_MANY_REQUESTS {
        ctx.decision = Some(Decision::Deny);
    }
    resp.headers_mut().insert(X_REQUEST_ID, ctx.request_id.clone());
    resp
}

/// The authenticate phase. Several session cookies (cookie tossing) authenticate nobody
/// and are expired in the answer. Records who the caller is for the log.
async fn authenticate(ctx: &mut Ctx<'_>, route: &Route<'_>, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let session = ctx.gate.cookie.lookup(headers);
    ctx.clear_session = session.duplicated();
    ctx.slot = Some(route.slot());
    let caller = if route.needs_identity() {
        // Boxed (kilobytes of session-store and token-check state): a public request's
        // future does not carry it.
        Box::pin(auth::authenticate(ctx.gate, headers, session, &ctx.conn.session_id, route.auth() == Auth::Bearer))
            .await
            .inspect_err(|_| ctx.decision = Some(Decision::Error))?
    } else {
        Caller::Anonymous
    };
    let who = caller.who();
    if let Some(p) = who.principal() {
        ctx.role = p.role;
        // What a replay needs to decide this request again (`prt-gate replay`).
        ctx.auth = who.auth();
    }
    Ok(caller)
}

/// The authorize phase: the policy's verdict for the caller, and the shadow policy's
/// (counted and logged, never enforced). Tenant matches compare the path with the
/// caller's tenant code.
async fn authorize<'c>(
    ctx: &mut Ctx<'_>,
    route: &Route<'_>,
    caller: &'c Caller,
    parts: &http::request::Parts,
    path: &NormalizedPath<'_>,
) -> Verdict<'c> {
    let who = caller.who();
    let tenant = ctx.config.tenant.caller_code(who.principal().and_then(|p| p.tenant_code));
    let verdict = route.decide_in(who, tenant);
    if let Some(shadow) = ctx.gate.live.shadow.get() {
        Box::pin(shadow_decide(ctx, &shadow, parts, path, route, caller, &verdict)).await;
    }
    ctx.decision = Some(Decision::from_verdict(verdict.decision()));
    ctx.rule = Some(verdict.rule().clone());
    ctx.slot = Some(route.verdict_slot(&verdict));
    verdict
}

/// The shadow policy's decision for the same request and caller. When the shadow route
/// needs an identity the active one did not check (or another credential kind), the
/// caller is authenticated for the shadow alone; a failure there counts as anonymous and
/// never changes the request.
async fn shadow_decide(
    ctx: &Ctx<'_>,
    shadow: &Policy,
    parts: &http::request::Parts,
    path: &NormalizedPath<'_>,
    active: &Route<'_>,
    caller: &Caller,
    verdict: &Verdict<'_>,
) {
    let (gate, config) = (ctx.gate, ctx.config);
    let route = shadow.route_for(&parts.method, path);
    let own;
    let caller = if route.needs_identity() && (!active.needs_identity() || route.auth() != active.auth()) {
        let session = gate.cookie.lookup(&parts.headers);
        own = auth::authenticate(gate, &parts.headers, session, &ctx.conn.session_id, route.auth() == Auth::Bearer)
            .await
            .unwrap_or(Caller::Anonymous);
        &own
    } else {
        caller
    };
    let who: Who<'_> = caller.who();
    let v = route.decide_in(who, config.tenant.caller_code(who.principal().and_then(|p| p.tenant_code)));
    gate.live.shadow.observe(&gate.metrics, &parts.method, path.as_str(), &who, verdict, &v);
}

/// The media phase: existence check, presign, audit event, 302.
async fn media_grant(ctx: &Ctx<'_>, key: String, user: &str) -> Result<Response<GateBody>, Refusal> {
    let (gate, config) = (ctx.gate, ctx.config);
    let Some(media) = &gate.media else {
        gate.metrics.presign("missing");
        return Err(Refusal::MediaMissing);
    };
    match media.grant(&config.media, key, SystemTime::now()).await {
        Ok(grant) => {
            gate.metrics.presign("granted");
            // The audit event names the grant; the URL (a bearer credential) stays out.
            media::audit::GrantAudit {
                user,
                role: ctx.role.map_or("", Role::as_str),
                tenant: config.tenant.id.as_str(),
                key: grant.key.as_str(),
                expires_at: grant.expires_at,
                request_id: ctx.request_id.to_str().unwrap_or("-"),
                request_id_is_ours: ctx.request_id_is_ours,
            }
            .write();
            Ok(response::media(grant.url, &ctx.request_id))
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

/// The log phase: one JSON access line and the request metrics. `who` is the
/// authenticated caller, if any.
fn log(ctx: &Ctx<'_>, who: Option<&Principal<'_>>, status: u16, total: Duration) {
    let (gate, config) = (ctx.gate, ctx.config);
    let decision = match (ctx.refusal, ctx.decision) {
        (Some(Refusal::Path(_) | Refusal::Request(_) | Refusal::UriTooLong), _) => Decision::Reject,
        (Some(Refusal::Internal(_)), _) => Decision::Error,
        (_, Some(d)) => d,
        (Some(_), None) => Decision::Error,
        (None, None) => Decision::Allow,
    };
    gate.metrics.request(decision, status, total);
    if let Some(slot) = ctx.slot {
        gate.metrics.rule_decision(&config.policy, slot, ctx.role, decision);
        if matches!(decision, Decision::Deny | Decision::Redirect) {
            let path = ctx.forwarded.as_ref().map_or("-", |pq| pq.path());
            gate.metrics.refusal(RecentRefusal::new(
                ROLE_LABELS[role_index(ctx.role)],
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
        role: ctx.role.map_or("", Role::as_str),
        auth: ctx.auth.map_or("", Auth::as_str),
        features: who.map(|p| p.features),
        features_arc: who.and_then(|p| p.features_arc),
        tenant: if who.is_some() { config.tenant.id.as_str() } else { "" },
        // The code the policy's tenant matches compared (`authorize`).
        tenant_code: who.and_then(|p| config.tenant.caller_code(p.tenant_code)).unwrap_or(""),
        user: who.map_or("", |p| p.email),
        request_id: ctx.request_id.to_str().unwrap_or("-"),
        request_id_is_ours: ctx.request_id_is_ours,
        peer: ctx.conn.peer.ip(),
        upstream_ms: ctx.upstream_latency.map(|d| d.as_secs_f64() * 1e3),
        total_ms: total.as_secs_f64() * 1e3,
        error: error.as_deref(),
    }
    .write();
}
