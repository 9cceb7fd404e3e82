//! Live configuration: the compiled [`Config`] behind an atomic pointer,
//! reloaded on SIGHUP and when the file changes.
//!
//! A reload validates the whole file (and environment) first; only a fully
//! valid configuration is swapped in, atomically. An invalid file keeps the
//! previous configuration in force, is logged with `file:line: reason` and
//! counted (`prt_gate_config_reloads_total{result="failed"}`). Requests in
//! flight keep the `Arc<Config>` they started with.
//!
//! Settings that shape sockets and pools (`gate.listen`, `gate.admin_listen`,
//! `gate.upstream`, `session.store`, `gate.workers`, the connection and
//! request-head limits of the listener, the media bucket's
//! addressing and AWS credentials) take effect at the next
//! restart; a reload that changes them says so in the log.
//!
//! The file is polled (a content hash every [`POLL_INTERVAL`]) rather than
//! watched with inotify: editors replace files by rename, ConfigMaps swap
//! symlinks, and a poll sees all of these the same. A change is loaded only
//! once it has been stable for one poll interval (no half-written files).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::metrics::Metrics;

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// After SIGHUP, the file must read the same twice this far apart.
const STABLE_WINDOW: Duration = Duration::from_millis(50);

/// The configuration in force. Cheap to read on every request.
pub struct Live {
    current: ArcSwap<Config>,
    path: PathBuf,
    /// The shadow policy (`policy.shadow`), followed by the same watch loop.
    pub shadow: crate::shadow::Shadow,
}

impl Live {
    pub fn new(config: Config) -> Live {
        let path = config.source.clone();
        Live { current: ArcSwap::from_pointee(config), path, shadow: Default::default() }
    }

    /// The configuration for one request: hold it for the whole request.
    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// Re-reads the file. `Ok(true)` if a new configuration is in force,
    /// `Ok(false)` if nothing changed, `Err` (old one kept) if it is invalid.
    pub fn reload(&self, metrics: &Metrics) -> Result<bool, String> {
        match Config::load(&self.path) {
            Ok((new, warnings)) => {
                for w in &warnings {
                    tracing::warn!("{w}");
                }
                let old = self.current.load();
                for (what, changed) in [
                    ("gate.listen", old.gate.listen != new.gate.listen),
                    ("gate.admin_listen", old.gate.admin_listen != new.gate.admin_listen),
                    ("gate.upstream", old.gate.upstream.authority != new.gate.upstream.authority),
                    ("session.store", old.session.store != new.session.store),
                    ("gate.workers", old.gate.workers != new.gate.workers),
                    (
                        "gate.max_connections/header_read_timeout/max_header_bytes/max_headers",
                        old.gate.max_connections != new.gate.max_connections
                            || old.gate.header_read_timeout != new.gate.header_read_timeout
                            || old.gate.max_header_bytes != new.gate.max_header_bytes
                            || old.gate.max_headers != new.gate.max_headers,
                    ),
                    (
                        "media.bucket/region/endpoint/path_style",
                        old.media.bucket != new.media.bucket
                            || old.media.region != new.media.region
                            || old.media.endpoint != new.media.endpoint
                            || old.media.path_style != new.media.path_style,
                    ),
                ] {
                    if changed {
                        tracing::warn!(
                            key = what,
                            "configuration reloaded; this setting takes effect at the next restart"
                        );
                    }
                }
                let new = Arc::new(new);
                self.current.store(new.clone());
                metrics.adopt(&new);
                metrics.config_reload(true);
                tracing::info!(file = %self.path.display(), "configuration reloaded");
                Ok(true)
            }
            Err(e) => {
                metrics.config_reload(false);
                let msg = e.to_string();
                tracing::error!(file = %self.path.display(), error = %msg, "configuration reload refused; previous configuration stays in force");
                Err(msg)
            }
        }
    }

    /// Runs forever: reloads on SIGHUP at once, and when the file's content
    /// has changed and then stayed the same for one more poll — so a file
    /// caught half-written by an in-place save (which may well be valid TOML,
    /// e.g. empty) is never loaded.
    pub async fn watch(self: Arc<Self>, metrics: Arc<Metrics>, mut hup: Option<tokio::signal::unix::Signal>) {
        let mut loaded = fingerprint(&self.path);
        let mut pending: Option<[u8; 32]> = None;
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let by_signal = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            let now = fingerprint(&self.path);
            if by_signal {
                // Wait until two reads 50 ms apart agree, so a signal sent
                // while the file is being rewritten in place does not load a
                // truncated copy.
                let mut fp = now;
                for _ in 0..20 {
                    tokio::time::sleep(STABLE_WINDOW).await;
                    let again = fingerprint(&self.path);
                    if again == fp && again.is_some() {
                        break;
                    }
                    fp = again;
                }
                loaded = fp;
                pending = None;
                let _ = self.reload(&metrics);
                self.shadow.poll(self.get().shadow.as_deref(), &metrics, true);
                continue;
            }
            match now {
                Some(fp) if Some(fp) != loaded => {
                    if pending == Some(fp) {
                        // Unchanged since the last poll: the write is complete.
                        loaded = now;
                        pending = None;
                        let _ = self.reload(&metrics);
                    } else {
                        pending = Some(fp);
                    }
                }
                _ => pending = None,
            }
            self.shadow.poll(self.get().shadow.as_deref(), &metrics, false);
        }
    }
}

/// Content hash of the file (`None` while it cannot be read, e.g. mid-rename).
pub(crate) fn fingerprint(path: &std::path::Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(&b).into())
}
