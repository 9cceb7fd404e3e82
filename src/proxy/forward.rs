//! The `forward` phase's second half and the `respond` phase: send the prepared
//! upstream request (`outbound::prepare`) to the upstream (`crate::upstream`) with the
//! response timeout, and shape the upstream's response for the client.
//!
//! Nothing here builds the request: it arrives complete. The response loses its
//! hop-by-hop headers, `gate.hide_upstream_headers` and any `Set-Cookie` for the
//! gate's cookies, and gets `X-Request-Id`; a `101 Switching Protocols` is refused.

use std::time::Instant;

use http::{Request, Response};

use super::context::Ctx;
use super::headers::{self, X_REQUEST_ID};
use super::request_body::RequestBody;
use crate::cookie;
use crate::metrics::UpstreamError;
use crate::response::{GateBody, Refusal};

/// Sends `req` upstream and answers with the upstream's response, shaped; records the
/// upstream latency in `ctx`.
pub async fn send(ctx: &mut Ctx<'_>, req: Request<RequestBody>) -> Result<Response<GateBody>, Refusal> {
    let (gate, config) = (ctx.gate, ctx.config);
    let sent = Instant::now();
    // The send future is boxed: `timeout` and the await would otherwise move all of it
    // (a few hundred bytes) through the stack into this future, twice per request.
    let result = tokio::time::timeout(config.gate.upstream_timeout, Box::pin(gate.upstream.send(req))).await;
    let latency = sent.elapsed();
    ctx.upstream_latency = Some(latency);
    let request_id = &ctx.request_id;
    let upstream_resp = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            // The kind is counted; the client learns neither it nor the error's text.
            let (kind, refusal) = match e.is_connect() {
                true => (UpstreamError::Connect, Refusal::UpstreamConnect),
                false => (UpstreamError::Protocol, Refusal::UpstreamProtocol),
            };
            gate.metrics.upstream_error(kind);
            tracing::warn!(request_id = ?request_id, error = %e, "upstream request failed");
            return Err(refusal);
        }
        Err(_elapsed) => {
            gate.metrics.upstream_error(UpstreamError::Timeout);
            return Err(Refusal::UpstreamTimeout);
        }
    };
    gate.metrics.upstream_response(upstream_resp.status().as_u16(), latency);
    // The gate strips `Upgrade` from every request, so a `101 Switching Protocols` is an
    // upstream that switched on its own: never hand the client a raw tunnel.
    if upstream_resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        gate.metrics.upstream_error(UpstreamError::Protocol);
        tracing::warn!(request_id = ?request_id, "upstream answered 101 Switching Protocols; refused");
        return Err(Refusal::UpstreamProtocol);
    }

    // respond: stream the upstream body back; hop-by-hop headers are the
    // upstream's business, and the gate's cookie is the gate's alone.
    let (mut rparts, rbody) = upstream_resp.into_parts();
    headers::strip_hop_by_hop(&mut rparts.headers);
    // `Server`, `X-Powered-By` (configurable): the upstream's software is nobody's business.
    for name in &config.gate.hide_upstream_headers {
        rparts.headers.remove(name);
    }
    cookie::strip_set_cookie(&mut rparts.headers, |name| gate.cookie.is_gate_cookie(name));
    rparts.headers.insert(X_REQUEST_ID, request_id.clone());
    Ok(Response::from_parts(rparts, GateBody::upstream(rbody)))
}
