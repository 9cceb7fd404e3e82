//! One way to start a gate in tests: [`GateBuilder`], which writes the
//! configuration, starts `prt-gate serve` (or `run -- CMD`) and reads the
//! bound addresses back from the gate's `listening on` line.
//!
//! The listener binds port 0 unless `gate.public_url` must name the gate's own
//! port (a login flow: the SSO sends the browser back there). Then the builder
//! picks a port that was free a moment ago and, if another process took it in
//! between (the gate exits with "Address already in use"), tries again with a
//! new one, a bounded number of times.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::process::{spawn_until, Pipe};
use super::{free_port, BIN};

/// The data-plane tests run without an SSO: every path is public, so the
/// proxying itself is what they observe.
pub const PUBLIC_ALL: &str =
    "[[route]]\npath = \"/{*rest}\"\npublic = true\n\n[[route]]\npath = \"/api/{*rest}\"\npublic = true\n";

/// Secret the dev SSO accepts for `prt-gate-dev`.
pub const DEV_CLIENT_SECRET: &str = "dev-secret";
/// A 32+ byte assertion secret for tests (generated per process would be
/// nicer; it never leaves the test machine).
pub const TEST_ASSERTION_SECRET: &str = "test-assertion-secret-0123456789abcdef";

const SHIPPED_POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml");
/// Tries at a port that must be named up front before the builder gives up.
const BIND_ATTEMPTS: usize = 5;

/// Builds and starts a gate in front of `upstream`:
///
/// ```ignore
/// GateBuilder::new(up.addr).sso(sso.url()).policy(MIX_POLICY).start();
/// GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().env("PRT_GATE_SESSION__STORE", url).start();
/// GateBuilder::new(up.addr).gate("max_uri_bytes = 4096").start();
/// ```
///
/// Without [`config_file`](Self::config_file) the builder writes the file:
/// `[gate]` (listen, admin listen, upstream, the [`gate`](Self::gate) lines),
/// `[sso]` when there is one, `[session]` (`cookie_secure = false` and the
/// [`session`](Self::session) lines), the [`toml`](Self::toml) sections, then
/// the [`policy`](Self::policy) ([`PUBLIC_ALL`] by default). With a given file
/// the same settings arrive through `PRT_GATE_*` variables, as that file is
/// deployed. [`env`](Self::env) adds or replaces variables either way.
pub struct GateBuilder {
    upstream: SocketAddr,
    sso: Option<String>,
    file: Option<String>,
    gate: String,
    session: String,
    toml: String,
    policy: Option<String>,
    env: Vec<(String, String)>,
    run: Option<Vec<String>>,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl GateBuilder {
    pub fn new(upstream: SocketAddr) -> GateBuilder {
        GateBuilder {
            upstream,
            sso: None,
            file: None,
            gate: String::new(),
            session: String::new(),
            toml: String::new(),
            policy: None,
            env: Vec::new(),
            run: None,
            ports: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Logins through the SSO at `base_url` (client `prt-gate-dev` with
    /// [`DEV_CLIENT_SECRET`], assertions signed with [`TEST_ASSERTION_SECRET`]);
    /// `gate.public_url` names the gate's own port.
    pub fn sso(mut self, base_url: &str) -> GateBuilder {
        self.sso = Some(base_url.to_owned());
        self
    }

    /// Lines for the `[gate]` section.
    pub fn gate(mut self, lines: &str) -> GateBuilder {
        append(&mut self.gate, lines);
        self
    }

    /// Lines for the `[session]` section.
    pub fn session(mut self, lines: &str) -> GateBuilder {
        append(&mut self.session, lines);
        self
    }

    /// Further sections (`[tenant]`, `[policy]`, routes added to the policy).
    pub fn toml(mut self, sections: &str) -> GateBuilder {
        append(&mut self.toml, sections);
        self
    }

    /// The roles and routes, in place of [`PUBLIC_ALL`].
    pub fn policy(mut self, tables: &str) -> GateBuilder {
        self.policy = Some(tables.to_owned());
        self
    }

    /// The repository's shipped `policy.toml` as the configuration file.
    pub fn shipped_policy(self) -> GateBuilder {
        self.config_file(SHIPPED_POLICY)
    }

    /// A whole configuration file (`deploy/prt-gate.toml`, say), started as it
    /// is deployed: addresses, SSO and test secrets through `PRT_GATE_*`.
    /// [`toml`](Self::toml) sections are appended to it.
    pub fn config_file(mut self, path: &str) -> GateBuilder {
        self.file = Some(std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")));
        self
    }

    /// Sets an environment variable of the gate (replacing the builder's own).
    pub fn env(mut self, key: &str, value: &str) -> GateBuilder {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn envs<'a, K, V>(mut self, vars: impl IntoIterator<Item = &'a (K, V)>) -> GateBuilder
    where
        K: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
    {
        for (k, v) in vars {
            self = self.env(k.as_ref(), v.as_ref());
        }
        self
    }

    /// The gate's directory (where `policy.toml` and [`file`](Self::file)s go).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` into the gate's directory.
    pub fn file(self, name: &str, text: &str) -> GateBuilder {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        self
    }

    /// `prt-gate run -- CMD…` instead of `serve`.
    pub fn run(mut self, cmd: &[&str]) -> GateBuilder {
        self.run = Some(cmd.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Ports to try, in order, before free ones (for tests of the builder itself).
    pub fn try_ports(mut self, ports: &[u16]) -> GateBuilder {
        self.ports = ports.to_vec();
        self
    }

    /// Runs the gate to its exit (for a configuration or a command it must refuse).
    pub fn output(self) -> std::process::Output {
        std::fs::write(self.dir.path().join("policy.toml"), self.config_text(0)).unwrap();
        self.command(0).output().expect("run prt-gate")
    }

    /// Starts the gate and waits until it listens.
    pub fn start(self) -> Gate {
        // Port 0 unless the configuration must name the port before the gate binds it.
        let names_own_port = self.sso.is_some() || self.file.is_some();
        let mut refused = String::new();
        for attempt in 0..BIND_ATTEMPTS {
            let port = match self.ports.get(attempt) {
                _ if !names_own_port => 0,
                Some(port) => *port,
                None => free_port(),
            };
            std::fs::write(self.dir.path().join("policy.toml"), self.config_text(port)).unwrap();
            match launch(self.command(port)) {
                Ok(started) => return started.into_gate(self.dir),
                Err(stderr) if names_own_port && stderr.contains("Address already in use") => refused = stderr,
                Err(stderr) => panic!("prt-gate exited before listening:\n{stderr}"),
            }
        }
        panic!("prt-gate found no free port in {BIND_ATTEMPTS} attempts:\n{refused}")
    }

    fn config_text(&self, port: u16) -> String {
        if let Some(file) = &self.file {
            return format!("{file}\n{}", self.toml);
        }
        let mut text = format!(
            "[gate]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\nupstream = \"http://{}\"\n",
            self.upstream
        );
        if let Some(sso) = &self.sso {
            text += &format!("public_url = \"http://127.0.0.1:{port}\"\n");
            text += &self.gate;
            text += &format!("\n[sso]\nbase_url = \"{sso}\"\nclient_id = \"prt-gate-dev\"\n");
        } else {
            text += &self.gate;
        }
        text += &format!("\n[session]\ncookie_secure = false\n{}\n{}\n", self.session, self.toml);
        text += self.policy.as_deref().unwrap_or(PUBLIC_ALL);
        text
    }

    fn command(&self, port: u16) -> Command {
        let mut env: Vec<(String, String)> = Vec::new();
        if self.file.is_some() {
            env.extend([
                ("PRT_GATE_GATE__LISTEN".into(), format!("127.0.0.1:{port}")),
                ("PRT_GATE_GATE__ADMIN_LISTEN".into(), "127.0.0.1:0".into()),
                ("PRT_GATE_GATE__PUBLIC_URL".into(), format!("http://127.0.0.1:{port}")),
                ("PRT_GATE_GATE__UPSTREAM".into(), format!("http://{}", self.upstream)),
                ("PRT_GATE_SESSION__COOKIE_SECURE".into(), "false".into()),
            ]);
            if let Some(sso) = &self.sso {
                env.push(("PRT_GATE_SSO__BASE_URL".into(), sso.clone()));
                env.push(("PRT_GATE_SSO__CLIENT_ID".into(), "prt-gate-dev".into()));
            }
        }
        if self.sso.is_some() {
            env.push(("PRT_GATE_SSO__CLIENT_SECRET".into(), DEV_CLIENT_SECRET.into()));
            env.push(("PRT_GATE_ASSERTION__SECRET".into(), TEST_ASSERTION_SECRET.into()));
        }
        env.retain(|(k, _)| !self.env.iter().any(|(mine, _)| mine == k));
        env.extend(self.env.iter().cloned());

        let mut cmd = Command::new(BIN);
        let config = self.dir.path().join("policy.toml");
        match &self.run {
            Some(child) => cmd.arg("run").arg("--config").arg(config).arg("--").args(child),
            None => cmd.arg("serve").arg("--config").arg(config),
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).envs(env);
        cmd
    }
}

fn append(buf: &mut String, text: &str) {
    buf.push_str(text);
    buf.push('\n');
}

/// A gate process that printed its `listening on` line.
struct Started {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    stderr_log: Arc<Mutex<Vec<String>>>,
}

/// Spawns the gate and reads its stderr up to the `listening on` line; what
/// it wrote if it exits first.
fn launch(cmd: Command) -> Result<Started, String> {
    let stderr_log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (child, (addr, admin)) = spawn_until(cmd, Pipe::Stderr, &stderr_log, |line| {
        let rest = line.strip_prefix("prt-gate: listening on ")?;
        let (addr, admin) = rest.split_once(" admin ")?;
        Some((addr.parse().unwrap(), admin.parse().unwrap()))
    })?;
    Ok(Started { child, addr, admin, stderr_log })
}

impl Started {
    fn into_gate(mut self, dir: tempfile::TempDir) -> Gate {
        let stdout_log: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = self.child.stdout.take().unwrap();
        let sink = stdout_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Gate { child: self.child, addr: self.addr, admin: self.admin, dir, stdout_log, stderr_log: self.stderr_log }
    }
}

/// A running `prt-gate serve` (or `run`), killed on drop.
pub struct Gate {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    stdout_log: Arc<Mutex<Vec<String>>>,
    stderr_log: Arc<Mutex<Vec<String>>>,
}

impl Gate {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Access-log lines (parsed JSON) written so far.
    pub fn access_lines(&self) -> Vec<serde_json::Value> {
        self.stdout_log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect()
    }

    /// Everything the gate wrote on stdout (its logs).
    pub fn log_text(&self) -> String {
        self.stdout_log.lock().unwrap().join("\n")
    }

    /// Everything the gate (and under `run`, its child) wrote: stdout, then stderr.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.log_text(), self.stderr_log.lock().unwrap().join("\n"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Peak resident set size of the gate process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    /// Waits (bounded) for the gate to exit; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        for _ in 0..500 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("prt-gate did not exit");
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
