//! The fast path's response writer: what hyper's HTTP/1 server writes for the same
//! response, with the body's framing decided once and kept.
//!
//! * The status line (`HTTP/1.1 200 OK`; an unknown code gets the reason `<none>`), then
//!   the headers as given (lowercase names), then the framing header, `connection: close`
//!   when the connection ends after this response, and `date` (cached per second) unless
//!   the response has one.
//! * Framing: a body of exact length (`size_hint`) gets `content-length` with that length;
//!   a body of unknown length keeps a single valid `content-length` the response carries,
//!   otherwise it is sent chunked. Any `transfer-encoding` or other `content-length`
//!   header is dropped: the gate alone frames what it writes. Exactly the declared number
//!   of bytes is written: a body that ends short, runs long or fails closes the connection
//!   after what was written (the client sees a truncated message, never a second one).
//! * No body bytes for `HEAD`, `204` and `304`; their `content-length` is the response's
//!   own (for `HEAD`, else the body's exact length, as hyper does; never on a `204`).
//! * The head and the first body bytes go out in one write when the body is ready; a body
//!   still waiting (an upstream streaming) gets what is buffered flushed first.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::Write;
use std::pin::pin;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The write buffer's first size: a head and a small body.
pub const HEAD_ROOM: usize = 2048;

/// Body bytes gathered behind the head (or earlier chunks) before a write.
const GATHER: usize = 16 * 1024;

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body bytes (`HEAD`, `204`, `304`).
    None,
    Length(u64),
    Chunked,
}

/// Writes `resp` (the answer to a `HEAD` request when `head`). `close`: the connection
/// ends after it (`connection: close` is added). Whether the connection may serve another
/// request; `out` is the connection's write buffer, reused.
pub async fn write<B>(tcp: &mut TcpStream, out: &mut Vec<u8>, resp: Response<B>, head: bool, close: bool) -> bool
where
    B: Body<Data = Bytes>,
{
    let (parts, body) = resp.into_parts();
    out.clear();
    let Some((framing, close)) = encode_head(out, &parts, &body, head, close) else {
        return false;
    };
    let mut body = pin!(body);
    let mut left = match framing {
        Framing::None => {
            // Not polled: dropped unread, as hyper drops it.
            return tcp.write_all(out).await.is_ok() && !close;
        }
        Framing::Length(n) => Some(n),
        Framing::Chunked => None,
    };
    let mut complete = true;
    loop {
        // A ready frame joins the buffer; before waiting for one, what is buffered goes out.
        let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if !out.is_empty() && flush(tcp, out).await.is_err() {
                    return false;
                }
                poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
            Some(Err(_)) => {
                complete = false;
                break;
            }
        };
        if data.is_empty() {
            continue;
        }
        let len = data.len() as u64;
        match left.as_mut() {
            Some(l) if len > *l => {
                complete = false;
                break;
            }
            Some(l) => *l -= len,
            None => {
                let _ = write!(out, "{:x}\r\n", data.len());
            }
        }
        if out.len() + data.len() <= GATHER {
            out.extend_from_slice(&data);
        } else if flush(tcp, out).await.is_err() || tcp.write_all(&data).await.is_err() {
            return false;
        }
        if left.is_none() {
            out.extend_from_slice(b"\r\n");
        }
    }
    let complete = complete && left.is_none_or(|l| l == 0);
    if complete && left.is_none() {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    // An incomplete body: what was written goes out, then the connection closes.
    flush(tcp, out).await.is_ok() && complete && !close
}

async fn flush(tcp: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<()> {
    let r = tcp.write_all(out).await;
    out.clear();
    r
}

/// The status line and headers into `out`; the body's framing and whether the connection
/// closes after this response. `None`: a response hyper would not write either (`1xx`).
fn encode_head<B: Body>(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &B,
    head: bool,
    mut close: bool,
) -> Option<(Framing, bool)> {
    let status = parts.status;
    if status.is_informational() {
        return None;
    }
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut lengths = parts.headers.get_all(header::CONTENT_LENGTH).iter();
    let declared = match (lengths.next(), lengths.next()) {
        (Some(v), None) => parse_length(v),
        _ => None,
    };
    let mut dated = false;
    let mut said_close = false;
    for (name, value) in &parts.headers {
        match *name {
            header::CONTENT_LENGTH | header::TRANSFER_ENCODING => continue,
            header::CONNECTION => {
                let c = value.as_bytes().split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
                said_close |= c;
                close |= c;
            }
            header::DATE => dated = true,
            _ => {}
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let exact = if body.is_end_stream() { Some(0) } else { body.size_hint().exact() };
    let no_body = head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let (framing, length) = if no_body {
        let length = match status {
            StatusCode::NO_CONTENT => None,
            StatusCode::NOT_MODIFIED => declared,
            // HEAD: the length a GET would get (an empty body says nothing about it).
            _ => declared.or(exact.filter(|n| *n > 0)),
        };
        (Framing::None, length)
    } else {
        match exact.or(declared) {
            Some(n) => (Framing::Length(n), Some(n)),
            None => (Framing::Chunked, None),
        }
    };
    match (framing, length) {
        (Framing::Chunked, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (_, Some(n)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (_, None) => {}
    }
    if close && !said_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some((framing, close))
}

/// A `content-length` value: digits only, no sign, no list.
fn parse_length(v: &HeaderValue) -> Option<u64> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

thread_local! {
    /// The `date` value of the current second (per runtime thread).
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Today's `date` value (IMF-fixdate), formatted once per second.
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(d.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_plain_digits() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(parse_length(&v("12")), Some(12));
        for bad in ["", "+1", "1,1", " 1", "0x10", "99999999999999999999"] {
            assert_eq!(parse_length(&v(bad)), None, "{bad:?}");
        }
    }
}
