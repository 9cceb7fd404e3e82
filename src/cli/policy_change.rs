//! `prt-gate diff` and `prt-gate replay`: what a policy change would change, before it is
//! enforced. Both exit 0 when nothing changes, 1 when something does (a CI gate), 2 on a
//! usage error, an invalid policy or an unreadable log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::exit;
use super::Format;
use crate::config::Config;
use crate::policy::diff::{self, Change};
use crate::policy::Policy;
use crate::replay::{self, Limits, Replay};

/// `prt-gate diff OLD NEW`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The policy in force (a `policy.toml`, or a file of `[[route]]` and `[roles]` only).
    pub old: PathBuf,
    /// The candidate policy.
    pub new: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// `prt-gate replay --policy NEW ACCESS_LOG…`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The candidate policy to decide the logged requests with.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Access logs of the gate (JSON lines; `.gz` accepted; `-` is standard input).
    #[arg(required = true, value_name = "ACCESS_LOG")]
    pub logs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Most groups reported; further changed requests are counted as ungrouped.
    #[arg(long, default_value_t = Limits::default().max_groups, value_name = "N")]
    pub max_groups: usize,
    /// Sample requests kept per group.
    #[arg(long, default_value_t = Limits::default().samples, value_name = "N")]
    pub samples: usize,
}

fn load(what: &str, path: &Path) -> Result<Policy, ExitCode> {
    match Config::load_policy(path) {
        Ok((policy, _warnings)) => Ok(policy),
        Err(e) => {
            eprintln!("prt-gate {what}: invalid policy:\n{e}");
            Err(exit::usage())
        }
    }
}

fn finish(result: std::io::Result<()>, changed: bool) -> ExitCode {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => exit::usage(),
        _ if changed => exit::failure(),
        _ => ExitCode::SUCCESS,
    }
}

#[derive(Serialize)]
struct DiffJson<'a> {
    old: String,
    new: String,
    probes: usize,
    callers: usize,
    changes: &'a [Change],
}

pub fn diff(args: &DiffArgs) -> ExitCode {
    let (old, new) = match (load("diff", &args.old), load("diff", &args.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let changes = diff::diff(&old, &new);
    let probes = diff::probe_paths(&old, &new).len();
    let callers = diff::callers(&old, &new).0.len();
    let mut out = std::io::stdout().lock();
    let result = match args.format {
        Format::Json => {
            let j = DiffJson {
                old: args.old.display().to_string(),
                new: args.new.display().to_string(),
                probes,
                callers,
                changes: &changes,
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&j).unwrap_or_default())
        }
        Format::Text => write_diff(&mut out, args, &changes, probes, callers),
    };
    finish(result, !changes.is_empty())
}

fn write_diff(
    out: &mut impl Write,
    args: &DiffArgs,
    changes: &[Change],
    probes: usize,
    callers: usize,
) -> std::io::Result<()> {
    let asked = format!("{probes} paths × {} methods × {callers} callers", diff::METHODS.len());
    if changes.is_empty() {
        return writeln!(out, "no changes: {} and {} answer alike ({asked})", args.old.display(), args.new.display());
    }
    writeln!(out, "{} change(s) from {} to {} ({asked}):", changes.len(), args.old.display(), args.new.display())?;
    let old: Vec<String> = changes.iter().map(|c| c.old.to_string()).collect();
    let cw = changes.iter().map(|c| c.caller.len()).max().unwrap_or(0).max(6);
    let pw = changes.iter().map(|c| c.path.len()).max().unwrap_or(0).max(4);
    let ow = old.iter().map(String::len).max().unwrap_or(0).max(3);
    writeln!(out, "{:cw$}  {:7}  {:pw$}  {:ow$}  NEW", "CALLER", "METHOD", "PATH", "OLD")?;
    for (c, o) in changes.iter().zip(&old) {
        writeln!(out, "{:cw$}  {:7}  {:pw$}  {o:ow$}  {}", c.caller, c.method, c.path, c.new)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct ReplayJson<'a> {
    policy: String,
    #[serde(flatten)]
    totals: replay::Totals,
    peak_rss_kib: Option<u64>,
    groups: Vec<&'a replay::Group>,
}

pub fn replay(args: &ReplayArgs) -> ExitCode {
    if args.max_groups == 0 {
        eprintln!("prt-gate replay: --max-groups must be at least 1");
        return exit::usage();
    }
    let policy = match load("replay", &args.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let limits = Limits { max_groups: args.max_groups, samples: args.samples, ..Limits::default() };
    let mut r = Replay::new(&policy, limits);
    for log in &args.logs {
        let read = if log.as_os_str() == "-" {
            r.read(std::io::stdin().lock())
        } else {
            std::fs::File::open(log).and_then(|f| r.read(f))
        };
        if let Err(e) = read {
            eprintln!("prt-gate replay: {}: {e}", log.display());
            return exit::usage();
        }
    }
    let t = r.totals;
    let peak = replay::peak_rss_kib();
    let groups = r.groups();
    let mut out = std::io::stdout().lock();
    let result = match args.format {
        Format::Json => {
            let j = ReplayJson { policy: args.policy.display().to_string(), totals: t, peak_rss_kib: peak, groups };
            writeln!(out, "{}", serde_json::to_string_pretty(&j).unwrap_or_default())
        }
        Format::Text => write_replay(&mut out, args, &t, peak, &groups),
    };
    finish(result, t.changed > 0)
}

fn write_replay(
    out: &mut impl Write,
    args: &ReplayArgs,
    t: &replay::Totals,
    peak: Option<u64>,
    groups: &[&replay::Group],
) -> std::io::Result<()> {
    let peak = peak.map_or(String::new(), |k| format!("; peak memory {:.1} MiB", k as f64 / 1024.0));
    writeln!(
        out,
        "replayed {} requests of {} lines ({} skipped) under {}: {} would be decided differently ({} beyond the group limit){peak}",
        t.replayed,
        t.lines,
        t.skipped,
        args.policy.display(),
        t.changed,
        t.ungrouped
    )?;
    if groups.is_empty() {
        return Ok(());
    }
    let side = |d: &str, r: &str| format!("{d} [{r}]");
    let rows: Vec<(String, String)> = groups
        .iter()
        .map(|g| (side(&g.key.old_decision, &g.key.old_rule), side(g.key.new_decision, &g.key.new_rule)))
        .collect();
    let rw = groups.iter().map(|g| g.key.role.len()).max().unwrap_or(0).max(4);
    let ow = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(3);
    let nw = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(3);
    writeln!(out, "{:rw$}  {:>9}  {:ow$}  {:nw$}  SAMPLES", "ROLE", "COUNT", "OLD", "NEW")?;
    for (g, (o, n)) in groups.iter().zip(&rows) {
        writeln!(out, "{:rw$}  {:>9}  {o:ow$}  {n:nw$}  {}", g.key.role, g.count, g.samples.join(", "))?;
    }
    Ok(())
}
