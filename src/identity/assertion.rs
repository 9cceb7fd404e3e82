//! `X-Prt-Assertion`: the short-lived HS256 JWT by which Django can prove a request
//! came through the gate (design §8).
//!
//! The claims have two parts. The **identity** (`iss`, `aud`, `sub`, `email`, `role`,
//! `features`, the tenant) is the same for every request a session makes; the
//! **request** part (`iat`, `exp`, `jti`, `method`, `path`) changes every time. The JSON
//! writes the identity first and pads it with spaces (JSON whitespace between tokens) to
//! a multiple of three bytes, so its base64 ends on a whole group and the token's
//! payload is `base64(identity) + base64(request)`. HMAC runs left to right over
//! `header.payload`, so the state after the identity part can be kept: each worker
//! thread keeps a few ([`CACHE_SLOTS`]) such states, keyed by the signer and every
//! identity field compared exactly, and a request whose identity is already there
//! hashes only its own ~150 bytes. A session's feature map is recognised by address
//! (the slot keeps the session's `Arc` of it alive, so an equal address is the same
//! map), any other by comparing it. A miss (a new user, changed features, a new secret)
//! computes the state from scratch: the token is the same either way (tests here
//! compare cached and fresh tokens byte for byte).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;

use crate::jsonw::{key, str_field, string, uint};
use crate::policy::Features;

/// Issuer of every assertion.
pub const ASSERTION_ISSUER: &str = "prt-gate";
/// Lifetime of an assertion; design §8 caps it at 60 s.
pub const ASSERTION_TTL_SECS: u64 = 30;
/// Shortest accepted `PRT_GATE_ASSERTION__SECRET`.
pub const MIN_SECRET_BYTES: usize = 32;

/// The JOSE header of every assertion: HS256, nothing else (`typ` is
/// optional in RFC 7519 and no verifier here reads it).
const JOSE_HEADER: &[u8] = br#"{"alg":"HS256"}"#;

/// Claims of `X-Prt-Assertion`, in the order the JSON has them.
#[derive(Debug, serde::Serialize, PartialEq, Eq)]
pub struct AssertionClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub features: &'a Features,
    /// The `Arc` holding `features`, if the caller's credential has one
    /// ([`crate::policy::Principal::features_arc`]): the cache then knows the map again
    /// by address.
    #[serde(skip)]
    pub features_arc: Option<&'a std::sync::Arc<Features>>,
    pub tenant_id: &'a str,
    pub tenant_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_code: Option<&'a str>,
    pub iat: u64,
    pub exp: u64,
    /// The request id.
    pub jti: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

impl AssertionClaims<'_> {
    /// The claims as compact JSON, byte for byte what `serde_json` writes for the derived
    /// `Serialize` (a test compares them). The token pads the identity part
    /// ([`AssertionSigner::sign`]); this is both parts unpadded.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_identity(out);
        self.write_request(out);
    }

    /// `{"iss":…` up to and including the tenant: the same for every request of a caller.
    fn write_identity(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"iss\":");
        string(out, self.iss);
        str_field(out, "aud", self.aud);
        str_field(out, "sub", self.sub);
        str_field(out, "email", self.email);
        str_field(out, "role", self.role);
        key(out, "features");
        out.push(b'{');
        for (i, (feature, perms)) in self.features.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, feature);
            out.extend_from_slice(b":[");
            for (j, p) in perms.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                string(out, p);
            }
            out.push(b']');
        }
        out.push(b'}');
        str_field(out, "tenant_id", self.tenant_id);
        str_field(out, "tenant_name", self.tenant_name);
        if let Some(code) = self.tenant_code {
            str_field(out, "tenant_code", code);
        }
    }

    /// `,"iat":…}`: what binds the assertion to one request.
    fn write_request(&self, out: &mut Vec<u8>) {
        key(out, "iat");
        uint(out, self.iat);
        key(out, "exp");
        uint(out, self.exp);
        str_field(out, "jti", self.jti);
        str_field(out, "method", self.method);
        str_field(out, "path", self.path);
        out.push(b'}');
    }
}

/// Signs assertions with the current secret.
///
/// The HMAC key schedule runs once, here; the identity part's state is kept per
/// thread (module docs). The token is a plain HS256 JWT
/// (`base64url(header).base64url(claims).base64url(sig)`), which PyJWT and
/// `jsonwebtoken` verify (tests here and in `deploy/django`).
#[derive(Clone)]
pub struct AssertionSigner {
    /// The key, its schedule computed once (`ring`: its SHA-256 is also the one
    /// that uses the CPU's vector and SHA instructions).
    key: hmac::Key,
    /// `base64url(JOSE_HEADER) + "."`, computed once.
    prefix: String,
    /// Unique per signer built (a new secret is a new signer): cached states of one
    /// secret are never used with another.
    id: u64,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AssertionSigner([REDACTED])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("PRT_GATE_ASSERTION__SECRET must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("cannot sign the assertion")]
    Sign,
}

/// Identity states kept per worker thread (direct-mapped by a hash of the caller).
const CACHE_SLOTS: usize = 64;
/// An encoded identity part longer than this (an unusual feature map) is not kept.
const CACHE_MAX_BYTES: usize = 8 * 1024;

static NEXT_SIGNER: AtomicU64 = AtomicU64::new(1);

/// One caller's identity part, signed so far.
struct Cached {
    signer: u64,
    /// The fields the identity part was written from, compared exactly on lookup.
    aud: String,
    sub: String,
    email: String,
    role: String,
    features: Features,
    /// The map `features` was copied from, kept alive: a caller whose `features` is this
    /// very allocation has these features without a comparison (module docs).
    features_arc: Option<std::sync::Arc<Features>>,
    tenant_id: String,
    tenant_name: String,
    tenant_code: Option<String>,
    /// `base64url(header) "." base64url(identity JSON, padded)`.
    head: Vec<u8>,
    /// The HMAC state after `head`.
    mac: hmac::Context,
}

impl Cached {
    fn matches(&self, signer: u64, c: &AssertionClaims<'_>) -> bool {
        self.signer == signer
            && self.sub == c.sub
            && self.email == c.email
            && self.role == c.role
            && self.aud == c.aud
            && self.tenant_id == c.tenant_id
            && self.tenant_name == c.tenant_name
            && self.tenant_code.as_deref() == c.tenant_code
            && (self.features_arc.as_ref().is_some_and(|a| std::ptr::eq(&**a, c.features))
                || self.features == *c.features)
    }
}

struct Scratch {
    slots: Vec<Option<Box<Cached>>>,
    /// JSON being written (reused).
    json: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch { slots: Vec::new(), json: Vec::new() }) };
}

/// A JSON buffer that grew past this is released.
const JSON_KEEP: usize = 16 * 1024;

impl AssertionSigner {
    pub fn new(secret: &crate::secret::Secret<String>) -> Result<Self, AssertionError> {
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(AssertionError::ShortSecret);
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        let mut prefix = URL_SAFE_NO_PAD.encode(JOSE_HEADER);
        prefix.push('.');
        Ok(AssertionSigner { key, prefix, id: NEXT_SIGNER.fetch_add(1, Ordering::Relaxed) })
    }

    /// The signed token for `claims`, as a header value.
    pub fn sign(&self, claims: &AssertionClaims<'_>) -> Result<http::HeaderValue, AssertionError> {
        SCRATCH.with(|cell| {
            let mut scratch = cell.try_borrow_mut().map_err(|_| AssertionError::Sign)?;
            let Scratch { slots, json } = &mut *scratch;
            if slots.is_empty() {
                slots.resize_with(CACHE_SLOTS, || None);
            }
            let slot = slots.get_mut(slot_of(self.id, claims)).ok_or(AssertionError::Sign)?;
            let fresh;
            let entry: &Cached = match slot {
                Some(c) if c.matches(self.id, claims) => c,
                _ => {
                    let c = self.identity(claims, json)?;
                    if c.head.len() <= CACHE_MAX_BYTES {
                        slot.insert(c)
                    } else {
                        // An unusual feature map: signed, not kept.
                        fresh = c;
                        &fresh
                    }
                }
            };
            json.clear();
            claims.write_request(json);
            let token = finish(&entry.head, entry.mac.clone(), json);
            if json.capacity() > JSON_KEEP {
                *json = Vec::new();
            }
            http::HeaderValue::from_maybe_shared(bytes::Bytes::from(token?)).map_err(|_| AssertionError::Sign)
        })
    }

    /// The identity part of `claims`, encoded and hashed.
    fn identity(&self, c: &AssertionClaims<'_>, json: &mut Vec<u8>) -> Result<Box<Cached>, AssertionError> {
        json.clear();
        c.write_identity(json);
        // Pad with JSON whitespace to whole base64 groups.
        while json.len() % 3 != 0 {
            json.push(b' ');
        }
        let mut head = Vec::with_capacity(self.prefix.len() + json.len() / 3 * 4);
        head.extend_from_slice(self.prefix.as_bytes());
        base64_append(&mut head, json)?;
        let mut mac = hmac::Context::with_key(&self.key);
        mac.update(&head);
        Ok(Box::new(Cached {
            signer: self.id,
            aud: c.aud.to_owned(),
            sub: c.sub.to_owned(),
            email: c.email.to_owned(),
            role: c.role.to_owned(),
            features: c.features.clone(),
            // Kept only if it holds exactly the map the identity part was written from.
            features_arc: c.features_arc.filter(|a| std::ptr::eq(&***a, c.features)).cloned(),
            tenant_id: c.tenant_id.to_owned(),
            tenant_name: c.tenant_name.to_owned(),
            tenant_code: c.tenant_code.map(str::to_owned),
            head,
            mac,
        }))
    }
}

/// `head base64url(rest) "." signature`, where `mac` holds the state after `head`.
fn finish(head: &[u8], mut mac: hmac::Context, rest: &[u8]) -> Result<Vec<u8>, AssertionError> {
    let mut token = Vec::with_capacity(head.len() + rest.len().div_ceil(3) * 4 + 1 + 43);
    token.extend_from_slice(head);
    base64_append(&mut token, rest)?;
    mac.update(&token[head.len()..]);
    let sig = mac.sign();
    token.push(b'.');
    base64_append(&mut token, sig.as_ref())?;
    Ok(token)
}

/// The cache slot for a caller: FNV-1a over the signer and the caller's subject and
/// e-mail (the fields that tell callers apart; the rest is compared on lookup).
fn slot_of(signer: u64, c: &AssertionClaims<'_>) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ signer;
    for b in c.sub.bytes().chain([0xff]).chain(c.email.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % CACHE_SLOTS as u64) as usize
}

/// Appends `base64url(input)` (no padding) to `out`.
fn base64_append(out: &mut Vec<u8>, input: &[u8]) -> Result<(), AssertionError> {
    let start = out.len();
    out.resize(start + input.len().div_ceil(3) * 4, 0);
    let written = URL_SAFE_NO_PAD.encode_slice(input, &mut out[start..]).map_err(|_| AssertionError::Sign)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests;
