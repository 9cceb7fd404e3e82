#!/usr/bin/env python3
"""Fixed-count keep-alive HTTP/1.1 client for benches/callgrind/run.sh.

    client.py [--status=302] PORT PATH REQUESTS CONNECTIONS EXPECTED_BODY_FILE [HEADER ...]

Opens CONNECTIONS connections to 127.0.0.1:PORT and sends REQUESTS identical
`GET PATH` requests, round-robin over the connections, one at a time (no
pipelining): every row of the table sees exactly the same request stream.
Every response must be `200` (or the `--status=` given; a 3xx must carry a
`Location`) with a Content-Length body equal to the file's content; anything
else exits 1 naming the request. Prints the count sent.
"""

import socket
import sys


def read_response(sock, buf):
    """One response from `sock` (leftover bytes in `buf`): (status, body, location, buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response head")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    length = None
    location = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"location":
            location = value.strip()
    if length is None:
        raise RuntimeError("response without Content-Length: %r" % head[:200])
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed inside the body")
        buf += chunk
    return status, buf[:length], location, buf[length:]


def main():
    args = sys.argv[1:]
    want = 200
    if args and args[0].startswith("--status="):
        want = int(args.pop(0).split("=", 1)[1])
    port, path, requests, conns, body_file = args[:5]
    headers = args[5:]
    requests, conns = int(requests), int(conns)
    with open(body_file, "rb") as f:
        expected = f.read()
    req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: prt-gate-callgrind\r\nAccept: */*\r\n" % (path, port)
    for h in headers:
        req += h + "\r\n"
    req = (req + "\r\n").encode()
    socks = [socket.create_connection(("127.0.0.1", int(port))) for _ in range(conns)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bufs = [b""] * conns
    for i in range(requests):
        c = i % conns
        socks[c].sendall(req)
        status, body, location, bufs[c] = read_response(socks[c], bufs[c])
        if status != want or body != expected or (300 <= want < 400 and not location):
            sys.stderr.write("request %d: status %d body %r\n" % (i, status, body[:200]))
            sys.exit(1)
    for s in socks:
        s.close()
    print(requests)


if __name__ == "__main__":
    main()
