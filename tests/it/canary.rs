//! The no-leak proof (issue 7): every flow through `prt-gate run` with the
//! shipped policy, the gate's logs at `trace`, and the secrets actually
//! issued during the test — auth code, state, PKCE verifier, access, refresh
//! and ID tokens (captured by a recording tap between the gate and the dev
//! SSO), the client secret, session cookies, a minted Bearer JWT, an AWS
//! secret in the gate's environment, OAuth parameters a client put in a
//! query, and a Django log line that prints the session the way the original
//! app did. None may appear in the gate's output (stdout and stderr of
//! `prt-gate run`, which carries the child's too) or in anything the
//! upstream received. The positive control runs the same flows with
//! redaction switched off (debug builds only) and finds the canaries.

#![allow(clippy::disallowed_types)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prt_gate::devsso::{builtin_users, DevSso};
use serde_json::{json, Value};

use crate::support::*;

/// The upstream: records every request it receives (target, headers, body)
/// as JSON lines in `seen.jsonl`, prints a Django-style session dump with
/// the tokens in `tokens.json` on `/print-session/`, and drops the
/// connection on `/boom/` (a 502).
const DJANGO_PY: &str = r#"
import http.server, json, os, sys
port, dir = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("latin-1") if n else ""
        with open(os.path.join(dir, "seen.jsonl"), "a") as f:
            f.write(json.dumps({"target": self.path, "headers": dict(self.headers.items()), "body": body}) + "\n")
        if self.path.startswith("/boom/"):
            self.close_connection = True
            return
        if self.path.startswith("/print-session/"):
            t = json.load(open(os.path.join(dir, "tokens.json")))
            session = {"sso_access_token": t["access"], "sso_refresh_token": t["refresh"], "sso_id_token": t["id"], "primetrade_role": {"role": "Office"}}
            print("Session data: %r" % (session,), file=sys.stderr, flush=True)
            print(session.items(), file=sys.stderr, flush=True)
            print("DEBUG token response: %s" % json.dumps({"access_token": t["access"], "refresh_token": t["refresh"], "id_token": t["id"], "token_type": "Bearer"}), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    do_GET = do_POST = do_PATCH = handle_one
    def log_message(self, fmt, *args):
        print("%s - - %s" % (self.address_string(), fmt % args), file=sys.stderr, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// A recording reverse proxy in front of the dev SSO: every request target
/// and body, every response `Location` and body.
#[derive(Clone)]
struct Tap {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Tap {
    async fn start(sso: SocketAddr) -> Tap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let rec = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let rec = rec.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| relay(sso, rec.clone(), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Tap { addr, log }
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

async fn relay(
    sso: SocketAddr,
    rec: Arc<Mutex<Vec<String>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let target = parts.uri.path_and_query().map_or("/".to_string(), |p| p.to_string());
    let mut b = Request::builder().method(parts.method.clone()).uri(format!("http://{sso}{target}"));
    for (k, v) in &parts.headers {
        if k != "host" {
            b = b.header(k, v);
        }
    }
    let resp = client().request(b.body(Full::new(body.clone())).unwrap()).await.unwrap();
    let (rparts, rbody) = resp.into_parts();
    let rbody = rbody.collect().await.unwrap().to_bytes();
    let location = rparts.headers.get("location").map(|v| v.to_str().unwrap_or("").to_string()).unwrap_or_default();
    rec.lock().unwrap().push(format!(
        "{target}\n{}\n{location}\n{}",
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&rbody)
    ));
    let mut out = Response::builder().status(rparts.status);
    for (k, v) in &rparts.headers {
        if k != "content-length" && k != "transfer-encoding" {
            out = out.header(k, v);
        }
    }
    Ok(out.body(Full::new(rbody)).unwrap())
}

/// Every value of the named query/form parameters and JSON fields in `text`.
fn secrets_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let q = line.split_once('?').map_or(line, |(_, q)| q);
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if ["code", "state", "code_verifier", "client_secret", "refresh_token", "id_token_hint", "nonce"]
                .contains(&k.as_ref())
            {
                found.push(v.into_owned());
            }
        }
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            for k in ["access_token", "refresh_token", "id_token"] {
                if let Some(s) = v[k].as_str() {
                    found.push(s.to_string());
                }
            }
        }
    }
    found.retain(|s| s.len() >= 8);
    found.sort();
    found.dedup();
    found
}

struct Outcome {
    /// Everything `prt-gate run` wrote (gate logs at trace + child output).
    output: String,
    /// Everything the upstream received.
    upstream: String,
    /// The secrets issued or planted during the run.
    canaries: Vec<String>,
    /// The access token the Django line printed.
    access_token: String,
    /// The Bearer JWT sent to `/api/open-releases/`, whose rule forwards the verified
    /// `Authorization` on purpose (the view checks it again): a canary for the logs, not
    /// for the upstream.
    bearer: String,
}

const AWS_SECRET: &str = "CANARYawsSECRETwJalrXUtnFEMIK7MDENGbPxRfiCY";
const QUERY_CANARY: &str = "CANARYquerycode4242";

async fn scenario(disable_redaction: bool) -> Outcome {
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let tap = Tap::start(sso.addr()).await;
    let up_port = free_port();
    let tap_url = format!("http://{}", tap.addr);
    let mut env = vec![
        ("PRT_GATE_SSO__ISSUER", sso.issuer()),
        ("PRT_GATE_SSO__REFRESH", "true"),
        ("PRT_GATE_SSO__REFRESH_INTERVAL", "1s"),
        ("PRT_GATE_LOG__LEVEL", "trace"),
        // The gate's own S3 names: under `run`, AWS_* would be the child's.
        ("PRT_GATE_MEDIA__ACCESS_KEY_ID", "AKIAIOSFODNN7CANARY1"),
        ("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", AWS_SECRET),
        ("PRT_GATE_MEDIA__SESSION_TOKEN", "CANARYsessionTOKENIQoJb3JpZ2luX2VjE"),
        ("PRT_GATE_MEDIA__BUCKET", "prt-canary-bucket"),
        ("PRT_GATE_MEDIA__CHECK_EXISTS", "false"),
        ("RUST_LOG", "trace"),
    ];
    if disable_redaction {
        env.push(("PRT_TEST_DISABLE_REDACTION", "1"));
    }
    // The tap stands in for the SSO's base URL; the issuer stays the SSO's.
    let gate = GateBuilder::new(([127, 0, 0, 1], up_port).into()).sso(&tap_url).shipped_policy().envs(&env);
    let gate = gate.file("django.py", DJANGO_PY);
    let script = gate.dir().join("django.py").display().to_string();
    let dir_s = gate.dir().display().to_string();
    let mut gate = gate.run(&["python3", &script, &up_port.to_string(), &dir_s]).start();
    let ready = format!("http://{}/readyz", gate.admin);
    assert!(
        eventually(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", up_port)).is_ok()).await,
        "upstream never listened"
    );
    let _ = send(&client(), get(&ready)).await;
    let c = client();

    // login (Office) and a Client; the callback replayed by a browser that
    // did not start it (403).
    let office = login(&gate, "office@example.com", "/api/releases/open/?page=1", None).await;
    let cookie = office.cookie.clone().expect("office session");
    let client_user = login(&gate, "client@example.com", "", None).await.cookie.expect("client session");
    let callback = tap
        .log
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| e.lines().nth(2).filter(|l| l.contains("/auth/callback/")).map(str::to_string));
    if let Some(cb) = callback {
        let (p, _) = send(&c, get(&cb)).await;
        assert_eq!(p.status, 403, "replayed callback");
    }

    // API allowed, with OAuth parameters a client put in the query.
    let q =
        format!("/api/releases/open/?page=2&code={QUERY_CANARY}&state={QUERY_CANARY}s&access_token={QUERY_CANARY}t");
    let (p, _) = send(&c, get_with(&gate.url(&q), Some(&cookie), None)).await;
    assert_eq!(p.status, 200);
    // API denied (403), anonymous (401), page → login (302), malformed (400).
    assert_eq!(send(&c, get_with(&gate.url("/api/audit/"), Some(&client_user), None)).await.0.status, 403);
    assert_eq!(send(&c, get(&gate.url(&format!("/api/history/?token={QUERY_CANARY}a")))).await.0.status, 401);
    let page = format!("/office.html?state={QUERY_CANARY}b");
    assert_eq!(send(&c, get_with(&gate.url(&page), None, Some("text/html"))).await.0.status, 302);
    let (st, _) = raw_get(gate.addr, format!("/api/a%2fb/?access_token={QUERY_CANARY}c").as_bytes(), "");
    assert_eq!(st, 400);
    // 502 from a dying upstream.
    assert_eq!(send(&c, get_with(&gate.url("/boom/"), Some(&cookie), None)).await.0.status, 502);
    // Bearer route with an SSO-minted JWT.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let jwt = sso.mint(json!({"sub": "svc", "iss": sso.issuer(), "aud": "prt-gate-dev", "iat": now, "exp": now + 600,
        "email": "svc@example.com", "application_roles": {"primetrade": {"role": "Office", "features": {}}}}));
    let req = Request::get(gate.url("/api/open-releases/"))
        .header("authorization", format!("Bearer {jwt}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, req).await.0.status, 200);
    // Media: a presigned redirect whose signature is a 24 h credential.
    let (p, _) = send(&c, get_with(&gate.url("/media/bols/2025/PRT-2025-0002.pdf"), Some(&cookie), None)).await;
    assert_eq!(p.status, 302, "media grant");
    let location = p.headers["location"].to_str().unwrap().to_string();
    let presigned = url::Url::parse(&location).unwrap();
    let signature = presigned.query_pairs().find(|(k, _)| k == "X-Amz-Signature").map(|(_, v)| v.into_owned());
    let signature = signature.expect("presigned URL carries X-Amz-Signature");
    // Token refresh after the 1 s interval (new tokens through the tap).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(send(&c, get_with(&gate.url("/api/releases/"), Some(&cookie), None)).await.0.status, 200);

    // Django prints its session with the tokens the SSO actually issued.
    let issued = secrets_in(&tap.text());
    let token_json = tap
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.lines().last().and_then(|l| serde_json::from_str::<Value>(l).ok()))
        .find(|v| v["access_token"].is_string())
        .expect("a token response went through the tap");
    let access_token = token_json["access_token"].as_str().unwrap().to_string();
    std::fs::write(
        gate_dir(&dir_s).join("tokens.json"),
        json!({"access": access_token, "refresh": token_json["refresh_token"], "id": token_json["id_token"]})
            .to_string(),
    )
    .unwrap();
    assert_eq!(send(&c, get_with(&gate.url("/print-session/"), Some(&cookie), None)).await.0.status, 200);

    // Logout, then stop: SIGTERM goes to the child, the gate drains.
    let req = Request::post(gate.url("/auth/logout/"))
        .header("cookie", &cookie)
        .header("origin", gate.url(""))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, req).await.0.status, 302);
    assert!(eventually(Duration::from_secs(5), || gate.text().contains("Session data:")).await, "{}", gate.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.signal("TERM");
    gate.wait_exit();

    let mut canaries = issued;
    canaries.extend([
        DEV_CLIENT_SECRET.to_string(),
        TEST_ASSERTION_SECRET.to_string(),
        AWS_SECRET.to_string(),
        "AKIAIOSFODNN7CANARY1".to_string(),
        "CANARYsessionTOKENIQoJb3JpZ2luX2VjE".to_string(),
        signature,
        jwt.clone(),
        QUERY_CANARY.to_string(),
        cookie.split_once('=').map(|(_, v)| v.to_string()).unwrap(),
        client_user.split_once('=').map(|(_, v)| v.to_string()).unwrap(),
    ]);
    let upstream = std::fs::read_to_string(gate_dir(&dir_s).join("seen.jsonl")).unwrap_or_default();
    Outcome { output: gate.text(), upstream, canaries, access_token, bearer: jwt }
}

fn gate_dir(s: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(s)
}

#[tokio::test(flavor = "multi_thread")]
async fn canaries_never_reach_logs_run_output_or_upstream() {
    let o = scenario(false).await;
    assert!(o.canaries.len() >= 12, "too few canaries captured: {:?}", o.canaries);
    eprintln!("canaries: {}", o.canaries.len());
    // The flows really ran: the access log and the scrubbed Django lines are there.
    assert!(o.output.contains("\"target\":\"access\""), "{}", o.output);
    assert!(o.output.contains("Session data: {'sso_access_token': '[REDACTED:secret]'"), "{}", o.output);
    assert!(o.output.contains("dict_items([('sso_access_token', '[REDACTED:secret]')"), "{}", o.output);
    assert!(o.upstream.contains("/api/releases/open/?page=2\""), "{}", o.upstream);
    // The forwarded Bearer token reaches the upstream on its own route only.
    let with_bearer: Vec<&str> = o.upstream.lines().filter(|l| l.contains(o.bearer.as_str())).collect();
    assert!(with_bearer.len() == 1 && with_bearer[0].contains("/api/open-releases/"), "{with_bearer:?}");
    assert!(o.output.contains("\"event\":\"media_grant\""), "no media audit event: {}", o.output);
    let mut leaks = Vec::new();
    for c in &o.canaries {
        if o.output.contains(c.as_str()) {
            leaks.push(format!("in prt-gate run output: {c}"));
        }
        if o.upstream.contains(c.as_str()) && *c != o.bearer {
            leaks.push(format!("upstream received: {c}"));
        }
    }
    assert!(leaks.is_empty(), "{}\n--- output ---\n{}\n--- upstream ---\n{}", leaks.join("\n"), o.output, o.upstream);
}

/// Positive control: the same flows with redaction off (debug builds only)
/// leak — so the test above can fail.
#[tokio::test(flavor = "multi_thread")]
async fn canary_positive_control_with_redaction_off() {
    let o = scenario(true).await;
    assert!(o.output.contains(&o.access_token), "the Django session line was not printed raw");
    assert!(o.output.contains(&format!("code={QUERY_CANARY}")), "the access log query was not raw");
    assert!(o.upstream.contains(&format!("code={QUERY_CANARY}")), "OAuth parameters were stripped anyway");
}
