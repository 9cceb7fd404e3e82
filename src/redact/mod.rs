//! The redaction engine (design §9): finds secrets in log text and replaces
//! them with `[REDACTED:<detector>]`, keeping the key so logs stay useful
//! (`access_token=[REDACTED:oauth]`, `'sso_access_token': '[REDACTED:secret]'`).
//!
//! Pure: no I/O. Shared by the gate's own logging ([`writer`]), the
//! `prt-gate redact` filter and the child-log scrubbing of `prt-gate run`
//! ([`stream`]).
//!
//! How a line is searched:
//!
//! 1. **Prefilter.** One Aho-Corasick pass (ASCII case-insensitive) over the
//!    detectors' literal anchors (`token`, `cookie`, `eyj`, `akia`, `@`…)
//!    says which detectors can match at all. Most log lines contain no anchor
//!    and cost this one scan.
//! 2. **Detect.** Only those detectors' regexes run; each yields the byte
//!    spans of secrets (not of keys or quotes). Operator patterns from
//!    `[redact] patterns` run on every line (they have no anchors).
//! 3. **Merge.** Overlapping spans are joined (the earlier detector in the
//!    table names the result), so a byte any detector flagged is never
//!    written.
//! 4. **Replace.** Untouched lines are returned borrowed (no allocation).
//! 5. **Settle.** A line that changed is searched again until a pass finds nothing new
//!    (usually the second pass): a merged span can change what a detector reads (a cookie
//!    name losing its `=`), and redaction must be idempotent, since logs are redacted
//!    again downstream (`prt-gate redact` over the gate's own output).
//!
//! Detectors are data: see [`detectors::BUILTINS`].

pub mod detectors;
pub mod export;
pub(crate) mod memo;
pub mod query;
pub mod stream;
pub mod writer;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};
use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use detectors::{Check, Secret, BUILTINS, COOKIE_ATTRIBUTES};

/// The switch that proves the canary tests can fail: with
/// `PRT_TEST_DISABLE_REDACTION=1`, a **debug** build redacts nothing
/// and strips no OAuth parameters. Release builds do not contain the check
/// (`cfg(debug_assertions)`), so no environment can turn redaction off in
/// production.
pub fn disabled_for_test() -> bool {
    #[cfg(debug_assertions)]
    {
        std::env::var_os("PRT_TEST_DISABLE_REDACTION").is_some_and(|v| v == "1")
    }
    #[cfg(not(debug_assertions))]
    {
        false
    }
}

/// `[redact]` in `policy.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedact {
    /// Operator patterns, added to the built-in detectors.
    pub patterns: Vec<RawPattern>,
}

/// `{ name = "bol_pin", regex = "PIN-[0-9]{6}" }`: the whole match is
/// replaced by `[REDACTED:bol_pin]`, or only the named capture groups if the
/// regex has any (`pin=(?P<v>[0-9]+)` keeps `pin=`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPattern {
    pub name: String,
    pub regex: String,
}

/// An operator pattern that cannot be used (the message names the fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PatternError {
    /// Index in `[redact] patterns`.
    pub index: usize,
    /// `name` or `regex`: which field is wrong.
    pub field: &'static str,
    pub message: String,
}

/// Upper bound on the passes of [`Redactor::redact`] over one text (step 5).
const MAX_PASSES: usize = 8;

/// A byte range of a secret and the detector that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    /// Start of the whole match (the key before the secret): a window cut
    /// between `context` and `end` would separate a secret from its key.
    pub context: usize,
    /// Index into the engine's detector list (see [`Redactor::name`]).
    pub detector: usize,
}

struct Detector {
    name: Arc<str>,
    /// Bytes every match contains (`://` for URL userinfo): checked with
    /// `memmem` before the regex runs.
    requires: Option<&'static [u8]>,
    regex: Regex,
    secret: Secret,
    check: Option<Check>,
    /// Names of the capture groups that hold secrets.
    groups: Vec<String>,
}

/// The compiled engine: built-in detectors plus operator patterns.
pub struct Redactor {
    detectors: Vec<Detector>,
    /// Anchor prefilter; pattern id → detector index in `anchor_owner`.
    anchors: Option<AhoCorasick>,
    /// The same anchors, leftmost-first DFA: "is there any anchor after
    /// here?" over a whole buffer (the line filter's skip-ahead).
    any_anchor: Option<AhoCorasick>,
    anchor_owner: Vec<usize>,
    /// Detectors without anchors (operator patterns): always run.
    always: Vec<usize>,
    replacements: Vec<Vec<u8>>,
    /// Unique per engine built: [`memo`] verdicts of one engine are never used by another.
    id: u64,
}

/// The next [`Redactor::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("detectors", &self.detectors.len()).finish()
    }
}

impl Redactor {
    /// The built-in detectors only.
    pub fn builtin() -> Redactor {
        // The table is constant and covered by tests; an invalid row is a
        // build-time bug, caught by `every_builtin_compiles`.
        Self::new(&[]).unwrap_or_else(|_| Self::empty())
    }

    /// An engine that finds nothing (only if the built-in table is broken).
    fn empty() -> Redactor {
        Redactor {
            detectors: Vec::new(),
            anchors: None,
            any_anchor: None,
            anchor_owner: Vec::new(),
            always: Vec::new(),
            replacements: Vec::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Built-in detectors plus operator patterns; every bad pattern reported.
    pub fn new(patterns: &[RawPattern]) -> Result<Redactor, Vec<PatternError>> {
        let mut errors = Vec::new();
        let mut detectors = Vec::new();
        let mut anchor_text: Vec<&str> = Vec::new();
        let mut anchor_owner = Vec::new();
        for b in BUILTINS {
            match Regex::new(b.regex) {
                Ok(regex) => {
                    let idx = detectors.len();
                    for a in b.anchors {
                        anchor_text.push(a);
                        anchor_owner.push(idx);
                    }
                    let mut d = Detector::new(Arc::from(b.name), regex, b.secret, b.check);
                    d.requires = b.requires;
                    detectors.push(d);
                }
                Err(e) => errors.push(PatternError {
                    index: usize::MAX,
                    field: "regex",
                    message: format!("built-in detector `{}`: {e}", b.name),
                }),
            }
        }
        let mut always = Vec::new();
        for (index, p) in patterns.iter().enumerate() {
            if p.name.is_empty() || !p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                errors.push(PatternError {
                    index,
                    field: "name",
                    message: format!("invalid name `{}` (letters, digits, `_`, `-`)", p.name),
                });
            }
            match regex::bytes::RegexBuilder::new(&p.regex).size_limit(1 << 20).build() {
                Ok(regex) if regex.is_match(b"") => errors.push(PatternError {
                    index,
                    field: "regex",
                    message: format!("`{}` matches the empty string (it would redact nothing useful)", p.regex),
                }),
                Ok(regex) => {
                    always.push(detectors.len());
                    detectors.push(Detector::new(Arc::from(p.name.as_str()), regex, Secret::Named, None));
                }
                Err(e) => errors.push(PatternError {
                    index,
                    field: "regex",
                    message: format!("invalid regex: {}", one_line(&e.to_string())),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let build = |kind: MatchKind, dfa: bool| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(kind)
                .kind(dfa.then_some(AhoCorasickKind::DFA))
                .build(&anchor_text)
                .map_err(|e| vec![PatternError { index: usize::MAX, field: "regex", message: e.to_string() }])
                .map(Some)
        };
        let anchors = build(MatchKind::Standard, true)?;
        let any_anchor = build(MatchKind::LeftmostFirst, true)?;
        let replacements = detectors.iter().map(|d| format!("[REDACTED:{}]", d.name).into_bytes()).collect();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Redactor { detectors, anchors, any_anchor, anchor_owner, always, replacements, id })
    }

    /// The label of a detector (`jwt`, `oauth`, an operator pattern's name).
    pub fn name(&self, detector: usize) -> &str {
        self.detectors.get(detector).map_or("", |d| &d.name)
    }

    /// Where the first detector anchor at or after `from` starts (`from`
    /// itself when operator patterns exist: they have no anchors). Text
    /// before it cannot hold a secret the built-in detectors find.
    pub fn next_candidate(&self, text: &[u8], from: usize) -> Option<usize> {
        if !self.always.is_empty() {
            return (from < text.len()).then_some(from);
        }
        let ac = self.any_anchor.as_ref()?;
        ac.find(Input::new(text).span(from..text.len())).map(|m| m.start())
    }

    /// Secret spans in `text`, sorted and non-overlapping. `hits` is cleared.
    pub fn find(&self, text: &[u8], hits: &mut Vec<Hit>) {
        hits.clear();
        // Fast path: one DFA scan says whether any anchor occurs at all, and
        // where the first one starts (the anchor scan below resumes there).
        let Some(first) = self.next_candidate(text, 0) else {
            return;
        };
        self.find_anchored(text, first, hits);
    }

    /// [`Redactor::find`] for text the caller already scanned with
    /// [`Redactor::next_candidate`]: `first` is where that found the first
    /// anchor, so no anchor starts before it and the anchor scan starts
    /// there instead of rescanning the text before it (`0` when unknown:
    /// still correct, only slower).
    pub fn find_anchored(&self, text: &[u8], first: usize, hits: &mut Vec<Hit>) {
        hits.clear();
        // Bitmask of detectors whose anchors occur (the table has < 64 rows;
        // operator patterns are in `always`).
        let mut mask = 0u64;
        let rest = Input::new(text).span(first.min(text.len())..text.len());
        for m in self.anchors.iter().flat_map(|a| a.find_overlapping_iter(rest.clone())) {
            if let Some(&d) = self.anchor_owner.get(m.pattern().as_usize()) {
                if d < 64 {
                    mask |= 1 << d;
                }
            }
        }
        if mask == 0 && self.always.is_empty() {
            return;
        }
        for (i, d) in self.detectors.iter().enumerate() {
            let wanted = (i < 64 && mask & (1 << i) != 0) || self.always.contains(&i);
            if wanted && d.requires.is_none_or(|b| memchr::memmem::find(text, b).is_some()) {
                d.find(i, text, hits);
            }
        }
        merge(hits);
    }

    /// `text` with every secret replaced; borrowed when nothing was found.
    pub fn redact<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        if text.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut hits = Vec::new();
        self.find(text, &mut hits);
        if hits.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len() + 16 * hits.len());
        self.apply(text, &hits, &mut out);
        Cow::Owned(self.settle(out, &mut hits))
    }

    /// Step 5: passes over already redacted text until one changes nothing. Every pass
    /// only turns bytes into markers, which no detector reads as a new secret
    /// (`detectors::not_redacted`), so this ends quickly; [`MAX_PASSES`] bounds it anyway.
    pub(crate) fn settle(&self, mut out: Vec<u8>, hits: &mut Vec<Hit>) -> Vec<u8> {
        for _ in 1..MAX_PASSES {
            self.find(&out, hits);
            if hits.is_empty() {
                break;
            }
            let mut next = Vec::with_capacity(out.len());
            self.apply(&out, hits, &mut next);
            if next == out {
                break;
            }
            out = next;
        }
        out
    }

    /// Like [`Redactor::redact`] for text. Secret spans start and end at
    /// ASCII delimiters, so valid UTF-8 stays valid; should that ever fail,
    /// the lossy conversion still never re-inserts a secret.
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(v) => {
                Cow::Owned(String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
            }
        }
    }

    /// [`Redactor::redact_str`] for a short field that repeats from request to request (the
    /// access line's `user`, `rule`, `path`): a text this engine already found clean on
    /// this thread is returned without a scan ([`memo`]); anything else is scanned.
    pub fn redact_field<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let b = text.as_bytes();
        if b.is_empty() || b.len() > memo::MAX_LEN {
            return self.redact_str(text);
        }
        if memo::is_clean(self.id, b) {
            return Cow::Borrowed(text);
        }
        let out = self.redact_str(text);
        if matches!(out, Cow::Borrowed(_)) {
            memo::remember_clean(self.id, b);
        }
        out
    }

    /// Appends `text` with `hits` (from [`Redactor::find`]) replaced to `out`.
    pub fn apply(&self, text: &[u8], hits: &[Hit], out: &mut Vec<u8>) {
        let mut at = 0;
        for h in hits {
            out.extend_from_slice(&text[at..h.start]);
            out.extend_from_slice(self.replacements.get(h.detector).map_or(b"[REDACTED]".as_slice(), Vec::as_slice));
            at = h.end;
        }
        out.extend_from_slice(&text[at..]);
    }
}

impl Detector {
    fn new(name: Arc<str>, regex: Regex, secret: Secret, check: Option<Check>) -> Detector {
        let groups = regex.capture_names().flatten().map(str::to_owned).collect();
        Detector { name, requires: None, regex, secret, check, groups }
    }

    fn find(&self, idx: usize, text: &[u8], hits: &mut Vec<Hit>) {
        let mut push = |context: usize, start: usize, end: usize| {
            if start < end && self.check.is_none_or(|c| c(&text[start..end])) {
                hits.push(Hit { start, end, context, detector: idx });
            }
        };
        match self.secret {
            Secret::Whole => {
                for m in self.regex.find_iter(text) {
                    push(m.start(), m.start(), m.end());
                }
            }
            Secret::Named if self.groups.is_empty() => {
                for m in self.regex.find_iter(text) {
                    push(m.start(), m.start(), m.end());
                }
            }
            Secret::Named => {
                for caps in self.regex.captures_iter(text) {
                    let context = caps.get(0).map_or(0, |m| m.start());
                    for g in &self.groups {
                        if let Some(m) = caps.name(g) {
                            push(context, m.start(), m.end());
                        }
                    }
                }
            }
            Secret::CookieValues => {
                for caps in self.regex.captures_iter(text) {
                    let context = caps.get(0).map_or(0, |m| m.start());
                    if let Some(m) = caps.name("c") {
                        cookie_values(text, m.start(), m.end(), &mut |s, e| push(context, s, e));
                    }
                }
            }
        }
    }
}

/// `a=1; b=2` → the spans of `1` and `2`; `Path=/`, `HttpOnly` are kept.
fn cookie_values(text: &[u8], start: usize, end: usize, push: &mut impl FnMut(usize, usize)) {
    let mut seg = start;
    while seg < end {
        let stop = memchr::memchr2(b';', b',', &text[seg..end]).map_or(end, |i| seg + i);
        let part = &text[seg..stop];
        let lead = part.iter().take_while(|b| b.is_ascii_whitespace()).count();
        match memchr::memchr(b'=', part) {
            Some(eq) => {
                let name = trim(&part[lead..eq]);
                let is_attr = COOKIE_ATTRIBUTES.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(name));
                // `Expires=Wed, 21 Oct 2026 …` contains a comma: keep it whole.
                if !is_attr {
                    push(seg + eq + 1, seg + trim_end_len(part));
                }
            }
            None => {
                // A bare flag (`HttpOnly`, `Secure`) or a nameless value.
                let word = trim(part);
                let is_attr = COOKIE_ATTRIBUTES.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(word));
                let is_date_tail = word.first().is_some_and(u8::is_ascii_digit) && part.contains(&b' ');
                if !word.is_empty() && !is_attr && !is_date_tail {
                    push(seg + lead, seg + trim_end_len(part));
                }
            }
        }
        seg = stop + 1;
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    &b[s..trim_end_len(b).max(s)]
}

fn trim_end_len(b: &[u8]) -> usize {
    b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(0, |i| i + 1)
}

/// Sorts and joins overlapping spans; the earlier detector names the union.
fn merge(hits: &mut Vec<Hit>) {
    if hits.len() < 2 {
        return;
    }
    hits.sort_unstable_by_key(|h| (h.start, h.detector));
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    for h in hits.drain(..) {
        match out.last_mut() {
            Some(last) if h.start < last.end => {
                last.end = last.end.max(h.end);
                last.context = last.context.min(h.context);
                last.detector = last.detector.min(h.detector);
            }
            _ => out.push(h),
        }
    }
    *hits = out;
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
