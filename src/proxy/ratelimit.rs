//! Rate limit on the login endpoints (`/auth/login/`, `/auth/callback/`),
//! per client address, with `pingora-limits`' count-min [`Estimator`].
//!
//! * The client is the peer, or behind a trusted proxy the right-most
//!   `X-Forwarded-For` address that is not itself a trusted proxy (the one
//!   the platform edge saw); IPv6 addresses count per /64.
//! * Fixed one-minute windows: at most `gate.login_rate_limit` attempts per
//!   client per window (0 disables); beyond it the answer is 429 with
//!   `Retry-After` = the seconds left in the window.
//! * Nothing else is counted: requests of logged-in sessions (API, pages)
//!   never pass here.
//!
//! The estimator is fixed-size (no per-client allocation) and may
//! over-count under heavy collisions, never under-count (except attempts
//! racing a window change).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::header::HeaderMap;
use ipnet::IpNet;
use pingora_limits::estimator::Estimator;

use super::headers::X_FORWARDED_FOR;

/// Length of one counting window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Count-min sketch shape: 4 rows of 2,048 counters (64 KiB).
const HASHES: usize = 4;
const SLOTS: usize = 2048;

/// Login attempts per client in the current window.
pub struct LoginLimiter {
    counts: Estimator,
    epoch: Instant,
    /// The window the counts belong to (whole windows since `epoch`).
    window: AtomicU64,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter { counts: Estimator::new(HASHES, SLOTS), epoch: Instant::now(), window: AtomicU64::new(0) }
    }
}

impl LoginLimiter {
    /// Counts one attempt by `client`; `Err(retry_after)` once it has made
    /// more than `per_window` in this window. `per_window = 0`: no limit.
    pub fn check(&self, client: IpAddr, per_window: u32) -> Result<(), Duration> {
        self.check_at(client, per_window, self.epoch.elapsed())
    }

    fn check_at(&self, client: IpAddr, per_window: u32, since_epoch: Duration) -> Result<(), Duration> {
        if per_window == 0 {
            return Ok(());
        }
        let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
        let elapsed_ms = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
        let window = elapsed_ms / window_ms;
        let seen = self.window.load(Relaxed);
        if window > seen && self.window.compare_exchange(seen, window, Relaxed, Relaxed).is_ok() {
            self.counts.reset();
        }
        let n = self.counts.incr(key(client), 1);
        if (0..=isize::try_from(per_window).unwrap_or(isize::MAX)).contains(&n) {
            return Ok(());
        }
        let left_ms = window_ms - elapsed_ms % window_ms;
        Err(Duration::from_secs(left_ms.div_ceil(1000).max(1)))
    }
}

/// The address the limit counts: IPv6 per /64 (one subscriber's prefix).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy —
/// the right-most `X-Forwarded-For` entry that is not a trusted proxy. An
/// entry that is not an address ends the walk at the last trusted hop.
pub fn client_ip(peer: IpAddr, peer_trusted: bool, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !peer_trusted {
        return peer;
    }
    let mut client = peer;
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.parse::<IpAddr>() else { break };
        client = ip;
        if !trusted.iter().any(|net| net.contains(&ip)) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limit_per_client_per_window_with_retry_after() {
        let l = LoginLimiter::default();
        let t = Duration::from_secs(5);
        for _ in 0..3 {
            assert_eq!(l.check_at(ip("192.0.2.1"), 3, t), Ok(()));
        }
        // The fourth attempt in the window: refused until the window ends.
        assert_eq!(l.check_at(ip("192.0.2.1"), 3, t), Err(Duration::from_secs(55)));
        assert_eq!(l.check_at(ip("192.0.2.1"), 3, Duration::from_millis(59_500)), Err(Duration::from_secs(1)));
        // Another client is unaffected.
        assert_eq!(l.check_at(ip("192.0.2.2"), 3, t), Ok(()));
        // The next window starts fresh.
        assert_eq!(l.check_at(ip("192.0.2.1"), 3, Duration::from_secs(61)), Ok(()));
        // 0 disables.
        for _ in 0..10 {
            assert_eq!(l.check_at(ip("192.0.2.9"), 0, t), Ok(()));
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), key(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(key(ip("2001:db8:1:2::1")), key(ip("2001:db8:1:3::1")));
        assert_eq!(key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn client_address_behind_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
            h
        };
        let rows = [
            // (peer, peer trusted, X-Forwarded-For, client)
            ("10.0.0.1", true, "203.0.113.5", "203.0.113.5"),
            // A client-supplied left part is not believed.
            ("10.0.0.1", true, "198.51.100.66, 203.0.113.5", "203.0.113.5"),
            ("10.0.0.1", true, "203.0.113.5, 10.0.0.2", "203.0.113.5"),
            ("10.0.0.1", true, "junk, 203.0.113.5", "203.0.113.5"),
            ("10.0.0.1", true, "203.0.113.5, junk", "10.0.0.1"),
            ("10.0.0.1", true, "", "10.0.0.1"),
            // Not from a trusted proxy: the header is ignored.
            ("192.0.2.7", false, "203.0.113.5", "192.0.2.7"),
        ];
        for (peer, peer_trusted, header, expected) in rows {
            assert_eq!(client_ip(ip(peer), peer_trusted, &xff(header), &trusted), ip(expected), "{peer} {header}");
        }
    }
}
