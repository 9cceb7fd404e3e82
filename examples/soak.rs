//! Soak driver for `benches/soak/run.sh`: runs the release gate (memory sessions, the
//! shipped policy, a dev SSO, media presigning without the existence check) in front of
//! an in-process upstream, measures the capacity of a mixed workload (login, API calls,
//! media redirects, logout), then runs it at half that rate for `--minutes`, sampling
//! the gate's RSS, open file descriptors and error count every 10 s.
//!
//! Fails (exit 1) on any request error (a status other than the expected one, or no
//! answer) or if RSS grows more than 5 % over its value at the end of the warm-up.
//!
//!     cargo run --release --example soak -- --gate-bin target/release/prt-gate --minutes 10

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Args {
    gate_bin: String,
    minutes: f64,
    workers: usize,
}

fn args() -> Args {
    let mut a = Args { gate_bin: "target/release/prt-gate".into(), minutes: 10.0, workers: 16 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage(&k));
        match k.as_str() {
            "--gate-bin" => a.gate_bin = v,
            "--minutes" => a.minutes = v.parse().unwrap_or_else(|_| usage(&k)),
            "--workers" => a.workers = v.parse().unwrap_or_else(|_| usage(&k)),
            _ => usage(&k),
        }
    }
    a
}

fn usage(k: &str) -> ! {
    eprintln!("soak: bad argument {k}; usage: soak [--gate-bin PATH] [--minutes N] [--workers N]");
    std::process::exit(2)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `bin args…` and waits for a stderr line starting with `ready`; returns the rest.
fn spawn(bin: &str, args: &[&str], env: &[(&str, String)], ready: &str, dir: &std::path::Path) -> (Proc, String) {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let rest = loop {
        let line = lines.next().unwrap_or_else(|| panic!("{bin} exited before `{ready}`")).expect("stderr line");
        if let Some(rest) = line.strip_prefix(ready) {
            break rest.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), rest)
}

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true,\"pad\":\"0123456789012345678901234567890123456789\"}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    logins: AtomicU64,
}

/// Paces requests: `None` is unthrottled; otherwise one permit per request.
struct Pacer(Option<Arc<tokio::sync::Semaphore>>);

impl Pacer {
    async fn wait(&self) {
        if let Some(s) = &self.0 {
            if let Ok(p) = s.acquire().await {
                p.forget();
            }
        }
    }
}

async fn call(
    c: &HttpClient,
    pacer: &Pacer,
    n: &Counters,
    url: &str,
    cookie: Option<&str>,
    want: u16,
) -> Option<http::response::Parts> {
    call_as(c, pacer, n, Request::get(url), url, cookie, want).await
}

/// [`call`] with a prepared request (method and headers).
async fn call_as(
    c: &HttpClient,
    pacer: &Pacer,
    n: &Counters,
    mut b: http::request::Builder,
    url: &str,
    cookie: Option<&str>,
    want: u16,
) -> Option<http::response::Parts> {
    pacer.wait().await;
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    let req = b.body(Full::new(Bytes::new())).ok()?;
    n.requests.fetch_add(1, Ordering::Relaxed);
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let resp = c.request(req).await.ok()?;
        let (parts, body) = resp.into_parts();
        body.collect().await.ok()?;
        Some(parts)
    })
    .await
    .ok()
    .flatten();
    match answer {
        Some(p) if p.status.as_u16() == want => Some(p),
        other => {
            let e = n.errors.fetch_add(1, Ordering::Relaxed);
            if e < 10 {
                eprintln!("soak: error on {url}: {:?} (wanted {want})", other.map(|p| p.status));
            }
            None
        }
    }
}

fn location(p: &http::response::Parts) -> Option<String> {
    p.headers.get("location")?.to_str().ok().map(str::to_string)
}

/// One browser session: login (3 requests), 20 API calls, 3 media redirects, logout.
async fn cycle(c: &HttpClient, pacer: &Pacer, n: &Counters, gate: &str, user: &str) {
    let Some(p) = call(c, pacer, n, &format!("{gate}/auth/login/?login_hint={user}"), None, 302).await else { return };
    // The login cookie binds the callback to this browser.
    let login_cookie = p
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("prt_login_"))
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let Some(authorize) = location(&p) else { return };
    let Some(p) = call(c, pacer, n, &authorize, None, 302).await else { return };
    let Some(callback) = location(&p) else { return };
    let Some(p) = call(c, pacer, n, &callback, login_cookie.as_deref(), 302).await else { return };
    let cookie = p
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("prt_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let Some(cookie) = cookie else {
        n.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    n.logins.fetch_add(1, Ordering::Relaxed);
    for i in 0..20 {
        let path = ["/api/history/", "/api/user/context/", "/api/health/", "/api/bol/1/"][i % 4];
        call(c, pacer, n, &format!("{gate}{path}"), Some(&cookie), 200).await;
    }
    for i in 0..3 {
        call(c, pacer, n, &format!("{gate}/media/bols/2025/PRT-2025-{i:04}.pdf"), Some(&cookie), 302).await;
    }
    // Sign out as the confirmation page's button does: a same-origin POST.
    let url = format!("{gate}/auth/logout/");
    call_as(c, pacer, n, Request::post(&url).header("origin", gate), &url, Some(&cookie), 302).await;
}

fn proc_sample(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    (rss, fds)
}

async fn run_phase(
    gate: &str,
    workers: usize,
    pacer: Arc<Pacer>,
    n: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let users = ["office@example.com", "admin@example.com"];
    (0..workers)
        .map(|w| {
            let (gate, pacer, n, stop) = (gate.to_string(), pacer.clone(), n.clone(), stop.clone());
            tokio::spawn(async move {
                let c: HttpClient = Client::builder(TokioExecutor::new()).build_http();
                while !stop.load(Ordering::Relaxed) {
                    // Staff users: every API in the mix answers them 200.
                    cycle(&c, &pacer, &n, &gate, users[w % 2]).await;
                }
            })
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let up = upstream().await;
    let (sso_proc, sso_url) =
        spawn(&a.gate_bin, &["dev-sso", "--listen", "127.0.0.1:0"], &[], "prt-gate dev-sso: listening on ", dir.path());
    let policy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml")).expect("policy.toml");
    std::fs::write(dir.path().join("policy.toml"), policy).expect("write policy");
    let port = free_port();
    let secret: String = (0..48).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
    let env = [
        ("PRT_GATE_GATE__LISTEN", format!("127.0.0.1:{port}")),
        ("PRT_GATE_GATE__ADMIN_LISTEN", "127.0.0.1:0".into()),
        ("PRT_GATE_GATE__PUBLIC_URL", format!("http://127.0.0.1:{port}")),
        ("PRT_GATE_GATE__UPSTREAM", format!("http://{up}")),
        ("PRT_GATE_SSO__BASE_URL", sso_url.clone()),
        ("PRT_GATE_SSO__CLIENT_ID", "prt-gate-dev".into()),
        ("PRT_GATE_SSO__CLIENT_SECRET", "dev-secret".into()),
        ("PRT_GATE_ASSERTION__SECRET", secret),
        ("PRT_GATE_SESSION__COOKIE_SECURE", "false".into()),
        ("PRT_GATE_MEDIA__BUCKET", "prt-media".into()),
        ("PRT_GATE_MEDIA__CHECK_EXISTS", "false".into()),
        ("AWS_ACCESS_KEY_ID", "AKIASOAKSOAKSOAK".into()),
        ("AWS_SECRET_ACCESS_KEY", "soak-secret-soak-secret-soak-secret".into()),
        ("PRT_GATE_LOG__LEVEL", "warn".into()),
        // Every simulated browser logs in from 127.0.0.1.
        ("PRT_GATE_GATE__LOGIN_RATE_LIMIT", "0".into()),
    ];
    let (gate_proc, _) =
        spawn(&a.gate_bin, &["serve", "--config", "policy.toml"], &env, "prt-gate: listening on ", dir.path());
    let pid = gate_proc.0.id();
    let gate = format!("http://127.0.0.1:{port}");

    // Capacity: unthrottled for 10 s.
    let n = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = run_phase(&gate, a.workers, Arc::new(Pacer(None)), n.clone(), stop.clone()).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let capacity = n.requests.load(Ordering::Relaxed) as f64 / 10.0;
    let capacity_errors = n.errors.load(Ordering::Relaxed);
    let rate = (capacity / 2.0).max(10.0) as u64;
    eprintln!(
        "soak: capacity {capacity:.0} req/s (mixed workload, {} workers); running at {rate} req/s for {} min",
        a.workers, a.minutes
    );

    // Soak at half capacity: a pacer adds rate/100 permits every 10 ms.
    let sem = Arc::new(tokio::sync::Semaphore::new(0));
    let pacer_stop = Arc::new(AtomicBool::new(false));
    {
        let (sem, stop) = (sem.clone(), pacer_stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut owed = 0.0f64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                owed += rate as f64 / 100.0;
                let whole = owed.floor();
                owed -= whole;
                // Never bank more than a second of permits.
                if sem.available_permits() < rate as usize {
                    sem.add_permits(whole as usize);
                }
            }
        });
    }
    let n = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = run_phase(&gate, a.workers * 2, Arc::new(Pacer(Some(sem))), n.clone(), stop.clone()).await;
    let total = Duration::from_secs_f64(a.minutes * 60.0);
    let warmup = (total / 5).min(Duration::from_secs(60));
    let start = Instant::now();
    // (time, RSS KiB) per sample.
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    println!("| t (s) | requests | req/s | logins | errors | RSS (KiB) | fds |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut last = 0;
    let mut baseline = None;
    while start.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(10).min(total.saturating_sub(start.elapsed()))).await;
        let (rss, fds) = proc_sample(pid);
        let req = n.requests.load(Ordering::Relaxed);
        let err = n.errors.load(Ordering::Relaxed);
        let t = start.elapsed();
        println!(
            "| {:.0} | {req} | {:.0} | {} | {err} | {rss} | {fds} |",
            t.as_secs_f64(),
            (req - last) as f64 / 10.0,
            n.logins.load(Ordering::Relaxed)
        );
        last = req;
        if baseline.is_none() && t >= warmup {
            baseline = Some(rss);
        }
        samples.push((t, rss));
    }
    stop.store(true, Ordering::Relaxed);
    pacer_stop.store(true, Ordering::Relaxed);
    sem_close_and_join(tasks).await;
    let errors = n.errors.load(Ordering::Relaxed) + capacity_errors;
    let baseline = baseline.unwrap_or_else(|| samples.first().map_or(0, |s| s.1));
    let peak_after = samples.iter().filter(|s| s.0 >= warmup).map(|s| s.1).max().unwrap_or(baseline);
    let growth = if baseline > 0 { (peak_after as f64 / baseline as f64 - 1.0) * 100.0 } else { 0.0 };
    let alive = Command::new("kill").args(["-0", &pid.to_string()]).status().is_ok_and(|s| s.success());
    println!(
        "\nsoak: capacity {capacity:.0} req/s, soak rate {rate} req/s, {} requests, {} logins, {errors} errors, \
         RSS {baseline} KiB after warm-up ({warmup:?}) → peak {peak_after} KiB ({growth:+.1} %), gate alive: {alive}",
        n.requests.load(Ordering::Relaxed),
        n.logins.load(Ordering::Relaxed)
    );
    let ok = errors == 0 && growth <= 5.0 && alive;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    // `exit` runs no destructors: stop the children (and remove the temp dir) first.
    drop(gate_proc);
    drop(sso_proc);
    drop(dir);
    std::process::exit(if ok { 0 } else { 1 });
}

async fn sem_close_and_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    // Workers blocked on the pacer are aborted; the others finish their cycle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
}
