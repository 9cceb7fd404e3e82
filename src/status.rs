//! The admin listener's read-only `/status` page: what the gate is doing, at a
//! glance, for a person. Plain HTML and CSS, no script; every value escaped.
//!
//! * the policy in force: file digest (SHA-256, as `sha256sum` prints it),
//!   when it was loaded, rule count;
//! * health of the session store (a `PING`), the upstream and the SSO (a TCP
//!   connect each), bounded to one second, checked when the page is asked for;
//! * the last refusals (role, method, normalized path, rule — never the user
//!   nor the query string), newest first;
//! * login outcomes;
//! * the route table with hits, allows, logins and refusals per rule since the
//!   gate started (the same counters as `prt_gate_rule_decisions_total`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::metrics::rules::ROLE_LABELS;
use crate::metrics::{Decision, LOGIN_OUTCOMES};
use crate::proxy::Gate;
use crate::session::SessionStore;

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f2f2}\
.ok{color:#176f2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}code{font-size:.95em}tr.hit{background:#fffbe6}";

/// Health of one dependency, as shown on the page.
struct Health {
    what: &'static str,
    ok: bool,
    detail: String,
}

async fn tcp_probe(addr: &str) -> bool {
    matches!(tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

async fn health(gate: &Gate) -> Vec<Health> {
    let config = gate.live.get();
    let store = async {
        let ok = matches!(tokio::time::timeout(PROBE_TIMEOUT, gate.store.ping()).await, Ok(Ok(())));
        let s = gate.store.stats().snapshot();
        Health { what: "session store", ok, detail: format!("{} operations, {} errors since start", s.ops, s.errors) }
    };
    let upstream_addr = config.gate.upstream.addr_hint.clone();
    let upstream = async {
        let ok = tcp_probe(&upstream_addr).await;
        Health { what: "upstream", ok, detail: format!("TCP connect to {upstream_addr}") }
    };
    let sso_addr = config.sso.base_url.as_ref().and_then(|u| {
        let host = u.host_str()?;
        let port = u.port_or_known_default()?;
        Some(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
    });
    let sso = async {
        match &sso_addr {
            Some(a) => Health { what: "SSO", ok: tcp_probe(a).await, detail: format!("TCP connect to {a}") },
            None => Health { what: "SSO", ok: false, detail: "not configured: nobody can log in".into() },
        }
    };
    let (a, b, c) = tokio::join!(store, upstream, sso);
    vec![a, b, c]
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The whole page.
pub async fn page(gate: &Gate) -> String {
    let m = &gate.metrics;
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>prt-gate status</title>\
         <style>{STYLE}</style></head><body><h1>prt-gate {} — status</h1>\
         <p>Started {} · page rendered {} · read-only</p>",
        esc(env!("CARGO_PKG_VERSION")),
        time(m.started()),
        time(SystemTime::now()),
    );

    h.push_str("<h2>Policy</h2><table>");
    match m.policy() {
        Some(p) => {
            let _ = write!(
                h,
                "<tr><th>digest (SHA-256 of the file)</th><td><code id=\"digest\">{}</code></td></tr>\
                 <tr><th>loaded</th><td id=\"loaded\">{}</td></tr><tr><th>rules</th><td class=\"n\">{}</td></tr>",
                esc(&p.digest),
                time(p.loaded_at),
                p.rules
            );
        }
        None => h.push_str("<tr><td>no policy loaded</td></tr>"),
    }
    h.push_str("</table>");

    h.push_str("<h2>Health</h2><table><tr><th>dependency</th><th>state</th><th>detail</th></tr>");
    for x in health(gate).await {
        let (class, word) = if x.ok { ("ok", "up") } else { ("bad", "DOWN") };
        let _ =
            write!(h, "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td></tr>", esc(x.what), esc(&x.detail));
    }
    h.push_str("</table>");

    recent(&mut h, gate);
    h.push_str("<h2>Logins (since start)</h2><table><tr>");
    for o in LOGIN_OUTCOMES {
        let _ = write!(h, "<th>{}</th>", esc(o));
    }
    h.push_str("</tr><tr>");
    for n in m.login_counts() {
        let _ = write!(h, "<td class=\"n\">{n}</td>");
    }
    h.push_str("</tr></table>");
    route_table(&mut h, gate);
    h.push_str("</body></html>\n");
    h
}

fn route_table(h: &mut String, gate: &Gate) {
    h.push_str(
        "<h2>Routes (since start)</h2><p>Refused = denied (403) or redirected to the role's landing page. \
         Series: <code>prt_gate_rule_decisions_total</code>.</p><table id=\"routes\"><tr><th>#</th><th>rule</th>\
         <th>who may pass</th><th>hits</th><th>allowed</th><th>login</th><th>refused</th>\
         <th>refused by role</th><th>errors</th></tr>",
    );
    let Some(table) = gate.metrics.rule_table() else {
        h.push_str("</table>");
        return;
    };
    let rules = table.policy().rules();
    for (slot, (label, counts)) in table.counts().into_iter().enumerate() {
        let sum = |d: Decision| counts.iter().map(|r| r[d as usize]).sum::<u64>();
        let hits: u64 = counts.iter().flatten().sum();
        let refused = sum(Decision::Deny) + sum(Decision::Redirect);
        let by_role: Vec<String> = ROLE_LABELS
            .iter()
            .zip(&counts)
            .filter_map(|(role, r)| {
                let n = r[Decision::Deny as usize] + r[Decision::Redirect as usize];
                (n > 0).then(|| format!("{role} {n}"))
            })
            .collect();
        let who = rules.get(slot).map_or_else(|| "built-in".to_owned(), |r| r.who());
        let name = rules.get(slot).filter(|r| *r.id != *r.pattern.as_str()).map(|r| format!(" ({})", r.id));
        let _ = write!(
            h,
            "<tr data-rule=\"{}\"{}><td class=\"n\">{slot}</td><td><code>{}</code>{}</td><td>{}</td><td class=\"n\">{hits}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{refused}</td><td>{}</td>\
             <td class=\"n\">{}</td></tr>",
            esc(label),
            if hits > 0 { " class=\"hit\"" } else { "" },
            esc(label),
            esc(name.as_deref().unwrap_or("")),
            esc(&who),
            sum(Decision::Allow),
            sum(Decision::Login),
            esc(&by_role.join(", ")),
            sum(Decision::Error),
        );
    }
    h.push_str("</table>");
}

fn recent(h: &mut String, gate: &Gate) {
    let refusals = gate.metrics.recent_refusals();
    let _ = write!(
        h,
        "<h2>Last refusals</h2><p>The {} most recent, newest first; no user, no query string.</p>\
         <table id=\"refusals\"><tr><th>time</th><th>role</th><th>method</th><th>path</th><th>rule</th><th>decision</th></tr>",
        crate::metrics::recent::CAPACITY
    );
    for r in refusals {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            time(r.at),
            esc(r.role),
            esc(&r.method),
            esc(&r.path),
            esc(&r.rule),
            esc(r.decision)
        );
    }
    h.push_str("</table>");
}

/// Escapes text for HTML (element content and quoted attributes). The dev SSO's pages use
/// it too.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
