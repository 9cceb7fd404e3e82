//! The demo upstream: stands where Django stands and shows what it received.
//!
//! * every page (`/`, `/client.html`, …) is one HTML page listing the identity
//!   headers the gate injected — and whether `X-Prt-Assertion` verifies with
//!   the shared secret, as the Django adapter checks it — plus buttons that
//!   call API routes through the gate, so a user sees which calls the policy
//!   allows for their role and why the others are refused;
//! * every `/api/…` path answers JSON echoing method, path and identity.

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::devsso::web::esc;
use crate::identity::ASSERTION_ISSUER;

const PAGE: &str = include_str!("page.html");

/// Headers the gate sets (design §8); the page shows exactly these.
const IDENTITY: [&str; 6] =
    ["x-auth-email", "x-auth-role", "x-tenant-id", "x-tenant-name", "x-request-id", "x-prt-assertion"];

pub struct DemoApp {
    /// The assertion secret the gate signs with (Django's copy).
    secret: String,
}

impl DemoApp {
    pub fn new(secret: String) -> DemoApp {
        DemoApp { secret }
    }

    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let identity = self.identity(req.headers());
        if path.starts_with("/api/") {
            let body = json!({
                "upstream": "prt-gate demo app (stands in for Django)",
                "method": req.method().as_str(),
                "path": path,
                "identity": identity,
            });
            return respond("application/json", format!("{body:#}\n"));
        }
        let rows: String = IDENTITY
            .iter()
            .map(|h| {
                let v = identity["headers"][h].as_str().unwrap_or("(not sent)");
                let shown = if v.len() > 60 { format!("{}…", &v[..60]) } else { v.to_owned() };
                format!("<tr><th>{h}</th><td id=\"h-{h}\">{}</td></tr>", esc(&shown))
            })
            .collect();
        let verdict = match &identity["assertion"] {
            Value::Object(c) => format!(
                "verified (HS256, iss prt-gate, aud django): {} as {}, for {} {}",
                esc(c.get("email").and_then(Value::as_str).unwrap_or("")),
                esc(c.get("role").and_then(Value::as_str).unwrap_or("")),
                esc(c.get("method").and_then(Value::as_str).unwrap_or("")),
                esc(c.get("path").and_then(Value::as_str).unwrap_or("")),
            ),
            Value::String(e) => format!("NOT verified: {}", esc(e)),
            _ => "no assertion: this request did not come through the gate".to_owned(),
        };
        let who = identity["headers"]["x-auth-email"].as_str().unwrap_or("anonymous");
        let role = identity["headers"]["x-auth-role"].as_str().unwrap_or("");
        let page = PAGE
            .replace("{{who}}", &esc(who))
            .replace("{{role}}", &esc(role))
            .replace("{{path}}", &esc(path))
            .replace("{{rows}}", &rows)
            .replace("{{assertion}}", &verdict);
        respond("text/html; charset=utf-8", page)
    }

    /// The identity headers as received, and the verified assertion claims.
    fn identity(&self, headers: &HeaderMap) -> Value {
        let mut shown = serde_json::Map::new();
        for h in IDENTITY {
            if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()) {
                shown.insert(h.to_owned(), Value::String(v.to_owned()));
            }
        }
        let assertion = match headers.get("x-prt-assertion").and_then(|v| v.to_str().ok()) {
            None => Value::Null,
            Some(token) => {
                let mut v = Validation::new(Algorithm::HS256);
                v.set_issuer(&[ASSERTION_ISSUER]);
                v.set_audience(&["django"]);
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                match jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(self.secret.as_bytes()), &v) {
                    Ok(data) => data.claims,
                    Err(e) => Value::String(e.to_string()),
                }
            }
        };
        json!({ "headers": shown, "assertion": assertion })
    }
}

fn respond(content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp
}
