//! Test helpers: a recording upstream, a `prt-gate` process ([`GateBuilder`]),
//! an S3 store (`s3s-fs`), raw HTTP/1.1 over TCP, `/metrics` scrapes, logins,
//! and `eventually` instead of sleeps.

#![allow(dead_code)]
// Short critical sections, never held across an await: std Mutex is right here.
#![allow(clippy::disallowed_types)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

mod gate;
mod process;
mod redis;
mod s3;

pub use gate::{Gate, GateBuilder, DEV_CLIENT_SECRET, TEST_ASSERTION_SECRET};
use process::{spawn_until, Pipe};
pub use redis::Redis;
pub use s3::{random_credentials, BUCKET, S3};

pub const BIN: &str = env!("CARGO_BIN_EXE_prt-gate");

/// What the upstream saw for one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Seen {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "header {name} seen {} times: {all:?}", all.len());
        all.first().copied()
    }
}

/// A recording HTTP/1.1 upstream running in the test's runtime.
///
/// * `/slow/<ms>` answers after a delay;
/// * `/download/<bytes>` streams that many bytes;
/// * anything else consumes the body (counting bytes) and answers `ok`.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let rec = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let rec = rec.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(rec.clone(), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Upstream { addr, seen }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().expect("upstream saw no request")
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn handle(rec: Arc<Mutex<Vec<Seen>>>, req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    let method = req.method().to_string();
    let target = req.uri().to_string();
    let version = format!("{:?}", req.version());
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let path = req.uri().path().to_string();
    // Consume the body chunk by chunk (never buffering it whole).
    let mut body = req.into_body();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_len += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    rec.lock().unwrap().push(Seen { method, target, version, headers, body_len });

    if let Some(ms) = path.strip_prefix("/slow/").and_then(|s| s.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(Response::new(Full::new(Bytes::from("slow ok")).boxed()));
    }
    if let Some(n) = path.strip_prefix("/download/").and_then(|s| s.parse::<u64>().ok()) {
        const CHUNK: usize = 256 * 1024;
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        let stream = futures_util::stream::unfold(n, move |left| {
            let chunk = chunk.clone();
            async move {
                if left == 0 {
                    return None;
                }
                let take = left.min(CHUNK as u64);
                Some((Ok::<_, Infallible>(Frame::data(chunk.slice(..take as usize))), left - take))
            }
        });
        let mut resp = Response::new(StreamBody::new(stream).boxed());
        resp.headers_mut().insert("content-length", n.into());
        return Ok(resp);
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!("ok {body_len}"))).boxed());
    resp.headers_mut().insert("connection", "x-upstream-hop".parse().unwrap());
    resp.headers_mut().insert("x-upstream-hop", "1".parse().unwrap());
    resp.headers_mut().insert("keep-alive", "timeout=5".parse().unwrap());
    Ok(resp)
}

/// A raw HTTP/1.1 exchange: writes `head` verbatim (bytes), reads until close.
pub fn raw(addr: SocketAddr, head: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// `GET target` with `Connection: close` and the given extra header lines.
pub fn raw_get(addr: SocketAddr, target: &[u8], extra: &str) -> (u16, String) {
    let mut head = b"GET ".to_vec();
    head.extend_from_slice(target);
    head.extend_from_slice(format!(" HTTP/1.1\r\nHost: prt.test\r\nConnection: close\r\n{extra}\r\n").as_bytes());
    raw(addr, &head)
}

pub type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and reads the whole response body.
/// `GET url` with `Authorization: Bearer token` (a machine client); the status.
pub async fn bearer_get(url: String, token: String) -> u16 {
    let req =
        Request::get(url).header("authorization", format!("Bearer {token}")).body(Full::new(Bytes::new())).unwrap();
    send(&client(), req).await.0.status.as_u16()
}

pub async fn send(client: &Client, req: Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
    let resp = client.request(req).await.expect("request");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts, body)
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

/// The gate's `/metrics` text (from its admin listener).
pub async fn scrape(gate: &Gate) -> String {
    let (_, body) = send(&client(), get(&format!("http://{}/metrics", gate.admin))).await;
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of `series` (a name with its labels, as exposed) in a scrape, if present.
pub fn sample(text: &str, series: &str) -> Option<i64> {
    let series = series.trim_end();
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One series of the gate's `/metrics` now; the test fails if it is absent.
pub async fn metric(gate: &Gate, series: &str) -> i64 {
    let text = scrape(gate).await;
    sample(&text, series).unwrap_or_else(|| panic!("metric {series} missing: {text}"))
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn tmpfile(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A running `prt-gate dev-sso --listen 127.0.0.1:0`, killed on drop.
pub struct SsoProc {
    pub child: Child,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    args: Vec<String>,
    stderr_log: Arc<Mutex<Vec<String>>>,
}

impl SsoProc {
    pub fn start(extra_args: &[&str]) -> SsoProc {
        let args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let stderr_log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (child, url) = Self::spawn("127.0.0.1:0", &args, &stderr_log);
        SsoProc { child, url, args, stderr_log }
    }

    fn spawn(listen: &str, args: &[String], log: &Arc<Mutex<Vec<String>>>) -> (Child, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(["dev-sso", "--listen", listen]).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let ready = |line: &str| Some(line.strip_prefix("prt-gate dev-sso: listening on ")?.to_string());
        spawn_until(cmd, Pipe::Stderr, log, ready)
            .unwrap_or_else(|stderr| panic!("dev-sso exited before listening:\n{stderr}"))
    }

    /// Kills the server (the fault); `restart` brings it back at the same
    /// address, with new signing keys.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        let listen = self.url.trim_start_matches("http://").to_owned();
        self.child = Self::spawn(&listen, &self.args, &self.stderr_log).0;
    }

    pub fn stderr_text(&self) -> String {
        self.stderr_log.lock().unwrap().join("\n")
    }
}

impl Drop for SsoProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago, for servers that cannot
/// report a port they bound themselves (redis-server, a child upstream).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Result of a login through the gate as a browser would do it.
#[derive(Debug)]
pub struct Login {
    /// `name=value` of the session cookie set by the callback.
    pub cookie: Option<String>,
    /// Status of the callback answer.
    pub status: u16,
    /// Where the callback sent the browser.
    pub location: Option<String>,
    pub set_cookie: Vec<String>,
}

/// Follows `/auth/login/?next=…&login_hint=…` → SSO authorize → callback,
/// carrying `pre_cookie` (a cookie the browser already had) on gate requests.
pub async fn login(gate: &Gate, email: &str, next: &str, pre_cookie: Option<&str>) -> Login {
    let c = client();
    let with_cookie = |url: String| {
        let mut b = Request::get(url);
        if let Some(pc) = pre_cookie {
            b = b.header("cookie", pc);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    let start = gate.url(&format!(
        "/auth/login/?next={}&login_hint={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
    ));
    let (parts, _) = send(&c, with_cookie(start)).await;
    assert_eq!(parts.status, 302, "login start");
    // The browser keeps the login cookie and brings it to the callback.
    let login_cookies = cookies_set(&parts);
    let authorize = parts.headers["location"].to_str().unwrap().to_string();
    let (parts, _) = send(&c, get(&authorize)).await;
    assert_eq!(parts.status, 302, "authorize did not redirect back");
    let callback = parts.headers["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with(&gate.url("/auth/callback/")), "{callback}");
    let jar: Vec<&str> = pre_cookie.into_iter().chain(login_cookies.iter().map(String::as_str)).collect();
    let req = Request::get(callback).header("cookie", jar.join("; ")).body(Full::new(Bytes::new())).unwrap();
    let (parts, _) = send(&c, req).await;
    let set_cookie: Vec<String> =
        parts.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let cookie =
        set_cookie.iter().find(|c| c.starts_with("prt_session=")).map(|c| c.split(';').next().unwrap().to_string());
    Login {
        cookie,
        status: parts.status.as_u16(),
        location: parts.headers.get("location").map(|v| v.to_str().unwrap().to_string()),
        set_cookie,
    }
}

/// `name=value` of every cookie a response sets (not the ones it expires).
pub fn cookies_set(parts: &http::response::Parts) -> Vec<String> {
    parts
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .filter(|v| !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_string())
        .collect()
}

/// Starts a login at the gate and follows the dev SSO's authorize redirect
/// without visiting the callback: `(callback URL, login cookies the
/// starting browser holds)`.
pub async fn start_login(gate: &Gate, email: &str) -> (String, Vec<String>) {
    let c = client();
    let hint: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    let (parts, _) = send(&c, get(&gate.url(&format!("/auth/login/?login_hint={hint}")))).await;
    assert_eq!(parts.status, 302, "login start");
    let cookies = cookies_set(&parts);
    let (sso, _) = send(&c, get(parts.headers["location"].to_str().unwrap())).await;
    assert_eq!(sso.status, 302, "authorize did not redirect back");
    (sso.headers["location"].to_str().unwrap().to_string(), cookies)
}

/// Signs out as the gate's own confirmation page does: `POST /auth/logout/`
/// with the gate's `Origin`.
pub async fn logout(gate: &Gate, cookie: &str) -> http::response::Parts {
    let req = Request::post(gate.url("/auth/logout/"))
        .header("cookie", cookie)
        .header("origin", gate.url(""))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&client(), req).await.0
}

/// GET with a cookie (and optional Accept).
pub fn get_with(url: &str, cookie: Option<&str>, accept: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(url);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    if let Some(a) = accept {
        b = b.header("accept", a);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

/// Polls an async predicate until it holds or `timeout` passes.
pub async fn eventually_async<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
