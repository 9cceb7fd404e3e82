//! Table tests for the policy: patterns (valid and invalid, with exact messages), matching,
//! precedence, ties, trailing slash, roles, features, defaults and page allow-lists. Each
//! row names the rule that must decide, not only the outcome.

use std::path::Path;

use http::Method;

use super::explain::{explain, Caller};
use super::*;
use crate::config::Config;
use crate::normalize::normalize;

fn load(text: &str) -> Result<(Config, Vec<String>), String> {
    Config::from_str_at(Path::new("policy.toml"), text)
        .map(|(c, w)| (c, w.iter().map(ToString::to_string).collect()))
        .map_err(|e| e.to_string())
}

fn policy(text: &str) -> Arc<Policy> {
    match load(text) {
        Ok((c, _)) => c.policy,
        Err(e) => panic!("policy rejected:\n{e}\n---\n{text}"),
    }
}

fn m(s: &str) -> Method {
    Method::from_bytes(s.as_bytes()).unwrap()
}

/// `decision rule [location]` for a caller (`-` = anonymous, else a role name).
fn ask(p: &Policy, caller: &str, method: &str, path: &str) -> String {
    ask_with(p, caller, &Features::new(), method, path)
}

fn ask_with(p: &Policy, caller: &str, features: &Features, method: &str, path: &str) -> String {
    let path = normalize(path).expect("test paths are valid");
    let caller = match caller {
        "-" => Caller::Anonymous,
        r => Caller::Role { role: Role::parse(r).expect("known role"), features },
    };
    let x = explain(p, &m(method), &path, caller);
    let mut s = format!("{} {} {}", x.verdict.decision(), x.status, x.rule());
    if let Verdict::Redirect { to, .. } = &x.verdict {
        s.push_str(&format!(" -> {to}"));
    }
    s
}

// ---------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------

#[test]
fn patterns_valid() {
    let rows: &[(&str, usize, bool)] = &[
        ("/", 0, true),
        ("/robots.txt", 1, false),
        ("/api/history/", 2, true),
        ("/api/bol/{id}/download/", 4, true),
        ("/media/{*key}", 2, false),
        ("/tenant/{code}/pigiron/{*rest}", 4, false),
        ("/a/{x_1}/{Y}/", 3, true),
        ("/~user/a-b_c.d/", 2, true),
        ("/caf%C3%A9/", 1, true),
        ("/a:b@c!$&'()*+,=/", 1, true),
    ];
    for &(text, segs, slash) in rows {
        let p = Pattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!((p.segments().len(), p.has_trailing_slash()), (segs, slash), "{text}");
        assert_eq!(p.as_str(), text);
    }
}

#[test]
fn patterns_invalid_with_exact_messages() {
    let rows: &[(&str, &str)] = &[
        ("", "pattern must start with `/`"),
        ("api/x/", "pattern must start with `/`"),
        ("/api//x/", "empty segment (`//`): normalized paths never contain one"),
        ("/api/{id/", "unclosed `{` in segment `{id`"),
        ("/api/id}/", "unmatched `}` in segment `id}`"),
        ("/api/v{id}/", "a parameter must be a whole segment, like `{id}` or `{*rest}`: `v{id}`"),
        ("/api/{id}.json", "a parameter must be a whole segment, like `{id}` or `{*rest}`: `{id}.json`"),
        ("/api/{{id}}/", "a parameter must be a whole segment, like `{id}` or `{*rest}`: `{{id}}`"),
        ("/api/{}/", "empty parameter name in `{}`"),
        ("/media/{*}", "empty parameter name in `{*}`"),
        ("/api/{a-b}/", "invalid parameter name in `{a-b}` (use letters, digits and `_`, not starting with a digit)"),
        ("/api/{1x}/", "invalid parameter name in `{1x}` (use letters, digits and `_`, not starting with a digit)"),
        ("/media/{*key}/x", "catch-all `{*key}` must be the last segment, without a trailing `/`"),
        ("/media/{*key}/", "catch-all `{*key}` must be the last segment, without a trailing `/`"),
        ("/a/{id}/b/{id}/", "parameter name `id` is used twice"),
        ("/a/{id}/{*id}", "parameter name `id` is used twice"),
        ("/api/../admin/", "dot segment `..` never matches: normalization resolves it"),
        ("/api/./x", "dot segment `.` never matches: normalization resolves it"),
        ("/api/x;y/", "segment `x;y` would be refused by path normalization (path contains a ';' path parameter)"),
        ("/api/a b/", "segment `a b` would be refused by path normalization (path contains a raw space)"),
        (
            "/api/a%2Fb/",
            "segment `a%2Fb` would be refused by path normalization (path contains an encoded '/' or '\\')",
        ),
        ("/api/a\\b/", "segment `a\\b` would be refused by path normalization (path contains a backslash)"),
        ("/api/x#y/", "segment `x#y` would be refused by path normalization (path contains a fragment ('#'))"),
        (
            "/api/caf\u{e9}/",
            "segment `caf\u{e9}` would be refused by path normalization (path contains a raw non-ascii byte)",
        ),
        ("/%7Euser/", "segment `%7Euser` is normalized to `~user`; write it that way"),
        ("/a%c3%a9/", "segment `a%c3%a9` is normalized to `a%C3%A9`; write it that way"),
        ("/a\"b/", "segment `a\"b` is normalized to `a%22b`; write it that way"),
    ];
    let mut failures = Vec::new();
    for &(text, want) in rows {
        match Pattern::parse(text) {
            Ok(_) => failures.push(format!("accepted {text:?}")),
            Err(e) if e.to_string() != want => failures.push(format!("{text:?}\n  got:  {e}\n  want: {want}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

/// Which pattern governs each path (`-` = none: the defaults).
#[test]
fn matching_table() {
    let patterns = [
        "/api/admin/",
        "/api/admin/{*rest}",
        "/api/history/",
        "/api/bol/{id}/",
        "/api/bol/{id}/download/",
        "/api/bol/preview/",
        "/robots.txt",
        "/static/{*rest}",
        "/exact",
        "/exact/",
        "/",
    ];
    let mut trie = matcher::Trie::default();
    for (i, p) in patterns.iter().enumerate() {
        trie.insert(&Pattern::parse(p).unwrap(), i as u32).unwrap();
    }
    let rows: &[(&str, &str)] = &[
        // Segment boundaries: a prefix never matches a longer segment.
        ("/api/admin/", "/api/admin/"),
        ("/api/admin", "/api/admin/"),
        ("/api/adminx", "-"),
        ("/api/adminx/", "-"),
        ("/api/admin/users/", "/api/admin/{*rest}"),
        ("/api/admin/users", "/api/admin/{*rest}"),
        ("/api/admin/a/b/c", "/api/admin/{*rest}"),
        // Trailing slash: the slash rule governs both; the slash-less rule only itself.
        ("/api/history/", "/api/history/"),
        ("/api/history", "/api/history/"),
        ("/api/historyx", "-"),
        ("/robots.txt", "/robots.txt"),
        ("/robots.txt/", "-"),
        ("/exact", "/exact"),
        ("/exact/", "/exact/"),
        // {param}: exactly one non-empty segment.
        ("/api/bol/12/", "/api/bol/{id}/"),
        ("/api/bol/12", "/api/bol/{id}/"),
        ("/api/bol/", "-"),
        ("/api/bol/12/13/", "-"),
        ("/api/bol/12/download/", "/api/bol/{id}/download/"),
        ("/api/bol/12/download", "/api/bol/{id}/download/"),
        // Exact beats {param}.
        ("/api/bol/preview/", "/api/bol/preview/"),
        ("/api/bol/preview", "/api/bol/preview/"),
        // A dead-end exact branch backtracks to the parameter.
        ("/api/bol/preview/download/", "/api/bol/{id}/download/"),
        // {*tail}: non-empty.
        ("/static/", "-"),
        ("/static", "-"),
        ("/static/app.css", "/static/{*rest}"),
        ("/static/css/", "/static/{*rest}"),
        ("/staticx/app.css", "-"),
        ("/", "/"),
    ];
    let mut failures = Vec::new();
    for &(path, want) in rows {
        let got = trie.find(path).map_or("-", |i| patterns[i as usize]);
        if got != want {
            failures.push(format!("{path}: got {got}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Precedence and ties
// ---------------------------------------------------------------------------

const PRECEDENCE: &str = r#"
[[route]]
path = "/a/{*rest}"
roles = ["Admin"]
name = "tail"

[[route]]
path = "/a/{x}/{*rest}"
roles = ["Admin"]
name = "param-tail"

[[route]]
path = "/a/{x}/c/"
roles = ["Admin"]
name = "param-c"

[[route]]
path = "/a/b/{y}/"
roles = ["Admin"]
name = "b-param"

[[route]]
path = "/a/b/c/"
methods = ["GET"]
roles = ["Admin"]
name = "exact-get"

[[route]]
path = "/a/b/c/"
roles = ["Admin"]
name = "exact-any"

[[route]]
path = "/a/{x}/"
roles = ["Admin"]
name = "param"
"#;

#[test]
fn most_specific_rule_wins() {
    let p = policy(PRECEDENCE);
    let rows: &[(&str, &str, &str)] = &[
        ("GET", "/a/b/c/", "exact-get"),   // exact segments, method-specific
        ("HEAD", "/a/b/c/", "exact-get"),  // GET covers HEAD
        ("POST", "/a/b/c/", "exact-any"),  // same pattern, any-method rule
        ("GET", "/a/b/d/", "b-param"),     // exact `b` beats {x} at segment 2
        ("GET", "/a/z/c/", "param-c"),     // exact `c` beats {*rest}
        ("GET", "/a/z/", "param"),         // {x} beats {*rest}
        ("GET", "/a/z/q/r", "param-tail"), // longer: {x}/{*rest} beats {*rest}
        ("GET", "/a/b/c/d", "param-tail"), // the exact branch dead-ends: backtrack
        ("GET", "/a/b", "param"),          // APPEND_SLASH into /a/{x}/
    ];
    for &(method, path, want) in rows {
        assert_eq!(ask(&p, "admin", method, path), format!("allow 200 {want}"), "{method} {path}");
    }
}

#[test]
fn ties_are_rejected_naming_both_rules_and_the_fix() {
    let rows: &[(&str, &str)] = &[
        (
            "[[route]]\npath = \"/api/x/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]\n\n[[route]]\npath = \"/api/x/\"\nmethods = [\"GET\", \"POST\"]\nroles = [\"Office\"]\n",
            "policy.toml:7:8: route.1.path: rules `GET /api/x/` (policy.toml:1) and `GET,POST /api/x/` (policy.toml:6) overlap; remove one or make one more specific",
        ),
        (
            // Parameter names do not make patterns different.
            "[[route]]\npath = \"/api/{id}/\"\nroles = [\"Admin\"]\n[[route]]\npath = \"/api/{pk}/\"\nroles = [\"Office\"]\n",
            "policy.toml:5:8: route.1.path: rules `ANY /api/{id}/` (policy.toml:1) and `ANY /api/{pk}/` (policy.toml:4) overlap; remove one or make one more specific",
        ),
        (
            // HEAD is covered by GET.
            "[[route]]\npath = \"/x/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]\n[[route]]\npath = \"/x/\"\nmethods = [\"HEAD\"]\npublic = true\n",
            "policy.toml:6:8: route.1.path: rules `GET /x/` (policy.toml:1) and `HEAD /x/` (policy.toml:5) overlap; remove one or make one more specific",
        ),
    ];
    for (text, want) in rows {
        assert_eq!(load(text).err().as_deref(), Some(*want));
    }
    // Not ties: different methods, a slash and a slash-less pattern, method-specific and any.
    policy(
        "[[route]]\npath = \"/x/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]\n\
         [[route]]\npath = \"/x/\"\nmethods = [\"POST\"]\nroles = [\"Admin\"]\n\
         [[route]]\npath = \"/x/\"\nroles = [\"Admin\"]\n\
         [[route]]\npath = \"/x\"\nroles = [\"Admin\"]\n",
    );
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

const SMALL: &str = r#"
[roles]
pages = { client = ["/client.html", "/media/{*key}"] }

[[route]]
path = "/api/health/"
methods = ["GET"]
public = true

[[route]]
path = "/api/bol/{id}/"
methods = ["GET"]
roles = ["admin", "CLIENT"]

[[route]]
path = "/api/bol/{id}/"
methods = ["POST"]
roles = ["Admin"]
features = ["bol:edit", "bol:view"]

[[route]]
path = "/api/open-releases/"
methods = ["GET"]
auth = "bearer"
roles = ["Office"]

[[route]]
path = "/reports/"
methods = ["GET"]
roles = ["Office", "Client"]

[[route]]
path = "/media/{*key}"
methods = ["GET"]
roles = ["Client", "Office"]

[[route]]
path = "/client.html"
methods = ["GET"]
roles = ["Client"]
"#;

#[test]
fn decisions_table() {
    let p = policy(SMALL);
    let rows: &[(&str, &str, &str, &str)] = &[
        // Public: everyone, anonymous included.
        ("-", "GET", "/api/health/", "allow 200 /api/health/"),
        ("Client", "GET", "/api/health", "allow 200 /api/health/"),
        // Roles are case-insensitive in the file and for the caller.
        ("Admin", "GET", "/api/bol/7/", "allow 200 /api/bol/{id}/"),
        ("client", "GET", "/api/bol/7/", "allow 200 /api/bol/{id}/"),
        ("Office", "GET", "/api/bol/7/", "deny 403 /api/bol/{id}/"),
        ("-", "GET", "/api/bol/7/", "login 401 /api/bol/{id}/"),
        // Method without a rule on a covered path: denied for everyone.
        ("Admin", "DELETE", "/api/bol/7/", "deny 403 /api/bol/{id}/"),
        ("-", "DELETE", "/api/bol/7/", "deny 403 /api/bol/{id}/"),
        // Unmatched /api paths: denied for everyone, anonymous included.
        ("Admin", "GET", "/api/unknown/", "deny 403 no_rule"),
        ("-", "GET", "/api/unknown/", "deny 403 no_rule"),
        ("-", "GET", "/api", "deny 403 no_rule"),
        ("Admin", "GET", "/api/", "deny 403 no_rule"),
        ("Admin", "GET", "/api/bol/7/8/", "deny 403 no_rule"),
        // Other unmatched paths: any logged-in role, login for anonymous.
        ("Operator", "GET", "/anything/", "allow 200 default"),
        ("Operator", "POST", "/anything/", "allow 200 default"),
        ("-", "GET", "/anything/", "login 302 default"),
        ("-", "GET", "/apix/", "login 302 default"),
        // Bearer routes take the Bearer credential (explain simulates it).
        ("Office", "GET", "/api/open-releases/", "allow 200 /api/open-releases/"),
        ("Admin", "GET", "/api/open-releases/", "deny 403 /api/open-releases/"),
        ("-", "GET", "/api/open-releases/", "login 401 /api/open-releases/"),
        // Page denied for a role: GET goes to the landing page, other methods get 403.
        ("Admin", "GET", "/reports/", "redirect 302 /reports/ -> /"),
        ("Admin", "POST", "/reports/", "deny 403 /reports/"),
        // Page allow-list: Client may open only its pages, even where a rule or the default
        // would let it in.
        ("Client", "GET", "/reports/", "redirect 302 roles.pages -> /client.html"),
        ("Client", "GET", "/anything/", "redirect 302 roles.pages -> /client.html"),
        ("Client", "POST", "/anything/", "deny 403 roles.pages"),
        ("Client", "GET", "/client.html", "allow 200 /client.html"),
        ("Client", "GET", "/media/bols/1.pdf", "allow 200 /media/{*key}"),
        ("Office", "GET", "/client.html", "redirect 302 /client.html -> /"),
        // The allow-list never applies to /api paths.
        ("Client", "GET", "/api/bol/1/", "allow 200 /api/bol/{id}/"),
    ];
    let mut failures = Vec::new();
    for &(who, method, path, want) in rows {
        let got = ask(&p, who, method, path);
        if got != want {
            failures.push(format!("{who} {method} {path}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn features_are_all_required() {
    let p = policy(SMALL);
    let mut f = Features::new();
    assert_eq!(ask_with(&p, "Admin", &f, "POST", "/api/bol/1/"), "deny 403 /api/bol/{id}/");
    f.insert("bol".into(), vec!["view".into()]);
    assert_eq!(ask_with(&p, "Admin", &f, "POST", "/api/bol/1/"), "deny 403 /api/bol/{id}/");
    f.insert("bol".into(), vec!["view".into(), "edit".into()]);
    assert_eq!(ask_with(&p, "Admin", &f, "POST", "/api/bol/1/"), "allow 200 /api/bol/{id}/");
    // Feature names are exact (they are claims, not display names).
    f.insert("bol".into(), vec!["VIEW".into(), "EDIT".into()]);
    assert_eq!(ask_with(&p, "Admin", &f, "POST", "/api/bol/1/"), "deny 403 /api/bol/{id}/");
}

/// Tenant match: the `{code}` segment must equal the caller's tenant code, byte for byte;
/// unscoped callers are refused unless the rule opts in. The last rows are the positive
/// controls (same caller, its own tenant).
#[test]
fn tenant_match_table() {
    let p = policy(
        "[[route]]\npath = \"/tenant/{code}/pigiron/{*rest}\"\nroles = [\"Office\"]\ntenant = \"{code}\"\n\
         [[route]]\npath = \"/open/{code}/\"\nroles = [\"Office\"]\ntenant = \"{code}\"\ntenant_unscoped = \"any\"\n\
         [[route]]\npath = \"/plain/{code}/\"\nroles = [\"Office\"]\n",
    );
    let none = Features::new();
    let ask_in = |tenant: Option<&str>, role: &str, path: &str| {
        let path = normalize(path).unwrap();
        let caller = match role {
            "-" => Caller::Anonymous,
            r => Caller::Role { role: Role::parse(r).unwrap(), features: &none },
        };
        let x = explain::explain_in(&p, &Method::GET, &path, caller, tenant);
        let reason = match &x.verdict {
            Verdict::Deny(d) => format!(" ({:?})", d.reason()),
            _ => String::new(),
        };
        format!("{} {}{reason}", x.verdict.decision(), x.status)
    };
    let rows: &[(Option<&str>, &str, &str, &str)] = &[
        (Some("PRT"), "Office", "/tenant/ACME/pigiron/releases/", "deny 403 (Tenant)"),
        (Some("PRT"), "Office", "/tenant/prt/pigiron/releases/", "deny 403 (Tenant)"),
        (Some("PRT"), "Office", "/tenant/PRTX/pigiron/releases/", "deny 403 (Tenant)"),
        (Some("ACME"), "Office", "/tenant/PRT/pigiron/bol/1/pdf/", "deny 403 (Tenant)"),
        (None, "Office", "/tenant/PRT/pigiron/releases/", "deny 403 (Tenant)"),
        (Some("PRT"), "Client", "/tenant/PRT/pigiron/releases/", "redirect 302"),
        (None, "-", "/tenant/PRT/pigiron/releases/", "login 302"),
        (None, "Office", "/open/PRT/", "allow 200"),
        (Some("ACME"), "Office", "/open/PRT/", "deny 403 (Tenant)"),
        (Some("ACME"), "Office", "/plain/PRT/", "allow 200"),
        (Some("PRT"), "Office", "/tenant/PRT/pigiron/releases/", "allow 200"),
        (Some("ACME"), "Office", "/tenant/ACME/pigiron/releases/upload/", "allow 200"),
        (Some("ACME"), "Office", "/open/ACME/", "allow 200"),
    ];
    for (tenant, role, path, want) in rows {
        assert_eq!(ask_in(*tenant, role, path), *want, "{tenant:?} {role} {path}");
    }
    // `decide` without a tenant is the unscoped caller: closed on a tenant rule.
    let path = normalize("/tenant/PRT/pigiron/x/").unwrap();
    let who = Who::claims(Auth::Session, Role::Office, &none);
    assert_eq!(p.route_for(&Method::GET, &path).decide(who).decision(), "deny");
    assert_eq!(p.route_for(&Method::GET, &path).decide_in(who, Some("PRT")).decision(), "allow");
}

/// `forward_authorization` is a property of the bearer rule the pipeline asks about.
#[test]
fn forward_authorization_is_per_rule() {
    let p = policy(
        "[[route]]\npath = \"/api/fwd/\"\nauth = \"bearer\"\nroles = [\"Office\"]\nforward_authorization = true\n\
         [[route]]\npath = \"/api/eat/\"\nauth = \"bearer\"\nroles = [\"Office\"]\n",
    );
    let fwd = normalize("/api/fwd/").unwrap();
    let eat = normalize("/api/eat/").unwrap();
    assert!(p.route_for(&Method::GET, &fwd).forwards_authorization());
    assert!(!p.route_for(&Method::GET, &eat).forwards_authorization());
}

#[test]
fn credential_kind_and_unknown_roles_fail_closed() {
    let p = policy(SMALL);
    let none = Features::new();
    let path = normalize("/api/open-releases/").unwrap();
    let v = p.decide(&Method::GET, &path, Who::claims(Auth::Session, Role::Office, &none));
    assert!(matches!(&v, Verdict::Deny(d) if d.reason() == DenyReason::Credential), "{v:?}");
    let path = normalize("/api/bol/1/").unwrap();
    let v = p.decide(&Method::GET, &path, Who::claims(Auth::Bearer, Role::Admin, &none));
    assert!(matches!(&v, Verdict::Deny(d) if d.reason() == DenyReason::Credential), "{v:?}");
    // A role the gate does not know is never "any authenticated session".
    for path in ["/api/bol/1/", "/anything/"] {
        let path = normalize(path).unwrap();
        let v = p.decide(&Method::GET, &path, Who::claims(Auth::Session, Role::parse("Guest"), &none));
        assert!(matches!(&v, Verdict::Deny(d) if d.reason() == DenyReason::UnknownRole), "{v:?}");
    }
    let path = normalize("/api/bol/1/").unwrap();
    let v = p.decide(&Method::GET, &path, Who::claims(Auth::Session, Role::parse("ADMIN"), &none));
    match v {
        Verdict::Allow(permit) => assert_eq!((permit.role(), &**permit.rule()), (Role::Admin, "/api/bol/{id}/")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn route_for_tells_the_pipeline_what_to_authenticate() {
    let p = policy(SMALL);
    let r = |method: Method, path: &str| {
        let path = normalize(path).unwrap().into_owned();
        let route = p.route_for(&method, &path);
        (route.auth(), route.is_public(), route.needs_identity(), route.rule_id().to_string())
    };
    assert_eq!(r(Method::GET, "/api/open-releases/"), (Auth::Bearer, false, true, "/api/open-releases/".into()));
    assert_eq!(r(Method::GET, "/api/health/"), (Auth::Session, true, false, "/api/health/".into()));
    assert_eq!(r(Method::GET, "/api/nope/"), (Auth::Session, false, false, "no_rule".into()));
    assert_eq!(r(Method::GET, "/other/"), (Auth::Session, false, true, "default".into()));
}

#[test]
fn redirect_never_loops_on_the_landing_page() {
    let p = policy(
        "[roles]\nlanding = { Operator = \"/ops/\" }\n[[route]]\npath = \"/ops/\"\nmethods = [\"GET\"]\nroles = [\"Admin\"]\n",
    );
    assert_eq!(ask(&p, "Operator", "GET", "/ops/"), "deny 403 /ops/");
    assert_eq!(ask(&p, "Operator", "GET", "/ops"), "redirect 302 /ops/ -> /ops/");
}

// ---------------------------------------------------------------------------
// Configuration errors and warnings with line numbers
// ---------------------------------------------------------------------------

#[test]
fn route_errors_carry_file_line_and_reason() {
    let rows: &[(&str, &str)] = &[
        (
            "[[route]]\npath = \"/x/\"\nrole = [\"Admin\"]\n",
            "policy.toml:3:1: unknown field `role`, expected one of `path`, `methods`, `roles`, `features`, `public`, `auth`, `forward_authorization`, `tenant`, `tenant_unscoped`, `name`, `comment`",
        ),
        ("[[route]]\nroles = [\"Admin\"]\n", "policy.toml:1:1: missing field `path`"),
        ("\n[[route]]\npath = \"/api/{id/\"\nroles = [\"Admin\"]\n", "policy.toml:3:8: route.0.path: `/api/{id/`: unclosed `{` in segment `{id`"),
        (
            "[[route]]\npath = \"/x/\"\nroles = [\"Admin\", \"Guest\"]\n",
            "policy.toml:3:19: route.0.roles.1: unknown role `Guest` (expected Admin, Office, Operator, Client)",
        ),
        ("[[route]]\npath = \"/x/\"\n", "policy.toml:1:1: route.0.roles: no roles: add roles = [...] or public = true"),
        (
            "[[route]]\npath = \"/x/\"\npublic = true\nroles = [\"Admin\"]\n",
            "policy.toml:3:10: route.0.public: a public rule checks no identity: remove roles, features and auth, or remove public = true",
        ),
        (
            "[[route]]\npath = \"/x/\"\npublic = true\nauth = \"session\"\n",
            "policy.toml:3:10: route.0.public: a public rule checks no identity: remove roles, features and auth, or remove public = true",
        ),
        (
            "[[route]]\npath = \"/x/\"\nmethods = [\"get\"]\nroles = [\"Admin\"]\n",
            "policy.toml:3:12: route.0.methods.0: method `get` must be written in upper case: `GET`",
        ),
        (
            "[[route]]\npath = \"/x/\"\nmethods = [\"FETCH\"]\nroles = [\"Admin\"]\n",
            "policy.toml:3:12: route.0.methods.0: unknown method `FETCH` (expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE)",
        ),
        (
            "[[route]]\npath = \"/x/\"\nmethods = []\nroles = [\"Admin\"]\n",
            "policy.toml:3:11: route.0.methods: empty list matches nothing; omit `methods` to allow any method",
        ),
        (
            "[[route]]\npath = \"/x/\"\nroles = [\"Admin\"]\nfeatures = [\"bolview\"]\n",
            "policy.toml:4:13: route.0.features.0: `bolview` is not `feature:permission` (for example `bol:view`)",
        ),
        (
            "[[route]]\npath = \"/x/\"\nroles = [\"Admin\"]\nauth = \"cookie\"\n",
            "policy.toml:4:8: route.0.auth: unknown auth `cookie` (expected `session` or `bearer`)",
        ),
        (
            "[[route]]\npath = \"/x/\"\nroles = [\"Admin\"]\nname = \"no_rule\"\n",
            "policy.toml:4:8: route.0.name: `no_rule` is reserved for the gate's defaults",
        ),
        (
            "[[route]]\npath = \"/tenant/{code}/x/\"\nroles = [\"Office\"]\ntenant = \"{tenant}\"\n",
            "policy.toml:4:10: route.0.tenant: the pattern `/tenant/{code}/x/` has no `{tenant}` segment for the tenant match",
        ),
        (
            "[[route]]\npath = \"/t/{*code}\"\nroles = [\"Office\"]\ntenant = \"{code}\"\n",
            "policy.toml:4:10: route.0.tenant: the pattern `/t/{*code}` has no `{code}` segment for the tenant match",
        ),
        (
            "[[route]]\npath = \"/t/{code}/\"\nroles = [\"Office\"]\ntenant = \"code\"\n",
            "policy.toml:4:10: route.0.tenant: `code` is not a path parameter (write tenant = \"{code}\")",
        ),
        (
            "[[route]]\npath = \"/t/{code}/\"\npublic = true\ntenant = \"{code}\"\n",
            "policy.toml:4:10: route.0.tenant: a public rule checks no identity, so no tenant either",
        ),
        (
            "[[route]]\npath = \"/t/{code}/\"\nroles = [\"Office\"]\ntenant = \"{code}\"\ntenant_unscoped = \"all\"\n",
            "policy.toml:5:19: route.0.tenant_unscoped: unknown value `all` (expected `deny` or `any`)",
        ),
        (
            "[[route]]\npath = \"/x/\"\nroles = [\"Office\"]\nforward_authorization = true\n",
            "policy.toml:4:25: route.0.forward_authorization: only a bearer rule (auth = \"bearer\") has an Authorization header to forward",
        ),
        (
            "[roles]\nlanding = { Guest = \"/\" }\n",
            "policy.toml:2:21: roles.landing.Guest: unknown role `Guest` (expected Admin, Office, Operator, Client)",
        ),
        (
            "[roles]\nlanding = { Client = \"https://evil.example/\" }\n",
            "policy.toml:2:22: roles.landing.Client: landing page `https://evil.example/` must be a canonical local path starting with one `/`",
        ),
        (
            "[roles]\npages = { Client = [\"/ok/\", \"/bad/{x\"] }\n",
            "policy.toml:2:29: roles.pages.Client.1: `/bad/{x`: unclosed `{` in segment `{x`",
        ),
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
fn every_rule_error_is_reported() {
    let err = load(
        "[[route]]\npath = \"x\"\nroles = [\"Admin\"]\n\n[[route]]\npath = \"/ok/\"\nroles = [\"Nobody\"]\n\n[[route]]\npath = \"/y/\"\n",
    )
    .unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("policy.toml:2:8: route.0.path:"), "{err}");
    assert!(lines[1].starts_with("policy.toml:7:10: route.1.roles.0:"), "{err}");
    assert!(lines[2].starts_with("policy.toml:9:1: route.2.roles:"), "{err}");
}

#[test]
fn warnings_for_unreachable_grants_landing_and_secrets() {
    let (_, warnings) = load(
        "[roles]\npages = { Client = [\"/client.html\"] }\n\
         [[route]]\npath = \"/auth/login/\"\nroles = [\"Admin\"]\n\
         [[route]]\npath = \"/reports/\"\nroles = [\"Client\"]\n\
         [[route]]\npath = \"/\"\nroles = [\"Admin\", \"Office\"]\n\
         [[route]]\npath = \"/x/\"\nroles = [\"Admin\"]\ncomment = \"key AKIAIOSFODNN7EXAMPLE\"\n\
         # Bearer abcdefghijklmnopqrstuvwxyz0123\n",
    )
    .unwrap();
    let want = [
        "policy.toml:4:8: route.0.path: rule `ANY /auth/login/` is never consulted: the gate answers `/auth/login/` itself before the policy (gate:login)",
        "policy.toml:8:9: route.1.roles: rule `ANY /reports/` grants Client, but roles.pages.Client does not include it: Client is sent to /client.html instead",
        "policy.toml:1:1: roles.landing.Operator: the landing page `/` of Operator is not open to Operator (rule `/`): it gets 403 there",
        "policy.toml:15:16: looks like an AWS access key id in the file; secrets belong in the environment, never in policy.toml",
        "policy.toml:16:3: looks like a Bearer token in the file; secrets belong in the environment, never in policy.toml",
    ];
    assert_eq!(warnings, want, "{warnings:#?}");
}

/// Only the gate-owned list's paths are unreachable: other `/auth/` paths, and patterns
/// that also match forwarded paths, are consulted and draw no warning.
#[test]
fn only_gate_owned_paths_warn_as_never_consulted() {
    for (path, warns) in [
        ("/auth/login/", true),
        ("/auth/login", true),
        ("/login/", true),
        ("/auth/callback/", true),
        ("/logout/", true),
        ("/auth/extra/", false),
        ("/auth/{*rest}", false),
        ("/{page}/", false),
        ("/auth/", false),
    ] {
        let (_, warnings) = load(&format!("[[route]]\npath = \"{path}\"\nroles = [\"Admin\"]\n")).unwrap();
        let never = warnings.iter().any(|w| w.contains("is never consulted"));
        assert_eq!(never, warns, "{path}: {warnings:?}");
    }
}

// ---------------------------------------------------------------------------
// The trie against a naive reference
// ---------------------------------------------------------------------------

/// The specification of matching, written the slow and obvious way: does `p` match `path`,
/// and with which precedence key (segment ranks left to right, then exact end before
/// APPEND_SLASH)? The most specific pattern is the one with the greatest key.
fn reference_key(p: &Pattern, path: &str) -> Option<(Vec<u8>, u8)> {
    let mut segs: Vec<&str> = path[1..].split('/').collect();
    let slash = segs.last() == Some(&"");
    if slash {
        segs.pop();
    }
    let mut ranks = Vec::new();
    for (i, ps) in p.segments().iter().enumerate() {
        let seg = segs.get(i)?;
        match ps {
            pattern::Segment::Exact(t) if **t != **seg => return None,
            pattern::Segment::CatchAll(_) => {
                ranks.push(0);
                return Some((ranks, 2));
            }
            s => ranks.push(s.rank()),
        }
    }
    if segs.len() != p.segments().len() {
        return None;
    }
    match (p.has_trailing_slash(), slash) {
        (true, true) | (false, false) => Some((ranks, 2)),
        (true, false) => Some((ranks, 1)),
        (false, true) => None,
    }
}

mod trie_vs_reference {
    use proptest::prelude::*;

    use super::*;

    fn pattern() -> impl Strategy<Value = String> {
        (proptest::collection::vec(0..3u8, 0..4), any::<bool>(), any::<bool>()).prop_map(|(segs, tail, slash)| {
            let mut s = String::new();
            for (i, k) in segs.iter().enumerate() {
                s.push('/');
                s.push_str(&match k {
                    0 => "a".to_string(),
                    1 => "b".to_string(),
                    _ => format!("{{p{i}}}"),
                });
            }
            if tail {
                s.push_str("/{*t}");
            } else if slash || s.is_empty() {
                s.push('/');
            }
            s
        })
    }

    fn path() -> impl Strategy<Value = String> {
        (proptest::collection::vec(proptest::sample::select(vec!["a", "b", "c"]), 0..5), any::<bool>()).prop_map(
            |(segs, slash)| {
                let mut s = String::new();
                for seg in segs {
                    s.push('/');
                    s.push_str(seg);
                }
                if slash || s.is_empty() {
                    s.push('/');
                }
                s
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn trie_finds_the_most_specific_pattern(patterns in proptest::collection::vec(pattern(), 1..12), paths in proptest::collection::vec(path(), 1..8)) {
            let mut trie = matcher::Trie::default();
            let mut kept: Vec<Pattern> = Vec::new();
            for text in &patterns {
                let p = Pattern::parse(text).expect("generated patterns are valid");
                if trie.insert(&p, kept.len() as u32).is_ok() {
                    kept.push(p);
                }
            }
            for path in &paths {
                let want = kept
                    .iter()
                    .filter_map(|p| reference_key(p, path).map(|k| (k, p.as_str())))
                    .max_by(|a, b| a.0.cmp(&b.0))
                    .map(|(_, p)| p);
                let got = trie.find(path).map(|i| kept[i as usize].as_str());
                prop_assert_eq!(got, want, "path {} patterns {:?}", path, patterns);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Encoded sub-delimiters (issue 15, item 2)
// ---------------------------------------------------------------------------

/// Rules whose literals hold a sub-delim or `:` beside broader rules: every spelling of the
/// literal (encoded or not, any hex case) is decided by the literal's rule, because Django
/// decodes the path before it resolves the view.
#[test]
fn encoded_sub_delims_are_decided_by_the_literal_rule() {
    let text = "[[route]]\npath = \"/api/reports/{id}/\"\nroles = [\"Admin\", \"Office\", \"Operator\"]\n\
                [[route]]\npath = \"/api/reports/q1+q2/\"\nroles = [\"Admin\"]\n\
                [[route]]\npath = \"/ops:tools/\"\nroles = [\"Admin\"]\n\
                [[route]]\npath = \"/{*page}\"\nroles = [\"Admin\", \"Office\", \"Operator\", \"Client\"]\n";
    let p = policy(text);
    // Positive controls: the raw spellings.
    assert_eq!(ask(&p, "Operator", "GET", "/api/reports/q1+q2/"), "deny 403 /api/reports/q1+q2/");
    assert_eq!(ask(&p, "Operator", "GET", "/api/reports/7/"), "allow 200 /api/reports/{id}/");
    assert_eq!(ask(&p, "Operator", "GET", "/ops:tools/"), "redirect 302 /ops:tools/ -> /");
    for path in ["/api/reports/q1%2Bq2/", "/api/reports/q1%2bq2/", "/api/reports/%71%31%2B%71%32/"] {
        assert_eq!(ask(&p, "Operator", "GET", path), "deny 403 /api/reports/q1+q2/", "{path}");
        assert_eq!(ask(&p, "Admin", "GET", path), "allow 200 /api/reports/q1+q2/", "{path}");
    }
    for path in ["/ops%3Atools/", "/ops%3atools/", "/%6Fps%3Atools/"] {
        assert_eq!(ask(&p, "Operator", "GET", path), "redirect 302 /ops:tools/ -> /", "{path}");
    }
    // Every escaped sub-delim, `:` and `@` names the same path as the raw character.
    for c in "!$&'()*+,=:@".chars() {
        let raw = format!("/a{c}b/");
        let encoded = format!("/a%{:02X}b/", c as u32);
        assert_eq!(normalize(&encoded).unwrap().as_str(), raw, "{encoded}");
    }
    assert_eq!(normalize("/api/reports/q1%3Bq2/").map(|_| ()), Err(crate::normalize::NormalizeError::PathParameter));
}

#[test]
fn check_warns_about_literals_that_need_care() {
    let (_, warnings) = load(
        "[[route]]\npath = \"/api/reports/q1+q2/\"\nroles = [\"Admin\"]\n\
         [[route]]\npath = \"/ops:tools/\"\nroles = [\"Admin\"]\n\
         [[route]]\npath = \"/caf%C3%A9/\"\nroles = [\"Admin\"]\n\
         [[route]]\npath = \"/api/plain-x_y.z~/{id}/\"\nroles = [\"Admin\"]\n",
    )
    .unwrap();
    let care: Vec<&String> = warnings.iter().filter(|w| w.contains("requests may spell it encoded")).collect();
    assert_eq!(care.len(), 3, "{warnings:#?}");
    assert!(care[0]
        .starts_with("policy.toml:2:8: route.0.path: rule `ANY /api/reports/q1+q2/`: segment `q1+q2` contains `+`"));
    assert!(care[1].contains("segment `ops:tools` contains `:`"), "{}", care[1]);
    assert!(care[2].contains("segment `caf%C3%A9` contains a percent-escape"), "{}", care[2]);
}
