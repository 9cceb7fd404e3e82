//! Process metrics, rendered as Prometheus text on the admin listener.
//!
//! Fixed-shape atomics: no locks, no allocation on the request path. Label
//! values come from closed enums, so the series set is bounded and known.
//! Phase names match `docs/phases.md`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What the gate decided about a request (the `decision` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the policy (forwarded, or answered by a gate-owned route).
    Allow,
    /// Unauthenticated: 401 or 302 to the login.
    Login,
    /// Forbidden by the policy: 403.
    Deny,
    /// A role outside its page allow-list: 302 to its landing page.
    Redirect,
    /// Malformed or ambiguous request refused before any other phase.
    Reject,
    /// A dependency failed before a decision could be made (session store, SSO).
    Error,
}

impl Decision {
    pub const ALL: [Decision; 6] =
        [Decision::Allow, Decision::Login, Decision::Deny, Decision::Redirect, Decision::Reject, Decision::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Login => "login",
            Decision::Deny => "deny",
            Decision::Redirect => "redirect",
            Decision::Reject => "reject",
            Decision::Error => "error",
        }
    }

    pub fn from_verdict(v: &str) -> Decision {
        match v {
            "login" => Decision::Login,
            "deny" => Decision::Deny,
            "redirect" => Decision::Redirect,
            _ => Decision::Allow,
        }
    }
}

/// Outcomes of `/auth/callback/` (the `outcome` label of `prt_gate_logins_total`).
pub const LOGIN_OUTCOMES: [&str; 9] = [
    "ok",
    "no_role",
    "bad_state",
    "bad_request",
    "bad_token",
    "sso_error",
    "sso_unavailable",
    "store_unavailable",
    "unbound",
];

/// Outcomes of `/media/` requests the policy allowed (`prt_gate_presigns_total`).
pub const PRESIGN_OUTCOMES: [&str; 4] = ["granted", "bad_key", "missing", "unavailable"];

/// The `role` label of `prt_gate_shadow_diff_total` (index = `Role as usize`, then these two).
pub const SHADOW_ROLES: [&str; 6] = ["Admin", "Office", "Operator", "Client", "anonymous", "unknown"];

/// Why the upstream could not answer (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamError {
    pub const ALL: [UpstreamError; 3] = [UpstreamError::Connect, UpstreamError::Timeout, UpstreamError::Protocol];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
        }
    }
}

const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A Prometheus histogram over [`BUCKETS`] (seconds).
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// All metrics of one gate process.
#[derive(Default)]
pub struct Metrics {
    /// `[decision][status class 1..=5]`.
    requests: [[AtomicU64; 5]; Decision::ALL.len()],
    upstream_errors: [AtomicU64; UpstreamError::ALL.len()],
    request_duration: Histogram,
    upstream_duration: Histogram,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    /// Times the accept loop found every `gate.max_connections` slot taken.
    connections_limited: AtomicU64,
    stripped_headers: AtomicU64,
    /// `[ok, failed]`.
    config_reloads: [AtomicU64; 2],
    logins: [AtomicU64; LOGIN_OUTCOMES.len()],
    presigns: [AtomicU64; PRESIGN_OUTCOMES.len()],
    /// Login-endpoint requests answered 429 (`gate.login_rate_limit`).
    login_rate_limited: AtomicU64,
    /// Shadow policy: `[role][active][shadow]` over the first four decisions; `[ok, failed]`.
    shadow_diffs: [[[AtomicU64; 4]; 4]; SHADOW_ROLES.len()],
    shadow_reloads: [AtomicU64; 2],
}

impl Metrics {
    pub fn request(&self, decision: Decision, status: u16, total: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.requests[decision as usize][class].fetch_add(1, Relaxed);
        self.request_duration.observe(total);
    }

    pub fn upstream_latency(&self, d: Duration) {
        self.upstream_duration.observe(d);
    }

    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    pub fn connection_limited(&self) {
        self.connections_limited.fetch_add(1, Relaxed);
    }

    pub fn stripped(&self, n: usize) {
        if n > 0 {
            self.stripped_headers.fetch_add(n as u64, Relaxed);
        }
    }

    pub fn login(&self, outcome: &str) {
        if let Some(i) = LOGIN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.logins[i].fetch_add(1, Relaxed);
        }
    }

    pub fn presign(&self, outcome: &str) {
        if let Some(i) = PRESIGN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.presigns[i].fetch_add(1, Relaxed);
        }
    }

    pub fn login_rate_limited(&self) {
        self.login_rate_limited.fetch_add(1, Relaxed);
    }

    /// A request the shadow policy decides differently (`role` indexes [`SHADOW_ROLES`]).
    pub fn shadow_diff(&self, role: usize, active: Decision, shadow: Decision) {
        if let Some(c) = self.shadow_diffs.get(role).and_then(|r| r.get(active as usize)?.get(shadow as usize)) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn shadow_reload(&self, ok: bool) {
        self.shadow_reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    pub fn config_reload(&self, ok: bool) {
        self.config_reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP prt_gate_requests_total Requests by decision and status class.\n");
        out.push_str("# TYPE prt_gate_requests_total counter\n");
        for d in Decision::ALL {
            for (i, c) in self.requests[d as usize].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "prt_gate_requests_total{{decision=\"{}\",status=\"{}xx\"}} {}",
                    d.as_str(),
                    i + 1,
                    c.load(Relaxed)
                );
            }
        }
        out.push_str("# HELP prt_gate_request_duration_seconds Total time from request head to response head.\n");
        out.push_str("# TYPE prt_gate_request_duration_seconds histogram\n");
        self.request_duration.render(&mut out, "prt_gate_request_duration_seconds", "");
        out.push_str("# HELP prt_gate_upstream_duration_seconds Time waiting for the upstream's response head.\n");
        out.push_str("# TYPE prt_gate_upstream_duration_seconds histogram\n");
        self.upstream_duration.render(&mut out, "prt_gate_upstream_duration_seconds", "");
        out.push_str("# HELP prt_gate_upstream_errors_total Upstream failures by kind.\n");
        out.push_str("# TYPE prt_gate_upstream_errors_total counter\n");
        for k in UpstreamError::ALL {
            let _ = writeln!(
                out,
                "prt_gate_upstream_errors_total{{kind=\"{}\"}} {}",
                k.as_str(),
                self.upstream_errors[k as usize].load(Relaxed)
            );
        }
        out.push_str(
            "# HELP prt_gate_stripped_headers_total Client-supplied reserved or underscore headers removed.\n",
        );
        out.push_str("# TYPE prt_gate_stripped_headers_total counter\n");
        let _ = writeln!(out, "prt_gate_stripped_headers_total {}", self.stripped_headers.load(Relaxed));
        out.push_str("# HELP prt_gate_config_reloads_total Configuration and policy reloads by result.\n");
        out.push_str("# TYPE prt_gate_config_reloads_total counter\n");
        for (i, result) in ["ok", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "prt_gate_config_reloads_total{{result=\"{result}\"}} {}",
                self.config_reloads[i].load(Relaxed)
            );
        }
        out.push_str("# HELP prt_gate_logins_total Login callbacks by outcome.\n");
        out.push_str("# TYPE prt_gate_logins_total counter\n");
        for (i, o) in LOGIN_OUTCOMES.iter().enumerate() {
            let _ = writeln!(out, "prt_gate_logins_total{{outcome=\"{o}\"}} {}", self.logins[i].load(Relaxed));
        }
        out.push_str(
            "# HELP prt_gate_login_rate_limited_total Login-endpoint requests refused by gate.login_rate_limit.\n",
        );
        out.push_str("# TYPE prt_gate_login_rate_limited_total counter\n");
        let _ = writeln!(out, "prt_gate_login_rate_limited_total {}", self.login_rate_limited.load(Relaxed));
        out.push_str("# HELP prt_gate_presigns_total Media requests the policy allowed, by outcome.\n");
        out.push_str("# TYPE prt_gate_presigns_total counter\n");
        for (i, o) in PRESIGN_OUTCOMES.iter().enumerate() {
            let _ = writeln!(out, "prt_gate_presigns_total{{outcome=\"{o}\"}} {}", self.presigns[i].load(Relaxed));
        }
        self.render_shadow(&mut out);
        out.push_str("# HELP prt_gate_connections_open Client connections currently open.\n");
        out.push_str("# TYPE prt_gate_connections_open gauge\n");
        let _ = writeln!(out, "prt_gate_connections_open {}", self.connections_open.load(Relaxed));
        out.push_str("# HELP prt_gate_connections_total Client connections accepted.\n");
        out.push_str("# TYPE prt_gate_connections_total counter\n");
        let _ = writeln!(out, "prt_gate_connections_total {}", self.connections_total.load(Relaxed));
        out.push_str(
            "# HELP prt_gate_connections_limited_total Times new connections had to wait for gate.max_connections.\n",
        );
        out.push_str("# TYPE prt_gate_connections_limited_total counter\n");
        let _ = writeln!(out, "prt_gate_connections_limited_total {}", self.connections_limited.load(Relaxed));
        out
    }

    /// The shadow policy's series (differences only where non-zero: 96 zero series would
    /// drown the page).
    fn render_shadow(&self, out: &mut String) {
        out.push_str("# HELP prt_gate_shadow_diff_total Requests the shadow policy decides differently, by role and decisions.\n");
        out.push_str("# TYPE prt_gate_shadow_diff_total counter\n");
        for (r, role) in SHADOW_ROLES.iter().enumerate() {
            for (a, active) in Decision::ALL[..4].iter().enumerate() {
                for (s, shadow) in Decision::ALL[..4].iter().enumerate() {
                    let n = self.shadow_diffs[r][a][s].load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "prt_gate_shadow_diff_total{{role=\"{role}\",active=\"{}\",shadow=\"{}\"}} {n}",
                            active.as_str(),
                            shadow.as_str()
                        );
                    }
                }
            }
        }
        out.push_str("# HELP prt_gate_shadow_reloads_total Shadow policy loads by result.\n");
        out.push_str("# TYPE prt_gate_shadow_reloads_total counter\n");
        for (i, result) in ["ok", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "prt_gate_shadow_reloads_total{{result=\"{result}\"}} {}",
                self.shadow_reloads[i].load(Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_the_right_series() {
        let m = Metrics::default();
        m.request(Decision::Allow, 200, Duration::from_millis(3));
        m.request(Decision::Reject, 400, Duration::from_micros(100));
        m.request(Decision::Allow, 502, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("prt_gate_requests_total{decision=\"allow\",status=\"2xx\"} 1\n"), "{text}");
        assert!(text.contains("prt_gate_requests_total{decision=\"reject\",status=\"4xx\"} 1\n"), "{text}");
        assert!(text.contains("prt_gate_requests_total{decision=\"allow\",status=\"5xx\"} 1\n"), "{text}");
        assert!(text.contains("prt_gate_requests_total{decision=\"allow\",status=\"4xx\"} 0\n"), "{text}");
        assert!(text.contains("prt_gate_request_duration_seconds_bucket{le=\"0.0025\"} 2\n"), "{text}");
        assert!(text.contains("prt_gate_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("prt_gate_request_duration_seconds_count 3\n"), "{text}");
    }
}
