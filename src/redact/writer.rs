//! The gate's own log output through the engine: a `tracing` `MakeWriter`
//! wrapper. The JSON formatter renders each event into one buffer and hands
//! it to the writer in one `write_all`; the wrapper redacts that buffer
//! before it reaches the batched stdout writer. An event without an
//! anchor costs one prefilter scan and no allocation.
//!
//! Neighbours: `cli` installs it around the access log / diagnostics writer.

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use super::Redactor;

/// A `MakeWriter` whose writers redact every buffer they are given.
#[derive(Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
    redactor: Option<Arc<Redactor>>,
}

impl<M> RedactingMakeWriter<M> {
    pub fn new(inner: M, redactor: Arc<Redactor>) -> Self {
        // Debug builds only: the canary tests' positive control.
        let redactor = (!super::disabled_for_test()).then_some(redactor);
        RedactingMakeWriter { inner, redactor }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = Redacting<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting { inner: self.inner.make_writer(), redactor: self.redactor.clone() }
    }
}

/// One event's writer.
pub struct Redacting<W> {
    inner: W,
    redactor: Option<Arc<Redactor>>,
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.redactor {
            Some(r) => self.inner.write_all(&r.redact(buf))?,
            None => self.inner.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
