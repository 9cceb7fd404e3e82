//! The dev SSO's HTTP endpoints, on barge2rail-auth's paths: discovery, JWKS
//! (both paths), authorize (user picker or `login_hint`), token
//! (`authorization_code` with PKCE, `refresh_token` with rotation), userinfo
//! and RP-initiated logout.
//!
//! Nothing here ever redirects to a URI it has not validated as loopback;
//! every HTML byte that comes from a request or a user is escaped.
//!
//! Neighbours: `mod` accepts connections and calls [`handle`]; `store` holds
//! codes and tokens; `keys` signs; `web` has the request/response plumbing.

use std::fmt::Write as _;
use std::sync::Arc;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use url::form_urlencoded;

use super::keys::SigningKey;
use super::store::{self, Code, Grant, Pkce, Redeem, Store};
use super::users::User;
use super::web::{
    eq_digest, error_page, esc, invalid_client, json, loopback_url, oauth_error, page, parse_basic, redirect_to, text,
    unix_now, Body, Params,
};
use super::{CLIENT_ID, CLIENT_SECRET};

/// ID token lifetime (the SSO's: 10 h).
const ID_TOKEN_TTL: u64 = 10 * 3600;
const SCOPES: &[&str] = &["openid", "email", "profile", "roles"];
const MAX_FORM: usize = 64 * 1024;
const JWKS_PATHS: [&str; 2] = ["/api/auth/.well-known/jwks.json", "/o/.well-known/jwks.json"];

pub(crate) struct Inner {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `{base}/o`
    pub issuer: String,
    pub key: SigningKey,
    pub store: Mutex<Store>,
}

pub(crate) async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let (get, post) = (req.method() == Method::GET, req.method() == Method::POST);
    match path {
        "/o/.well-known/openid-configuration" if get => json(StatusCode::OK, &discovery(&inner)),
        p if get && JWKS_PATHS.contains(&p) => json(StatusCode::OK, &inner.key.jwks()),
        "/o/authorize/" if get => authorize(&inner, req.uri().query()).await,
        "/o/token/" if post => token(&inner, req).await,
        "/o/userinfo/" if get || post => userinfo(&inner, &req).await,
        "/o/logout/" if get => logout(req.uri().query()),
        "/o/.well-known/openid-configuration" | "/o/authorize/" | "/o/token/" | "/o/userinfo/" | "/o/logout/" => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        p if JWKS_PATHS.contains(&p) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn discovery(inner: &Inner) -> Value {
    let (base, iss) = (&inner.base, &inner.issuer);
    json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize/"),
        "token_endpoint": format!("{iss}/token/"),
        "userinfo_endpoint": format!("{iss}/userinfo/"),
        "jwks_uri": format!("{base}{}", JWKS_PATHS[0]),
        "end_session_endpoint": format!("{iss}/logout/"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "claims_supported": ["sub", "iss", "aud", "iat", "exp", "auth_time", "nonce", "email", "email_verified",
            "name", "is_sso_admin", "application_roles"],
    })
}

// ---------------------------------------------------------------------------
// authorize
// ---------------------------------------------------------------------------

async fn authorize(inner: &Inner, query: Option<&str>) -> Response<Body> {
    let p = match Params::parse(query.unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(dup) => return error_page(&format!("The parameter “{dup}” is given more than once.")),
    };
    // Until client and redirect_uri are validated, errors are pages, never redirects.
    if p.get("client_id") != Some(CLIENT_ID) {
        return error_page(&format!("Unknown client_id. This dev SSO knows one client: “{CLIENT_ID}”."));
    }
    let Some(redirect) = p.get("redirect_uri").and_then(loopback_url) else {
        return error_page(
            "redirect_uri is missing or not a loopback URL (http://127.0.0.1, http://localhost or \
             http://[::1], any port and path). Not redirecting.",
        );
    };
    let state = p.get("state");
    let fail = |error: &str, description: &str| {
        redirect_to(&redirect, &[("error", error), ("error_description", description)], state)
    };
    if p.get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let scope = p.get("scope").unwrap_or("");
    if !scope.split(' ').any(|s| s == "openid") {
        return fail("invalid_scope", "scope must include openid");
    }
    if let Some(bad) = scope.split(' ').find(|s| !s.is_empty() && !SCOPES.contains(s)) {
        return fail("invalid_scope", &format!("unknown scope {bad}"));
    }
    let pkce = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => return fail("invalid_request", "code_challenge_method without code_challenge"),
        // base64url of a SHA-256: 43 characters.
        (Some(c), Some("S256"))
            if c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) =>
        {
            Some(Pkce::S256(c.to_string()))
        }
        (Some(c), None | Some("plain")) if store::is_verifier_syntax(c) => Some(Pkce::Plain(c.to_string())),
        (Some(_), None | Some("S256" | "plain")) => return fail("invalid_request", "malformed code_challenge"),
        (Some(_), Some(_)) => return fail("invalid_request", "code_challenge_method must be S256 or plain"),
    };
    let hint = p.get("login_hint");
    let mut store = inner.store.lock().await;
    let Some(email) = hint.and_then(|h| store.user(h)).map(|u| u.email.clone()) else {
        return picker(&store.users, &p, hint);
    };
    let grant = Grant {
        id: store.next_grant_id(),
        client_id: CLIENT_ID.to_string(),
        email,
        scope: scope.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "),
        nonce: p.get("nonce").map(str::to_string),
        auth_time: unix_now(),
    };
    let code = store.issue_code(Code { grant, redirect_uri: p.get("redirect_uri").unwrap_or("").to_string(), pkce });
    redirect_to(&redirect, &[("code", &code)], state)
}

/// The user picker: one link per user, each the same authorize request plus
/// `login_hint`. Element ids are `user-<email>` for browser tests.
fn picker(users: &[User], p: &Params, hint: Option<&str>) -> Response<Body> {
    let mut items = String::new();
    for u in users {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in p.0.iter().filter(|(k, _)| k != "login_hint") {
            q.append_pair(k, v);
        }
        q.append_pair("login_hint", &u.email);
        let href = format!("/o/authorize/?{}", q.finish());
        let role = u.role.as_deref().unwrap_or("no primetrade role");
        let _ = writeln!(
            items,
            r#"<li><a class="user" id="user-{email}" href="{href}">{name}</a> <span class="email">{email}</span> <span class="role">{role}</span></li>"#,
            email = esc(&u.email),
            href = esc(&href),
            name = esc(&u.name),
            role = esc(role),
        );
    }
    let notice = match hint {
        Some(h) => format!(r#"<p id="notice">No user “{}” here; pick one below.</p>"#, esc(h)),
        None => String::new(),
    };
    let body = format!(
        "<h1>barge2rail dev SSO</h1>\n{notice}<p>Sign in to <code>{CLIENT_ID}</code> as:</p>\n<ul id=\"users\">\n{items}</ul>\n\
         <p class=\"note\">Development only: no passwords. Add <code>login_hint=EMAIL</code> to skip this page.</p>\n"
    );
    page(StatusCode::OK, &body)
}

// ---------------------------------------------------------------------------
// token
// ---------------------------------------------------------------------------

async fn token(inner: &Inner, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_FORM).collect().await.map(|b| b.to_bytes()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unreadable or oversized body");
    };
    let p = match Params::parse(&body) {
        Ok(p) => p,
        Err(dup) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("{dup} given twice")),
    };
    let basic = parts.headers.get(AUTHORIZATION).map(|v| parse_basic(v).ok_or(()));
    let (client_id, secret) = match (basic, p.get("client_secret")) {
        (Some(_), Some(_)) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "more than one client authentication")
        }
        (Some(Ok((id, _))), _) if p.get("client_id").is_some_and(|f| f != id) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id differs from Basic auth")
        }
        (Some(Ok(pair)), None) => pair,
        (None, Some(s)) => (p.get("client_id").unwrap_or("").to_string(), s.to_string()),
        (Some(Err(())), None) | (None, None) => return invalid_client(),
    };
    if client_id != CLIENT_ID || !eq_digest(&secret, CLIENT_SECRET) {
        return invalid_client();
    }
    match p.get("grant_type") {
        Some("authorization_code") => code_grant(inner, &p, &client_id).await,
        Some("refresh_token") => refresh_grant(inner, &p, &client_id).await,
        Some(_) => {
            oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "authorization_code or refresh_token")
        }
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is missing"),
    }
}

async fn code_grant(inner: &Inner, p: &Params, client_id: &str) -> Response<Body> {
    let bad = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let Some(code) = p.get("code") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code is missing");
    };
    let mut store = inner.store.lock().await;
    let c = match store.redeem_code(code) {
        Redeem::Fresh(c) => c,
        Redeem::Invalid => return bad("code is unknown or expired"),
        Redeem::Replayed => return bad("code was already used; the tokens issued for it are revoked"),
    };
    if c.grant.client_id != client_id {
        return bad("code was issued to another client");
    }
    if p.get("redirect_uri") != Some(c.redirect_uri.as_str()) {
        return bad("redirect_uri differs from the authorization request");
    }
    match (&c.pkce, p.get("code_verifier")) {
        (Some(ch), Some(v)) if store::pkce_matches(ch, v) => {}
        (Some(_), Some(_)) => return bad("code_verifier does not match code_challenge"),
        (Some(_), None) => return bad("code_verifier is missing"),
        (None, Some(_)) => return bad("code_verifier sent, but the authorization request had no code_challenge"),
        (None, None) => {}
    }
    let Some(user) = store.user(&c.grant.email).cloned() else { return bad("user no longer exists") };
    let (access, refresh) = store.issue_tokens(&c.grant);
    drop(store);
    token_response(inner, &c.grant, &user, access, refresh, true)
}

async fn refresh_grant(inner: &Inner, p: &Params, client_id: &str) -> Response<Body> {
    let bad = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let Some(token) = p.get("refresh_token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is missing");
    };
    let mut store = inner.store.lock().await;
    let Some(mut grant) = store.peek_refresh(token).cloned() else {
        return bad("refresh token is unknown, expired or already used");
    };
    if grant.client_id != client_id {
        return bad("refresh token was issued to another client");
    }
    if let Some(scope) = p.get("scope") {
        let granted: Vec<&str> = grant.scope.split(' ').collect();
        if let Some(extra) = scope.split(' ').find(|s| !s.is_empty() && !granted.contains(s)) {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &format!("{extra} was not granted"));
        }
        grant.scope = scope.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    }
    store.take_refresh(token);
    // Re-read the user now: a role changed since login shows in the new ID token.
    let Some(user) = store.user(&grant.email).cloned() else { return bad("user no longer exists") };
    let (access, refresh) = store.issue_tokens(&grant);
    drop(store);
    token_response(inner, &grant, &user, access, refresh, false)
}

/// The token response. `nonce` goes only into the ID token of the code
/// exchange (OIDC Core 12.2: a refreshed ID token SHOULD NOT carry one).
fn token_response(
    inner: &Inner,
    grant: &Grant,
    user: &User,
    access: String,
    refresh: String,
    with_nonce: bool,
) -> Response<Body> {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": store::ACCESS_TTL.as_secs(),
        "refresh_token": refresh,
        "scope": grant.scope,
    });
    if grant.scope.split(' ').any(|s| s == "openid") {
        let now = unix_now();
        let mut claims = user.claims();
        claims.insert("iss".into(), inner.issuer.clone().into());
        claims.insert("aud".into(), grant.client_id.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ID_TOKEN_TTL).into());
        claims.insert("auth_time".into(), grant.auth_time.into());
        if let (true, Some(nonce)) = (with_nonce, &grant.nonce) {
            claims.insert("nonce".into(), nonce.clone().into());
        }
        body["id_token"] = inner.key.sign(&Value::Object(claims)).into();
    }
    json(StatusCode::OK, &body)
}

// ---------------------------------------------------------------------------
// userinfo, logout
// ---------------------------------------------------------------------------

async fn userinfo(inner: &Inner, req: &Request<Incoming>) -> Response<Body> {
    let token = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let store = inner.store.lock().await;
    let user = token.and_then(|t| store.access(t)).and_then(|g| store.user(&g.email));
    match user {
        Some(u) => json(StatusCode::OK, &Value::Object(u.claims())),
        None => {
            let mut r = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "missing, unknown or expired token");
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#));
            r
        }
    }
}

fn logout(query: Option<&str>) -> Response<Body> {
    let p = match Params::parse(query.unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(dup) => return error_page(&format!("The parameter “{dup}” is given more than once.")),
    };
    if p.get("client_id").is_some_and(|c| c != CLIENT_ID) {
        return error_page("Unknown client_id.");
    }
    let target = p.get("post_logout_redirect_uri");
    if let Some(url) = target.and_then(loopback_url) {
        return redirect_to(&url, &[], p.get("state"));
    }
    let note = match target {
        Some(t) => format!("<p>Not redirecting to “{}”: only loopback URLs are accepted.</p>\n", esc(t)),
        None => String::new(),
    };
    page(StatusCode::OK, &format!("<h1>barge2rail dev SSO</h1>\n<p id=\"logged-out\">You are logged out.</p>\n{note}"))
}
