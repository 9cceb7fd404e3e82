//! `prt-gate dev-sso`: a local OIDC provider with the barge2rail-auth contract
//! (design §4 and §10), for local development, the demo and tests.
//!
//! Same paths, claims and token shapes as the production SSO (Django OAuth
//! Toolkit), with `{sso}` the base URL `http://127.0.0.1:PORT`:
//!
//! | endpoint | path |
//! |---|---|
//! | discovery | `{sso}/o/.well-known/openid-configuration` (issuer `{sso}/o`) |
//! | JWKS | `{sso}/api/auth/.well-known/jwks.json` and `{sso}/o/.well-known/jwks.json` |
//! | authorize | `GET {sso}/o/authorize/` — a user picker, or straight back with `login_hint=EMAIL` |
//! | token | `POST {sso}/o/token/` — `authorization_code` (PKCE S256/plain), `refresh_token` (rotated) |
//! | userinfo | `GET {sso}/o/userinfo/` with the Bearer access token |
//! | logout | `GET {sso}/o/logout/?post_logout_redirect_uri=…` |
//!
//! One client: id [`CLIENT_ID`], secret [`CLIENT_SECRET`], `client_secret_post`
//! or `client_secret_basic`; any loopback `redirect_uri` (http or https on
//! 127.0.0.0/8, `[::1]` or `localhost`, any port and path). Scopes `openid
//! email profile roles`. Codes are single use and live 60 s (a replayed code
//! revokes the tokens issued from it); access tokens are opaque and live
//! 900 s; refresh tokens live 7 days and are rotated on use. ID tokens are
//! RS256 with `kid` = RFC 7638 thumbprint, live 10 h, and carry `nonce` from
//! the code exchange only (a refreshed ID token has none, OIDC Core 12.2,
//! but re-reads the user's current role). The RSA-2048 key is generated at
//! start and only ever kept in memory. Loopback only: a non-loopback listen
//! address is refused.
//!
//! # Users
//!
//! Built in ([`builtin_users`]), each with the real SSO's features for its
//! role (permission codes `view`, `create`, `modify`, `delete`, `export`, plus
//! `dashboard:view` for staff, `client_portal:view` for Clients and
//! `admin:modify` for Admins) and `tenant_code = "PRT"`: `admin@example.com`
//! (Admin, also `is_sso_admin`), `office@example.com` (Office),
//! `operator@example.com` (Operator), `client@example.com` (Client),
//! `acme-office@example.com` (Office of tenant `ACME`) and
//! `nobody@example.com` (no `primetrade` role; a `sacks` one, which the gate
//! must ignore).
//!
//! `--users FILE` replaces them with a TOML file (see [`USERS_FILE_HELP`]).
//!
//! # In-process use
//!
//! [`DevSso::start`] serves on a loopback address (port 0 allowed) from the
//! caller's runtime; [`DevSso::set_role`] changes a role (seen by the next
//! refresh and userinfo); [`DevSso::mint`] signs arbitrary claims with the
//! dev key, for the gate's `auth = "bearer"` routes. Dropping the value stops
//! the server.
//!
//! Neighbours: `cli` runs it as `prt-gate dev-sso`; the gate's `oidc` module
//! is its client. Parts: `users` (accounts and claims), `keys` (RSA key, JWKS,
//! signing), `store` (codes and tokens), `endpoints` (HTTP handlers), `web`
//! (request/response plumbing).

mod endpoints;
mod keys;
mod store;
mod users;
pub(crate) mod web;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};

pub use keys::thumbprint;
pub use users::{
    builtin_users, load_users, seeded_features, Features, User, APPLICATION, DEFAULT_TENANT, SECOND_TENANT,
};

use endpoints::Inner;
use keys::SigningKey;
use store::Store;

/// The one registered client.
pub const CLIENT_ID: &str = "prt-gate-dev";
/// Its secret (public: this is a development tool).
pub const CLIENT_SECRET: &str = "dev-secret";

/// The `--users` file format (also shown by `prt-gate dev-sso --help`).
pub const USERS_FILE_HELP: &str = r#"USERS FILE (--users): TOML, one [[user]] table per account, replacing the built-in users.
  [[user]]
  email = "ana@example.com"        # required; the login_hint, matched case-insensitively
  name = "Ana Lyst"                # required
  role = "Office"                  # optional; omit for a user without a primetrade role
  tenant_code = "PRT"              # optional, default "PRT"
  is_sso_admin = false             # optional, default: role is Admin
  other_applications = { sacks = "Client" }   # optional: roles in other apps (ignored by the gate)
  [user.features]                  # optional; default: the SSO's seeded features for the role
  bol = ["view", "create"]
  releases = ["view"]
Built-in users: admin@, office@, operator@, client@, acme-office@ (Office, tenant ACME) and nobody@example.com (no primetrade role).
Client id "prt-gate-dev", secret "dev-secret"; any loopback redirect_uri."#;

#[derive(Debug, thiserror::Error)]
pub enum DevSsoError {
    #[error("dev-sso serves loopback only; {0} is not a loopback address (use 127.0.0.1 or [::1])")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create the signing key: {0}")]
    Key(String),
    /// `at` is `:LINE:COL` when the problem has a place in the file.
    #[error("{}{at}: {message}", path.display())]
    UsersFile { path: PathBuf, at: String, message: String },
    #[error("invalid users: {}", .0.join("; "))]
    Users(Vec<String>),
    #[error("no user {0}")]
    UnknownUser(String),
}

impl DevSsoError {
    /// Usage or configuration mistakes (CLI exit code 2), as opposed to
    /// runtime failures (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, DevSsoError::NotLoopback(_) | DevSsoError::UsersFile { .. } | DevSsoError::Users(_))
    }
}

/// A running dev SSO. Dropping it stops the listener and its connections.
pub struct DevSso {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for DevSso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSso").field("url", &self.inner.base).field("kid", &self.inner.key.kid()).finish()
    }
}

impl DevSso {
    /// Binds `listen` (loopback only, port 0 allowed), generates the signing
    /// key and serves on the current tokio runtime.
    pub async fn start(listen: SocketAddr, users: Vec<User>) -> Result<DevSso, DevSsoError> {
        if !listen.ip().is_loopback() {
            return Err(DevSsoError::NotLoopback(listen));
        }
        users::validate(&users).map_err(DevSsoError::Users)?;
        let bind_err = |source| DevSsoError::Bind { addr: listen, source };
        let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let key =
            tokio::task::spawn_blocking(SigningKey::generate).await.map_err(|e| DevSsoError::Key(e.to_string()))??;
        let base = format!("http://{addr}");
        let inner = Arc::new(Inner { issuer: format!("{base}/o"), base, key, store: Mutex::new(Store::new(users)) });
        let task = tokio::spawn(accept_loop(listener, inner.clone()));
        Ok(DevSso { inner, addr, task })
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.inner.base
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `iss` of every ID token: `{url}/o`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// `kid` of the signing key (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        self.inner.key.kid()
    }

    /// The JWKS document served at both JWKS paths.
    pub fn jwks(&self) -> Value {
        self.inner.key.jwks()
    }

    /// Signs `claims` exactly as given (nothing added: set `iss`, `aud`,
    /// `exp` yourself) as an RS256 JWT with the dev key and its `kid`. For
    /// machine Bearer tokens on the gate's `auth = "bearer"` routes.
    pub fn mint(&self, claims: Value) -> String {
        self.inner.key.sign(&claims)
    }

    /// Sets a user's `primetrade` role (`None` removes the entry), with that
    /// role's seeded features and `is_sso_admin` = role is Admin. The next
    /// refresh's ID token and userinfo show it; tokens already issued do not
    /// change.
    pub async fn set_role(&self, email: &str, role: Option<&str>) -> Result<(), DevSsoError> {
        let mut store = self.inner.store.lock().await;
        let user = store.user_mut(email).ok_or_else(|| DevSsoError::UnknownUser(email.to_string()))?;
        let fresh = User::with_role(&user.email, &user.name, role);
        user.role = fresh.role;
        user.features = fresh.features;
        user.is_sso_admin = fresh.is_sso_admin;
        Ok(())
    }

    /// Replaces the user with the same email (case-insensitive), or adds it.
    pub async fn upsert_user(&self, user: User) -> Result<(), DevSsoError> {
        users::validate(std::slice::from_ref(&user)).map_err(DevSsoError::Users)?;
        let mut store = self.inner.store.lock().await;
        match store.user_mut(&user.email) {
            Some(u) => *u = user,
            None => store.users.push(user),
        }
        Ok(())
    }

    /// The current users.
    pub async fn users(&self) -> Vec<User> {
        self.inner.store.lock().await.users.clone()
    }
}

impl Drop for DevSso {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let inner = inner.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(endpoints::handle(inner, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
