//! Route patterns (matchit syntax): parsing and validation of the `path` of a rule or of a
//! page allow-list entry.
//!
//! * exact segments (`/api/bol/`), matched byte for byte against the normalized path;
//! * `{name}`: exactly one non-empty segment;
//! * `{*name}`: the non-empty tail (one or more segments, trailing slash included); only as
//!   the last segment.
//!
//! A trailing `/` on a pattern is significant (Django `APPEND_SLASH`, see `matcher`).
//! Literal segments must already be in the form `normalize` produces, since a pattern that
//! normalization would rewrite or refuse could never match: the check reuses
//! [`crate::normalize::normalize`] so both sides agree by construction. Pure, no I/O.

use std::fmt;

use crate::normalize::{normalize, NormalizeError};

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches exactly this text.
    Exact(Box<str>),
    /// `{name}`: any one non-empty segment.
    Param(Box<str>),
    /// `{*name}`: the non-empty rest of the path.
    CatchAll(Box<str>),
}

impl Segment {
    /// Precedence rank: exact beats parameter beats catch-all.
    pub fn rank(&self) -> u8 {
        match self {
            Segment::Exact(_) => 2,
            Segment::Param(_) => 1,
            Segment::CatchAll(_) => 0,
        }
    }
}

/// A parsed, validated pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Box<str>,
    segments: Vec<Segment>,
    /// The pattern ends with `/` (never true after a catch-all).
    trailing_slash: bool,
}

impl Pattern {
    /// Parses and validates `text`.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let Some(body) = text.strip_prefix('/') else {
            return Err(PatternError::NotAbsolute);
        };
        let mut segments = Vec::new();
        let mut trailing_slash = false;
        if !body.is_empty() {
            let parts: Vec<&str> = body.split('/').collect();
            let last = parts.len() - 1;
            for (i, part) in parts.iter().enumerate() {
                if part.is_empty() {
                    if i == last {
                        trailing_slash = true;
                        break;
                    }
                    return Err(PatternError::EmptySegment);
                }
                segments.push(parse_segment(part)?);
            }
        } else {
            trailing_slash = true;
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            let name = match seg {
                Segment::Exact(_) => continue,
                Segment::Param(n) => n,
                Segment::CatchAll(n) => {
                    if i + 1 != segments.len() || trailing_slash {
                        return Err(PatternError::CatchAllNotLast(n.to_string()));
                    }
                    n
                }
            };
            if names.contains(&&**name) {
                return Err(PatternError::DuplicateName(name.to_string()));
            }
            names.push(name);
        }
        Ok(Pattern { text: text.into(), segments, trailing_slash })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// Ends with a catch-all.
    pub fn is_catch_all(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::CatchAll(_)))
    }

    /// The shape two patterns must share to compete for the same request with equal
    /// specificity: segment kinds and literal texts (parameter names do not matter), and
    /// the trailing slash.
    pub fn same_shape(&self, other: &Pattern) -> bool {
        self.trailing_slash == other.trailing_slash
            && self.segments.len() == other.segments.len()
            && self.segments.iter().zip(&other.segments).all(|(a, b)| match (a, b) {
                (Segment::Exact(x), Segment::Exact(y)) => x == y,
                (Segment::Param(_), Segment::Param(_)) | (Segment::CatchAll(_), Segment::CatchAll(_)) => true,
                _ => false,
            })
    }

    /// The first literal segment holding a character other than an unreserved one (a
    /// sub-delim, `:`, `@` or an escape), with that character. Clients may spell such a
    /// character encoded or not; normalization decodes the ones a path carries raw, as Django
    /// does, but `check` points the rule out (docs/routes.md, "Encoded characters").
    pub fn literal_needing_care(&self) -> Option<(&str, char)> {
        self.segments.iter().find_map(|seg| match seg {
            Segment::Exact(text) => text
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
                .map(|c| (&**text, c)),
            _ => None,
        })
    }

    /// Whether the pattern can match a path under `/{first}/` (or `/{first}` itself).
    pub fn can_match_under(&self, first: &str) -> bool {
        match self.segments.first() {
            Some(Segment::Exact(s)) => &**s == first,
            Some(_) => true,
            None => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_segment(part: &str) -> Result<Segment, PatternError> {
    let has_open = part.contains('{');
    let has_close = part.contains('}');
    if !has_open && !has_close {
        check_literal(part)?;
        return Ok(Segment::Exact(part.into()));
    }
    if has_open && !has_close {
        return Err(PatternError::UnclosedBrace(part.into()));
    }
    if has_close && !has_open {
        return Err(PatternError::UnopenedBrace(part.into()));
    }
    let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
        return Err(PatternError::PartialSegment(part.into()));
    };
    if inner.contains(['{', '}']) {
        return Err(PatternError::PartialSegment(part.into()));
    }
    let (catch_all, name) = match inner.strip_prefix('*') {
        Some(n) => (true, n),
        None => (false, inner),
    };
    if name.is_empty() {
        return Err(PatternError::EmptyName(part.into()));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.as_bytes()[0].is_ascii_digit() {
        return Err(PatternError::BadName(part.into()));
    }
    Ok(if catch_all { Segment::CatchAll(name.into()) } else { Segment::Param(name.into()) })
}

/// A literal segment must come out of normalization unchanged, as one segment.
fn check_literal(part: &str) -> Result<(), PatternError> {
    if part == "." || part == ".." {
        return Err(PatternError::DotSegment(part.into()));
    }
    let probe = format!("/{part}");
    match normalize(&probe) {
        Err(e) => Err(PatternError::Refused { segment: part.into(), reason: e }),
        Ok(n) if n.is_unchanged() => Ok(()),
        Ok(n) => Err(PatternError::NotCanonical { segment: part.into(), normalized: n.as_str()[1..].into() }),
    }
}

/// Why a pattern was refused. The text is what `check` prints after `file:line:col: key:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern must start with `/`")]
    NotAbsolute,
    #[error("empty segment (`//`): normalized paths never contain one")]
    EmptySegment,
    #[error("unclosed `{{` in segment `{0}`")]
    UnclosedBrace(String),
    #[error("unmatched `}}` in segment `{0}`")]
    UnopenedBrace(String),
    #[error("a parameter must be a whole segment, like `{{id}}` or `{{*rest}}`: `{0}`")]
    PartialSegment(String),
    #[error("empty parameter name in `{0}`")]
    EmptyName(String),
    #[error("invalid parameter name in `{0}` (use letters, digits and `_`, not starting with a digit)")]
    BadName(String),
    #[error("catch-all `{{*{0}}}` must be the last segment, without a trailing `/`")]
    CatchAllNotLast(String),
    #[error("parameter name `{0}` is used twice")]
    DuplicateName(String),
    #[error("dot segment `{0}` never matches: normalization resolves it")]
    DotSegment(String),
    #[error("segment `{segment}` would be refused by path normalization ({reason})")]
    Refused { segment: String, reason: NormalizeError },
    #[error("segment `{segment}` is normalized to `{normalized}`; write it that way")]
    NotCanonical { segment: String, normalized: String },
}
