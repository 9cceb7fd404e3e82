//! `prt-gate redact` and the child side of `prt-gate run` (design §9).
//!
//! `run` is `serve` plus a supervised upstream: the command after `--` is
//! started once the gate listens; its stdout and stderr go through the
//! redaction engine line by line (one [`LineFilter`] per stream) to the
//! gate's stdout and stderr; SIGTERM/SIGINT are forwarded to it while the
//! gate drains; when it exits, the gate drains and exits with its status
//! (`128 + signal` if a signal killed it). `/readyz` is not ready until the
//! upstream accepts TCP connections (the admin listener checks
//! `gate.upstream` on every probe).
//!
//! The child's environment ([`child_environment`]) holds none of the gate's
//! settings or secrets: every `PRT_GATE_*` variable (SSO client secret,
//! assertion secrets under the gate's names, the gate's own S3 credentials
//! `PRT_GATE_MEDIA__*`, a Redis URL with its password) is removed, and the
//! assertion secret is handed over under the adapter's names
//! [`CHILD_ASSERTION_SECRET`] / [`CHILD_ASSERTION_PREVIOUS_SECRET`]. `AWS_*`
//! variables are the child's own S3 credentials and pass through
//! (`deploy/ENVIRONMENT.md`).
//!
//! [`LineFilter`]: crate::redact::stream::LineFilter

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::exit;
use crate::config::AssertionConfig;
use crate::redact::stream::filter;
use crate::redact::Redactor;

/// The variable the Django adapter reads the assertion secret from.
pub const CHILD_ASSERTION_SECRET: &str = "PRT_ASSERTION_SECRET";
/// The secret being rotated out, which the adapter still accepts.
pub const CHILD_ASSERTION_PREVIOUS_SECRET: &str = "PRT_ASSERTION_PREVIOUS_SECRET";

/// The environment of the upstream child, built from the gate's: without any
/// `PRT_GATE_*` variable (and without inherited adapter secrets), plus the
/// assertion secret(s) under the adapter's names.
pub fn child_environment(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
    assertion: &AssertionConfig,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !k.starts_with(crate::config::ENV_PREFIX)
                && k != CHILD_ASSERTION_SECRET
                && k != CHILD_ASSERTION_PREVIOUS_SECRET
        })
        .collect();
    for (name, secret) in
        [(CHILD_ASSERTION_SECRET, &assertion.secret), (CHILD_ASSERTION_PREVIOUS_SECRET, &assertion.previous_secret)]
    {
        if let Some(s) = secret {
            env.push((name.into(), s.expose().into()));
        }
    }
    env
}

/// `prt-gate redact`: stdin → stdout through the engine. Uses `--config` for
/// operator patterns when given (or when `./policy.toml` exists); otherwise
/// the built-in detectors alone.
pub fn redact(config: &Path) -> ExitCode {
    let explicit = std::env::var_os("PRT_GATE_CONFIG").is_some() || config != Path::new("policy.toml");
    let redactor = if explicit || config.exists() {
        match crate::config::Config::load(config) {
            Ok((c, _)) => c.redactor,
            Err(e) => {
                eprintln!("prt-gate: invalid configuration:\n{e}");
                return exit::usage();
            }
        }
    } else {
        Arc::new(Redactor::builtin())
    };
    match filter(redactor, io::stdin().lock(), io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prt-gate redact: {e}");
            exit::failure()
        }
    }
}

/// SIGTERM and SIGINT handlers, installed before the child starts so an
/// early signal is forwarded rather than fatal.
pub struct Signals {
    term: io::Result<tokio::signal::unix::Signal>,
    int: io::Result<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals { term: signal(SignalKind::terminate()), int: signal(SignalKind::interrupt()) }
    }
}

/// The upstream child of `prt-gate run` and its two log pumps.
pub struct Supervisor {
    pid: rustix::process::Pid,
    status: Arc<OnceLock<ExitStatus>>,
    exited: Arc<tokio::sync::Notify>,
    pumps: Vec<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts `cmd` with piped stdout/stderr scrubbed by `redactor`, in the
    /// environment of [`child_environment`].
    pub fn spawn(cmd: &[String], redactor: Arc<Redactor>, assertion: &AssertionConfig) -> io::Result<Supervisor> {
        let (program, args) = cmd.split_first().ok_or_else(|| io::Error::other("no command after `--`"))?;
        let mut child: Child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(child_environment(std::env::vars_os(), assertion))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = rustix::process::Pid::from_child(&child);
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            let r = redactor.clone();
            pumps.push(std::thread::spawn(move || pump(r, out, io::stdout())));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(std::thread::spawn(move || pump(redactor, err, io::stderr())));
        }
        let status: Arc<OnceLock<ExitStatus>> = Arc::default();
        let exited = Arc::new(tokio::sync::Notify::new());
        let (s, n) = (status.clone(), exited.clone());
        std::thread::spawn(move || {
            if let Ok(st) = child.wait() {
                let _ = s.set(st);
            }
            n.notify_one();
        });
        Ok(Supervisor { pid, status, exited, pumps })
    }

    /// Resolves when the gate should stop: a SIGTERM/SIGINT (forwarded to
    /// the child) or the child's exit.
    pub fn shutdown(self: &Arc<Self>, signals: Signals) -> impl std::future::Future<Output = ()> + Send + 'static {
        let me = self.clone();
        async move {
            let (Ok(mut term), Ok(mut int)) = (signals.term, signals.int) else {
                me.exited.notified().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => me.forward(rustix::process::Signal::TERM, "SIGTERM"),
                _ = int.recv() => me.forward(rustix::process::Signal::INT, "SIGINT"),
                _ = me.exited.notified() => {
                    tracing::info!("upstream exited; draining");
                    // Keep the permit for `finish`.
                    me.exited.notify_one();
                }
            }
        }
    }

    fn forward(&self, sig: rustix::process::Signal, name: &str) {
        tracing::info!(signal = name, "forwarding signal to upstream; draining");
        if self.status.get().is_none() {
            let _ = rustix::process::kill_process(self.pid, sig);
        }
    }

    /// After the gate drained: waits for the child (SIGKILL after `grace`),
    /// lets the pumps write its last lines, and maps its status to an exit
    /// code (`128 + signal` for a signal death).
    pub async fn finish(self: Arc<Self>, grace: Duration) -> ExitCode {
        let deadline = Instant::now() + grace;
        while self.status.get().is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("upstream did not exit in time; killing it");
                let _ = rustix::process::kill_process(self.pid, rustix::process::Signal::KILL);
                let gone = async {
                    while self.status.get().is_none() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), gone).await;
                break;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), self.exited.notified()).await;
        }
        // The pipes close when the child (and anything it left holding them)
        // is gone; give the pumps a moment, never forever.
        let pumps_done = Instant::now() + Duration::from_secs(2);
        while self.pumps.iter().any(|p| !p.is_finished()) && Instant::now() < pumps_done {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        exit_code(self.status.get())
    }
}

fn pump(redactor: Arc<Redactor>, from: impl io::Read, to: impl io::Write) {
    // A closed gate stdout (broken pipe) ends this pump only.
    let _ = filter(redactor, from, to);
}

/// The child's status as the gate's exit code.
pub fn exit_code(status: Option<&ExitStatus>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
            (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
            (None, None) => exit::failure(),
        },
        None => exit::failure(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn child_gets_none_of_the_gates_variables_and_the_adapter_names() {
        let parent = [
            ("PATH", "/usr/bin"),
            ("PRT_GATE_SSO__CLIENT_SECRET", "sso-secret"),
            ("PRT_GATE_ASSERTION__SECRET", "gate-name-secret"),
            ("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", "gate-s3"),
            ("PRT_GATE_SESSION__STORE", "redis://:pw@h:6379"),
            ("AWS_SECRET_ACCESS_KEY", "django-s3"),
            ("PRT_ASSERTION_SECRET", "stale-inherited"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let assertion = AssertionConfig {
            audience: "django".into(),
            secret: Some(Secret::new("current-secret".into())),
            previous_secret: Some(Secret::new("previous-secret".into())),
        };
        let env = child_environment(parent, &assertion);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_string_lossy().into_owned());
        assert!(env.iter().all(|(k, _)| !k.to_string_lossy().starts_with("PRT_GATE_")), "{env:?}");
        assert_eq!(get("PATH").as_deref(), Some("/usr/bin"));
        assert_eq!(get("AWS_SECRET_ACCESS_KEY").as_deref(), Some("django-s3"));
        assert_eq!(get(CHILD_ASSERTION_SECRET).as_deref(), Some("current-secret"));
        assert_eq!(get(CHILD_ASSERTION_PREVIOUS_SECRET).as_deref(), Some("previous-secret"));
        assert_eq!(env.iter().filter(|(k, _)| k == CHILD_ASSERTION_SECRET).count(), 1);
    }
}
