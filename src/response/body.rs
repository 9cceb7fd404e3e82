//! The response body type of the gate: either the upstream's streamed body or
//! a small body the gate wrote itself. An enum instead of `BoxBody` so the
//! common path does not allocate a box per response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::upstream::Body as UpstreamBody;

pin_project_lite::pin_project! {
    #[project = GateBodyProj]
    pub enum GateBody {
        Upstream { #[pin] inner: UpstreamBody },
        Local { #[pin] inner: Full<Bytes> },
    }
}

impl GateBody {
    pub fn local(bytes: impl Into<Bytes>) -> Self {
        GateBody::Local { inner: Full::new(bytes.into()) }
    }

    pub fn empty() -> Self {
        GateBody::Local { inner: Full::new(Bytes::new()) }
    }

    pub fn upstream(inner: UpstreamBody) -> Self {
        GateBody::Upstream { inner }
    }
}

impl Body for GateBody {
    type Data = Bytes;
    type Error = crate::upstream::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            GateBodyProj::Upstream { inner } => inner.poll_frame(cx),
            GateBodyProj::Local { inner } => match inner.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GateBody::Upstream { inner } => inner.is_end_stream(),
            GateBody::Local { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GateBody::Upstream { inner } => inner.size_hint(),
            GateBody::Local { inner } => inner.size_hint(),
        }
    }
}
