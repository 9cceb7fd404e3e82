//! Route insert + match: arbitrary rule patterns (with varied roles, methods, public and
//! bearer flags) compiled into a policy, then arbitrary request paths normalized and
//! decided. Nothing may panic, a decision is deterministic, `explain` (the CLI and
//! the docs/design.md §14 table test) agrees with the live decision for every caller, and the decision
//! on the forwarded path equals the decision on the path Django resolves after its own
//! percent-decoding (modelled below, spelled back in the policy's canonical form).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use prt_gate::normalize::normalize;
use prt_gate::policy::explain::{explain, Caller};
use prt_gate::policy::{Features, Policy, PolicyInput, RawRoute, Role, Who};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Lines before a blank line are patterns; lines after it are request paths.
    let (patterns, paths) = text.split_once("\n\n").unwrap_or((text, "/"));
    let routes: Vec<RawRoute> = patterns
        .lines()
        .take(64)
        .enumerate()
        .map(|(i, p)| RawRoute {
            path: p.to_string(),
            methods: (i % 4 != 3).then(|| vec![["GET", "POST", "PATCH"][i % 3].to_string()]),
            roles: Role::ALL.iter().enumerate().filter(|(b, _)| (i >> b) & 1 == 1).map(|(_, r)| r.as_str().into()).collect(),
            public: i % 7 == 5,
            auth: (i % 5 == 4).then(|| "bearer".to_string()),
            ..RawRoute::default()
        })
        .collect();
    let (landing, pages) = (BTreeMap::new(), BTreeMap::new());
    let input = PolicyInput { routes: &routes, landing: &landing, pages: &pages };
    let Ok((policy, _)) = Policy::compile(&input, &|_| None) else { return };
    let features = Features::new();
    for raw in paths.lines().take(64) {
        let Ok(path) = normalize(raw) else { continue };
        let django = django_view(path.as_str());
        let django_path = normalize(&django).expect("Django's path, spelled canonically, was refused");
        for m in [http::Method::GET, http::Method::POST, http::Method::DELETE] {
            let anon = policy.decide(&m, &path, Who::Anonymous);
            assert_eq!(anon, policy.decide(&m, &django_path, Who::Anonymous), "{m} {raw:?} vs Django's {django:?}");
            assert_eq!(anon, policy.decide(&m, &path, Who::Anonymous));
            assert_eq!(explain(&policy, &m, &path, Caller::Anonymous).verdict, anon, "{m} {raw:?}");
            for role in Role::ALL {
                let who = Who::claims(policy.route_for(&m, &path).auth(), role, &features);
                let live = policy.decide(&m, &path, who);
                assert_eq!(live, policy.decide(&m, &path, who));
                assert_eq!(live, policy.decide(&m, &django_path, who), "{m} {raw:?} vs Django's {django:?}");
                let explained = explain(&policy, &m, &path, Caller::Role { role, features: &features });
                assert_eq!(explained.verdict, live, "{m} {raw:?} as {}", role.as_str());
            }
        }
    }
});

/// The path Django resolves for a forwarded path (the WSGI server percent-decodes all of
/// `PATH_INFO`), spelled back the one way a rule literal may be written: path characters
/// raw, every other byte escaped. Deciding on it is deciding on what Django routes.
fn django_view(forwarded: &str) -> String {
    let bytes = forwarded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()).filter(|_| b == b'%') {
            Some(v) => {
                decoded.push(v);
                i += 3;
            }
            None => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let mut out = String::with_capacity(forwarded.len());
    for b in decoded {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
