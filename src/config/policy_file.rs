//! A policy on its own: the `[[route]]` and `[roles]` tables of a file, compiled by the
//! same [`Policy::compile`] as the gate's configuration, without the rest of it.
//!
//! Used for the files `prt-gate diff` and `prt-gate replay --policy` compare and for the
//! shadow policy (`[policy] shadow`). The file may be a whole `policy.toml` (the other
//! sections are ignored, not validated) or only the rules; a top-level key the
//! configuration does not know is an error, so a misspelt `[[routes]]` cannot pass as an
//! empty policy. No environment variables are read.

use std::path::Path;

use serde::Deserialize;

use super::compile::Compiler;
use super::{ConfigError, Diagnostic, Locator, Origin, RawRoles, RawRoute};
use crate::policy::{Policy, PolicyInput};

/// The top-level keys of a configuration file (`RawConfig`'s fields).
const SECTIONS: &[&str] =
    &["gate", "sso", "session", "tenant", "media", "assertion", "roles", "log", "policy", "redact", "route"];

#[derive(Deserialize)]
struct PolicyOnly {
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    roles: RawRoles,
}

impl super::Config {
    /// Reads and compiles the policy of `path`: the policy and its warnings, or every
    /// error located at `file:line:col`.
    pub fn load_policy(path: &Path) -> Result<(Policy, Vec<Diagnostic>), ConfigError> {
        let fail = |origin: Origin, key: Option<String>, message: String| ConfigError {
            diagnostics: vec![Diagnostic { origin, key, message }],
        };
        let at_start = || Origin::File { path: path.to_path_buf(), line: 0, col: 0 };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(at_start(), None, format!("cannot read policy file: {e}")))?;
        let loc = Locator::new(path, &text);
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let origin = e.span().map_or_else(at_start, |s| loc.at_offset(s.start));
            fail(origin, None, e.message().trim().to_string())
        })?;
        if let Some(key) = table.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(fail(
                loc.origin_near(key),
                Some(key.clone()),
                format!("unknown section `{key}` (a policy file holds `[[route]]` and `[roles]`)"),
            ));
        }
        let raw: PolicyOnly = toml::from_str(&text).map_err(|e| {
            let origin = e.span().map_or_else(at_start, |s| loc.at_offset(s.start));
            fail(origin, None, e.message().trim().to_string())
        })?;
        let input = PolicyInput { routes: &raw.route, landing: &raw.roles.landing, pages: &raw.roles.pages };
        let locate =
            |key: String, message: String| Diagnostic { origin: loc.origin_near(&key), key: Some(key), message };
        match Policy::compile(&input, &|key| loc.file_line(key)) {
            Ok((policy, warnings)) => Ok((policy, warnings.into_iter().map(|w| locate(w.key, w.message)).collect())),
            Err(errors) => {
                Err(ConfigError { diagnostics: errors.into_iter().map(|e| locate(e.key, e.message)).collect() })
            }
        }
    }
}

impl Compiler<'_, '_> {
    /// `policy.shadow`, resolved against the directory of the configuration file.
    pub(super) fn shadow_path(&mut self, config: &Path, value: &str) -> Option<std::path::PathBuf> {
        if value.trim().is_empty() {
            self.error("policy.shadow", "must name a policy file (remove the key for no shadow policy)".into());
            return None;
        }
        let p = Path::new(value);
        Some(if p.is_absolute() { p.to_path_buf() } else { config.parent().unwrap_or(Path::new("")).join(p) })
    }
}
