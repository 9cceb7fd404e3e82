//! Media (design §7): `/media/<key>` is answered by the gate with a redirect to
//! a presigned S3 `GET`, so documents are never public and never pass
//! through Django.
//!
//! * [`key`] maps and checks the key (pure);
//! * [`sigv4`] signs the URL (pure, given a clock);
//! * [`exists`] optionally asks S3 whether the object is there.
//!
//! The pipeline calls [`Media::grant`] only after the policy allowed the
//! caller. The URL it returns is a bearer credential for `media.expires`: it
//! goes into the `Location` header and nowhere else (the audit event carries
//! the key, never the URL).

pub mod audit;
pub mod exists;
pub mod key;
pub mod sigv4;

use std::time::{Duration, SystemTime};

use crate::config::{Disposition, MediaConfig};
use crate::normalize::NormalizedPath;
use exists::{Existence, ExistsCheck, ExistsError};
use key::{KeyError, KeyRules};
use sigv4::{Credentials, CredentialsError, Presigner, Target, Verb};

/// Maps a request path to its object key under the live `[media]` rules
/// (see [`key`]). Pure; the pipeline calls it right after normalization, so
/// a malformed media path is a 400 whoever asks.
pub fn object_key(cfg: &MediaConfig, raw_path: &str, path: &NormalizedPath<'_>) -> Result<String, KeyError> {
    let rules = KeyRules {
        key_prefix: &cfg.key_prefix,
        allowed_prefixes: &cfg.allowed_prefixes,
        strip_prefixes: &cfg.strip_prefixes,
    };
    key::object_key(raw_path, path, rules)
}

/// Lifetime of the presigned `HEAD` used by the existence check.
const HEAD_EXPIRES: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("bad media key: {0}")]
    Key(#[from] KeyError),
    #[error("media object does not exist")]
    Missing,
    #[error("media store unavailable: {0}")]
    Unavailable(#[from] ExistsError),
}

#[derive(Debug, thiserror::Error)]
pub enum MediaBuildError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot load TLS root certificates for the S3 client: {0}")]
    Tls(#[from] std::io::Error),
}

/// A granted download: the URL (secret) and what the audit log may say.
pub struct Grant {
    pub url: String,
    pub key: String,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("url", &"[REDACTED]").field("key", &self.key).finish()
    }
}

/// The media service of one gate process: bucket addressing and credentials
/// are fixed at start; key rules, expiry and the existence check follow the
/// live configuration.
pub struct Media {
    presigner: Presigner,
    exists: ExistsCheck,
}

impl Media {
    /// `None` when no bucket is configured (every `/media/` request is then
    /// a 404 after the policy check). Credentials come from the environment
    /// (the gate's own `PRT_GATE_MEDIA__*` names, else `AWS_*`; `prt-gate run`
    /// checks first that its own names are set: [`Media::check_own_credentials`]).
    pub fn from_config(cfg: &MediaConfig) -> Result<Option<Media>, MediaBuildError> {
        Media::with_credentials(cfg, || Credentials::from_env(false))
    }

    /// `prt-gate run`: with a bucket configured, the gate's credentials must
    /// come from its own variables, since the `AWS_*` ones are the child's.
    pub fn check_own_credentials(cfg: &MediaConfig) -> Result<(), CredentialsError> {
        match cfg.bucket {
            Some(_) => Credentials::from_env(true).map(|_| ()),
            None => Ok(()),
        }
    }

    pub fn with_credentials(
        cfg: &MediaConfig,
        creds: impl FnOnce() -> Result<Credentials, CredentialsError>,
    ) -> Result<Option<Media>, MediaBuildError> {
        let Some(bucket) = &cfg.bucket else { return Ok(None) };
        let creds = creds()?;
        if let Some(w) = creds.lifetime_warning(cfg.expires, SystemTime::now()) {
            tracing::warn!(target: "media", "{w}");
        }
        let target = Target::new(bucket, &cfg.region, cfg.endpoint.as_ref(), cfg.path_style);
        Ok(Some(Media { presigner: Presigner::new(creds, &cfg.region, target), exists: ExistsCheck::new()? }))
    }

    /// Checks that `key` (from [`object_key`]) exists when configured, and signs.
    pub async fn grant(&self, cfg: &MediaConfig, key: String, now: SystemTime) -> Result<Grant, MediaError> {
        if cfg.check_exists {
            let head = || self.presigner.presign(Verb::Head, &key, HEAD_EXPIRES, now, &[]);
            if self.exists.check(&key, head).await? == Existence::Missing {
                return Err(MediaError::Missing);
            }
        }
        Ok(self.sign(cfg, key, cfg.expires, now))
    }

    /// Signs a `GET` for an already mapped `key` (`prt-gate presign`).
    pub fn sign(&self, cfg: &MediaConfig, key: String, expires: Duration, now: SystemTime) -> Grant {
        let disposition = content_disposition(cfg.disposition, &key);
        let params: &[sigv4::Param<'_>] = match &disposition {
            Some(d) => &[("response-content-disposition", d.as_str())],
            None => &[],
        };
        let url = self.presigner.presign(Verb::Get, &key, expires, now, params);
        Grant { url, key, expires_at: now + expires }
    }
}

/// `inline; filename="x.pdf"` (or `attachment`), with an RFC 5987
/// `filename*` when the name is not plain ASCII.
fn content_disposition(d: Disposition, key: &str) -> Option<String> {
    let kind = match d {
        Disposition::None => return None,
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    let name = key.rsplit('/').next().unwrap_or(key);
    if name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') {
        Some(format!("{kind}; filename=\"{name}\""))
    } else {
        let mut enc = String::new();
        sigv4::encode_into(&mut enc, name, false);
        Some(format!("{kind}; filename*=UTF-8''{enc}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_names_the_file_safely() {
        assert_eq!(content_disposition(Disposition::None, "bols/a.pdf"), None);
        assert_eq!(
            content_disposition(Disposition::Inline, "bols/2025/PRT-2025-0002.pdf").as_deref(),
            Some("inline; filename=\"PRT-2025-0002.pdf\"")
        );
        assert_eq!(
            content_disposition(Disposition::Attachment, "bols/é \"x\".pdf").as_deref(),
            Some("attachment; filename*=UTF-8''%C3%A9%20%22x%22.pdf")
        );
    }

    #[test]
    fn grant_debug_hides_the_url() {
        let g = Grant {
            url: "https://b/k?X-Amz-Signature=canary".into(),
            key: "bols/k".into(),
            expires_at: SystemTime::now(),
        };
        let shown = format!("{g:?}");
        assert!(!shown.contains("canary") && shown.contains("bols/k"), "{shown}");
    }
}
