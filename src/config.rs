//! Configuration: `policy.toml` + `PRT_GATE_*` environment → a compiled [`Config`].
//!
//! Two layers (STYLE "Configuration"):
//!
//! 1. [`RawConfig`] is plain serde with `deny_unknown_fields`. The file is first
//!    parsed on its own with the `toml` crate so syntax errors, type errors and
//!    unknown keys carry `file:line:col`. figment then layers the file and the
//!    `PRT_GATE_<SECTION>__<KEY>` variables.
//! 2. [`Config::compile`] turns raw strings into typed values (addresses,
//!    durations, CIDRs, URLs) and returns **every** error, each located at the
//!    line of the offending key (or naming the environment variable it came from).
//!
//! Secrets never come from the file: `PRT_GATE_SSO__CLIENT_SECRET` and
//! `PRT_GATE_ASSERTION__SECRET` are read from the environment only, and a file
//! that contains such a key is rejected.
//!
//! Neighbours: `cli` loads and reports; `proxy` and `admin` read the compiled
//! values; nothing on the data plane ever sees a `RawConfig`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::policy::{Policy, PolicyInput};
use crate::secret::Secret;

pub use crate::policy::RawRoute;

/// Environment variable prefix for overrides (`PRT_GATE_GATE__LISTEN=…`).
pub const ENV_PREFIX: &str = "PRT_GATE_";
/// Environment variables that are read directly and never through figment.
const ENV_NOT_KEYS: &[&str] = &["config", "sso__client_secret", "assertion__secret", "assertion__previous_secret"];

// ---------------------------------------------------------------------------
// Raw layer
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub gate: RawGate,
    pub sso: RawSso,
    pub session: RawSession,
    pub tenant: RawTenant,
    pub media: RawMedia,
    pub assertion: RawAssertion,
    pub roles: RawRoles,
    pub log: RawLog,
    /// `[redact]`: operator patterns added to the built-in detectors.
    pub redact: crate::redact::RawRedact,
    /// `[[route]]` policy rules (compiled by `policy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RawRoute>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGate {
    pub listen: String,
    pub admin_listen: String,
    pub public_url: Option<String>,
    pub upstream: String,
    pub trusted_proxies: Vec<String>,
    pub header_read_timeout: String,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    pub max_connections: usize,
    pub upstream_connect_timeout: String,
    pub upstream_timeout: String,
    pub upstream_pool_idle_timeout: String,
    pub upstream_pool_max_idle: usize,
    pub drain_timeout: String,
    pub workers: Option<usize>,
}

impl Default for RawGate {
    fn default() -> Self {
        RawGate {
            listen: "0.0.0.0:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            public_url: None,
            upstream: "http://127.0.0.1:8000".into(),
            trusted_proxies: Vec::new(),
            header_read_timeout: "10s".into(),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_connections: 10_000,
            upstream_connect_timeout: "5s".into(),
            upstream_timeout: "60s".into(),
            upstream_pool_idle_timeout: "90s".into(),
            upstream_pool_max_idle: 256,
            drain_timeout: "30s".into(),
            workers: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSso {
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub app: String,
    /// Overrides of the endpoints derived from `base_url` (SPEC 4).
    pub issuer: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub jwks_url: Option<String>,
    pub logout_url: Option<String>,
    /// Keep the refresh token and re-read roles when the access token expires.
    pub refresh: bool,
    /// With `refresh`: re-read roles at least this often, even if the SSO's
    /// access token lives longer.
    pub refresh_interval: String,
    /// Deadline for each call to the SSO.
    pub timeout: String,
    /// Rejected when present in the file; filled from the environment only.
    #[serde(skip_serializing)]
    pub client_secret: Option<Secret<String>>,
}

impl Default for RawSso {
    fn default() -> Self {
        RawSso {
            base_url: None,
            client_id: None,
            app: "primetrade".into(),
            issuer: None,
            authorize_url: None,
            token_url: None,
            userinfo_url: None,
            jwks_url: None,
            logout_url: None,
            refresh: false,
            refresh_interval: "15m".into(),
            timeout: "5s".into(),
            client_secret: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSession {
    pub store: String,
    pub cookie_secure: bool,
    pub idle_timeout: String,
    pub absolute_timeout: String,
    /// Prefix of every Redis key the gate writes (one per deployment or test).
    pub key_prefix: String,
    /// How long a replica may serve a session from its in-process cache
    /// without asking Redis; bounds revocation staleness (at most 1 s).
    pub cache_ttl: String,
}

impl Default for RawSession {
    fn default() -> Self {
        RawSession {
            store: "memory".into(),
            cookie_secure: true,
            idle_timeout: "8h".into(),
            absolute_timeout: "14d".into(),
            key_prefix: "prt-gate:".into(),
            cache_ttl: "500ms".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTenant {
    pub mode: String,
    pub id: String,
    pub name: String,
    /// `mode = "claim"`: `tenant_code` claim → tenant (`PRT = { id = "primetrade", name = "…" }`).
    pub codes: BTreeMap<String, RawTenantEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenantEntry {
    pub id: String,
    pub name: String,
}

impl Default for RawTenant {
    fn default() -> Self {
        RawTenant {
            mode: "static".into(),
            id: "primetrade".into(),
            name: "PrimeTrade Logistics".into(),
            codes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMedia {
    pub bucket: Option<String>,
    pub region: String,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub key_prefix: String,
    pub allowed_prefixes: Vec<String>,
    pub expires: String,
    pub check_exists: bool,
    /// `""` (let S3 decide), `"inline"` or `"attachment"`: signed into the
    /// URL as `response-content-disposition`.
    pub disposition: String,
}

impl Default for RawMedia {
    fn default() -> Self {
        RawMedia {
            bucket: None,
            region: "us-east-2".into(),
            endpoint: None,
            path_style: false,
            key_prefix: String::new(),
            allowed_prefixes: vec!["bols/".into(), "bol_pdfs/".into()],
            expires: "24h".into(),
            check_exists: true,
            disposition: String::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAssertion {
    pub audience: String,
    #[serde(skip_serializing)]
    pub secret: Option<Secret<String>>,
}

impl Default for RawAssertion {
    fn default() -> Self {
        RawAssertion { audience: "django".into(), secret: None }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRoles {
    /// Role → landing page (Client → `/client.html`, others → `/`).
    pub landing: BTreeMap<String, String>,
    /// Role → page patterns the role may open; roles without an entry may open any
    /// non-API page the rules allow.
    pub pages: BTreeMap<String, Vec<String>>,
}

impl Default for RawRoles {
    fn default() -> Self {
        let mut landing = BTreeMap::new();
        landing.insert("Client".to_string(), "/client.html".to_string());
        RawRoles { landing, pages: BTreeMap::new() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `tracing` filter for the gate's own diagnostics (`info`, `warn`, `prt_gate=debug`).
    pub level: String,
    /// Emit one JSON access line per request.
    pub access: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { level: "info".into(), access: true }
    }
}

// ---------------------------------------------------------------------------
// Compiled layer
// ---------------------------------------------------------------------------

/// The configuration the data plane runs on. Built only by [`Config::load`] /
/// [`Config::compile`].
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub gate: GateConfig,
    pub sso: SsoConfig,
    pub session: SessionConfig,
    pub tenant: TenantConfig,
    pub media: MediaConfig,
    pub assertion: AssertionConfig,
    /// The compiled `[[route]]` / `[roles]` policy, shared with the data plane.
    pub policy: Arc<Policy>,
    pub log: LogConfig,
    /// The redaction engine: built-in detectors plus `[redact] patterns`.
    pub redactor: Arc<crate::redact::Redactor>,
}

#[derive(Debug, Clone)]
pub struct GateConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_url: Option<PublicOrigin>,
    pub upstream: Upstream,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Longest request target (path and query, or absolute form) before 414.
    pub max_uri_bytes: usize,
    /// Concurrent client connections; beyond it new connections wait in the
    /// listen backlog until one closes (`proxy::server`).
    pub max_connections: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub upstream_pool_idle_timeout: Duration,
    pub upstream_pool_max_idle: usize,
    pub drain_timeout: Duration,
    pub workers: Option<usize>,
}

/// The gate's external origin (`https://prt.barge2rail.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    pub https: bool,
    /// `host[:port]`, lower case, as it appears in a `Host` header.
    pub authority: http::uri::Authority,
    /// `scheme://authority`, no trailing slash.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub authority: http::uri::Authority,
    pub addr_hint: String,
}

#[derive(Debug, Clone)]
pub struct SsoConfig {
    pub base_url: Option<url::Url>,
    pub client_id: Option<String>,
    pub app: String,
    pub client_secret: Option<Secret<String>>,
    /// Resolved endpoints; `Some` when `sso.base_url` is set.
    pub endpoints: Option<SsoEndpoints>,
    pub refresh: bool,
    pub refresh_interval: Duration,
    pub timeout: Duration,
}

/// The SSO's endpoints (barge2rail-auth layout unless overridden).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoEndpoints {
    pub issuer: String,
    pub authorize: String,
    pub token: String,
    pub userinfo: String,
    pub jwks: String,
    pub logout: String,
}

#[derive(Clone, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    /// The URL may carry a password: never print it (see the `Debug` impl).
    Redis(String),
}

impl fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Memory => f.write_str("Memory"),
            StoreKind::Redis(url) => {
                // `scheme://[REDACTED]@rest` when the URL has userinfo.
                let shown = match (url.split_once("://"), url.rfind('@')) {
                    (Some((scheme, _)), Some(at)) => format!("{scheme}://[REDACTED]@{}", &url[at + 1..]),
                    _ => url.clone(),
                };
                f.debug_tuple("Redis").field(&shown).finish()
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: StoreKind,
    pub cookie_secure: bool,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub key_prefix: String,
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantMode {
    Static,
    Claim,
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub mode: TenantMode,
    pub id: String,
    pub name: String,
    /// `X-Tenant-Id` / `X-Tenant-Name` values, built once.
    pub id_header: http::HeaderValue,
    pub name_header: http::HeaderValue,
    /// `mode = "claim"`: tenant code (as the SSO spells it) → (id, name).
    pub codes: BTreeMap<String, (String, String)>,
}

impl TenantConfig {
    /// The tenant of a user with this `tenant_code` claim: the static tenant
    /// in `static` mode; the mapped one in `claim` mode (`None` = refuse).
    pub fn resolve(&self, code: Option<&str>) -> Option<(&str, &str)> {
        match self.mode {
            TenantMode::Static => Some((&self.id, &self.name)),
            TenantMode::Claim => self.codes.get(code?).map(|(i, n)| (i.as_str(), n.as_str())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub bucket: Option<String>,
    pub region: String,
    pub endpoint: Option<url::Url>,
    pub path_style: bool,
    pub key_prefix: String,
    pub allowed_prefixes: Vec<String>,
    pub expires: Duration,
    pub check_exists: bool,
    pub disposition: Disposition,
}

/// `media.disposition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    None,
    Inline,
    Attachment,
}

#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub audience: String,
    pub secret: Option<Secret<String>>,
    pub previous_secret: Option<Secret<String>>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub access: bool,
}

// ---------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize, col: usize },
    Env { var: String },
    Default,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    /// Dotted key path (`gate.listen`), when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { path, line, col } => write!(f, "{}:{line}:{col}: ", path.display())?,
            Origin::Env { var } => write!(f, "environment variable {var}: ")?,
            Origin::Default => write!(f, "(built-in default): ")?,
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found while loading a configuration (never just the first).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Maps key paths back to `file:line:col` using toml_edit's spans.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    fn new(path: &'a Path, text: &'a str) -> Self {
        Locator { path, text, doc: toml_edit::ImDocument::parse(text).ok() }
    }

    fn at_offset(&self, offset: usize) -> Origin {
        let (line, col) = line_col(self.text, offset);
        Origin::File { path: self.path.to_path_buf(), line, col }
    }

    /// Origin of the value at `key` (`gate.trusted_proxies`): the file line if
    /// the file sets it, else the environment variable that would set it.
    fn origin_of(&self, key: &str) -> Origin {
        let env_var = env_var_for(key);
        if std::env::var_os(&env_var).is_some() {
            return Origin::Env { var: env_var };
        }
        self.origin_of_file_only(key)
    }
}

/// `gate.listen` → `PRT_GATE_GATE__LISTEN`.
pub fn env_var_for(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

impl Config {
    /// Reads `path`, layers the environment, validates everything.
    pub fn load(path: &Path) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            diagnostics: vec![Diagnostic {
                origin: Origin::File { path: path.to_path_buf(), line: 0, col: 0 },
                key: None,
                message: format!("cannot read configuration file: {e}"),
            }],
        })?;
        Self::from_str_at(path, &text)
    }

    /// Like [`Config::load`] with the file's text given (tests, `check`).
    pub fn from_str_at(path: &Path, text: &str) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let loc = Locator::new(path, text);

        // Pass 1: the file alone, for precise syntax/type/unknown-key errors.
        if let Err(e) = toml::from_str::<RawConfig>(text) {
            let origin =
                e.span().map_or(Origin::File { path: path.to_path_buf(), line: 0, col: 0 }, |s| loc.at_offset(s.start));
            return Err(ConfigError {
                diagnostics: vec![Diagnostic { origin, key: None, message: e.message().trim().to_string() }],
            });
        }
        let lint_warnings = lint::secret_warnings(&loc);
        let mut diags = Vec::new();
        // Secrets belong in the environment, never in the file.
        for key in ["sso.client_secret", "assertion.secret"] {
            if let Origin::File { .. } = loc.origin_of_file_only(key) {
                diags.push(Diagnostic {
                    origin: loc.origin_of_file_only(key),
                    key: Some(key.into()),
                    message: format!(
                        "secrets are not accepted in the file; set {} in the environment",
                        env_var_for(key)
                    ),
                });
            }
        }

        // Pass 2: file + environment.
        let figment = Figment::new().merge(Toml::string(text)).merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|k| !ENV_NOT_KEYS.iter().any(|n| k.as_str().eq_ignore_ascii_case(n)))
                .split("__"),
        );
        let mut raw: RawConfig = match figment.extract() {
            Ok(raw) => raw,
            Err(errors) => {
                for e in errors {
                    let key = (!e.path.is_empty()).then(|| e.path.join("."));
                    let origin = key.as_deref().map_or(Origin::Default, |k| loc.origin_of(k));
                    diags.push(Diagnostic { origin, key, message: e.kind.to_string() });
                }
                return Err(ConfigError { diagnostics: diags });
            }
        };
        raw.sso.client_secret = env_secret("sso.client_secret");
        raw.assertion.secret = env_secret("assertion.secret");
        let previous = env_secret("assertion.previous_secret");

        match Config::compile(path, raw, previous, &loc) {
            Ok((config, mut warnings)) if diags.is_empty() => {
                warnings.extend(lint_warnings);
                Ok((config, warnings))
            }
            Ok(_) => Err(ConfigError { diagnostics: diags }),
            Err(mut e) => {
                diags.append(&mut e.diagnostics);
                Err(ConfigError { diagnostics: diags })
            }
        }
    }

    fn compile(
        path: &Path,
        raw: RawConfig,
        previous_secret: Option<Secret<String>>,
        loc: &Locator<'_>,
    ) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let mut c = Compiler { loc, errors: Vec::new(), warnings: Vec::new() };
        let g = raw.gate;

        let listen = c.socket_addr("gate.listen", &g.listen);
        let admin_listen = c.socket_addr("gate.admin_listen", &g.admin_listen);
        let public_url = g.public_url.as_deref().and_then(|u| c.public_origin("gate.public_url", u));
        let upstream = c.upstream("gate.upstream", &g.upstream);
        let trusted_proxies = g.trusted_proxies.iter().filter_map(|s| c.cidr("gate.trusted_proxies", s)).collect();
        let header_read_timeout =
            c.duration("gate.header_read_timeout", &g.header_read_timeout, Duration::from_millis(100), None);
        let upstream_connect_timeout =
            c.duration("gate.upstream_connect_timeout", &g.upstream_connect_timeout, Duration::from_millis(10), None);
        let upstream_timeout =
            c.duration("gate.upstream_timeout", &g.upstream_timeout, Duration::from_millis(10), None);
        let upstream_pool_idle_timeout =
            c.duration("gate.upstream_pool_idle_timeout", &g.upstream_pool_idle_timeout, Duration::from_secs(1), None);
        let drain_timeout = c.duration("gate.drain_timeout", &g.drain_timeout, Duration::ZERO, None);
        c.range("gate.max_header_bytes", g.max_header_bytes, 8 * 1024, 1024 * 1024);
        c.range("gate.max_headers", g.max_headers, 16, 1000);
        c.range("gate.max_uri_bytes", g.max_uri_bytes, 256, 64 * 1024);
        c.range("gate.max_connections", g.max_connections, 1, 1_000_000);
        if let Some(w) = g.workers {
            c.range("gate.workers", w, 1, 1024);
        }

        let sso_base = raw.sso.base_url.as_deref().and_then(|u| c.http_url("sso.base_url", u));
        let refresh_interval = c.duration(
            "sso.refresh_interval",
            &raw.sso.refresh_interval,
            Duration::from_secs(1),
            Some(Duration::from_secs(86400)),
        );
        let sso_timeout =
            c.duration("sso.timeout", &raw.sso.timeout, Duration::from_millis(100), Some(Duration::from_secs(60)));
        let endpoints = sso_base.as_ref().map(|base| {
            let root = base.as_str().trim_end_matches('/').to_string();
            let mut pick = |key: &str, v: &Option<String>, default: String| match v {
                Some(u) => c.http_url(key, u).map_or(default, |u| u.to_string()),
                None => default,
            };
            SsoEndpoints {
                issuer: match &raw.sso.issuer {
                    Some(i) => i.clone(),
                    None => format!("{root}/o"),
                },
                authorize: pick("sso.authorize_url", &raw.sso.authorize_url, format!("{root}/o/authorize/")),
                token: pick("sso.token_url", &raw.sso.token_url, format!("{root}/o/token/")),
                userinfo: pick("sso.userinfo_url", &raw.sso.userinfo_url, format!("{root}/o/userinfo/")),
                jwks: pick("sso.jwks_url", &raw.sso.jwks_url, format!("{root}/api/auth/.well-known/jwks.json")),
                logout: pick("sso.logout_url", &raw.sso.logout_url, format!("{root}/o/logout/")),
            }
        });
        if endpoints.is_some() && raw.sso.client_id.as_deref().is_none_or(str::is_empty) {
            c.error("sso.client_id", "required when sso.base_url is set".into());
        }
        if endpoints.is_some() && public_url.is_none() {
            c.error("gate.public_url", "required when sso.base_url is set (it forms the redirect URI)".into());
        }
        if raw.sso.app.trim().is_empty() {
            c.error("sso.app", "must not be empty".into());
        }

        let store = c.store("session.store", &raw.session.store);
        let idle_timeout = c.duration("session.idle_timeout", &raw.session.idle_timeout, Duration::from_secs(60), None);
        let absolute_timeout =
            c.duration("session.absolute_timeout", &raw.session.absolute_timeout, Duration::from_secs(60), None);
        let cache_ttl =
            c.duration("session.cache_ttl", &raw.session.cache_ttl, Duration::ZERO, Some(Duration::from_secs(1)));
        if raw.session.key_prefix.is_empty()
            || raw.session.key_prefix.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            c.error("session.key_prefix", "must be non-empty, without spaces or control characters".into());
        }
        if idle_timeout > absolute_timeout {
            c.error("session.idle_timeout", "must not exceed session.absolute_timeout".into());
        }

        let mode = match raw.tenant.mode.as_str() {
            "static" => TenantMode::Static,
            "claim" => TenantMode::Claim,
            other => {
                c.error("tenant.mode", format!("unknown mode `{other}` (expected `static` or `claim`)"));
                TenantMode::Static
            }
        };
        if mode == TenantMode::Claim && raw.tenant.codes.is_empty() {
            c.error("tenant.codes", "`claim` mode needs at least one code, e.g. PRT = { id = \"primetrade\", name = \"PrimeTrade Logistics\" }".into());
        }
        let mut tenant_values = vec![("tenant.id", &raw.tenant.id), ("tenant.name", &raw.tenant.name)];
        for entry in raw.tenant.codes.values() {
            tenant_values.push(("tenant.codes", &entry.id));
            tenant_values.push(("tenant.codes", &entry.name));
        }
        for (key, v) in tenant_values {
            if v.is_empty() || v.bytes().any(|b| b.is_ascii_control()) || http::HeaderValue::from_str(v).is_err() {
                c.error(key, "must be non-empty, free of control characters and valid in an HTTP header".into());
            }
        }

        let m = raw.media;
        let expires =
            c.duration("media.expires", &m.expires, Duration::from_secs(1), Some(Duration::from_secs(604_800)));
        let endpoint = m.endpoint.as_deref().and_then(|u| c.http_url("media.endpoint", u));
        for p in &m.allowed_prefixes {
            if p.is_empty() || p.starts_with('/') || p.contains("..") || p.contains('\\') {
                c.error("media.allowed_prefixes", format!("invalid key prefix `{p}` (relative, no `..`, no `\\`)"));
            }
        }
        if m.key_prefix.starts_with('/') || m.key_prefix.contains("..") {
            c.error("media.key_prefix", "must be relative and free of `..`".into());
        }
        if let Some(b) = &m.bucket {
            let ok = (3..=63).contains(&b.len())
                && b.bytes().all(|x| x.is_ascii_alphanumeric() || matches!(x, b'-' | b'.' | b'_'))
                && !b.starts_with(['-', '.'])
                && !b.ends_with(['-', '.']);
            if !ok {
                c.error("media.bucket", format!("`{b}` is not an S3 bucket name"));
            }
        }
        if m.region.is_empty() || !m.region.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-') {
            c.error("media.region", format!("`{}` is not an AWS region name", m.region));
        }
        let disposition = match m.disposition.as_str() {
            "" => Disposition::None,
            "inline" => Disposition::Inline,
            "attachment" => Disposition::Attachment,
            other => {
                c.error("media.disposition", format!("`{other}` must be \"\", \"inline\" or \"attachment\""));
                Disposition::None
            }
        };

        let input = PolicyInput { routes: &raw.route, landing: &raw.roles.landing, pages: &raw.roles.pages };
        let policy = match Policy::compile(&input, &|key| loc.file_line(key)) {
            Ok((policy, warnings)) => {
                for w in warnings {
                    c.warnings.push(Diagnostic {
                        origin: loc.origin_near(&w.key),
                        key: Some(w.key),
                        message: w.message,
                    });
                }
                Some(Arc::new(policy))
            }
            Err(errors) => {
                for e in errors {
                    c.errors.push(Diagnostic { origin: loc.origin_near(&e.key), key: Some(e.key), message: e.message });
                }
                None
            }
        };
        if raw.assertion.audience.is_empty() {
            c.error("assertion.audience", "must not be empty".into());
        }

        if let Some(filter) = Some(&raw.log.level) {
            if tracing_subscriber::EnvFilter::try_new(filter).is_err() {
                c.error("log.level", format!("invalid log filter `{filter}`"));
            }
        }

        let redactor = match crate::redact::Redactor::new(&raw.redact.patterns) {
            Ok(r) => Some(Arc::new(r)),
            Err(errors) => {
                for e in errors {
                    let key = format!("redact.patterns.{}.{}", e.index, e.field);
                    c.errors.push(Diagnostic { origin: loc.origin_near(&key), key: Some(key), message: e.message });
                }
                None
            }
        };

        if !c.errors.is_empty() {
            return Err(ConfigError { diagnostics: c.errors });
        }
        let (Some(listen), Some(admin_listen), Some(upstream), Some(store), Some(policy), Some(redactor)) =
            (listen, admin_listen, upstream, store, policy, redactor)
        else {
            return Err(ConfigError {
                diagnostics: vec![Diagnostic {
                    origin: Origin::Default,
                    key: None,
                    message: "internal: missing value".into(),
                }],
            });
        };
        let config = Config {
            source: path.to_path_buf(),
            gate: GateConfig {
                listen,
                admin_listen,
                public_url,
                upstream,
                trusted_proxies,
                header_read_timeout,
                max_header_bytes: g.max_header_bytes,
                max_headers: g.max_headers,
                max_uri_bytes: g.max_uri_bytes,
                max_connections: g.max_connections,
                upstream_connect_timeout,
                upstream_timeout,
                upstream_pool_idle_timeout,
                upstream_pool_max_idle: g.upstream_pool_max_idle,
                drain_timeout,
                workers: g.workers,
            },
            sso: SsoConfig {
                base_url: sso_base,
                client_id: raw.sso.client_id,
                app: raw.sso.app,
                client_secret: raw.sso.client_secret,
                endpoints,
                refresh: raw.sso.refresh,
                refresh_interval,
                timeout: sso_timeout,
            },
            session: SessionConfig {
                store,
                cookie_secure: raw.session.cookie_secure,
                idle_timeout,
                absolute_timeout,
                key_prefix: raw.session.key_prefix,
                cache_ttl,
            },
            tenant: TenantConfig {
                mode,
                id_header: http::HeaderValue::from_str(&raw.tenant.id).unwrap_or(http::HeaderValue::from_static("")),
                name_header: http::HeaderValue::from_str(&raw.tenant.name)
                    .unwrap_or(http::HeaderValue::from_static("")),
                id: raw.tenant.id,
                name: raw.tenant.name,
                codes: raw.tenant.codes.into_iter().map(|(k, v)| (k, (v.id, v.name))).collect(),
            },
            media: MediaConfig {
                bucket: m.bucket,
                region: m.region,
                endpoint,
                path_style: m.path_style,
                key_prefix: m.key_prefix,
                allowed_prefixes: m.allowed_prefixes,
                expires,
                check_exists: m.check_exists,
                disposition,
            },
            assertion: AssertionConfig {
                audience: raw.assertion.audience,
                secret: raw.assertion.secret,
                previous_secret,
            },
            policy,
            log: LogConfig { level: raw.log.level, access: raw.log.access },
            redactor,
        };
        Ok((config, c.warnings))
    }
}

impl Locator<'_> {
    /// Like `origin_of`, ignoring the environment.
    fn origin_of_file_only(&self, key: &str) -> Origin {
        match self.span_of(key) {
            Some(start) => self.at_offset(start),
            None => Origin::Default,
        }
    }

    /// Offset of the value at a dotted key path. Numeric parts index arrays and arrays of
    /// tables (`route.3.roles.1`); a table in an array of tables is located at its header.
    fn span_of(&self, key: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut node = TomlNode::Table(doc.as_table());
        for part in key.split('.') {
            node = node.get(part)?;
        }
        node.span()
    }

    /// The origin of `key`, or of the closest enclosing key the file spells out (a
    /// missing `roles` in `route.3` is reported at the `[[route]]` header).
    fn origin_near(&self, key: &str) -> Origin {
        let mut k = key;
        loop {
            if let Some(start) = self.span_of(k) {
                return self.at_offset(start);
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return Origin::Default,
            }
        }
    }

    /// `policy.toml:12` for a key, used in messages that name another rule.
    fn file_line(&self, key: &str) -> Option<String> {
        match self.origin_near(key) {
            Origin::File { path, line, .. } => Some(format!("{}:{line}", path.display())),
            _ => None,
        }
    }
}

/// A position inside the toml_edit document while following a key path.
#[derive(Clone, Copy)]
enum TomlNode<'d> {
    Item(&'d toml_edit::Item),
    Table(&'d toml_edit::Table),
    Value(&'d toml_edit::Value),
}

impl<'d> TomlNode<'d> {
    fn get(self, part: &str) -> Option<TomlNode<'d>> {
        let index = part.parse::<usize>().ok();
        match self {
            TomlNode::Table(t) => t.get(part).map(TomlNode::Item),
            TomlNode::Item(toml_edit::Item::Table(t)) => t.get(part).map(TomlNode::Item),
            TomlNode::Item(toml_edit::Item::ArrayOfTables(a)) => a.get(index?).map(TomlNode::Table),
            TomlNode::Item(toml_edit::Item::Value(v)) => TomlNode::Value(v).get(part),
            TomlNode::Item(toml_edit::Item::None) => None,
            TomlNode::Value(toml_edit::Value::InlineTable(t)) => t.get(part).map(TomlNode::Value),
            TomlNode::Value(toml_edit::Value::Array(a)) => a.get(index?).map(TomlNode::Value),
            TomlNode::Value(_) => None,
        }
    }

    fn span(self) -> Option<usize> {
        match self {
            TomlNode::Item(i) => i.span(),
            TomlNode::Table(t) => t.span(),
            TomlNode::Value(v) => v.span(),
        }
        .map(|s| s.start)
    }
}

fn env_secret(key: &str) -> Option<Secret<String>> {
    std::env::var(env_var_for(key)).ok().filter(|v| !v.is_empty()).map(Secret::new)
}

/// Collects errors while converting raw values.
struct Compiler<'a, 'b> {
    loc: &'a Locator<'b>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Compiler<'_, '_> {
    fn error(&mut self, key: &str, message: String) {
        self.errors.push(Diagnostic { origin: self.loc.origin_of(key), key: Some(key.into()), message });
    }

    fn socket_addr(&mut self, key: &str, v: &str) -> Option<SocketAddr> {
        match v.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(key, format!("invalid socket address `{v}` (expected IP:PORT, e.g. `127.0.0.1:8080`)"));
                None
            }
        }
    }

    fn duration(&mut self, key: &str, v: &str, min: Duration, max: Option<Duration>) -> Duration {
        match humantime::parse_duration(v) {
            Ok(d) if d < min => {
                self.error(key, format!("`{v}` is below the minimum of {}", humantime::format_duration(min)));
                min
            }
            Ok(d) if max.is_some_and(|m| d > m) => {
                let m = max.unwrap_or(d);
                self.error(key, format!("`{v}` exceeds the maximum of {}", humantime::format_duration(m)));
                m
            }
            Ok(d) => d,
            Err(e) => {
                self.error(key, format!("invalid duration `{v}`: {e} (examples: \"30s\", \"10m\", \"24h\", \"14d\")"));
                min
            }
        }
    }

    fn range(&mut self, key: &str, v: usize, min: usize, max: usize) {
        if v < min || v > max {
            self.error(key, format!("{v} is out of range ({min}..={max})"));
        }
    }

    fn cidr(&mut self, key: &str, v: &str) -> Option<IpNet> {
        if let Ok(net) = v.parse::<IpNet>() {
            return Some(net.trunc());
        }
        if let Ok(ip) = v.parse::<IpAddr>() {
            return Some(IpNet::from(ip));
        }
        self.error(key, format!("invalid CIDR or IP address `{v}`"));
        None
    }

    fn http_url(&mut self, key: &str, v: &str) -> Option<url::Url> {
        match url::Url::parse(v) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    self.error(key, "credentials in URLs are not accepted".into());
                    return None;
                }
                Some(u)
            }
            Ok(_) => {
                self.error(key, format!("`{v}` must be an http:// or https:// URL with a host"));
                None
            }
            Err(e) => {
                self.error(key, format!("invalid URL `{v}`: {e}"));
                None
            }
        }
    }

    fn public_origin(&mut self, key: &str, v: &str) -> Option<PublicOrigin> {
        let u = self.http_url(key, v)?;
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            self.error(key, format!("`{v}` must be an origin only (scheme://host[:port]), without path or query"));
            return None;
        }
        let host = u.host_str().unwrap_or_default();
        let authority_text = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        match authority_text.parse::<http::uri::Authority>() {
            Ok(authority) => Some(PublicOrigin {
                https: u.scheme() == "https",
                origin: format!("{}://{authority_text}", u.scheme()),
                authority,
            }),
            Err(_) => {
                self.error(key, format!("`{v}` has an invalid host"));
                None
            }
        }
    }

    fn upstream(&mut self, key: &str, v: &str) -> Option<Upstream> {
        let uri: http::Uri = match v.parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(key, format!("invalid URL `{v}`"));
                return None;
            }
        };
        if uri.scheme_str() != Some("http") {
            self.error(key, format!("`{v}`: only plain http:// upstreams are supported (Django runs beside the gate)"));
            return None;
        }
        if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
            self.error(key, format!("`{v}` must not have a path or query"));
            return None;
        }
        let Some(authority) = uri.authority().cloned() else {
            self.error(key, format!("`{v}` has no host"));
            return None;
        };
        if authority.as_str().contains('@') {
            self.error(key, "credentials in URLs are not accepted".into());
            return None;
        }
        let addr_hint = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        Some(Upstream { authority, addr_hint })
    }

    fn store(&mut self, key: &str, v: &str) -> Option<StoreKind> {
        if v == "memory" {
            return Some(StoreKind::Memory);
        }
        if ["redis://", "rediss://", "redis+cluster://", "rediss+cluster://"].iter().any(|s| v.starts_with(s)) {
            return Some(StoreKind::Redis(v.to_string()));
        }
        self.error(key, "expected `memory` or a `redis://`, `rediss://` or cluster URL".into());
        None
    }
}

mod lint;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod store_kind_debug {
    use super::StoreKind;

    #[test]
    fn redis_password_never_printed() {
        let k = StoreKind::Redis("redis://user:hunter2@cache.internal:6379/0".into());
        assert_eq!(format!("{k:?}"), "Redis(\"redis://[REDACTED]@cache.internal:6379/0\")");
        let plain = StoreKind::Redis("redis://127.0.0.1:6379".into());
        assert_eq!(format!("{plain:?}"), "Redis(\"redis://127.0.0.1:6379\")");
    }
}
