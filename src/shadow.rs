//! The shadow policy (`[policy] shadow = "policy.next.toml"`): a candidate policy that
//! decides every request next to the active one and is never enforced.
//!
//! Each request whose shadow answer differs (decision, or landing page of a redirect) is
//! counted in `prt_gate_shadow_diff_total{role,active,shadow}` and logged with a sample
//! path at most once per (role, method, active rule, shadow rule) per [`LOG_INTERVAL`].
//! The file is watched like the configuration (`reload`): re-read when its content has
//! changed and stayed the same for one poll, at once on SIGHUP, and when the
//! configuration names another file. A file that does not compile keeps the previous
//! shadow (or none) and is reported: a warning and
//! `prt_gate_shadow_reloads_total{result="failed"}`. The active policy is never touched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::Method;
use tokio::sync::Mutex;

use crate::config::Config;
use crate::metrics::{Decision, Metrics, SHADOW_ROLES};
use crate::policy::{Policy, Verdict, Who};

/// A difference is logged at most once per key in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Keys remembered for the rate limit; beyond it a difference is counted, not logged.
const MAX_KEYS: usize = 1024;

type LogKey = (usize, Method, Arc<str>, Arc<str>);

#[derive(Default)]
struct FileState {
    path: Option<PathBuf>,
    loaded: Option<[u8; 32]>,
    pending: Option<[u8; 32]>,
    file: crate::reload::Watched,
}

/// The shadow policy in force (if any) and its rate limiter. The locks are only ever
/// tried (`try_lock`), never awaited.
#[derive(Default)]
pub struct Shadow {
    policy: ArcSwapOption<Policy>,
    file: Mutex<FileState>,
    logged: Mutex<HashMap<LogKey, Instant>>,
}

impl Shadow {
    /// The shadow policy for one request.
    pub fn get(&self) -> Option<Arc<Policy>> {
        self.policy.load_full()
    }

    /// Follows the file named by `path` (the configuration's `policy.shadow`): loads it
    /// when it is new, when `now` (start-up, SIGHUP), or when its content changed and has
    /// been stable for one poll.
    pub fn poll(&self, path: Option<&Path>, metrics: &Metrics, now: bool) {
        // Only the watch loop polls (and `serve` once before it starts): never contended.
        let Ok(mut st) = self.file.try_lock() else { return };
        let fresh = st.path.as_deref() != path;
        if fresh {
            *st = FileState { path: path.map(Path::to_path_buf), ..FileState::default() };
            if path.is_none() {
                self.policy.store(None);
                tracing::info!("shadow policy removed");
                return;
            }
        }
        let Some(path) = st.path.clone() else { return };
        let fp = st.file.fingerprint(&path);
        let changed = fp != st.loaded;
        if !(now || fresh || changed && fp.is_some() && st.pending == fp) {
            st.pending = if changed { fp } else { None };
            return;
        }
        st.loaded = fp;
        st.pending = None;
        drop(st);
        self.load(&path, metrics);
    }

    fn load(&self, path: &Path, metrics: &Metrics) {
        match Config::load_policy(path) {
            Ok((policy, warnings)) => {
                for w in &warnings {
                    tracing::warn!("shadow policy: {w}");
                }
                let rules = policy.rules().len();
                self.policy.store(Some(Arc::new(policy)));
                metrics.shadow_reload(true);
                tracing::info!(file = %path.display(), rules, "shadow policy loaded (compared, not enforced)");
            }
            Err(e) => {
                metrics.shadow_reload(false);
                let kept = if self.policy.load().is_some() { "the previous shadow policy" } else { "no shadow policy" };
                tracing::warn!(file = %path.display(), error = %e, "shadow policy refused; {kept} stays, the active policy is unchanged");
            }
        }
    }

    /// Counts and (rate-limited) logs a difference between the two verdicts for one
    /// request. `who` is the caller as the active policy's authentication found it.
    /// Returns whether a line was logged.
    pub fn observe(
        &self,
        metrics: &Metrics,
        method: &Method,
        path: &str,
        who: &Who<'_>,
        active: &Verdict<'_>,
        shadow: &Verdict<'_>,
    ) -> bool {
        if same_answer(active, shadow) {
            return false;
        }
        // Indexes `SHADOW_ROLES`: a known role, `anonymous`, or `unknown`.
        let r = match who.principal() {
            None => 4,
            Some(p) => p.role.map_or(5, |r| r as usize),
        };
        let (a, s) = (Decision::from_verdict(active.decision()), Decision::from_verdict(shadow.decision()));
        metrics.shadow_diff(r, a, s);
        let now = Instant::now();
        let key: LogKey = (r, method.clone(), active.rule().clone(), shadow.rule().clone());
        {
            // Never wait on the request path: under contention this sample is skipped
            // (the difference is counted all the same; a later request logs it).
            let Ok(mut logged) = self.logged.try_lock() else { return false };
            if logged.get(&key).is_some_and(|t| now.duration_since(*t) < LOG_INTERVAL) {
                return false;
            }
            if logged.len() >= MAX_KEYS {
                logged.retain(|_, t| now.duration_since(*t) < LOG_INTERVAL);
                if logged.len() >= MAX_KEYS {
                    return false;
                }
            }
            logged.insert(key, now);
        }
        tracing::warn!(
            target: "prt_gate::shadow",
            role = SHADOW_ROLES[r],
            method = method.as_str(),
            path,
            active = active.decision(),
            active_rule = &**active.rule(),
            shadow = shadow.decision(),
            shadow_rule = &**shadow.rule(),
            "shadow policy decides differently (sample; once per role, method and rule pair per minute)"
        );
        true
    }
}

/// The same answer for the caller: decision, and landing page of a redirect.
fn same_answer(a: &Verdict<'_>, b: &Verdict<'_>) -> bool {
    match (a, b) {
        (Verdict::Redirect { to: x, .. }, Verdict::Redirect { to: y, .. }) => x == y,
        _ => a.decision() == b.decision(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;
    use crate::policy::{Auth, Features, PolicyInput, RawRoute, Role};
    use std::collections::BTreeMap;

    fn policy(roles: &[&str]) -> Policy {
        let routes = vec![RawRoute {
            path: "/api/x/".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..RawRoute::default()
        }];
        let (landing, pages) = (BTreeMap::new(), BTreeMap::new());
        Policy::compile(&PolicyInput { routes: &routes, landing: &landing, pages: &pages }, &|_| None).expect("valid").0
    }

    #[test]
    fn differences_are_counted_every_time_and_logged_once_per_key() {
        let (active, shadow) = (policy(&["Admin"]), policy(&["Admin", "Client"]));
        let path = normalize("/api/x/").expect("path");
        let f = Features::new();
        let client = Who::claims(Auth::Session, Role::Client, &f);
        let admin = Who::claims(Auth::Session, Role::Admin, &f);
        let s = Shadow::default();
        let m = Metrics::default();
        let decide = |p: &Policy, m: &Method, who| p.decide(m, &path, who);
        let (a, b) = (decide(&active, &Method::GET, client), decide(&shadow, &Method::GET, client));
        assert!(s.observe(&m, &Method::GET, "/api/x/", &client, &a, &b), "first difference is logged");
        assert!(!s.observe(&m, &Method::GET, "/api/x/", &client, &a, &b), "the same key within a minute is not");
        let (a2, b2) = (decide(&active, &Method::POST, client), decide(&shadow, &Method::POST, client));
        assert!(s.observe(&m, &Method::POST, "/api/x/", &client, &a2, &b2), "another method is another key");
        // Negative control: the same answer is neither counted nor logged.
        let (a3, b3) = (decide(&active, &Method::GET, admin), decide(&shadow, &Method::GET, admin));
        assert!(!s.observe(&m, &Method::GET, "/api/x/", &admin, &a3, &b3));
        let text = m.render();
        assert!(
            text.contains("prt_gate_shadow_diff_total{role=\"Client\",active=\"deny\",shadow=\"allow\"} 3\n"),
            "{text}"
        );
        assert!(!text.contains("role=\"Admin\""), "{text}");
    }
}
