//! Line streams through the engine: `prt-gate redact` (stdin → stdout) and
//! the child-log scrubbing of `prt-gate run`.
//!
//! Guarantees, each with a test in `redact::tests` or `tests/it/redact.rs`:
//!
//! * **Never drops or reorders lines.** One line in, one line out, in order;
//!   a last line without `\n` stays without it; `\r\n` is kept.
//! * **Bytes, not text.** Invalid UTF-8 passes through unchanged (the
//!   detectors are byte regexes).
//! * **Multi-line PEM private keys.** A line that opens `-----BEGIN … PRIVATE
//!   KEY-----` without closing it puts the filter in a state where the
//!   following lines are replaced by `[REDACTED:private_key]` up to the
//!   `-----END … PRIVATE KEY-----` line (which is kept).
//! * **Bounded memory.** A line longer than [`MAX_LINE`] is processed in
//!   windows of that size. Each window is searched whole but only written up
//!   to [`OVERLAP`] bytes before its end, extended past any secret that
//!   crosses the cut; the rest is searched again with the next window, so a
//!   secret of up to `OVERLAP` bytes straddling a window boundary is found
//!   whole. A secret that runs to a window's end (a value longer than the
//!   window) stays redacted into the next window up to its first delimiter.
//! * **Flushes per line.** Every complete line received is written and
//!   flushed before the filter blocks reading more input; output is batched
//!   only as far as input already arrived together (a 64 KiB pipe read).

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::{Hit, Redactor};

/// Longest line held whole; longer lines are processed in windows.
pub const MAX_LINE: usize = 1 << 20;
/// Lookahead kept from each window for the next (longest secret found whole
/// across a window boundary).
pub const OVERLAP: usize = 64 * 1024;
const READ_BUF: usize = 256 * 1024;

/// What a previous window or line left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    None,
    /// Inside a PEM private key: redact up to its `-----END … PRIVATE KEY-----`.
    Pem,
    /// A secret value ran to the end of the last window: its tail follows.
    Value,
}

const PEM_END: &[u8] = b"PRIVATE KEY-----";

/// Per-stream state around a shared [`Redactor`].
pub struct LineFilter {
    redactor: Arc<Redactor>,
    carry: Carry,
    hits: Vec<Hit>,
    /// Pass everything through (`PRT_TEST_DISABLE_REDACTION`, debug builds).
    off: bool,
}

impl LineFilter {
    pub fn new(redactor: Arc<Redactor>) -> LineFilter {
        LineFilter { redactor, carry: Carry::None, hits: Vec::new(), off: super::disabled_for_test() }
    }

    /// One complete line, without its `\n`, redacted onto `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        self.line_inner(line, out, None);
    }

    /// `first`: where the caller found the line's first detector anchor.
    fn line_inner(&mut self, line: &[u8], out: &mut Vec<u8>, first: Option<usize>) {
        let (mark, fresh) = (out.len(), self.carry == Carry::None);
        self.segment(line, out, true, first);
        if self.carry == Carry::Value {
            self.carry = Carry::None;
        }
        // A whole line that changed settles like `Redactor::redact` (idempotence).
        if fresh && !self.off && self.carry == Carry::None && out.get(mark..) != Some(line) {
            let tail = out.split_off(mark);
            out.extend_from_slice(&self.redactor.settle(tail, &mut self.hits));
        }
    }

    /// A block of complete lines (ending in `\n`). Runs of lines without
    /// any detector anchor are copied in one piece: the prefilter scans the
    /// block, not each line.
    pub fn lines(&mut self, block: &[u8], out: &mut Vec<u8>) {
        if self.off {
            out.extend_from_slice(block);
            return;
        }
        let mut at = 0;
        while at < block.len() {
            let (start, p) = if self.carry == Carry::None {
                match self.redactor.next_candidate(block, at) {
                    None => {
                        out.extend_from_slice(&block[at..]);
                        return;
                    }
                    Some(p) => (memchr::memrchr(b'\n', &block[at..p]).map_or(at, |i| at + i + 1), p),
                }
            } else {
                (at, at) // inside a PEM block: every line is looked at
            };
            let end = memchr::memchr(b'\n', &block[p..]).map_or(block.len(), |i| p + i);
            out.extend_from_slice(&block[at..start]);
            let first = (self.carry == Carry::None).then_some(p - start);
            self.line_inner(&block[start..end], out, first);
            if end < block.len() {
                out.push(b'\n');
            }
            at = end + 1;
        }
    }

    /// Processes a window of an unfinished line; returns how many bytes of
    /// `w` were consumed (the rest is presented again with more data).
    /// `first`: the caller found the first detector anchor of `w` there.
    fn segment(&mut self, w: &[u8], out: &mut Vec<u8>, last: bool, first: Option<usize>) -> usize {
        if self.off {
            out.extend_from_slice(w);
            return w.len();
        }
        let mut start = 0;
        match self.carry {
            Carry::None => {}
            Carry::Value => {
                start = w.iter().position(|b| is_value_end(*b)).unwrap_or(w.len());
                if start == w.len() && !last {
                    return start;
                }
                self.carry = Carry::None;
            }
            Carry::Pem => match pem_end(w) {
                Some(p) => {
                    if p > 0 && last {
                        out.extend_from_slice(self.marker("private_key"));
                    }
                    start = p;
                    self.carry = Carry::None;
                }
                None if last => {
                    out.extend_from_slice(self.marker("private_key"));
                    return w.len();
                }
                // Keep a tail that may hold the start of the END marker.
                None => return w.len().saturating_sub(64),
            },
        }
        let text = &w[start..];
        if let (Some(first), 0) = (first, start) {
            self.redactor.find_anchored(text, first, &mut self.hits);
        } else {
            self.redactor.find(text, &mut self.hits);
        }
        let mut cut = if last { text.len() } else { text.len().saturating_sub(OVERLAP) };
        for h in &self.hits {
            if h.context < cut && h.end > cut {
                cut = h.end;
            }
        }
        let kept: usize = self.hits.iter().take_while(|h| h.start < cut).count();
        self.redactor.apply(&text[..cut], &self.hits[..kept], out);
        if let Some(h) = self.hits[..kept].last() {
            if h.end == text.len() && !last {
                // The secret may go on in the next window.
                self.carry = if self.redactor.name(h.detector) == "private_key" { Carry::Pem } else { Carry::Value };
            }
        }
        if last && opens_pem(text) {
            self.carry = Carry::Pem;
        }
        start + cut
    }

    fn marker(&self, name: &str) -> &'static [u8] {
        debug_assert_eq!(name, "private_key");
        b"[REDACTED:private_key]"
    }
}

/// Where `-----END … PRIVATE KEY-----` starts in `w`.
fn pem_end(w: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&w[from..], PEM_END) {
        let at = from + i;
        let head = &w[at.saturating_sub(48)..at];
        if let Some(e) = memchr::memmem::rfind(head, b"-----END ") {
            return Some(at.saturating_sub(48) + e);
        }
        from = at + PEM_END.len();
    }
    None
}

/// Whether the last `… PRIVATE KEY-----` marker in `text` is a BEGIN.
fn opens_pem(text: &[u8]) -> bool {
    let Some(at) = memchr::memmem::rfind(text, PEM_END) else { return false };
    let head = &text[at.saturating_sub(48)..at];
    memchr::memmem::rfind(head, b"-----BEGIN ").is_some() && memchr::memmem::rfind(head, b"-----END ").is_none()
}

/// Bytes that end an unquoted secret value.
fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace() || b"\"'&;,<>".contains(&b)
}

/// Writes the windows of a line longer than [`MAX_LINE`] (bounded memory).
fn continue_windows(f: &mut LineFilter, pending: &mut Vec<u8>, out: &mut Vec<u8>) {
    while pending.len() >= MAX_LINE {
        // `segment` always consumes at least `MAX_LINE - OVERLAP` bytes here.
        let used = f.segment(pending, out, false, None);
        pending.drain(..used.clamp(1, pending.len()));
    }
}

/// `prt-gate redact`: copies `input` to `output` line by line through the
/// engine. Returns on EOF; a broken pipe is the caller's to treat as success.
pub fn filter(redactor: Arc<Redactor>, mut input: impl Read, mut output: impl Write) -> io::Result<()> {
    let mut f = LineFilter::new(redactor);
    let mut buf = vec![0u8; READ_BUF];
    let mut pending: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::with_capacity(READ_BUF + READ_BUF / 4);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut data = &buf[..n];
        if !pending.is_empty() {
            // Finish the line the last read left open.
            let Some(i) = memchr::memchr(b'\n', data) else {
                pending.extend_from_slice(data);
                continue_windows(&mut f, &mut pending, &mut out);
                output.write_all(&out)?;
                output.flush()?;
                out.clear();
                continue;
            };
            pending.extend_from_slice(&data[..i]);
            f.line(&pending, &mut out);
            out.push(b'\n');
            pending.clear();
            data = &data[i + 1..];
        }
        if let Some(last) = memchr::memrchr(b'\n', data) {
            f.lines(&data[..=last], &mut out);
            data = &data[last + 1..];
        }
        pending.extend_from_slice(data);
        continue_windows(&mut f, &mut pending, &mut out);
        // Everything complete is written before blocking on the next read.
        output.write_all(&out)?;
        output.flush()?;
        out.clear();
    }
    if !pending.is_empty() {
        f.line(&pending, &mut out);
    }
    output.write_all(&out)?;
    output.flush()
}
