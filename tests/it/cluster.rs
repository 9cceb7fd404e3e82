//! The gate on a local 3-master Redis Cluster (`session.store =
//! "redis+cluster://…"`): login, use, logout and operator revocation, then
//! one master killed: sessions on its slots fail closed (503, never 200 or
//! 401) while sessions on the other masters keep working.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::*;

const PREFIX: &str = "prt-gate-cluster:";

/// Index of the master holding the session record of `cookie`.
fn shard_of(nodes: &[Redis], cookie: &str) -> usize {
    let value = cookie.trim_start_matches("prt_session=");
    let hex: String = Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{PREFIX}s:{hex}");
    let owners: Vec<usize> = (0..nodes.len()).filter(|i| nodes[*i].cli(&["exists", &key]) == "1").collect();
    assert_eq!(owners.len(), 1, "session key {key} found on {owners:?}");
    owners[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_login_use_revoke_logout_and_one_master_down_fails_closed() {
    // Masters without replicas: the slots of a dead master go dark, the others keep answering.
    let cluster =
        ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"];
    let nodes: Vec<Redis> = (0..3).map(|_| Redis::start(&cluster)).collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli on PATH");
    assert!(created.success(), "redis-cli --cluster create failed");
    let converged = eventually(Duration::from_secs(30), || {
        nodes.iter().all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
    })
    .await;
    assert!(converged, "cluster did not converge");

    let up = Upstream::start().await;
    let sso = prt_gate::devsso::DevSso::start("127.0.0.1:0".parse().unwrap(), prt_gate::devsso::builtin_users())
        .await
        .unwrap();
    let store = format!("redis+cluster://{}", addrs.join(","));
    let env = [("PRT_GATE_SESSION__STORE", store.as_str()), ("PRT_GATE_SESSION__KEY_PREFIX", PREFIX)];
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().envs(&env).start();
    let status = |cookie: &str| {
        let req = get_with(&gate.url("/api/history/"), Some(cookie), None);
        async move { send(&client(), req).await.0.status.as_u16() }
    };

    // Login and use: sessions land on every master.
    let mut sessions = Vec::new();
    for i in 0..12 {
        let email = ["office@example.com", "admin@example.com"][i % 2];
        let cookie = login(&gate, email, "", None).await.cookie.expect("login on the cluster");
        assert_eq!(status(&cookie).await, 200);
        let shard = shard_of(&nodes, &cookie);
        sessions.push((cookie, shard));
    }
    let shards: std::collections::BTreeSet<usize> = sessions.iter().map(|s| s.1).collect();
    eprintln!("cluster: 12 sessions on masters {:?}", sessions.iter().map(|s| s.1).collect::<Vec<_>>());
    assert!(shards.len() >= 2, "all sessions on one master: {sessions:?}");

    // Logout ends one session.
    let (gone, _) = sessions.remove(0);
    assert_eq!(logout(&gate, &gone).await.status, 302);
    assert_eq!(status(&gone).await, 401);

    // Operator revocation by user, against the same configuration.
    let revoked: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(login(&gate, "client@example.com", "", None).await.cookie.unwrap());
        }
        v
    };
    for c in &revoked {
        assert_eq!(status(c).await, 200);
    }
    let out = Command::new(BIN)
        .args(["sessions", "revoke", "--user", "client@example.com", "--config"])
        .arg(gate.dir.path().join("policy.toml"))
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "revoked 2 session(s)");
    for c in &revoked {
        let t = Instant::now();
        while status(c).await != 401 {
            assert!(t.elapsed() < Duration::from_secs(10), "revoked session still accepted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (c, _) in &sessions {
        assert_eq!(status(c).await, 200, "revocation by user touched another user's session");
    }

    // Kill the master holding the first remaining session.
    let dead = sessions[0].1;
    let mut nodes = nodes;
    let victim = nodes.remove(dead);
    let killed = Instant::now();
    drop(victim);
    let on_dead: Vec<&String> = sessions.iter().filter(|s| s.1 == dead).map(|s| &s.0).collect();
    let on_live: Vec<&String> = sessions.iter().filter(|s| s.1 != dead).map(|s| &s.0).collect();
    // Past the hot-cache window and the client's first reconnect attempts:
    loop {
        let mut seen = Vec::new();
        for c in on_dead.iter().chain(&on_live) {
            seen.push(status(c).await);
        }
        // Never a 200 for a session whose record is unreachable, never a 401.
        assert!(seen[..on_dead.len()].iter().all(|s| *s == 503 || *s == 200), "{seen:?}");
        assert!(!seen.contains(&401), "a live session was treated as anonymous: {seen:?}");
        let done = seen[..on_dead.len()].iter().all(|s| *s == 503) && seen[on_dead.len()..].iter().all(|s| *s == 200);
        if done {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "never settled: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle = killed.elapsed();
    let (mut dead_answers, mut live_answers) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        for c in &on_dead {
            dead_answers.push(status(c).await);
        }
        for c in &on_live {
            live_answers.push(status(c).await);
        }
    }
    eprintln!(
        "cluster: master down; settled after {settle:?}; then {} answers for its {} sessions, {} for {} sessions elsewhere",
        dead_answers.len(),
        on_dead.len(),
        live_answers.len(),
        on_live.len()
    );
    assert!(dead_answers.iter().all(|s| *s == 503), "dead shard: {dead_answers:?}");
    assert!(live_answers.iter().all(|s| *s == 200), "live shards: {live_answers:?}");
}
