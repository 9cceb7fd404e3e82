//! Path normalization (SPEC 6.3) — STUB, being written by a helper. API is fixed:
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    path: Cow<'a, str>,
}

impl<'a> NormalizedPath<'a> {
    pub fn as_str(&self) -> &str {
        &self.path
    }
    pub fn is_unchanged(&self) -> bool {
        matches!(self.path, Cow::Borrowed(_))
    }
    pub fn into_owned(self) -> NormalizedPath<'static> {
        NormalizedPath { path: Cow::Owned(self.path.into_owned()) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("path must start with '/'")]
    NotAbsolute,
}

pub fn normalize(raw: &str) -> Result<NormalizedPath<'_>, NormalizeError> {
    if !raw.starts_with('/') {
        return Err(NormalizeError::NotAbsolute);
    }
    Ok(NormalizedPath { path: Cow::Borrowed(raw) })
}
