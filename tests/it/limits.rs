//! Request limits and slow or numerous clients (docs/design.md §13): 414 for over-long
//! targets, 431 for oversized or crowded heads (boundaries included), slow
//! clients cut at the header timeout without starving anyone, and the
//! `gate.max_connections` cap.
//!
//! Timings are printed (`eprintln!`) for docs/RELIABILITY.md, never asserted
//! as speed: the machine is shared and loaded.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn over_long_uri_is_414_and_never_reaches_upstream() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate("max_uri_bytes = 4096").start();
    // Positive control: just under the limit is served.
    let ok = format!("/x?q={}", "a".repeat(4096 - 5));
    assert_eq!(ok.len(), 4096);
    let (status, _) = raw_get(gate.addr, ok.as_bytes(), "");
    assert_eq!(status, 200);
    assert_eq!(up.count(), 1);

    for target in [format!("/x?q={}", "a".repeat(4096 - 4)), format!("/{}", "seg/".repeat(2000))] {
        let (status, text) = raw_get(gate.addr, target.as_bytes(), "");
        assert_eq!(status, 414, "{}", &text[..text.len().min(200)]);
        assert!(text.contains("\"error\":\"uri_too_long\""), "{text}");
    }
    // Longer than the whole head buffer: the server refuses it first (431).
    let huge = format!("/x?q={}", "a".repeat(80 * 1024));
    let (status, _) = raw_get(gate.addr, huge.as_bytes(), "");
    assert_eq!(status, 431);
    assert_eq!(up.count(), 1, "an over-long target reached the upstream");
    // The access log is written asynchronously: wait for the line.
    let logged = eventually(Duration::from_secs(20), || {
        gate.access_lines().iter().any(|l| l["status"] == 414 && l["decision"] == "reject" && l["path"] == "-")
    })
    .await;
    assert!(logged, "{:?}", gate.access_lines());
}

/// The 431 limits of `header_limits_and_read_timeout` (tests/it/proxy.rs),
/// with the positive controls at the boundary.
#[tokio::test(flavor = "multi_thread")]
async fn header_limits_refuse_only_past_the_boundary() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate("max_headers = 20\nmax_header_bytes = 8192").start();
    // Host + Connection + 17 = 19 header lines: within max_headers.
    let some: String = (0..17).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(raw_get(gate.addr, b"/x", &some).0, 200);
    let many: String = (0..25).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(raw_get(gate.addr, b"/x", &many).0, 431);
    // A 6 KiB header fits in an 8 KiB head; 9 KiB does not.
    assert_eq!(raw_get(gate.addr, b"/x", &format!("X-Big: {}\r\n", "a".repeat(6 * 1024))).0, 200);
    assert_eq!(raw_get(gate.addr, b"/x", &format!("X-Big: {}\r\n", "a".repeat(9 * 1024))).0, 431);
    assert_eq!(up.count(), 2);
}

/// A connection that opens and never sends a byte is closed at the header
/// timeout like any other slow head (the HTTP/1-or-2 detection that runs
/// before hyper's own header timer must not wait forever).
#[tokio::test(flavor = "multi_thread")]
async fn silent_and_preface_trickling_connections_are_closed_at_the_header_timeout() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate("header_read_timeout = \"500ms\"").start();
    let closed_within = |prefix: &'static [u8]| {
        let addr = gate.addr;
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let t = Instant::now();
            // Trickle the given bytes one at a time (the HTTP/2 preface keeps
            // the version detection waiting for more).
            for b in prefix {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut buf = Vec::new();
            let r = s.read_to_end(&mut buf);
            (r.is_ok() || t.elapsed() < Duration::from_secs(19), t.elapsed(), buf)
        })
    };
    let silent = closed_within(b"");
    let preface = closed_within(b"PRI * HTTP/2.0\r\n\r\nS");
    for (name, h) in [("silent", silent), ("h2 preface trickle", preface)] {
        let (closed, took, buf) = h.join().unwrap();
        eprintln!("limits: {name} connection closed after {took:?}");
        assert!(closed && took < Duration::from_secs(19), "{name} connection was never closed");
        assert!(!String::from_utf8_lossy(&buf).contains(" 200 "), "{name}");
    }
    // Positive control: a prompt client on the same gate is served.
    assert_eq!(raw_get(gate.addr, b"/x", "").0, 200);
}

/// 1,000 connections trickling header lines: a normal client is still served
/// while they are open, and each is closed at the header timeout even though
/// it keeps sending (the timeout bounds the whole head, not the gaps).
#[tokio::test(flavor = "multi_thread")]
async fn thousand_slow_clients_do_not_block_others_and_are_closed_at_the_header_timeout() {
    const SLOW: usize = 1000;
    let up = Upstream::start().await;
    let timeout = Duration::from_secs(10);
    let gate = GateBuilder::new(up.addr).gate("header_read_timeout = \"10s\"").start();
    let addr = gate.addr;
    let connected = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let connected = connected.clone();
        slow.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET /x HTTP/1.1\r\nHost: prt.test\r\n").await.expect("first line");
            let opened = Instant::now();
            connected.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 512];
            let mut got = Vec::new();
            // Trickle a header line every 250 ms until the gate hangs up.
            loop {
                tokio::select! {
                    n = s.read(&mut buf) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    },
                    () = tokio::time::sleep(Duration::from_millis(250)) => {
                        if s.write_all(b"X-Trickle: 1\r\n").await.is_err() {
                            break;
                        }
                    }
                }
                if opened.elapsed() > Duration::from_secs(120) {
                    return None;
                }
            }
            Some((opened.elapsed(), got))
        }));
    }
    assert!(
        eventually(Duration::from_secs(60), || connected.load(Ordering::SeqCst) == SLOW).await,
        "only {} slow clients connected",
        connected.load(Ordering::SeqCst)
    );
    // Wait for the gate to have accepted them all (it is behind the clients).
    eventually_async(Duration::from_secs(8), || async {
        metric(&gate, "prt_gate_connections_open").await >= SLOW as i64
    })
    .await;
    let open = metric(&gate, "prt_gate_connections_open").await;
    eprintln!("limits: {SLOW} slow clients connected after {:?}; gate reports {open} open", started.elapsed());

    // While they trickle, a normal request is served.
    let t = Instant::now();
    let (parts, body) = send(&client(), get(&gate.url("/api/ok/"))).await;
    assert_eq!(parts.status, 200, "{body:?}");
    eprintln!("limits: normal request during the slow clients answered in {:?}", t.elapsed());
    // The request above proved something only if the slow clients were open.
    assert!(open >= (SLOW as i64) * 9 / 10, "the slow clients were not open concurrently: {open}");

    let mut times = Vec::new();
    for h in slow {
        let (took, got) = h.await.unwrap().expect("a slow client was never closed");
        assert!(!String::from_utf8_lossy(&got).contains(" 200 "), "a never-finished head was answered 200");
        // Never cut before the timeout: they were still within their time.
        assert!(took + Duration::from_secs(1) >= timeout, "closed early after {took:?}");
        times.push(took);
    }
    times.sort();
    eprintln!(
        "limits: slow clients closed after min {:?} median {:?} max {:?} (header_read_timeout {timeout:?})",
        times[0],
        times[SLOW / 2],
        times[SLOW - 1]
    );
    assert_eq!(up.count(), 1, "only the normal request reaches the upstream");
    assert!(
        eventually_async(Duration::from_secs(20), || async { metric(&gate, "prt_gate_connections_open").await == 0 })
            .await,
        "connections not released: {}",
        metric(&gate, "prt_gate_connections_open").await
    );
}

/// `gate.max_connections`: past the cap a new connection waits (in the listen
/// backlog) and is served as soon as a slot frees.
#[tokio::test(flavor = "multi_thread")]
async fn max_connections_holds_new_connections_until_a_slot_frees() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).gate("max_connections = 2\nheader_read_timeout = \"60s\"").start();
    assert_eq!(raw_get(gate.addr, b"/x", "").0, 200, "positive control");
    let idle_a = std::net::TcpStream::connect(gate.addr).unwrap();
    let idle_b = std::net::TcpStream::connect(gate.addr).unwrap();
    assert!(
        eventually_async(Duration::from_secs(20), || async { metric(&gate, "prt_gate_connections_open").await == 2 })
            .await
    );
    let addr = gate.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(raw_get(addr, b"/x", "").0);
    });
    // The third client is not served while both slots are taken.
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            metric(&gate, "prt_gate_connections_limited_total").await >= 1
        })
        .await,
        "the accept loop never reached the cap"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(rx.try_recv().is_err(), "a third connection was served past max_connections = 2");
    assert!(metric(&gate, "prt_gate_connections_open").await <= 2);
    assert_eq!(up.count(), 1);

    drop(idle_a);
    let t = Instant::now();
    let status = rx.recv_timeout(Duration::from_secs(30)).expect("waiting connection never served");
    assert_eq!(status, 200);
    eprintln!("limits: waiting connection served {:?} after a slot freed", t.elapsed());
    drop(idle_b);
}
