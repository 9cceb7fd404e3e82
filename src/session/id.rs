//! `SessionId`: the opaque cookie value and the hash the stores key on.
//!
//! The id is 32 bytes from the OS CSPRNG, base64url without padding (43
//! characters). Stores never see it: they key records by
//! [`SessionId::storage_key`] (hex SHA-256 of the cookie value), so a dump of
//! Redis or of process memory indexes yields no usable cookie. Used by
//! [`super::memory`], [`super::redis`] and [`super::cache`]; the pipeline parses
//! the cookie with [`SessionId::parse`] and sets it with
//! [`SessionId::expose_cookie_value`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore as _;

/// Bytes of CSPRNG output in one id (256 bits).
const ID_BYTES: usize = 32;
/// Length of the cookie value: base64url of 32 bytes, no padding.
pub const ID_LEN: usize = 43;

/// SHA-256 of a secret (session id, OAuth `state`): what the stores key on.
pub(crate) type Digest = [u8; 32];

/// The operating system's random source failed: no session id can be minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("OS random source unavailable: cannot mint a session id")]
pub struct RandomUnavailable;

/// An opaque session id. `Debug`/`Display` print `[REDACTED]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId {
    // no alloc: the cookie text and its digest live inline, so parsing a
    // cookie and looking it up in the hot cache allocate nothing.
    text: [u8; ID_LEN],
    digest: Digest,
}

impl SessionId {
    /// A fresh id from the OS CSPRNG.
    ///
    /// Fails only when the operating system's random source fails: there is no safe
    /// fallback for session ids, so the caller refuses the login (503) instead.
    pub fn generate() -> Result<SessionId, RandomUnavailable> {
        let mut raw = [0u8; ID_BYTES];
        OsRng.try_fill_bytes(&mut raw).map_err(|_| RandomUnavailable)?;
        let mut text = [0u8; ID_LEN];
        // 32 bytes are exactly 43 base64url characters; a mismatch is refused, never used.
        match URL_SAFE_NO_PAD.encode_slice(raw, &mut text) {
            Ok(ID_LEN) => Ok(SessionId { digest: sha256(&text), text }),
            _ => Err(RandomUnavailable),
        }
    }

    /// Strict parse of a cookie value: exactly 43 base64url characters that
    /// decode canonically to 32 bytes. Anything else is `None`.
    pub fn parse(s: &str) -> Option<SessionId> {
        let bytes = s.as_bytes();
        if bytes.len() != ID_LEN {
            return None;
        }
        // The engine rejects `=`, characters outside the URL-safe alphabet and
        // non-zero trailing bits, so every id has exactly one spelling.
        let mut raw = [0u8; ID_BYTES + 1];
        match URL_SAFE_NO_PAD.decode_slice(bytes, &mut raw) {
            Ok(ID_BYTES) => {}
            _ => return None,
        }
        let mut text = [0u8; ID_LEN];
        text.copy_from_slice(bytes);
        Some(SessionId { digest: sha256(&text), text })
    }

    /// The cookie value. Call sites are the audit surface: setting the
    /// cookie is the only legitimate one.
    pub fn expose_cookie_value(&self) -> &str {
        // Only base64url ASCII is ever stored in `text` (`generate` and `parse` see to
        // it), so the empty fallback is never taken; it would set no usable cookie.
        std::str::from_utf8(&self.text).unwrap_or("")
    }

    /// Hex SHA-256 of the cookie value: the only form a store sees.
    pub fn storage_key(&self) -> String {
        hex(&self.digest)
    }

    /// A short non-secret handle for logs and `sessions list`: the first
    /// 12 hex characters of the storage key.
    pub fn handle(&self) -> String {
        handle_of(&self.digest)
    }

    pub(crate) fn digest(&self) -> &Digest {
        &self.digest
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([REDACTED])")
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// The session id last parsed on one client connection: a keep-alive connection sends
/// the same cookie with every request, and this hashes it once. The cookie text is
/// compared in constant time; a different cookie (another user behind a multiplexing
/// edge, a new login) is parsed and hashed as usual and remembered instead. Never waits:
/// when another request on the connection holds it, the id is simply parsed.
#[derive(Default)]
#[allow(clippy::disallowed_types)] // only ever `try_lock`ed: it never blocks a worker
pub struct IdMemo(std::sync::Mutex<Option<Box<SessionId>>>);

impl IdMemo {
    /// [`SessionId::parse`], remembering the result.
    pub fn parse(&self, s: &str) -> Option<SessionId> {
        if let Ok(last) = self.0.try_lock() {
            if let Some(id) = last.as_deref().filter(|id| same_text(&id.text, s.as_bytes())) {
                return Some(id.clone());
            }
        }
        let id = SessionId::parse(s)?;
        if let Ok(mut last) = self.0.try_lock() {
            *last = Some(Box::new(id.clone()));
        }
        Some(id)
    }
}

impl std::fmt::Debug for IdMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdMemo([REDACTED])")
    }
}

/// `a == b` in time independent of where they differ.
fn same_text(a: &[u8; ID_LEN], b: &[u8]) -> bool {
    b.len() == ID_LEN && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn sha256(data: &[u8]) -> Digest {
    // `ring`'s SHA-256 (vector and SHA instructions where the CPU has them; the `sha2`
    // crate's portable code is 1.6× the instructions per block without them).
    let mut out = [0u8; 32];
    for (o, d) in out.iter_mut().zip(ring::digest::digest(&ring::digest::SHA256, data).as_ref()) {
        *o = *d;
    }
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

pub(crate) fn handle_of(digest: &Digest) -> String {
    hex(&digest[..6])
}

/// Parse a 64-character lowercase hex digest (a member of a Redis index set).
pub(crate) fn parse_hex_digest(s: &str) -> Option<Digest> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// `BuildHasher` for maps keyed by a [`Digest`].
///
/// no hash: keys are SHA-256 outputs, already uniform, so the first eight
/// bytes are the hash. Only ids this process generated are ever inserted;
/// attacker-chosen cookies are only looked up, so they cannot build long
/// probe chains.
#[derive(Clone, Copy, Default)]
pub(crate) struct DigestHash;

#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl std::hash::BuildHasher for DigestHash {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]: Hash` writes a length prefix, then the bytes: fold each
        // write in, so the result is the digest's first eight bytes XOR a
        // constant, still uniform.
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(first);
    }
}
