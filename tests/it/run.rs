//! `prt-gate run -- CMD`: the gate supervising a real upstream process
//! (a small Python HTTP server), its logs scrubbed, readiness, signals and
//! exit status.

#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

/// A Python upstream: prints a Django-style session line on stderr and a
/// token on stdout, waits `delay` seconds, then serves HTTP on `port`
/// (echoing each request's target to stderr). SIGTERM → prints and exits 3.
pub const UPSTREAM_PY: &str = r#"
import http.server, signal, sys, time
port, delay, secret = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def term(*_):
    print("upstream: got SIGTERM", file=sys.stderr, flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, term)
print("Session data: {'sso_access_token': '%s-access', 'sso_refresh_token': '%s-refresh', 'role': 'Office'}" % (secret, secret), file=sys.stderr, flush=True)
print("dict_items([('sso_access_token', '%s-access'), ('sso_refresh_token', '%s-refresh')])" % (secret, secret), file=sys.stderr, flush=True)
print("upstream: starting, token=%s-stdout" % secret, flush=True)
time.sleep(delay)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("upstream: %s %s" % (self.command, self.path), file=sys.stderr, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// A running `prt-gate run`; output collected line by line.
pub struct RunGate {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
    pub out: Arc<Mutex<Vec<String>>>,
    pub err: Arc<Mutex<Vec<String>>>,
}

impl RunGate {
    /// `prt-gate run --config dir/policy.toml -- cmd…`.
    pub fn start(dir: tempfile::TempDir, env: &[(&str, &str)], cmd: &[&str]) -> RunGate {
        let mut c = Command::new(BIN);
        c.arg("run").arg("--config").arg(dir.path().join("policy.toml")).arg("--").args(cmd);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn prt-gate run");
        let err: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (addr, admin) = loop {
            let line = lines.next().expect("gate exited before listening").unwrap();
            err.lock().unwrap().push(line.clone());
            if let Some(rest) = line.strip_prefix("prt-gate: listening on ") {
                let mut it = rest.split(" admin ");
                break (it.next().unwrap().parse().unwrap(), it.next().unwrap().parse().unwrap());
            }
        };
        let sink = err.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let out: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = out.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        RunGate { child, addr, admin, _dir: dir, out, err }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything the gate and its child wrote, stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.out.lock().unwrap().join("\n"), self.err.lock().unwrap().join("\n"))
    }

    pub fn signal(&self, sig: &str) {
        assert!(Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success());
    }

    /// Waits (bounded) for the gate to exit; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        for _ in 0..500 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("prt-gate run did not exit");
    }
}

impl Drop for RunGate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_config(upstream_port: u16, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        format!(
            "[gate]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:{upstream_port}\"\ndrain_timeout = \"5s\"\n\n[session]\ncookie_secure = false\n{extra}\n{PUBLIC_ALL}"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("up.py"), UPSTREAM_PY).unwrap();
    dir
}

async fn status(url: &str) -> u16 {
    match client().request(get(url)).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_scrubs_child_logs_waits_for_upstream_and_forwards_sigterm() {
    let port = free_port();
    let dir = run_config(port, "");
    let script = dir.path().join("up.py").display().to_string();
    let secret = "RUNCANARY7f3e";
    let mut gate = RunGate::start(dir, &[], &["python3", &script, &port.to_string(), "1.5", secret]);
    // Not ready while the upstream sleeps before listening.
    let readyz = format!("http://{}/readyz", gate.admin);
    assert_eq!(status(&readyz).await, 503, "ready before the upstream accepts connections");
    let mut ready = false;
    for _ in 0..250 {
        if status(&readyz).await == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "never ready: {}", gate.text());
    assert_eq!(status(&gate.url("/hello?page=2&code=RUNCANARY7f3e-code")).await, 200);
    assert!(
        eventually(Duration::from_secs(5), || gate.text().lines().any(|l| l == "upstream: GET /hello?page=2")).await,
        "{}",
        gate.text()
    );
    // SIGTERM reaches the child; the gate exits with the child's status.
    gate.signal("TERM");
    assert_eq!(gate.wait_exit(), Some(3));
    let text = gate.text();
    assert!(text.contains("upstream: got SIGTERM"), "{text}");
    assert!(text.contains("Session data: {'sso_access_token': '[REDACTED:secret]'"), "{text}");
    assert!(text.contains("dict_items([('sso_access_token', '[REDACTED:secret]')"), "{text}");
    assert!(text.contains("upstream: starting, token=[REDACTED:oauth]"), "{text}");
    assert!(!text.contains(secret), "a secret reached the output of prt-gate run:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_exits_with_the_childs_status() {
    let rows: [(&[&str], i32); 3] = [
        (&["sh", "-c", "echo password=pw1; exit 7"], 7),
        (&["sh", "-c", "kill -9 $$"], 137),
        (&["sh", "-c", "exit 0"], 0),
    ];
    for (cmd, code) in rows {
        let dir = run_config(closed_port().port(), "");
        let mut gate = RunGate::start(dir, &[], cmd);
        assert_eq!(gate.wait_exit(), Some(code), "{cmd:?}: {}", gate.text());
        assert!(!gate.text().contains("pw1"), "{}", gate.text());
    }
    // A command that cannot start is a runtime failure.
    let dir = run_config(closed_port().port(), "");
    let out = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(dir.path().join("policy.toml"))
        .args(["--", "/nonexistent/prt-gate-test-cmd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_forwards_sigint_and_reports_signal_death() {
    let dir = run_config(closed_port().port(), "");
    // The child dies of the forwarded SIGINT (no handler): 128 + 2.
    let mut gate = RunGate::start(dir, &[], &["sh", "-c", "echo started; exec sleep 30"]);
    assert!(eventually(Duration::from_secs(5), || gate.text().contains("started")).await);
    gate.signal("INT");
    assert_eq!(gate.wait_exit(), Some(130), "{}", gate.text());
}
