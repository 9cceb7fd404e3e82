use super::*;

fn map(cookies: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for c in cookies {
        h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
    }
    h
}

fn spec() -> CookieSpec {
    CookieSpec { name: "prt_session", secure: false, max_age: 60 }
}

const ID: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const ID2: &str = "QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";

#[test]
fn the_parser_reads_every_pair_in_order() {
    type Pairs = &'static [(&'static str, &'static str)];
    let rows: &[(&[&str], Pairs)] = &[
        (&["a=1"], &[("a", "1")]),
        (&["a=1; b=2", "c=3"], &[("a", "1"), ("b", "2"), ("c", "3")]),
        // Spaces and tabs around names, values and separators.
        (&["  a = 1 ;\tb=2\t;c =3"], &[("a", "1"), ("b", "2"), ("c", "3")]),
        // Empty pairs and bare words are no cookies.
        (&[";; a=1;;b=2;"], &[("a", "1"), ("b", "2")]),
        (&["flag; a=1"], &[("a", "1")]),
        (&[""], &[]),
        // Empty name or value; a second `=` belongs to the value.
        (&["=v; a=; b=x=y"], &[("", "v"), ("a", ""), ("b", "x=y")]),
        // Quoted values are kept verbatim, quotes and all.
        (&["a=\"q 1\"; b=\"\""], &[("a", "\"q 1\""), ("b", "\"\"")]),
        // Duplicate names: each one, in order.
        (&["a=1; a=2", "a=3"], &[("a", "1"), ("a", "2"), ("a", "3")]),
    ];
    for (headers, want) in rows {
        let h = map(headers);
        let got: Vec<(&str, &str)> = pairs(&h).collect();
        assert_eq!(got, want.to_vec(), "{headers:?}");
    }
    // A header that is not visible ASCII is skipped whole; the others still count.
    let mut h = map(&["a=1"]);
    h.append(header::COOKIE, HeaderValue::from_bytes(b"b=\xff; c=3").unwrap());
    assert_eq!(pairs(&h).collect::<Vec<_>>(), vec![("a", "1")]);
}

#[test]
fn the_session_cookie_is_found_and_its_duplicate_seen_in_one_pass() {
    let s = spec();
    let one = format!("prt_session={ID}");
    let rows: Vec<(Vec<String>, SessionCookie<'static>)> = vec![
        (vec![], SessionCookie::Absent),
        (vec!["csrftoken=x; sessionid=y".into()], SessionCookie::Absent),
        (vec![one.clone()], SessionCookie::One(ID)),
        (vec![format!("csrftoken=x;  {one} ; sessionid=y")], SessionCookie::One(ID)),
        // A look-alike name is not the session cookie.
        (vec![format!("prt_sessionx=1; x{one}; {one}")], SessionCookie::One(ID)),
        // Twice in one header, across headers, or once empty: ambiguous.
        (vec![format!("{one}; {one}")], SessionCookie::Duplicated),
        (vec![one.clone(), format!("prt_session={ID2}")], SessionCookie::Duplicated),
        (vec![format!("prt_session=; {one}")], SessionCookie::Duplicated),
        (vec!["prt_session=1; prt_session=2; prt_session=3".into()], SessionCookie::Duplicated),
        // A bare word carries no value, so it is no cookie.
        (vec![format!("prt_session; {one}")], SessionCookie::One(ID)),
    ];
    for (headers, want) in rows {
        let h = map(&headers.iter().map(String::as_str).collect::<Vec<_>>());
        let got = s.lookup(&h);
        assert_eq!(got, want, "{headers:?}");
        assert_eq!(got.duplicated(), want == SessionCookie::Duplicated, "{headers:?}");
        assert_eq!(got.id().is_some(), matches!(want, SessionCookie::One(_)), "{headers:?}");
    }
    // Only a well-formed id authenticates; a quoted one is not unquoted.
    for bad in ["prt_session=abc", "prt_session=", &format!("prt_session=\"{ID}\"")] {
        let h = map(&[bad]);
        assert!(matches!(s.lookup(&h), SessionCookie::One(_)) && s.lookup(&h).id().is_none(), "{bad}");
    }
    // Every well-formed id, for logout and a new login to end.
    let h = map(&[&format!("{one}; prt_session=junk"), &format!("prt_session={ID2}")]);
    assert_eq!(s.read_all(&h).len(), 2);
}

#[test]
fn session_set_cookie_attributes() {
    for secure in [false, true] {
        let s = CookieSpec { name: if secure { "__Host-prt_session" } else { "prt_session" }, secure, max_age: 60 };
        let id = SessionId::parse(ID).unwrap();
        let set = s.set(&id);
        let want = format!(
            "{}={ID}; Path=/; HttpOnly{}; SameSite=Lax; Max-Age=60",
            s.name,
            if secure { "; Secure" } else { "" }
        );
        assert_eq!(set.to_str().unwrap(), want);
        let expire = s.expire();
        assert!(expire.to_str().unwrap().starts_with(&format!("{}=; Path=/; HttpOnly", s.name)));
        assert!(expire.to_str().unwrap().ends_with("; SameSite=Lax; Max-Age=0"));
        assert_eq!(set_cookie_name(&set), Some(s.name));
    }
}

fn is_gate(n: &str) -> bool {
    n == "prt_session" || n.starts_with("prt_login_")
}

#[test]
fn gate_cookie_is_removed_django_cookies_kept() {
    let rows: &[(&[&str], Option<&str>)] = &[
        (&["prt_session=abc"], None),
        (&["prt_session=abc; csrftoken=x"], Some("csrftoken=x")),
        (&["sessionid=s; prt_session=abc; csrftoken=x"], Some("sessionid=s; csrftoken=x")),
        (&["sessionid=s"], Some("sessionid=s")),
        (&["prt_sessionx=1"], Some("prt_sessionx=1")),
        (&["prt_login_abc=st; csrftoken=x; prt_login_def=st2"], Some("csrftoken=x")),
        // A bare gate name, spaces around it, empty pairs: all gone; Django's kept as sent.
        (&["prt_session; a = 1;; prt_session =x ;b=\"q\""], Some("a = 1; b=\"q\"")),
        // HTTP/2 split cookies: merged into one for the HTTP/1.1 upstream, gate's removed.
        (&["a=1", "b=2"], Some("a=1; b=2")),
        (&["a=1", "prt_session=abc", "b=2"], Some("a=1; b=2")),
        (&["prt_session=abc", "prt_login_x=s"], None),
        // Without a gate cookie the merge keeps the headers as sent.
        (&["a=1;", "b=2"], Some("a=1;; b=2")),
    ];
    for (input, expected) in rows {
        let mut h = map(input);
        for_upstream(&mut h, is_gate);
        let all: Vec<&str> = h.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(all, expected.iter().copied().collect::<Vec<_>>(), "{input:?}");
    }
    // Not text: dropped whole, never forwarded unparsed.
    let mut h = map(&["a=1"]);
    h.append(header::COOKIE, HeaderValue::from_bytes(b"prt_session=\xff").unwrap());
    for_upstream(&mut h, is_gate);
    assert!(h.get(header::COOKIE).is_none());
}

#[test]
fn upstream_cannot_set_gate_cookie() {
    let mut h = HeaderMap::new();
    h.append(header::SET_COOKIE, HeaderValue::from_static("prt_session=fixated; Path=/"));
    h.append(header::SET_COOKIE, HeaderValue::from_static("csrftoken=x; Path=/"));
    h.append(header::SET_COOKIE, HeaderValue::from_static("prt_login_abc=planted; Path=/"));
    h.append(header::SET_COOKIE, HeaderValue::from_static(" prt_session =x"));
    h.append(header::SET_COOKIE, HeaderValue::from_static("prt_session"));
    strip_set_cookie(&mut h, is_gate);
    let all: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(all, vec!["csrftoken=x; Path=/"]);
}
