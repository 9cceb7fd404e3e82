//! Route insert + match: arbitrary rule patterns compiled into a policy, then arbitrary
//! request paths normalized and decided. Nothing may panic, and a decision must be
//! deterministic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use prt_gate::normalize::normalize;
use prt_gate::policy::{Features, Policy, PolicyInput, RawRoute, Who};

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
            methods: Some(vec![["GET", "POST", "PATCH"][i % 3].to_string()]),
            roles: vec!["Admin".into()],
            ..RawRoute::default()
        })
        .collect();
    let (landing, pages) = (BTreeMap::new(), BTreeMap::new());
    let input = PolicyInput { routes: &routes, landing: &landing, pages: &pages };
    let Ok((policy, _)) = Policy::compile(&input, &|_| None) else { return };
    let features = Features::new();
    for raw in paths.lines().take(64) {
        let Ok(path) = normalize(raw) else { continue };
        for m in [http::Method::GET, http::Method::POST, http::Method::DELETE] {
            let who = Who::Session { role: "Admin", features: &features };
            let a = policy.decide(&m, &path, who);
            let b = policy.decide(&m, &path, who);
            assert_eq!(a, b);
        }
    }
});
