//! A deadline on the bytes the server reads before hyper's own header timer
//! starts (design §13, slow clients).
//!
//! hyper-util's `auto` builder first reads up to 24 bytes to tell HTTP/1 from
//! the HTTP/2 preface, with no timeout of its own; hyper's
//! `header_read_timeout` only starts once the HTTP/1 connection polls for a
//! head. A client that connects and sends nothing, or trickles a prefix of
//! the HTTP/2 preface, would hold a connection (and a `gate.max_connections`
//! slot) forever. [`SniffDeadline`] fails reads with `TimedOut` once the
//! deadline passes, until the bytes read so far stop matching the preface
//! (HTTP/1: hyper's header timer takes over) or the whole preface has been
//! read (HTTP/2: the deadlines of `proxy::conn_watch` take over). Used only by
//! `proxy::server`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pin_project_lite::pin_project! {
    /// An I/O stream whose reads time out until the protocol is known.
    pub struct SniffDeadline<T> {
        #[pin]
        io: T,
        // `None` once disarmed.
        deadline: Option<Pin<Box<Sleep>>>,
        // Bytes read so far, while they all match the preface.
        matched: usize,
    }
}

impl<T> SniffDeadline<T> {
    pub fn new(io: T, timeout: Duration) -> SniffDeadline<T> {
        SniffDeadline { io, deadline: Some(Box::pin(tokio::time::sleep(timeout))), matched: 0 }
    }

    /// A stream whose protocol is already known (an HTTP/1 connection resumed after an
    /// idle wait): reads never time out here.
    pub fn disarmed(io: T) -> SniffDeadline<T> {
        SniffDeadline { io, deadline: None, matched: 0 }
    }

    pub fn into_inner(self) -> T {
        self.io
    }
}

/// Whether bytes read after `matched` preface bytes settle the protocol.
fn settles(matched: usize, read: &[u8]) -> (bool, usize) {
    let rest = H2_PREFACE.get(matched..).unwrap_or_default();
    let n = read.len().min(rest.len());
    if read.get(..n) != rest.get(..n) {
        return (true, matched); // not the preface: HTTP/1
    }
    let matched = matched + n;
    (matched >= H2_PREFACE.len(), matched)
}

impl<T: AsyncRead> AsyncRead for SniffDeadline<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let Some(deadline) = this.deadline.as_mut() else {
            return this.io.poll_read(cx, buf);
        };
        let before = buf.filled().len();
        match this.io.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let (done, matched) = settles(*this.matched, buf.filled().get(before..).unwrap_or_default());
                *this.matched = matched;
                if done || buf.filled().len() == before {
                    *this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no request head before the deadline")))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

// Writes pass straight through: only the read side is watched.
super::write_passthrough!(SniffDeadline);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_settles_on_the_first_byte_off_the_preface_or_the_whole_preface() {
        let rows: &[(usize, &[u8], (bool, usize))] = &[
            (0, b"GET / HTTP/1.1\r\n", (true, 0)),
            (0, b"P", (false, 1)),
            (1, b"OST / HTTP/1.1", (true, 1)),
            (0, b"PRI * HTTP/2.0\r\n", (false, 16)),
            (16, b"\r\nSM\r\n\r\n", (true, 24)),
            (0, H2_PREFACE, (true, 24)),
            (0, b"", (false, 0)),
        ];
        for (matched, read, want) in rows {
            assert_eq!(settles(*matched, read), *want, "{matched} {read:?}");
        }
    }

    #[tokio::test]
    async fn silent_peer_times_out_and_http1_disarms() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64);
        let mut s = SniffDeadline::new(server, Duration::from_millis(200));
        let mut buf = [0u8; 8];
        let err = s.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        // HTTP/1 bytes disarm it: later silence is hyper's business.
        let (mut client2, server2) = tokio::io::duplex(64);
        let mut s2 = SniffDeadline::new(server2, Duration::from_millis(200));
        client2.write_all(b"GET").await.unwrap();
        assert_eq!(s2.read(&mut buf).await.unwrap(), 3);
        let waited = tokio::time::timeout(Duration::from_secs(1), s2.read(&mut buf)).await;
        assert!(waited.is_err(), "a disarmed stream still timed out");
        drop(client);
    }
}
