//! What a store keeps: session records, login state, and the expiry rules.
//!
//! Records are plain serde structs (JSON in Redis). Secret fields are
//! [`Secret`]s: they serialize their real value into the store (through an
//! explicit `serialize_with`, so `Secret` itself stays non-`Serialize` and
//! cannot leak into a JSON log line by accident) and print `[REDACTED]`.
//! The expiry rules here are shared by [`super::memory`], [`super::redis`]
//! and [`super::cache`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::SessionConfig;
use crate::policy::{Principal, Role};
use crate::secret::Secret;

/// One browser session, as verified at login (or at the last token refresh).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub subject: String,
    pub email: String,
    pub name: String,
    pub role: StoredRole,
    /// Shared: sessions of one role and tenant usually carry the same map, and the
    /// in-memory store keeps one copy of each ([`super::memory`]). Serialized as the
    /// plain map (the Redis format is unchanged).
    #[serde(serialize_with = "plain_features", deserialize_with = "shared_features")]
    pub features: SharedFeatures,
    pub tenant_id: String,
    pub tenant_name: String,
    pub tenant_code: Option<String>,
    /// Unix seconds; stamped by the store in `create`.
    pub created: u64,
    /// Unix seconds of the last request, refreshed at most once a minute.
    pub last_seen: u64,
    /// Unix seconds after which the session is dead whatever its activity.
    pub absolute_expiry: u64,
    pub idle_timeout_secs: u64,
    /// SSO tokens, kept only when token refresh is enabled.
    pub tokens: Option<StoredTokens>,
}

/// The role a session record names: one the gate knows, parsed once when the record is
/// read (never again per request), or a name it does not know (a record written by another
/// version, or by hand), kept verbatim so that rewriting the record (the `last_seen`
/// touch) never changes it. An unknown role is no role: the policy denies it on every rule
/// that is not public, as a session with no role. On the wire it is the role's name (JSON
/// string), as it always was: records written before this type existed load unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRole {
    Known(Role),
    Unknown(Box<str>),
}

impl StoredRole {
    /// The role, if the gate knows it.
    pub fn role(&self) -> Option<Role> {
        match self {
            StoredRole::Known(r) => Some(*r),
            StoredRole::Unknown(_) => None,
        }
    }

    /// The name as stored (canonical for a known role).
    pub fn as_str(&self) -> &str {
        match self {
            StoredRole::Known(r) => r.as_str(),
            StoredRole::Unknown(name) => name,
        }
    }
}

impl From<Role> for StoredRole {
    fn from(r: Role) -> Self {
        StoredRole::Known(r)
    }
}

/// A stored name: [`Role::parse`] (case-insensitive, as the policy always compared it).
impl From<&str> for StoredRole {
    fn from(name: &str) -> Self {
        Role::parse(name).map_or_else(|| StoredRole::Unknown(name.into()), StoredRole::Known)
    }
}

impl PartialEq<&str> for StoredRole {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for StoredRole {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StoredRole {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = StoredRole;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a role name")
            }
            // no alloc for a known role: the name is compared where it lies.
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StoredRole, E> {
                Ok(StoredRole::from(v))
            }
        }
        de.deserialize_str(Name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTokens {
    #[serde(serialize_with = "expose_secret")]
    pub refresh_token: Secret<String>,
    /// Unix seconds at which the access token (not stored) expires.
    pub access_expiry: u64,
}

/// Server-side state of one login in flight, keyed by the hash of the OAuth
/// `state` parameter. Single use; 10 minutes by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    #[serde(serialize_with = "expose_secret")]
    pub pkce_verifier: Secret<String>,
    #[serde(serialize_with = "expose_secret")]
    pub nonce: Secret<String>,
    pub next: Option<String>,
    pub created: u64,
}

/// A session as `prt-gate sessions list` shows it: nothing in it can be
/// used to take the session over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    /// First 12 hex characters of the storage key.
    pub handle: String,
    pub email: String,
    pub role: String,
    pub created: u64,
    pub last_seen: u64,
    /// When the session ends if unused: min(absolute, last seen + idle).
    pub expires: u64,
}

/// A session's feature grants (`feature → permissions`), shared between records.
pub type SharedFeatures = Arc<BTreeMap<String, Vec<String>>>;

fn plain_features<S: Serializer>(f: &SharedFeatures, ser: S) -> Result<S::Ok, S::Error> {
    f.as_ref().serialize(ser)
}

fn shared_features<'de, D: Deserializer<'de>>(de: D) -> Result<SharedFeatures, D::Error> {
    BTreeMap::deserialize(de).map(Arc::new)
}

fn expose_secret<S: Serializer>(s: &Secret<String>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Timeouts every store applies, taken from [`SessionConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub idle_secs: u64,
    pub absolute_secs: u64,
}

impl Timeouts {
    pub fn from_config(cfg: &SessionConfig) -> Timeouts {
        Timeouts { idle_secs: cfg.idle_timeout.as_secs().max(1), absolute_secs: cfg.absolute_timeout.as_secs().max(1) }
    }

    /// Set the timestamps of a new session; whatever the caller put there
    /// is ignored, so no caller can mint a longer-lived session.
    pub fn stamp(&self, rec: &mut SessionRecord, now: u64) {
        rec.created = now;
        rec.last_seen = now;
        rec.absolute_expiry = now.saturating_add(self.absolute_secs);
        rec.idle_timeout_secs = self.idle_secs;
    }
}

impl SessionRecord {
    /// Who this session is, as the policy and identity injection read it: borrowed from
    /// the record, nothing copied.
    pub fn principal(&self) -> Principal<'_> {
        Principal {
            subject: &self.subject,
            email: &self.email,
            role: self.role.role(),
            features: &self.features,
            features_arc: Some(&self.features),
            tenant_code: self.tenant_code.as_deref(),
            tenant: Some((&self.tenant_id, &self.tenant_name)),
        }
    }

    /// When the session ends if it sees no further request.
    pub fn expires_at(&self) -> u64 {
        self.absolute_expiry.min(self.last_seen.saturating_add(self.idle_timeout_secs))
    }

    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at()
    }

    /// Whether `get` should write a new `last_seen`: at most once a minute,
    /// and more often only when the idle timeout is so short (tests) that a
    /// minute of slack would expire an active session.
    pub(crate) fn needs_touch(&self, now: u64) -> bool {
        let interval = (self.idle_timeout_secs / 4).min(60);
        now > self.last_seen && now - self.last_seen >= interval
    }

    /// Seconds the store should keep the record: until it would expire.
    pub(crate) fn ttl_secs(&self, now: u64) -> u64 {
        self.expires_at().saturating_sub(now).max(1)
    }

    pub(crate) fn summary(&self, digest: &super::id::Digest) -> SessionSummary {
        SessionSummary {
            handle: super::id::handle_of(digest),
            email: self.email.clone(),
            role: self.role.as_str().to_owned(),
            created: self.created,
            last_seen: self.last_seen,
            expires: self.expires_at(),
        }
    }
}

/// The per-user index key: emails compare case-insensitively.
pub(crate) fn user_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// TTL of login state in whole seconds (Redis `EX` takes seconds).
pub(crate) fn ttl_whole_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}
