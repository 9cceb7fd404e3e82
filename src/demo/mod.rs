//! `prt-gate demo`: the whole picture on one machine, with nothing but this
//! binary (design §10, issue 8).
//!
//! * the dev SSO ([`crate::devsso`]) with the built-in users, in process;
//! * a demo upstream ([`app`]) that shows the identity it received, in process;
//! * an S3-compatible target ([`s3`]) holding a sample PDF, in process;
//! * the gate itself: this binary's `serve`, as a child process, on the
//!   shipped `policy.toml` rules with a configuration written to a fresh
//!   temporary directory, secrets generated for this run and passed through
//!   the environment only (design §9).
//!
//! The gate listens on `127.0.0.1:8080` unless `--listen` says otherwise;
//! everything else takes a free loopback port, so the demo never collides
//! with anything. Ctrl-C (or SIGTERM) stops it all and removes the directory.

pub mod app;
pub mod s3;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cli::exit;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::RngCore as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::devsso::{builtin_users, DevSso, CLIENT_ID, CLIENT_SECRET};
use crate::media::sigv4::{Credentials, Presigner, Target};
use crate::secret::Secret;

/// The shipped policy: the demo runs the production rules.
const SHIPPED_POLICY: &str = include_str!("../../policy.toml");
/// The sample document, at the path the production app uses.
pub const SAMPLE_KEY: &str = "bols/2025/PRT-2025-0002.pdf";

pub fn main(listen: SocketAddr) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("prt-gate demo: cannot start runtime: {e}");
            return exit::failure();
        }
    };
    rt.block_on(run(listen))
}

async fn run(listen: SocketAddr) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("prt-gate demo: {msg}");
        exit::failure()
    };
    let listen = match public_listen(listen) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot pick a port: {e}")),
    };
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));

    let sso = match DevSso::start(loopback, builtin_users()).await {
        Ok(s) => s,
        Err(e) => return fail(format!("dev SSO: {e}")),
    };
    let assertion_secret = random_hex(32);
    let aws_id = format!("AKIADEMO{}", random_hex(6).to_uppercase());
    let aws_secret = random_hex(20);

    // The S3 target and the upstream, each on its own free port.
    let (s3_listener, app_listener) = match (TcpListener::bind(loopback).await, TcpListener::bind(loopback).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(format!("cannot bind a loopback port: {e}")),
    };
    let (Ok(s3_addr), Ok(app_addr)) = (s3_listener.local_addr(), app_listener.local_addr()) else {
        return fail("cannot read a bound address".into());
    };
    let Ok(endpoint) = url::Url::parse(&format!("http://{s3_addr}")) else {
        return fail("bad S3 address".into());
    };
    let creds = Credentials {
        access_key_id: aws_id.clone(),
        secret_access_key: Secret::new(aws_secret.clone()),
        session_token: None,
        expires_at: None,
    };
    let presigner = Presigner::new(creds, s3::REGION, Target::new(s3::BUCKET, s3::REGION, Some(&endpoint), true));
    let objects = HashMap::from([(SAMPLE_KEY.to_owned(), Bytes::from(s3::sample_pdf()))]);
    let store = Arc::new(s3::DemoS3::new(presigner, s3_addr.to_string(), objects));
    tokio::spawn(serve(s3_listener, move |req| store.handle(&req, SystemTime::now())));
    let app = Arc::new(app::DemoApp::new(assertion_secret.clone()));
    tokio::spawn(serve(app_listener, move |req| app.handle(&req)));

    // The gate's configuration, in a directory of its own.
    let dir = std::env::temp_dir().join(format!("prt-gate-demo-{}-{}", std::process::id(), random_hex(4)));
    if let Err(e) = std::fs::create_dir(&dir) {
        return fail(format!("cannot create {}: {e}", dir.display()));
    }
    let _cleanup = RemoveOnDrop(dir.clone());
    let config = dir.join("policy.toml");
    let text = config_text(listen, app_addr, sso.url(), s3_addr);
    if let Err(e) = std::fs::write(&config, text) {
        return fail(format!("cannot write {}: {e}", config.display()));
    }
    let env = [
        ("PRT_GATE_SSO__CLIENT_SECRET", CLIENT_SECRET),
        ("PRT_GATE_ASSERTION__SECRET", assertion_secret.as_str()),
        ("AWS_ACCESS_KEY_ID", aws_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", aws_secret.as_str()),
    ];
    let (mut gate, _gate_stdin, admin) = match start_gate(&config, &dir.join("access.log"), &env).await {
        Ok(g) => g,
        Err(e) => return fail(e),
    };

    // Register the signal handlers before the banner: whoever reads the banner may send
    // SIGTERM at once, and an unregistered SIGTERM kills the process without cleanup.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
    println!("{}", banner(listen, admin, sso.url(), app_addr, s3_addr, &dir));

    let stop = async {
        tokio::select! {
            () = recv(int.as_mut()) => {},
            () = recv(term.as_mut()) => {},
        }
    };
    tokio::select! {
        () = stop => {
            let _ = gate.start_kill();
            let _ = gate.wait().await;
            println!("prt-gate demo: stopped");
            ExitCode::SUCCESS
        }
        status = gate.wait() => fail(format!("the gate exited unexpectedly ({status:?})")),
    }
}

/// The gate's address: `listen`, with a free port if it says port 0, and
/// loopback if it names no particular address.
fn public_listen(listen: SocketAddr) -> std::io::Result<SocketAddr> {
    let ip = if listen.ip().is_unspecified() { Ipv4Addr::LOCALHOST.into() } else { listen.ip() };
    let port = match listen.port() {
        0 => std::net::TcpListener::bind((ip, 0))?.local_addr()?.port(),
        p => p,
    };
    Ok(SocketAddr::new(ip, port))
}

fn config_text(listen: SocketAddr, app: SocketAddr, sso: &str, s3: SocketAddr) -> String {
    format!(
        "# Written by `prt-gate demo` for this run only.\n\
         [gate]\nlisten = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\nupstream = \"http://{app}\"\n\
         public_url = \"http://{listen}\"\n\n\
         [sso]\nbase_url = \"{sso}\"\nclient_id = \"{CLIENT_ID}\"\n\n\
         [session]\n# Plain HTTP on loopback: the cookie cannot be `Secure` here.\ncookie_secure = false\n\n\
         [media]\nbucket = \"{bucket}\"\nregion = \"{region}\"\nendpoint = \"http://{s3}\"\npath_style = true\n\
         disposition = \"inline\"\n\n\
         # The shipped policy.toml's [roles] and [[route]] tables, unchanged.\n{rules}",
        bucket = s3::BUCKET,
        region = s3::REGION,
        rules = policy_tables(SHIPPED_POLICY),
    )
}

/// The `[roles…]` and `[[route]]` tables of a policy file (with their comments).
fn policy_tables(policy: &str) -> String {
    let mut keep = false;
    let mut out = String::with_capacity(policy.len());
    for line in policy.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            keep = t.starts_with("[roles") || t.starts_with("[[route]]");
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Starts `prt-gate serve` (this binary) and waits until it listens.
/// Returns the child, the write end of its stdin (the gate exits when it is
/// closed; kept apart because `Child::wait` would close it) and the admin address.
async fn start_gate(
    config: &Path,
    access_log: &Path,
    env: &[(&str, &str)],
) -> Result<(Child, tokio::process::ChildStdin, String), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let log = std::fs::File::create(access_log).map_err(|e| format!("cannot create {}: {e}", access_log.display()))?;
    let mut cmd = Command::new(exe);
    // The gate holds a pipe from us on stdin and exits when it closes: if the
    // demo dies (even by SIGKILL), the gate does not linger on the port.
    cmd.arg("serve")
        .arg("--exit-on-stdin-eof")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(Stdio::piped());
    // Only this run's settings: nothing inherited may change the demo's gate.
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str().filter(|k| k.starts_with("PRT_GATE_") || k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the gate: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let mut lines = BufReader::new(stderr).lines();
    let wait = async {
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("prt-gate: listening on ") {
                return Ok(rest.split(" admin ").nth(1).unwrap_or("?").to_owned());
            }
            seen.push(line);
        }
        Err(format!("the gate did not start:\n{}", seen.join("\n")))
    };
    let admin = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .map_err(|_| "the gate did not start within 30 s".to_owned())??;
    // Keep forwarding the gate's diagnostics (never the access log).
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
        }
    });
    Ok((child, stdin, admin))
}

/// Waits for a registered signal (forever if it could not be registered).
async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn banner(listen: SocketAddr, admin: String, sso: &str, app: SocketAddr, s3: SocketAddr, dir: &Path) -> String {
    let mut users = String::new();
    for u in builtin_users() {
        let role = match u.role.as_deref() {
            Some(r) if u.tenant_code != crate::devsso::DEFAULT_TENANT => format!("{r} of tenant {}", u.tenant_code),
            Some(r) => r.to_string(),
            None => "no PrimeTrade role: refused at login".to_string(),
        };
        users.push_str(&format!("      {:<24} {role}\n", u.email));
    }
    format!(
        "prt-gate demo is running.\n\n  Open http://{listen}/ in a browser and pick a user:\n{users}\n\
         \x20 Each page shows what the upstream received (identity headers, verified assertion),\n\
         \x20 buttons that call API routes (allowed or refused by policy.toml, with the reason),\n\
         \x20 and a BOL PDF served through a presigned redirect.\n\n\
         \x20 gate         http://{listen}/   (shipped policy.toml rules, in-memory sessions)\n\
         \x20 admin        http://{admin}/metrics  and  http://{admin}/status\n\
         \x20 dev SSO      {sso}   (client {CLIENT_ID})\n\
         \x20 demo app     http://{app}/   (stands in for Django; in production only the gate reaches it)\n\
         \x20 demo S3      http://{s3}/{bucket}/   (verifies presigned URLs)\n\
         \x20 access log   {log}\n\n\
         Press Ctrl-C to stop.",
        bucket = s3::BUCKET,
        log = dir.join("access.log").display(),
    )
}

/// A tiny HTTP/1.1 server for the demo's in-process parts.
async fn serve<F>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = handler(req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn demo_config_is_valid_and_carries_every_shipped_rule() {
        let dir = std::env::temp_dir().join(format!("prt-gate-demo-test-{}", random_hex(6)));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let _rm = RemoveOnDrop(dir.clone());
        let path = dir.join("policy.toml");
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, config_text(a, a, "http://127.0.0.1:9000", a)).unwrap_or_else(|e| panic!("{e}"));
        let (demo, _) = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let shipped = Config::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml")))
            .unwrap_or_else(|e| panic!("{e}"))
            .0;
        assert_eq!(demo.policy.rules().len(), shipped.policy.rules().len());
        assert!(demo.policy.rules().len() > 50);
        assert_eq!(demo.media.bucket.as_deref(), Some(s3::BUCKET));
    }
}
