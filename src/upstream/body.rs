//! The upstream response body: hyper's body, carrying the connection it arrived on until
//! the body ends. At the end the connection goes back to the pool; a body dropped before
//! its end (client gone, error) drops the connection with it, which closes it, since
//! hyper would have to read the rest first.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use super::pool::Pool;
use super::Sender;

pub struct Body {
    inner: Incoming,
    /// The connection to pool once `inner` ends.
    conn: Option<(Sender, Arc<Pool>)>,
}

impl Body {
    /// `inner` from the connection `tx` (`None`: not reusable). An empty body's connection
    /// is pooled at once.
    pub(super) fn new(inner: Incoming, tx: Option<Sender>, pool: &Arc<Pool>) -> Body {
        let conn = match tx {
            Some(tx) if http_body::Body::is_end_stream(&inner) => {
                pool.put(tx);
                None
            }
            Some(tx) => Some((tx, pool.clone())),
            None => None,
        };
        Body { inner, conn }
    }

    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take() {
            pool.put(tx);
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            // The end, or the last frame of a body of known length (whose reader may stop
            // polling here: hyper's server does).
            None => this.release(),
            Some(Ok(_)) if this.inner.is_end_stream() => this.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => this.conn = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
