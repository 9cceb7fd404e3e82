//! `/media/<path>` → S3 object key (design §7), pure.
//!
//! The key is `media.key_prefix` + the percent-decoded remainder of the
//! normalized path after `/media/`. Refused (400), before anything is signed:
//!
//! * a request whose *raw* path has a dot segment (`.`, `..`, or their
//!   `%2e` spellings) or an empty segment (`//`): the normalizer would
//!   resolve them, but a media request spelled that way is either a probe or
//!   a broken link, and the key it names must be exactly the one asked for;
//! * encoded separators (`%2F`, `%5C`) — already refused by the normalizer,
//!   and checked again here on the decoded key;
//! * a remainder outside `media.allowed_prefixes` (matched against the part
//!   after `/media/`, i.e. what the application stores, before `key_prefix`),
//!   once a stray leading prefix from `media.strip_prefixes` has been dropped
//!   (`media/bols/x.pdf` → `bols/x.pdf`: only ever narrows, since the result
//!   must still pass the allow-list; docs/media.md);
//! * an empty key, a key naming a "folder" (trailing `/`), or one longer than
//!   S3's 1,024 bytes.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::normalize::NormalizedPath;

/// Longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a /media/ path")]
    NotMedia,
    #[error("dot or empty segment in a media path")]
    DotSegment,
    #[error("encoded separator or control character in a media key")]
    Separator,
    #[error("media key is empty or names a folder")]
    Empty,
    #[error("media key longer than 1024 bytes")]
    TooLong,
    #[error("media key outside media.allowed_prefixes")]
    NotAllowed,
}

/// Key mapping settings (from `[media]`).
#[derive(Debug, Clone, Copy)]
pub struct KeyRules<'a> {
    pub key_prefix: &'a str,
    pub allowed_prefixes: &'a [String],
    /// Stray prefixes dropped (the first that matches, once) before the
    /// allow-list check.
    pub strip_prefixes: &'a [String],
}

/// Maps a request to its object key. `raw_path` is the path exactly as the
/// client sent it; `path` is its normalization.
pub fn object_key(raw_path: &str, path: &NormalizedPath<'_>, rules: KeyRules<'_>) -> Result<String, KeyError> {
    if !path.is_unchanged() {
        check_raw_segments(raw_path)?;
    }
    let rest = path.as_str().strip_prefix("/media/").ok_or(KeyError::NotMedia)?;
    let decoded = percent_decode_str(rest).decode_utf8().map_err(|_| KeyError::Separator)?;
    remainder_key(&decoded, rules)
}

/// Maps the remainder after `/media/` (already decoded, as an operator types
/// it for `prt-gate presign`) to its object key, with the same checks.
pub fn remainder_key(rest: &str, rules: KeyRules<'_>) -> Result<String, KeyError> {
    if rest.bytes().any(|b| b == b'\\' || b.is_ascii_control()) {
        return Err(KeyError::Separator);
    }
    if rest.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(if rest.is_empty() || rest.ends_with('/') { KeyError::Empty } else { KeyError::DotSegment });
    }
    let rest = rules.strip_prefixes.iter().find_map(|p| rest.strip_prefix(p.as_str())).unwrap_or(rest);
    if !rules.allowed_prefixes.iter().any(|p| rest.starts_with(p.as_str())) {
        return Err(KeyError::NotAllowed);
    }
    let key = if rules.key_prefix.is_empty() {
        rest.to_owned()
    } else {
        let mut k = String::with_capacity(rules.key_prefix.len() + rest.len());
        k.push_str(rules.key_prefix);
        k.push_str(rest);
        k
    };
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    Ok(key)
}

/// Refuses dot and empty segments in the raw path, in any spelling.
fn check_raw_segments(raw: &str) -> Result<(), KeyError> {
    for seg in raw.strip_prefix('/').unwrap_or(raw).split('/') {
        let decoded: Cow<'_, [u8]> = percent_decode_str(seg).into();
        if decoded.is_empty() || &*decoded == b"." || &*decoded == b".." {
            return Err(KeyError::DotSegment);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    fn map(raw: &str, key_prefix: &str) -> Result<String, KeyError> {
        let allowed = vec!["bols/".to_owned(), "bol_pdfs/".to_owned()];
        let path = normalize(raw).map_err(|_| KeyError::Separator)?;
        object_key(raw, &path, KeyRules { key_prefix, allowed_prefixes: &allowed, strip_prefixes: &[] })
    }

    #[test]
    fn production_layout_maps_to_bucket_root() {
        assert_eq!(map("/media/bols/2025/PRT-2025-0002.pdf", "").unwrap(), "bols/2025/PRT-2025-0002.pdf");
        assert_eq!(map("/media/bol_pdfs/old.pdf", "").unwrap(), "bol_pdfs/old.pdf");
        assert_eq!(map("/media/bols/x.pdf", "media/").unwrap(), "media/bols/x.pdf");
    }

    #[test]
    fn awkward_keys_are_decoded_once() {
        assert_eq!(map("/media/bols/a%20b+c~%C3%A9.pdf", "").unwrap(), "bols/a b+c~é.pdf");
        assert_eq!(map("/media/bols/a%2Bb.pdf", "").unwrap(), "bols/a+b.pdf");
        // `%25` stays a literal percent in the key.
        assert_eq!(map("/media/bols/100%25.pdf", "").unwrap(), "bols/100%.pdf");
    }

    #[test]
    fn dot_and_empty_segments_are_refused_in_every_spelling() {
        for raw in [
            "/media/bols/../x.pdf",
            "/media/bols/./x.pdf",
            "/media/bols/%2e%2e/bols/x.pdf",
            "/media/bols/.%2E/bols/x.pdf",
            "/media/bols//x.pdf",
            "/api/../media/bols/x.pdf",
            "/media/bols/x/../y.pdf",
        ] {
            assert_eq!(map(raw, ""), Err(KeyError::DotSegment), "{raw}");
        }
    }

    #[test]
    fn separators_and_outside_keys_are_refused() {
        // The normalizer refuses encoded separators outright.
        assert!(normalize("/media/bols%2Fx.pdf").is_err());
        assert!(normalize("/media/bols/%5Cx.pdf").is_err());
        assert_eq!(map("/media/private/x.pdf", ""), Err(KeyError::NotAllowed));
        assert_eq!(map("/media/bolsx/x.pdf", ""), Err(KeyError::NotAllowed));
        assert_eq!(map("/media/bols/", ""), Err(KeyError::Empty));
        assert_eq!(map("/media/", ""), Err(KeyError::Empty));
        assert_eq!(map("/mediax/bols/a", ""), Err(KeyError::NotMedia));
        let long = format!("/media/bols/{}", "a".repeat(1020));
        assert_eq!(map(&long, ""), Err(KeyError::TooLong));
    }

    #[test]
    fn remainder_rules_match_the_request_rules() {
        let allowed = vec!["bols/".to_owned()];
        let r = KeyRules { key_prefix: "", allowed_prefixes: &allowed, strip_prefixes: &[] };
        assert_eq!(remainder_key("bols/a b.pdf", r).unwrap(), "bols/a b.pdf");
        assert_eq!(remainder_key("bols/../x", r), Err(KeyError::DotSegment));
        assert_eq!(remainder_key("bols/a\\b", r), Err(KeyError::Separator));
        assert_eq!(remainder_key("other/a", r), Err(KeyError::NotAllowed));
    }

    #[test]
    fn stray_prefix_is_dropped_once_and_never_widens_the_allow_list() {
        let allowed = vec!["bols/".to_owned(), "bol_pdfs/".to_owned()];
        let strip = vec!["media/".to_owned()];
        let on = KeyRules { key_prefix: "", allowed_prefixes: &allowed, strip_prefixes: &strip };
        let off = KeyRules { strip_prefixes: &[], ..on };
        // The app's `/media/media/…` links name the same object as `/media/…`.
        assert_eq!(remainder_key("media/bols/2025/X.pdf", on).unwrap(), "bols/2025/X.pdf");
        assert_eq!(remainder_key("media/bol_pdfs/X.pdf", on).unwrap(), "bol_pdfs/X.pdf");
        // Positive control: without the setting they are outside the allow-list.
        assert_eq!(remainder_key("media/bols/2025/X.pdf", off), Err(KeyError::NotAllowed));
        // Dropped once only, and what remains must still be allowed.
        assert_eq!(remainder_key("media/media/bols/X.pdf", on), Err(KeyError::NotAllowed));
        assert_eq!(remainder_key("media/private/X.pdf", on), Err(KeyError::NotAllowed));
        assert_eq!(remainder_key("media/", on), Err(KeyError::Empty));
        assert_eq!(remainder_key("media/../bols/X.pdf", on), Err(KeyError::DotSegment));
        assert_eq!(remainder_key("mediabols/X.pdf", on), Err(KeyError::NotAllowed));
        // With a key prefix the stripped remainder is what gets prefixed.
        let prefixed = KeyRules { key_prefix: "media/", ..on };
        assert_eq!(remainder_key("media/bols/X.pdf", prefixed).unwrap(), "media/bols/X.pdf");
        // Through the request path too.
        let path = normalize("/media/media/bols/2025/X.pdf").unwrap();
        assert_eq!(object_key("/media/media/bols/2025/X.pdf", &path, on).unwrap(), "bols/2025/X.pdf");
    }
}
