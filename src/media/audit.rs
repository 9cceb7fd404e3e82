//! The audit line of a media grant: one JSON object per granted download,
//! `"target":"audit"`, `"event":"media_grant"`.
//!
//! It is written the way the access line is (`proxy::access_line`): a
//! fixed-schema writer ([`crate::jsonw`]) straight into the batched log buffer
//! ([`crate::logwriter`]), no `tracing` formatter, no `fmt`. The line has
//! exactly the shape the `tracing` JSON formatter gave it (`timestamp`,
//! `level`, `event`, `user`, `role`, `tenant`, `key`, `expires_at`,
//! `request_id`, `target`); a test here compares the two, redaction included.
//!
//! The line names the grant, never the URL (a bearer credential): there is no
//! field that could hold it. The fields whose text comes from the client or the
//! SSO (`user`, `key`, `request_id`) pass the redaction engine one by one; the
//! gate's own (`role`, `tenant`, `expires_at`, a request id the gate generated)
//! do not. Like every `audit`
//! event, the line is written only when the log filter lets `audit` INFO
//! events through.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::jsonw::{key, str_field};
use crate::logwriter::{rfc3339_seconds, timestamp, LineSink, LogWriter};
use crate::redact::Redactor;

/// What the audit line of one grant says.
#[derive(Debug, Clone)]
pub struct GrantAudit<'a> {
    pub user: &'a str,
    pub role: &'a str,
    pub tenant: &'a str,
    /// The object key (never the URL).
    pub key: &'a str,
    pub expires_at: SystemTime,
    pub request_id: &'a str,
    /// The gate made `request_id` up (hex it generated holds no secret): it skips
    /// the engine, as on the access line.
    pub request_id_is_ours: bool,
}

/// Where grant lines go.
static SINK: LineSink = LineSink::new();

/// Installs the destination (once, when logging starts: `cli`, next to the access line's).
pub fn install(writer: LogWriter, redactor: Option<Arc<Redactor>>) {
    SINK.install(writer, redactor);
}

impl GrantAudit<'_> {
    /// Renders, redacts and writes the line, if the log filter wants `audit`
    /// INFO events. Before [`install`] there is nowhere to write: the line is
    /// dropped, never written unredacted.
    pub fn write(&self) {
        if !tracing::enabled!(target: "audit", tracing::Level::INFO) {
            return;
        }
        SINK.emit(|redactor, line| self.render(redactor, SystemTime::now(), line));
    }

    /// The JSON object and its newline, appended to `out`; the client- and
    /// user-supplied fields through `redactor` when there is one.
    pub fn render(&self, redactor: Option<&Redactor>, now: SystemTime, out: &mut Vec<u8>) {
        // The caller's e-mail and the object key repeat from grant to grant: a verdict of
        // this engine on exactly that text is reused (`Redactor::redact_field`).
        let redact = |s| match redactor {
            Some(r) => r.redact_field(s),
            None => Cow::Borrowed(s),
        };
        out.extend_from_slice(b"{\"timestamp\":\"");
        out.extend_from_slice(&timestamp(now));
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"event\":\"media_grant\"");
        str_field(out, "user", &redact(self.user));
        str_field(out, "role", self.role);
        str_field(out, "tenant", self.tenant);
        str_field(out, "key", &redact(self.key));
        key(out, "expires_at");
        out.push(b'"');
        out.extend_from_slice(&rfc3339_seconds(self.expires_at));
        out.push(b'"');
        let request_id = if self.request_id_is_ours { Cow::Borrowed(self.request_id) } else { redact(self.request_id) };
        str_field(out, "request_id", &request_id);
        out.extend_from_slice(b",\"target\":\"audit\"}\n");
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_types)] // a std `Mutex` around the test buffer, as in `logwriter`
mod tests;
