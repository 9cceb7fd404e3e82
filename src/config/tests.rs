//! Table tests for configuration loading: every row names the input and the
//! exact diagnostic (file:line:col, key, reason) it must produce.

use super::*;

fn load(text: &str) -> Result<Config, String> {
    Config::from_str_at(Path::new("policy.toml"), text).map(|(c, _)| c).map_err(|e| e.to_string())
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = load("").expect("empty config is valid");
    assert_eq!(c.gate.listen, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(c.gate.admin_listen, "127.0.0.1:9090".parse::<SocketAddr>().unwrap());
    assert_eq!(c.gate.upstream.authority.as_str(), "127.0.0.1:8000");
    assert!(c.gate.trusted_proxies.is_empty());
    assert_eq!(c.sso.app, "primetrade");
    assert_eq!(c.session.store, StoreKind::Memory);
    assert!(c.session.cookie_secure);
    assert_eq!(c.session.idle_timeout, Duration::from_secs(8 * 3600));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(14 * 86400));
    assert_eq!(c.tenant.mode, TenantMode::Static);
    assert_eq!((c.tenant.id.as_str(), c.tenant.name.as_str()), ("primetrade", "PrimeTrade Logistics"));
    assert_eq!(c.media.region, "us-east-2");
    assert_eq!(c.media.allowed_prefixes, vec!["bols/".to_string(), "bol_pdfs/".to_string()]);
    assert_eq!(c.media.expires, Duration::from_secs(86400));
    assert!(c.media.check_exists);
    assert_eq!(c.assertion.audience, "django");
    assert_eq!(c.policy.landing(crate::policy::Role::Client), "/client.html");
    assert_eq!(c.policy.landing(crate::policy::Role::Office), "/");
    assert_eq!((c.gate.max_uri_bytes, c.gate.max_connections), (8192, 10_000));
    assert_eq!((c.gate.max_header_bytes, c.gate.max_headers), (65536, 100));
}

#[test]
fn valid_file_is_compiled() {
    let c = load(
        r#"
[gate]
listen = "127.0.0.1:0"
public_url = "https://prt.barge2rail.com"
upstream = "http://127.0.0.1:8001"
trusted_proxies = ["10.0.0.0/8", "192.168.1.7"]
upstream_timeout = "2m"
max_connections = 50
max_uri_bytes = 2048

[session]
store = "redis://127.0.0.1:6379/0"
idle_timeout = "1h"
"#,
    )
    .expect("valid");
    let p = c.gate.public_url.expect("public url");
    assert_eq!(p.origin, "https://prt.barge2rail.com");
    assert!(p.https);
    assert_eq!(c.gate.trusted_proxies.len(), 2);
    assert_eq!(c.gate.trusted_proxies[1].to_string(), "192.168.1.7/32");
    assert_eq!(c.gate.upstream_timeout, Duration::from_secs(120));
    assert_eq!((c.gate.max_connections, c.gate.max_uri_bytes), (50, 2048));
    assert_eq!(c.session.store, StoreKind::Redis("redis://127.0.0.1:6379/0".into()));
    assert_eq!(c.session.idle_timeout, Duration::from_secs(3600));
}

#[test]
fn errors_carry_file_line_and_reason() {
    let rows: &[(&str, &str)] = &[
        (
            "[gate]\nlisen = \"127.0.0.1:1\"\n",
            "policy.toml:2:1: unknown field `lisen`, expected one of `listen`, `admin_listen`, `public_url`, `upstream`, `trusted_proxies`, `header_read_timeout`, `max_header_bytes`, `max_headers`, `max_uri_bytes`, `max_connections`, `upstream_connect_timeout`, `upstream_timeout`, `upstream_pool_idle_timeout`, `upstream_pool_max_idle`, `drain_timeout`, `workers`, `login_rate_limit`, `allowed_hosts`, `h2_first_request_timeout`, `h2_idle_timeout`, `h2_header_block_timeout`, `hide_upstream_headers`",
        ),
        ("[gaet]\n", "policy.toml:1:2: unknown field `gaet`, expected one of `gate`, `sso`, `session`, `tenant`, `media`, `assertion`, `roles`, `log`, `policy`, `redact`, `route`"),
        ("[gate]\nlisten = 8080\n", "policy.toml:2:10: invalid type: integer `8080`, expected a string"),
        ("[gate\n", "policy.toml:1:6: invalid table header\nexpected `.`, `]`"),
        ("\n\n[gate]\nlisten = \"localhost\"\n", "policy.toml:4:10: gate.listen: invalid socket address `localhost` (expected IP:PORT, e.g. `127.0.0.1:8080`)"),
        (
            "[session]\nidle_timeout = \"8 hours please\"\n",
            "policy.toml:2:16: session.idle_timeout: invalid duration `8 hours please`: expected number at 8 (examples: \"30s\", \"10m\", \"24h\", \"14d\")",
        ),
        ("[media]\nexpires = \"8d\"\n", "policy.toml:2:11: media.expires: `8d` exceeds the maximum of 7days"),
        ("[gate]\ntrusted_proxies = [\"10.0.0.0/8\", \"nope\"]\n", "policy.toml:2:19: gate.trusted_proxies: invalid CIDR or IP address `nope`"),
        ("[gate]\nupstream = \"https://django:8000\"\n", "policy.toml:2:12: gate.upstream: `https://django:8000`: only plain http:// upstreams are supported (Django runs beside the gate)"),
        ("[gate]\npublic_url = \"https://prt.example/app\"\n", "policy.toml:2:14: gate.public_url: `https://prt.example/app` must be an origin only (scheme://host[:port]), without path or query"),
        ("[session]\nstore = \"postgres://x\"\n", "policy.toml:2:9: session.store: expected `memory` or a `redis://`, `rediss://` or cluster URL"),
        ("[tenant]\nmode = \"header\"\n", "policy.toml:2:8: tenant.mode: unknown mode `header` (expected `static` or `claim`)"),
        ("[sso]\nclient_secret = \"hunter2\"\n", "policy.toml:2:17: sso.client_secret: secrets are not accepted in the file; set PRT_GATE_SSO__CLIENT_SECRET in the environment"),
        ("[session]\nidle_timeout = \"20d\"\n", "policy.toml:2:16: session.idle_timeout: must not exceed session.absolute_timeout"),
        (
            "[redact]\npatterns = [\n  { name = \"pin\", regex = \"PIN-[0-9]{6}\" },\n  { name = \"bad\", regex = \"(x\" },\n]\n",
            "policy.toml:4:27: redact.patterns.1.regex: invalid regex: regex parse error: (x ^ error: unclosed group",
        ),
        ("[redact]\npatterns = [{ name = \"a b\", regex = \"x\" }]\n", "policy.toml:2:22: redact.patterns.0.name: invalid name `a b` (letters, digits, `_`, `-`)"),
        ("[redact]\nenabled = false\n", "policy.toml:2:1: unknown field `enabled`, expected `patterns`"),
        ("[gate]\nallowed_hosts = [\"https://x.example/\"]\n", "policy.toml:2:17: gate.allowed_hosts: `https://x.example/` is not a host[:port] (like `prt.example.com` or `10.0.0.5:8080`)"),
        ("[gate]\nh2_idle_timeout = \"1ms\"\n", "policy.toml:2:19: gate.h2_idle_timeout: `1ms` is below the minimum of 100ms"),
        ("[gate]\nhide_upstream_headers = [\"bad name\"]\n", "policy.toml:2:25: gate.hide_upstream_headers: invalid header name `bad name`"),
        ("[gate]\nmax_connections = 0\n", "policy.toml:2:19: gate.max_connections: 0 is out of range (1..=1000000)"),
        ("[gate]\nmax_uri_bytes = 100\n", "policy.toml:2:17: gate.max_uri_bytes: 100 is out of range (256..=65536)"),
    ];
    let mut failures = Vec::new();
    for (input, expected) in rows {
        match load(input) {
            Ok(_) => failures.push(format!("accepted invalid config {input:?}")),
            Err(got) if &got != expected => {
                failures.push(format!("input {input:?}\n  got:  {got}\n  want: {expected}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let err = load("[gate]\nlisten = \"x\"\nadmin_listen = \"y\"\nheader_read_timeout = \"soon\"\n").unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("policy.toml:2:10: gate.listen:"), "{err}");
    assert!(lines[1].starts_with("policy.toml:3:16: gate.admin_listen:"), "{err}");
    assert!(lines[2].starts_with("policy.toml:4:23: gate.header_read_timeout:"), "{err}");
}

#[test]
fn secret_is_never_echoed_in_errors() {
    let err = load("[sso]\nclient_secret = \"canary-9d1e\"\n").unwrap_err();
    assert!(!err.contains("canary-9d1e"), "{err}");
}

/// `serves_host`: the exact-text fast path and the parsed comparison agree; a near miss
/// (another port, a suffix, a sub-domain) is refused on both.
#[test]
fn served_hosts_exact_or_parsed() {
    let c = load("[gate]\npublic_url = \"https://prt.example.com\"\nallowed_hosts = [\"internal.example:8080\"]\n")
        .unwrap();
    for host in
        ["prt.example.com", "PRT.Example.COM", "prt.example.com:443", "internal.example:8080", "INTERNAL.example:8080"]
    {
        assert!(c.gate.serves_host(host.as_bytes()), "{host}");
    }
    for host in [
        "evil.example",
        "prt.example.com:8443",
        "prt.example.com.evil.example",
        "xprt.example.com",
        "internal.example",
        "internal.example:80800",
        "",
        "prt.example.com/",
    ] {
        assert!(!c.gate.serves_host(host.as_bytes()), "{host}");
    }
    // Neither configured: any well-formed authority is served, a malformed one is not.
    let open = load("").unwrap();
    assert!(open.gate.serves_host(b"anything.example:81"));
    assert!(!open.gate.serves_host(b"bad host"));
}
