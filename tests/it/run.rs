//! `prt-gate run -- CMD`: the gate supervising a real upstream process
//! (a small Python HTTP server), its logs scrubbed, readiness, signals and
//! exit status.

use std::net::SocketAddr;
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

/// `prt-gate run` in front of `127.0.0.1:upstream_port`, every path public,
/// with [`UPSTREAM_PY`] as `up.py` in its directory.
pub fn run_gate(upstream_port: u16) -> GateBuilder {
    GateBuilder::new(SocketAddr::from(([127, 0, 0, 1], upstream_port)))
        .gate("drain_timeout = \"5s\"")
        .file("up.py", UPSTREAM_PY)
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
    let gate = run_gate(port);
    let script = gate.dir().join("up.py").display().to_string();
    let secret = "RUNCANARY7f3e";
    let mut gate = gate.run(&["python3", &script, &port.to_string(), "1.5", secret]).start();
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
        let mut gate = run_gate(closed_port().port()).run(cmd).start();
        assert_eq!(gate.wait_exit(), Some(code), "{cmd:?}: {}", gate.text());
        assert!(!gate.text().contains("pw1"), "{}", gate.text());
    }
    // A command that cannot start is a runtime failure.
    let out = run_gate(closed_port().port()).run(&["/nonexistent/prt-gate-test-cmd"]).output();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_forwards_sigint_and_reports_signal_death() {
    // The child dies of the forwarded SIGINT (no handler): 128 + 2.
    let mut gate = run_gate(closed_port().port()).run(&["sh", "-c", "echo started; exec sleep 30"]).start();
    assert!(eventually(Duration::from_secs(5), || gate.text().contains("started")).await);
    gate.signal("INT");
    assert_eq!(gate.wait_exit(), Some(130), "{}", gate.text());
}
