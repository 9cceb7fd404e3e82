//! The admin listener: health, readiness, metrics.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_readyz_metrics() {
    let up = Upstream::start().await;
    let gate = GateBuilder::new(up.addr).start();
    let admin = |p: &str| format!("http://{}{p}", gate.admin);
    let (parts, body) = send(&client(), get(&admin("/healthz"))).await;
    assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok\n"[..]));
    let (parts, _) = send(&client(), get(&admin("/readyz"))).await;
    assert_eq!(parts.status, 200);
    let (parts, _) = send(&client(), get(&admin("/nope"))).await;
    assert_eq!(parts.status, 404);

    send(&client(), get(&gate.url("/api/x/"))).await;
    raw_get(gate.addr, b"/a%2f", "");
    let m = scrape(&gate).await;
    assert!(m.contains("prt_gate_requests_total{decision=\"allow\",status=\"2xx\"} 1\n"), "{m}");
    assert!(m.contains("prt_gate_requests_total{decision=\"reject\",status=\"4xx\"} 1\n"), "{m}");
    assert!(m.contains("prt_gate_request_duration_seconds_count 2\n"), "{m}");
    assert!(m.contains("# TYPE prt_gate_upstream_duration_seconds histogram"), "{m}");

    // The admin endpoints are not served on the public listener: /metrics
    // there is just another upstream path.
    send(&client(), get(&gate.url("/metrics"))).await;
    assert_eq!(up.last().target, "/metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_while_upstream_is_down() {
    let gate = GateBuilder::new(closed_port()).start();
    let (parts, body) = send(&client(), get(&format!("http://{}/readyz", gate.admin))).await;
    assert_eq!(parts.status, 503);
    assert_eq!(&body[..], b"upstream not accepting connections\n");
    let (parts, _) = send(&client(), get(&format!("http://{}/healthz", gate.admin))).await;
    assert_eq!(parts.status, 200);
}
