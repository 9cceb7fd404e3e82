//! The wire format without sockets: request heads, response heads and their framing, the
//! chunked decoder.

use bytes::BytesMut;
use http::{Method, Request, StatusCode, Version};

use super::*;

const LIMITS: Limits = Limits { max_head: 64 * 1024, max_headers: 100 };

fn parse(head: &str) -> Result<Option<Head>, Error> {
    parse_head(&mut BytesMut::from(head), LIMITS, false)
}

fn framing(head: &str) -> (Framing, bool) {
    let head = parse(head).unwrap().unwrap();
    (head.framing, head.reusable)
}

fn refused(head: &str) -> String {
    parse(head).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("accepted: {head:?}"))
}

#[test]
fn a_response_head_becomes_parts_and_leaves_the_body_in_the_buffer() {
    let mut buf =
        BytesMut::from("HTTP/1.1 201 Created\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\nhello");
    let head = parse_head(&mut buf, LIMITS, false).unwrap().unwrap();
    assert_eq!(head.parts.status, StatusCode::CREATED);
    assert_eq!(head.parts.version, Version::HTTP_11);
    let cookies: Vec<_> = head.parts.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!((head.framing, head.reusable), (Framing::Length(5), true));
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn an_incomplete_head_asks_for_more() {
    assert!(parse("HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
    assert!(parse("HTTP/1.1 200 OK\r\n").unwrap().is_none());
}

#[test]
fn bodies_are_framed_as_rfc_9112_says() {
    assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"), (Framing::Length(12), true));
    assert_eq!(framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"), (Framing::Chunked, true));
    assert_eq!(framing("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n"), (Framing::Chunked, true));
    // Chunked not last: the body runs until the close, and the connection is spent.
    assert_eq!(framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"), (Framing::Close, false));
    assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), (Framing::Close, false));
    // No body whatever the headers say.
    assert_eq!(framing("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n"), (Framing::Empty, true));
    assert_eq!(framing("HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n"), (Framing::Empty, true));
    assert_eq!(framing("HTTP/1.1 100 Continue\r\n\r\n"), (Framing::Empty, true));
    let mut head = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n");
    assert_eq!(parse_head(&mut head, LIMITS, true).unwrap().unwrap().framing, Framing::Empty);
}

#[test]
fn a_closing_or_http_1_0_response_is_not_reusable() {
    assert!(!framing("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive, Close\r\n\r\n").1);
    assert!(!framing("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").1);
    assert!(framing("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n").1);
}

#[test]
fn transfer_encoding_with_content_length_is_refused() {
    let e = refused("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n");
    assert!(e.contains("both transfer-encoding and content-length"), "{e}");
    // Also on a response that has no body anyway.
    refused("HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n");
}

#[test]
fn differing_or_malformed_content_lengths_are_refused() {
    refused("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n");
    for bad in ["+5", "-1", "5x", "0x5", "", "1 2", "99999999999999999999"] {
        refused(&format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n"));
    }
    // The same value twice is one length.
    assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5, 5\r\n\r\n").0, Framing::Length(5));
}

#[test]
fn heads_beyond_the_limits_are_refused() {
    let small = Limits { max_head: 128, max_headers: 4 };
    let long = format!("HTTP/1.1 200 OK\r\nx-a: {}\r\n\r\n", "a".repeat(200));
    assert!(matches!(parse_head(&mut BytesMut::from(&long[..]), small, false), Err(Error::TooLarge)));
    // Incomplete but already past the limit: no use reading on.
    assert!(matches!(parse_head(&mut BytesMut::from(&long[..150]), small, false), Err(Error::TooLarge)));
    let many = "HTTP/1.1 200 OK\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n";
    assert!(matches!(parse_head(&mut BytesMut::from(many), small, false), Err(Error::TooLarge)));
    // Control: within both limits.
    let fits = "HTTP/1.1 200 OK\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\n\r\n";
    assert!(parse_head(&mut BytesMut::from(fits), small, false).unwrap().is_some());
    // More headers than the stack holds.
    let wide = Limits { max_head: 64 * 1024, max_headers: 300 };
    let head = format!("HTTP/1.1 200 OK\r\n{}\r\n", (0..250).map(|i| format!("x-{i}: v\r\n")).collect::<String>());
    assert_eq!(parse_head(&mut BytesMut::from(&head[..]), wide, false).unwrap().unwrap().parts.headers.len(), 250);
}

#[test]
fn what_is_not_http_is_refused() {
    refused("this is not HTTP\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nbad header\r\n\r\n");
    refused("HTTP/2 200\r\n\r\n");
}

fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, BytesMut), Error> {
    let mut chunked = Chunked::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match chunked.decode(&mut buf, LIMITS)? {
            Decoded::Data(d) => body.extend_from_slice(&d),
            Decoded::End => return Ok((body, buf)),
            Decoded::NeedMore if fed < input.len() => {
                let next = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..next]);
                fed = next;
            }
            Decoded::NeedMore => return Err(Error::Closed),
        }
    }
}

#[test]
fn chunked_bodies_decode_in_any_pieces() {
    let wire = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\nA \r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, wire.len()] {
        let (body, rest) = decode_all(wire, step).unwrap();
        assert_eq!(body, b"hello world0123456789", "step {step}");
        // What follows the body stays in the buffer (read in this step).
        assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
    }
}

#[test]
fn bad_chunk_sizes_are_refused() {
    for wire in [&b"g\r\n"[..], b"\r\n", b" 5\r\nhello\r\n0\r\n\r\n", b"5 x\r\nhello\r\n", b"-5\r\n", b"0x5\r\n"] {
        assert!(matches!(decode_all(wire, 64), Err(Error::Malformed(_))), "{:?}", String::from_utf8_lossy(wire));
    }
    // 17 hex digits overflow a u64; 16 do not.
    assert!(matches!(decode_all(b"10000000000000000\r\n", 64), Err(Error::Malformed("chunk size overflows"))));
    assert!(matches!(decode_all(b"ffffffffffffffff\r\nab", 64), Err(Error::Closed)));
}

#[test]
fn chunk_lines_and_data_need_their_crlf() {
    for wire in [
        &b"5\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloX\r\n0\r\n\r\n",
        // Two bytes where the CRLF belongs, and a valid body after them.
        b"5\r\nhelloXY0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\r\nhello\r\n",
        b"5\r\nhello\r\n0\r\n\n",
    ] {
        assert!(decode_all(wire, 64).is_err(), "{:?}", String::from_utf8_lossy(wire));
    }
    let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(5000));
    assert!(matches!(decode_all(long.as_bytes(), 64), Err(Error::TooLarge)));
    let trailers = format!("0\r\n{}\r\n", "x-t: 1\r\n".repeat(10_000));
    assert!(matches!(decode_all(trailers.as_bytes(), 4096), Err(Error::TooLarge)));
}

fn head_of(req: Request<()>, ended: bool, exact: Option<u64>) -> (String, Outgoing) {
    let (parts, ()) = req.into_parts();
    let (head, outgoing) = encode_head(&parts, ended, exact, 0).unwrap();
    assert_eq!(head.len(), head.capacity(), "exactly sized");
    (String::from_utf8(head).unwrap(), outgoing)
}

#[test]
fn request_heads_carry_one_framing_line() {
    let get = Request::get("/a?b=1").header("host", "gate.test").body(()).unwrap();
    assert_eq!(head_of(get, true, Some(0)), ("GET /a?b=1 HTTP/1.1\r\nhost: gate.test\r\n\r\n".into(), Outgoing::Empty));
    let post = Request::post("/p").header("content-length", "11").body(()).unwrap();
    assert_eq!(
        head_of(post, false, Some(11)),
        ("POST /p HTTP/1.1\r\ncontent-length: 11\r\n\r\n".into(), Outgoing::Length(11))
    );
    let known = Request::builder().method(Method::PUT).uri("/p").body(()).unwrap();
    assert_eq!(head_of(known, false, Some(3)).1, Outgoing::Length(3));
    let unknown = Request::post("/p").header("transfer-encoding", "chunked").body(()).unwrap();
    assert_eq!(
        head_of(unknown, false, None),
        ("POST /p HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".into(), Outgoing::Chunked)
    );
    let differing = Request::post("/p").header("content-length", "1").header("content-length", "2").body(()).unwrap();
    assert!(encode_head(&differing.into_parts().0, false, None, 0).is_err());
}

#[test]
fn chunk_lines_are_hex() {
    let mut buf = [0u8; 18];
    assert_eq!(chunk_line(0x1a2b, &mut buf), b"1a2b\r\n");
    assert_eq!(chunk_line(1, &mut buf), b"1\r\n");
    assert_eq!(chunk_line(usize::MAX, &mut buf), b"ffffffffffffffff\r\n");
}
