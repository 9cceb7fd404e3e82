//! The log writer: JSON lines from every worker thread into one buffer, written
//! to stdout by one thread in large writes.
//!
//! Why not `tracing-appender`'s non-blocking writer: it hands every line to
//! its thread through a channel, and on a gate that is busy but not saturated
//! that thread sleeps and is woken for nearly every line — a futex wake, a
//! context switch and `sched_yield`s per line, measured as ~40 % of the gate's
//! CPU samples on the media-redirect benchmark. Here a request appends its
//! line to a shared buffer under a mutex held for one `memcpy` and wakes the
//! writer only when the buffer crosses [`FLUSH_BYTES`]; the writer also
//! flushes whatever is pending every [`FLUSH_EVERY`], so a quiet gate's lines
//! appear within that delay.
//!
//! Lossless: when the writer falls behind by [`MAX_PENDING`] bytes, loggers
//! wait (back-pressure) rather than drop lines. Dropping the [`Guard`] writes
//! everything pending before it returns (clean shutdown, `run` child exit).
//!
//! The std `Mutex`/`Condvar` are deliberate (the crate otherwise avoids the
//! std mutex): `tracing`'s writer interface is synchronous, the critical
//! section is a `memcpy` that never awaits, and the writer side is a plain
//! thread.

#![allow(clippy::disallowed_types)]

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Pending bytes that wake the writer early.
pub const FLUSH_BYTES: usize = 32 * 1024;
/// Longest time a line waits in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(25);
/// Pending bytes beyond which loggers wait for the writer.
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

struct State {
    buf: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for [`FLUSH_BYTES`], [`FLUSH_EVERY`] or close.
    writer: Condvar,
    /// Loggers wait here while [`MAX_PENDING`] bytes are pending.
    space: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only be an allocation failure
        // inside `extend_from_slice`; the buffer is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The `MakeWriter` handed to `tracing_subscriber`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Keeps the writer thread alive; dropping it flushes and joins it.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out` (stdout in the gate).
pub fn new(out: impl Write + Send + 'static) -> io::Result<(LogWriter, Guard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { buf: Vec::with_capacity(2 * FLUSH_BYTES), closed: false }),
        writer: Condvar::new(),
        space: Condvar::new(),
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new().name("prt-gate-log".into()).spawn(move || write_loop(&worker, out))?;
    Ok((LogWriter { shared: shared.clone() }, Guard { shared, thread: Some(thread) }))
}

fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut batch: Vec<u8> = Vec::with_capacity(2 * FLUSH_BYTES);
    loop {
        let deadline = Instant::now() + FLUSH_EVERY;
        let mut st = shared.lock();
        while st.buf.len() < FLUSH_BYTES && !st.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = match shared.writer.wait_timeout(st, deadline - now) {
                Ok((st, _)) => st,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        std::mem::swap(&mut st.buf, &mut batch);
        let closed = st.closed;
        drop(st);
        shared.space.notify_all();
        if !batch.is_empty() {
            // A failing stdout (closed pipe) cannot be reported anywhere
            // better; the lines are dropped rather than blocking the gate.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > 4 * FLUSH_BYTES {
                batch.shrink_to(2 * FLUSH_BYTES);
            }
        } else if closed {
            return;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.writer.notify_one();
        self.shared.space.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One logger's handle: each `write` appends whole to the shared buffer.
pub struct Line<'a> {
    shared: &'a Shared,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut st = self.shared.lock();
        while st.buf.len() >= MAX_PENDING && !st.closed {
            st = match self.shared.space.wait(st) {
                Ok(st) => st,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        let before = st.buf.len();
        st.buf.extend_from_slice(bytes);
        let crossed = before < FLUSH_BYTES && st.buf.len() >= FLUSH_BYTES;
        drop(st);
        if crossed {
            self.shared.writer.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogWriter {
    /// Appends one whole line (the access-line writer's path: no `tracing`).
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        Line { shared: &self.shared }.write_all(line)
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line { shared: &self.shared }
    }
}

/// A destination for the lines the gate renders itself (the access line, the media audit
/// line): the log writer and the redaction engine the line's client- and user-supplied
/// fields pass. Each line is rendered into one buffer per thread and handed to the
/// writer whole.
pub struct LineSink(std::sync::OnceLock<(LogWriter, Option<Arc<crate::redact::Redactor>>)>);

thread_local! {
    /// The line being rendered (a [`LineSink`]'s).
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A line buffer that grew past this (a huge path or key) is released after the line.
const LINE_KEEP: usize = 16 * 1024;

impl LineSink {
    pub const fn new() -> LineSink {
        LineSink(std::sync::OnceLock::new())
    }

    /// Sets the destination (once, when logging starts: `cli`). `redactor` is `None` only
    /// in the debug-build canary switch.
    pub fn install(&self, writer: LogWriter, redactor: Option<Arc<crate::redact::Redactor>>) {
        let _ = self.0.set((writer, redactor));
    }

    /// Renders one line with `render` (given the engine, if any) and writes it. Before
    /// [`LineSink::install`] (a library user that never started logging) there is nowhere
    /// to write, as with `tracing` and no subscriber: the line is dropped, never written
    /// unredacted.
    pub fn emit(&self, render: impl FnOnce(Option<&crate::redact::Redactor>, &mut Vec<u8>)) {
        let Some((writer, redactor)) = self.0.get() else { return };
        LINE.with(|cell| {
            let Ok(mut line) = cell.try_borrow_mut() else { return };
            line.clear();
            render(redactor.as_deref(), &mut line);
            // A failing stdout cannot be reported anywhere better.
            let _ = writer.write_line(&line);
            if line.capacity() > LINE_KEEP {
                *line = Vec::new();
            }
        });
    }
}

impl Default for LineSink {
    fn default() -> Self {
        Self::new()
    }
}

/// The timestamp of every log line: RFC 3339, UTC, microseconds
/// (`2026-11-29T18:00:00.123456Z`), the format `tracing-subscriber`'s default
/// timer writes. The date and time up to the second are converted once per
/// second per thread; the rest of each line's stamp is six digits.
#[derive(Debug, Clone, Copy, Default)]
pub struct CachedTime;

thread_local! {
    /// The second last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// `now` as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` (a clock before 1970 reads as 1970).
pub fn timestamp(now: std::time::SystemTime) -> [u8; 27] {
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let head = SECOND.with(|cell| {
        let (cached, text) = cell.get();
        if cached == secs {
            return text;
        }
        let text = format_second(secs);
        cell.set((secs, text));
        text
    });
    let mut out = [0u8; 27];
    out[..19].copy_from_slice(&head);
    out[19] = b'.';
    let mut micros = since.subsec_micros();
    for i in (20..26).rev() {
        out[i] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out[26] = b'Z';
    out
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`, what `humantime::format_rfc3339_seconds`
/// writes (a clock before 1970 reads as 1970), without `fmt`.
pub fn rfc3339_seconds(t: std::time::SystemTime) -> [u8; 20] {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut out = [b'Z'; 20];
    out[..19].copy_from_slice(&format_second(secs));
    out
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix seconds (proleptic Gregorian, UTC; years
/// past 9999 are written as 9999).
fn format_second(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since the epoch (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).min(9999);
    let mut out = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, (rem / 3600) as i64);
    put(14, 2, (rem / 60 % 60) as i64);
    put(17, 2, (rem % 60) as i64);
    out
}

impl tracing_subscriber::fmt::time::FormatTime for CachedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let stamp = timestamp(std::time::SystemTime::now());
        // Always ASCII; an empty stamp rather than a panic if that ever changed.
        w.write_str(std::str::from_utf8(&stamp).unwrap_or(""))
    }
}

/// Test support: two renderings of one line (the gate's own writer and `tracing`'s JSON
/// formatter) are the same object, timestamps aside (each must be RFC 3339 with
/// microseconds, 27 characters; their values differ by when each was written).
#[cfg(test)]
pub(crate) fn assert_same_line_but_timestamp(mut ours: serde_json::Value, mut theirs: serde_json::Value) {
    for v in [&mut ours, &mut theirs] {
        let ts = v.as_object_mut().and_then(|o| o.remove("timestamp"));
        assert_eq!(ts.as_ref().and_then(|t| t.as_str()).map(str::len), Some(27), "{v}");
    }
    assert_eq!(ours, theirs);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` that appends to a shared vector.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
        }
    }

    #[test]
    fn every_line_arrives_once_and_whole_from_many_threads() {
        let sink = Sink::default();
        let (w, guard) = new(sink.clone()).unwrap_or_else(|e| panic!("{e}"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let line = format!("{{\"t\":{t},\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 300));
                        w.make_writer().write_all(line.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap_or_else(|_| panic!("logger thread panicked"));
        }
        drop(guard);
        let text = sink.text();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line}: {e}"));
            assert!(seen.insert((v["t"].as_u64(), v["i"].as_u64())), "duplicate {line}");
        }
        assert_eq!(seen.len(), 8 * 5_000);
    }

    #[test]
    fn a_lone_line_is_written_within_the_flush_interval() {
        let sink = Sink::default();
        let (w, _guard) = new(sink.clone()).unwrap_or_else(|e| panic!("{e}"));
        w.make_writer().write_all(b"one line\n").unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sink.text().contains("one line\n") {
            assert!(Instant::now() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_slow_output_applies_back_pressure_and_loses_nothing() {
        #[derive(Clone, Default)]
        struct Slow(Sink);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(1));
                self.0.write(b)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let slow = Slow::default();
        let (w, guard) = new(slow.clone()).unwrap_or_else(|e| panic!("{e}"));
        let line = format!("{}\n", "y".repeat(1023));
        for _ in 0..(MAX_PENDING / 1024 * 2) {
            w.make_writer().write_all(line.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        }
        drop(guard);
        assert_eq!(slow.0.text().lines().count(), MAX_PENDING / 1024 * 2);
    }

    #[test]
    fn timestamps_match_rfc3339_micros() {
        use std::time::{Duration, UNIX_EPOCH};
        let secs = [0u64, 59, 951_782_400, 951_868_799, 1_709_164_800, 1_798_761_599, 4_107_542_399, 253_402_300_799];
        for s in secs {
            for micros in [0u32, 1, 999_999, 123_456] {
                let t = UNIX_EPOCH + Duration::new(s, micros * 1000 + 789);
                let ours = timestamp(t);
                assert_eq!(std::str::from_utf8(&ours).unwrap(), humantime::format_rfc3339_micros(t).to_string(), "{s}");
            }
        }
        // Same second twice (the cached path), then the next second.
        let t = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        assert_eq!(&timestamp(t)[..19], b"2030-03-17T17:46:40");
        assert_eq!(&timestamp(t + Duration::from_millis(5))[..23], b"2030-03-17T17:46:40.005");
        assert_eq!(&timestamp(t + Duration::from_secs(1))[..19], b"2030-03-17T17:46:41");
    }

    #[test]
    fn seconds_match_rfc3339_seconds() {
        use std::time::{Duration, UNIX_EPOCH};
        let secs = [0u64, 59, 951_782_400, 951_868_799, 1_709_164_800, 1_798_761_599, 4_107_542_399, 253_402_300_799];
        for s in secs {
            let t = UNIX_EPOCH + Duration::new(s, 999_999_999);
            let ours = rfc3339_seconds(t);
            assert_eq!(std::str::from_utf8(&ours).unwrap(), humantime::format_rfc3339_seconds(t).to_string(), "{s}");
        }
    }
}
