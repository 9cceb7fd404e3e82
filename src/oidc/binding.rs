//! Login CSRF defence: a login is bound to the browser that started it.
//!
//! `/auth/login/` sets one cookie per login, named after a hash of its
//! `state` (`__Host-prt_login_<id>`, or `prt_login_<id>` without Secure) and
//! holding the `state`; `/auth/callback/` answers only a browser that brings
//! the cookie for the `state` in its URL. A callback link sent by someone
//! else (who signed in at the SSO and did not follow the redirect) therefore
//! ends in a 403 page, and the victim's own session is not touched.
//!
//! One cookie per login keeps parallel logins in several tabs working; at
//! most [`MAX_PENDING`] are kept (the oldest are expired when a new login
//! starts). The cookies are HttpOnly, SameSite=Lax (sent on the SSO's
//! top-level redirect back), live as long as the login state, are removed
//! from what the upstream sees, and cannot be set by it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::cookie::{pairs, CookieSpec};
use crate::session::LOGIN_STATE_TTL;

/// Pending logins a browser may have at once.
pub const MAX_PENDING: usize = 5;

/// Characters of the hashed state in the cookie name (72 bits).
const ID_CHARS: usize = 12;

impl CookieSpec {
    fn login_name(&self, state: &str) -> String {
        let id = URL_SAFE_NO_PAD.encode(Sha256::digest(state.as_bytes()));
        format!("{}{}", self.login_prefix(), &id[..ID_CHARS])
    }

    /// `Set-Cookie` binding a new login's `state` to this browser.
    pub fn login_set(&self, state: &str) -> HeaderValue {
        self.set_cookie(&self.login_name(state), state, LOGIN_STATE_TTL.as_secs())
    }

    /// `Set-Cookie` removing the login cookie for `state` (after its callback).
    pub fn login_expire(&self, state: &str) -> HeaderValue {
        self.set_cookie(&self.login_name(state), "", 0)
    }

    /// The request carries exactly one cookie for `state`, holding `state`.
    pub fn login_bound(&self, headers: &HeaderMap, state: &str) -> bool {
        let name = self.login_name(state);
        let mut values = pairs(headers).filter(|(k, _)| *k == name).map(|(_, v)| v);
        matches!((values.next(), values.next()), (Some(v), None) if v == state)
    }

    /// `Set-Cookie`s expiring the browser's oldest pending login cookies so
    /// that, with the one about to be set, at most [`MAX_PENDING`] remain.
    /// Browsers send older cookies of the same path first.
    pub fn login_excess(&self, headers: &HeaderMap) -> Vec<HeaderValue> {
        let prefix = self.login_prefix();
        let mut names: Vec<&str> = pairs(headers).map(|(k, _)| k).filter(|k| k.starts_with(prefix)).collect();
        names.dedup();
        let excess = (names.len() + 1).saturating_sub(MAX_PENDING);
        names.into_iter().take(excess).map(|n| self.set_cookie(n, "", 0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::COOKIE;

    fn spec(secure: bool) -> CookieSpec {
        CookieSpec { name: if secure { "__Host-prt_session" } else { "prt_session" }, secure, max_age: 60 }
    }

    fn cookie_of(set: &HeaderValue) -> String {
        set.to_str().unwrap().split(';').next().unwrap().to_string()
    }

    #[test]
    fn a_login_is_bound_only_to_the_browser_holding_its_cookie() {
        for secure in [false, true] {
            let s = spec(secure);
            let set = s.login_set("state-A");
            let text = set.to_str().unwrap();
            assert!(text.starts_with(s.login_prefix()), "{text}");
            assert!(text.contains("; Path=/; HttpOnly") && text.contains("SameSite=Lax"), "{text}");
            assert_eq!(text.contains("; Secure"), secure, "{text}");
            let mine = cookie_of(&set);
            let other = cookie_of(&s.login_set("state-B"));
            let rows = [
                (vec![mine.clone()], true),
                (vec![format!("x=1; {mine}; prt_session=abc")], true),
                (vec![other.clone(), mine.clone()], true),
                (vec![], false),
                (vec![other.clone()], false),
                // The right name with another value (a planted cookie).
                (vec![format!("{}=state-B", mine.split('=').next().unwrap())], false),
                // Two copies of the name: ambiguous, refused.
                (vec![mine.clone(), mine.clone()], false),
            ];
            for (cookies, bound) in rows {
                let mut h = HeaderMap::new();
                for c in &cookies {
                    h.append(COOKIE, HeaderValue::from_str(c).unwrap());
                }
                assert_eq!(s.login_bound(&h, "state-A"), bound, "{cookies:?}");
            }
            assert!(s.is_gate_cookie(mine.split('=').next().unwrap()));
            assert!(s.is_gate_cookie(s.name));
            assert!(!s.is_gate_cookie("csrftoken"));
        }
    }

    #[test]
    fn pending_login_cookies_are_capped_oldest_first() {
        let s = spec(false);
        let names: Vec<String> = (0..7).map(|i| cookie_of(&s.login_set(&format!("st{i}")))).collect();
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&format!("sessionid=x; {}", names.join("; "))).unwrap());
        let expired: Vec<String> = s.login_excess(&h).iter().map(|v| v.to_str().unwrap().to_string()).collect();
        // 7 pending + the new one, capped at MAX_PENDING: the 3 oldest go.
        assert_eq!(expired.len(), 7 + 1 - MAX_PENDING);
        for (e, n) in expired.iter().zip(&names) {
            let name = n.split('=').next().unwrap();
            assert!(e.starts_with(&format!("{name}=;")) && e.contains("Max-Age=0"), "{e}");
        }
        let mut few = HeaderMap::new();
        few.insert(COOKIE, HeaderValue::from_str(&names[..MAX_PENDING - 1].join("; ")).unwrap());
        assert!(s.login_excess(&few).is_empty());
    }
}
