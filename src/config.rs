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
//! that contains such a key is rejected. The gate's S3 credentials
//! (`PRT_GATE_MEDIA__ACCESS_KEY_ID`…) are read by `media::sigv4::Credentials`,
//! never by figment.
//!
//! Files: `config/raw.rs` (the raw layer), `config/compile.rs` (loading and
//! [`Config::compile`]), `config/lint.rs` (`check`'s warnings), and this file:
//! the compiled types, diagnostics and the `file:line:col` locator.
//!
//! Neighbours: `cli` loads and reports; `proxy` and `admin` read the compiled
//! values; nothing on the data plane ever sees a `RawConfig`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::policy::{Policy, PolicyInput};
use crate::secret::Secret;

pub use crate::policy::RawRoute;

/// Environment variable prefix for overrides (`PRT_GATE_GATE__LISTEN=…`).
pub const ENV_PREFIX: &str = "PRT_GATE_";
/// Environment variables that are read directly and never through figment.
/// The `media__*` ones are the gate's own S3 credentials (`media::sigv4::Credentials`).
const ENV_NOT_KEYS: &[&str] = &[
    "config",
    "sso__client_secret",
    "assertion__secret",
    "assertion__previous_secret",
    "media__access_key_id",
    "media__secret_access_key",
    "media__session_token",
    "media__credential_expiration",
];

mod compile;
mod policy_file;
mod raw;
pub use raw::*;

// ---------------------------------------------------------------------------
// Compiled layer
// ---------------------------------------------------------------------------

/// The configuration the data plane runs on. Built only by [`Config::load`] /
/// [`Config::compile`].
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    /// SHA-256 of the file's text (hex): what `sha256sum` prints, shown by
    /// `/metrics` (`prt_gate_policy_info`) and `/status`.
    pub digest: Arc<str>,
    pub gate: GateConfig,
    pub sso: SsoConfig,
    pub session: SessionConfig,
    pub tenant: TenantConfig,
    pub media: MediaConfig,
    pub assertion: AssertionConfig,
    /// The compiled `[[route]]` / `[roles]` policy, shared with the data plane.
    pub policy: Arc<Policy>,
    /// `policy.shadow`: the shadow policy file, resolved against the configuration's
    /// directory (`crate::shadow`).
    pub shadow: Option<PathBuf>,
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
    /// Login attempts per client address per minute (0: unlimited),
    /// `proxy::ratelimit`.
    pub login_rate_limit: u32,
    /// `Host` / `:authority` values served besides `public_url`'s (`pipeline`'s parse phase
    /// refuses the rest). With neither configured, any `Host` is served (local use).
    pub allowed_hosts: Vec<http::uri::Authority>,
    /// HTTP/2 bounds (`proxy::conn_watch`): no request after the preface, no open stream, a
    /// header block left without `END_HEADERS`.
    pub h2_first_request_timeout: Duration,
    pub h2_idle_timeout: Duration,
    pub h2_header_block_timeout: Duration,
    /// Upstream response headers never passed to the client (`Server`, `X-Powered-By`).
    pub hide_upstream_headers: Vec<http::HeaderName>,
}

impl GateConfig {
    /// Whether a request addressed to `host` (a `Host` or `:authority` value) is this
    /// gate's: `public_url`'s authority or one of `allowed_hosts`, host compared without
    /// case, a missing port meaning the public scheme's default.
    pub fn serves_host(&self, host: &[u8]) -> bool {
        // The usual request names a served authority exactly as configured (any case):
        // no parse. Such a value is a valid authority equal to a served one, so the full
        // comparison below would accept it too.
        let exact = |a: &http::uri::Authority| a.as_str().as_bytes().eq_ignore_ascii_case(host);
        if self.public_url.as_ref().is_some_and(|p| exact(&p.authority)) || self.allowed_hosts.iter().any(exact) {
            return true;
        }
        let Ok(asked) = http::uri::Authority::try_from(host) else { return false };
        let default_port = if self.public_url.as_ref().is_some_and(|p| !p.https) { 80 } else { 443 };
        let same = |a: &http::uri::Authority| {
            a.host().eq_ignore_ascii_case(asked.host())
                && a.port_u16().unwrap_or(default_port) == asked.port_u16().unwrap_or(default_port)
        };
        match &self.public_url {
            None if self.allowed_hosts.is_empty() => true,
            public => public.as_ref().is_some_and(|p| same(&p.authority)) || self.allowed_hosts.iter().any(same),
        }
    }
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
    /// `mode = "static"`: the tenant code of every caller (`tenant.code`, default `PRT`).
    pub code: String,
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

    /// The tenant code a caller acts for in rules' tenant matches: `tenant.code` in
    /// `static` mode, the caller's own `tenant_code` claim in `claim` mode (`None` for
    /// unscoped staff).
    pub fn caller_code<'a>(&'a self, claim: Option<&'a str>) -> Option<&'a str> {
        match self.mode {
            TenantMode::Static => Some(&self.code),
            TenantMode::Claim => claim,
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
    /// Dropped once from the front of a media remainder before the allow-list
    /// check (docs/media.md).
    pub strip_prefixes: Vec<String>,
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
