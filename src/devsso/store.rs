//! In-memory state of the dev SSO: the live user list, authorization codes
//! (single use, 60 s), access tokens (900 s) and refresh tokens (7 days,
//! rotated on use). Every map is bounded: an insert into a full map first
//! evicts the expired entries, then, if still full, the one closest to expiry.
//! Expired entries are never honoured, evicted or not.
//!
//! A code presented twice revokes every token issued from it (RFC 6749
//! 4.1.2). Also the PKCE check (RFC 7636).
//!
//! Neighbours: `endpoints` is the only user, always under one
//! `tokio::sync::Mutex`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::users::User;

pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
pub(crate) const ACCESS_TTL: Duration = Duration::from_secs(900);
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a spent code is remembered to detect replay.
const SPENT_TTL: Duration = Duration::from_secs(600);
/// Per map; a dev tool never gets near it, a runaway script cannot grow it.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// What an authorization grant is about; shared by its code and tokens.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Tokens from one code share an id, so a replayed code revokes them all.
    pub id: u64,
    pub client_id: String,
    pub email: String,
    pub scope: String,
    pub nonce: Option<String>,
    /// Unix seconds of the user's login (the `auth_time` claim).
    pub auth_time: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pkce {
    S256(String),
    Plain(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub grant: Grant,
    pub redirect_uri: String,
    pub pkce: Option<Pkce>,
}

#[derive(Debug)]
struct Entry<T> {
    value: T,
    expires: Instant,
}

/// Outcome of presenting a code.
#[derive(Debug)]
pub(crate) enum Redeem {
    Fresh(Code),
    /// Unknown or expired.
    Invalid,
    /// Already used: every token from it was just revoked.
    Replayed,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub users: Vec<User>,
    codes: HashMap<String, Entry<Code>>,
    spent: HashMap<String, Entry<u64>>,
    access: HashMap<String, Entry<Grant>>,
    refresh: HashMap<String, Entry<Grant>>,
    next_grant: u64,
}

impl Store {
    pub(crate) fn new(users: Vec<User>) -> Store {
        Store {
            users,
            codes: HashMap::new(),
            spent: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            next_grant: 1,
        }
    }

    pub(crate) fn user(&self, email: &str) -> Option<&User> {
        self.users.iter().find(|u| u.email.eq_ignore_ascii_case(email))
    }

    pub(crate) fn user_mut(&mut self, email: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.email.eq_ignore_ascii_case(email))
    }

    pub(crate) fn next_grant_id(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    /// Stores a code and returns it.
    pub(crate) fn issue_code(&mut self, code: Code) -> String {
        let id = random_token();
        insert(&mut self.codes, id.clone(), code, CODE_TTL);
        id
    }

    /// Takes a code out (single use: whatever happens next, it is spent).
    pub(crate) fn redeem_code(&mut self, code: &str) -> Redeem {
        let now = Instant::now();
        match self.codes.remove(code) {
            Some(e) => {
                insert(&mut self.spent, code.to_string(), e.value.grant.id, SPENT_TTL);
                if e.expires > now {
                    Redeem::Fresh(e.value)
                } else {
                    Redeem::Invalid
                }
            }
            None => match self.spent.get(code) {
                Some(s) if s.expires > now => {
                    let grant = s.value;
                    self.access.retain(|_, e| e.value.id != grant);
                    self.refresh.retain(|_, e| e.value.id != grant);
                    Redeem::Replayed
                }
                _ => Redeem::Invalid,
            },
        }
    }

    /// A new access + refresh token pair for `grant`.
    pub(crate) fn issue_tokens(&mut self, grant: &Grant) -> (String, String) {
        let access = random_token();
        let refresh = random_token();
        insert(&mut self.access, access.clone(), grant.clone(), ACCESS_TTL);
        insert(&mut self.refresh, refresh.clone(), grant.clone(), REFRESH_TTL);
        (access, refresh)
    }

    /// The live grant of an access token.
    pub(crate) fn access(&self, token: &str) -> Option<&Grant> {
        self.access.get(token).filter(|e| e.expires > Instant::now()).map(|e| &e.value)
    }

    /// The live grant of a refresh token, left in place.
    pub(crate) fn peek_refresh(&self, token: &str) -> Option<&Grant> {
        self.refresh.get(token).filter(|e| e.expires > Instant::now()).map(|e| &e.value)
    }

    /// Removes a refresh token (rotation).
    pub(crate) fn take_refresh(&mut self, token: &str) -> Option<Grant> {
        self.refresh.remove(token).filter(|e| e.expires > Instant::now()).map(|e| e.value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.codes.len() + self.spent.len() + self.access.len() + self.refresh.len()
    }
}

fn insert<T>(map: &mut HashMap<String, Entry<T>>, key: String, value: T, ttl: Duration) {
    let now = Instant::now();
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, e| e.expires > now);
    }
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone()) else { break };
        map.remove(&oldest);
    }
    map.insert(key, Entry { value, expires: now + ttl });
}

/// 256 bits from the thread-local CSPRNG, base64url (43 characters).
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// RFC 7636 4.1: 43–128 characters of `[A-Za-z0-9-._~]`. Also the shape of a
/// `plain` challenge.
pub(crate) fn is_verifier_syntax(s: &str) -> bool {
    (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `verifier` answers `challenge` (RFC 7636 4.6).
pub(crate) fn pkce_matches(challenge: &Pkce, verifier: &str) -> bool {
    if !is_verifier_syntax(verifier) {
        return false;
    }
    match challenge {
        Pkce::S256(c) => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *c,
        Pkce::Plain(c) => verifier == c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rows() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let s256 = Pkce::S256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into());
        let rows: &[(&Pkce, &str, bool)] = &[
            (&s256, verifier, true),
            (&s256, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", false),
            (&s256, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", false),
            (&s256, "", false),
            (&Pkce::Plain(verifier.into()), verifier, true),
            (&Pkce::Plain(verifier.into()), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", false),
            // Too short to be a verifier, even if it matches.
            (&Pkce::Plain("short".into()), "short", false),
            (&Pkce::Plain("a b".repeat(20)), &"a b".repeat(20), false),
        ];
        for (i, (c, v, want)) in rows.iter().enumerate() {
            assert_eq!(pkce_matches(c, v), *want, "row {i}");
        }
    }

    fn grant(id: u64) -> Grant {
        Grant { id, client_id: "c".into(), email: "e@x".into(), scope: "openid".into(), nonce: None, auth_time: 0 }
    }

    #[test]
    fn code_is_single_use_and_replay_revokes() {
        let mut s = Store::new(vec![]);
        let code = s.issue_code(Code { grant: grant(7), redirect_uri: "r".into(), pkce: None });
        assert!(matches!(s.redeem_code(&code), Redeem::Fresh(_)));
        let (access, refresh) = s.issue_tokens(&grant(7));
        let (other, _) = s.issue_tokens(&grant(8));
        assert!(matches!(s.redeem_code(&code), Redeem::Replayed));
        assert!(s.access(&access).is_none());
        assert!(s.peek_refresh(&refresh).is_none());
        assert!(s.access(&other).is_some());
        assert!(matches!(s.redeem_code("nope"), Redeem::Invalid));
    }

    #[test]
    fn maps_are_bounded() {
        let mut s = Store::new(vec![]);
        for _ in 0..MAX_ENTRIES + 10 {
            s.issue_code(Code { grant: grant(1), redirect_uri: "r".into(), pkce: None });
        }
        assert_eq!(s.len(), MAX_ENTRIES);
    }
}
