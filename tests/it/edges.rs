//! Tighter edges from an independent review (issue 15): upstream `101`, `Host` checks,
//! headers that are never forwarded or passed back, raw `#` in the request target.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A raw upstream: `GET /ok` gets a 200; anything else a `101 Switching Protocols` followed
/// by tunnel bytes, as an upstream that switches protocols on its own would send.
async fn switching_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer: &[u8] = if head.starts_with(b"GET /ok ") {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                } else {
                    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nTUNNEL-BYTES"
                };
                let _ = s.write_all(answer).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_101_switching_protocols_is_a_502() {
    let up = switching_upstream().await;
    let gate = Gate::start(up, "", "");
    // Positive control: the same upstream's ordinary answer passes.
    let (status, text) = raw_get(gate.addr, b"/ok", "");
    assert_eq!(status, 200, "{text}");
    for extra in ["", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"] {
        let (status, text) = raw_get(gate.addr, b"/ws/", extra);
        assert_eq!(status, 502, "{text}");
        assert!(!text.contains("TUNNEL-BYTES") && !text.to_ascii_lowercase().contains("upgrade: websocket"), "{text}");
    }
}
