//! `prt-gate replay --policy NEW ACCESS_LOG…`: re-decides every request of the gate's
//! own access log under another policy and groups those whose decision would change by
//! role × old decision and rule → new decision and rule.
//!
//! Streaming and bounded: lines are read one at a time into one reused buffer (a line
//! longer than [`Limits::max_line`] is skipped, not buffered); at most
//! [`Limits::max_groups`] groups are kept (further changed requests are counted as
//! `ungrouped`), each with at most [`Limits::samples`] distinct sample requests of at most
//! [`MAX_SAMPLE`] bytes. Memory therefore does not grow with the size of the logs.
//! Gzip input (`.gz`, recognised by its magic bytes) is decompressed on the fly.
//!
//! What a line must carry is what the access line holds (`docs/phases.md`): `method`,
//! the normalized `path`, `decision`, `rule`, `role`, `auth` (the credential kind that
//! authenticated the caller) and `features`. Lines the policy did not decide (gate-owned
//! routes, `reject`, `error`) and lines that are not access lines are skipped and counted.
//! A request the old policy decided without looking at the caller (public route,
//! `no_rule`) carries no role and is replayed as anonymous.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use http::Method;
use serde::{Deserialize, Serialize};

use crate::normalize::normalize;
use crate::policy::{Auth, Features, Policy, Role, Who};

/// Longest sample request kept (`METHOD path`), in bytes.
pub const MAX_SAMPLE: usize = 200;

/// The bounds of one replay.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_groups: usize,
    pub samples: usize,
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_groups: 10_000, samples: 3, max_line: 64 * 1024 }
    }
}

/// Grouping key: role × old → new.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    pub role: String,
    pub old_decision: String,
    pub old_rule: String,
    pub new_decision: &'static str,
    pub new_rule: String,
}

/// One group of changed requests.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    #[serde(flatten)]
    pub key: GroupKey,
    pub count: u64,
    pub samples: Vec<String>,
}

/// Counts of one replay.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    /// Lines read.
    pub lines: u64,
    /// Requests re-decided.
    pub replayed: u64,
    /// Lines that are not decided access lines (other log lines, gate-owned routes,
    /// rejected or failed requests, unparsable lines, over-long lines).
    pub skipped: u64,
    /// Requests whose decision changes.
    pub changed: u64,
    /// Changed requests beyond the group limit (counted in `changed`, in no group).
    pub ungrouped: u64,
}

/// The access-line fields a decision needs (others are ignored).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    decision: Cow<'a, str>,
    #[serde(borrow, default)]
    rule: Cow<'a, str>,
    #[serde(borrow, default)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    auth: Cow<'a, str>,
    #[serde(borrow, default)]
    features: Cow<'a, str>,
    /// The tenant code the gate's tenant matches compared (empty: none).
    #[serde(borrow, default)]
    tenant_code: Cow<'a, str>,
}

/// A replay in progress.
pub struct Replay<'p> {
    policy: &'p Policy,
    limits: Limits,
    groups: HashMap<GroupKey, Group>,
    pub totals: Totals,
}

impl<'p> Replay<'p> {
    pub fn new(policy: &'p Policy, limits: Limits) -> Self {
        Replay { policy, limits, groups: HashMap::new(), totals: Totals::default() }
    }

    /// Replays every line of `input` (plain or gzip).
    pub fn read(&mut self, input: impl Read) -> std::io::Result<()> {
        let mut reader = BufReader::with_capacity(64 * 1024, input);
        let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        if gzip {
            self.read_lines(BufReader::with_capacity(64 * 1024, flate2::bufread::MultiGzDecoder::new(reader)))
        } else {
            self.read_lines(reader)
        }
    }

    fn read_lines(&mut self, mut reader: impl BufRead) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            let limit = self.limits.max_line as u64 + 1;
            let n = reader.by_ref().take(limit).read_until(b'\n', &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.totals.lines += 1;
            if buf.len() > self.limits.max_line && buf.last() != Some(&b'\n') {
                // Over-long: skip the rest of the line without keeping it.
                self.totals.skipped += 1;
                skip_line(&mut reader)?;
                continue;
            }
            if !self.line(&buf) {
                self.totals.skipped += 1;
            }
            if buf.capacity() > 2 * self.limits.max_line {
                buf.shrink_to(4096);
            }
        }
    }

    /// Replays one line; `false` when it is not a decided access line.
    pub fn line(&mut self, bytes: &[u8]) -> bool {
        let Ok(line) = serde_json::from_slice::<Line<'_>>(bytes) else { return false };
        if line.target.as_deref().is_some_and(|t| t != "access") {
            return false;
        }
        if !matches!(&*line.decision, "allow" | "login" | "deny" | "redirect") || line.rule.starts_with("gate:") {
            return false;
        }
        let Ok(method) = Method::from_bytes(line.method.as_bytes()) else { return false };
        let Ok(path) = normalize(&line.path) else { return false };
        let features = parse_features(&line.features);
        // The logged role is read back like any role a credential names: one the gate
        // does not know decides as unknown (denied by every rule that is not public).
        let who = match (&*line.role, &*line.auth) {
            ("", _) => Who::Anonymous,
            (role, "bearer") => Who::claims(Auth::Bearer, Role::parse(role), &features),
            // Lines of gates before `auth` was logged carry no kind: the session cookie.
            (role, _) => Who::claims(Auth::Session, Role::parse(role), &features),
        };
        self.totals.replayed += 1;
        let tenant = Some(&*line.tenant_code).filter(|t| !t.is_empty());
        let verdict = self.policy.route_for(&method, &path).decide_in(who, tenant);
        if verdict.decision() == line.decision {
            return true;
        }
        self.totals.changed += 1;
        let key = GroupKey {
            role: if line.role.is_empty() { "anonymous".into() } else { line.role.to_string() },
            old_decision: line.decision.to_string(),
            old_rule: line.rule.to_string(),
            new_decision: verdict.decision(),
            new_rule: verdict.rule().to_string(),
        };
        let full = self.groups.len() >= self.limits.max_groups;
        let group = match self.groups.get_mut(&key) {
            Some(g) => g,
            None if full => {
                self.totals.ungrouped += 1;
                return true;
            }
            None => self.groups.entry(key.clone()).or_insert(Group { key, count: 0, samples: Vec::new() }),
        };
        group.count += 1;
        if group.samples.len() < self.limits.samples {
            let mut sample = format!("{method} {}", path.as_str());
            truncate(&mut sample, MAX_SAMPLE);
            if !group.samples.contains(&sample) {
                group.samples.push(sample);
            }
        }
        true
    }

    /// The groups, largest first (then by key, for a stable order).
    pub fn groups(&self) -> Vec<&Group> {
        let mut g: Vec<&Group> = self.groups.values().collect();
        g.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        g
    }
}

/// `bol:view,bol:edit` → `{bol: [view, edit]}` (the access line's `features` field).
pub fn parse_features(s: &str) -> Features {
    let mut f = Features::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        if let Some((feat, perm)) = item.split_once(':') {
            f.entry(feat.to_string()).or_default().push(perm.to_string());
        }
    }
    f
}

/// The access line's `features` field: `feature:permission` pairs, comma-separated.
pub fn format_features(f: &Features) -> String {
    // Sized once (per request on authenticated routes: no regrowth while appending).
    let len: usize = f.iter().map(|(feat, perms)| perms.iter().map(|p| feat.len() + p.len() + 2).sum::<usize>()).sum();
    let mut out = String::with_capacity(len);
    for (feat, perms) in f {
        for p in perms {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(feat);
            out.push(':');
            out.push_str(p);
        }
    }
    out
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', chunk) {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

/// Peak resident memory of this process (`VmHWM`), in KiB, where `/proc` has it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn policy(toml_routes: &str) -> Policy {
        #[derive(Deserialize)]
        struct R {
            route: Vec<crate::policy::RawRoute>,
        }
        let r: R = toml::from_str(toml_routes).expect("routes");
        let (landing, pages) = (BTreeMap::new(), BTreeMap::new());
        let input = crate::policy::PolicyInput { routes: &r.route, landing: &landing, pages: &pages };
        Policy::compile(&input, &|_| None).expect("valid").0
    }

    #[test]
    fn features_round_trip_and_decide() {
        let f = parse_features("bol:edit,bol:view,lots:read");
        assert_eq!(format_features(&f), "bol:edit,bol:view,lots:read");
        let p = policy(
            "[[route]]\npath = \"/api/bol/\"\nmethods = [\"POST\"]\nroles = [\"Office\"]\nfeatures = [\"bol:edit\"]\n",
        );
        let mut r = Replay::new(&p, Limits::default());
        // Same decision under the new policy: replayed, not changed.
        let with = br#"{"target":"access","method":"POST","path":"/api/bol/","decision":"allow","rule":"/api/bol/","role":"Office","auth":"session","features":"bol:edit"}"#;
        // Without the feature the new policy denies: changed.
        let without = br#"{"target":"access","method":"POST","path":"/api/bol/","decision":"allow","rule":"x","role":"Office","auth":"session","features":"bol:view"}"#;
        assert!(r.line(with));
        assert!(r.line(without));
        assert_eq!((r.totals.replayed, r.totals.changed), (2, 1));
        let g = r.groups();
        assert_eq!(g.len(), 1);
        assert_eq!(
            (g[0].key.old_rule.as_str(), g[0].key.new_decision, &*g[0].key.new_rule),
            ("x", "deny", "/api/bol/")
        );
    }

    #[test]
    fn tenant_matches_replay_with_the_logged_tenant_code() {
        let p = policy("[[route]]\npath = \"/tenant/{code}/pigiron/\"\nroles = [\"Office\"]\ntenant = \"{code}\"\n");
        let mut r = Replay::new(&p, Limits::default());
        let own = br#"{"target":"access","method":"GET","path":"/tenant/PRT/pigiron/","decision":"allow","rule":"x","role":"Office","auth":"session","features":"","tenant_code":"PRT"}"#;
        let foreign = br#"{"target":"access","method":"GET","path":"/tenant/ACME/pigiron/","decision":"allow","rule":"x","role":"Office","auth":"session","features":"","tenant_code":"PRT"}"#;
        assert!(r.line(own));
        assert!(r.line(foreign));
        // Only the foreign tenant's request changes (the own one would too if the code
        // were not read: an unscoped caller is refused by the tenant match).
        assert_eq!((r.totals.replayed, r.totals.changed), (2, 1));
        assert_eq!(r.groups()[0].samples, vec!["GET /tenant/ACME/pigiron/".to_string()]);
    }

    #[test]
    fn skips_lines_the_policy_did_not_decide() {
        let p = policy("[[route]]\npath = \"/api/x/\"\nroles = [\"Admin\"]\n");
        let mut r = Replay::new(&p, Limits::default());
        for l in [
            &br#"{"target":"prt_gate::reload","message":"configuration reloaded"}"#[..],
            br#"{"target":"access","method":"GET","path":"/auth/callback/","decision":"allow","rule":"gate:callback"}"#,
            br#"{"target":"access","method":"GET","path":"-","decision":"reject","rule":""}"#,
            br#"{"target":"access","method":"GET","path":"/api/x/","decision":"error","rule":"/api/x/"}"#,
            b"not json",
        ] {
            assert!(!r.line(l), "{}", String::from_utf8_lossy(l));
        }
        // Positive control: a decided line is replayed.
        assert!(r.line(br#"{"target":"access","method":"GET","path":"/api/x/","decision":"allow","rule":"/api/x/","role":"Admin","auth":"session","features":""}"#));
        assert_eq!((r.totals.replayed, r.totals.changed), (1, 0));
    }

    #[test]
    fn group_and_sample_bounds_hold() {
        let p = policy("[[route]]\npath = \"/api/x/\"\nroles = [\"Admin\"]\n");
        let mut r = Replay::new(&p, Limits { max_groups: 2, samples: 2, max_line: 1024 });
        let mut input = String::new();
        for (i, role) in ["Client", "Client", "Client", "Operator", "Office", "Office"].iter().enumerate() {
            input.push_str(&format!(
                "{{\"target\":\"access\",\"method\":\"GET\",\"path\":\"/api/x/{i}\",\"decision\":\"allow\",\"rule\":\"old\",\"role\":\"{role}\",\"auth\":\"session\"}}\n"
            ));
        }
        input.push_str(&format!("{}\n", "x".repeat(5000)));
        r.read(input.as_bytes()).expect("read");
        assert_eq!(r.totals.lines, 7);
        assert_eq!(r.totals.skipped, 1, "the over-long line");
        assert_eq!((r.totals.changed, r.totals.ungrouped), (6, 2));
        let g = r.groups();
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].key.role.as_str(), g[0].count, g[0].samples.len()), ("Client", 3, 2));
    }
}
