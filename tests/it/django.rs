//! End to end with the real Django adapter: gate + dev SSO + a small Django
//! project (deploy/django/tests/e2e_server.py) using the middleware.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use prt_gate::devsso::{builtin_users, DevSso};

use crate::support::*;

struct Django(std::process::Child);

impl Drop for Django {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_django() -> (Django, std::net::SocketAddr) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/django/tests/e2e_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .env("PRT_ASSERTION_SECRET", TEST_ASSERTION_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (with django and pyjwt: `bash .ci/run` installs them)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("django did not start: {line:?}"));
    let addr = addr.parse().unwrap();
    (Django(child), addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_logs_in_through_the_gate_and_django_sees_who_it_is() {
    let (_django, django) = start_django();
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(django).sso(sso.url()).shipped_policy().start();
    let cookie = login(&gate, "client@example.com", "", None).await.cookie.unwrap();

    let (parts, body) = send(&client(), get_with(&gate.url("/api/auth/me/"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    let me: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(me["user"], "client@example.com");
    assert_eq!(me["role"], "Client");
    assert_eq!(me["tenant_id"], "primetrade");
    assert_eq!(me["tenant_name"], "PrimeTrade Logistics");
    assert_eq!(me["tenant_code"], "PRT");

    // Straight to Django, even with forged identity headers: anonymous.
    let forged = "X-Tenant-Id: primetrade\r\nX-Auth-Email: client@example.com\r\nX-Auth-Role: Admin\r\n";
    let (status, text) = raw_get(django, b"/api/auth/me/", forged);
    assert_eq!(status, 200);
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    let me: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(me["user"], serde_json::Value::Null, "{body}");
    assert_eq!(me["role"], serde_json::Value::Null, "{body}");

    // The role decorator sees the asserted role: Client may not read the
    // audit log even if the gate's policy were to let the request through.
    let (parts, _) = send(&client(), get_with(&gate.url("/api/audit/"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 403, "the gate refuses first");
}
