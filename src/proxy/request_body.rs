//! The request body the pipeline forwards (`outbound`, then `crate::upstream::Upstream::send`):
//! hyper's body for requests hyper read (HTTP/2, and HTTP/1 requests that may carry a
//! body), or none at all for the body-less HTTP/1 requests the gate reads itself
//! ([`super::fast_path`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    #[project = RequestBodyProj]
    pub enum RequestBody {
        /// No body: a `GET` or `HEAD` without `Content-Length` (or with `Content-Length: 0`)
        /// and without `Transfer-Encoding`.
        Empty,
        Hyper { #[pin] inner: Incoming },
    }
}

impl From<Incoming> for RequestBody {
    fn from(inner: Incoming) -> RequestBody {
        RequestBody::Hyper { inner }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            RequestBodyProj::Empty => Poll::Ready(None),
            RequestBodyProj::Hyper { inner } => inner.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Hyper { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Hyper { inner } => inner.size_hint(),
        }
    }
}
