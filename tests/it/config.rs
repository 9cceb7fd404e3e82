//! Configuration through the real binary: `check`, env overrides, exit codes.

#![allow(clippy::disallowed_types)] // std Mutex in a test, never held across await

use std::process::Command;

use crate::support::*;

fn check(dir: &tempfile::TempDir, text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let p = tmpfile(dir, "policy.toml", text);
    let mut cmd = Command::new(BIN);
    cmd.arg("check").arg(&p);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = check(&dir, "[gate]\nlisten = \"127.0.0.1:8080\"\n", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: "), "{out}");
}

#[test]
fn check_exits_2_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check(&dir, "[gate]\nlisten = \"127.0.0.1:8080\"\nupstraem = \"http://x\"\n", &[]);
    assert_eq!(code, 2);
    let path = dir.path().join("policy.toml");
    assert!(err.contains(&format!("{}:3:1: unknown field `upstraem`", path.display())), "{err}");
}

#[test]
fn environment_overrides_and_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = check(
        &dir,
        "[gate]\nupstream = \"http://127.0.0.1:8000\"\n",
        &[("PRT_GATE_GATE__UPSTREAM", "http://127.0.0.1:9999")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("upstream      http://127.0.0.1:9999"), "{out}");

    let (code, _, err) = check(&dir, "", &[("PRT_GATE_GATE__UPSTREAM", "ftp://x")]);
    assert_eq!(code, 2);
    assert!(err.contains("environment variable PRT_GATE_GATE__UPSTREAM: gate.upstream:"), "{err}");

    // A typo in a variable name is an error, not a silently ignored setting.
    let (code, _, err) = check(&dir, "", &[("PRT_GATE_GATE__UPSTRAEM", "http://x:1")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("upstraem"), "{err}");
}

#[test]
fn secrets_in_the_file_are_refused_but_accepted_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check(&dir, "[assertion]\nsecret = \"canary-0c1f\"\n", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("assertion.secret: secrets are not accepted in the file; set PRT_GATE_ASSERTION__SECRET"),
        "{err}"
    );
    assert!(!err.contains("canary-0c1f"));
    let (code, out, err) = check(&dir, "", &[("PRT_GATE_ASSERTION__SECRET", "canary-0c1f-long-enough-secret-value")]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("canary") && !err.contains("canary"));
}

#[test]
fn serve_with_invalid_config_exits_2_and_missing_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmpfile(&dir, "policy.toml", "[gate]\nlisten = \"nope\"\n");
    let out = Command::new(BIN).arg("serve").arg("--config").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("policy.toml:2:10: gate.listen: invalid socket address `nope`")
    );
    let out = Command::new(BIN).arg("serve").arg("--config").arg(dir.path().join("missing.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_and_usage_errors() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "run", "check", "explain", "redact", "sessions", "presign", "dev-sso", "demo"] {
        assert!(help.contains(cmd), "--help lacks {cmd}: {help}");
    }
    let out = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Reload: a valid edit takes effect without a restart; a broken file keeps
/// the previous configuration in force (and is counted); SIGHUP reloads at once.
#[tokio::test(flavor = "multi_thread")]
async fn reload_swaps_valid_config_and_keeps_old_on_error() {
    use std::time::Duration;
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let cfg = gate.dir.path().join("policy.toml");
    let public = std::fs::read_to_string(&cfg).unwrap();
    assert!(public.contains("public = true"));
    let status = || async { send(&client(), get(&gate.url("/api/x/"))).await.0.status.as_u16() };
    assert_eq!(status().await, 200);

    // A broken edit: old policy stays, requests keep flowing, failure counted.
    let broken = public.replacen("public = true", "public = false\nbogus = 1", 1);
    std::fs::write(&cfg, &broken).unwrap();
    let failed = eventually_async(Duration::from_secs(5), || async {
        scrape(&gate).await.contains("prt_gate_config_reloads_total{result=\"failed\"} 1")
    })
    .await;
    assert!(failed, "broken file was not counted as a failed reload: {}", gate.log_text());
    assert_eq!(status().await, 200);
    // Log lines reach stdout in batches (at most 25 ms later): wait for them.
    let line = broken.lines().position(|l| l == "bogus = 1").unwrap() + 1;
    let reason = format!(":{line}:1: unknown field `bogus`");
    let logged = eventually(Duration::from_secs(5), || {
        let text = gate.log_text();
        text.contains("configuration reload refused") && text.contains(&reason)
    })
    .await;
    assert!(logged, "refused reload not logged with its reason: {}", gate.log_text());

    // A valid edit takes effect: the catch-all now needs an Admin session.
    std::fs::write(&cfg, public.replacen("public = true", "roles = [\"Admin\"]", 2)).unwrap();
    let mut ok = false;
    for _ in 0..100 {
        if status().await == 401 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "valid edit never took effect");

    // SIGHUP reloads even when the poll has not looked yet.
    std::fs::write(&cfg, &public).unwrap();
    gate.signal("HUP");
    let mut ok = false;
    for _ in 0..100 {
        if status().await == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "SIGHUP did not reload");
}

/// 100 reloads while requests flow: no request fails, every reload counted.
#[tokio::test(flavor = "multi_thread")]
async fn hundred_reloads_under_load_fail_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let cfg = gate.dir.path().join("policy.toml");
    let base = std::fs::read_to_string(&cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), gate.url("/api/history/"));
        workers.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match c.request(get(&url)).await {
                    Ok(r) if r.status() == 200 => {
                        let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failed.lock().unwrap().push(r.status().to_string()),
                    Err(e) => failed.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }
    for i in 0..100 {
        // Each version is valid and different (one more public rule), and is
        // put in place atomically (write + rename), as docs/routes.md asks
        // operators to do.
        let tmp = gate.dir.path().join("policy.toml.new");
        std::fs::write(&tmp, format!("{base}\n[[route]]\npath = \"/api/reload-{i}/\"\npublic = true\n")).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
        gate.signal("HUP");
        // One reload at a time (signals sent faster than reloads coalesce).
        let t = std::time::Instant::now();
        loop {
            let m = scrape(&gate).await;
            let n: u64 = m
                .lines()
                .find_map(|l| l.strip_prefix("prt_gate_config_reloads_total{result=\"ok\"} "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if n > i {
                break;
            }
            assert!(t.elapsed() < std::time::Duration::from_secs(10), "reload {i} not counted");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "{} requests failed during reloads: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert!(ok.load(Ordering::Relaxed) > 100, "load did not run");
    let m = scrape(&gate).await;
    let reloads: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("prt_gate_config_reloads_total{result=\"ok\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(reloads >= 100, "only {reloads} reloads counted");
    assert!(m.contains("prt_gate_config_reloads_total{result=\"failed\"} 0\n"), "{m}");
    // The last version is in force.
    let (parts, _) = send(&client(), get(&gate.url("/api/reload-99/"))).await;
    assert_eq!(parts.status, 200);
}

/// `check` refuses everything `serve` refuses at start-up, with the same message and exit
/// code 2: one row per refusal, each run through both commands with a clean environment.
/// The last row is a positive control: complete, both accept (serve is stopped once it
/// listens).
#[test]
fn check_refuses_what_serve_refuses() {
    const SSO: &str = "[sso]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"prt-gate-dev\"\n";
    const PUBLIC: &str = "public_url = \"http://127.0.0.1:8080\"\n";
    let client = ("PRT_GATE_SSO__CLIENT_SECRET", DEV_CLIENT_SECRET);
    let assertion = ("PRT_GATE_ASSERTION__SECRET", TEST_ASSERTION_SECRET);
    type Row<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Option<&'a str>);
    let rows: &[Row] = &[
        (
            "sso without its client secret",
            format!("{PUBLIC}\n{SSO}"),
            vec![assertion],
            Some("PRT_GATE_SSO__CLIENT_SECRET"),
        ),
        (
            "sso without an assertion secret",
            format!("{PUBLIC}\n{SSO}"),
            vec![client],
            Some("PRT_GATE_ASSERTION__SECRET is required"),
        ),
        (
            "a short assertion secret",
            format!("{PUBLIC}\n{SSO}"),
            vec![client, ("PRT_GATE_ASSERTION__SECRET", "short")],
            Some("at least 32 bytes"),
        ),
        ("sso without public_url", SSO.to_string(), vec![client, assertion], Some("public_url")),
        (
            "a media bucket without credentials",
            "\n[media]\nbucket = \"prt-media\"\n".to_string(),
            vec![],
            Some("PRT_GATE_MEDIA__ACCESS_KEY_ID"),
        ),
        ("complete", format!("{PUBLIC}\n{SSO}"), vec![client, assertion], None),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, extra, env, refusal) in rows {
        let p = tmpfile(
            &dir,
            "policy.toml",
            &format!("[gate]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{extra}\n[session]\ncookie_secure = false\n"),
        );
        let command = |sub: &str| {
            let mut cmd = Command::new(BIN);
            cmd.arg(sub).arg("--config").arg(&p).stdin(std::process::Stdio::null());
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy().into_owned();
                if k.starts_with("PRT_GATE_") || k.starts_with("AWS_") {
                    cmd.env_remove(k);
                }
            }
            cmd.envs(env.iter().copied());
            cmd
        };
        let check = command("check").output().unwrap();
        let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
        let mut serve =
            command("serve").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let mut serve_err = String::new();
        let mut lines = std::io::BufReader::new(serve.stderr.take().unwrap());
        std::io::BufRead::read_line(&mut lines, &mut serve_err).unwrap();
        let listening = serve_err.starts_with("prt-gate: listening on ");
        if listening {
            serve.kill().unwrap();
        } else {
            std::io::Read::read_to_string(&mut lines, &mut serve_err).unwrap();
        }
        let serve_code = serve.wait().unwrap().code();
        match refusal {
            Some(reason) => {
                assert!(!listening, "{what}: serve started");
                assert_eq!(serve_code, Some(2), "{what}: {serve_err}");
                assert!(
                    serve_err.starts_with("prt-gate: invalid configuration:") && serve_err.contains(reason),
                    "{what}: {serve_err}"
                );
                assert_eq!(check.status.code(), Some(2), "{what}: check said\n{check_err}");
                assert!(
                    check_err.contains(serve_err.trim_end()),
                    "{what}: check said\n{check_err}\nserve said\n{serve_err}"
                );
            }
            None => {
                assert!(listening, "{what}: {serve_err}");
                assert_eq!(check.status.code(), Some(0), "{what}: {check_err}");
            }
        }
    }
}
