//! Path normalization (SPEC 6.3): turns the path of a request target into the one canonical
//! path that routing, policy, logs and the upstream request line all use, or refuses it.
//!
//! The pipeline's first phase (`proxy`) calls [`normalize`] on `uri.path()` (never the
//! query, which is handled elsewhere) and answers 400 on error; `policy` and `media` take
//! only the resulting [`NormalizedPath`], which nothing outside this module can build, so a
//! path that was not checked here cannot be routed, authorized or forwarded.
//!
//! Rules, applied in this order:
//!
//! 1. The path must start with `/`. Refused outright: a raw `#` (fragment), `\`, `;` (path
//!    parameters), space, control byte (`< 0x20`, `0x7F`) or non-ASCII byte (those must
//!    arrive percent-encoded).
//! 2. Every `%` starts a two-hex-digit escape. Escapes of unreserved characters
//!    (`A-Z a-z 0-9 - . _ ~`) are decoded once; every other escape stays encoded, with
//!    upper-case hex. Refused: encoded separators (`%2F`, `%5C`), encoded `;` (`%3B`),
//!    encoded control bytes (`%00`–`%1F`, `%7F`), a `%25` whose decoded text continues as
//!    `%2e`, `%2f` or `%5c` (double encoding, which a second decoder would turn into a dot
//!    or a separator), and escapes whose decoded bytes are not valid UTF-8.
//! 3. Printable ASCII that is neither unreserved, a sub-delim (`!$&'()*+,=`), `:`, `@`, `/`
//!    nor `%` (such as `"`, `<`, `[`, `|`) is percent-encoded, so the output is canonical.
//!    That includes `?`, which hyper never leaves in a path, but which must not start a
//!    query upstream if a caller ever passes one.
//! 4. Repeated slashes are merged and `.` / `..` segments resolved (including those that
//!    came from `%2e`). A `..` above the root is refused, never clamped. A trailing slash
//!    is kept, and a trailing `.` or `..` segment leaves one.
//!
//! When several problems occur, the first one from the left decides the error, except
//! [`NormalizeError::AboveRoot`], which is only reported for an otherwise well-formed path.
//!
//! Speed: one scan over the bytes both validates and decides whether anything must change,
//! sixteen bytes at a time where nothing needs a closer look; an already canonical path
//! (the common case) comes back borrowed, without allocating. Only a path that must change
//! is rebuilt. The module is pure: no I/O, no global state, so it can be fuzzed alone
//! (`fuzz/fuzz_targets/normalize.rs`).

use std::borrow::Cow;

/// A path that went through [`normalize`]: canonical, absolute, free of dot segments and of
/// anything ambiguous. Only this module can build one.
#[derive(Debug, Clone)]
pub struct NormalizedPath<'a> {
    path: Cow<'a, str>,
    /// Whether the input was already canonical. Kept apart from `path` so that
    /// [`NormalizedPath::into_owned`] does not forget it.
    unchanged: bool,
}

// Two normalized paths are equal when they name the same path, however they were produced.
impl PartialEq for NormalizedPath<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for NormalizedPath<'_> {}

impl NormalizedPath<'_> {
    /// The canonical path, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// True iff the output is byte-for-byte the input (then it was borrowed, not
    /// allocated). Still true after [`NormalizedPath::into_owned`].
    pub fn is_unchanged(&self) -> bool {
        self.unchanged
    }

    /// Detaches the path from the request it was borrowed from.
    pub fn into_owned(self) -> NormalizedPath<'static> {
        NormalizedPath { path: Cow::Owned(self.path.into_owned()), unchanged: self.unchanged }
    }

    /// The segments between slashes, without the empty one before the leading `/`:
    /// `/api/x` yields `api`, `x`; a trailing slash yields a final empty segment, so
    /// `/api/x/` yields `api`, `x`, `` and `/` yields one empty segment.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        let path: &str = &self.path;
        path.strip_prefix('/').unwrap_or(path).split('/')
    }

    /// Whether the path ends with `/` (true for `/` itself).
    pub fn has_trailing_slash(&self) -> bool {
        self.path.ends_with('/')
    }
}

/// Why a path was refused. Every variant is a 400; the text names the reason, never the
/// input, so it can go straight into a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path contains a fragment ('#')")]
    Fragment,
    #[error("path contains a backslash")]
    Backslash,
    /// A raw `;` or an encoded one (`%3B`).
    #[error("path contains a ';' path parameter")]
    PathParameter,
    /// A raw control byte or an encoded one (`%00`–`%1F`, `%7F`).
    #[error("path contains a control character")]
    ControlCharacter,
    #[error("path contains a raw space")]
    Space,
    #[error("path contains a raw non-ascii byte")]
    NonAscii,
    /// A `%` not followed by two hex digits.
    #[error("path contains invalid percent-encoding")]
    InvalidPercentEncoding,
    /// `%2F` or `%5C`, in any case.
    #[error("path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    /// `%25` followed by text that decodes to `%2e`, `%2f` or `%5c`.
    #[error("path contains a double-encoded '.', '/' or '\\'")]
    DoubleEncoding,
    #[error("path is not valid utf-8 after percent-decoding")]
    InvalidUtf8,
    #[error("path climbs above the root")]
    AboveRoot,
}

/// Normalizes the path component of a request target (see the module doc for the rules).
pub fn normalize(raw_path: &str) -> Result<NormalizedPath<'_>, NormalizeError> {
    let bytes = raw_path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(NormalizeError::NotAbsolute);
    }
    if scan(bytes)? {
        // no alloc: the input is already canonical, so it is the output.
        return Ok(NormalizedPath { path: Cow::Borrowed(raw_path), unchanged: true });
    }
    let rebuilt = rewrite(bytes)?;
    // `scan` is exact (the tests check it), but should it ever ask for a rewrite that
    // reproduces the input, `is_unchanged` must still mean exactly "output == input".
    if rebuilt == raw_path {
        return Ok(NormalizedPath { path: Cow::Borrowed(raw_path), unchanged: true });
    }
    Ok(NormalizedPath { path: Cow::Owned(rebuilt), unchanged: false })
}

/// What a raw input byte is, as far as the rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Kept as is: unreserved, sub-delims (without `;`), `:` and `@`.
    Plain,
    Slash,
    Percent,
    /// Printable ASCII outside the path characters: kept, but percent-encoded (rule 3).
    Encode,
    Reject(NormalizeError),
}

/// The rules for one raw byte, looked up token by token wherever the chunked fast path
/// (`is_quiet`) needs a closer look, and by the rewrite.
static CLASS: [Class; 256] = build_class_table();

const fn build_class_table() -> [Class; 256] {
    let mut table = [Class::Reject(NormalizeError::NonAscii); 256];
    let mut b = 0;
    while b < 128 {
        table[b] = classify(b as u8);
        b += 1;
    }
    table
}

const fn classify(b: u8) -> Class {
    match b {
        b'/' => Class::Slash,
        b'%' => Class::Percent,
        b'#' => Class::Reject(NormalizeError::Fragment),
        b'\\' => Class::Reject(NormalizeError::Backslash),
        b';' => Class::Reject(NormalizeError::PathParameter),
        b' ' => Class::Reject(NormalizeError::Space),
        0x00..=0x1F | 0x7F => Class::Reject(NormalizeError::ControlCharacter),
        0x80..=0xFF => Class::Reject(NormalizeError::NonAscii),
        b':' | b'@' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' => Class::Plain,
        _ if is_unreserved(b) => Class::Plain,
        _ => Class::Encode,
    }
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// One decoded `%XY`.
#[derive(Debug, Clone, Copy)]
struct Escape {
    value: u8,
    /// Neither hex digit is a lower-case letter, as in the canonical form.
    upper: bool,
}

/// Reads the escape whose `%` is at `i`.
fn read_escape(bytes: &[u8], i: usize) -> Result<Escape, NormalizeError> {
    let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
        return Err(NormalizeError::InvalidPercentEncoding);
    };
    let (Some(h), Some(l)) = (hex_value(hi), hex_value(lo)) else {
        return Err(NormalizeError::InvalidPercentEncoding);
    };
    Ok(Escape { value: h << 4 | l, upper: !hi.is_ascii_lowercase() && !lo.is_ascii_lowercase() })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Refuses escapes that smuggle what rule 1 refuses raw: separators, `;`, control bytes.
fn check_escaped_value(value: u8) -> Result<(), NormalizeError> {
    match value {
        b'/' | b'\\' => Err(NormalizeError::EncodedSeparator),
        b';' => Err(NormalizeError::PathParameter),
        0x00..=0x1F | 0x7F => Err(NormalizeError::ControlCharacter),
        _ => Ok(()),
    }
}

/// After a `%25` (a literal `%`) ending just before `j`: refuses it when the next two
/// characters, each raw or itself an escape, spell `2E`, `2F` or `5C` in any case, because
/// a second decoder would turn the pair into `.`, `/` or `\`.
fn check_double_encoding(bytes: &[u8], mut j: usize) -> Result<(), NormalizeError> {
    let mut spelled = [0u8; 2];
    for slot in &mut spelled {
        match bytes.get(j) {
            Some(b'%') => {
                *slot = read_escape(bytes, j)?.value;
                j += 3;
            }
            Some(&b) => {
                *slot = b;
                j += 1;
            }
            None => return Ok(()),
        }
    }
    match [spelled[0], spelled[1].to_ascii_lowercase()] {
        [b'2', b'e' | b'f'] | [b'5', b'c'] => Err(NormalizeError::DoubleEncoding),
        _ => Ok(()),
    }
}

/// The escape at `i` decoded to `lead >= 0x80`: reads the continuation escapes that must
/// follow and checks the whole sequence is one valid UTF-8 character. Raw input bytes are
/// all ASCII (rule 1), so escapes are the only source of non-ASCII bytes, and a sequence
/// can only be made of consecutive escapes. Returns the index after the sequence and
/// whether all its escapes used upper-case hex.
fn read_utf8_escapes(bytes: &[u8], i: usize, lead: Escape) -> Result<(usize, bool), NormalizeError> {
    let width = match lead.value {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return Err(NormalizeError::InvalidUtf8),
    };
    // no alloc: a UTF-8 character is at most four bytes.
    let mut buf = [lead.value, 0, 0, 0];
    let mut upper = lead.upper;
    let mut j = i + 3;
    for slot in buf.iter_mut().take(width).skip(1) {
        if bytes.get(j) != Some(&b'%') {
            return Err(NormalizeError::InvalidUtf8);
        }
        let escape = read_escape(bytes, j)?;
        *slot = escape.value;
        upper &= escape.upper;
        j += 3;
    }
    // std's validator also refuses overlong forms, surrogates and values past U+10FFFF.
    match buf.get(..width).map(std::str::from_utf8) {
        Some(Ok(_)) => Ok((j, upper)),
        _ => Err(NormalizeError::InvalidUtf8),
    }
}

/// After a `/` at `i`: is the next segment empty, `.` or `..`, i.e. one that rewriting
/// removes? (`/.well-known` is not; a trailing `/` is kept and so is not either.)
fn removable_segment_follows(bytes: &[u8], i: usize) -> bool {
    let ends_at = |k: usize| matches!(bytes.get(k), None | Some(b'/'));
    match bytes.get(i + 1) {
        Some(b'/') => true,
        Some(b'.') => ends_at(i + 2) || (bytes.get(i + 2) == Some(&b'.') && ends_at(i + 3)),
        _ => false,
    }
}

/// The single pass every request pays for: refuses whatever rules 1 and 2 refuse (all
/// errors but [`NormalizeError::AboveRoot`]) and tells whether the input is already
/// canonical. Allocates nothing.
fn scan(bytes: &[u8]) -> Result<bool, NormalizeError> {
    let mut canonical = true;
    let mut i = 0;
    while i < bytes.len() {
        // Most of a typical path is quiet: skip it a chunk at a time.
        while bytes.get(i..=i + CHUNK).and_then(|w| <&[u8; CHUNK + 1]>::try_from(w).ok()).is_some_and(is_quiet) {
            i += CHUNK;
        }
        // Then look closely, token by token, at least to the end of the chunk that was not
        // quiet (or of the input, when less than a chunk is left).
        let stop = bytes.len().min(i + CHUNK);
        while i < stop {
            i = scan_token(bytes, i, &mut canonical)?;
        }
    }
    Ok(canonical)
}

/// Bytes per step of the fast path: one 128-bit vector; typical paths are 20–40 bytes.
const CHUNK: usize = 16;

/// Whether the first `CHUNK` bytes of `window` (the last byte is look-ahead) need no
/// closer look: each is plain, or a `/` followed by neither `/` nor `.` (so no empty or dot
/// segment starts here). Branch-free, so the compiler vectorises it: three to five times
/// faster than a byte loop with a table lookup.
fn is_quiet(window: &[u8; CHUNK + 1]) -> bool {
    let mut noisy = false;
    for k in 0..CHUNK {
        let (b, next) = (window[k], window[k + 1]);
        let slash = b == b'/';
        noisy |= !is_plain_or_slash(b) | (slash & ((next == b'/') | (next == b'.')));
    }
    !noisy
}

/// `CLASS[b]` is `Plain` or `Slash`, spelled as comparisons, which vectorise (table
/// lookups do not). A test checks it against the table.
fn is_plain_or_slash(b: u8) -> bool {
    // `&'()*+,-./0123456789:` is one contiguous run of path characters.
    b.is_ascii_alphabetic()
        | (b'&'..=b':').contains(&b)
        | (b == b'!')
        | (b == b'$')
        | (b == b'=')
        | (b == b'@')
        | (b == b'_')
        | (b == b'~')
}

/// Checks the token (a byte, or an escape with any escapes it pulls in) at `i` and
/// returns where the next one starts.
fn scan_token(bytes: &[u8], i: usize, canonical: &mut bool) -> Result<usize, NormalizeError> {
    let Some(&b) = bytes.get(i) else {
        // Past the end (callers stay below it): nothing left to check.
        return Ok(i + 1);
    };
    match CLASS[usize::from(b)] {
        Class::Plain => Ok(i + 1),
        Class::Slash => {
            *canonical &= !removable_segment_follows(bytes, i);
            Ok(i + 1)
        }
        Class::Encode => {
            *canonical = false;
            Ok(i + 1)
        }
        Class::Percent => {
            let escape = read_escape(bytes, i)?;
            check_escaped_value(escape.value)?;
            if escape.value >= 0x80 {
                let (end, upper) = read_utf8_escapes(bytes, i, escape)?;
                *canonical &= upper;
                return Ok(end);
            }
            if escape.value == b'%' {
                check_double_encoding(bytes, i + 3)?;
            }
            // Unreserved escapes get decoded, so they are never canonical.
            *canonical &= escape.upper && !is_unreserved(escape.value);
            Ok(i + 3)
        }
        Class::Reject(err) => Err(err),
    }
}

/// The slow path, for a path `scan` accepted but found not canonical: rebuilds it segment
/// by segment, resolving dot segments as it goes (RFC 3986 `remove_dot_segments`, with
/// empty segments dropped too).
fn rewrite(bytes: &[u8]) -> Result<String, NormalizeError> {
    // Decoding and merging usually shrink the path; encoding (rule 3) may grow it a little.
    let mut out = String::with_capacity(bytes.len() + 8);
    // Whether the last segment was one that leaves a trailing slash: empty, `.` or `..`.
    let mut ends_in_slash = false;
    let segments = bytes.get(1..).unwrap_or_default().split(|&b| b == b'/');
    for segment in segments {
        let start = out.len();
        out.push('/');
        push_canonical_segment(&mut out, segment)?;
        // Dot segments are recognised after decoding, so `%2e%2E` is `..` too.
        match &out[start + 1..] {
            "" | "." => out.truncate(start),
            ".." => {
                out.truncate(start);
                pop_segment(&mut out)?;
            }
            _ => {
                ends_in_slash = false;
                continue;
            }
        }
        ends_in_slash = true;
    }
    if out.is_empty() || ends_in_slash {
        out.push('/');
    }
    Ok(out)
}

/// Drops the last kept segment for a `..`. With none left, the `..` would climb above the
/// root: refused rather than clamped, since a client that tries it is probing.
fn pop_segment(out: &mut String) -> Result<(), NormalizeError> {
    let last = out.rfind('/').ok_or(NormalizeError::AboveRoot)?;
    out.truncate(last);
    Ok(())
}

/// Appends one segment (without its slash) in canonical form: unreserved escapes decoded,
/// other escapes upper-cased, rule-3 characters encoded.
fn push_canonical_segment(out: &mut String, segment: &[u8]) -> Result<(), NormalizeError> {
    let mut i = 0;
    while let Some(&b) = segment.get(i) {
        match CLASS[usize::from(b)] {
            Class::Plain => {
                out.push(char::from(b));
                i += 1;
            }
            Class::Encode => {
                push_escape(out, b);
                i += 1;
            }
            Class::Percent => {
                let escape = read_escape(segment, i)?;
                check_escaped_value(escape.value)?;
                if is_unreserved(escape.value) {
                    out.push(char::from(escape.value));
                } else {
                    push_escape(out, escape.value);
                }
                i += 3;
            }
            // Cannot happen: segments come from splitting on '/'. Fail closed, not panic.
            Class::Slash => return Err(NormalizeError::EncodedSeparator),
            Class::Reject(err) => return Err(err),
        }
    }
    Ok(())
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0F)]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use NormalizeError as E;

    /// `(input, expected)`; an `Ok` equal to the input must also come back borrowed.
    const CASES: &[(&str, Result<&str, NormalizeError>)] = &[
        // Already canonical: borrowed as is.
        ("/", Ok("/")),
        ("/api/bol/123/download/", Ok("/api/bol/123/download/")),
        ("/media/bols/2025/PRT-2025-0002.pdf", Ok("/media/bols/2025/PRT-2025-0002.pdf")),
        ("/api/x/", Ok("/api/x/")),
        ("/.well-known/openid-configuration", Ok("/.well-known/openid-configuration")),
        ("/a..b/.c/..d/...", Ok("/a..b/.c/..d/...")),
        ("/a.", Ok("/a.")),
        ("/a%20b", Ok("/a%20b")),
        ("/a%C3%A9", Ok("/a%C3%A9")),
        ("/a%E2%82%AC/%F0%9F%98%80", Ok("/a%E2%82%AC/%F0%9F%98%80")),
        ("/a%25b", Ok("/a%25b")),
        ("/a%25", Ok("/a%25")),
        ("/a%252", Ok("/a%252")),
        ("/a%2541", Ok("/a%2541")),
        ("/a%25/2e", Ok("/a%25/2e")),
        ("/a%3F%23%3A", Ok("/a%3F%23%3A")),
        ("/a:b@c!$&'()*+,=-._~", Ok("/a:b@c!$&'()*+,=-._~")),
        // Unreserved escapes are decoded once, others upper-cased.
        ("/%41pi/", Ok("/Api/")),
        ("/a%7eb", Ok("/a~b")),
        ("/a%7Eb", Ok("/a~b")),
        ("/%2D%2e%5F%7E%30%7a", Ok("/-._~0z")),
        ("/a%c3%a9", Ok("/a%C3%A9")),
        ("/a%e2%82%Ac", Ok("/a%E2%82%AC")),
        ("/a%3a%3f", Ok("/a%3A%3F")),
        ("/a%2e", Ok("/a.")),
        // Rule 3: printable ASCII outside the path characters gets encoded.
        ("/a\"b", Ok("/a%22b")),
        ("/a<b>", Ok("/a%3Cb%3E")),
        ("/{x}|[y]^`", Ok("/%7Bx%7D%7C%5By%5D%5E%60")),
        ("/a?b", Ok("/a%3Fb")),
        // Slashes merged, dot segments resolved.
        ("//api//x", Ok("/api/x")),
        ("//", Ok("/")),
        ("///", Ok("/")),
        ("/a//", Ok("/a/")),
        ("/api/x/../admin/", Ok("/api/admin/")),
        ("/api/%2e%2e/admin/", Ok("/admin/")),
        ("/api/%2E%2e/admin", Ok("/admin")),
        ("/api/.%2e/admin", Ok("/admin")),
        ("/api/x/.", Ok("/api/x/")),
        ("/a/b/..", Ok("/a/")),
        ("/a/.", Ok("/a/")),
        ("/a/..", Ok("/")),
        ("/a/%2e%2e", Ok("/")),
        ("/.", Ok("/")),
        ("/%2e", Ok("/")),
        ("/./", Ok("/")),
        ("/a/./b", Ok("/a/b")),
        ("/a/b/../../c", Ok("/c")),
        ("/a/b/./../c/", Ok("/a/c/")),
        ("//a//..//b", Ok("/b")),
        // Not absolute.
        ("", Err(E::NotAbsolute)),
        ("relative", Err(E::NotAbsolute)),
        ("a/b", Err(E::NotAbsolute)),
        ("*", Err(E::NotAbsolute)),
        ("%2Fa", Err(E::NotAbsolute)),
        ("http://evil/a", Err(E::NotAbsolute)),
        // Above the root: refused, not clamped.
        ("/..", Err(E::AboveRoot)),
        ("/../a", Err(E::AboveRoot)),
        ("/..//", Err(E::AboveRoot)),
        ("//..", Err(E::AboveRoot)),
        ("/%2e%2e", Err(E::AboveRoot)),
        ("/a/../..", Err(E::AboveRoot)),
        ("/a/./../../b", Err(E::AboveRoot)),
        ("/a/%2e%2e/%2e%2e/", Err(E::AboveRoot)),
        // Raw bytes refused.
        ("/a\\b", Err(E::Backslash)),
        ("/a#b", Err(E::Fragment)),
        ("/#", Err(E::Fragment)),
        ("/a;jsessionid=1", Err(E::PathParameter)),
        ("/a b", Err(E::Space)),
        ("/a\0", Err(E::ControlCharacter)),
        ("/a\tb", Err(E::ControlCharacter)),
        ("/a\r\nb", Err(E::ControlCharacter)),
        ("/a\x7f", Err(E::ControlCharacter)),
        ("/caf\u{e9}", Err(E::NonAscii)),
        ("/a\u{200b}", Err(E::NonAscii)),
        // Escapes refused.
        ("/a%2fb", Err(E::EncodedSeparator)),
        ("/a%2Fb", Err(E::EncodedSeparator)),
        ("/a%5cb", Err(E::EncodedSeparator)),
        ("/a%5Cb", Err(E::EncodedSeparator)),
        ("/..%2f..%2fetc", Err(E::EncodedSeparator)),
        ("/a%3bx", Err(E::PathParameter)),
        ("/a%3Bx", Err(E::PathParameter)),
        ("/a%00", Err(E::ControlCharacter)),
        ("/a%0a", Err(E::ControlCharacter)),
        ("/a%1F", Err(E::ControlCharacter)),
        ("/a%7f", Err(E::ControlCharacter)),
        ("/a%zz", Err(E::InvalidPercentEncoding)),
        ("/a%4", Err(E::InvalidPercentEncoding)),
        ("/a%", Err(E::InvalidPercentEncoding)),
        ("/a%%41", Err(E::InvalidPercentEncoding)),
        ("/a%g0", Err(E::InvalidPercentEncoding)),
        ("/a%+1", Err(E::InvalidPercentEncoding)),
        ("/a%c3%zz", Err(E::InvalidPercentEncoding)),
        // Double encoding, including a second level spelled with escapes.
        ("/a%252e%252e/", Err(E::DoubleEncoding)),
        ("/a%252E", Err(E::DoubleEncoding)),
        ("/a%252f", Err(E::DoubleEncoding)),
        ("/a%252F", Err(E::DoubleEncoding)),
        ("/a%255c", Err(E::DoubleEncoding)),
        ("/a%255C", Err(E::DoubleEncoding)),
        ("/a%25%32%65", Err(E::DoubleEncoding)),
        ("/a%25%32e", Err(E::DoubleEncoding)),
        ("/a%252%66", Err(E::DoubleEncoding)),
        ("/a%25%35%43", Err(E::DoubleEncoding)),
        // Invalid UTF-8 after decoding.
        ("/a%c3%28", Err(E::InvalidUtf8)),
        ("/a%c3", Err(E::InvalidUtf8)),
        ("/a%c3x", Err(E::InvalidUtf8)),
        ("/a%c3/%a9", Err(E::InvalidUtf8)),
        ("/a%a9", Err(E::InvalidUtf8)),
        ("/a%c3%c3", Err(E::InvalidUtf8)),
        ("/a%c0%af", Err(E::InvalidUtf8)),
        ("/a%e0%80%af", Err(E::InvalidUtf8)),
        ("/a%ed%a0%80", Err(E::InvalidUtf8)),
        ("/a%f4%90%80%80", Err(E::InvalidUtf8)),
        ("/a%f8%88%80%80%80", Err(E::InvalidUtf8)),
        ("/a%ff", Err(E::InvalidUtf8)),
        // First problem from the left wins; above-root only for otherwise valid paths.
        ("/a#b\\", Err(E::Fragment)),
        ("/a\\b#", Err(E::Backslash)),
        ("/a%zz;", Err(E::InvalidPercentEncoding)),
        ("/../a;", Err(E::PathParameter)),
        ("/../%2f", Err(E::EncodedSeparator)),
    ];

    #[test]
    fn table() {
        for &(input, expected) in CASES {
            let got = normalize(input);
            let got_str = got.as_ref().map(|p| p.as_str()).map_err(|e| *e);
            assert_eq!(got_str, expected, "input {input:?}");
            if let Ok(p) = got {
                assert_eq!(p.is_unchanged(), p.as_str() == input, "input {input:?}");
            }
        }
    }

    #[test]
    fn fast_check_agrees_with_table() {
        for b in 0..=u8::MAX {
            let in_table = matches!(CLASS[usize::from(b)], Class::Plain | Class::Slash);
            assert_eq!(is_plain_or_slash(b), in_table, "byte {b:#04x}");
        }
    }

    #[test]
    fn fast_path_sees_patterns_at_every_offset() {
        // The fast path works in chunks: slide each pattern across the chunk boundaries.
        let rows: &[(&str, Result<&str, NormalizeError>)] = &[
            ("//", Ok("/")),
            ("/./", Ok("/")),
            ("/x/../", Ok("/")),
            ("/%41", Ok("/A")),
            ("/\"", Ok("/%22")),
            ("\\", Err(E::Backslash)),
        ];
        let long_tail = "z".repeat(2 * CHUNK);
        for offset in 1..2 * CHUNK + 2 {
            let head = "a".repeat(offset);
            for &(pattern, replacement) in rows {
                for tail in ["z", "z/", long_tail.as_str()] {
                    let input = format!("/{head}{pattern}{tail}");
                    let want = replacement.map(|r| format!("/{head}{r}{tail}"));
                    let got = normalize(&input).map(|p| p.as_str().to_owned());
                    assert_eq!(got, want, "{input:?}");
                }
            }
            // At the very end, where the look-ahead runs out.
            for pattern in ["/.", "/x/.."] {
                let got = normalize(&format!("/{head}{pattern}")).map(|p| p.as_str().to_owned());
                assert_eq!(got, Ok(format!("/{head}/")), "{head}{pattern}");
            }
        }
    }

    #[test]
    fn error_texts() {
        let texts = [
            (E::NotAbsolute, "path must start with '/'"),
            (E::Fragment, "path contains a fragment ('#')"),
            (E::Backslash, "path contains a backslash"),
            (E::PathParameter, "path contains a ';' path parameter"),
            (E::ControlCharacter, "path contains a control character"),
            (E::Space, "path contains a raw space"),
            (E::NonAscii, "path contains a raw non-ascii byte"),
            (E::InvalidPercentEncoding, "path contains invalid percent-encoding"),
            (E::EncodedSeparator, "path contains an encoded '/' or '\\'"),
            (E::DoubleEncoding, "path contains a double-encoded '.', '/' or '\\'"),
            (E::InvalidUtf8, "path is not valid utf-8 after percent-decoding"),
            (E::AboveRoot, "path climbs above the root"),
        ];
        for (err, text) in texts {
            assert_eq!(err.to_string(), text);
        }
        assert_eq!(
            normalize("/a/../../etc/passwd").map_err(|e| e.to_string()),
            Err("path climbs above the root".to_owned())
        );
        assert_eq!(
            normalize("/a%2fb").map_err(|e| e.to_string()),
            Err("path contains an encoded '/' or '\\'".to_owned())
        );
    }

    #[test]
    fn cve_2019_9901_dot_segments_never_reach_policy() {
        // Envoy's CVE-2019-9901: `/public/../admin` matched a `/public` rule, then the
        // upstream resolved it to `/admin`. Here the policy only ever sees the result.
        let p = normalize("/api/open-releases/%2e%2e/%2E%2E/admin/").map(|p| p.into_owned());
        assert_eq!(p.as_ref().map(|p| p.as_str()), Ok("/admin/"));
    }

    #[test]
    fn fast_path_borrows() {
        for input in ["/api/bol/123/download/", "/", "/a%C3%A9", "/api/x/"] {
            let p = normalize(input);
            assert!(p.is_ok_and(|p| p.is_unchanged() && matches!(p.path, Cow::Borrowed(s) if std::ptr::eq(s, input))));
        }
        let p = normalize("/api//x");
        assert!(p.is_ok_and(|p| !p.is_unchanged() && matches!(p.path, Cow::Owned(_))));
    }

    #[test]
    fn into_owned_keeps_path_and_flag() {
        let borrowed = normalize("/api/x/");
        let owned = borrowed.clone().map(NormalizedPath::into_owned);
        assert_eq!(borrowed, owned);
        assert!(owned.is_ok_and(|p| p.is_unchanged()));
        let changed = normalize("/api//x").map(NormalizedPath::into_owned);
        assert!(changed.is_ok_and(|p| !p.is_unchanged() && p.as_str() == "/api/x"));
    }

    #[test]
    fn segments_and_trailing_slash() {
        let rows: &[(&str, &[&str], bool)] = &[
            ("/", &[""], true),
            ("/api", &["api"], false),
            ("/api/x", &["api", "x"], false),
            ("/api/x/", &["api", "x", ""], true),
            ("//api/./x/../y/", &["api", "y", ""], true),
        ];
        for &(input, segments, trailing) in rows {
            let p = normalize(input);
            let got = p.as_ref().map(|p| p.segments().collect::<Vec<_>>());
            assert_eq!(got.as_deref(), Ok(segments), "input {input:?}");
            assert_eq!(p.map(|p| p.has_trailing_slash()), Ok(trailing), "input {input:?}");
        }
    }

    /// Decodes every escape; `None` if one is malformed.
    fn decode_all(s: &str) -> Option<Vec<u8>> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'%' {
                out.push(read_escape(bytes, i).ok()?.value);
                i += 3;
            } else {
                out.push(b);
                i += 1;
            }
        }
        Some(out)
    }

    /// Everything that must hold for any accepted input.
    fn check_accepted(input: &str, p: &NormalizedPath<'_>) {
        let out = p.as_str();
        // Idempotent, and the second run takes the borrowed fast path.
        let again = normalize(out);
        assert_eq!(again.as_ref(), Ok(p), "not idempotent: {input:?} -> {out:?}");
        assert!(again.is_ok_and(|q| q.is_unchanged()), "{out:?} not canonical");
        // The fast path agrees with the slow path, and the flag means output == input.
        assert_eq!(rewrite(input.as_bytes()).as_deref(), Ok(out), "{input:?}");
        assert_eq!(p.is_unchanged(), out == input, "{input:?}");
        // Shape.
        assert!(out.starts_with('/'), "{out:?}");
        for bad in ["//", "/./", "/../"] {
            assert!(!out.contains(bad), "{input:?} -> {out:?}");
        }
        assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{out:?}");
        let upper = out.to_ascii_uppercase();
        for bad in ["%2F", "%5C", "%00", "%2E", "%3B", "%252E", "%252F", "%255C"] {
            assert!(!upper.contains(bad), "{input:?} -> {out:?}");
        }
        // Only path characters, every escape canonical and not of an unreserved byte.
        let bytes = out.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            assert!(
                matches!(CLASS[usize::from(b)], Class::Plain | Class::Slash | Class::Percent),
                "{input:?} -> {out:?}"
            );
            if b == b'%' {
                let escape = read_escape(bytes, i);
                assert!(escape.is_ok_and(|e| e.upper && !is_unreserved(e.value)), "{input:?} -> {out:?}");
            }
        }
        let decoded = decode_all(out);
        assert!(decoded.is_some_and(|d| String::from_utf8(d).is_ok()), "{out:?}");
        // Segments put back together give the path.
        assert_eq!(format!("/{}", p.segments().collect::<Vec<_>>().join("/")), out);
        assert_eq!(p.has_trailing_slash(), p.segments().last() == Some(""));
    }

    /// Strings made of the pieces that matter to the rules, mostly absolute.
    fn pathish() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "/",
            "/",
            "/",
            ".",
            "..",
            "%",
            "%2e",
            "%2E",
            "%2f",
            "%5C",
            "%25",
            "%c3",
            "%A9",
            "%41",
            "%7e",
            "%20",
            "%3b",
            "%00",
            "%e2%82%ac",
            "%c3%a9",
            "a",
            "B",
            "0",
            "2",
            "5",
            "e",
            "E",
            "f",
            "c",
            ";",
            "\\",
            "#",
            " ",
            "\"",
            "?",
            "~",
            "-",
            "\u{e9}",
            "\t",
        ]);
        (prop::bool::weighted(0.95), prop::collection::vec(pieces, 0..24)).prop_map(|(absolute, pieces)| {
            let mut s = String::from(if absolute { "/" } else { "" });
            s.extend(pieces);
            s
        })
    }

    /// Long runs of quiet bytes with the odd dot, slash or escape: exercises the chunked
    /// fast path, which random pieces rarely reach.
    fn mostly_quiet() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "b", "z", "0", "-", "_", "~", "a", "b", "z", "0", "-", "_", "~", "/", "/", ".", "..", "%41", "%20",
            "%2e", "\"", "%c3%a9", "%25", "2e",
        ]);
        prop::collection::vec(pieces, 0..80).prop_map(|pieces| {
            let mut s = String::from("/");
            s.extend(pieces);
            s
        })
    }

    fn check(input: &str) {
        if let Ok(p) = normalize(input) {
            check_accepted(input, &p);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn pathish_strings(s in pathish()) {
            check(&s);
        }

        #[test]
        fn mostly_quiet_strings(s in mostly_quiet()) {
            check(&s);
        }

        #[test]
        fn printable_ascii(s in "/[ -~]{0,60}") {
            check(&s);
        }

        #[test]
        fn arbitrary_strings(s in any::<String>()) {
            check(&s);
        }
    }
}
