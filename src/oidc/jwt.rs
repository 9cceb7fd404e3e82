//! SSO-signed JWT verification: ID tokens at login and Bearer tokens on
//! `auth = "bearer"` routes.
//!
//! * `alg` pinned to RS256 — `none`, HS256 (including HS256 keyed with the
//!   public key) and every other algorithm are refused before any key lookup;
//! * `kid` required, looked up in a JWKS cache; an unknown `kid` triggers a
//!   refetch, at most once per [`REFETCH_INTERVAL`] (a flood of random kids
//!   cannot turn the gate into a JWKS-fetching amplifier);
//! * `exp`, `iss`, `aud` required and checked, `nbf` honoured, an `iat` in
//!   the future refused (each with [`LEEWAY_SECS`] of clock skew); `nonce`
//!   for ID tokens; a non-numeric `exp` or `iat` is a malformed token.
//!
//! Neighbours: `oidc::flow` (callback) and the pipeline's authenticate phase.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::http::{SsoHttp, SsoHttpError};

/// Clock skew allowed between the gate and the SSO.
pub const LEEWAY_SECS: u64 = 60;

/// Minimum time between two JWKS fetches caused by unknown `kid`s.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not RS256")]
    Algorithm,
    #[error("token has no key id")]
    NoKid,
    #[error("token key id is unknown")]
    UnknownKid,
    #[error("token signature or claims invalid: {0}")]
    Invalid(String),
    #[error("token nonce does not match")]
    Nonce,
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

/// The application entry inside `application_roles`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AppRole {
    pub role: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub tenant_code: Option<String>,
}

/// Claims the gate reads from SSO tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct SsoClaims {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub is_sso_admin: Option<bool>,
    #[serde(default)]
    pub application_roles: HashMap<String, AppRole>,
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
}

impl SsoClaims {
    /// The configured application's role entry, if the user has one.
    pub fn app(&self, app: &str) -> Option<&AppRole> {
        self.application_roles.get(app)
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched: Option<Instant>,
}

/// Verifies SSO tokens against the SSO's JWKS.
pub struct Verifier {
    issuer: String,
    audience: String,
    jwks_url: String,
    http: SsoHttp,
    keys: RwLock<KeySet>,
    refetch: Mutex<()>,
}

impl Verifier {
    pub fn new(issuer: String, audience: String, jwks_url: String, http: SsoHttp) -> Self {
        Verifier {
            issuer,
            audience,
            jwks_url,
            http,
            keys: RwLock::new(KeySet { keys: HashMap::new(), fetched: None }),
            refetch: Mutex::new(()),
        }
    }

    /// Verifies an ID token; `nonce` must match the one sent at authorize.
    pub async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<SsoClaims, TokenError> {
        let claims = self.verify(token).await?;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(TokenError::Nonce);
        }
        Ok(claims)
    }

    /// Verifies a token's signature, algorithm, issuer, audience and expiry.
    pub async fn verify(&self, token: &str) -> Result<SsoClaims, TokenError> {
        let kid = rs256_kid(token)?;
        let key = self.key(&kid).await?;
        verify_with_key(token, &key, &self.issuer, &self.audience)
    }

    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, TokenError> {
        if let Some(k) = self.keys.read().await.keys.get(kid) {
            return Ok(k.clone());
        }
        // Unknown kid: refetch, single-flight and rate-limited.
        let _guard = self.refetch.lock().await;
        {
            let set = self.keys.read().await;
            if let Some(k) = set.keys.get(kid) {
                return Ok(k.clone());
            }
            if set.fetched.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
                return Err(TokenError::UnknownKid);
            }
        }
        let fetched = self.fetch().await;
        let mut set = self.keys.write().await;
        set.fetched = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                set.keys = keys;
                set.keys.get(kid).cloned().ok_or(TokenError::UnknownKid)
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed");
                Err(TokenError::KeysUnavailable)
            }
        }
    }

    /// Fetches the JWKS now (start-up warm-up and refetch).
    pub async fn refresh(&self) -> Result<usize, SsoHttpError> {
        let keys = self.fetch().await?;
        let n = keys.len();
        let mut set = self.keys.write().await;
        set.keys = keys;
        set.fetched = Some(Instant::now());
        Ok(n)
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, SsoHttpError> {
        let body = self.http.get(&self.jwks_url).await?;
        let jwks: Jwks = serde_json::from_slice(&body).map_err(|_| SsoHttpError::Body)?;
        Ok(parse_keys(jwks))
    }
}

/// The `kid` of a token whose header names RS256 (the only algorithm the SSO
/// uses). Pure: the front half of [`Verifier::verify`], fuzzed alone.
pub fn rs256_kid(token: &str) -> Result<String, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::Algorithm);
    }
    header.kid.ok_or(TokenError::NoKid)
}

/// Signature (RS256 only), `iss`, `aud`, `exp`/`nbf`/`iat` ([`LEEWAY_SECS`])
/// against one key. Pure: the back half of [`Verifier::verify`], fuzzed alone.
pub fn verify_with_key(token: &str, key: &DecodingKey, issuer: &str, audience: &str) -> Result<SsoClaims, TokenError> {
    let mut v = Validation::new(Algorithm::RS256);
    v.algorithms = vec![Algorithm::RS256];
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.leeway = LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    let claims = jsonwebtoken::decode::<SsoClaims>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| TokenError::Invalid(e.kind_name()))?;
    // A token issued in the future (beyond the skew) was minted with a wrong
    // clock or to outlive its `exp` check: refused.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if claims.iat.is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECS)) {
        return Err(TokenError::Invalid("issued in the future".into()));
    }
    Ok(claims)
}

fn parse_keys(jwks: Jwks) -> HashMap<String, Arc<DecodingKey>> {
    let mut out = HashMap::new();
    for k in jwks.keys {
        let usable = k.kty == "RSA"
            && k.alg.as_deref().is_none_or(|a| a == "RS256")
            && k.use_.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e), true) = (k.kid, k.n, k.e, usable) else { continue };
        if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
            out.insert(kid, Arc::new(key));
        }
    }
    out
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonwebtoken::errors::Error {
    /// The error kind without any token content.
    fn kind_name(&self) -> String {
        use jsonwebtoken::errors::ErrorKind as K;
        match self.kind() {
            K::InvalidSignature => "signature".into(),
            K::ExpiredSignature => "expired".into(),
            K::InvalidIssuer => "issuer".into(),
            K::InvalidAudience => "audience".into(),
            K::ImmatureSignature => "not yet valid".into(),
            K::MissingRequiredClaim(c) => format!("missing {c}"),
            K::InvalidAlgorithm => "algorithm".into(),
            _ => "malformed".into(),
        }
    }
}
