//! `prt-gate demo` as a newcomer uses it (issue 8): start it, open the URL
//! it prints, follow the same redirects a browser follows (picking the user
//! on the dev SSO's page by following the link a click would), see API calls
//! allowed and refused with the reason, and download the sample PDF through
//! the gate's presigned redirect.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::*;

struct Demo {
    child: Child,
    url: String,
    banner: String,
}

impl Demo {
    /// `prt-gate demo --listen 127.0.0.1:PORT` on a port that was free a
    /// moment ago; again on another if the demo's gate finds it taken.
    fn start() -> Demo {
        for _ in 0..5 {
            let port = free_port();
            match Self::start_on(port) {
                Ok(demo) => return demo,
                Err(stderr) if stderr.contains("Address already in use") => continue,
                Err(stderr) => panic!("demo exited before it was ready:\n{stderr}"),
            }
        }
        panic!("demo found no free port in 5 attempts");
    }

    fn start_on(port: u16) -> Result<Demo, String> {
        let mut child = Command::new(BIN)
            .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("PRT_GATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let mut banner = String::new();
        loop {
            let Some(Ok(line)) = lines.next() else {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
                let _ = child.wait();
                return Err(text);
            };
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let url = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("Open ").and_then(|r| r.split_whitespace().next()))
            .unwrap()
            .trim_end_matches('/')
            .to_owned();
        assert_eq!(url, format!("http://127.0.0.1:{port}"));
        Ok(Demo { child, url, banner })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser, minimally: cookies per host:port, redirects followed.
struct Browser {
    jar: HashMap<String, HashMap<String, String>>,
}

struct Page {
    status: u16,
    url: String,
    content_type: String,
    body: Bytes,
}

impl Browser {
    fn new() -> Browser {
        Browser { jar: HashMap::new() }
    }

    async fn request(&mut self, method: &str, url: &str, accept: &str) -> (http::response::Parts, Bytes) {
        let u = url::Url::parse(url).unwrap();
        let host = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap());
        let mut b = Request::builder().method(method).uri(url).header("accept", accept);
        if method != "GET" {
            // As browsers do on every POST.
            b = b.header("origin", format!("{}://{}", u.scheme(), host));
        }
        if let Some(cookies) = self.jar.get(&host).filter(|c| !c.is_empty()) {
            let v: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            b = b.header("cookie", v.join("; "));
        }
        let (parts, body) = send(&client(), b.body(Full::new(Bytes::new())).unwrap()).await;
        for sc in parts.headers.get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let (name, value) = sc.split(';').next().unwrap().split_once('=').unwrap();
            let expired = sc.to_ascii_lowercase().contains("max-age=0");
            let cookies = self.jar.entry(host.clone()).or_default();
            if expired || value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        (parts, body)
    }

    /// Navigates like a browser: GET with `Accept: text/html`, redirects followed.
    async fn open(&mut self, url: &str) -> Page {
        let mut url = url.to_owned();
        for _ in 0..10 {
            let (parts, body) = self.request("GET", &url, "text/html,application/xhtml+xml").await;
            if parts.status.is_redirection() {
                let loc = parts.headers["location"].to_str().unwrap();
                url = url::Url::parse(&url).unwrap().join(loc).unwrap().to_string();
                continue;
            }
            let content_type =
                parts.headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            return Page { status: parts.status.as_u16(), url, content_type, body };
        }
        panic!("redirect loop at {url}");
    }

    /// What the page's buttons do: `fetch` with `Accept: application/json`.
    async fn api(&mut self, method: &str, url: &str) -> (u16, serde_json::Value) {
        let (parts, body) = self.request(method, url, "application/json").await;
        (parts.status.as_u16(), serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }
}

/// The `href` of the dev SSO picker link for `email` (what a click follows).
fn user_link(picker: &str, email: &str) -> String {
    let marker = format!("id=\"user-{email}\" href=\"");
    let start = picker.find(&marker).unwrap_or_else(|| panic!("no link for {email}:\n{picker}")) + marker.len();
    let href = &picker[start..start + picker[start..].find('"').unwrap()];
    href.replace("&amp;", "&")
}

async fn log_in(demo: &Demo, email: &str) -> (Browser, Page) {
    let mut b = Browser::new();
    let picker = b.open(&format!("{}/", demo.url)).await;
    assert_eq!(picker.status, 200);
    assert!(picker.url.contains("/o/authorize/"), "anonymous `/` should end on the SSO: {}", picker.url);
    let text = String::from_utf8_lossy(&picker.body).into_owned();
    let link = url::Url::parse(&picker.url).unwrap().join(&user_link(&text, email)).unwrap();
    let page = b.open(link.as_str()).await;
    (b, page)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_logs_in_as_client_and_office_and_downloads_the_pdf() {
    let demo = Demo::start();
    for user in ["admin@", "office@", "operator@", "client@", "nobody@"] {
        assert!(demo.banner.contains(user), "banner lists {user}: {}", demo.banner);
    }
    assert!(demo.banner.contains("acme-office@example.com  Office of tenant ACME"), "{}", demo.banner);

    // Client: lands on /client.html, sees its identity as the upstream received it.
    let (mut client, page) = log_in(&demo, "client@example.com").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.url, format!("{}/client.html", demo.url));
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("<td id=\"h-x-auth-email\">client@example.com</td>"), "{html}");
    assert!(html.contains("<td id=\"h-x-auth-role\">Client</td>"), "{html}");
    assert!(html.contains("<td id=\"h-x-tenant-id\">primetrade</td>"), "{html}");
    assert!(html.contains("X-Prt-Assertion: verified"), "{html}");

    // API through the gate: allowed (echoed by the upstream) and refused (by the gate, with why).
    let (status, body) = client.api("GET", &format!("{}/api/client/shipments/", demo.url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"]["headers"]["x-auth-role"], "Client");
    let (status, body) = client.api("GET", &format!("{}/api/balances/", demo.url)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["required_roles"], serde_json::json!(["Admin", "Office"]));
    let (status, body) = client.api("POST", &format!("{}/api/bol/", demo.url)).await;
    assert_eq!(status, 403, "{body}");

    // The PDF: a presigned redirect to the demo S3 target, which serves it.
    let pdf_url = format!("{}/media/bols/2025/PRT-2025-0002.pdf", demo.url);
    let (parts, _) = client.request("GET", &pdf_url, "text/html").await;
    assert_eq!(parts.status, 302);
    let location = parts.headers["location"].to_str().unwrap().to_owned();
    assert!(location.contains("X-Amz-Signature=") && !location.starts_with(&demo.url), "{location}");
    let pdf = client.open(&pdf_url).await;
    assert_eq!(pdf.status, 200);
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.body.starts_with(b"%PDF-1.4") && pdf.body.ends_with(b"%%EOF\n"));
    // Without the signature the target refuses it: the document is not public.
    let unsigned = location.split('?').next().unwrap();
    assert_eq!(client.request("GET", unsigned, "*/*").await.0.status, 403);

    // Office: lands on `/`, and the staff-only call is allowed.
    let (mut office, page) = log_in(&demo, "office@example.com").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.url, format!("{}/", demo.url));
    assert!(String::from_utf8_lossy(&page.body).contains("<td id=\"h-x-auth-role\">Office</td>"));
    let (status, body) = office.api("GET", &format!("{}/api/balances/", demo.url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"]["headers"]["x-auth-email"], "office@example.com");
    let (status, body) = office.api("GET", &format!("{}/api/not-in-the-policy/", demo.url)).await;
    assert_eq!(status, 403, "{body}");
    let pdf = office.open(&pdf_url).await;
    assert_eq!((pdf.status, pdf.content_type.as_str()), (200, "application/pdf"));

    // A user without a PrimeTrade role is refused at login: no session.
    let (mut nobody, page) = log_in(&demo, "nobody@example.com").await;
    assert_ne!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    assert_eq!(nobody.api("GET", &format!("{}/api/user/context/", demo.url)).await.0, 401);

    // Sign out: the link shows a confirmation whose button POSTs.
    let confirm = client.open(&format!("{}/auth/logout/", demo.url)).await;
    assert!(String::from_utf8_lossy(&confirm.body).contains("<form method=\"post\" action=\"/auth/logout/\">"));
    assert_eq!(client.api("GET", &format!("{}/api/client/shipments/", demo.url)).await.0, 200, "GET signed out");
    let (parts, _) = client.request("POST", &format!("{}/auth/logout/", demo.url), "text/html").await;
    assert_eq!(parts.status, 302);
    assert_eq!(client.api("GET", &format!("{}/api/client/shipments/", demo.url)).await.0, 401);
}

#[test]
fn demo_stops_cleanly_on_sigterm_and_removes_its_directory() {
    let mut demo = Demo::start();
    let dir = demo
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("access log"))
        .map(|p| std::path::PathBuf::from(p.trim()).parent().unwrap().to_owned())
        .unwrap();
    assert!(dir.join("policy.toml").is_file());
    let ok = Command::new("kill").arg("-TERM").arg(demo.child.id().to_string()).status().unwrap();
    assert!(ok.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = demo.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "demo did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn the_gate_does_not_outlive_a_killed_demo() {
    let mut demo = Demo::start();
    let addr: std::net::SocketAddr = demo.url.trim_start_matches("http://").parse().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_ok(), "gate not listening");
    // SIGKILL: the demo gets no chance to stop its gate child.
    demo.child.kill().unwrap();
    demo.child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the gate still listens on {addr} after the demo died");
        std::thread::sleep(Duration::from_millis(100));
    }
}
