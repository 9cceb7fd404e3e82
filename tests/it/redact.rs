//! `prt-gate redact`: the real binary as a line filter.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::BIN;

/// `prt-gate redact` in a directory without a `policy.toml` (built-ins only).
fn redact_cmd(dir: &tempfile::TempDir) -> Command {
    let mut c = Command::new(BIN);
    c.arg("redact").current_dir(dir.path()).env_remove("PRT_GATE_CONFIG");
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn filter(input: &[u8]) -> (Vec<u8>, i32) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = redact_cmd(&dir).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    (out.stdout, out.status.code().unwrap_or(-1))
}

#[test]
fn redact_filters_lines_keeps_order_and_bytes() {
    let input = b"GET /auth/callback/?code=c0de&state=st4te HTTP/1.1\n\xff\xfe raw bytes\nSession data: {'sso_access_token': 'tok'}\r\nno newline at end";
    let (out, code) = filter(input);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        b"GET /auth/callback/?code=[REDACTED:oauth]&state=[REDACTED:oauth] HTTP/1.1\n\xff\xfe raw bytes\nSession data: {'sso_access_token': '[REDACTED:secret]'}\r\nno newline at end".to_vec()
    );
}

#[test]
fn redact_uses_operator_patterns_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::tmpfile(
        &dir,
        "p.toml",
        "[redact]\npatterns = [{ name = \"pin\", regex = \"PIN-[0-9]{4}\" }]\n",
    );
    let out = Command::new(BIN)
        .arg("redact")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"driver PIN-1234 token=x\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "driver [REDACTED:pin] token=[REDACTED:oauth]\n");
    let bad = crate::support::tmpfile(&dir, "bad.toml", "[redact]\npatterns = [{ name = \"x\", regex = \"(\" }]\n");
    let out = Command::new(BIN).arg("redact").arg("--config").arg(&bad).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:2:"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Each line comes out before the next one is written: a reader waiting
/// for line N gets it while the writer still holds line N+1.
#[test]
fn redact_flushes_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = redact_cmd(&dir).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    for i in 0..5 {
        stdin.write_all(format!("line {i} password=p{i}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("line not flushed before the next write");
        assert_eq!(got, format!("line {i} password=[REDACTED:secret]"));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// A closed reader (`prt-gate redact < big | head -1`) ends the filter quietly.
#[test]
fn redact_broken_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = redact_cmd(&dir).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    stdin.write_all(b"hello\n").unwrap();
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let w = std::thread::spawn(move || {
        let line = b"more text token=x\n".repeat(10_000);
        for _ in 0..100 {
            if stdin.write_all(&line).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A 100 MB line without a newline: bounded memory, nothing dropped, the
/// secrets in it (one straddling no boundary in particular) redacted.
#[test]
fn redact_huge_line_has_bounded_memory() {
    const TOTAL: usize = 100 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut child = redact_cmd(&dir).spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut canaries = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let mut tail = Vec::new();
        loop {
            let k = stdout.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..k]);
            canaries += tail.windows(6).filter(|w| w == b"CANARY").count();
            let keep = tail.len().saturating_sub(5);
            tail.drain(..keep);
            n += k;
        }
        (n, canaries)
    });
    let chunk: Vec<u8> = {
        let mut c = vec![b'x'; (1 << 20) - 40];
        c.extend_from_slice(b" token=CANARYCANARY ");
        c.resize(1 << 20, b'y');
        c
    };
    for _ in 0..TOTAL / chunk.len() {
        stdin.write_all(&chunk).unwrap();
    }
    stdin.flush().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let (n, canaries) = reader.join().unwrap();
    assert_eq!(canaries, 0, "a secret leaked from a huge line");
    let per = "token=[REDACTED:oauth]".len() - "token=CANARYCANARY".len();
    assert_eq!(n, TOTAL + 100 * per, "bytes dropped or added");
    assert!(hwm_kib < 48 * 1024, "peak RSS {hwm_kib} KiB for a 100 MB line");
}

/// The Django adapter's logging filter (deploy/django/prt_gate_auth/redact.py)
/// and `prt-gate redact` write the same bytes for every line of one corpus:
/// the detectors are kept in step (detectors.json is generated from the
/// gate's table; `redact::export` checks it is current) and so is the engine.
#[test]
fn django_log_filter_redacts_exactly_like_the_gate() {
    let corpus = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/redaction-corpus.txt")).unwrap();
    let (gate, code) = filter(&corpus);
    assert_eq!(code, 0);
    let mut py = Command::new("python3")
        .args(["-m", "prt_gate_auth.redact"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/django"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = py.stdin.take().unwrap();
    let data = corpus.clone();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = py.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    assert!(out.status.success());
    let (gate, python) = (String::from_utf8_lossy(&gate), String::from_utf8_lossy(&out.stdout));
    for (i, (g, p)) in gate.lines().zip(python.lines()).enumerate() {
        assert_eq!(g, p, "corpus line {}: the gate and the Django filter disagree", i + 1);
    }
    assert_eq!(gate, python);
    // Not a comparison of two no-ops: most corpus lines hold a secret.
    let changed = gate.lines().zip(String::from_utf8_lossy(&corpus).lines()).filter(|(o, i)| o != i).count();
    assert!(changed >= 30, "only {changed} lines redacted:\n{gate}");
    for canary in ["Zk3pQ9vR7sT1uW5x", "s3ss10nV4lue", "3f1c0aab9e5d", "cl13ntS3cr3t", "r3d1sPassw0rd"] {
        assert!(String::from_utf8_lossy(&corpus).contains(canary) && !gate.contains(canary), "{canary}");
    }
}
