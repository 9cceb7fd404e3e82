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
//! The file is polled (a content hash every [`POLL_INTERVAL`], read again only when
//! its stamp says it may have changed: [`Watched`]) rather than
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
        let mut file = Watched::default();
        let mut loaded = file.fingerprint(&self.path);
        let mut pending: Option<[u8; 32]> = None;
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let by_signal = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            let now = file.fingerprint(&self.path);
            if by_signal {
                // Wait until two reads 50 ms apart agree, so a signal sent
                // while the file is being rewritten in place does not load a
                // truncated copy.
                let mut fp = now;
                for _ in 0..20 {
                    tokio::time::sleep(STABLE_WINDOW).await;
                    let again = file.fingerprint(&self.path);
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

/// A watched file's content hash, read and hashed again only when the file's stamp
/// (device, inode, size, modification and change times) differs from the last poll's,
/// or when the stamp is too recent to trust: a write within the file system's
/// timestamp granularity of the last read could leave it unchanged, so a stamp younger
/// than [`RACY`] always means a fresh read (git's "racily clean" rule). A rename or a
/// ConfigMap symlink swap is a new inode; an in-place write moves both times.
#[derive(Default)]
pub(crate) struct Watched {
    last: Option<(Stamp, [u8; 32])>,
    /// Reads of the file so far (what the stamp saves shows in tests).
    reads: u64,
}

/// A stamp younger than this is not trusted.
const RACY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of `meta`, or `None` when it is too recent to trust.
    fn trusted(meta: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
        let newest = meta.mtime().max(meta.ctime());
        let age = i64::try_from(now.as_secs()).ok()? - newest;
        (age >= RACY.as_secs() as i64).then_some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

impl Watched {
    /// Content hash of the file (`None` while it cannot be read, e.g. mid-rename).
    pub(crate) fn fingerprint(&mut self, path: &std::path::Path) -> Option<[u8; 32]> {
        let stamp = std::fs::metadata(path).ok().as_ref().and_then(Stamp::trusted);
        if let (Some(stamp), Some((last, fp))) = (stamp, self.last) {
            if stamp == last {
                return Some(fp);
            }
        }
        self.reads += 1;
        let fp: [u8; 32] = Sha256::digest(std::fs::read(path).ok()?).into();
        // The stamp was taken before the read: a write in between moves it, and the
        // next poll reads again.
        self.last = stamp.map(|s| (s, fp));
        Some(fp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn age(path: &std::path::Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs)).unwrap();
    }

    /// An old, unchanged file is not read again; any change is seen at the next poll:
    /// new content of the same size, a replacement by rename, a removal.
    #[test]
    fn a_poll_reads_again_only_what_may_have_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        let mut w = Watched::default();
        let first = w.fingerprint(&path);
        assert!(first.is_some());
        // Just written: the stamp is too recent to trust, so every poll reads.
        assert_eq!(w.fingerprint(&path), first);
        assert_eq!(w.reads, 2);
        // Same size, new content, within the racy window: seen.
        std::fs::write(&path, "a = 2\n").unwrap();
        let second = w.fingerprint(&path);
        assert_ne!(second, first);
        // Its change time is still recent (set_modified cannot move it), so it is read.
        age(&path, 60);
        assert_eq!(w.fingerprint(&path), second);
        assert_eq!(w.reads, 4);

        // A stamp older than the racy window is trusted: no read.
        let old = dir.path().join("old.toml");
        std::fs::write(&old, "b = 1\n").unwrap();
        let next = dir.path().join("next.toml");
        std::fs::write(&next, "b = 2\n").unwrap();
        let mut w = Watched::default();
        let stamp = || std::fs::metadata(&old).ok().as_ref().and_then(Stamp::trusted);
        if stamp().is_none() {
            // ctime cannot be set back; wait out the racy window once.
            std::thread::sleep(RACY + Duration::from_millis(1100));
        }
        assert!(stamp().is_some(), "stamp trusted after the racy window");
        let fp = w.fingerprint(&old);
        assert_eq!(w.fingerprint(&old), fp);
        assert_eq!(w.reads, 1, "an unchanged old file is not read again");
        // Replaced by rename (a new inode, as old as the first, same size): read.
        std::fs::rename(&next, &old).unwrap();
        let renamed = w.fingerprint(&old);
        assert_ne!(renamed, fp);
        assert_eq!(w.reads, 2);
        // Rewritten in place: the times move: read.
        std::fs::write(&old, "b = 3\n").unwrap();
        assert_ne!(w.fingerprint(&old), renamed);
        std::fs::remove_file(&old).unwrap();
        assert_eq!(w.fingerprint(&old), None);
    }
}
