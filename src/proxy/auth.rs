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

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{self, HeaderMap};

use super::Gate;
use crate::cookie::SessionCookie;
use crate::oidc::flow::{canonical_role, Refreshed};
use crate::policy::Who;
use crate::response::Refusal;
use crate::session::{SessionId, SessionRecord, SessionStore};

/// A verified machine caller.
#[derive(Debug)]
pub struct BearerPrincipal {
    pub subject: String,
    pub email: String,
    pub role: String,
    pub features: BTreeMap<String, Vec<String>>,
    pub tenant_code: Option<String>,
}

/// The result of authentication.
#[derive(Debug)]
pub enum Caller {
    Anonymous,
    Session { id: SessionId, record: Arc<SessionRecord> },
    Bearer(BearerPrincipal),
}

impl Caller {
    /// The caller as the policy sees it.
    pub fn who(&self) -> Who<'_> {
        match self {
            Caller::Anonymous => Who::Anonymous,
            Caller::Session { record, .. } => Who::Session { role: &record.role, features: &record.features },
            Caller::Bearer(b) => Who::Bearer { role: &b.role, features: &b.features },
        }
    }

    pub fn email(&self) -> &str {
        match self {
            Caller::Anonymous => "",
            Caller::Session { record, .. } => &record.email,
            Caller::Bearer(b) => &b.email,
        }
    }

    /// The `tenant_code` claim the caller signed in (or presented a token) with.
    pub fn tenant_code(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::Session { record, .. } => record.tenant_code.as_deref(),
            Caller::Bearer(b) => b.tenant_code.as_deref(),
        }
    }

    pub fn role(&self) -> &str {
        match self {
            Caller::Anonymous => "",
            Caller::Session { record, .. } => &record.role,
            Caller::Bearer(b) => &b.role,
        }
    }
}

/// Authenticates with the credential the route accepts (`session`: the request's session
/// cookie, as `CookieSpec::lookup` found it).
pub async fn authenticate(
    gate: &Gate,
    headers: &HeaderMap,
    session: SessionCookie<'_>,
    bearer_route: bool,
) -> Result<Caller, Refusal> {
    if bearer_route {
        return Ok(match bearer_token(headers) {
            Some(token) => bearer(gate, token).await?,
            None => Caller::Anonymous,
        });
    }
    let Some(id) = session.id() else {
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
        Ok(claims) => {
            let Some(app) = claims.app(&oidc.app) else {
                return Err(Refusal::BearerNoRole);
            };
            let Some(role) = canonical_role(&app.role) else {
                return Err(Refusal::BearerNoRole);
            };
            Ok(Caller::Bearer(BearerPrincipal {
                subject: claims.sub.clone(),
                email: claims.email.clone().unwrap_or_default(),
                role: role.to_string(),
                features: app.features.clone(),
                tenant_code: app.tenant_code.clone(),
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
