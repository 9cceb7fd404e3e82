//! The one-service deployment end to end: `prt-gate run -- python3
//! e2e_server.py` (the Django adapter's test project) with the gate's
//! secrets in its environment, Redis behind a password, two S3 credential
//! sets over one real `s3s-fs` store (the gate's, read-only use; Django's,
//! which writes the PDFs), and a fixture database holding every stored PDF
//! link shape (deploy/django/tests/bolapp/fixture.py, docs/media.md).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use prt_gate::devsso::{builtin_users, DevSso};

use crate::support::*;

const DJANGO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/django");
const BUCKET: &str = "primetrade-documents";

/// Fixture rows → the object their links must download (None: must not).
const TARGETS: &[(&str, Option<&str>)] = &[
    ("PRT-2024-0100", Some("bol_pdfs/PRT-2024-0100.pdf")),
    ("PRT-2025-0001", Some("bols/2025/PRT-2025-0001.pdf")),
    ("PRT-2025-0002", Some("bols/2025/PRT-2025-0002.pdf")),
    ("PRT-2025-0003", Some("bols/2025/PRT-2025-0003.pdf")),
    ("PRT-2025-0004", Some("bols/2025/PRT-2025-0004.pdf")),
    ("PRT-2025-0098", None),
    ("PRT-2025-0099", None),
];

/// The fixture's bytes for an object (tests/bolapp/fixture.py `pdf_bytes`).
fn pdf_bytes(key: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {key}\n%%EOF\n").into_bytes()
}

/// `python3 deploy/django/tests/manage.py ARGS` in Django's environment.
fn manage(env: &[(String, String)], args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("tests/manage.py")
        .args(args)
        .current_dir(DJANGO_DIR)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("python3 with django, django-storages (bash .ci/run installs them)");
    assert!(out.status.success(), "manage.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every row's links, as the Django view renders them: bol → (pdfUrl, stampedPdfUrl, pdfKey, storedPdfUrl).
async fn history(gate: &Gate, cookie: &str) -> BTreeMap<String, [serde_json::Value; 4]> {
    let (parts, body) = send(&client(), get_with(&gate.url("/api/history/"), Some(cookie), None)).await;
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].clone();
            (
                r["bolNumber"].as_str().unwrap().to_string(),
                [f("pdfUrl"), f("stampedPdfUrl"), f("pdfKey"), f("storedPdfUrl")],
            )
        })
        .collect()
}

/// Follows a link from an API answer through the gate: the bytes, or the
/// gate's refusal status.
async fn download(gate: &Gate, cookie: &str, link: &str) -> Result<Vec<u8>, u16> {
    assert!(link.starts_with("/media/"), "a link that bypasses the gate: {link}");
    let (parts, _) = send(&client(), get_with(&gate.url(link), Some(cookie), None)).await;
    if parts.status != 302 {
        return Err(parts.status.as_u16());
    }
    let location = parts.headers["location"].to_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let (parts, body) = send(&client(), get(&location)).await;
    assert_eq!(parts.status, 200, "the store refused the gate's signed URL: {}", String::from_utf8_lossy(&body));
    Ok(body.to_vec())
}

async fn check_links(gate: &Gate, cookie: &str, when: &str) -> BTreeMap<String, [serde_json::Value; 4]> {
    let rows = history(gate, cookie).await;
    assert_eq!(rows.len(), TARGETS.len(), "{rows:?}");
    for (bol, target) in TARGETS {
        let link = rows[*bol][0].as_str().unwrap_or_else(|| panic!("{when}: {bol} has no link"));
        match target {
            Some(key) => {
                let got = download(gate, cookie, link).await;
                assert_eq!(got, Ok(pdf_bytes(key)), "{when}: {bol} via {link}");
            }
            None => {
                let got = download(gate, cookie, link).await;
                assert!(matches!(got, Err(400 | 404)), "{when}: {bol} via {link} must not download: {got:?}");
            }
        }
    }
    for (bol, key) in [
        ("PRT-2025-0002", "bols/2025/PRT-2025-0002-stamped_a1B2c3D.pdf"),
        ("PRT-2025-0004", "bols/2025/PRT-2025-0004-stamped.pdf"),
    ] {
        let link = rows[bol][1].as_str().unwrap();
        assert_eq!(download(gate, cookie, link).await, Ok(pdf_bytes(key)), "{when}: stamped {bol} via {link}");
    }
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn one_service_run_keeps_the_gates_secrets_from_django_and_every_stored_pdf_link_downloads() {
    let s3 = S3::start();
    std::fs::create_dir_all(s3.root().join(BUCKET)).unwrap();
    let (gate_endpoint, gate_id, gate_secret) = s3.endpoint();
    let django_store = s3.alongside();
    let (django_endpoint, django_id, django_secret) =
        (django_store.endpoint().0, django_store.id.clone(), django_store.secret.clone());
    let redis_password = "redisPassCanary7d1e";
    let redis = Redis::start(&["--requirepass", redis_password]);
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("django.sqlite3").display().to_string();
    let log = tmp.path().join("primetrade.log").display().to_string();
    let env_dump = tmp.path().join("child-env.json").display().to_string();
    let django_port = free_port();
    // Django's own environment: its S3 credentials under the standard names.
    let django_env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", django_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", django_secret.as_str()),
        ("E2E_S3_ENDPOINT", django_endpoint.as_str()),
        ("E2E_DB", db.as_str()),
        ("E2E_LOG", log.as_str()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    // Django writes every PDF through its storage (PutObject, its credentials).
    let seeded = manage(&django_env, &["seed_pdf_links", "--upload"]);
    assert!(seeded.contains("uploaded 7"), "{seeded}");
    assert_eq!(
        std::fs::read(s3.root().join(BUCKET).join("bols/2025/PRT-2025-0003.pdf")).unwrap(),
        pdf_bytes("bols/2025/PRT-2025-0003.pdf")
    );

    let previous = "previous-assertion-secret-0123456789abcdef";
    let redis_url = format!("redis://:{redis_password}@127.0.0.1:{}/0", redis.port);
    let mut env: Vec<(String, String)> = [
        ("PRT_GATE_SESSION__STORE", redis_url.clone()),
        ("PRT_GATE_SESSION__KEY_PREFIX", format!("i14-deploy-{django_port}:")),
        ("PRT_GATE_ASSERTION__PREVIOUS_SECRET", previous.into()),
        ("PRT_GATE_MEDIA__ENDPOINT", gate_endpoint.clone()),
        ("PRT_GATE_MEDIA__PATH_STYLE", "true".into()),
        ("PRT_GATE_MEDIA__ACCESS_KEY_ID", gate_id.into()),
        ("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", gate_secret.into()),
        ("E2E_PORT", django_port.to_string()),
        ("E2E_ENV_DUMP", env_dump.clone()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    env.extend(django_env.iter().cloned());
    let script = format!("{DJANGO_DIR}/tests/e2e_server.py");
    // The shipped deployment file, with the staging differences in the environment.
    let gate = GateBuilder::new(([127, 0, 0, 1], django_port).into())
        .sso(sso.url())
        .config_file(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prt-gate.toml"))
        .envs(&env)
        .run(&["python3", &script])
        .start();
    let readyz = format!("http://{}/readyz", gate.admin);
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            matches!(client().request(get(&readyz)).await, Ok(r) if r.status() == 200)
        })
        .await,
        "never ready: {}",
        gate.text()
    );

    // The child's environment: none of the gate's variables or secret values;
    // the assertion secrets under the adapter's names; its own S3 credentials.
    let dumped = std::fs::read_to_string(&env_dump).unwrap();
    let child_env: BTreeMap<String, String> = serde_json::from_str(&dumped).unwrap();
    let gate_vars: Vec<&String> = child_env.keys().filter(|k| k.starts_with("PRT_GATE_")).collect();
    assert!(gate_vars.is_empty(), "the child inherited {gate_vars:?}");
    for (what, secret) in
        [("SSO client secret", DEV_CLIENT_SECRET), ("gate S3 secret", gate_secret), ("Redis password", redis_password)]
    {
        assert!(!dumped.contains(secret), "the child's environment holds the {what}");
    }
    assert_eq!(child_env.get("PRT_ASSERTION_SECRET").map(String::as_str), Some(TEST_ASSERTION_SECRET));
    assert_eq!(child_env.get("PRT_ASSERTION_PREVIOUS_SECRET").map(String::as_str), Some(previous));
    assert_eq!(child_env.get("AWS_SECRET_ACCESS_KEY"), Some(&django_secret));
    assert_eq!(child_env.get("AWS_ACCESS_KEY_ID"), Some(&django_id));

    // The child still verifies the gate's assertions.
    let cookie = login(&gate, "client@example.com", "/", None).await.cookie.expect("session cookie");
    let (parts, body) = send(&client(), get_with(&gate.url("/api/auth/me/"), Some(&cookie), None)).await;
    assert_eq!(parts.status, 200);
    let me: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(me["user"], "client@example.com", "{me}");
    assert_eq!(me["role"], "Client", "{me}");

    // Every stored shape downloads the right bytes before the migration
    // (storage links + media.strip_prefixes)…
    let before = check_links(&gate, &cookie, "before the migration").await;
    assert_eq!(before["PRT-2025-0003"][0], "/media/media/bols/2025/PRT-2025-0003.pdf");

    // … the migration (dry run, apply, second run) as the operator runs it …
    let dry: serde_json::Value =
        serde_json::from_str(&manage(&django_env, &["prt_gate_pdf_links", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["changed"], 5, "{dry}");
    assert_eq!(
        dry["fields"][0]["shapes"],
        serde_json::json!({"canonical": 1, "media_bol_pdfs": 1, "media_bols": 1, "s3_url": 1, "stray_media_key": 1, "unrecognized": 2})
    );
    let journal = tmp.path().join("journal.jsonl").display().to_string();
    let applied: serde_json::Value =
        serde_json::from_str(&manage(&django_env, &["prt_gate_pdf_links", "--journal", &journal, "--json"])).unwrap();
    assert_eq!(applied["changed"], 5, "{applied}");
    let again: serde_json::Value =
        serde_json::from_str(&manage(&django_env, &["prt_gate_pdf_links", "--journal", &journal, "--json"])).unwrap();
    assert_eq!(again["changed"], 0, "{again}");

    // … and after it: every link still downloads, pdf_key is populated and
    // the old pdf_url is preserved.
    let after = check_links(&gate, &cookie, "after the migration").await;
    for (bol, target) in TARGETS {
        assert_eq!(after[*bol][3], before[*bol][3], "{bol}: stored pdf_url changed");
        if let Some(key) = target {
            assert_eq!(after[*bol][2], *key, "{bol}: pdf_key not populated");
            assert_eq!(after[*bol][0], format!("/media/{key}"), "{bol}");
        }
    }

    // Django's own file log went through the adapter's filter: the view logs
    // the assertion it received and its session id (deploy/django/tests/urls.py).
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("history for client@example.com: {'HTTP_X_PRT_ASSERTION': '[REDACTED:"), "{logged}");
    assert!(logged.contains("'sessionid': '[REDACTED:secret]'"), "{logged}");
    assert!(!logged.contains("eyJ"), "an assertion reached Django's file log:\n{logged}");
    for secret in [TEST_ASSERTION_SECRET, gate_secret, django_secret.as_str(), redis_password] {
        assert!(!logged.contains(secret), "{logged}");
    }
    assert!(!gate.text().contains(redis_password) && !gate.text().contains(gate_secret), "{}", gate.text());
}

#[test]
fn run_refuses_a_bucket_without_the_gates_own_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tmpfile(
        &dir,
        "policy.toml",
        "[gate]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[media]\nbucket = \"prt-media\"\n",
    );
    // AWS_* are the child's in `run`: the gate must not sign with them.
    let out = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--", "sh", "-c", "exit 0"])
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "django-secret")
        .env_remove("PRT_GATE_MEDIA__ACCESS_KEY_ID")
        .env_remove("PRT_GATE_MEDIA__SECRET_ACCESS_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PRT_GATE_MEDIA__SECRET_ACCESS_KEY"));
    // Positive control: with its own names it starts (and exits with the child).
    let out = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--", "sh", "-c", "exit 0"])
        .env("PRT_GATE_MEDIA__ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", "gate-secret")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `deploy/prt-gate.toml` passes `check` without a warning, and its rules are
/// the shipped `policy.toml`'s, byte for byte (deploy/sync-rules.sh).
#[test]
fn deployment_config_checks_and_carries_the_shipped_rules() {
    let root = env!("CARGO_MANIFEST_DIR");
    // The secrets arrive through the environment (deploy/ENVIRONMENT.md); `check`, like
    // `serve`, refuses the file without them.
    let secrets = [
        ("PRT_GATE_SSO__CLIENT_SECRET", DEV_CLIENT_SECRET),
        ("PRT_GATE_ASSERTION__SECRET", TEST_ASSERTION_SECRET),
        ("PRT_GATE_MEDIA__ACCESS_KEY_ID", "AKIDEXAMPLETESTONLY"),
        ("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", "test-only-secret-access-key"),
    ];
    let check = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("check").arg(format!("{root}/deploy/prt-gate.toml"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("PRT_GATE_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied()).output().unwrap()
    };
    let out = check(&secrets);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let out = check(&secrets[1..]);
    assert_eq!(out.status.code(), Some(2), "without the SSO client secret");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PRT_GATE_SSO__CLIENT_SECRET"));

    let deploy = std::fs::read_to_string(format!("{root}/deploy/prt-gate.toml")).unwrap();
    let policy = std::fs::read_to_string(format!("{root}/policy.toml")).unwrap();
    let marker = deploy.find("\n# ==== rules:").expect("rules marker in deploy/prt-gate.toml");
    let copied = deploy[marker..].split_once("\n[roles]").map(|(_, rest)| rest).expect("[roles] after the marker");
    let shipped = policy.split_once("\n[roles]").map(|(_, rest)| rest).expect("[roles] in policy.toml");
    assert!(copied == shipped, "deploy/prt-gate.toml's rules differ from policy.toml: run `bash deploy/sync-rules.sh`");
    // Every section a deployment needs is spelled out.
    let doc: toml::Value = toml::from_str(&deploy).unwrap();
    for section in ["gate", "sso", "session", "tenant", "media", "assertion", "log", "redact", "roles", "route"] {
        assert!(doc.get(section).is_some(), "deploy/prt-gate.toml has no [{section}]");
    }
    assert!(doc["session"]["store"].as_str().unwrap().starts_with("redis"), "production sessions live in Redis");
}

/// A stray prefix that begins an allowed prefix, or is not whole segments,
/// is refused with file:line (it could change which keys are allowed).
#[test]
fn check_refuses_strip_prefixes_that_could_change_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    for (value, reason) in [
        (r#"["bols/"]"#, "begins an allowed prefix"),
        (r#"["media"]"#, "invalid stray prefix"),
        (r#"["/media/"]"#, "invalid stray prefix"),
        (r#"["a/../"]"#, "invalid stray prefix"),
    ] {
        let cfg = tmpfile(&dir, "p.toml", &format!("[media]\nbucket = \"prt-media\"\nstrip_prefixes = {value}\n"));
        let out =
            Command::new(BIN).arg("check").arg(&cfg).env_remove("PRT_GATE_MEDIA__STRIP_PREFIXES").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains("p.toml:3:") && stderr.contains("media.strip_prefixes") && stderr.contains(reason),
            "{value}: {stderr}"
        );
    }
    let cfg = tmpfile(&dir, "ok.toml", "[media]\nbucket = \"prt-media\"\nstrip_prefixes = [\"media/\"]\n");
    let out = Command::new(BIN)
        .arg("check")
        .arg(&cfg)
        .env("PRT_GATE_MEDIA__ACCESS_KEY_ID", "AKIDEXAMPLETESTONLY")
        .env("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", "test-only-secret-access-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
