//! Private `redis-server`s (never the shared one on 6379), killed on drop.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::process::{spawn_until, Pipe};

use super::free_port;

/// Tries before giving up when other processes keep taking the chosen port.
const BIND_ATTEMPTS: usize = 5;

/// A `redis-server` on a loopback port of its own, in a directory of its own.
pub struct Redis {
    child: Child,
    pub port: u16,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one with `extra` arguments (`--requirepass`, `--appendonly yes`,
    /// cluster flags…) after the defaults: loopback, no snapshots, no
    /// append-only file. redis-server cannot report a port it picked, so the
    /// port is one that was free a moment ago (below 55000, leaving room for a
    /// cluster bus port at +10000); if another process took it (or its bus
    /// port) first, it tries again with a new one.
    pub fn start(extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut refused = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = loop {
                let p = free_port();
                if p < 55_000 {
                    break p;
                }
            };
            match spawn(port, &args, &dir) {
                Ok(child) => return Redis { child, port, args, dir },
                Err(log) if log.contains("Address already in use") => refused = log,
                Err(log) => panic!("redis-server on {port} did not start:\n{log}"),
            }
        }
        panic!("redis-server found no free port in {BIND_ATTEMPTS} attempts:\n{refused}")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli -p PORT ARGS…`, its output trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the server (the fault); `restart` brings it back on the same
    /// port, arguments and directory.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.child = spawn(self.port, &self.args, &self.dir)
            .unwrap_or_else(|log| panic!("redis-server did not restart on {}:\n{log}", self.port));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts redis-server and reads its log until it accepts connections; the
/// log if it exits first.
fn spawn(port: u16, extra: &[String], dir: &tempfile::TempDir) -> Result<Child, String> {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]).arg("--dir").arg(dir.path());
    if !extra.iter().any(|a| a == "--appendonly") {
        cmd.args(["--appendonly", "no"]);
    }
    cmd.args(extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let ready = |line: &str| line.contains("Ready to accept connections").then_some(());
    spawn_until(cmd, Pipe::Stdout, &Arc::default(), ready).map(|(child, ())| child)
}
