use super::*;
use sha2::{Digest as _, Sha256};

fn creds(token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        session_token: token.map(|t| Secret::new(t.into())),
        expires_at: None,
    }
}

#[test]
fn amz_time_formats_utc() {
    assert_eq!(AmzTime::from_unix(0).as_str(), "19700101T000000Z");
    // 2025-01-02T03:04:05Z
    assert_eq!(AmzTime::from_unix(1_735_787_045).as_str(), "20250102T030405Z");
    // Leap day and end of a leap year.
    assert_eq!(AmzTime::from_unix(951_782_400).as_str(), "20000229T000000Z");
    assert_eq!(AmzTime::from_unix(1_735_689_599).as_str(), "20241231T235959Z");
    assert_eq!(AmzTime::from_unix(1_735_689_599).date(), "20241231");
}

#[test]
fn amz_time_agrees_with_humantime_over_many_days() {
    let mut t = 0u64;
    while t < 4_102_444_800 {
        let ours = AmzTime::from_unix(t);
        let theirs = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string();
        let theirs: String = theirs.chars().filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 'Z').collect();
        assert_eq!(ours.as_str(), theirs, "at {t}");
        t += 86_400 * 13 + 3_607;
    }
}

#[test]
fn amz_date_parses_back() {
    for t in [0u64, 951_782_400, 1_735_689_599, 1_735_787_045, 4_102_444_799] {
        let s = AmzTime::from_unix(t);
        assert_eq!(parse_amz_date(s.as_str()), Some(UNIX_EPOCH + Duration::from_secs(t)));
    }
    for bad in ["20250231T000000Z", "20250102T240000Z", "20250102 030405Z", "2025010T030405Z", "20250102T030405"] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}

#[test]
fn encoding_matches_botocore_safe_set() {
    let mut s = String::new();
    encode_into(&mut s, "bols/a b+c~é_-.pdf", true);
    assert_eq!(s, "bols/a%20b%2Bc~%C3%A9_-.pdf");
    s.clear();
    encode_into(&mut s, "a/b", false);
    assert_eq!(s, "a%2Fb");
}

#[test]
fn targets_follow_botocore_addressing() {
    let t = Target::new("prt-media", "us-east-2", None, false);
    assert_eq!((t.host.as_str(), t.path_prefix.as_str()), ("prt-media.s3.us-east-2.amazonaws.com", ""));
    let t = Target::new("prt-media", "us-east-2", None, true);
    assert_eq!((t.host.as_str(), t.path_prefix.as_str()), ("s3.us-east-2.amazonaws.com", "/prt-media"));
    let ep = url::Url::parse("http://127.0.0.1:9000").unwrap();
    let t = Target::new("prt-media", "us-east-2", Some(&ep), false);
    assert_eq!((t.host.as_str(), t.path_prefix.as_str()), ("127.0.0.1:9000", "/prt-media"));
    let ep = url::Url::parse("https://minio.internal").unwrap();
    let t = Target::new("prt-media", "us-east-2", Some(&ep), false);
    assert_eq!(t.host, "prt-media.minio.internal");
    let t = Target::new("Prt.Media", "us-east-2", None, false);
    assert_eq!(t.path_prefix, "/Prt.Media");
}

/// AWS's published example (S3 docs, "Authenticating Requests: Using
/// Query Parameters"): GET test.txt from examplebucket, 2013-05-24, 86400 s.
#[test]
fn aws_documented_example_signature() {
    let creds = Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        session_token: None,
        expires_at: None,
    };
    let target =
        Target { scheme: "https".into(), host: "examplebucket.s3.amazonaws.com".into(), path_prefix: String::new() };
    let p = Presigner::new(creds, "us-east-1", target);
    let now = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
    let url = p.presign(Verb::Get, "test.txt", Duration::from_secs(86_400), now, &[]);
    assert!(url.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"), "{url}");
}

/// The signature of `url` recomputed the plain way: the canonical request and
/// the string to sign as whole strings, `aws-sigv4`'s signing key and HMAC.
fn reference_signature(url: &str, verb: &str, secret: &str, region: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let (_, rest) = base.split_once("://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.starts_with("X-Amz-Signature=")).collect();
    pairs.sort_by_key(|p| p.split_once('=').unwrap().0);
    let field = |name: &str| pairs.iter().find_map(|p| p.strip_prefix(name)).unwrap().to_owned();
    let stamp = field("X-Amz-Date=");
    let canonical = format!("{verb}\n{path}\n{}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD", pairs.join("&"));
    let hash: String = Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let sts = format!("AWS4-HMAC-SHA256\n{stamp}\n{}/{region}/s3/aws4_request\n{hash}", &stamp[..8]);
    let at = parse_amz_date(&stamp).unwrap();
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, at, region, "s3");
    aws_sigv4::sign::v4::calculate_signature(key, sts.as_bytes())
}

fn signature(url: &str) -> &str {
    url.rsplit_once("&X-Amz-Signature=").unwrap().1
}

#[test]
fn signing_state_is_cached_per_second_and_day_and_rolls_over() {
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let new = |token| Presigner::new(creds(token), "us-east-2", Target::new("b-1", "us-east-2", None, false));
    let t0 = 1_735_787_045u64; // 2025-01-02T03:04:05Z
    let disposition = [("response-content-disposition", "inline; filename=\"a b.pdf\"")];
    for token in [None, Some("FQoG/tok+en=")] {
        let p = new(token);
        // The same second twice, the next seconds, one back, midnight, the next day,
        // the same day again: each URL as a fresh presigner signs it, and as the plain
        // computation signs it.
        let seconds = [t0, t0, t0 + 1, t0 + 2, t0 + 1, t0 + 75_834, t0 + 75_835, t0 + 86_400, t0 + 3];
        for (i, &secs) in seconds.iter().enumerate() {
            let at = UNIX_EPOCH + Duration::from_secs(secs);
            let params: &[Param<'_>] = if i % 2 == 0 { &[] } else { &disposition };
            for verb in [Verb::Get, Verb::Head] {
                let url = p.presign(verb, "bols/é x.pdf", Duration::from_secs(60), at, params);
                assert_eq!(p.state.load().secs, secs);
                assert_eq!(p.state.load().day, secs / 86_400);
                assert!(url.contains(&format!("X-Amz-Date={}&", AmzTime::from_unix(secs).as_str())), "{url}");
                assert_eq!(new(token).presign(verb, "bols/é x.pdf", Duration::from_secs(60), at, params), url);
                assert_eq!(signature(&url), reference_signature(&url, verb.as_str(), secret, "us-east-2"), "{url}");
            }
        }
    }
}

#[test]
fn the_url_is_allocated_once() {
    let token = "FQoG".repeat(300);
    for (token, key, params) in [
        (None, "k", &[][..]),
        (Some(token.as_str()), "bols/é ✓ x.pdf", &[("response-content-disposition", "attachment; filename*=é")][..]),
    ] {
        let p = Presigner::new(creds(token), "eu-west-1", Target::new("Prt.Media", "eu-west-1", None, false));
        let at = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        let url = p.presign(Verb::Get, key, Duration::from_secs(u64::MAX / 2), at, params);
        let params_len: usize = params.iter().map(|(n, v)| n.len() + 2 + 3 * v.len()).sum();
        assert_eq!(url.capacity(), p.fixed_len + 3 * key.len() + params_len, "regrown: {url}");
    }
}

#[test]
fn debug_never_prints_secrets() {
    let c = creds(Some("canary-session-token"));
    let p = Presigner::new(c.clone(), "us-east-2", Target::new("b-1", "us-east-2", None, false));
    let shown = format!("{c:?} {p:?}");
    assert!(!shown.contains("EXAMPLEKEY") && !shown.contains("canary-session-token"), "{shown}");
}

#[test]
fn credentials_from_vars() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    };
    assert_eq!(
        Credentials::from_vars(vars(&[("AWS_ACCESS_KEY_ID", "A")]), false).err(),
        Some(CredentialsError::Missing)
    );
    let c = Credentials::from_vars(
        vars(&[
            ("AWS_ACCESS_KEY_ID", "A"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_CREDENTIAL_EXPIRATION", "2030-01-01T00:00:00Z"),
        ]),
        false,
    )
    .unwrap();
    let now = humantime::parse_rfc3339("2029-12-31T20:00:00Z").unwrap();
    assert!(c.lifetime_warning(Duration::from_secs(3600), now).is_none());
    assert!(c.lifetime_warning(Duration::from_secs(86_400), now).is_some());
    let c = Credentials::from_vars(vars(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "s")]), false).unwrap();
    assert!(c.lifetime_warning(Duration::from_secs(604_800), now).is_none(), "long-term keys never warn");
    let c = Credentials::from_vars(
        vars(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_SESSION_TOKEN", "t")]),
        false,
    )
    .unwrap();
    assert!(c.lifetime_warning(Duration::from_secs(86_400), now).is_some());
    assert!(c.lifetime_warning(Duration::from_secs(1800), now).is_none());
}

#[test]
fn gate_credentials_come_from_its_own_names_first() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    };
    const BOTH: &[(&str, &str)] = &[
        ("PRT_GATE_MEDIA__ACCESS_KEY_ID", "GATE"),
        ("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", "gate-secret"),
        ("AWS_ACCESS_KEY_ID", "DJANGO"),
        ("AWS_SECRET_ACCESS_KEY", "django-secret"),
        ("AWS_SESSION_TOKEN", "django-token"),
    ];
    for own_only in [false, true] {
        let c = Credentials::from_vars(vars(BOTH), own_only).unwrap();
        assert_eq!(c.access_key_id, "GATE");
        assert_eq!(c.secret_access_key.expose(), "gate-secret");
        assert!(c.session_token.is_none(), "the other set's token is never mixed in");
    }
    // Only the standard names: the fallback of `serve`, refused by `run`.
    const AWS_ONLY: &[(&str, &str)] = &[("AWS_ACCESS_KEY_ID", "DJANGO"), ("AWS_SECRET_ACCESS_KEY", "django-secret")];
    assert_eq!(Credentials::from_vars(vars(AWS_ONLY), false).unwrap().access_key_id, "DJANGO");
    assert_eq!(Credentials::from_vars(vars(AWS_ONLY), true).err(), Some(CredentialsError::MissingOwn));
    // Half of the gate's own set is an error, never a silent fallback.
    const HALF: &[(&str, &str)] = &[
        ("PRT_GATE_MEDIA__ACCESS_KEY_ID", "GATE"),
        ("AWS_ACCESS_KEY_ID", "DJANGO"),
        ("AWS_SECRET_ACCESS_KEY", "django-secret"),
    ];
    assert_eq!(Credentials::from_vars(vars(HALF), false).err(), Some(CredentialsError::Missing));
    const EXP: &[(&str, &str)] = &[
        ("PRT_GATE_MEDIA__ACCESS_KEY_ID", "GATE"),
        ("PRT_GATE_MEDIA__SECRET_ACCESS_KEY", "gate-secret"),
        ("PRT_GATE_MEDIA__CREDENTIAL_EXPIRATION", "soon"),
    ];
    assert_eq!(
        Credentials::from_vars(vars(EXP), false).err(),
        Some(CredentialsError::BadExpiration("PRT_GATE_MEDIA__CREDENTIAL_EXPIRATION"))
    );
}
