//! The HTTP/1 request-framing (and HTTP/2 frame-header) scanner behind [`super::Tap`]:
//! a byte-by-byte reader, pure apart from what it reports to the connection's
//! [`ConnWatch`] (see the `tap` module documentation for what it follows).
//!
//! Memory per connection: the method and first bytes of the head line being read
//! inline, and the target of the request line being read, up to `gate.max_uri_bytes`
//! (freed at the end of each request line).

use std::sync::Arc;

use super::super::conn_watch::ConnWatch;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes matched the HTTP/2 preface so far.
    Sniff(usize),
    // HTTP/2
    /// Inside a frame header: this many of its nine bytes read.
    FrameHeader(usize),
    /// This many payload bytes left to skip.
    Payload(u64),
    // HTTP/1
    /// At the start of a line (where a request line may start).
    LineStart,
    Method,
    Target,
    /// After the target's space: this many bytes of `HTTP/` matched.
    Version(usize),
    /// The rest of the request line, then the head.
    Head,
    /// This many body bytes left to skip.
    Body(u64),
    /// A chunk-size line: the size so far (hex digits), then its extensions.
    ChunkSize(u64),
    ChunkExt(u64),
    /// This many chunk-data bytes left, then the line break that ends them.
    ChunkData(u64),
    ChunkDataEnd,
    /// After the last chunk: at the start of a trailer line (an empty one ends the
    /// message), or inside one.
    TrailerStart,
    Trailer,
    /// Until the end of the line.
    Skip,
}

/// The byte-by-byte reader behind [`super::Tap`] (pure, apart from reporting to the watch).
pub struct Scanner {
    pub(super) watch: Arc<ConnWatch>,
    state: State,
    max_target: usize,
    frame: [u8; 9],
    method: Kept<MAX_METHOD>,
    /// Freed at the end of each request line: a connection keeps no allocation of it
    /// while idle.
    target: Vec<u8>,
    hash: bool,
    /// The current head line (first bytes only) and the head's framing facts.
    line: Kept<HEAD_LINE_KEPT>,
    content_length: u64,
    chunked: bool,
}

/// Head-line bytes kept: enough for `content-length: <20 digits>` or `transfer-encoding`.
const HEAD_LINE_KEPT: usize = 64;
const MAX_METHOD: usize = 32;

impl Scanner {
    /// A scanner for a new connection: the first bytes decide the protocol.
    pub fn new(watch: Arc<ConnWatch>, max_target: usize) -> Scanner {
        Scanner::starting(watch, max_target, State::Sniff(0))
    }

    /// A scanner for an HTTP/1 connection resumed at a request boundary (after an idle
    /// wait): nothing of the next request read yet.
    pub fn resumed(watch: Arc<ConnWatch>, max_target: usize) -> Scanner {
        Scanner::starting(watch, max_target, State::LineStart)
    }

    fn starting(watch: Arc<ConnWatch>, max_target: usize, state: State) -> Scanner {
        Scanner {
            watch,
            state,
            max_target,
            frame: [0; 9],
            method: Kept::default(),
            target: Vec::new(),
            hash: false,
            line: Kept::default(),
            content_length: 0,
            chunked: false,
        }
    }

    /// Whether the bytes read so far end exactly after a whole HTTP/1 request (or before
    /// the first): nothing of a next request line, head or body has been read.
    pub fn at_boundary(&self) -> bool {
        self.state == State::LineStart
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Sniff(matched) => {
                    let rest = H2_PREFACE.get(matched..).unwrap_or_default();
                    let n = data.len().min(rest.len());
                    if data.get(..n) == rest.get(..n) {
                        data = data.get(n..).unwrap_or_default();
                        if matched + n == H2_PREFACE.len() {
                            self.watch.h2_started();
                            self.state = State::FrameHeader(0);
                        } else {
                            self.state = State::Sniff(matched + n);
                        }
                    } else {
                        // HTTP/1: replay the bytes that looked like the preface.
                        self.state = State::LineStart;
                        for &b in H2_PREFACE.get(..matched).unwrap_or_default() {
                            self.http1(b);
                        }
                    }
                }
                State::FrameHeader(_) | State::Payload(_) => data = self.http2(data),
                State::ChunkData(left) => {
                    let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    data = data.get(n..).unwrap_or_default();
                    self.state = if left == n as u64 { State::ChunkDataEnd } else { State::ChunkData(left - n as u64) };
                }
                State::ChunkExt(_) | State::ChunkDataEnd | State::Trailer => {
                    // The rest of the line does not matter: straight to its line break.
                    match memchr::memchr(b'\n', data) {
                        Some(i) => {
                            data = data.get(i + 1..).unwrap_or_default();
                            self.state = match self.state {
                                State::ChunkExt(size) => self.chunk_size_end(size),
                                State::ChunkDataEnd => State::ChunkSize(0),
                                _ => State::TrailerStart,
                            };
                        }
                        None => data = &[],
                    }
                }
                _ => {
                    if let State::Body(left) = self.state {
                        let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        data = data.get(n..).unwrap_or_default();
                        self.state = if left == n as u64 { State::LineStart } else { State::Body(left - n as u64) };
                        continue;
                    }
                    if self.state == State::Head {
                        // A head line at a time: keep its first bytes, act at its end.
                        let end = memchr::memchr(b'\n', data);
                        let part = data.get(..end.unwrap_or(data.len())).unwrap_or_default();
                        self.line.extend(part);
                        match end {
                            Some(i) => {
                                data = data.get(i + 1..).unwrap_or_default();
                                self.state = self.head_line_end();
                            }
                            None => data = &[],
                        }
                        continue;
                    }
                    if self.state == State::Target {
                        // The target's ordinary bytes in one step; the byte that ends the
                        // run (space, `#`, line break) goes through `http1`.
                        let run =
                            data.iter().position(|&b| matches!(b, b' ' | b'#' | b'\r' | b'\n')).unwrap_or(data.len());
                        if !self.hash {
                            let room = self.max_target.saturating_sub(self.target.len());
                            if run > room {
                                // Longer than any target followed: the line is not one.
                                self.state = State::Skip;
                                continue;
                            }
                            self.target.extend_from_slice(data.get(..run).unwrap_or_default());
                        }
                        data = data.get(run..).unwrap_or_default();
                        if let Some((&b, rest)) = data.split_first() {
                            self.http1(b);
                            data = rest;
                        }
                        continue;
                    }
                    if self.state == State::Skip {
                        // A line that is not a request line: straight to its line break.
                        match memchr::memchr(b'\n', data) {
                            Some(i) => {
                                data = data.get(i + 1..).unwrap_or_default();
                                self.state = State::LineStart;
                            }
                            None => data = &[],
                        }
                        continue;
                    }
                    if let Some((&b, rest)) = data.split_first() {
                        self.http1(b);
                        data = rest;
                    }
                }
            }
        }
    }

    /// Consumes frame-header bytes or skips payload; returns what is left.
    fn http2<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        match self.state {
            State::Payload(left) => {
                let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                self.state = if left == n as u64 { State::FrameHeader(0) } else { State::Payload(left - n as u64) };
                data.get(n..).unwrap_or_default()
            }
            State::FrameHeader(have) => {
                let n = data.len().min(9 - have);
                if let (Some(slot), Some(src)) = (self.frame.get_mut(have..have + n), data.get(..n)) {
                    slot.copy_from_slice(src);
                }
                if have + n < 9 {
                    self.state = State::FrameHeader(have + n);
                } else {
                    self.frame_header();
                }
                data.get(n..).unwrap_or_default()
            }
            _ => data,
        }
    }

    fn frame_header(&mut self) {
        const HEADERS: u8 = 0x1;
        const PUSH_PROMISE: u8 = 0x5;
        const CONTINUATION: u8 = 0x9;
        const END_HEADERS: u8 = 0x4;
        let [l0, l1, l2, kind, flags, ..] = self.frame;
        let len = u64::from(l0) << 16 | u64::from(l1) << 8 | u64::from(l2);
        match kind {
            HEADERS | PUSH_PROMISE if flags & END_HEADERS == 0 => self.watch.header_block(true),
            CONTINUATION if flags & END_HEADERS != 0 => self.watch.header_block(false),
            _ => {}
        }
        self.state = if len == 0 { State::FrameHeader(0) } else { State::Payload(len) };
    }

    fn http1(&mut self, b: u8) {
        self.state = match (self.state, b) {
            (State::LineStart, b'\r' | b'\n') => State::LineStart,
            (State::LineStart, _) if is_tchar(b) => {
                self.method.clear();
                self.method.push(b);
                State::Method
            }
            (State::Method, b' ') => {
                self.target.clear();
                self.hash = false;
                State::Target
            }
            (State::Method, _) if is_tchar(b) && self.method.len() < MAX_METHOD => {
                self.method.push(b);
                State::Method
            }
            (State::Target, b' ') if !self.target.is_empty() || self.hash => State::Version(0),
            (State::Target, b'\r' | b'\n') => self.end_of_line(b),
            (State::Target, b'#') => {
                self.hash = true;
                State::Target
            }
            (State::Target, _) if self.hash => State::Target,
            (State::Target, _) if self.target.len() < self.max_target => {
                self.target.push(b);
                State::Target
            }
            (State::Version(k), _) if Some(&b) == b"HTTP/".get(k) => {
                if k + 1 < 5 {
                    State::Version(k + 1)
                } else {
                    if self.hash {
                        self.watch.fragment_seen(self.method.as_slice(), &self.target);
                    }
                    self.target = Vec::new();
                    self.line.clear();
                    self.content_length = 0;
                    self.chunked = false;
                    State::Head
                }
            }
            (State::Head, b'\n') => self.head_line_end(),
            (State::Head, _) => {
                self.line.push(b);
                State::Head
            }
            (State::ChunkSize(n), _) if b.is_ascii_hexdigit() => {
                // More hex digits than a u64 holds: hyper refuses the body; stop following.
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                match n.checked_mul(16) {
                    Some(n) => State::ChunkSize(n | digit),
                    None => State::Skip,
                }
            }
            (State::ChunkSize(n), b'\n') => self.chunk_size_end(n),
            (State::ChunkSize(n), _) => State::ChunkExt(n),
            (State::TrailerStart, b'\r') => State::TrailerStart,
            (State::TrailerStart, b'\n') => State::LineStart,
            (State::TrailerStart, _) => State::Trailer,
            (
                State::Body(_)
                | State::Sniff(_)
                | State::FrameHeader(_)
                | State::Payload(_)
                | State::ChunkExt(_)
                | State::ChunkData(_)
                | State::ChunkDataEnd
                | State::Trailer,
                _,
            ) => self.state,
            (_, b'\n') => State::LineStart,
            _ => State::Skip,
        };
    }

    fn chunk_size_end(&self, size: u64) -> State {
        if size == 0 {
            State::TrailerStart
        } else {
            State::ChunkData(size)
        }
    }

    fn end_of_line(&self, b: u8) -> State {
        if b == b'\n' {
            State::LineStart
        } else {
            State::Skip
        }
    }

    /// A head line ended (`self.line` holds its first bytes, maybe with a `\r`).
    fn head_line_end(&mut self) -> State {
        let kept = self.line.as_slice();
        let line = kept.strip_suffix(b"\r").unwrap_or(kept);
        if line.is_empty() {
            // End of the head: skip the body by its framing (chunked wins, as in hyper).
            return match self.content_length {
                _ if self.chunked => State::ChunkSize(0),
                n if n > 0 => State::Body(n),
                _ => State::LineStart,
            };
        }
        if let Some((_, value)) =
            line.split_first_chunk::<15>().filter(|(n, _)| n.eq_ignore_ascii_case(b"content-length:"))
        {
            let digits = value.iter().skip_while(|c| **c == b' ' || **c == b'\t');
            let mut n: u64 = 0;
            for &c in digits.take_while(|c| c.is_ascii_digit()) {
                n = n.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            }
            self.content_length = n;
        } else if line.len() >= 18 && line.get(..18).is_some_and(|n| n.eq_ignore_ascii_case(b"transfer-encoding:")) {
            self.chunked = true;
        }
        self.line.clear();
        State::Head
    }
}

/// The first `N` bytes of something, inline (no allocation per connection).
#[derive(Debug, Clone, Copy)]
struct Kept<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Kept<N> {
    fn default() -> Self {
        Kept { bytes: [0; N], len: 0 }
    }
}

impl<const N: usize> Kept<N> {
    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, b: u8) {
        self.extend(&[b]);
    }

    /// Appends what still fits.
    fn extend(&mut self, more: &[u8]) {
        let n = N.saturating_sub(self.len).min(more.len());
        if let (Some(slot), Some(src)) = (self.bytes.get_mut(self.len..self.len + n), more.get(..n)) {
            slot.copy_from_slice(src);
            self.len += n;
        }
    }

    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// RFC 9110 token characters (a method).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::super::super::conn_watch::H2Limits;
    use super::*;
    use std::time::Duration;

    fn watch() -> Arc<ConnWatch> {
        let d = Duration::from_secs(1);
        ConnWatch::new(H2Limits { first_request: d, idle: d, header_block: d })
    }

    fn fragment(w: &ConnWatch, method: http::Method, target: &str) -> bool {
        w.take_fragment(&method, &target.parse().unwrap())
    }

    #[test]
    fn request_lines_with_a_hash_are_reported_byte_by_byte_or_whole() {
        let stream: &[u8] = b"GET /a#x HTTP/1.1\r\nHost: h\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 24\r\n\r\nGET /fake#x HTTP/1.1\r\nab\
            PUT /c?q=1#frag HTTP/1.1\r\nHost: h\r\n\r\n\
            GET http://h/d#y HTTP/1.1\r\n\r\n\
            POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe#lo\r\n0\r\n\r\n\
            GET /f#z HTTP/1.1\r\n\r\n";
        for chunk in [stream.len(), 1, 7] {
            let w = watch();
            let mut s = Scanner::new(w.clone(), 8192);
            for part in stream.chunks(chunk) {
                s.feed(part);
            }
            assert!(fragment(&w, http::Method::GET, "/a"), "chunk {chunk}");
            assert!(!fragment(&w, http::Method::POST, "/b"), "chunk {chunk}");
            // The Content-Length body was skipped: its look-alike line is not reported.
            assert!(!fragment(&w, http::Method::GET, "/fake"), "chunk {chunk}");
            assert!(fragment(&w, http::Method::PUT, "/c?q=1"), "chunk {chunk}");
            assert!(fragment(&w, http::Method::GET, "http://h/d"), "chunk {chunk}");
            assert!(!fragment(&w, http::Method::POST, "/e"), "chunk {chunk}");
            assert!(fragment(&w, http::Method::GET, "/f"), "after a chunked body, chunk {chunk}");
        }
    }

    /// The idle end relies on this: the scanner is at a boundary exactly where a whole
    /// request (head and body, by its framing) ends, and nowhere inside one.
    #[test]
    fn request_boundaries_follow_both_body_framings() {
        let requests: [&[u8]; 5] = [
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
            b"POST /b HTTP/1.1\r\nContent-Length: 12\r\n\r\nGET / HTTP/1",
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nab\r\nc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
            b"POST /d HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\n\r\n\n\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
            b"GET /e HTTP/1.1\n\n",
        ];
        let stream: Vec<u8> = requests.concat();
        let ends: Vec<usize> = requests.iter().scan(0, |at, r| Some(*at + r.len()).inspect(|e| *at = *e)).collect();
        for chunk in [1, 3, 7, stream.len()] {
            let mut s = Scanner::new(watch(), 8192);
            s.state = State::LineStart;
            assert!(s.at_boundary());
            let mut at = 0;
            for part in stream.chunks(chunk) {
                for (i, &b) in part.iter().enumerate() {
                    s.feed(&[b]);
                    let here = at + i + 1;
                    if chunk == 1 {
                        assert_eq!(s.at_boundary(), ends.contains(&here), "after byte {here}");
                    }
                }
                at += part.len();
            }
            assert!(s.at_boundary(), "chunk {chunk}");
        }
        // Whole parts at once end where they should too.
        let mut s = Scanner::new(watch(), 8192);
        for r in requests {
            s.feed(r);
            assert!(s.at_boundary(), "{}", String::from_utf8_lossy(r));
        }
        let mut s = Scanner::new(watch(), 8192);
        s.feed(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab");
        assert!(!s.at_boundary(), "inside a chunk");
    }

    #[test]
    fn targets_longer_than_the_limit_are_not_followed_in_any_chunking() {
        let stream = b"GET /abcdef#x HTTP/1.1\r\n\r\nGET /abcd#y HTTP/1.1\r\n\r\n";
        for chunk in [1, 5, stream.len()] {
            let w = watch();
            let mut s = Scanner::new(w.clone(), 5);
            for part in stream.chunks(chunk) {
                s.feed(part);
            }
            assert!(fragment(&w, http::Method::GET, "/abcd"), "chunk {chunk}");
            assert!(!fragment(&w, http::Method::GET, "/abcdef"), "chunk {chunk}");
            assert!(s.at_boundary());
        }
    }

    #[test]
    fn h2_header_blocks_open_and_close() {
        let w = watch();
        let mut s = Scanner::new(w.clone(), 8192);
        s.feed(H2_PREFACE);
        assert_eq!(s.state, State::FrameHeader(0));
        // SETTINGS (empty), then HEADERS without END_HEADERS carrying 3 bytes.
        s.feed(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        s.feed(&[0, 0, 3, 0x1, 0x1, 0, 0, 0, 1, 0xAA, 0xBB]);
        assert_eq!(s.state, State::Payload(1));
        s.feed(&[0xCC]);
        assert!(w.header_block_open());
        // CONTINUATION with END_HEADERS closes it.
        s.feed(&[0, 0, 1, 0x9, 0x4, 0, 0, 0, 1, 0xDD]);
        assert!(!w.header_block_open());
        assert_eq!(s.state, State::FrameHeader(0));
    }

    /// After an idle wait the connection is HTTP/1 at a request boundary: bytes that look
    /// like the HTTP/2 preface are a request line, not a protocol switch.
    #[test]
    fn a_resumed_scanner_is_at_a_boundary_and_reads_http1_only() {
        let w = watch();
        let mut s = Scanner::resumed(w.clone(), 8192);
        assert!(s.at_boundary());
        s.feed(b"PRI * HTTP/2.0\r\n\r\n");
        assert!(s.at_boundary(), "{:?}", s.state);
        assert!(!w.header_block_open());
        s.feed(b"GET /r#x HTTP/1.1\r\nContent-Length: 2\r\n\r\nab");
        assert!(s.at_boundary());
        assert!(fragment(&w, http::Method::GET, "/r"));
    }
}
