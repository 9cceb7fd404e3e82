//! Path normalization (design §6.3): turns the path of a request target into the one canonical
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
//! 2. Every `%` starts a two-hex-digit escape. Escapes of the characters a path may carry
//!    raw are decoded once: unreserved (`A-Z a-z 0-9 - . _ ~`), the sub-delims
//!    `!$&'()*+,=`, `:` and `@`. Django decodes every escape before it resolves a URL, so
//!    `/q1%2Bq2/` and `/q1+q2/` are the same view to it and must be the same path here
//!    (docs/routes.md, "Encoded characters"). Every other escape stays encoded, with
//!    upper-case hex (those characters cannot appear raw in a path). Refused: encoded separators (`%2F`, `%5C`), encoded `;` (`%3B`),
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
    /// Kept as is, and decoded when escaped: unreserved, sub-delims (without `;`), `:`, `@`.
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

/// Whether an escape of `b` is decoded (rule 2): exactly the characters kept raw.
fn decodes(b: u8) -> bool {
    matches!(CLASS[usize::from(b)], Class::Plain)
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
            // Escapes of path characters get decoded, so they are never canonical.
            *canonical &= escape.upper && !decodes(escape.value);
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

/// Appends one segment (without its slash) in canonical form: path-character escapes decoded,
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
                if decodes(escape.value) {
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
mod tests;
