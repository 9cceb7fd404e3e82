//! Command line: parses arguments, loads configuration, maps outcomes to exit
//! codes (0 ok, 1 runtime failure, 2 usage or invalid configuration).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, StoreKind};
use crate::metrics::Metrics;
use crate::policy::explain::{Caller, Explanation};
use crate::policy::{Features, Policy, Role, Verdict};
use crate::proxy::{self, Gate};
use crate::reload::Live;

mod policy_change;
mod run;

/// Exit codes, in one place: 0 ok, 1 runtime failure, 2 usage or invalid configuration.
pub mod exit {
    use std::process::ExitCode;

    /// A runtime failure (cannot listen, cannot start a runtime, I/O error).
    pub fn failure() -> ExitCode {
        ExitCode::from(1)
    }

    /// A usage error or an invalid configuration: nothing was started.
    pub fn usage() -> ExitCode {
        ExitCode::from(2)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "prt-gate",
    version,
    about = "Security sidecar for the PrimeTrade Django app",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file (policy.toml).
    #[arg(long, global = true, env = "PRT_GATE_CONFIG", default_value = "policy.toml", value_name = "FILE")]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// List live sessions (never their ids): handle, email, role, times.
    List {
        /// Only this user's sessions (email, case-insensitive).
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Delete sessions: every replica refuses them within 1 s.
    Revoke {
        #[arg(long, value_name = "EMAIL", conflicts_with = "all", required_unless_present = "all")]
        user: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gate in front of a separately started upstream.
    Serve {
        /// Drain and exit when standard input reaches end of file: for a
        /// supervising parent (`prt-gate demo`) that may die without a chance
        /// to stop the gate. Not needed under systemd or a container runtime.
        #[arg(long, hide = true)]
        exit_on_stdin_eof: bool,
    },
    /// Start the gate and the upstream as its child process (scrubbing its logs).
    Run {
        /// The upstream command, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Validate configuration and policy; exit non-zero on any error.
    Check {
        /// File to check (default: --config).
        file: Option<PathBuf>,
    },
    /// Show what the policy decides for a request (decision, status, rule).
    Explain(ExplainArgs),
    /// Compare two policies: the requests whose answer changes (exit 1 if any).
    Diff(policy_change::DiffArgs),
    /// Re-decide the requests of access logs under another policy (exit 1 if any changes).
    Replay(policy_change::ReplayArgs),
    /// Filter stdin to stdout, removing secrets.
    Redact,
    /// List or revoke sessions in the configured store.
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Print a presigned media URL for a key.
    ///
    /// Uses `[media]` from the configuration and the AWS credentials in the
    /// environment, with the same key mapping and allow-list as `/media/`.
    Presign {
        /// The object as in `/media/<KEY>`, e.g. `bols/2025/PRT-2025-0002.pdf`
        /// (a leading `/media/` is accepted).
        key: String,
        /// How long the URL is valid (default: `media.expires`; at most 7d).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Run a local OIDC provider with the barge2rail-auth contract (loopback only;
    /// development builds only).
    #[cfg_attr(feature = "dev-tools", command(after_help = crate::devsso::USERS_FILE_HELP))]
    DevSso {
        /// Loopback address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR")]
        listen: SocketAddr,
        /// TOML file of users replacing the built-in ones (format below).
        #[arg(long, value_name = "FILE")]
        users: Option<PathBuf>,
    },
    /// Start a self-contained demo: dev SSO, demo upstream, S3 target with a
    /// sample PDF, and the gate on the shipped policy (nothing else needed;
    /// development builds only).
    Demo {
        /// Where the gate listens; the other parts take free loopback ports.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: SocketAddr,
    },
}

/// `prt-gate explain [--config FILE] --role ROLE [--feature F:P …] [--anonymous] METHOD PATH`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The caller's role (Admin, Office, Operator, Client; any case).
    #[arg(long, value_name = "ROLE", required_unless_present = "anonymous", conflicts_with = "anonymous")]
    pub role: Option<String>,
    /// A feature permission of the caller, `feature:permission` (repeatable).
    #[arg(long = "feature", value_name = "F:P")]
    pub features: Vec<String>,
    /// Explain for a caller without a session or token.
    #[arg(long)]
    pub anonymous: bool,
    /// The caller's tenant code (for rules with a tenant match). Default: `tenant.code`
    /// in static mode; none (unscoped staff) in claim mode.
    #[arg(long, value_name = "CODE")]
    pub tenant: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// HTTP method, as sent (`GET`).
    pub method: String,
    /// Request path (a query string is ignored; the path is normalized like the gate does).
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { exit_on_stdin_eof } => serve(&cli.config, None, exit_on_stdin_eof),
        Command::Check { file } => check(file.as_deref().unwrap_or(&cli.config)),
        Command::Run { cmd } => serve(&cli.config, Some(&cmd), false),
        Command::Explain(args) => explain(&cli.config, &args),
        Command::Diff(args) => policy_change::diff(&args),
        Command::Replay(args) => policy_change::replay(&args),
        Command::Redact => run::redact(&cli.config),
        Command::Sessions { action } => sessions(&cli.config, action),
        Command::Presign { key, expires } => presign(&cli.config, &key, expires.as_deref()),
        Command::DevSso { listen, users } => dev_sso(listen, users.as_deref()),
        Command::Demo { listen } => demo(listen),
    }
}

fn load(path: &Path) -> Result<(Config, Vec<crate::config::Diagnostic>), ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("prt-gate: invalid configuration:\n{e}");
        exit::usage()
    })
}

fn check(path: &Path) -> ExitCode {
    let (config, warnings) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    // A shadow policy is only compared, never enforced: `serve` runs without a valid one
    // (warning and counter), so `check` warns too.
    if let Some(shadow) = &config.shadow {
        match Config::load_policy(shadow) {
            Ok((_, ws)) => ws.iter().for_each(|w| eprintln!("warning: shadow policy: {w}")),
            Err(e) => eprintln!("warning: shadow policy {} is invalid; serve runs without it:\n{e}", shadow.display()),
        }
    }
    // Everything `serve` refuses at start-up, refused here with the same message.
    if let Err(code) = prepare(&config) {
        return code;
    }
    let g = &config.gate;
    let store = match &config.session.store {
        StoreKind::Memory => "memory".to_string(),
        StoreKind::Redis(url) => url::Url::parse(url)
            .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("?")))
            .unwrap_or_else(|_| "redis".into()),
    };
    let mut out = std::io::stdout().lock();
    let result = writeln!(
        out,
        "ok: {}\n  listen        {}\n  admin_listen  {}\n  public_url    {}\n  upstream      http://{}\n  trusted       {}\n  session.store {}\n  tenant        {:?} {} / {}",
        path.display(),
        g.listen,
        g.admin_listen,
        g.public_url.as_ref().map_or("(not set)", |p| p.origin.as_str()),
        g.upstream.authority,
        if g.trusted_proxies.is_empty() {
            "(none)".to_string()
        } else {
            g.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        },
        store,
        config.tenant.mode,
        config.tenant.id,
        config.tenant.name,
    )
    .and_then(|()| write_route_table(&mut out, &config.policy));
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => exit::failure(),
        _ => ExitCode::SUCCESS,
    }
}

/// Builds what `serve` builds from the configuration before it listens (`proxy::Prepared`)
/// and drops it: the one error path for start-up refusals that `check` shares with `serve`.
fn prepare(config: &Config) -> Result<(), ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        eprintln!("prt-gate: cannot start runtime: {e}");
        exit::failure()
    })?;
    rt.block_on(proxy::Prepared::new(config)).map(drop).map_err(|e| refused(&e))
}

/// The message and exit code of a configuration `serve` and `check` refuse.
fn refused(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("prt-gate: invalid configuration: {e}");
    exit::usage()
}

/// `prt-gate presign KEY [--expires 1h]`: the URL the gate would redirect to.
fn presign(path: &Path, key: &str, expires: Option<&str>) -> ExitCode {
    use crate::media::{key, Media};
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let fail = |msg: String| {
        eprintln!("prt-gate presign: {msg}");
        exit::usage()
    };
    let m = &config.media;
    let expires = match expires.map(humantime::parse_duration) {
        None => m.expires,
        Some(Ok(d)) if (1..=604_800).contains(&d.as_secs()) => d,
        Some(_) => return fail("--expires must be a duration between 1s and 7d (e.g. 1h)".into()),
    };
    let rest = key.strip_prefix("/media/").unwrap_or(key);
    let rules = key::KeyRules {
        key_prefix: &m.key_prefix,
        allowed_prefixes: &m.allowed_prefixes,
        strip_prefixes: &m.strip_prefixes,
    };
    let object = match key::remainder_key(rest, rules) {
        Ok(k) => k,
        Err(e) => return fail(format!("{e} (allowed: {})", m.allowed_prefixes.join(", "))),
    };
    let media = match Media::from_config(m) {
        Ok(Some(media)) => media,
        Ok(None) => return fail(format!("media.bucket is not set in {}", path.display())),
        Err(e) => return fail(e.to_string()),
    };
    let grant = media.sign(m, object, expires, std::time::SystemTime::now());
    eprintln!("key {} valid until {}", grant.key, humantime::format_rfc3339_seconds(grant.expires_at));
    println!("{}", grant.url);
    ExitCode::SUCCESS
}

/// `prt-gate sessions list|revoke` against the configured store.
fn sessions(path: &Path, action: SessionsAction) -> ExitCode {
    use crate::session::{SessionStore, Store};
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.session.store == StoreKind::Memory {
        eprintln!(
            "prt-gate: session.store is `memory`: sessions live inside the running gate process; \
             point --config at a configuration with a redis:// store"
        );
        return exit::usage();
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("prt-gate: cannot start runtime: {e}");
            return exit::failure();
        }
    };
    rt.block_on(async {
        let store = match Store::from_config(&config.session).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("prt-gate: {e}");
                return exit::usage();
            }
        };
        let mut out = std::io::stdout().lock();
        let result = match action {
            SessionsAction::List { user, json } => match store.list(user.as_deref()).await {
                Ok(list) => {
                    let mut r = Ok(());
                    if !json {
                        r = writeln!(
                            out,
                            "{:<12}  {:<32}  {:<8}  {:>10}  {:>10}  {:>10}",
                            "HANDLE", "EMAIL", "ROLE", "CREATED", "LAST_SEEN", "EXPIRES"
                        );
                    }
                    for s in &list {
                        if r.is_err() {
                            break;
                        }
                        r = if json {
                            writeln!(out, "{}", serde_json::to_string(s).unwrap_or_default())
                        } else {
                            writeln!(
                                out,
                                "{:<12}  {:<32}  {:<8}  {:>10}  {:>10}  {:>10}",
                                s.handle, s.email, s.role, s.created, s.last_seen, s.expires
                            )
                        };
                    }
                    r.map(|()| 0u8)
                }
                Err(e) => {
                    eprintln!("prt-gate: {e}");
                    return exit::failure();
                }
            },
            SessionsAction::Revoke { user, all } => {
                let r = if all {
                    store.revoke_all().await
                } else {
                    store.revoke_user(user.as_deref().unwrap_or_default()).await
                };
                match r {
                    Ok(n) => writeln!(out, "revoked {n} session(s)").map(|()| 0u8),
                    Err(e) => {
                        eprintln!("prt-gate: {e}");
                        return exit::failure();
                    }
                }
            }
        };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => exit::failure(),
            _ => ExitCode::SUCCESS,
        }
    })
}

fn init_logging(config: &Config) -> Option<crate::logwriter::Guard> {
    // One writer thread, batched writes, back-pressure instead of dropped lines.
    let (writer, guard) = match crate::logwriter::new(std::io::stdout()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("prt-gate: cannot start the log writer: {e}");
            return None;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{},access=info", config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Every line the gate logs, at any level, passes the redaction engine:
    // access lines through their own writer, the rest through `tracing`.
    let redactor = (!crate::redact::disabled_for_test()).then(|| config.redactor.clone());
    crate::proxy::access_line::install(writer.clone(), redactor.clone());
    crate::media::audit::install(writer.clone(), redactor);
    let writer = crate::redact::writer::RedactingMakeWriter::new(writer, config.redactor.clone());
    tracing_subscriber::fmt()
        .json()
        .with_timer(crate::logwriter::CachedTime)
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
    Some(guard)
}

/// `serve`, or with `child` the `run` command: the same gate plus a
/// supervised upstream (see `cli/run.rs`).
fn serve(path: &Path, child: Option<&[String]>, exit_on_stdin_eof: bool) -> ExitCode {
    let (config, warnings) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // No log writer, no gate: an access log that silently goes nowhere is not an option.
    let Some(_log_guard) = init_logging(&config) else {
        return exit::failure();
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = config.gate.workers {
        rt.worker_threads(n);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("prt-gate: cannot start runtime: {e}");
            return exit::failure();
        }
    };
    if child.is_some() {
        if let Err(e) = crate::media::Media::check_own_credentials(&config.media) {
            return refused(&e);
        }
    }
    let live = Arc::new(Live::new(config));
    let config = live.get();
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::default());
        live.shadow.poll(config.shadow.as_deref(), &metrics, true);
        let gate = match Gate::new(live.clone(), metrics.clone()).await {
            Ok(g) => Arc::new(g),
            Err(e) => return refused(&e),
        };
        // SIGHUP's default action is to terminate: install the handler
        // before the gate says it is listening.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        tokio::spawn(live.watch(metrics, hup));
        let listener = match tokio::net::TcpListener::bind(config.gate.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("prt-gate: cannot listen on {}: {e}", config.gate.listen);
                return exit::failure();
            }
        };
        let admin = match tokio::net::TcpListener::bind(config.gate.admin_listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("prt-gate: cannot listen on {} (admin): {e}", config.gate.admin_listen);
                return exit::failure();
            }
        };
        let (Ok(addr), Ok(admin_addr)) = (listener.local_addr(), admin.local_addr()) else {
            return exit::failure();
        };
        tracing::info!(%addr, admin = %admin_addr, upstream = %config.gate.upstream.authority, "listening");
        tokio::spawn(crate::admin::serve(gate.clone(), admin));
        if let Some(cmd) = child {
            // Signal handlers first, then the child, then the line scripts wait for.
            let signals = run::Signals::install();
            let sup = match run::Supervisor::spawn(cmd, config.redactor.clone(), &config.assertion) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    eprintln!("prt-gate run: cannot start `{}`: {e}", cmd.first().map_or("", String::as_str));
                    return exit::failure();
                }
            };
            let shutdown = sup.shutdown(signals);
            eprintln!("prt-gate: listening on {addr} admin {admin_addr}");
            proxy::server::serve(gate, listener, shutdown).await;
            return sup.finish(config.gate.drain_timeout).await;
        }
        let signals = shutdown_signal();
        let shutdown = async move {
            if exit_on_stdin_eof {
                tokio::select! {
                    () = signals => {},
                    () = stdin_eof() => tracing::info!("standard input closed: shutting down"),
                }
            } else {
                signals.await;
            }
        };
        // Tests and scripts read this line to learn the bound ports.
        eprintln!("prt-gate: listening on {addr} admin {admin_addr}");
        let drained = proxy::server::serve(gate, listener, shutdown).await;
        if drained {
            ExitCode::SUCCESS
        } else {
            exit::failure()
        }
    })
}

/// `prt-gate demo` (development builds).
#[cfg(feature = "dev-tools")]
fn demo(listen: SocketAddr) -> ExitCode {
    crate::demo::main(listen)
}

#[cfg(not(feature = "dev-tools"))]
fn demo(_listen: SocketAddr) -> ExitCode {
    not_in_this_build("demo")
}

#[cfg(not(feature = "dev-tools"))]
fn dev_sso(_listen: SocketAddr, _users_file: Option<&Path>) -> ExitCode {
    not_in_this_build("dev-sso")
}

/// A production build (`--no-default-features`) has no development servers.
#[cfg(not(feature = "dev-tools"))]
fn not_in_this_build(command: &str) -> ExitCode {
    eprintln!(
        "prt-gate {command}: not available: this is a production build without development servers \
         (built without the `dev-tools` feature)"
    );
    exit::usage()
}

/// `prt-gate dev-sso`: serves until SIGTERM/SIGINT. The first stderr line is
/// `prt-gate dev-sso: listening on http://127.0.0.1:PORT` (scripts parse it).
#[cfg(feature = "dev-tools")]
fn dev_sso(listen: SocketAddr, users_file: Option<&Path>) -> ExitCode {
    use crate::devsso::{self, DevSso, DevSsoError};
    if !listen.ip().is_loopback() {
        eprintln!("prt-gate dev-sso: {}", DevSsoError::NotLoopback(listen));
        return exit::usage();
    }
    let users = match users_file.map(devsso::load_users) {
        None => devsso::builtin_users(),
        Some(Ok(u)) => u,
        Some(Err(e)) => {
            eprintln!("prt-gate dev-sso: invalid users file: {e}");
            return exit::usage();
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("prt-gate dev-sso: cannot start runtime: {e}");
            return exit::failure();
        }
    };
    rt.block_on(async move {
        let listing: Vec<String> = users
            .iter()
            .map(|u| format!("  {:<24} {}", u.email, u.role.as_deref().unwrap_or("(no primetrade role)")))
            .collect();
        let sso = match DevSso::start(listen, users).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("prt-gate dev-sso: {e}");
                return if e.is_usage() { exit::usage() } else { exit::failure() };
            }
        };
        eprintln!("prt-gate dev-sso: listening on {}", sso.url());
        eprintln!(
            "prt-gate dev-sso: issuer {}, client_id {}, client_secret {}, users:\n{}",
            sso.issuer(),
            devsso::CLIENT_ID,
            devsso::CLIENT_SECRET,
            listing.join("\n")
        );
        shutdown_signal().await;
        drop(sso);
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called (not when the future is first polled), so a signal that arrives
/// right after start-up is never fatal.
/// Resolves when standard input reaches end of file (or fails): the parent
/// holding its other end has exited.
async fn stdin_eof() {
    use tokio::io::AsyncReadExt as _;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("shutdown signal received");
    }
}

/// The effective route table: one line per rule, sorted by pattern, then the defaults.
fn write_route_table(out: &mut impl Write, policy: &Policy) -> std::io::Result<()> {
    let mut rules: Vec<&crate::policy::Rule> = policy.rules().iter().collect();
    rules.sort_by(|a, b| a.pattern.as_str().cmp(b.pattern.as_str()).then(a.index.cmp(&b.index)));
    let pw = rules.iter().map(|r| r.pattern.as_str().len()).max().unwrap_or(0).max(7);
    let mw = rules.iter().map(|r| r.methods.to_string().len()).max().unwrap_or(0).max(7);
    let ww = rules.iter().map(|r| r.who().len()).max().unwrap_or(0).max(3);
    writeln!(out, "routes: {} rules (most specific wins; GET covers HEAD)", rules.len())?;
    writeln!(out, "  {:mw$}  {:pw$}  {:ww$}  AT", "METHODS", "PATTERN", "WHO")?;
    for r in &rules {
        let name = if *r.id != *r.pattern.as_str() { format!("  [{}]", r.id) } else { String::new() };
        writeln!(out, "  {:mw$}  {:pw$}  {:ww$}  {}{name}", r.methods.to_string(), r.pattern.as_str(), r.who(), r.at)?;
    }
    writeln!(out, "defaults:")?;
    writeln!(out, "  /api/* without a rule      deny everyone (403, rule `no_rule`)")?;
    writeln!(out, "  path rules, other method   deny everyone (403)")?;
    writeln!(out, "  other paths without rule   any logged-in role (rule `default`); anonymous → login")?;
    writeln!(
        out,
        "  gate-owned                 {} (with or without the trailing slash; never consult the rules)",
        crate::gate_owned::listing()
    )?;
    writeln!(out, "roles:")?;
    for role in Role::ALL {
        let pages = match policy.pages(role) {
            Some(p) => p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
            None => "any page the rules allow".into(),
        };
        writeln!(out, "  {:8}  landing {}  pages: {pages}", role.as_str(), policy.landing(role))?;
    }
    Ok(())
}

fn explain(config_path: &Path, args: &ExplainArgs) -> ExitCode {
    let usage = |msg: String| {
        eprintln!("prt-gate explain: {msg}");
        exit::usage()
    };
    let Ok(method) = http::Method::from_bytes(args.method.as_bytes()) else {
        return usage(format!("invalid method `{}`", args.method));
    };
    let raw_path = args.path.split_once('?').map_or(args.path.as_str(), |(p, _)| p);
    let path = match crate::normalize::normalize(raw_path) {
        Ok(p) => p,
        Err(e) => return usage(format!("invalid path: {e} (the gate answers 400)")),
    };
    let mut features = Features::new();
    for f in &args.features {
        match f.split_once(':') {
            Some((feat, perm)) if !feat.is_empty() && !perm.is_empty() => {
                features.entry(feat.to_string()).or_default().push(perm.to_string())
            }
            _ => return usage(format!("--feature `{f}` is not `feature:permission`")),
        }
    }
    let caller = match &args.role {
        None => Caller::Anonymous,
        Some(name) => match Role::parse(name) {
            Some(role) => Caller::Role { role, features: &features },
            None => {
                let known = Role::ALL.map(Role::as_str).join(", ");
                return usage(format!("unknown role `{name}` (expected {known})"));
            }
        },
    };
    let (config, _warnings) = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    // The gate answers its own routes before the policy: say so, as the pipeline does.
    if let Some(owned) = crate::gate_owned::Owned::of(path.as_str()) {
        let result = match args.format {
            Format::Json => writeln!(
                out,
                "{}",
                serde_json::json!({
                    "decision": "gate",
                    "rule": owned.rule(),
                    "normalized_path": path.as_str(),
                    "answer": owned.what(),
                })
            ),
            Format::Text => writeln!(
                out,
                "decision: gate\nrule:     {}\npath:     {}\nwhy:      gate-owned route, answered before the policy ({})",
                owned.rule(),
                path.as_str(),
                owned.what()
            ),
        };
        return match result {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => exit::failure(),
            _ => ExitCode::SUCCESS,
        };
    }
    let tenant = args.tenant.as_deref().or(config.tenant.caller_code(None));
    let x = crate::policy::explain::explain_in(&config.policy, &method, &path, caller, tenant);
    let origin = config.gate.public_url.as_ref().map(|p| p.origin.as_str());
    let result = match args.format {
        Format::Json => writeln!(out, "{}", x.to_json_at(origin)),
        Format::Text => write_explanation(&mut out, &x, origin),
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => exit::failure(),
        _ => ExitCode::SUCCESS,
    }
}

fn write_explanation(out: &mut impl Write, x: &Explanation, origin: Option<&str>) -> std::io::Result<()> {
    writeln!(out, "decision: {}", x.verdict.decision())?;
    writeln!(out, "status:   {}", x.status)?;
    match &x.at {
        Some(at) => writeln!(out, "rule:     {} ({at})", x.rule())?,
        None => writeln!(out, "rule:     {}", x.rule())?,
    }
    writeln!(out, "path:     {}", x.normalized_path)?;
    writeln!(out, "auth:     {}", x.auth.as_str())?;
    if let Some(t) = &x.tenant {
        let caller = t.caller.as_deref().unwrap_or("none (unscoped)");
        let unscoped = if t.unscoped_any { "; unscoped staff pass" } else { "" };
        writeln!(out, "tenant:   {{{}}} = `{}` must equal the caller's tenant `{caller}`{unscoped}", t.param, t.value)?;
    }
    match &x.verdict {
        Verdict::Allow(p) => writeln!(out, "why:      allowed for {} ({})", p.role(), p.auth().as_str())?,
        Verdict::Public { .. } => writeln!(out, "why:      public: no identity needed, none is sent upstream")?,
        Verdict::Login { .. } => writeln!(out, "why:      authentication required")?,
        Verdict::Deny(d) | Verdict::Redirect { denial: d, .. } => {
            writeln!(out, "why:      {}", d.reason().as_str())?;
            if !d.required_roles().is_empty() {
                writeln!(out, "allowed:  {}", d.required_roles())?;
            }
        }
    }
    if let Some(loc) = x.location_at(origin) {
        writeln!(out, "location: {loc}")?;
    }
    Ok(())
}
