//! AWS Signature Version 4 query presigning for S3 `GET`/`HEAD` (design §7).
//!
//! The URL is built exactly as botocore's `generate_presigned_url` builds it
//! (`tests/it/media.rs` compares them byte for byte): the object key is
//! percent-encoded except for unreserved characters and `/`, operation
//! parameters (`response-content-disposition`) come first, then the
//! `X-Amz-*` parameters in botocore's order, then `X-Amz-Signature`.
//!
//! The signing key is `aws-sigv4`'s (`generate_signing_key`); the rest is
//! assembled here because a presign happens on every media grant:
//!
//! * the URL is written once, into one pre-sized `String`; the canonical
//!   request is never built: its pieces (slices of that URL) are fed to
//!   SHA-256 as they are;
//! * the signing key depends only on the secret, the UTC day, the region and
//!   the service: derived once a day (four HMACs saved per URL);
//! * the HMAC keyed with it, with the string-to-sign's first part
//!   (`AWS4-HMAC-SHA256`, the `X-Amz-Date`, the scope) already absorbed, is
//!   kept for the current second: a signature costs the canonical request's
//!   hash plus two SHA-256 blocks for the HMAC, instead of six.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, Guard};
use aws_sigv4::sign::v4::generate_signing_key;
use ring::{digest, hmac};

use crate::secret::Secret;

/// The gate's S3 credentials: from its own `PRT_GATE_MEDIA__*` variables, or
/// (two-service shape only) the standard `AWS_*` ones. Under `prt-gate run`
/// the `AWS_*` variables belong to Django, which writes PDFs with them
/// (`deploy/ENVIRONMENT.md`), so the gate requires its own names there.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
    /// `AWS_CREDENTIAL_EXPIRATION` (RFC 3339), when the environment says when
    /// temporary credentials end.
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// The four variables of one credential set.
#[derive(Debug, Clone, Copy)]
pub struct CredentialVars {
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
    pub session_token: &'static str,
    pub expiration: &'static str,
}

/// The gate's own names (never inherited by the child of `prt-gate run`).
pub const GATE_VARS: CredentialVars = CredentialVars {
    access_key_id: "PRT_GATE_MEDIA__ACCESS_KEY_ID",
    secret_access_key: "PRT_GATE_MEDIA__SECRET_ACCESS_KEY",
    session_token: "PRT_GATE_MEDIA__SESSION_TOKEN",
    expiration: "PRT_GATE_MEDIA__CREDENTIAL_EXPIRATION",
};

/// The standard names: the gate's fallback when it runs alone.
pub const AWS_VARS: CredentialVars = CredentialVars {
    access_key_id: "AWS_ACCESS_KEY_ID",
    secret_access_key: "AWS_SECRET_ACCESS_KEY",
    session_token: "AWS_SESSION_TOKEN",
    expiration: "AWS_CREDENTIAL_EXPIRATION",
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "PRT_GATE_MEDIA__ACCESS_KEY_ID and PRT_GATE_MEDIA__SECRET_ACCESS_KEY (or, for `prt-gate serve` only, \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) must both be set when media.bucket is configured"
    )]
    Missing,
    #[error(
        "`prt-gate run` needs the gate's own S3 credentials in PRT_GATE_MEDIA__ACCESS_KEY_ID and \
         PRT_GATE_MEDIA__SECRET_ACCESS_KEY when media.bucket is configured: AWS_* variables are the upstream's"
    )]
    MissingOwn,
    #[error("{0} is not an RFC 3339 time")]
    BadExpiration(&'static str),
    #[error("AWS credentials must be printable ASCII")]
    NotAscii,
}

impl Credentials {
    /// Reads the gate's credential set through `var` (the process environment
    /// in production, a map in tests): [`GATE_VARS`] when either of its key
    /// variables is set (then both must be), else [`AWS_VARS`] unless
    /// `own_only` (`prt-gate run`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, own_only: bool) -> Result<Credentials, CredentialsError> {
        let nonempty = |k: &str| var(k).filter(|v| !v.is_empty());
        let own = nonempty(GATE_VARS.access_key_id).is_some() || nonempty(GATE_VARS.secret_access_key).is_some();
        let names = match (own, own_only) {
            (true, _) => GATE_VARS,
            (false, false) => AWS_VARS,
            (false, true) => return Err(CredentialsError::MissingOwn),
        };
        let (Some(id), Some(secret)) = (nonempty(names.access_key_id), nonempty(names.secret_access_key)) else {
            return Err(if own_only { CredentialsError::MissingOwn } else { CredentialsError::Missing });
        };
        let token = nonempty(names.session_token);
        let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&id) || !printable(&secret) || token.as_deref().is_some_and(|t| !printable(t)) {
            return Err(CredentialsError::NotAscii);
        }
        let expires_at = match nonempty(names.expiration) {
            Some(t) => {
                Some(humantime::parse_rfc3339_weak(&t).map_err(|_| CredentialsError::BadExpiration(names.expiration))?)
            }
            None => None,
        };
        Ok(Credentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
            expires_at,
        })
    }

    /// From the process environment; `own_only` under `prt-gate run`.
    pub fn from_env(own_only: bool) -> Result<Credentials, CredentialsError> {
        Credentials::from_vars(|k| std::env::var(k).ok(), own_only)
    }

    /// A start-up warning when URLs signed now could outlive the credentials
    /// that signed them (S3 refuses such URLs once the session ends).
    pub fn lifetime_warning(&self, expires: Duration, now: SystemTime) -> Option<String> {
        self.session_token.as_ref()?;
        match self.expires_at {
            Some(end) if now + expires > end => Some(format!(
                "temporary AWS credentials end at {} but media.expires is {}: presigned URLs stop working when the \
                 credentials do",
                humantime::format_rfc3339_seconds(end),
                humantime::format_duration(expires)
            )),
            Some(_) => None,
            // STS sessions default to one hour; without a stated end, assume it.
            None if expires > Duration::from_secs(3600) => Some(format!(
                "temporary AWS credentials (a session token) usually live 1h-12h but media.expires is {}: \
                 presigned URLs stop working when the credentials do (set the credential expiration to check)",
                humantime::format_duration(expires)
            )),
            None => None,
        }
    }
}

/// Where the bucket lives and how URLs address it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https` or `http`.
    pub scheme: String,
    /// The `Host` that is signed: no default port, bucket included for
    /// virtual-hosted style.
    pub host: String,
    /// Path before the key: empty (virtual-hosted) or `/bucket` (path style),
    /// after any path of a custom endpoint.
    pub path_prefix: String,
}

impl Target {
    /// Mirrors botocore: AWS's regional endpoint unless `endpoint` is given;
    /// virtual-hosted style unless `path_style` is set, the bucket name is not
    /// a DNS label, or the endpoint host is an IP address.
    pub fn new(bucket: &str, region: &str, endpoint: Option<&url::Url>, path_style: bool) -> Target {
        let (scheme, host, base_path, host_is_ip) = match endpoint {
            Some(u) => {
                let host = match u.port() {
                    Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
                    None => u.host_str().unwrap_or_default().to_owned(),
                };
                let is_ip = !matches!(u.host(), Some(url::Host::Domain(_)));
                (u.scheme().to_owned(), host, u.path().trim_end_matches('/').to_owned(), is_ip)
            }
            // botocore keeps the global endpoint for us-east-1.
            None if region == "us-east-1" => ("https".to_owned(), "s3.amazonaws.com".to_owned(), String::new(), false),
            None => ("https".to_owned(), format!("s3.{region}.amazonaws.com"), String::new(), false),
        };
        if path_style || host_is_ip || !dns_compatible(bucket) {
            let path_prefix = format!("{base_path}/{}", encode_path(bucket));
            Target { scheme, host, path_prefix }
        } else {
            Target { scheme, host: format!("{bucket}.{host}"), path_prefix: base_path }
        }
    }
}

/// A bucket name usable as a DNS label (botocore's check, without dots: a
/// dotted bucket breaks the TLS wildcard certificate, so it goes path style).
fn dns_compatible(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Head => "HEAD",
        }
    }
}

/// Signs S3 URLs for one bucket with one set of credentials.
pub struct Presigner {
    creds: Credentials,
    region: String,
    target: Target,
    /// `AKID%2F` … the encoded access key id, prefix of `X-Amz-Credential`.
    credential_prefix: String,
    /// `%2F<region>%2Fs3%2Faws4_request&X-Amz-Date=`: the rest of the credential scope.
    scope_suffix: String,
    /// Encoded `X-Amz-Security-Token` value, if any.
    token: Option<String>,
    /// The end of every canonical request: `\nhost:<host>\n\nhost\nUNSIGNED-PAYLOAD`.
    canonical_tail: String,
    /// Length of a URL for an empty key without parameters (the longest expiry).
    fixed_len: usize,
    /// The signing state of the last second signed for.
    state: ArcSwap<SigningState>,
}

/// What signing at one Unix second needs, derived once per second (the key
/// once per day).
struct SigningState {
    /// Unix seconds (`u64::MAX`: nothing derived yet).
    secs: u64,
    /// Days since the epoch of the signing key.
    day: u64,
    /// `YYYYMMDDTHHMMSSZ` of `secs`.
    stamp: AmzTime,
    /// HMAC-SHA256 keyed with the day's signing key (`ring`: its SHA-256 uses the
    /// CPU's vector and SHA instructions where it has them).
    keyed: hmac::Key,
    /// `keyed` after `AWS4-HMAC-SHA256\n<stamp>\n<date>/<region>/s3/aws4_request\n`: what
    /// remains to sign is the canonical request's hash.
    prefixed: hmac::Context,
}

/// HMAC-SHA256 keyed with a 32-byte key.
fn keyed_hmac(key: &[u8; 32]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, key)
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigner").field("region", &self.region).field("target", &self.target).finish()
    }
}

/// An optional operation parameter signed into the URL.
pub type Param<'a> = (&'static str, &'a str);

impl Presigner {
    pub fn new(creds: Credentials, region: &str, target: Target) -> Presigner {
        let mut credential_prefix = String::new();
        encode_into(&mut credential_prefix, &creds.access_key_id, false);
        credential_prefix.push_str("%2F");
        let mut scope_suffix = String::from("%2F");
        encode_into(&mut scope_suffix, region, false);
        scope_suffix.push_str("%2Fs3%2Faws4_request&X-Amz-Date=");
        let token = creds.session_token.as_ref().map(|t| {
            let mut s = String::new();
            encode_into(&mut s, t.expose(), false);
            s
        });
        let canonical_tail = format!("\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD", target.host);
        let fixed_len = format!("{}://{}{}/?", target.scheme, target.host, target.path_prefix).len()
            + "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=".len()
            + credential_prefix.len()
            + "YYYYMMDD".len()
            + scope_suffix.len()
            + "YYYYMMDDTHHMMSSZ&X-Amz-Expires=".len()
            + u64::MAX.to_string().len()
            + "&X-Amz-SignedHeaders=host".len()
            + token.as_ref().map_or(0, |t| "&X-Amz-Security-Token=".len() + t.len())
            + "&X-Amz-Signature=".len()
            + 64;
        let unset = keyed_hmac(&[0; 32]);
        let state = SigningState {
            secs: u64::MAX,
            day: u64::MAX,
            stamp: AmzTime::from_unix(0),
            prefixed: hmac::Context::with_key(&unset),
            keyed: unset,
        };
        Presigner {
            creds,
            region: region.to_owned(),
            target,
            credential_prefix,
            scope_suffix,
            token,
            canonical_tail,
            fixed_len,
            state: ArcSwap::from_pointee(state),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The signing state for `secs` (Unix seconds of `now`): the cached one,
    /// else derived from the cached key of the same day, else from scratch.
    fn state(&self, secs: u64, now: SystemTime) -> Guard<Arc<SigningState>> {
        let cached = self.state.load();
        if cached.secs == secs {
            return cached;
        }
        let day = secs / 86_400;
        let keyed = if cached.day == day {
            cached.keyed.clone()
        } else {
            let derived = generate_signing_key(self.creds.secret_access_key.expose(), now, &self.region, "s3");
            let mut key = [0u8; 32];
            key.copy_from_slice(derived.as_ref());
            keyed_hmac(&key)
        };
        let stamp = AmzTime::from_unix(secs);
        let mut prefixed = hmac::Context::with_key(&keyed);
        prefixed.update(b"AWS4-HMAC-SHA256\n");
        prefixed.update(stamp.as_str().as_bytes());
        prefixed.update(b"\n");
        prefixed.update(stamp.date().as_bytes());
        prefixed.update(b"/");
        prefixed.update(self.region.as_bytes());
        prefixed.update(b"/s3/aws4_request\n");
        let state = Arc::new(SigningState { secs, day, stamp, keyed, prefixed });
        self.state.store(state.clone());
        Guard::from_inner(state)
    }

    /// A presigned URL for `verb` on `key` (the S3 object key, unencoded),
    /// valid for `expires` from `now`, with `params` (names sorted, lower
    /// case, so they sort after every `X-Amz-*`).
    pub fn presign(&self, verb: Verb, key: &str, expires: Duration, now: SystemTime, params: &[Param<'_>]) -> String {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let state = self.state(secs, now);
        let stamp = state.stamp.as_str();

        // Percent-encoding at most triples a byte: one allocation, never regrown.
        let params_len: usize = params.iter().map(|(n, v)| n.len() + 2 + 3 * v.len()).sum();
        let mut url = String::with_capacity(self.fixed_len + 3 * key.len() + params_len);
        url.push_str(&self.target.scheme);
        url.push_str("://");
        url.push_str(&self.target.host);
        let path_at = url.len();
        url.push_str(&self.target.path_prefix);
        url.push('/');
        encode_into(&mut url, key, true);
        let path_end = url.len();
        url.push('?');

        // Operation parameters, then the auth parameters in botocore's order.
        let ops_at = url.len();
        for (name, value) in params {
            url.push_str(name);
            url.push('=');
            encode_into(&mut url, value, false);
            url.push('&');
        }
        let auth_at = url.len();
        url.push_str("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
        url.push_str(&self.credential_prefix);
        url.push_str(state.stamp.date());
        url.push_str(&self.scope_suffix);
        url.push_str(stamp);
        url.push_str("&X-Amz-Expires=");
        let mut digits = [0u8; 20];
        let secs = crate::jsonw::decimal(expires.as_secs(), &mut digits);
        url.push_str(std::str::from_utf8(secs).unwrap_or("0"));
        let signed_headers_at = url.len();
        url.push_str("&X-Amz-SignedHeaders=host");
        let token_at = url.len();
        if let Some(token) = &self.token {
            url.push_str("&X-Amz-Security-Token=");
            url.push_str(token);
        }
        let query_end = url.len();

        // The canonical request, hashed piece by piece. Its query is sorted by
        // name: every X-Amz-* sorts before the lower-case operation parameters;
        // among them only the token moves (`Security-Token` < `SignedHeaders`).
        let mut canonical = digest::Context::new(&digest::SHA256);
        canonical.update(verb.as_str().as_bytes());
        canonical.update(b"\n");
        canonical.update(&url.as_bytes()[path_at..path_end]);
        canonical.update(b"\n");
        canonical.update(&url.as_bytes()[auth_at..signed_headers_at]);
        canonical.update(&url.as_bytes()[token_at..query_end]);
        canonical.update(&url.as_bytes()[signed_headers_at..token_at]);
        if auth_at > ops_at {
            canonical.update(b"&");
            canonical.update(&url.as_bytes()[ops_at..auth_at - 1]);
        }
        canonical.update(self.canonical_tail.as_bytes());

        // The string to sign's last line: the canonical request's hash, in hex.
        let mut mac = state.prefixed.clone();
        mac.update(&hex_lower(&bytes32(canonical.finish().as_ref())));
        let signature = hex_lower(&bytes32(mac.sign().as_ref()));
        url.push_str("&X-Amz-Signature=");
        url.push_str(std::str::from_utf8(&signature).unwrap_or_default());
        url
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (UTC), without a calendar crate.
#[derive(Debug, Clone, Copy)]
pub struct AmzTime([u8; 16]);

impl AmzTime {
    pub fn from_unix(secs: u64) -> AmzTime {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let mut out = *b"00000000T000000Z";
        put_digits(&mut out[0..4], u64::from(y));
        put_digits(&mut out[4..6], u64::from(m));
        put_digits(&mut out[6..8], u64::from(d));
        put_digits(&mut out[9..11], rem / 3600);
        put_digits(&mut out[11..13], rem % 3600 / 60);
        put_digits(&mut out[13..15], rem % 60);
        AmzTime(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, `T` and `Z` are ever written.
        std::str::from_utf8(&self.0).unwrap_or("19700101T000000Z")
    }

    /// `YYYYMMDD`.
    pub fn date(&self) -> &str {
        &self.as_str()[..8]
    }
}

/// Parses `YYYYMMDDTHHMMSSZ` (an `X-Amz-Date`) back to a time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        b[r].iter().try_fold(0u64, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0')))
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60
    {
        return None;
    }
    let days = days_from_civil(y as i64, m as i64, d as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + hh * 3600 + mm * 60 + ss;
    // Reject dates like 20250231 that do not round-trip.
    (AmzTime::from_unix(secs).as_str() == s).then(|| UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn put_digits(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Howard Hinnant's `civil_from_days` for days since 1970-01-01 (years up to 9999).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y.clamp(0, 9999) as u32, m as u32, d as u32)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Percent-encodes like botocore's `percent_encode` (`safe='-_.~'`, plus `/`
/// when `keep_slash`): every byte outside the unreserved set, upper-case hex.
pub fn encode_into(out: &mut String, s: &str, keep_slash: bool) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[usize::from(b >> 4)] as char);
            out.push(HEX_UPPER[usize::from(b & 15)] as char);
        }
    }
}

fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s, true);
    out
}

/// Lower-case hex of a SHA-256 or HMAC-SHA256 output.
/// A SHA-256 digest or HMAC tag (32 bytes) as an array.
fn bytes32(d: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(d) {
        *o = *b;
    }
    out
}

fn hex_lower(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, &b) in bytes.iter().enumerate() {
        out[2 * i] = HEX_LOWER[usize::from(b >> 4)];
        out[2 * i + 1] = HEX_LOWER[usize::from(b & 15)];
    }
    out
}

#[cfg(test)]
mod tests;
