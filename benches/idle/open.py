#!/usr/bin/env python3
"""Holds N idle keep-alive connections for benches/idle/run.sh.

    open.py PORT PATH N READY_FILE

Opens N connections to 127.0.0.1:PORT, sends one `GET PATH` on each and
reads its whole response (Content-Length), then keeps every connection open
and idle. Writes the count to READY_FILE once all N are established, and
exits (closing them all) when stdin reaches EOF.
"""

import socket
import sys


def one_request(sock, req):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("unexpected response %r" % head[:100])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("closed inside the body")
        body += chunk


def main():
    port, path, n, ready = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: prt-gate-idle\r\nAccept: */*\r\n\r\n" % (path, port)).encode()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        one_request(s, req)
        socks.append(s)
    with open(ready, "w") as f:
        f.write("%d\n" % len(socks))
    sys.stdin.read()
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
