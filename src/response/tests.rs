//! Every constructor, table-driven: each answer carries the gate's security headers
//! (`secure`) whatever its status, body or caller kind.

use std::path::Path;

use http::header::{HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::*;
use crate::normalize::{normalize, NormalizeError};
use crate::policy::{Auth, Denial, Features, Role, Verdict, Who};

/// A real denial: a Client asking for an Admin-only route.
fn denial() -> Denial {
    let text = "[[route]]\npath = \"/admin/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]\n";
    let (config, _) = crate::config::Config::from_str_at(Path::new("policy.toml"), text).unwrap();
    let features = Features::new();
    let path = normalize("/admin/").unwrap();
    match config.policy.route_for(&Method::GET, &path).decide(Who::claims(Auth::Session, Role::Client, &features)) {
        Verdict::Deny(d) | Verdict::Redirect { denial: d, .. } => d,
        v => panic!("expected a denial, got {}", v.decision()),
    }
}

/// What is missing from the security header set (empty: all there).
fn missing(h: &HeaderMap, rid: &str) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if h.get("x-content-type-options").is_none_or(|v| v != "nosniff") {
        missing.push("x-content-type-options: nosniff");
    }
    let cache = h.get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !cache.split(',').any(|d| d.trim() == "no-store") {
        missing.push("cache-control: no-store");
    }
    if h.get("x-request-id").is_none_or(|v| v != rid) {
        missing.push("x-request-id");
    }
    missing
}

#[test]
fn every_gate_answer_carries_the_security_headers() {
    let rid = HeaderValue::from_static("rid-7");
    let d = denial();
    let page_text = Page { status: StatusCode::BAD_REQUEST, title: "Sign-in failed", msg: "Fixed." };
    let mut rows: Vec<(String, Response<GateBody>, u16)> = vec![
        ("login browser".into(), login(true, "/x?a=1", Some("https://prt.example"), &rid), 302),
        ("login api".into(), login(false, "/api/x/", None, &rid), 401),
        ("deny page".into(), deny(true, &d, &rid), 403),
        ("deny api".into(), deny(false, &d, &rid), 403),
        ("landing browser".into(), landing(true, "/client.html", &d, None, &rid), 302),
        ("landing api".into(), landing(false, "/client.html", &d, None, &rid), 403),
        ("media".into(), media("https://s3.example/b/k?X-Amz-Signature=s".into(), &rid), 302),
        ("redirect".into(), redirect("https://sso.example/authorize?state=s", &rid), 302),
        ("page".into(), page(page_text, &rid), 400),
        ("logout confirm".into(), logout_confirm(StatusCode::OK, &rid), 200),
        ("logout confirm 403".into(), logout_confirm(StatusCode::FORBIDDEN, &rid), 403),
        ("too many".into(), too_many(30, &rid), 429),
    ];
    let refusals = [
        (Refusal::Path(NormalizeError::Fragment), 400),
        (Refusal::Request(Malformed::MissingHost), 400),
        (Refusal::UriTooLong, 414),
        (Refusal::BearerInvalid, 401),
        (Refusal::BearerNoRole, 403),
        (Refusal::MediaMissing, 404),
        (Refusal::Internal(Internal::AssertionSign), 500),
        (Refusal::UpstreamConnect, 502),
        (Refusal::StoreUnavailable, 503),
        (Refusal::UpstreamTimeout, 504),
    ];
    for (refusal, status) in refusals {
        for html in [false, true] {
            rows.push((format!("rescue {refusal} html={html}"), rescue(refusal, html, &rid), status));
        }
    }
    for (name, resp, status) in &rows {
        assert_eq!(resp.status().as_u16(), *status, "{name}");
        assert_eq!(missing(resp.headers(), "rid-7"), Vec::<&str>::new(), "{name}");
    }
    // Narrowed where the answer needs it: a media grant is a bearer credential.
    let media = &rows.iter().find(|(n, ..)| n == "media").unwrap().1;
    assert_eq!(media.headers()["cache-control"], "no-store, private");
    assert_eq!(media.headers()["referrer-policy"], "no-referrer");
    let confirm = &rows.iter().find(|(n, ..)| n == "logout confirm").unwrap().1;
    assert_eq!(confirm.headers()["x-frame-options"], "DENY");
    assert_eq!(confirm.headers()["content-security-policy"], "frame-ancestors 'none'");
    assert_eq!(rows.iter().find(|(n, ..)| n == "too many").unwrap().1.headers()["retry-after"], "30");

    // Positive control: a response built outside this module has none of them.
    let bare: Response<GateBody> = Response::new(GateBody::empty());
    assert_eq!(missing(bare.headers(), "rid-7").len(), 3);
}

#[test]
fn redirects_carry_a_location_only_when_it_is_a_valid_header_value() {
    let rid = HeaderValue::from_static("r");
    let ok = redirect("https://prt.example/a?b=c", &rid);
    assert_eq!(ok.headers()["location"], "https://prt.example/a?b=c");
    let bad = redirect("https://prt.example/\n", &rid);
    assert!(bad.headers().get("location").is_none());
    assert!(missing(bad.headers(), "r").is_empty());
}
