//! The gate's own HTTP/1.1 server for the common request: a `GET` or `HEAD` without a
//! body (used by `proxy::connection`, which hands everything else to hyper).
//!
//! Each busy period of an HTTP/1 connection starts here, with the bytes already read
//! (the sniffed ones, or those left after earlier requests). A request head is read into
//! one buffer and parsed by `httparse` (hyper's parser, in its default strict mode). The
//! request is served here only when every rule below holds; otherwise hyper serves it,
//! and every request after it until the connection's next idle wait, from the very bytes
//! read so far, so hyper's answers (400, 414, 431, timeouts) and the tap's findings (a
//! raw `#`, body framing) stay exactly what they are without the fast path:
//!
//! * the head is complete within `gate.max_header_bytes` and at most [`MAX_HEADERS`] (and
//!   `gate.max_headers`) header lines, and `httparse` accepts it (no obs-fold, no bytes
//!   outside the grammar);
//! * `HTTP/1.1`; method `GET` or `HEAD`;
//! * the target is origin-form (`/…`) or absolute-form (`http://…`, `https://…`; the
//!   pipeline's `target::check` decides on it as for any other request), within
//!   `gate.max_uri_bytes`, without a raw `#`, and a valid `http::Uri`;
//! * no `Transfer-Encoding`, no `Expect`, no `Upgrade`, no `Connection: upgrade`, and no
//!   `Content-Length` other than one `Content-Length: 0`: the request has no body, so no
//!   framing is ever guessed;
//! * every header name and value is valid for the `http` crate.
//!
//! A served request goes through `pipeline::handle` exactly like one hyper read (the same
//! [`Handler`]: counted by the connection's watch, its response body kept open in a
//! `WatchedBody`); `respond` writes the answer as hyper would. Pipelined bytes after a
//! head stay in the buffer for the next one. The header read timeout runs from the end
//! of the previous response (or from the end of sniffing) until a head is complete; a
//! drain (`stop`) closes a connection waiting for a head and ends one serving a request
//! after its response (with `Connection: close`), like hyper's graceful shutdown.
//!
//! Once everything read is answered and a read finds nothing more waiting, the buffers
//! are dropped and the connection goes back to its idle wait (holding only its socket;
//! `prt_gate_connections_busy` counts the others). That read also clears the socket's
//! readiness, so the idle wait does not wake at once for bytes already served. A client
//! that sends back to back (it came back within [`PARK_GRACE`] of an earlier idle wait)
//! is patient: its period waits up to that long for the next head before going idle, on
//! the period's one timer, which is only moved when it fires early — no timer update per
//! request.

mod respond;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::ConnInfo;
use super::conn_watch::WatchedBody;
use super::request_body::RequestBody;
use super::tap::PARK_GRACE;
use super::{pipeline, Gate};
use crate::response::GateBody;

/// Header lines the fast path parses (on the stack); a head with more goes to hyper,
/// which applies `gate.max_headers`.
pub const MAX_HEADERS: usize = 64;

/// Bytes read at a time into the head buffer.
const READ_CHUNK: usize = 4096;

/// The HTTP/1 limits the fast path applies (the same as hyper's, `proxy::server`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
}

/// One request on the connection, from its head to its response: the pipeline, with the
/// request counted by the connection's watch and its stream open until the response body
/// is done. hyper's service and the fast path both call it.
#[derive(Clone)]
pub struct Handler {
    pub gate: Arc<Gate>,
    pub info: Arc<ConnInfo>,
}

pub type Answer = Response<WatchedBody<GateBody>>;

impl Handler {
    pub fn handle(&self, req: Request<RequestBody>) -> impl Future<Output = Answer> + Send + 'static {
        let (g, c) = (self.gate.clone(), self.info.clone());
        // The stream is open from here until its response body is done.
        let open = c.watch.stream();
        async move { pipeline::handle(g, c, req).await.map(|b| WatchedBody::new(b, open)) }
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Handler {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let answer = self.handle(req.map(RequestBody::from));
        // Boxed per request: hyper keeps one allocation of this future's size for its
        // connection's life, and the pipeline's state is kilobytes.
        Box::pin(async move { Ok(answer.await) })
    }
}

/// How a fast-path period ended.
pub enum Outcome {
    /// Everything read was answered and the socket has nothing more for now (a read
    /// would wait, so its readiness is cleared): the connection waits idle for its next
    /// request, due by the `Instant`.
    Idle(TcpStream, Instant),
    /// hyper serves from here, these bytes first (they start at a request boundary); the
    /// next head is due by `head_by`.
    Hyper { tcp: TcpStream, pre: Bytes, head_by: Instant },
    /// The connection is done (closed by the client, a timeout, an error, a drain, or
    /// `Connection: close`).
    Closed,
}

/// A head read and checked by the fast path (a transient value: the request moves on at
/// once, so it is not boxed).
#[allow(clippy::large_enum_variant)]
enum Head {
    /// Served here: the request and whether the client asked to close after it.
    Take(Request<RequestBody>, bool),
    /// Not complete yet (and within the limits).
    Partial,
    /// For hyper.
    Hyper,
}

/// Serves requests from `pre` and `tcp` until the connection idles, closes, or a request
/// needs hyper. `head_by`: when the next head must be complete. `patient`: the client
/// sends back to back (it came back within [`PARK_GRACE`] of an idle wait before), so
/// after a response the period waits that long for its next head before going idle.
pub async fn serve(
    mut tcp: TcpStream,
    pre: Bytes,
    mut head_by: Instant,
    patient: bool,
    h: &Handler,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    if *stop.borrow() {
        let _ = tcp.shutdown().await;
        return Outcome::Closed;
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK.max(pre.len()));
    buf.extend_from_slice(&pre);
    drop(pre);
    let mut out = Vec::with_capacity(respond::HEAD_ROOM);
    // The period's one timer, for each wait's deadline (`due`): the head's, or a patient
    // client's grace. It is only ever moved earlier here (at most `armed`); when it fires
    // before the deadline in force it is set to that, so a client sending back to back
    // costs no timer update per request.
    let timer = tokio::time::sleep_until(head_by);
    tokio::pin!(timer);
    let mut armed = head_by;
    loop {
        let (req, close) = loop {
            if !buf.is_empty() {
                match parse(&mut buf, limits) {
                    Head::Take(req, close) => break (req, close),
                    Head::Partial if buf.len() < limits.max_header_bytes => {}
                    Head::Partial | Head::Hyper => return Outcome::Hyper { tcp, pre: buf.freeze(), head_by },
                }
            }
            if buf.capacity() == buf.len() {
                buf.reserve(READ_CHUNK);
            }
            // Bytes already waiting (the usual case after the idle wait): no timer needed.
            let due = match tcp.try_read_buf(&mut buf) {
                Ok(0) => return Outcome::Closed,
                Ok(_) => continue,
                // Nothing read and nothing waiting: idle (after a response, or a wake with
                // nothing to read), without holding this period's buffers — at once, or,
                // for a patient client, if its next head has not begun within
                // `PARK_GRACE` of the last response.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && buf.is_empty() => {
                    let grace = head_by.checked_sub(limits.header_read_timeout).map(|end| end + PARK_GRACE);
                    match grace {
                        Some(until) if patient && until < head_by => until,
                        _ => return Outcome::Idle(tcp, head_by),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => head_by,
                Err(_) => return Outcome::Closed,
            };
            if due < armed {
                timer.as_mut().reset(due);
                armed = due;
            }
            let read = tokio::select! {
                r = read_more(&tcp, &mut buf) => r,
                () = &mut timer => {
                    if Instant::now() < due {
                        // Set for an earlier deadline: wait on.
                        timer.as_mut().reset(due);
                        armed = due;
                        continue;
                    }
                    // The grace is over: idle. The head is late: closed without a word,
                    // as hyper closes a connection whose head is late.
                    match buf.is_empty() {
                        true => return Outcome::Idle(tcp, head_by),
                        false => return Outcome::Closed,
                    }
                }
                _ = stop.changed() => {
                    let _ = tcp.shutdown().await;
                    return Outcome::Closed;
                }
            };
            match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        };
        let head = req.method() == Method::HEAD;
        // `Handler::handle`, inline: one future fewer to build and move per request.
        let open = h.info.watch.stream();
        let answer = pipeline::handle(h.gate.clone(), h.info.clone(), req).await.map(|b| WatchedBody::new(b, open));
        // A drain that began while the request was served ends the connection after it.
        let close = close || *stop.borrow();
        let keep = respond::write(&mut tcp, &mut out, answer, head, close).await;
        if !keep {
            let _ = tcp.shutdown().await;
            return Outcome::Closed;
        }
        // The next head is due from here; with nothing buffered, one read finds out
        // whether the client already sent it (a read that would wait also clears the
        // socket's readiness, so the idle wait does not wake for bytes already served).
        head_by = Instant::now() + limits.header_read_timeout;
    }
}

/// Reads what the socket has into `buf`'s spare capacity (0: end of input).
async fn read_more(tcp: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        tcp.readable().await?;
        match tcp.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Parses the head at the start of `buf`; a taken head is removed from it.
fn parse(buf: &mut BytesMut, limits: &Limits) -> Head {
    // The request's parts share the buffer's bytes (as hyper's do): it is frozen for the
    // parse, and whatever is not taken becomes the buffer again.
    let all = std::mem::take(buf).freeze();
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let lines = headers.get_mut(..limits.max_headers.min(MAX_HEADERS)).unwrap_or_default();
    let mut req = httparse::Request::new(&mut []);
    let head = match req.parse_with_uninit_headers(&all, lines) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_header_bytes => {
            check(&req, limits).and_then(|close| build(&all, &req, close)).map(|head| (len, head))
        }
        Ok(httparse::Status::Partial) => {
            *buf = BytesMut::from(all);
            return Head::Partial;
        }
        // Errors, too many header lines, a head over the limit: hyper answers them.
        _ => None,
    };
    match head {
        Some((len, head)) => {
            let rest = all.get(len..).unwrap_or_default();
            if !rest.is_empty() {
                *buf = BytesMut::from(rest);
            }
            head
        }
        None => {
            *buf = BytesMut::from(all);
            Head::Hyper
        }
    }
}

/// The rules of the module documentation on a parsed head (no allocation): `Some` with
/// whether the client asked to close the connection after this request.
fn check(req: &httparse::Request<'_, '_>, limits: &Limits) -> Option<bool> {
    if req.version != Some(1) || !matches!(req.method, Some("GET" | "HEAD")) {
        return None;
    }
    let target = req.path?;
    let origin = target.starts_with('/');
    let absolute =
        ["http://", "https://"].iter().any(|s| target.get(..s.len()).is_some_and(|t| t.eq_ignore_ascii_case(s)));
    if !(origin || absolute) || target.len() > limits.max_uri_bytes || target.contains('#') {
        return None;
    }
    let mut close = false;
    let mut content_length = false;
    for hdr in req.headers.iter() {
        let name = hdr.name.as_bytes();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("transfer-encoding") || is("expect") || is("upgrade") {
            return None;
        }
        if is("content-length") {
            if content_length || hdr.value != b"0" {
                return None;
            }
            content_length = true;
        }
        if is("connection") {
            for token in hdr.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"upgrade") {
                    return None;
                }
                close |= token.eq_ignore_ascii_case(b"close");
            }
        }
    }
    Some(close)
}

/// Header lines the pipeline adds to a request on its way upstream (`X-Forwarded-*`,
/// `Host`, `X-Request-Id`, identity): room for them from the start.
const ADDED_HEADERS: usize = 12;

/// The request, its pieces sharing `all`'s bytes.
fn build(all: &Bytes, req: &httparse::Request<'_, '_>, close: bool) -> Option<Head> {
    let method = if req.method? == "HEAD" { Method::HEAD } else { Method::GET };
    let uri = Uri::from_maybe_shared(all.slice_ref(req.path?.as_bytes())).ok()?;
    let mut map = HeaderMap::with_capacity(req.headers.len() + ADDED_HEADERS);
    for hdr in req.headers.iter() {
        let name = HeaderName::from_bytes(hdr.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_maybe_shared(all.slice_ref(hdr.value)).ok()?);
    }
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = map;
    Some(Head::Take(Request::from_parts(parts, RequestBody::Empty), close))
}

#[cfg(test)]
mod tests;
