//! The upstream request, prepared from the checked request before `forward` sends it
//! (the first half of the `forward` phase).
//!
//! What reaches Django: the normalized path (never the raw one) without OAuth parameters,
//! the client's headers minus hop-by-hop, reserved identity names, the gate's cookies and
//! any `Authorization`; plus `Host`, `X-Forwarded-*`, `X-Request-Id` and — only with a
//! policy [`Permit`] — the identity headers and the signed `X-Prt-Assertion`
//! (`identity::inject`).

use http::header;
use http::{Request, Uri, Version};

use super::context::Ctx;
use super::headers::{self, Forwarding, X_REQUEST_ID};
use super::request_body::RequestBody;
use super::target::Target;
use crate::cookie;
use crate::identity::{self, Bound, InjectError};
use crate::policy::Permit;
use crate::response::{Internal, Refusal};

/// The request the upstream gets for `parts` and `body`: the target's forwarded path and
/// query (origin-form) and `Host`, HTTP/1.1, the headers above. `forward_authorization`: a bearer rule with
/// `forward_authorization = true` verified this request's `Authorization`, which the
/// upstream then gets unchanged.
pub fn prepare(
    ctx: &Ctx<'_>,
    mut parts: http::request::Parts,
    body: RequestBody,
    target: Target<'_>,
    permit: Option<&Permit<'_>>,
    forward_authorization: bool,
) -> Result<Request<RequestBody>, Refusal> {
    let Target { host, path, forwarded } = target;
    parts.uri = Uri::from(forwarded);
    parts.version = Version::HTTP_11;
    let h = &mut parts.headers;
    cookie::for_upstream(h, |name| ctx.gate.cookie.is_gate_cookie(name));
    // The identity Django gets is the assertion: a consumed Bearer token, and
    // on cookie routes a browser's own `Authorization` (which the gate did
    // not check), never reach it. Only a bearer rule that forwards its
    // verified token lets the header through.
    if !forward_authorization {
        h.remove(header::AUTHORIZATION);
    }
    headers::set_forwarding(h, &Forwarding { peer: ctx.conn.peer.ip(), trusted: ctx.conn.trusted, host: &host });
    h.insert(header::HOST, host);
    h.insert(X_REQUEST_ID, ctx.request_id.clone());
    if let Some(permit) = permit {
        let bound = Bound {
            request_id: ctx.request_id.to_str().unwrap_or(""),
            method: parts.method.as_str(),
            path: path.as_str(),
        };
        identity::inject(h, permit, ctx.config, ctx.gate.assertion.as_ref(), bound).map_err(|e| match e {
            // The token's tenant is not one this gate serves: refused like a token without a role.
            InjectError::NoTenant => Refusal::BearerNoRole,
            InjectError::TenantHeader => Refusal::Internal(Internal::TenantHeader),
            InjectError::Sign => Refusal::Internal(Internal::AssertionSign),
        })?;
    }
    Ok(Request::from_parts(parts, body))
}
