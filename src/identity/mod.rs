//! Identity headers: strip every client-supplied copy, inject the gate's own.
//!
//! Django reads identity from request headers, and Django's WSGI layer maps
//! `X-Tenant-Id`, `X-Tenant_Id` and `x-tenant-id` to the same
//! `HTTP_X_TENANT_ID`. So the gate (design §8, §6.3):
//!
//! * drops every header whose name contains `_` (no legitimate client needs
//!   one, and it is the classic way to smuggle a second identity);
//! * removes every copy (all lines, whatever the case) of every reserved name:
//!   `X-Tenant-Id`, `X-Tenant-Name`, `X-Auth-*`, `X-Prt-*`,
//!   `X-Forwarded-User`, `X-Remote-User`, `Remote-User`;
//! * then sets the identity headers ([`inject`]) from a policy [`Permit`] only: the
//!   permit carries the principal it was issued for, so there is no identity to
//!   inject without one.
//!
//! The stripping itself is part of the request's one header pass
//! (`proxy::headers::strip_inbound`); the names are decided here.
//!
//! Pure: operates on a `HeaderMap`; the pipeline decides when.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{Config, TenantMode};
use crate::policy::Permit;

mod assertion;
pub use assertion::{
    AssertionClaims, AssertionError, AssertionSigner, ASSERTION_ISSUER, ASSERTION_TTL_SECS, MIN_SECRET_BYTES,
};

pub const X_TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
pub const X_TENANT_NAME: HeaderName = HeaderName::from_static("x-tenant-name");
pub const X_AUTH_EMAIL: HeaderName = HeaderName::from_static("x-auth-email");
pub const X_AUTH_ROLE: HeaderName = HeaderName::from_static("x-auth-role");
pub const X_PRT_ASSERTION: HeaderName = HeaderName::from_static("x-prt-assertion");

/// Exact reserved names (compared after lower-casing, which `http` already did).
const RESERVED_EXACT: &[&str] = &["x-tenant-id", "x-tenant-name", "x-forwarded-user", "x-remote-user", "remote-user"];
/// Reserved name prefixes.
const RESERVED_PREFIXES: &[&str] = &["x-auth-", "x-prt-"];

/// True for a header name the client must never be able to set.
///
/// `name` is the lower-case form `http` stores. Names containing `_` count as
/// reserved too: they are dropped whatever they spell.
pub fn is_reserved(name: &str) -> bool {
    name.contains('_') || RESERVED_EXACT.contains(&name) || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Sets the tenant headers (replacing, never appending).
pub fn inject_tenant(headers: &mut HeaderMap, tenant: &crate::config::TenantConfig) {
    headers.insert(X_TENANT_ID, tenant.id_header.clone());
    headers.insert(X_TENANT_NAME, tenant.name_header.clone());
}

/// The request an assertion is issued for (its `jti`, `method` and `path` claims).
#[derive(Debug, Clone, Copy)]
pub struct Bound<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    /// The normalized path, as forwarded.
    pub path: &'a str,
}

/// Why no identity could be injected: the request is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// A Bearer caller whose `tenant_code` the configuration does not map (`claim` mode):
    /// no tenant, no identity, no request.
    #[error("the caller's tenant code maps to no tenant")]
    NoTenant,
    #[error("tenant id or name not representable as a header value")]
    TenantHeader,
    #[error("cannot sign the assertion")]
    Sign,
}

/// Sets the tenant headers, `X-Auth-Email`, `X-Auth-Role` and (with a `signer`) the signed
/// `X-Prt-Assertion`, replacing whatever is there, from the permit's principal only.
///
/// The tenant is the configured one (`static` mode), the one fixed at login (a session),
/// or the one the Bearer token's `tenant_code` maps to now.
pub fn inject(
    headers: &mut HeaderMap,
    permit: &Permit<'_>,
    config: &Config,
    signer: Option<&AssertionSigner>,
    bound: Bound<'_>,
) -> Result<(), InjectError> {
    let who = permit.principal();
    let role = permit.role().as_str();
    let (tenant_id, tenant_name) = match (config.tenant.mode, who.tenant) {
        (TenantMode::Static, _) => (config.tenant.id.as_str(), config.tenant.name.as_str()),
        (_, Some(fixed)) => fixed,
        (_, None) => config.tenant.resolve(who.tenant_code).ok_or(InjectError::NoTenant)?,
    };
    if config.tenant.mode == TenantMode::Static {
        // no alloc: prebuilt header values.
        inject_tenant(headers, &config.tenant);
    } else {
        let (Ok(i), Ok(n)) = (HeaderValue::from_str(tenant_id), HeaderValue::from_str(tenant_name)) else {
            return Err(InjectError::TenantHeader);
        };
        headers.insert(X_TENANT_ID, i);
        headers.insert(X_TENANT_NAME, n);
    }
    if let Ok(v) = HeaderValue::from_str(who.email) {
        headers.insert(X_AUTH_EMAIL, v);
    }
    headers.insert(X_AUTH_ROLE, HeaderValue::from_static(role));
    if let Some(signer) = signer {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = AssertionClaims {
            iss: ASSERTION_ISSUER,
            aud: &config.assertion.audience,
            sub: who.subject,
            email: who.email,
            role,
            features: who.features,
            features_arc: who.features_arc,
            tenant_id,
            tenant_name,
            tenant_code: who.tenant_code,
            iat,
            exp: iat + ASSERTION_TTL_SECS,
            jti: bound.request_id,
            method: bound.method,
            path: bound.path,
        };
        headers.insert(X_PRT_ASSERTION, signer.sign(&claims).map_err(|_| InjectError::Sign)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Who;

    #[test]
    fn reserved_names_table() {
        let rows: &[(&str, bool)] = &[
            ("x-tenant-id", true),
            ("x-tenant_id", true),
            ("x_tenant_id", true),
            ("x-tenant-name", true),
            ("x-auth-email", true),
            ("x-auth-role", true),
            ("x-auth-anything", true),
            ("x-prt-assertion", true),
            ("x-prt-", true),
            ("x-forwarded-user", true),
            ("x-remote-user", true),
            ("remote-user", true),
            ("remote_user", true),
            ("any_thing", true),
            // negatives: look alike, are not reserved
            ("x-tenant", false),
            ("x-tenant-idx", false),
            ("x-authorization", false),
            ("authorization", false),
            ("x-forwarded-for", false),
            ("x-request-id", false),
            ("cookie", false),
            ("x-prtx", false),
            ("user", false),
        ];
        for (name, reserved) in rows {
            assert_eq!(is_reserved(name), *reserved, "{name}");
        }
    }

    /// A config with `tenant` TOML and one rule every role passes (`/api/x/`).
    fn config(tenant: &str) -> crate::config::Config {
        let toml = format!(
            "{tenant}\n[[route]]\npath = \"/api/x/\"\nroles = [\"Admin\", \"Office\", \"Operator\", \"Client\"]\n\
             [[route]]\npath = \"/api/b/\"\nauth = \"bearer\"\nroles = [\"Office\"]\n"
        );
        crate::config::Config::from_str_at(std::path::Path::new("t.toml"), &toml).unwrap().0
    }

    const CLAIM: &str = "[tenant]\nmode = \"claim\"\n\n[tenant.codes]\n\
                         PRT = { id = \"primetrade\", name = \"PrimeTrade Logistics\" }\n\
                         ACME = { id = \"acme\", name = \"Acme Metals\" }\n";

    /// The permit the policy issues for `who` on `path` (only `policy` can build one).
    fn permit<'a>(config: &crate::config::Config, path: &str, who: Who<'a>) -> Permit<'a> {
        let path = crate::normalize::normalize(path).unwrap();
        let tenant = config.tenant.caller_code(who.principal().and_then(|p| p.tenant_code));
        match config.policy.route_for(&http::Method::GET, &path).decide_in(who, tenant) {
            crate::policy::Verdict::Allow(p) => p,
            other => panic!("{other:?}"),
        }
    }

    /// Two headers' values as text.
    fn text(h: &HeaderMap, a: HeaderName, b: HeaderName) -> (&str, &str) {
        (h[a].to_str().unwrap(), h[b].to_str().unwrap())
    }

    fn claims_of(h: &HeaderMap, secret: &crate::secret::Secret<String>) -> serde_json::Value {
        use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&["django"]);
        let token = h.get(X_PRT_ASSERTION).expect("assertion").to_str().unwrap();
        decode::<serde_json::Value>(token, &DecodingKey::from_secret(secret.expose().as_bytes()), &v).unwrap().claims
    }

    /// Everything injected comes from the permit's principal: a session's tenant is the one
    /// fixed at login (not re-resolved), the role is the permit's, the assertion binds the
    /// request. Negative control: another principal's permit injects another identity.
    #[test]
    fn inject_reads_the_identity_from_the_permit() {
        use crate::policy::{Principal, Role};
        let config = config(CLAIM);
        let secret = crate::secret::Secret::new("s".repeat(32));
        let signer = AssertionSigner::new(&secret).unwrap();
        let features = [("bol".to_string(), vec!["view".to_string()])].into_iter().collect();
        let ada = Principal {
            subject: "sub-ada",
            email: "ada@example.com",
            role: Some(Role::Office),
            features: &features,
            features_arc: None,
            tenant_code: Some("ACME"),
            // Fixed at login; the configuration's ACME mapping is not consulted again.
            tenant: Some(("acme-at-login", "Acme at login")),
        };
        let bound = Bound { request_id: "rid-1", method: "GET", path: "/api/x/" };
        let mut h = HeaderMap::new();
        h.insert(X_AUTH_EMAIL, HeaderValue::from_static("forged@example.com"));
        inject(&mut h, &permit(&config, "/api/x/", Who::Session(ada)), &config, Some(&signer), bound).unwrap();
        assert_eq!(h.get_all(X_AUTH_EMAIL).iter().collect::<Vec<_>>(), vec!["ada@example.com"]);
        assert_eq!(h[X_AUTH_ROLE], "Office");
        assert_eq!(text(&h, X_TENANT_ID, X_TENANT_NAME), ("acme-at-login", "Acme at login"));
        let c = claims_of(&h, &secret);
        assert_eq!(
            (&c["sub"], &c["email"], &c["role"], &c["tenant_id"], &c["tenant_code"]),
            (&"sub-ada".into(), &"ada@example.com".into(), &"Office".into(), &"acme-at-login".into(), &"ACME".into())
        );
        assert_eq!((&c["jti"], &c["method"], &c["path"]), (&"rid-1".into(), &"GET".into(), &"/api/x/".into()));
        assert_eq!(c["features"]["bol"][0], "view");

        let none = crate::policy::Features::new();
        let bob = Principal { email: "bob@example.com", role: Some(Role::Client), features: &none, ..ada };
        let mut h = HeaderMap::new();
        inject(&mut h, &permit(&config, "/api/x/", Who::Session(bob)), &config, Some(&signer), bound).unwrap();
        assert_eq!(text(&h, X_AUTH_EMAIL, X_AUTH_ROLE), ("bob@example.com", "Client"));
        assert_eq!(claims_of(&h, &secret)["features"], serde_json::json!({}));
    }

    /// A Bearer principal has no tenant fixed at login: its `tenant_code` is mapped per
    /// request, and a code the configuration does not map injects nothing (no request).
    /// In `static` mode every caller gets the configured tenant.
    #[test]
    fn a_bearer_tenant_is_resolved_per_request_and_an_unmapped_one_refused() {
        use crate::policy::{Principal, Role};
        let none = crate::policy::Features::new();
        let bearer = |code| Principal {
            subject: "svc",
            email: "svc@example.com",
            role: Some(Role::Office),
            features: &none,
            features_arc: None,
            tenant_code: code,
            tenant: None,
        };
        let bound = Bound { request_id: "rid", method: "GET", path: "/api/b/" };
        let claim = config(CLAIM);
        let mut h = HeaderMap::new();
        inject(&mut h, &permit(&claim, "/api/b/", Who::Bearer(bearer(Some("ACME")))), &claim, None, bound).unwrap();
        assert_eq!(text(&h, X_TENANT_ID, X_TENANT_NAME), ("acme", "Acme Metals"));
        assert!(h.get(X_PRT_ASSERTION).is_none(), "no signer, no assertion");
        for code in [Some("NOPE"), None] {
            let mut h = HeaderMap::new();
            let p = permit(&claim, "/api/b/", Who::Bearer(bearer(code)));
            assert_eq!(inject(&mut h, &p, &claim, None, bound), Err(InjectError::NoTenant), "{code:?}");
            assert!(h.is_empty(), "{h:?}");
        }
        let fixed = config("");
        let mut h = HeaderMap::new();
        inject(&mut h, &permit(&fixed, "/api/b/", Who::Bearer(bearer(Some("NOPE")))), &fixed, None, bound).unwrap();
        assert_eq!((&h[X_TENANT_ID], &h[X_TENANT_NAME]), (&fixed.tenant.id_header, &fixed.tenant.name_header));
    }

    #[test]
    fn inject_replaces_not_appends() {
        let (config, _) = crate::config::Config::from_str_at(std::path::Path::new("t.toml"), "").unwrap();
        let mut h = HeaderMap::new();
        h.append("x-tenant-id", HeaderValue::from_static("evil"));
        inject_tenant(&mut h, &config.tenant);
        let all: Vec<_> = h.get_all("x-tenant-id").iter().collect();
        assert_eq!(all, vec!["primetrade"]);
    }
}
