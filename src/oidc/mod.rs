//! OIDC relying party against the company SSO (barge2rail-auth, design §4).
//!
//! * [`http`] — the client to the SSO (HTTPS, or HTTP to loopback only);
//! * [`jwt`] — RS256-pinned verification of ID and Bearer tokens with a JWKS cache;
//! * [`next`] — `next` parameter validation (open-redirect defence);
//! * [`flow`] — `/auth/login/`, `/auth/callback/`, `/auth/logout/`;
//! * [`binding`] — the per-login cookie binding a callback to its browser.

pub mod binding;
pub mod flow;
pub mod http;
pub mod jwt;
pub mod next;
