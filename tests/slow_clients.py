"""Hostile slow clients for the deadline tests, run as a separate process
(so that their work does not slow the test's own measuring client):

    python slow_clients.py '{"port": 8080, "duration": 5, ...}'

Keeps `per_source` connections open from each source address (127.0.0.x,
all loopback on Linux) for `duration` seconds, reconnecting each one the
server closes, of one of these kinds:

- "loris": sends a request head one byte every `every` seconds, never
  finishing it;
- "stall": sends a whole head with Content-Length `length` and `sent` bytes
  of the body, then nothing;
- "silent": connects and sends nothing.

Or, with kind "batch", sends `count` POST /v1/check requests at once (a
thread each), every one a batch of `items` tiny items ("json": 0,0,0...;
"text": a line "a" each, alternating), and reports per request the status
(0: the connection was reset before an answer) and the seconds to it.

Prints one JSON object: per closed connection, the seconds from its first
byte (for "stall": from the end of its head and body bytes; for "silent":
from the connect) to the close the server made, and the status of the
answer it got (0: none), plus the counts of connections made and refused.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time


def batches(args: dict) -> dict:
    import threading

    port = int(args["port"])
    n = int(args["items"])
    bodies = [
        (b'{"hashes":[' + b"0," * (n - 1) + b"0]}", "application/json"),
        (b"a\n" * n, "text/plain"),
    ]
    out: list[tuple[int, float]] = [(0, 0.0)] * int(args["count"])

    def one(i: int) -> None:
        body, ctype = bodies[i % 2]
        sources = args.get("sources") or ["127.0.0.1"]
        s = socket.create_connection(
            (args.get("host", "127.0.0.1"), port),
            30,
            source_address=(sources[i % len(sources)], 0),
        )
        head = (
            f"POST /v1/check HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {args['token']}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        t = time.monotonic()
        got = b""
        try:
            s.sendall(head + body)
            got = s.recv(256)
        except OSError:
            try:
                got = s.recv(256)
            except OSError:
                pass
        s.close()
        status = int(got[9:12]) if got.startswith(b"HTTP/1.1 ") else 0
        out[i] = (status, time.monotonic() - t)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(out))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return {"answers": out}


def run(args: dict) -> dict:
    if args["kind"] == "batch":
        return batches(args)
    host = args.get("host", "127.0.0.1")
    port = int(args["port"])
    kind = args["kind"]
    every = float(args.get("every", 0.5))
    length = int(args.get("length", 100_000))
    sent = int(args.get("sent", 1000))
    path = args.get("path", "/v1/check")
    token = args.get("token")
    sources = args["sources"]
    per_source = int(args["per_source"])
    duration = float(args["duration"])
    sel = selectors.DefaultSelector()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    loris = (
        f"GET /healthz HTTP/1.1\r\nHost: x\r\n{auth}X-Slow: ".encode() + b"a" * 10**6
    )
    stall_head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    stall_body = b" " * sent
    closed: list[tuple[float, int]] = []
    made = 0
    failed = 0
    end = time.monotonic() + duration

    def connect(src: str) -> None:
        nonlocal made, failed
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.bind((src, 0))
            s.connect((host, port))
        except OSError:
            failed += 1
            s.close()
            return
        made += 1
        now = time.monotonic()
        st = {"src": src, "start": now, "pos": 0, "next": now, "data": b""}
        if kind == "stall":
            s.sendall(stall_head + stall_body)
            st["start"] = time.monotonic()
            st["next"] = float("inf")
        elif kind == "silent":
            st["next"] = float("inf")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, st)

    for src in sources:
        for _ in range(per_source):
            connect(src)
    while time.monotonic() < end:
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            st = key.data
            if kind == "loris" and now >= st["next"]:
                try:
                    key.fileobj.send(loris[st["pos"] : st["pos"] + 1])
                    if st["pos"] == 0:
                        st["start"] = now
                    st["pos"] += 1
                except OSError:
                    pass  # the close is seen by the read below
                st["next"] = now + every
        for key, _ in sel.select(timeout=0.02):
            s, st = key.fileobj, key.data
            try:
                chunk = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if chunk:
                st["data"] += chunk
                continue
            sel.unregister(s)
            s.close()
            head = st["data"][:12]
            status = int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else 0
            closed.append((time.monotonic() - st["start"], status))
            connect(st["src"])
    still_open = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return {
        "closed": closed,
        "made": made,
        "failed": failed,
        "open_at_end": still_open,
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
