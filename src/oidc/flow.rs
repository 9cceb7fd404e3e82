//! The login flow: `/auth/login/` → SSO authorize → `/auth/callback/` →
//! session → `Set-Cookie` → `next`; and `/auth/logout/`.
//!
//! * Login state (PKCE verifier, nonce, `next`) lives server side under the
//!   hash of a fresh `state`, single use, 10 minutes: parallel logins in two
//!   tabs each have their own state and both succeed.
//! * The callback exchanges the code with `client_secret_post`, verifies the
//!   ID token (RS256, `exp`/`iss`/`aud`/`nonce`), reads the role from
//!   `application_roles.<sso.app>` and refuses users without one (403 page,
//!   no session). A **new** session id is minted at every login; a session
//!   cookie the browser brought is deleted, never reused (no fixation).
//! * The callback is answered only to the browser that started the login
//!   (a per-login cookie, `oidc::binding`): no login CSRF.
//! * Nothing here logs a token, code, state or cookie value.
//!
//! The endpoints return an [`Answer`] (a redirect or a page, and the cookies to set);
//! `proxy::owned` writes it with `crate::response`, so these pages carry the same
//! security headers as every other gate answer.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::http::SsoHttp;
use super::jwt::{SsoClaims, TokenError, Verifier};
use super::next::safe_next;
use crate::config::{Config, SsoEndpoints};
use crate::cookie::CookieSpec;
use crate::policy::{Policy, Role};
use crate::response::Page;
use crate::secret::Secret;
use crate::session::{LoginState, SessionId, SessionRecord, SessionStore, Store, StoredTokens, LOGIN_STATE_TTL};

/// Everything the login flow needs, built once from the config.
pub struct Oidc {
    pub endpoints: SsoEndpoints,
    pub client_id: String,
    client_secret: Secret<String>,
    pub app: String,
    /// `{public}/auth/callback/` — must match the SSO registration exactly.
    pub redirect_uri: String,
    /// `{public}` origin, prefixed to every redirect so it cannot leave it.
    pub public_origin: String,
    pub verifier: Verifier,
    http: SsoHttp,
    pub cookie: CookieSpec,
    /// Keep the refresh token and re-read roles (`sso.refresh`).
    pub refresh: bool,
    refresh_interval: u64,
    tenant: crate::config::TenantConfig,
}

/// What a login-flow endpoint answers: `proxy::owned` writes it (`crate::response`).
#[derive(Debug)]
pub enum Answer {
    /// 302 to the SSO, to `next` or the landing page, or to the SSO's logout.
    Redirect { location: String, cookies: Vec<HeaderValue> },
    /// A page with a fixed message.
    Page { page: Page, cookies: Vec<HeaderValue> },
}

impl Answer {
    fn page(page: Page) -> Answer {
        Answer::Page { page, cookies: Vec::new() }
    }

    /// The `Set-Cookie`s it carries (set or expire).
    fn cookies_mut(&mut self) -> &mut Vec<HeaderValue> {
        match self {
            Answer::Redirect { cookies, .. } | Answer::Page { cookies, .. } => cookies,
        }
    }
}

/// How a callback ended: the answer, the metric label, and the new session (audited).
pub struct Callback {
    pub answer: Answer,
    pub outcome: LoginOutcome,
    pub session: Option<SessionId>,
}

impl Callback {
    fn refused(page: Page, outcome: LoginOutcome) -> Callback {
        Callback { answer: Answer::page(page), outcome, session: None }
    }
}

/// The sign-in service (or the session store) cannot be used now.
const UNAVAILABLE: Page = Page {
    status: StatusCode::SERVICE_UNAVAILABLE,
    title: "Sign-in unavailable",
    msg: "The sign-in service is temporarily unavailable. Please try again in a moment.",
};

/// No SSO is configured: nobody can sign in.
pub const NO_SSO: Page = Page {
    status: StatusCode::SERVICE_UNAVAILABLE,
    title: "Sign-in unavailable",
    msg: "No SSO is configured for this gate (sso.base_url).",
};

const MISCONFIGURED: Page = Page {
    status: StatusCode::SERVICE_UNAVAILABLE,
    title: "Sign-in unavailable",
    msg: "The sign-in service is misconfigured.",
};

const UNBOUND: Page = Page {
    status: StatusCode::FORBIDDEN,
    title: "Sign-in not started here",
    msg: "This sign-in link was not started in this browser, so it was not used. \
          To sign in, start again from the application.",
};

const NO_ACCESS: Page = Page {
    status: StatusCode::FORBIDDEN,
    title: "No access",
    msg: "Your account has no access to PrimeTrade. Ask an administrator to grant you a role.",
};

const SIGNED_OUT: Page = Page { status: StatusCode::OK, title: "Signed out", msg: "You are signed out." };

/// 400 "Sign-in failed" with a fixed reason.
const fn failed(msg: &'static str) -> Page {
    Page { status: StatusCode::BAD_REQUEST, title: "Sign-in failed", msg }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcBuildError {
    #[error("sso.base_url is not set")]
    NoSso,
    #[error("gate.public_url is not set")]
    NoPublicUrl,
    #[error("PRT_GATE_SSO__CLIENT_SECRET is not set")]
    NoSecret,
    #[error("sso.client_id is not set")]
    NoClientId,
    #[error("cannot build the SSO client: {0}")]
    Http(#[from] super::http::SsoHttpError),
}

impl Oidc {
    pub fn from_config(config: &Config) -> Result<Oidc, OidcBuildError> {
        let endpoints = config.sso.endpoints.clone().ok_or(OidcBuildError::NoSso)?;
        let public = config.gate.public_url.as_ref().ok_or(OidcBuildError::NoPublicUrl)?;
        let client_id = config.sso.client_id.clone().ok_or(OidcBuildError::NoClientId)?;
        let client_secret = config.sso.client_secret.clone().ok_or(OidcBuildError::NoSecret)?;
        let http = SsoHttp::new(config.sso.timeout)?;
        super::http::check_url(&endpoints.token)?;
        let verifier = Verifier::new(endpoints.issuer.clone(), client_id.clone(), endpoints.jwks.clone(), http.clone());
        Ok(Oidc {
            redirect_uri: format!("{}/auth/callback/", public.origin),
            public_origin: public.origin.clone(),
            endpoints,
            client_id,
            client_secret,
            app: config.sso.app.clone(),
            verifier,
            http,
            cookie: CookieSpec::from_config(config),
            refresh: config.sso.refresh,
            refresh_interval: config.sso.refresh_interval.as_secs(),
            tenant: config.tenant.clone(),
        })
    }

    fn absolute(&self, path: &str) -> String {
        format!("{}{}", self.public_origin, path)
    }

    /// `GET /auth/login/?next=…[&login_hint=…]` (and the legacy `/login/`).
    pub async fn login<B>(&self, store: &Store, req: &Request<B>) -> Answer {
        let q = query_map(req.uri().query());
        let next = q.get("next").and_then(|n| safe_next(n));
        let state = random_token();
        let verifier = random_token();
        let nonce = random_token();
        let st = LoginState {
            pkce_verifier: Secret::new(verifier.clone()),
            nonce: Secret::new(nonce.clone()),
            next,
            created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        if let Err(e) = store.put_login_state(&state, &st, LOGIN_STATE_TTL).await {
            tracing::warn!(error = %e, "login: cannot store login state");
            return Answer::page(UNAVAILABLE);
        }
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut url = match url::Url::parse(&self.endpoints.authorize) {
            Ok(u) => u,
            Err(_) => return Answer::page(MISCONFIGURED),
        };
        {
            let mut qp = url.query_pairs_mut();
            qp.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", "openid email profile roles")
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) =
                q.get("login_hint").filter(|h| h.len() <= 254 && h.bytes().all(|b| b.is_ascii_graphic()))
            {
                qp.append_pair("login_hint", hint);
            }
        }
        let mut cookies = self.cookie.login_excess(req.headers());
        cookies.push(self.cookie.login_set(&state));
        Answer::Redirect { location: url.into(), cookies }
    }

    /// `GET /auth/callback/?code=…&state=…`, answered only to the browser
    /// that started the login (`binding`): any other gets a 403 page and
    /// keeps its session as it was.
    pub async fn callback<B>(&self, store: &Store, policy: &Policy, req: &Request<B>) -> Callback {
        let q = query_map(req.uri().query());
        let Some(state) = q.get("state") else {
            return Callback::refused(failed("The sign-in response is incomplete."), LoginOutcome::BadRequest);
        };
        if !self.cookie.login_bound(req.headers(), state) {
            return Callback::refused(UNBOUND, LoginOutcome::Unbound);
        }
        let mut done = self.callback_bound(store, policy, req, &q, state).await;
        done.answer.cookies_mut().push(self.cookie.login_expire(state));
        done
    }

    async fn callback_bound<B>(
        &self,
        store: &Store,
        policy: &Policy,
        req: &Request<B>,
        q: &std::collections::HashMap<String, String>,
        state: &str,
    ) -> Callback {
        let st = match store.take_login_state(state).await {
            Ok(Some(st)) => st,
            Ok(None) => {
                let expired = failed("This sign-in link has expired or was already used.");
                return Callback::refused(expired, LoginOutcome::BadState);
            }
            Err(e) => {
                tracing::warn!(error = %e, "callback: login state unavailable");
                return Callback::refused(UNAVAILABLE, LoginOutcome::StoreUnavailable);
            }
        };
        if q.contains_key("error") {
            return Callback::refused(failed("The sign-in service refused the request."), LoginOutcome::SsoError);
        }
        let Some(code) = q.get("code") else {
            return Callback::refused(failed("The sign-in response is incomplete."), LoginOutcome::BadRequest);
        };
        let tokens = match self.exchange(code, st.pkce_verifier.expose()).await {
            Ok(t) => t,
            Err(ExchangeError::Unavailable) => return Callback::refused(UNAVAILABLE, LoginOutcome::SsoUnavailable),
            Err(ExchangeError::Refused) => {
                return Callback::refused(failed("The sign-in service refused the code."), LoginOutcome::SsoError)
            }
        };
        let claims = match self.verifier.verify_id_token(tokens.id_token.expose(), st.nonce.expose()).await {
            Ok(c) => c,
            Err(TokenError::KeysUnavailable) => return Callback::refused(UNAVAILABLE, LoginOutcome::SsoUnavailable),
            Err(e) => {
                tracing::warn!(error = %e, "callback: ID token refused");
                let unverified = failed("The sign-in response could not be verified.");
                return Callback::refused(unverified, LoginOutcome::BadToken);
            }
        };
        let Some(record) = self.record_from(&claims) else {
            return Callback::refused(NO_ACCESS, LoginOutcome::NoRole);
        };
        let mut record = record;
        if self.refresh {
            record.tokens = tokens.stored(self.refresh_interval);
        }
        let landing = record.role.role().map_or("/", |r| policy.landing(r));
        // No fixation: whatever session the browser had ends here.
        for old in self.cookie.read_all(req.headers()) {
            let _ = store.delete(&old).await;
        }
        let id = match store.create(record).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "callback: cannot create session");
                return Callback::refused(UNAVAILABLE, LoginOutcome::StoreUnavailable);
            }
        };
        let target = st.next.unwrap_or_else(|| landing.to_string());
        let answer = Answer::Redirect { location: self.absolute(&target), cookies: vec![self.cookie.set(&id)] };
        Callback { answer, outcome: LoginOutcome::Ok, session: Some(id) }
    }

    /// `/auth/logout/` and `/logout/`: delete server side, expire the cookie,
    /// and send the browser to the SSO's RP-logout.
    pub async fn logout<B>(&self, store: &Store, req: &Request<B>) -> Answer {
        for id in self.cookie.read_all(req.headers()) {
            if let Err(e) = store.delete(&id).await {
                tracing::warn!(error = %e, "logout: session store unavailable; cookie expired anyway");
            }
        }
        let mut url = match url::Url::parse(&self.endpoints.logout) {
            Ok(u) => u,
            Err(_) => return Answer::page(SIGNED_OUT),
        };
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("post_logout_redirect_uri", &self.absolute("/auth/login/"));
        Answer::Redirect { location: url.into(), cookies: vec![self.cookie.expire()] }
    }

    /// The session record for verified claims, or `None` if the user has no
    /// (known) role for this application.
    pub fn record_from(&self, claims: &SsoClaims) -> Option<SessionRecord> {
        let app = claims.app(&self.app)?;
        let role = Role::from_claim(&app.role)?;
        // `claim` mode: a user whose tenant code is unknown is refused.
        let (tenant_id, tenant_name) = self.tenant.resolve(app.tenant_code.as_deref())?;
        Some(SessionRecord {
            subject: claims.sub.clone(),
            email: claims.email.clone().unwrap_or_default(),
            name: claims.name.clone().unwrap_or_default(),
            role: role.into(),
            features: std::sync::Arc::new(app.features.clone()),
            tenant_id: tenant_id.to_string(),
            tenant_name: tenant_name.to_string(),
            tenant_code: app.tenant_code.clone(),
            created: 0,
            last_seen: 0,
            absolute_expiry: 0,
            idle_timeout_secs: 0,
            tokens: None,
        })
    }

    /// Token refresh (`sso.refresh = true`): when the access token has
    /// expired, redeem the refresh token, verify the new ID token and re-read
    /// the role, so a role revoked at the SSO ends access at the next refresh.
    pub async fn refresh(&self, store: &Store, id: &SessionId, record: &SessionRecord) -> Refreshed {
        let Some(tokens) = record.tokens.as_ref() else { return Refreshed::Unchanged };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", tokens.refresh_token.expose())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .finish();
        let resp = match self.token_request(body).await {
            Ok(t) => t,
            Err(ExchangeError::Unavailable) => return Refreshed::Unchanged,
            Err(ExchangeError::Refused) => {
                // Another request or replica may have rotated the token first.
                if let Ok(Some(current)) = store.get(id).await {
                    let rotated = current.tokens.as_ref().map(|t| t.refresh_token.expose())
                        != Some(tokens.refresh_token.expose());
                    if rotated {
                        return Refreshed::Updated(current);
                    }
                }
                let _ = store.delete(id).await;
                return Refreshed::Ended;
            }
        };
        let claims = match self.verifier.verify(resp.id_token.expose()).await {
            Ok(c) if c.sub == record.subject => c,
            Ok(_) | Err(_) => return Refreshed::Unchanged,
        };
        match self.record_from(&claims) {
            None => {
                let _ = store.delete(id).await;
                Refreshed::Ended
            }
            Some(mut fresh) => {
                fresh.tokens = resp.stored(self.refresh_interval);
                match store.update(id, fresh.clone()).await {
                    Ok(true) => Refreshed::Updated(std::sync::Arc::new(fresh)),
                    Ok(false) => Refreshed::Ended,
                    Err(_) => Refreshed::Unchanged,
                }
            }
        }
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenResponse, ExchangeError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("code_verifier", verifier)
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .finish();
        self.token_request(body).await
    }

    async fn token_request(&self, body: String) -> Result<TokenResponse, ExchangeError> {
        let req = Request::post(&self.endpoints.token)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| ExchangeError::Unavailable)?;
        let (status, body) = self.http.send(req).await.map_err(|e| {
            tracing::warn!(error = %e, "token exchange failed");
            ExchangeError::Unavailable
        })?;
        if status.is_server_error() {
            return Err(ExchangeError::Unavailable);
        }
        if !status.is_success() {
            tracing::warn!(status = status.as_u16(), "token endpoint refused the code");
            return Err(ExchangeError::Refused);
        }
        serde_json::from_slice(&body).map_err(|_| ExchangeError::Refused)
    }
}

/// How a callback ended (the `login` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok,
    NoRole,
    BadState,
    BadRequest,
    BadToken,
    SsoError,
    SsoUnavailable,
    StoreUnavailable,
    /// The browser did not start this login (no login cookie for the state).
    Unbound,
}

impl LoginOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Ok => "ok",
            LoginOutcome::NoRole => "no_role",
            LoginOutcome::BadState => "bad_state",
            LoginOutcome::BadRequest => "bad_request",
            LoginOutcome::BadToken => "bad_token",
            LoginOutcome::SsoError => "sso_error",
            LoginOutcome::SsoUnavailable => "sso_unavailable",
            LoginOutcome::StoreUnavailable => "store_unavailable",
            LoginOutcome::Unbound => "unbound",
        }
    }
}

enum ExchangeError {
    Unavailable,
    Refused,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Secret<String>,
    #[serde(default)]
    refresh_token: Option<Secret<String>>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// What the session keeps when refresh is enabled; the next refresh is
    /// due when the access token expires or after `interval`, whichever first.
    fn stored(&self, interval: u64) -> Option<StoredTokens> {
        let refresh_token = self.refresh_token.clone()?;
        Some(StoredTokens { refresh_token, access_expiry: now_secs() + self.expires_in.unwrap_or(900).min(interval) })
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The result of a refresh attempt.
pub enum Refreshed {
    /// New claims read; the session now carries them.
    Updated(std::sync::Arc<SessionRecord>),
    /// The SSO no longer grants access (role revoked, refresh refused): the
    /// session has been deleted.
    Ended,
    /// The SSO could not be asked; the session stays as it is (design §13:
    /// existing sessions keep working while the SSO is down).
    Unchanged,
}

/// 256 bits from the OS CSPRNG, base64url.
fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut b).unwrap_or_else(|_| rand::fill(&mut b));
    URL_SAFE_NO_PAD.encode(b)
}

fn query_map(q: Option<&str>) -> std::collections::HashMap<String, String> {
    q.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}
