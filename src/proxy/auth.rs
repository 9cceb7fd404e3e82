//! The `authenticate` phase: who is calling?
//!
//! * On routes that accept Bearer tokens (`auth = "bearer"`), an
//!   `Authorization: Bearer …` JWT from the SSO, verified like an ID token
//!   (RS256 pinned, `exp`/`iss`/`aud`), with the role read from
//!   `application_roles.<sso.app>`.
//! * Everywhere else, the gate's session cookie, looked up in the store.
//!
//! A missing, malformed, unknown or expired credential is `Anonymous` — the
//! policy then asks for a login. A store that cannot answer is never
//! anonymous: it is a 503 (design §13, fail closed).
//!
//! A role enters as text in two places here, the Bearer token's claim and the
//! session record (parsed when the store reads it, `session::StoredRole`); from
//! then on it is a [`Role`], and [`Caller::who`] hands the policy the verified
//! [`Principal`], borrowed.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{self, HeaderMap};

use super::Gate;
use crate::cookie::SessionCookie;
use crate::oidc::flow::Refreshed;
use crate::policy::{Principal, Role, Who};
use crate::response::Refusal;
use crate::session::{IdMemo, SessionId, SessionRecord, SessionStore};

/// A verified machine caller: the claims of its Bearer JWT, moved out of the
/// verified token (not copied).
#[derive(Debug)]
pub struct BearerPrincipal {
    pub subject: String,
    pub email: String,
    pub role: Role,
    pub features: BTreeMap<String, Vec<String>>,
    pub tenant_code: Option<String>,
}

impl BearerPrincipal {
    /// The principal the policy sees: its tenant is resolved per request.
    pub fn principal(&self) -> Principal<'_> {
        Principal {
            subject: &self.subject,
            email: &self.email,
            role: Some(self.role),
            features: &self.features,
            features_arc: None,
            tenant_code: self.tenant_code.as_deref(),
            tenant: None,
        }
    }
}

/// The result of authentication.
#[derive(Debug)]
pub enum Caller {
    Anonymous,
    Session { id: SessionId, record: Arc<SessionRecord> },
    Bearer(BearerPrincipal),
}

impl Caller {
    /// The caller as the policy sees it: the verified principal, borrowed.
    pub fn who(&self) -> Who<'_> {
        match self {
            Caller::Anonymous => Who::Anonymous,
            Caller::Session { record, .. } => Who::Session(record.principal()),
            Caller::Bearer(b) => Who::Bearer(b.principal()),
        }
    }
}

/// Authenticates with the credential the route accepts (`session`: the request's session
/// cookie, as `CookieSpec::lookup` found it).
pub async fn authenticate(
    gate: &Gate,
    headers: &HeaderMap,
    session: SessionCookie<'_>,
    memo: &IdMemo,
    bearer_route: bool,
) -> Result<Caller, Refusal> {
    if bearer_route {
        return Ok(match bearer_token(headers) {
            Some(token) => bearer(gate, token).await?,
            None => Caller::Anonymous,
        });
    }
    let Some(id) = session.id_via(memo) else {
        return Ok(Caller::Anonymous);
    };
    match gate.store.get(&id).await {
        Ok(Some(record)) => {
            // Optional refresh: re-read the role once the access token expired.
            if let (Some(oidc), Some(tokens)) = (gate.oidc.as_ref(), record.tokens.as_ref()) {
                if oidc.refresh && tokens.access_expiry <= now_secs() {
                    return Ok(match oidc.refresh(&gate.store, &id, &record).await {
                        Refreshed::Updated(fresh) => Caller::Session { id, record: fresh },
                        Refreshed::Ended => Caller::Anonymous,
                        Refreshed::Unchanged => Caller::Session { id, record },
                    });
                }
            }
            Ok(Caller::Session { id, record })
        }
        Ok(None) => Ok(Caller::Anonymous),
        Err(e) => {
            tracing::warn!(error = %e, "session store unavailable");
            Err(Refusal::StoreUnavailable)
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `Authorization: Bearer <token>` (exactly one header, scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let v = v.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

async fn bearer(gate: &Gate, token: &str) -> Result<Caller, Refusal> {
    let Some(oidc) = gate.oidc.as_ref() else {
        return Ok(Caller::Anonymous);
    };
    match oidc.verifier.verify(token).await {
        Ok(mut claims) => {
            let Some(app) = claims.application_roles.remove(&oidc.app) else {
                return Err(Refusal::BearerNoRole);
            };
            let Some(role) = Role::from_claim(&app.role) else {
                return Err(Refusal::BearerNoRole);
            };
            Ok(Caller::Bearer(BearerPrincipal {
                subject: claims.sub,
                email: claims.email.unwrap_or_default(),
                role,
                features: app.features,
                tenant_code: app.tenant_code,
            }))
        }
        Err(crate::oidc::jwt::TokenError::KeysUnavailable) => Err(Refusal::SsoUnavailable),
        Err(e) => {
            tracing::info!(error = %e, "bearer token refused");
            Err(Refusal::BearerInvalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;
    use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

    #[test]
    fn bearer_header_table() {
        let rows: &[(&[&str], Option<&str>)] = &[
            (&["Bearer abc"], Some("abc")),
            (&["bearer abc"], Some("abc")),
            (&["BEARER  abc "], Some("abc")),
            (&["Basic abc"], None),
            (&["Bearer "], None),
            (&["Bearer"], None),
            (&["Bearer a", "Bearer b"], None),
            (&[], None),
        ];
        for (values, expected) in rows {
            let mut h = HeaderMap::new();
            for v in *values {
                h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(bearer_token(&h), *expected, "{values:?}");
        }
    }
}
