//! The module seams stay where docs/phases.md draws them: read the source and check
//! which module refers to which. The proxy's submodules form no import cycle, the
//! layers below the proxy (login flow, identity, policy, sessions, answers, cookies)
//! never reach up into it, and the repository points at nothing outside itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");

/// Source text without `//` comments (a doc line naming a module is not a reference).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Sibling modules named in `code` as `super::m`, `super::{a, b::c}` or `crate::proxy::m`.
fn sibling_refs(code: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for prefix in ["super::", "crate::proxy::"] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                None => vec![rest],
            };
            for n in names {
                let word: String = n.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if siblings.contains(&word) {
                    refs.insert(word);
                }
            }
        }
    }
    refs
}

/// Every cycle in a dependency graph (module → modules it refers to), as a path.
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        stack.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            if let Some(i) = stack.iter().position(|s| s == d) {
                let mut cycle = stack[i..].to_vec();
                cycle.push(d.clone());
                found.push(cycle);
            } else if !done.contains(d) {
                visit(d, deps, stack, done, found);
            }
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for m in deps.keys() {
        if !done.contains(m) {
            visit(m, deps, &mut Vec::new(), &mut done, &mut found);
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn proxy_graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(SRC).join("proxy");
    let files: BTreeMap<String, PathBuf> = rust_files(&dir)
        .into_iter()
        .filter(|p| p.parent() == Some(dir.as_path()) && !p.ends_with("mod.rs"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    let siblings: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(m, p)| {
            let mut refs = sibling_refs(&code(&std::fs::read_to_string(p).unwrap()), &siblings);
            refs.remove(m);
            (m.clone(), refs)
        })
        .collect()
}

#[test]
fn proxy_submodules_form_no_import_cycle() {
    let deps = proxy_graph();
    // The graph is really read: the pipeline calls its phases' modules.
    assert!(deps["pipeline"].contains("forward") && deps["pipeline"].contains("target"), "{deps:?}");
    assert!(deps.len() >= 10, "too few proxy modules found: {deps:?}");
    let found = cycles(&deps);
    assert!(found.is_empty(), "import cycles among src/proxy modules: {found:?}");
}

#[test]
fn the_cycle_check_finds_a_cycle_and_grouped_imports() {
    // Positive control for the two helpers above: a grouped import and a two-way pair.
    let siblings: BTreeSet<String> = ["auth", "forward", "pipeline"].map(String::from).into();
    let refs = sibling_refs("use super::{auth::Caller, forward};\nlet x = crate::proxy::pipeline::run;", &siblings);
    assert_eq!(refs, siblings);
    assert!(sibling_refs(&code("let a = 1; // super::forward in a comment"), &siblings).is_empty());
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.insert("forward".into(), ["pipeline".to_string()].into());
    deps.insert("pipeline".into(), ["forward".to_string()].into());
    deps.insert("auth".into(), BTreeSet::new());
    assert_eq!(cycles(&deps).len(), 1, "{:?}", cycles(&deps));
}

#[test]
fn layers_below_the_proxy_never_import_it() {
    let lower = [
        "oidc",
        "policy",
        "session",
        "response",
        "media",
        "redact",
        "upstream",
        "identity",
        "cookie.rs",
        "normalize.rs",
        "gate_owned.rs",
    ];
    let mut checked = 0;
    let mut offenders = Vec::new();
    for name in lower {
        let path = Path::new(SRC).join(name);
        let files = if path.is_dir() { rust_files(&path) } else { vec![path] };
        for f in files {
            let text = code(&std::fs::read_to_string(&f).unwrap());
            checked += 1;
            if text.contains("crate::proxy") || text.contains("super::proxy") {
                offenders.push(f.display().to_string());
            }
        }
    }
    assert!(checked >= 20, "only {checked} files checked");
    assert!(offenders.is_empty(), "modules below the proxy import it: {offenders:?}");
}

#[test]
fn the_repository_points_at_nothing_outside_itself() {
    let mut offenders = Vec::new();
    let files: Vec<PathBuf> = rust_files(Path::new(SRC)).into_iter().chain(rust_files(Path::new(TESTS))).collect();
    // Spelled in two halves so this file does not match itself.
    let shared = "../".to_string() + "shared";
    let spec = "SP".to_string() + "EC";
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if text.contains(shared.as_str()) {
            offenders.push(format!("{}: {shared}", f.display()));
        }
        // That word alone points at an outside specification; longer names (SPEC_X) are fine.
        let word = |at: usize| {
            let before = text[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let after = text[at + spec.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            before && after
        };
        if text.match_indices(spec.as_str()).any(|(at, _)| word(at)) {
            offenders.push(format!("{}: {spec}", f.display()));
        }
    }
    assert!(files.len() > 50, "only {} files read", files.len());
    assert!(offenders.is_empty(), "references to files outside the repository: {offenders:?}");
}
