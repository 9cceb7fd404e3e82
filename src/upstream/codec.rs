//! The HTTP/1.1 wire format of the upstream client, without I/O: the request head, the
//! response head (`httparse`) with its body framing (RFC 9112 §6.3), and the chunked
//! decoder.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, response, StatusCode, Version};

use super::Error;

/// How many header slots live on the stack while a response head is parsed; a larger
/// `gate.max_headers` takes them from the heap.
const STACK_HEADERS: usize = 100;

/// A chunk-size line or a trailer line longer than this is refused.
const MAX_CHUNK_LINE: usize = 4096;

/// Response head limits: `gate.max_header_bytes` and `gate.max_headers`, the same as for
/// the client's request heads.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_head: usize,
    pub max_headers: usize,
}

/// How the request body goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (the declared or known `Content-Length`) are still due.
    Length(u64),
    /// Unknown length: chunked.
    Chunked,
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `HEAD`, `1xx`, `204`, `304`: no body whatever the headers say.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes: the connection cannot be reused.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub parts: response::Parts,
    pub framing: Framing,
    /// The connection may carry another request after this response (HTTP/1.1, no
    /// `Connection: close`, a body with a known end).
    pub reusable: bool,
}

/// Writes the request head for `parts` into a buffer of exactly its size plus `extra`
/// (room for the first body chunk's size line), and says how the body goes: the declared
/// `Content-Length`, else nothing for an ended body, else its exact size, else chunked.
/// The request's own `Content-Length` and `Transfer-Encoding` lines are replaced by the one
/// framing line written here.
pub fn encode_head(
    parts: &request::Parts,
    body_ended: bool,
    body_exact: Option<u64>,
    extra: usize,
) -> Result<(Vec<u8>, Outgoing), Error> {
    let method = parts.method.as_str();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut declared = None;
    let mut size = method.len() + target.len() + " HTTP/1.1\r\n".len() + 1 + "\r\n".len() + extra;
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            let n = content_length(value.as_bytes()).ok_or(Error::Request("invalid content-length"))?;
            if declared.is_some_and(|d| d != n) {
                return Err(Error::Request("differing content-length values"));
            }
            declared = Some(n);
        } else if *name != header::TRANSFER_ENCODING {
            size += name.as_str().len() + 2 + value.len() + 2;
        }
    }
    let outgoing = match (declared, body_ended, body_exact) {
        (Some(n), _, _) => Outgoing::Length(n),
        (None, true, _) => Outgoing::Empty,
        (None, false, Some(n)) => Outgoing::Length(n),
        (None, false, None) => Outgoing::Chunked,
    };
    let mut digits = [0u8; 20];
    let length = match outgoing {
        Outgoing::Length(n) => crate::jsonw::decimal(n, &mut digits),
        _ => &[][..],
    };
    size += match outgoing {
        Outgoing::Empty => 0,
        Outgoing::Length(_) => "content-length: \r\n".len() + length.len(),
        Outgoing::Chunked => "transfer-encoding: chunked\r\n".len(),
    };
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match outgoing {
        Outgoing::Empty => {}
        Outgoing::Length(_) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(length);
            out.extend_from_slice(b"\r\n");
        }
        Outgoing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    Ok((out, outgoing))
}

/// A chunk's size line (`{hex}\r\n`) for `len` bytes, in `buf`'s tail.
pub fn chunk_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len() - 2;
    buf[i..].copy_from_slice(b"\r\n");
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// A `Content-Length` value: digits only, or a list of equal ones (`5, 5`, which some
/// servers send after merging headers). None for anything else, or a value beyond `u64`.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for part in value.split(|b| *b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// Where each parsed header sits in the head: name start and end, value start and end.
type Spans = [u32; 4];

/// Parses a response head from the start of `buf`; on success the head's bytes are taken
/// out of `buf` (the body's first bytes stay). `Ok(None)`: incomplete, read more. A head
/// beyond the limits, or one that is not HTTP/1.x, is an error.
pub fn parse_head(buf: &mut BytesMut, limits: Limits, head_request: bool) -> Result<Option<Head>, Error> {
    let mut stack = [[0u32; 4]; STACK_HEADERS];
    let mut heap = Vec::new();
    let spans: &mut [Spans] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap.resize(limits.max_headers, [0u32; 4]);
        &mut heap
    };
    let Some((len, version, code, count)) = parse_spans(buf, limits, spans)? else {
        return Ok(None);
    };
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code).map_err(|_| Error::Malformed("status code"))?;
    let mut headers = HeaderMap::with_capacity(count);
    let mut te = None;
    let mut length: Option<u64> = None;
    let mut close = version == Version::HTTP_10;
    for &[ns, ne, vs, ve] in &spans[..count] {
        let name =
            HeaderName::from_bytes(&head[ns as usize..ne as usize]).map_err(|_| Error::Malformed("header name"))?;
        let value = head.slice(vs as usize..ve as usize);
        if name == header::TRANSFER_ENCODING {
            // The last coding of the last field is what frames the body.
            let last = value.rsplit(|b| *b == b',').next().unwrap_or_default().trim_ascii();
            te = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if name == header::CONTENT_LENGTH {
            let n = content_length(&value).ok_or(Error::Malformed("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Malformed("differing content-length values"));
            }
            length = Some(n);
        } else if name == header::CONNECTION {
            close |= value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        let value = HeaderValue::from_maybe_shared(value).map_err(|_| Error::Malformed("header value"))?;
        headers.append(name, value);
    }
    let framing = match (te, length) {
        // A message with both is how requests get smuggled: never trusted.
        (Some(_), Some(_)) => return Err(Error::Malformed("both transfer-encoding and content-length")),
        _ if head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED =>
        {
            Framing::Empty
        }
        (Some(true), None) => Framing::Chunked,
        (Some(false), None) | (None, None) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
    };
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    let reusable = !close && framing != Framing::Close;
    Ok(Some(Head { parts, framing, reusable }))
}

/// httparse over `buf`: the head's length, version, status code and header count, each
/// header's place in `spans`.
fn parse_spans(buf: &[u8], limits: Limits, spans: &mut [Spans]) -> Result<Option<(usize, Version, u16, usize)>, Error> {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; STACK_HEADERS] =
        [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if spans.len() <= STACK_HEADERS {
        &mut slots[..spans.len()]
    } else {
        heap.resize_with(spans.len(), MaybeUninit::uninit);
        &mut heap
    };
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_head => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.max_head => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(Error::TooLarge),
        Err(e) => return Err(Error::Parse(e)),
    };
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let code = resp.code.unwrap_or_default();
    let base = buf.as_ptr() as usize;
    // The head is at most `max_head` (≤ 1 MiB) long: every offset fits in a u32.
    let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
    for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
        let (ns, vs) = (at(h.name.as_bytes()), at(h.value));
        *span = [ns, ns + h.name.len() as u32, vs, vs + h.value.len() as u32];
    }
    Ok(Some((len, version, code, resp.headers.len())))
}

/// The strict chunked decoder: hex sizes (overflow refused), extensions skipped, every
/// CRLF where it belongs, trailers read and dropped.
#[derive(Debug)]
pub struct Chunked {
    state: ChunkState,
    /// Trailer bytes so far (bounded by the head limit).
    trailers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// What [`Chunked::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// Read more, then call again.
    NeedMore,
    /// The last chunk and the trailers are read; nothing of the buffer past them was used.
    End,
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked { state: ChunkState::Size, trailers: 0 }
    }

    /// Decodes what `buf` holds, taking the bytes it uses out of it.
    pub fn decode(&mut self, buf: &mut BytesMut, limits: Limits) -> Result<Decoded, Error> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(buf)? else { return Ok(Decoded::NeedMore) };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 { ChunkState::Trailers } else { ChunkState::Data(size) };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::Malformed("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buf)? else { return Ok(Decoded::NeedMore) };
                    self.trailers += line.len() + 2;
                    if self.trailers > limits.max_head {
                        return Err(Error::TooLarge);
                    }
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// One CRLF-terminated line off the front of `buf`, without its CRLF; a bare CR or LF in
/// it, or a line too long, is an error.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
    let Some(lf) = memchr::memchr(b'\n', buf) else {
        return match buf.len() > MAX_CHUNK_LINE {
            true => Err(Error::TooLarge),
            false => Ok(None),
        };
    };
    if lf > MAX_CHUNK_LINE || lf == 0 || buf[lf - 1] != b'\r' || memchr::memchr(b'\r', &buf[..lf - 1]).is_some() {
        return Err(Error::Malformed("chunk line not ended by CRLF"));
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// A chunk-size line: hex digits, then nothing or optional whitespace and `;` extensions.
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(Error::Malformed("chunk size"));
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest.first() == Some(&b';')) {
        return Err(Error::Malformed("chunk size"));
    }
    line[..digits].iter().try_fold(0u64, |n, d| {
        let v = (*d as char).to_digit(16).map(u64::from).unwrap_or_default();
        n.checked_mul(16).and_then(|n| n.checked_add(v)).ok_or(Error::Malformed("chunk size overflows"))
    })
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
