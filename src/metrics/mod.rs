//! Process metrics, exposed as OpenMetrics text on the admin listener through
//! `prometheus-client` (every series: docs/metrics.md).
//!
//! Every series the request path touches is resolved to a handle (an atomic
//! behind an `Arc`) once: fixed-label series when [`Metrics`] is built, the
//! per-rule series once per policy version ([`rules`]). Recording is then one
//! relaxed atomic add: no lock, no hash lookup, no allocation. Label values
//! come from closed sets, so the series set is bounded and known. Phase names
//! match `docs/phases.md`.
//!
//! Adding a counter is one field and one line in [`Metrics::new`]:
//! `counters(r, "prt_gate_x", "Help.", "label", VALUES)` gives one handle per
//! label value known up front (record with `self.x[i].inc()`);
//! `family(r, "prt_gate_x", "Help.")` gives a `Family` for label sets only
//! known at run time (record with `get_or_create(&labels).inc()`, fine off the
//! hot path). Counter names are registered without `_total`; the encoder
//! appends it.

pub mod histogram;
pub mod recent;
pub mod rules;

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use self::histogram::Histogram;
use self::recent::{Recent, RecentRefusal};
use self::rules::RuleCounters;
use crate::config::Config;
use crate::policy::{Policy, Role};
use crate::session::{SessionStore, Store};

/// `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// The `role` label of `prt_gate_shadow_diff_total` (index = `Role as usize`, then these two).
pub const SHADOW_ROLES: [&str; 6] = ["Admin", "Office", "Operator", "Client", "anonymous", "unknown"];

/// Outcomes of `/media/` requests the policy allowed (`prt_gate_presigns_total`).
pub const PRESIGN_OUTCOMES: [&str; 4] = ["granted", "bad_key", "missing", "unavailable"];

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

/// Status classes of the `status` label (`1xx` … `5xx`).
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn class(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

/// Registers a counter family whose label values are all known up front and
/// returns one pre-resolved handle per value (see the module doc).
fn counters<const N: usize>(
    r: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: [&'static str; N],
) -> [Counter; N] {
    let family = Family::<[(&'static str, &'static str); 1], Counter>::default();
    let handles = values.map(|v| family.get_or_create_owned(&[(label, v)]));
    r.register(name, help, family);
    handles
}

/// Registers a counter family for label sets known only at run time.
fn family<L>(r: &mut Registry, name: &str, help: &str) -> Family<L, Counter>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Counter>::default();
    r.register(name, help, family.clone());
    family
}

fn counter(r: &mut Registry, name: &str, help: &str) -> Counter {
    let c = Counter::default();
    r.register(name, help, c.clone());
    c
}

fn histogram(r: &mut Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::default();
    r.register(name, help, h.clone());
    h
}

/// The policy in force, for `prt_gate_policy_info` and `/status`.
#[derive(Debug, Clone)]
pub struct PolicyState {
    /// SHA-256 of the configuration file as loaded (hex): compare with `sha256sum`.
    pub digest: Arc<str>,
    pub rules: usize,
    /// When this version became the one in force.
    pub loaded_at: SystemTime,
}

/// Scrape-time series: the policy in force and the session store's own counters.
#[derive(Debug, Default)]
struct Live {
    policy: ArcSwapOption<PolicyState>,
    store: OnceLock<Arc<Store>>,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(p) = self.policy.load_full() {
            let info = Info::new([("digest", p.digest.to_string())]);
            info.encode(encoder.encode_descriptor(
                "prt_gate_policy",
                "The policy in force: SHA-256 of the configuration file.",
                None,
                info.metric_type(),
            )?)?;
            let rules = ConstGauge::new(i64::try_from(p.rules).unwrap_or(i64::MAX));
            rules.encode(encoder.encode_descriptor(
                "prt_gate_policy_rules",
                "Rules ([[route]] tables) of the policy in force.",
                None,
                rules.metric_type(),
            )?)?;
            let at = p.loaded_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let loaded = ConstGauge::new(at);
            loaded.encode(encoder.encode_descriptor(
                "prt_gate_policy_loaded_timestamp_seconds",
                "When the policy in force was loaded (start or last successful reload), Unix time.",
                None,
                loaded.metric_type(),
            )?)?;
        }
        if let Some(store) = self.store.get() {
            let s = store.stats().snapshot();
            for (name, help, v) in [
                ("prt_gate_session_store_operations", "Session store round trips (Redis commands).", s.ops),
                ("prt_gate_session_store_errors", "Session store operations that failed or timed out.", s.errors),
                ("prt_gate_session_cache_hits", "Session lookups answered by the hot cache.", s.cache_hits),
                ("prt_gate_session_cache_misses", "Session lookups that asked the store.", s.cache_misses),
            ] {
                let c = ConstCounter::new(v);
                c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
            }
            let h = store.stats().latency.clone();
            h.encode(encoder.encode_descriptor(
                "prt_gate_session_store_duration_seconds",
                "Session store round-trip time (Redis commands, errors and timeouts included).",
                None,
                h.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// All metrics of one gate process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `[decision][status class]`.
    requests: [[Counter; 5]; Decision::ALL.len()],
    request_duration: Histogram,
    upstream_duration: Histogram,
    upstream_responses: [Counter; 5],
    upstream_errors: [Counter; UpstreamError::ALL.len()],
    connections_open: Gauge<i64, AtomicI64>,
    /// HTTP/1 connections inside a busy period (the rest of the open ones wait idle,
    /// holding only their socket; HTTP/2 connections count as busy for their life).
    connections_busy: Gauge<i64, AtomicI64>,
    connections_total: Counter,
    /// Times the accept loop found every `gate.max_connections` slot taken.
    connections_limited: Counter,
    stripped_headers: Counter,
    /// `[ok, failed]`.
    config_reloads: [Counter; 2],
    logins: [Counter; LOGIN_OUTCOMES.len()],
    presigns: [Counter; PRESIGN_OUTCOMES.len()],
    /// Login-endpoint requests answered 429 (`gate.login_rate_limit`).
    login_rate_limited: Counter,
    /// Shadow policy differences (`role`, `active`, `shadow`): created on the first
    /// difference, so only differences that happened are exported.
    shadow_diffs: Family<[(&'static str, &'static str); 3], Counter>,
    /// Shadow policy loads, `[ok, failed]`.
    shadow_reloads: [Counter; 2],
    rules: Arc<RuleCounters>,
    live: Arc<Live>,
    recent: Recent,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A `Family` registered by reference (it is `Clone`, sharing its series).
#[derive(Debug)]
struct SharedFamily(Arc<RuleCounters>);

impl EncodeMetric for SharedFamily {
    fn encode(&self, encoder: prometheus_client::encoding::MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.family.encode(encoder)
    }
    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Counter
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut reg = Registry::default();
        let r = &mut reg;
        let requests_family = Family::<[(&'static str, &'static str); 2], Counter>::default();
        let requests = Decision::ALL.map(|d| {
            STATUS_CLASSES.map(|c| requests_family.get_or_create_owned(&[("decision", d.as_str()), ("status", c)]))
        });
        r.register("prt_gate_requests", "Requests by decision and status class.", requests_family);
        let rules = Arc::new(RuleCounters::default());
        r.register(
            "prt_gate_rule_decisions",
            "Policy decisions by rule (METHODS /pattern, or no_rule, default, roles.pages), role and decision.",
            SharedFamily(rules.clone()),
        );
        let live = Arc::new(Live::default());
        r.register_collector(Box::new(live.clone()));
        r.register("prt_gate_build", "The gate's version.", Info::new([("version", env!("CARGO_PKG_VERSION"))]));
        let connections_open = Gauge::<i64, AtomicI64>::default();
        r.register("prt_gate_connections_open", "Client connections currently open.", connections_open.clone());
        let connections_busy = Gauge::<i64, AtomicI64>::default();
        r.register(
            "prt_gate_connections_busy",
            "Client connections reading or answering a request (the other open ones are idle keep-alive connections).",
            connections_busy.clone(),
        );
        Metrics {
            requests,
            request_duration: histogram(
                r,
                "prt_gate_request_duration_seconds",
                "Total time from request head to response head.",
            ),
            upstream_duration: histogram(
                r,
                "prt_gate_upstream_duration_seconds",
                "Time waiting for the upstream's response head.",
            ),
            upstream_responses: counters(
                r,
                "prt_gate_upstream_responses",
                "Upstream responses by status class.",
                "status",
                STATUS_CLASSES,
            ),
            upstream_errors: counters(
                r,
                "prt_gate_upstream_errors",
                "Upstream failures by kind.",
                "kind",
                UpstreamError::ALL.map(UpstreamError::as_str),
            ),
            connections_open,
            connections_busy,
            connections_total: counter(r, "prt_gate_connections", "Client connections accepted."),
            connections_limited: counter(
                r,
                "prt_gate_connections_limited",
                "Times new connections had to wait for gate.max_connections.",
            ),
            stripped_headers: counter(
                r,
                "prt_gate_stripped_headers",
                "Client-supplied reserved or underscore headers removed.",
            ),
            config_reloads: counters(
                r,
                "prt_gate_config_reloads",
                "Configuration and policy reloads by result.",
                "result",
                ["ok", "failed"],
            ),
            logins: counters(r, "prt_gate_logins", "Login callbacks by outcome.", "outcome", LOGIN_OUTCOMES),
            presigns: counters(
                r,
                "prt_gate_presigns",
                "Media requests the policy allowed, by outcome.",
                "outcome",
                PRESIGN_OUTCOMES,
            ),
            login_rate_limited: counter(
                r,
                "prt_gate_login_rate_limited",
                "Login-endpoint requests refused by gate.login_rate_limit.",
            ),
            shadow_diffs: family(
                r,
                "prt_gate_shadow_diff",
                "Requests the shadow policy decides differently, by role and decisions.",
            ),
            shadow_reloads: counters(
                r,
                "prt_gate_shadow_reloads",
                "Shadow policy loads by result.",
                "result",
                ["ok", "failed"],
            ),
            registry: reg,
            rules,
            live,
            recent: Recent::default(),
            started: SystemTime::now(),
        }
    }

    pub fn request(&self, decision: Decision, status: u16, total: Duration) {
        self.requests[decision as usize][class(status)].inc();
        self.request_duration.observe(total);
    }

    /// One policy decision, under the policy version the request ran with.
    pub fn rule_decision(&self, policy: &Arc<Policy>, slot: usize, role: Option<Role>, decision: Decision) {
        self.rules.record(policy, slot, role, decision);
    }

    /// A refused request for the `/status` page's "last refusals" (no user, no query).
    pub fn refusal(&self, r: RecentRefusal) {
        self.recent.push(r);
    }

    pub fn upstream_response(&self, status: u16, latency: Duration) {
        self.upstream_responses[class(status)].inc();
        self.upstream_duration.observe(latency);
    }

    pub fn upstream_latency(&self, d: Duration) {
        self.upstream_duration.observe(d);
    }

    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].inc();
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
        self.connections_total.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection's busy period, counted until the returned guard is dropped.
    pub fn connection_busy(self: &Arc<Self>) -> Busy {
        self.connections_busy.inc();
        Busy(self.clone())
    }

    pub fn connection_limited(&self) {
        self.connections_limited.inc();
    }

    pub fn stripped(&self, n: usize) {
        if n > 0 {
            self.stripped_headers.inc_by(n as u64);
        }
    }

    pub fn login(&self, outcome: &str) {
        if let Some(i) = LOGIN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.logins[i].inc();
        }
    }

    pub fn presign(&self, outcome: &str) {
        if let Some(i) = PRESIGN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.presigns[i].inc();
        }
    }

    pub fn config_reload(&self, ok: bool) {
        self.config_reloads[usize::from(!ok)].inc();
    }

    pub fn login_rate_limited(&self) {
        self.login_rate_limited.inc();
    }

    /// A request the shadow policy decides differently (`role` indexes [`SHADOW_ROLES`]).
    /// Rare by design (a difference), so the family lookup here is not on the common path.
    pub fn shadow_diff(&self, role: usize, active: Decision, shadow: Decision) {
        if let Some(role) = SHADOW_ROLES.get(role) {
            self.shadow_diffs
                .get_or_create(&[("role", role), ("active", active.as_str()), ("shadow", shadow.as_str())])
                .inc();
        }
    }

    pub fn shadow_reload(&self, ok: bool) {
        self.shadow_reloads[usize::from(!ok)].inc();
    }

    /// Makes `config`'s policy the one in force for the per-rule counters and the
    /// policy series (at start and after each successful reload).
    pub fn adopt(&self, config: &Config) {
        self.rules.adopt(&config.policy);
        let state = PolicyState {
            digest: config.digest.clone(),
            rules: config.policy.rules().len(),
            loaded_at: SystemTime::now(),
        };
        self.live.policy.store(Some(Arc::new(state)));
    }

    /// Exports the session store's counters and latency from now on.
    pub fn watch_store(&self, store: Arc<Store>) {
        let _ = self.live.store.set(store);
    }

    /// The policy in force, as [`Metrics::adopt`] last saw it.
    pub fn policy(&self) -> Option<Arc<PolicyState>> {
        self.live.policy.load_full()
    }

    /// Per-rule counts of the policy in force (for `/status`).
    pub fn rule_table(&self) -> Option<Arc<rules::RuleTable>> {
        self.rules.table()
    }

    /// The last refusals, newest first.
    pub fn recent_refusals(&self) -> Vec<RecentRefusal> {
        self.recent.snapshot()
    }

    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Login outcome counts, in [`LOGIN_OUTCOMES`] order.
    pub fn login_counts(&self) -> [u64; LOGIN_OUTCOMES.len()] {
        self.logins.each_ref().map(Counter::get)
    }

    /// OpenMetrics text ([`CONTENT_TYPE`]), ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A busy period counted in `prt_gate_connections_busy` ([`Metrics::connection_busy`]).
pub struct Busy(Arc<Metrics>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.connections_busy.dec();
    }
}

#[cfg(test)]
mod tests;
