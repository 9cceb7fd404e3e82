//! The upstream response body, read off its connection by whoever polls it (hyper's server,
//! in the client connection's task): no channel, no task in between. It also finishes
//! writing a request body the upstream answered before reading it all.
//!
//! At the body's end the connection goes back to the pool when it can carry another
//! exchange: the response was reusable (HTTP/1.1, no `Connection: close`, not delimited by
//! the close), nothing past its end arrived, and the whole request went out. A body
//! dropped before its end (client gone, error) drops the connection with it, which closes
//! it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::codec::{Chunked, Decoded, Framing, Limits};
use super::conn::{BoxedBody, Conn, Writer};
use super::pool::Pool;
use super::{BoxError, Error};

pub struct Body {
    /// The connection while the body is not over.
    conn: Option<Conn>,
    read: Read,
    reusable: bool,
    /// The rest of the request, when the response came first.
    writing: Option<Box<Writer<BoxedBody>>>,
    limits: Limits,
    pool: Arc<Pool>,
}

enum Read {
    /// This many bytes to go.
    Length(u64),
    Chunked(Chunked),
    Close,
}

impl Body {
    /// The body framed by `framing` on `conn`; `writer` is the request as far as it went.
    /// An empty body ends (and its connection is pooled or closed) at once.
    pub(super) fn new<B>(
        conn: Conn,
        framing: Framing,
        reusable: bool,
        writer: Writer<B>,
        limits: Limits,
        pool: &Arc<Pool>,
    ) -> Body
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let reusable = reusable && !writer.failed;
        let writing = (reusable && !writer.is_done()).then(|| Box::new(writer.boxed()));
        let read = match framing {
            Framing::Empty => Read::Length(0),
            Framing::Length(n) => Read::Length(n),
            Framing::Chunked => Read::Chunked(Chunked::new()),
            Framing::Close => Read::Close,
        };
        let mut body = Body { conn: Some(conn), read, reusable, writing, limits, pool: pool.clone() };
        if matches!(body.read, Read::Length(0)) {
            body.end();
        }
        body
    }

    fn end(&mut self) {
        end(&mut self.conn, self.reusable && self.writing.is_none(), &self.pool);
    }
}

/// The body is over: its connection goes back to the pool if it can serve again and
/// nothing past the body's end arrived.
fn end(slot: &mut Option<Conn>, reusable: bool, pool: &Pool) {
    if let Some(conn) = slot.take() {
        if reusable && conn.buf.is_empty() {
            pool.put(conn);
        }
    }
}

/// The body failed: the connection is closed.
fn fail(slot: &mut Option<Conn>, e: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
    *slot = None;
    Poll::Ready(Some(Err(e)))
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let Body { conn: slot, read, reusable, writing, limits, pool } = &mut *self;
        let Some(conn) = slot.as_mut() else { return Poll::Ready(None) };
        if let Some(writer) = writing.as_mut() {
            match writer.poll_write(&mut conn.stream, cx) {
                Poll::Ready(Ok(())) => *writing = None,
                // The response still comes; the connection is not reused.
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "upstream request body not fully written");
                    *writing = None;
                    *reusable = false;
                }
                Poll::Pending => {}
            }
        }
        let reusable = *reusable && writing.is_none();
        loop {
            let want = match read {
                Read::Length(0) => {
                    end(slot, reusable, pool);
                    return Poll::Ready(None);
                }
                Read::Length(left) if !conn.buf.is_empty() => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(conn.buf.len());
                    let data = conn.buf.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        end(slot, reusable, pool);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Read::Length(left) => *left,
                Read::Chunked(chunked) => match chunked.decode(&mut conn.buf, *limits) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End) => {
                        end(slot, reusable, pool);
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => 0,
                    Err(e) => return fail(slot, e),
                },
                Read::Close if !conn.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(conn.buf.split().freeze()))));
                }
                Read::Close => u64::MAX,
            };
            match ready!(conn.poll_fill(cx, want)) {
                Ok(0) if matches!(read, Read::Close) => {
                    *slot = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return fail(slot, Error::Closed),
                Ok(_) => {}
                Err(e) => return fail(slot, Error::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.read, Read::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.read {
            Read::Length(n) => SizeHint::with_exact(n),
            _ if self.conn.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
