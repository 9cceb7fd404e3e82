//! Per-connection facts that hyper does not give the gate, shared between the bytes read
//! from the client ([`super::tap`]), the requests served on the connection and a
//! watchdog that ends the connection.
//!
//! * **HTTP/2 bounds.** hyper bounds an HTTP/1 connection by its header read timeout, but
//!   an HTTP/2 client that sends the preface and SETTINGS and then nothing (acknowledging
//!   the gate's pings, as every HTTP/2 library does) would keep its connection, and a
//!   `gate.max_connections` slot, forever; so would a `HEADERS` frame never finished by
//!   `END_HEADERS` (hyper only sees a request once its header block is complete). The
//!   watchdog ([`ConnWatch::expired`]) closes an HTTP/2 connection that has had no
//!   request `gate.h2_first_request_timeout` after its preface, no open stream for
//!   `gate.h2_idle_timeout`, or a header block open for `gate.h2_header_block_timeout`.
//!   A stream is open from the moment hyper hands its request to the gate until its
//!   response body is finished or dropped ([`StreamGuard`]).
//! * **Raw `#` in an HTTP/1 request target.** The `http` crate drops a fragment while hyper
//!   parses the request line, before the gate sees the target. The tap reads the request
//!   lines as they arrive and records the `(method, target before '#')` of each that
//!   holds a `#`; the pipeline asks [`ConnWatch::take_fragment`] for every request and
//!   answers 400 when its line was one of them.
//!
//! The std `Mutex` is deliberate (the crate otherwise avoids it): the tap is synchronous
//! I/O code, the critical sections are a push or a short scan, and nothing awaits inside.

#![allow(clippy::disallowed_types)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The HTTP/2 deadlines (`gate.h2_*` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct H2Limits {
    pub first_request: Duration,
    pub idle: Duration,
    pub header_block: Duration,
}

/// Why the watchdog ended a connection (a log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    FirstRequest,
    Idle,
    HeaderBlock,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::FirstRequest => "h2_first_request_timeout",
            Expiry::Idle => "h2_idle_timeout",
            Expiry::HeaderBlock => "h2_header_block_timeout",
        }
    }
}

/// Request lines with a `#` seen on an HTTP/1 connection but not yet served. More than
/// this many pending (only a client's own bodies can hold that many look-alikes) and
/// every later request on the connection is refused: never silently forget one.
const MAX_PENDING_FRAGMENTS: usize = 16;

/// A request line with `#`: its method and the target before the `#`.
type Line = (Box<[u8]>, Box<[u8]>);

#[derive(Default)]
struct Fragments {
    pending: VecDeque<Line>,
    overflow: bool,
}

impl std::fmt::Debug for ConnWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnWatch").field("h2", &self.h2).field("active", &self.active).finish_non_exhaustive()
    }
}

pub struct ConnWatch {
    born: Instant,
    limits: H2Limits,
    h2: AtomicBool,
    active: AtomicUsize,
    served: AtomicBool,
    /// Requests handed to the gate on this connection so far.
    requests: AtomicU64,
    /// Milliseconds after `born` when the connection last had no open stream.
    idle_since: AtomicU64,
    /// Milliseconds after `born` + 1 when a header block opened; 0 when none is open.
    header_block_since: AtomicU64,
    notify: Notify,
    fragments: Mutex<Fragments>,
}

impl ConnWatch {
    pub fn new(limits: H2Limits) -> Arc<ConnWatch> {
        Arc::new(ConnWatch {
            born: Instant::now(),
            limits,
            h2: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            header_block_since: AtomicU64::new(0),
            notify: Notify::new(),
            fragments: Mutex::new(Fragments::default()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.born + Duration::from_millis(ms)
    }

    /// The tap read the whole HTTP/2 preface: the deadlines apply from now.
    pub fn h2_started(&self) {
        self.idle_since.store(self.now_ms(), Ordering::SeqCst);
        self.h2.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// A `HEADERS` (or `PUSH_PROMISE`) frame without `END_HEADERS` arrived (`open`), or
    /// the `CONTINUATION` that ends the block did.
    pub fn header_block(&self, open: bool) {
        let v = if open { self.now_ms().saturating_add(1) } else { 0 };
        // A block stays open from its first frame: a second HEADERS cannot restart it.
        if !open || self.header_block_since.load(Ordering::SeqCst) == 0 {
            self.header_block_since.store(v, Ordering::SeqCst);
        }
        self.notify.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn header_block_open(&self) -> bool {
        self.header_block_since.load(Ordering::SeqCst) != 0
    }

    /// A request is being served: the stream counts as open until the guard is dropped
    /// (keep it with the response body).
    pub fn stream(self: &Arc<Self>) -> StreamGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        if self.h2.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
        StreamGuard { watch: self.clone() }
    }

    /// Requests handed to the gate on this connection so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Whether requests came after the first `mark` and every one of them is answered
    /// (its response body finished or dropped).
    pub fn answered_since(&self, mark: u64) -> bool {
        self.active.load(Ordering::SeqCst) == 0 && self.requests() > mark
    }

    /// The earliest HTTP/2 deadline in force, if any.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        if !self.h2.load(Ordering::SeqCst) {
            return None;
        }
        let mut best: Option<(Instant, Expiry)> = None;
        let block = self.header_block_since.load(Ordering::SeqCst);
        if block != 0 {
            best = Some((self.at(block - 1) + self.limits.header_block, Expiry::HeaderBlock));
        }
        // `active` before `idle_since`: the guard stores the time first, then decrements.
        if self.active.load(Ordering::SeqCst) == 0 {
            let since = self.at(self.idle_since.load(Ordering::SeqCst));
            let idle = if self.served.load(Ordering::SeqCst) {
                (since + self.limits.idle, Expiry::Idle)
            } else {
                (since + self.limits.first_request, Expiry::FirstRequest)
            };
            best = Some(best.map_or(idle, |b| if idle.0 < b.0 { idle } else { b }));
        }
        best
    }

    /// Resolves when an HTTP/2 deadline passes (never for HTTP/1). The server races it
    /// against the connection and drops the connection when it wins.
    pub async fn expired(&self) -> Expiry {
        loop {
            match self.deadline() {
                None => self.notify.notified().await,
                Some((at, why)) => {
                    if at <= Instant::now() {
                        return why;
                    }
                    tokio::select! {
                        () = self.notify.notified() => {}
                        () = tokio::time::sleep_until(at.into()) => {}
                    }
                }
            }
        }
    }

    /// The tap saw an HTTP/1 request line `method target` whose target holds a `#`;
    /// `target` is the part before it.
    pub fn fragment_seen(&self, method: &[u8], target: &[u8]) {
        let mut f = self.fragments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.pending.len() >= MAX_PENDING_FRAGMENTS {
            f.overflow = true;
            return;
        }
        f.pending.push_back((method.into(), target.into()));
    }

    /// Whether the request `method uri` came with a `#` in its target: its request line is
    /// among those recorded (consumed with every line recorded before it, which were
    /// bodies of earlier requests). No allocation unless a line with `#` was seen.
    pub fn take_fragment(&self, method: &http::Method, uri: &http::Uri) -> bool {
        let mut f = self.fragments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.overflow {
            return true;
        }
        if f.pending.is_empty() {
            return false;
        }
        let target = uri.to_string();
        let found = f.pending.iter().position(|(m, t)| **m == *method.as_str().as_bytes() && **t == *target.as_bytes());
        match found {
            Some(i) => {
                f.pending.drain(..=i);
                true
            }
            None => false,
        }
    }
}

/// An open stream (see [`ConnWatch::stream`]).
pub struct StreamGuard {
    watch: Arc<ConnWatch>,
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream open (counted by the watch) until it is
    /// finished or dropped.
    pub struct WatchedBody<B> {
        #[pin]
        inner: B,
        guard: StreamGuard,
    }
}

impl<B> WatchedBody<B> {
    pub fn new(inner: B, guard: StreamGuard) -> WatchedBody<B> {
        WatchedBody { inner, guard }
    }
}

impl<B: http_body::Body> http_body::Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let w = &self.watch;
        // The time first, then the count: `deadline` reads them the other way round, so
        // whenever it sees no open stream, `idle_since` is no older than the last close.
        w.idle_since.store(w.now_ms(), Ordering::SeqCst);
        w.active.fetch_sub(1, Ordering::SeqCst);
        if w.h2.load(Ordering::SeqCst) {
            w.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ms: u64) -> H2Limits {
        let d = Duration::from_millis(ms);
        H2Limits { first_request: d, idle: d * 2, header_block: d }
    }

    /// Long enough, against the 50 ms limits, that an expiry would have happened.
    const QUIET: Duration = Duration::from_millis(400);

    #[tokio::test]
    async fn http1_never_expires_and_h2_deadlines_follow_streams() {
        let w = ConnWatch::new(limits(50));
        let pending = tokio::time::timeout(QUIET, w.expired()).await;
        assert!(pending.is_err(), "an HTTP/1 connection expired");

        w.h2_started();
        assert_eq!(w.expired().await, Expiry::FirstRequest);
        let guard = w.stream();
        assert!(tokio::time::timeout(QUIET, w.expired()).await.is_err(), "expired with a stream open");
        let t = Instant::now();
        drop(guard);
        assert_eq!(w.expired().await, Expiry::Idle);
        assert!(t.elapsed() >= Duration::from_millis(100), "idle limit is 100 ms: {:?}", t.elapsed());

        // A header block left open ends the connection even while a stream is open.
        let _open = w.stream();
        w.header_block(true);
        assert_eq!(w.expired().await, Expiry::HeaderBlock);
        w.header_block(false);
        assert!(tokio::time::timeout(QUIET, w.expired()).await.is_err());
    }

    #[test]
    fn fragments_are_matched_to_their_request_and_consumed() {
        let w = ConnWatch::new(limits(100));
        let get = http::Method::GET;
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert!(!w.take_fragment(&get, &uri("/a")));
        w.fragment_seen(b"POST", b"/body-line");
        w.fragment_seen(b"GET", b"/a");
        assert!(!w.take_fragment(&get, &uri("/b")), "another request");
        assert!(w.take_fragment(&get, &uri("/a")));
        assert!(!w.take_fragment(&http::Method::POST, &uri("/body-line")), "consumed with the match");
        for _ in 0..=MAX_PENDING_FRAGMENTS {
            w.fragment_seen(b"GET", b"/x");
        }
        assert!(w.take_fragment(&get, &uri("/anything")), "overflow refuses everything after");
    }
}
