//! docs/design.md §15's memory row in one process: the real gate (`proxy::server::serve`
//! with the configured policy and the in-memory session store) holding 100,000 sessions
//! created through the store, while `benches/idle/run.sh` opens 10,000 keep-alive
//! connections that each make one request and stay idle, then reads this process's RSS.
//!
//! `memory_row --config GATE_TOML [--sessions N]`: builds the gate from the file, creates
//! the sessions, listens on `gate.listen`, prints `SESSIONS_RSS_KB <before> <after>` and
//! `READY`, and serves until standard input closes. Without `--config` (as `cargo test
//! --all-targets` runs it) a smoke run: 1,000 sessions, a few connections, no upstream.
//! The gate binary's access-log writer thread is not started here (no subscriber: the
//! lines are dropped); everything per connection and per session is the binary's.

use std::io::Write;
use std::sync::Arc;

use prt_gate::config::Config;
use prt_gate::metrics::Metrics;
use prt_gate::proxy::Gate;
use prt_gate::reload::Live;
use prt_gate::session::SessionStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/sessions.rs"]
mod sessions;
use sessions::{record, rss_kb};

const SMOKE_CONFIG: &str = "[gate]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
    upstream = \"http://127.0.0.1:9\"\n\n[[route]]\npath = \"/{*rest}\"\npublic = true\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let path = arg("--config");
    let smoke = path.is_none();
    let sessions: usize = arg("--sessions").and_then(|n| n.parse().ok()).unwrap_or(if smoke { 1_000 } else { 100_000 });
    let (text, at) = match &path {
        Some(p) => (std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}")), p.clone()),
        None => (SMOKE_CONFIG.to_string(), "smoke.toml".to_string()),
    };
    let config = match Config::from_str_at(std::path::Path::new(&at), &text) {
        Ok((c, _)) => c,
        Err(e) => panic!("config: {e:?}"),
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async move {
        let listen = config.gate.listen;
        let live = Arc::new(Live::new(config));
        let gate = Gate::new(live, Arc::new(Metrics::default())).await.unwrap_or_else(|e| panic!("gate: {e}"));
        let before = rss_kb();
        let mut ids = Vec::with_capacity(sessions);
        for i in 0..sessions {
            ids.push(gate.store.create(record(i)).await.unwrap_or_else(|e| panic!("create: {e}")));
        }
        let after = rss_kb();
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap_or_else(|e| panic!("listen: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let gate = Arc::new(gate);
        println!("SESSIONS_RSS_KB {before} {after}");
        println!("LISTENING {}", addr.port());
        println!("READY");
        let _ = std::io::stdout().flush();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(prt_gate::proxy::server::serve(gate, listener, async move {
            let _ = done_rx.await;
        }));
        if smoke {
            // A few keep-alive connections, one request each (502: no upstream), kept open.
            let mut held = Vec::new();
            for _ in 0..4 {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
                s.write_all(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap_or_else(|e| panic!("{e}"));
                assert!(buf.get(..n).unwrap_or_default().starts_with(b"HTTP/1.1 "), "no answer");
                held.push(s);
            }
            println!("smoke: {sessions} sessions, {} connections, RSS {} kB", held.len(), rss_kb());
        } else {
            // Until the harness closes standard input.
            let _ = tokio::task::spawn_blocking(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new()))
                .await;
        }
        let _ = done_tx.send(());
        let _ = server.await;
        drop(ids);
    });
}
