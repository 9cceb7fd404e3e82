//! Media (docs/design.md §7, issue 5): presigned URLs are byte-identical to botocore's,
//! and a real S3-compatible server that verifies signatures (`s3s-fs`)
//! serves the PDF to a logged-in Client who follows the gate's redirect —
//! and refuses tampered and expired URLs.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use prt_gate::devsso::{builtin_users, DevSso};
use prt_gate::media::sigv4::{Credentials, Presigner, Target, Verb};
use prt_gate::secret::Secret;
use rand::distr::{Alphanumeric, SampleString};

use crate::support::*;

pub const PDF_KEY: &str = "bols/2025/PRT-2025-0002.pdf";

/// A sample PDF generated per test (a minimal valid document plus noise).
pub fn sample_pdf() -> Vec<u8> {
    let mut pdf =
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n".to_vec();
    let noise = Alphanumeric.sample_string(&mut rand::rng(), 4096);
    pdf.extend_from_slice(format!("% {noise}\ntrailer<</Root 1 0 R>>\n%%EOF\n").as_bytes());
    pdf
}

#[test]
fn presigned_urls_match_botocore_byte_for_byte() {
    let (id, secret) = random_credentials();
    let token = format!("FQoG/{}+=", Alphanumeric.sample_string(&mut rand::rng(), 60));
    let long = format!("bols/{}.pdf", "x".repeat(900));
    let keys = [
        "bols/2025/PRT-2025-0002.pdf",
        "bols/a b c.pdf",
        "bols/a+b+c.pdf",
        "bols/~tilde~/x_y-z.pdf",
        "bols/é/ünïcødé 日本語 😀.pdf",
        "bols/!$&'()*,;=:@?#[]%.pdf",
        "bol_pdfs/legacy/100%25.pdf",
        long.as_str(),
    ];
    let now = 1_735_787_045u64; // 2025-01-02T03:04:05Z
    let mut cases = Vec::new();
    for key in keys {
        for (style, endpoint, region) in [
            ("virtual", None, "us-east-2"),
            ("path", None, "us-east-2"),
            ("virtual", None, "us-east-1"),
            ("path", Some("http://127.0.0.1:9000"), "us-east-2"),
            ("virtual", Some("https://minio.example.internal/base/"), "eu-west-1"),
        ] {
            cases.push(serde_json::json!({
                "access_key": id, "secret": secret, "region": region, "bucket": BUCKET, "key": key,
                "style": style, "endpoint": endpoint, "expires": 86_400, "now": now,
            }));
        }
    }
    // Session token, a dotted bucket (path style even when virtual is asked
    // for), the 7-day maximum and a content disposition.
    cases.push(serde_json::json!({
        "access_key": id, "secret": secret, "token": token, "region": "us-east-2", "bucket": BUCKET,
        "key": "bols/a b.pdf", "style": "virtual", "expires": 3600, "now": now + 86_399,
    }));
    cases.push(serde_json::json!({
        "access_key": id, "secret": secret, "region": "us-east-2", "bucket": "prt.media.bucket",
        "key": "bols/x.pdf", "style": "virtual", "expires": 604_800, "now": now,
    }));
    cases.push(serde_json::json!({
        "access_key": id, "secret": secret, "region": "us-east-2", "bucket": BUCKET, "key": "bols/é x.pdf",
        "style": "virtual", "expires": 600, "now": now,
        "disposition": "attachment; filename*=UTF-8''%C3%A9%20x.pdf",
    }));

    let mut py = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/botocore_presign.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin.take().unwrap().write_all(serde_json::to_string(&cases).unwrap().as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore script failed (boto3 installed by .ci/run): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(expected.len(), cases.len());

    for (case, want) in cases.iter().zip(&expected) {
        let creds = Credentials {
            access_key_id: id.clone(),
            secret_access_key: Secret::new(secret.clone()),
            session_token: case["token"].as_str().map(|t| Secret::new(t.to_owned())),
            expires_at: None,
        };
        let endpoint = case["endpoint"].as_str().map(|e| url::Url::parse(e).unwrap());
        let region = case["region"].as_str().unwrap();
        let target = Target::new(case["bucket"].as_str().unwrap(), region, endpoint.as_ref(), case["style"] == "path");
        let presigner = Presigner::new(creds, region, target);
        let at = UNIX_EPOCH + Duration::from_secs(case["now"].as_u64().unwrap());
        let expires = Duration::from_secs(case["expires"].as_u64().unwrap());
        let params: Vec<(&'static str, &str)> =
            case["disposition"].as_str().map(|d| vec![("response-content-disposition", d)]).unwrap_or_default();
        let ours = presigner.presign(Verb::Get, case["key"].as_str().unwrap(), expires, at, &params);
        assert_eq!(&ours, want, "case {case}");
    }
    // The comparison is not vacuous: one second later, or another secret,
    // and our URL no longer matches botocore's.
    let creds = |s: &str| Credentials {
        access_key_id: id.clone(),
        secret_access_key: Secret::new(s.to_owned()),
        session_token: None,
        expires_at: None,
    };
    let t = || Target::new(BUCKET, "us-east-2", None, false);
    let at = UNIX_EPOCH + Duration::from_secs(now);
    let day = Duration::from_secs(86_400);
    assert_eq!(Presigner::new(creds(&secret), "us-east-2", t()).presign(Verb::Get, keys[0], day, at, &[]), expected[0]);
    let later = Presigner::new(creds(&secret), "us-east-2", t()).presign(
        Verb::Get,
        keys[0],
        day,
        at + Duration::from_secs(1),
        &[],
    );
    assert_ne!(later, expected[0]);
    let other = Presigner::new(creds("another-secret"), "us-east-2", t()).presign(Verb::Get, keys[0], day, at, &[]);
    assert_ne!(other, expected[0]);
}

async fn fetch(url: &str) -> (u16, Bytes) {
    let (parts, body) = send(&client(), get(url)).await;
    (parts.status.as_u16(), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_downloads_the_pdf_through_the_gate_redirect() {
    let s3 = S3::start();
    let pdf = sample_pdf();
    s3.put(PDF_KEY, &pdf);
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let env = s3.env();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let cookie = login(&gate, "client@example.com", "", None).await.cookie.unwrap();
    let before = up.count();

    // The redirect: 302 to the store, never cached, no Referer leak.
    let (parts, _) =
        send(&client(), get_with(&gate.url(&format!("/media/{PDF_KEY}")), Some(&cookie), Some("text/html"))).await;
    assert_eq!(parts.status, 302);
    assert_eq!(parts.headers["cache-control"], "no-store, private");
    assert_eq!(parts.headers["referrer-policy"], "no-referrer");
    let location = parts.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("http://{}/{BUCKET}/{PDF_KEY}?", s3.addr)), "{location}");
    assert!(location.contains("X-Amz-Expires=86400&"), "{location}");

    // Following it downloads the document from the signature-checking store.
    let (status, body) = fetch(&location).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], &pdf[..]);

    // A tampered signature is refused by the store (positive control above).
    let last = location.chars().last().unwrap();
    let tampered = format!("{}{}", &location[..location.len() - 1], if last == '0' { '1' } else { '0' });
    assert_eq!(fetch(&tampered).await.0, 403);
    // So is a URL for another key with this signature.
    let other = location.replacen("PRT-2025-0002.pdf", "PRT-2025-0003.pdf", 1);
    s3.put("bols/2025/PRT-2025-0003.pdf", b"%PDF-1.4 other");
    assert_eq!(fetch(&other).await.0, 403);

    // Missing object → 404 from the gate (existence check), no redirect.
    let (parts, _) = send(&client(), get_with(&gate.url("/media/bols/2025/nope.pdf"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 404);
    assert!(parts.headers.get("location").is_none());

    // Dot segments and keys outside the allow-list → 400, for anyone.
    for target in [&b"/media/bols/../x"[..], b"/media/bols/%2e%2e/bols/2025/PRT-2025-0002.pdf", b"/media/private/x.pdf"]
    {
        let mut head = b"GET ".to_vec();
        head.extend_from_slice(target);
        head.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n", gate.addr).as_bytes(),
        );
        let (status, text) = raw(gate.addr, &head);
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(target));
        assert!(text.contains("This document address is not valid."), "refused for another reason: {text}");
        assert!(!text.to_ascii_lowercase().contains("location:"), "{text}");
    }

    // Anonymous: login (302 to the gate's login page, or 401), never S3.
    let (parts, _) = send(&client(), get_with(&gate.url(&format!("/media/{PDF_KEY}")), None, Some("text/html"))).await;
    assert_eq!(parts.status, 302);
    let loc = parts.headers["location"].to_str().unwrap();
    assert!(loc.starts_with(&gate.url("/auth/login/")), "{loc}");
    let (parts, _) = send(&client(), get_with(&gate.url(&format!("/media/{PDF_KEY}")), None, None)).await;
    assert_eq!(parts.status, 401);
    assert!(parts.headers.get("location").is_none());

    // Nothing under /media/ reached Django.
    assert_eq!(up.count(), before);

    // One audit event for the grant, with the key and not the URL; the
    // signature appears nowhere in the gate's output.
    assert!(
        eventually(Duration::from_secs(5), || gate.log_text().contains("\"event\":\"media_grant\"")).await,
        "no audit event"
    );
    let log = gate.log_text();
    let audits: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "media_grant")
        .collect();
    assert_eq!(audits.len(), 1, "{log}");
    let a = &audits[0];
    assert_eq!(a["key"], PDF_KEY);
    assert_eq!(a["user"], "client@example.com");
    assert_eq!(a["role"], "Client");
    assert_eq!(a["tenant"], "primetrade");
    let expires_at = humantime::parse_rfc3339(a["expires_at"].as_str().unwrap()).unwrap();
    let in_a_day = SystemTime::now() + Duration::from_secs(86_400);
    assert!(expires_at <= in_a_day && expires_at + Duration::from_secs(120) > in_a_day, "{a}");
    let signature = location.rsplit("X-Amz-Signature=").next().unwrap();
    assert!(!log.contains(signature) && !log.contains("X-Amz-"), "presigned URL in the gate log");

    let metrics = scrape(&gate).await;
    assert!(metrics.contains("prt_gate_presigns_total{outcome=\"granted\"} 1\n"), "{metrics}");
    assert!(metrics.contains("prt_gate_presigns_total{outcome=\"missing\"} 1\n"), "{metrics}");
    assert!(metrics.contains("prt_gate_presigns_total{outcome=\"bad_key\"} 3\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn presign_cli_urls_work_and_expire() {
    let s3 = S3::start();
    let pdf = sample_pdf();
    s3.put(PDF_KEY, &pdf);
    let dir = tempfile::tempdir().unwrap();
    let cfg = tmpfile(&dir, "policy.toml", "[media]\nbucket = \"prt-media\"\n");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("presign").arg("--config").arg(&cfg).args(args);
        for (k, v) in s3.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };

    let out = run(&[PDF_KEY, "--expires", "1h"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(url.contains("X-Amz-Expires=3600&"), "{url}");
    let (status, body) = fetch(&url).await;
    assert_eq!((status, &body[..]), (200, &pdf[..]));

    // `/media/…` spelling is accepted; a 1-second URL is refused once expired.
    let out = run(&[&format!("/media/{PDF_KEY}"), "--expires", "1s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let short = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, body) = fetch(&short).await;
    assert_eq!(status, 403, "expired URL served: {}", String::from_utf8_lossy(&body));

    // Operator mistakes are usage errors (exit 2) with a reason.
    for args in [&["bols/../x.pdf"][..], &["private/x.pdf"], &[PDF_KEY, "--expires", "8d"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    let mut cmd = Command::new(BIN);
    cmd.arg("presign").arg("--config").arg(&cfg).arg(PDF_KEY).env_remove("AWS_ACCESS_KEY_ID");
    cmd.env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_ACCESS_KEY_ID"));
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_down_means_503_with_the_existence_check_and_no_redirect() {
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let (id, secret) = random_credentials();
    let endpoint = format!("http://{}", closed_port());
    let mut env = vec![
        ("PRT_GATE_MEDIA__BUCKET", BUCKET),
        ("PRT_GATE_MEDIA__ENDPOINT", endpoint.as_str()),
        ("PRT_GATE_MEDIA__PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let (parts, body) = send(&client(), get_with(&gate.url(&format!("/media/{PDF_KEY}")), Some(&cookie), None)).await;
    assert_eq!(parts.status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(parts.headers.get("location").is_none());
    drop(gate);

    // Positive control: without the check the same gate redirects.
    env.push(("PRT_GATE_MEDIA__CHECK_EXISTS", "false"));
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let cookie = login(&gate, "office@example.com", "", None).await.cookie.unwrap();
    let (parts, _) = send(&client(), get_with(&gate.url(&format!("/media/{PDF_KEY}")), Some(&cookie), None)).await;
    assert_eq!(parts.status, 302);
    assert!(parts.headers["location"].to_str().unwrap().starts_with(&endpoint));
}

#[test]
fn a_bucket_without_credentials_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tmpfile(
        &dir,
        "policy.toml",
        "[gate]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[media]\nbucket = \"prt-media\"\n",
    );
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_SECRET_ACCESS_KEY"));
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_head_and_get_differ_and_each_verifies() {
    // The existence check's HEAD is signed for HEAD only: the store refuses
    // it as a GET (so a leaked HEAD URL cannot download the document).
    let s3 = S3::start();
    s3.put(PDF_KEY, &sample_pdf());
    let creds = Credentials {
        access_key_id: s3.id.clone(),
        secret_access_key: Secret::new(s3.secret.clone()),
        session_token: None,
        expires_at: None,
    };
    let endpoint = url::Url::parse(&format!("http://{}", s3.addr)).unwrap();
    let p = Presigner::new(creds, "us-east-2", Target::new(BUCKET, "us-east-2", Some(&endpoint), true));
    let head = p.presign(Verb::Head, PDF_KEY, Duration::from_secs(60), SystemTime::now(), &[]);
    let req = Request::head(&head).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(&client(), req).await.0.status, 200);
    assert_eq!(fetch(&head).await.0, 403);
}
