//! The raw layer: `policy.toml` + `PRT_GATE_*` exactly as written, plain serde
//! with `deny_unknown_fields` (typos are errors). Only [`super::compile`] reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RawRoute;
use crate::secret::Secret;

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
    /// `[policy]`: the shadow policy file (`policy::shadow`).
    pub policy: RawPolicy,
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
    /// Attempts per client address per minute on `/auth/login/` and
    /// `/auth/callback/`; 0 disables the limit.
    pub login_rate_limit: u32,
    pub allowed_hosts: Vec<String>,
    pub h2_first_request_timeout: String,
    pub h2_idle_timeout: String,
    pub h2_header_block_timeout: String,
    pub hide_upstream_headers: Vec<String>,
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
            login_rate_limit: 30,
            allowed_hosts: Vec::new(),
            h2_first_request_timeout: "10s".into(),
            h2_idle_timeout: "60s".into(),
            h2_header_block_timeout: "5s".into(),
            hide_upstream_headers: vec!["server".into(), "x-powered-by".into()],
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSso {
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub app: String,
    /// Overrides of the endpoints derived from `base_url` (design §4).
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
    /// `mode = "static"`: the tenant code every caller acts for (tenant matches in rules).
    pub code: String,
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
            code: "PRT".into(),
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
    /// Stray leading segments dropped from a `/media/` remainder before the
    /// allow-list check (`["media/"]` repairs `/media/media/bols/…` links).
    pub strip_prefixes: Vec<String>,
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
            strip_prefixes: Vec::new(),
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

/// `[policy]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    /// A second policy file decided for every request and only compared (never enforced);
    /// relative to the configuration file's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
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
