//! The one list of routes the gate answers itself, before the policy is consulted: login,
//! callback and logout (docs/routes.md, "Gate-owned routes"). The pipeline
//! (`proxy::owned`), the policy's "never consulted" warning, `check`'s route table and
//! `explain` all read this list, and the login redirect's `Location` is built here for the
//! pipeline's answer and for `explain` alike.
//!
//! Only these exact paths are gate-owned (with or without the trailing slash: Django's
//! APPEND_SLASH would have redirected; the gate answers both). Any other path under
//! `/auth/` goes through the policy like every other path. `/media/*` is answered by the
//! gate too, but only after the policy has allowed the caller, so it is not listed here.
//!
//! Pure: no I/O; `policy`, `proxy` and `cli` depend on it, it depends on nothing.

/// Which gate-owned route a normalized path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    Login,
    Callback,
    Logout,
}

/// Every gate-owned path, in its canonical form (trailing slash), with its route.
pub const ROUTES: &[(&str, Owned)] = &[
    ("/auth/login/", Owned::Login),
    ("/login/", Owned::Login),
    ("/auth/callback/", Owned::Callback),
    ("/auth/logout/", Owned::Logout),
    ("/logout/", Owned::Logout),
];

impl Owned {
    /// The route a normalized path names, with or without its trailing slash.
    pub fn of(path: &str) -> Option<Owned> {
        let bare = path.strip_suffix('/').unwrap_or(path);
        ROUTES.iter().find(|(p, _)| p.strip_suffix('/') == Some(bare)).map(|&(_, o)| o)
    }

    /// The rule name access lines, metrics and `explain` give the route.
    pub fn rule(self) -> &'static str {
        match self {
            Owned::Login => "gate:login",
            Owned::Callback => "gate:callback",
            Owned::Logout => "gate:logout",
        }
    }

    /// What the gate does there, in a few words (`explain`).
    pub fn what(self) -> &'static str {
        match self {
            Owned::Login => "sign-in: 302 to the SSO",
            Owned::Callback => "the SSO's callback: new session, 302 to `next`",
            Owned::Logout => "sign-out: confirmation page; a same-origin POST ends the session",
        }
    }
}

/// The gate-owned paths as `check` lists them: `/auth/login/, /login/, …`.
pub fn listing() -> String {
    ROUTES.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
}

/// `Location` of the redirect to the login: `next` (the normalized path and query of the
/// request) form-encoded, behind the gate's public origin when one is configured.
pub fn login_location(public_origin: Option<&str>, next: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("{}/auth/login/?next={next}", public_origin.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::{login_location, Owned};

    #[test]
    fn owned_paths() {
        let rows = [
            ("/auth/login/", Some(Owned::Login)),
            ("/auth/login", Some(Owned::Login)),
            ("/login/", Some(Owned::Login)),
            ("/login", Some(Owned::Login)),
            ("/auth/callback/", Some(Owned::Callback)),
            ("/auth/callback", Some(Owned::Callback)),
            ("/auth/logout/", Some(Owned::Logout)),
            ("/logout/", Some(Owned::Logout)),
            ("/auth/loginx/", None),
            ("/auth/", None),
            ("/auth/extra/", None),
            ("/", None),
            ("", None),
            ("/api/auth/me/", None),
            ("/auth/login/x", None),
            ("/auth/login//", None),
        ];
        for (p, o) in rows {
            assert_eq!(Owned::of(p), o, "{p}");
        }
    }

    #[test]
    fn login_location_form_encodes_next() {
        assert_eq!(login_location(None, "/bol/new/"), "/auth/login/?next=%2Fbol%2Fnew%2F");
        assert_eq!(
            login_location(Some("https://prt.example.com"), "/my-file_v2.pdf?a=b c"),
            "https://prt.example.com/auth/login/?next=%2Fmy-file_v2.pdf%3Fa%3Db+c"
        );
    }
}
