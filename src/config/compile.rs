//! Loading and compiling: file + environment → [`Config`], every error located
//! (`file:line:col` or the environment variable it came from).

use figment::providers::{Env, Format, Toml};
use figment::Figment;

use super::*;

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
        let allowed_hosts = g.allowed_hosts.iter().filter_map(|h| c.host("gate.allowed_hosts", h)).collect();
        let h2_first_request_timeout =
            c.duration("gate.h2_first_request_timeout", &g.h2_first_request_timeout, Duration::from_millis(100), None);
        let h2_idle_timeout = c.duration("gate.h2_idle_timeout", &g.h2_idle_timeout, Duration::from_millis(100), None);
        let h2_header_block_timeout =
            c.duration("gate.h2_header_block_timeout", &g.h2_header_block_timeout, Duration::from_millis(100), None);
        let hide_upstream_headers = g
            .hide_upstream_headers
            .iter()
            .filter_map(|h| match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => {
                    c.error("gate.hide_upstream_headers", format!("invalid header name `{h}`"));
                    None
                }
            })
            .collect();
        c.range("gate.max_header_bytes", g.max_header_bytes, 8 * 1024, 1024 * 1024);
        c.range("gate.max_headers", g.max_headers, 16, 1000);
        c.range("gate.max_uri_bytes", g.max_uri_bytes, 256, 64 * 1024);
        c.range("gate.max_connections", g.max_connections, 1, 1_000_000);
        c.range("gate.login_rate_limit", g.login_rate_limit as usize, 0, 1_000_000);
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

        if !valid_tenant_code(&raw.tenant.code) {
            c.error(
                "tenant.code",
                format!("`{}` is not a tenant code (1-10 upper-case letters or digits, e.g. PRT)", raw.tenant.code),
            );
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
        for p in &m.strip_prefixes {
            let segments_ok = p.strip_suffix('/').is_some_and(|s| !s.is_empty() && s.split('/').all(|x| !x.is_empty()));
            if !segments_ok || p.starts_with('/') || p.contains("..") || p.contains('\\') {
                c.error(
                    "media.strip_prefixes",
                    format!("invalid stray prefix `{p}` (whole segments ending in `/`, e.g. \"media/\")"),
                );
            } else if m.allowed_prefixes.iter().any(|a| a.starts_with(p.as_str())) {
                c.error(
                    "media.strip_prefixes",
                    format!("`{p}` begins an allowed prefix: stripping it would change which keys are allowed"),
                );
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
        let shadow = raw.policy.shadow.as_deref().and_then(|s| c.shadow_path(path, s));
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
                login_rate_limit: g.login_rate_limit,
                allowed_hosts,
                h2_first_request_timeout,
                h2_idle_timeout,
                h2_header_block_timeout,
                hide_upstream_headers,
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
                code: raw.tenant.code,
                codes: raw.tenant.codes.into_iter().map(|(k, v)| (k, (v.id, v.name))).collect(),
            },
            media: MediaConfig {
                bucket: m.bucket,
                region: m.region,
                endpoint,
                path_style: m.path_style,
                key_prefix: m.key_prefix,
                allowed_prefixes: m.allowed_prefixes,
                strip_prefixes: m.strip_prefixes,
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
            shadow,
            digest: {
                use sha2::{Digest, Sha256};
                Sha256::digest(loc.text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>().into()
            },
            log: LogConfig { level: raw.log.level, access: raw.log.access },
            redactor,
        };
        Ok((config, c.warnings))
    }
}

fn env_secret(key: &str) -> Option<Secret<String>> {
    std::env::var(env_var_for(key)).ok().filter(|v| !v.is_empty()).map(Secret::new)
}

/// Collects errors while converting raw values.
pub(super) struct Compiler<'a, 'b> {
    loc: &'a Locator<'b>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Compiler<'_, '_> {
    pub(super) fn error(&mut self, key: &str, message: String) {
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

    /// A `host[:port]` as a `Host` header carries it, no scheme, path or user.
    fn host(&mut self, key: &str, v: &str) -> Option<http::uri::Authority> {
        match v.parse::<http::uri::Authority>() {
            Ok(a) if !a.as_str().contains('@') && !a.host().is_empty() => Some(a),
            _ => {
                self.error(key, format!("`{v}` is not a host[:port] (like `prt.example.com` or `10.0.0.5:8080`)"));
                None
            }
        }
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

/// A tenant code as the SSO issues it: 1-10 upper-case ASCII letters or digits.
fn valid_tenant_code(code: &str) -> bool {
    (1..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}
