//! Faults under load (docs/design.md §13): each test starts its own services on their own
//! ports, runs a load generator (several tasks looping requests), injects the
//! fault while the load runs, and checks every answer: never fail open, no
//! transport errors from the gate, recovery without a restart of the gate.
//!
//! The numbers each test observes (requests during the fault, errors,
//! recovery time) are printed with `eprintln!` (`-- --nocapture`) for
//! docs/RELIABILITY.md; they are never asserted as speeds.
// Short critical sections, never held across an await.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use prt_gate::devsso::{builtin_users, DevSso};

use crate::support::*;

/// One answer seen by the load generator: when, which worker kind, status
/// (0: transport error or no answer within 15 s) and whether a `Location`
/// header came with it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    kind: &'static str,
    status: u16,
    location: bool,
}

type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Tasks looping requests until stopped, recording every answer.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers`: (kind, how many tasks, request for the n-th request overall).
    fn start(workers: Vec<(&'static str, usize, MakeRequest)>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let counter = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for (kind, n, make) in workers {
            for _ in 0..n {
                let (stop, seen, counter, make) = (stop.clone(), seen.clone(), counter.clone(), make.clone());
                tasks.push(tokio::spawn(async move {
                    let c = client();
                    while !stop.load(Ordering::Relaxed) {
                        let req = make(counter.fetch_add(1, Ordering::Relaxed));
                        let answer = tokio::time::timeout(Duration::from_secs(15), async {
                            let resp = c.request(req).await.ok()?;
                            let (parts, body) = resp.into_parts();
                            body.collect().await.ok()?;
                            Some((parts.status.as_u16(), parts.headers.contains_key("location")))
                        })
                        .await
                        .ok()
                        .flatten();
                        let (status, location) = answer.unwrap_or((0, false));
                        seen.lock().unwrap().push(Seen { at: Instant::now(), kind, status, location });
                        // A little breathing room for the rest of the 2-core machine.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }));
            }
        }
        Load { stop, seen, tasks }
    }

    fn count(&self, kind: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| s.kind == kind).count()
    }

    /// Waits until every worker kind has at least `n` more answers.
    async fn wait_more(&self, kinds: &[&str], n: usize) {
        let start: Vec<usize> = kinds.iter().map(|k| self.count(k)).collect();
        let ok =
            eventually(Duration::from_secs(60), || kinds.iter().zip(&start).all(|(k, s)| self.count(k) >= s + n)).await;
        assert!(ok, "the load generator stalled: {:?}", kinds.iter().map(|k| self.count(k)).collect::<Vec<_>>());
    }

    async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}

/// Status → count for one kind within `[from, to)`.
fn tally(seen: &[Seen], kind: &str, from: Instant, to: Instant) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for s in seen.iter().filter(|s| s.kind == kind && s.at >= from && s.at < to) {
        *m.entry(s.status).or_default() += 1;
    }
    m
}

/// Time from `since` to the first answer of `kind` after which every answer
/// of that kind is `good`.
fn recovery(seen: &[Seen], kind: &str, since: Instant, good: u16) -> Option<Duration> {
    let after: Vec<&Seen> = seen.iter().filter(|s| s.kind == kind && s.at >= since).collect();
    let last_bad = after.iter().rposition(|s| s.status != good);
    let first_good = match last_bad {
        Some(i) => after.get(i + 1)?,
        None => after.first()?,
    };
    Some(first_good.at.saturating_duration_since(since))
}

fn req(url: String, cookie: Option<String>) -> MakeRequest {
    Arc::new(move |_| get_with(&url, cookie.as_deref(), None))
}

fn random_cookie() -> String {
    let bytes: [u8; 32] = rand::random();
    use base64::Engine;
    format!("prt_session={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Open file descriptors of a process.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

async fn dev_sso() -> DevSso {
    DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap()
}

/// Redis killed (SIGKILL) and restarted under load. Past the hot-cache
/// window the valid session gets 503, never 401 or 200; a forged cookie and
/// no cookie never get 200; after the restart the same session and new
/// logins work again without touching the gate.
#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_under_load_never_fails_open() {
    let up = Upstream::start().await;
    let sso = dev_sso().await;
    // Its data on disk (append-only file, fsync on every write): a SIGKILL and restart loses no session.
    let mut redis = Redis::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = redis.url();
    let gate = GateBuilder::new(up.addr)
        .sso(sso.url())
        .shipped_policy()
        .env("PRT_GATE_SESSION__STORE", store.as_str())
        .start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let api = gate.url("/api/history/");
    assert_eq!(send(&client(), get_with(&api, Some(&cookie), None)).await.0.status, 200, "positive control");

    let load = Load::start(vec![
        ("valid", 3, req(api.clone(), Some(cookie.clone()))),
        ("forged", 1, Arc::new(move |_| get_with(&api, Some(&random_cookie()), None))),
        ("anonymous", 1, req(gate.url("/api/history/"), None)),
    ]);
    load.wait_more(&["valid", "forged", "anonymous"], 20).await;

    let killed = Instant::now();
    redis.kill();
    load.wait_more(&["valid", "forged", "anonymous"], 50).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A login cannot start without the store.
    assert_eq!(send(&client(), get(&gate.url("/auth/login/"))).await.0.status, 503);
    let restarted = Instant::now();
    redis.restart();
    let back = eventually_async(Duration::from_secs(60), || async {
        send(&client(), get_with(&gate.url("/api/history/"), Some(&cookie), None)).await.0.status == 200
    })
    .await;
    assert!(back, "the session did not come back after Redis restarted");
    load.wait_more(&["valid", "forged", "anonymous"], 20).await;
    let seen = load.stop().await;

    // A new login works again on its own.
    let fresh = login(&gate, "admin@example.com", "", None).await.cookie.expect("login after recovery");
    assert_eq!(send(&client(), get_with(&gate.url("/api/history/"), Some(&fresh), None)).await.0.status, 200);

    let end = Instant::now() + Duration::from_secs(1);
    let start = killed - Duration::from_secs(3600);
    for kind in ["forged", "anonymous"] {
        let all = tally(&seen, kind, start, end);
        assert!(all.keys().all(|s| *s == 401 || *s == 503), "{kind}: {all:?}");
    }
    let all = tally(&seen, "valid", start, end);
    assert!(all.keys().all(|s| *s == 200 || *s == 503), "valid session: {all:?}");
    // The hot cache may serve a known session for session.cache_ttl (500 ms);
    // from then on to the restart nothing reaches Django.
    let outage = tally(&seen, "valid", killed + Duration::from_secs(2), restarted);
    assert!(outage.get(&503).copied().unwrap_or(0) > 0, "the outage was not observed: {outage:?}");
    assert_eq!(outage.get(&200), None, "a session was served without its store: {outage:?}");
    let during: BTreeMap<&str, BTreeMap<u16, usize>> =
        ["valid", "forged", "anonymous"].iter().map(|k| (*k, tally(&seen, k, killed, restarted))).collect();
    eprintln!(
        "faults: redis down {:?}: answers during the outage {during:?}; transport errors {}; \
         valid session back {:?} after restart",
        restarted - killed,
        seen.iter().filter(|s| s.status == 0).count(),
        recovery(&seen, "valid", restarted, 200)
    );
}

/// A killable in-process upstream: aborting its task drops the listener and
/// every connection (they live in its `JoinSet`).
fn serve_upstream(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(|_req| async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Some(_) = conns.join_next() => {}
            }
        }
    })
}

/// Upstream killed and restarted under load: 502 while it is down, 200 after,
/// the gate never crashes, and its connections and file descriptors return
/// to the baseline.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_killed_and_restarted_under_load_recovers_without_leaks() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut upstream = serve_upstream(listener);
    let mut gate = GateBuilder::new(addr).gate("upstream_connect_timeout = \"1s\"").start();
    let url = gate.url("/api/orders/");

    // Warm-up with the same concurrency, then the idle baseline.
    let warm = Load::start(vec![("api", 4, req(url.clone(), None))]);
    warm.wait_more(&["api"], 20).await;
    assert!(warm.stop().await.iter().all(|s| s.status == 200));
    assert!(
        eventually_async(Duration::from_secs(20), || async { metric(&gate, "prt_gate_connections_open").await == 0 })
            .await
    );
    let fds_before = fd_count(gate.pid());

    let load = Load::start(vec![("api", 4, req(url.clone(), None))]);
    load.wait_more(&["api"], 50).await;
    let killed = Instant::now();
    upstream.abort();
    let _ = (&mut upstream).await;
    load.wait_more(&["api"], 100).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = Instant::now();
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) => {
                assert!(restarted.elapsed() < Duration::from_secs(30), "cannot rebind {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let upstream = serve_upstream(listener);
    load.wait_more(&["api"], 200).await;
    let seen = load.stop().await;
    assert!(gate.child.try_wait().is_ok_and(|s| s.is_none()), "the gate exited");

    let all = tally(&seen, "api", killed - Duration::from_secs(3600), Instant::now());
    assert!(all.keys().all(|s| *s == 200 || *s == 502), "unexpected answers: {all:?}");
    let outage = tally(&seen, "api", killed + Duration::from_millis(500), restarted);
    assert!(outage.get(&502).copied().unwrap_or(0) > 0 && !outage.contains_key(&200), "{outage:?}");
    let after = tally(&seen, "api", Instant::now() - Duration::from_millis(300), Instant::now());
    let rec = recovery(&seen, "api", restarted, 200);
    assert!(rec.is_some(), "never recovered: {after:?}");

    assert!(
        eventually_async(Duration::from_secs(30), || async { metric(&gate, "prt_gate_connections_open").await == 0 })
            .await,
        "client connections left open"
    );
    let mut fds_after = 0;
    let settled = eventually(Duration::from_secs(30), || {
        fds_after = fd_count(gate.pid());
        fds_after <= fds_before + 8
    })
    .await;
    eprintln!(
        "faults: upstream down {:?}: answers during {:?}; transport errors {}; recovered {rec:?} after restart; \
         gate fds {fds_before} before, {fds_after} after ({} requests in all)",
        restarted - killed,
        tally(&seen, "api", killed, restarted),
        all.get(&0).copied().unwrap_or(0),
        seen.len()
    );
    assert!(settled, "file descriptors leaked: {fds_before} before, {fds_after} after");
    upstream.abort();
}

/// SSO down under load: existing sessions keep working (every request 200),
/// login callbacks answer 503, and logins work again once the SSO is back
/// (with new signing keys: the JWKS is refetched by `kid`).
#[tokio::test(flavor = "multi_thread")]
async fn sso_down_under_load_logins_503_sessions_keep_working() {
    let up = Upstream::start().await;
    let mut sso = SsoProc::start(&[]);
    let sso_url = sso.url.clone();
    // Logins are retried in a loop from one address until the SSO is back.
    let gate =
        GateBuilder::new(up.addr).sso(&sso_url).shipped_policy().env("PRT_GATE_GATE__LOGIN_RATE_LIMIT", "0").start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let mut pending = Vec::new();
    for _ in 0..5 {
        pending.push(start_login(&gate, "operator@example.com").await);
    }
    let load = Load::start(vec![("session", 4, req(gate.url("/api/history/"), Some(cookie)))]);
    load.wait_more(&["session"], 20).await;

    let killed = Instant::now();
    sso.kill();
    let mut callbacks = Vec::new();
    for (url, cookies) in &pending {
        let req = Request::get(url.as_str())
            .header("accept", "text/html")
            .header("cookie", cookies.join("; "))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (parts, body) = send(&client(), req).await;
        assert!(parts.headers.get("set-cookie").is_none_or(|c| !c.to_str().unwrap().starts_with("prt_session=")));
        assert!(String::from_utf8_lossy(&body).contains("temporarily unavailable"), "{body:?}");
        callbacks.push(parts.status.as_u16());
    }
    assert!(callbacks.iter().all(|s| *s == 503), "login callbacks with the SSO down: {callbacks:?}");
    load.wait_more(&["session"], 50).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restarted = Instant::now();
    sso.restart();
    // New keys, new kid: the refetch is rate-limited (10 s), so retry.
    let mut relogin = None;
    let t = Instant::now();
    while relogin.is_none() && t.elapsed() < Duration::from_secs(60) {
        let l = login(&gate, "admin@example.com", "", None).await;
        relogin = l.cookie;
        if relogin.is_none() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let login_back = restarted.elapsed();
    let fresh = relogin.expect("login never worked again after the SSO came back");
    assert_eq!(send(&client(), get_with(&gate.url("/api/history/"), Some(&fresh), None)).await.0.status, 200);
    let seen = load.stop().await;
    let all = tally(&seen, "session", killed - Duration::from_secs(3600), Instant::now());
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), vec![200], "existing session during the SSO outage: {all:?}");
    eprintln!(
        "faults: sso down {:?}: session answers during {:?}; login callbacks {callbacks:?}; logins back {login_back:?} after restart",
        restarted - killed,
        tally(&seen, "session", killed, restarted)
    );
    sso.kill();
}

/// S3 down with `media.check_exists` under load: every media request during
/// the outage is 503 without a `Location`; redirects resume after. Each
/// request names an object not asked for before, so the existence cache
/// never answers for S3.
#[tokio::test(flavor = "multi_thread")]
async fn s3_down_under_load_is_503_without_redirect_and_recovers() {
    const OBJECTS: u64 = 20_000;
    let up = Upstream::start().await;
    let sso = dev_sso().await;
    let mut s3 = S3::start();
    for i in 0..OBJECTS {
        s3.put(&format!("bols/2025/load-{i}.pdf"), b"%PDF-1.4 load\n");
    }
    let env = s3.env();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let base = gate.url("/media/bols/2025/");
    let make: MakeRequest =
        Arc::new(move |n| get_with(&format!("{base}load-{}.pdf", n % OBJECTS), Some(&cookie), None));
    let load = Load::start(vec![("media", 4, make)]);
    load.wait_more(&["media"], 20).await;

    let killed = Instant::now();
    s3.kill();
    // Counted, not timed: the number of distinct keys asked for stays well
    // under OBJECTS however fast the machine is.
    load.wait_more(&["media"], 500).await;
    let restarted = Instant::now();
    s3.restart();
    let back = eventually(Duration::from_secs(60), || {
        load.seen.lock().unwrap().iter().rev().take(8).all(|s| s.at > restarted && s.status == 302)
    })
    .await;
    let seen = load.stop().await;
    assert!(back, "redirects did not resume after S3 came back");
    assert!(seen.len() < OBJECTS as usize, "keys repeated: the existence cache may have answered");

    for s in &seen {
        assert!(matches!(s.status, 302 | 503), "unexpected answer {s:?}");
        assert_eq!(s.location, s.status == 302, "{s:?}");
    }
    let outage = tally(&seen, "media", killed + Duration::from_millis(50), restarted);
    assert!(outage.get(&503).copied().unwrap_or(0) > 0 && !outage.contains_key(&302), "{outage:?}");
    eprintln!(
        "faults: s3 down {:?}: media answers during {:?}; transport errors {}; redirects back {:?} after restart",
        restarted - killed,
        tally(&seen, "media", killed, restarted),
        seen.iter().filter(|s| s.status == 0).count(),
        recovery(&seen, "media", restarted, 302)
    );
}

/// 100 policy reloads alternating valid and broken files under load: zero
/// failed requests, every reload counted, broken files never applied.
#[tokio::test(flavor = "multi_thread")]
async fn hundred_alternating_good_and_broken_reloads_under_load_fail_no_request() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let cfg = gate.dir.path().join("policy.toml");
    let base = std::fs::read_to_string(&cfg).unwrap();
    // Each broken variant would lock every route behind a login if applied.
    let locked = base.replace("public = true", "roles = [\"Admin\"]");
    let broken = [
        format!("{locked}\nbogus = 1\n"),
        format!("{locked}\n[[route]\npath = \"/x\"\n"),
        format!("{locked}\n[[route]]\npath = \"/api/{{*rest}}\"\npublic = true\n"),
        format!("{locked}\n[gate]\nheader_read_timeout = \"soon\"\n"),
        // Cut inside a string: an unterminated `path = "/api/`.
        locked[..locked.rfind("/api/").unwrap() + 5].to_string(),
    ];
    let load = Load::start(vec![
        ("api", 3, req(gate.url("/api/history/"), None)),
        ("page", 1, req(gate.url("/dashboard/"), None)),
    ]);
    load.wait_more(&["api", "page"], 10).await;
    let reloads = |m: &str, result: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("prt_gate_config_reloads_total{{result=\"{result}\"}} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let started = Instant::now();
    let mut last_good = None;
    for i in 0..100u64 {
        let text = if i % 2 == 0 {
            last_good = Some(i);
            format!("{base}\n[[route]]\npath = \"/api/reload-{i}/\"\npublic = true\n")
        } else {
            broken[(i as usize / 2) % broken.len()].clone()
        };
        let tmp = gate.dir.path().join("policy.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
        gate.signal("HUP");
        let t = Instant::now();
        loop {
            let m = scrape(&gate).await;
            if reloads(&m, "ok") + reloads(&m, "failed") > i {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "reload {i} not counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let took = started.elapsed();
    let seen = load.stop().await;
    let failed: Vec<&Seen> = seen.iter().filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "{} requests failed during reloads: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    let m = scrape(&gate).await;
    assert_eq!((reloads(&m, "ok"), reloads(&m, "failed")), (50, 50), "{m}");
    let last = last_good.unwrap();
    assert_eq!(send(&client(), get(&gate.url(&format!("/api/reload-{last}/")))).await.0.status, 200);
    eprintln!("faults: 100 reloads (50 broken) in {took:?}: {} requests, 0 failed", seen.len());
}
