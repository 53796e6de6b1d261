"""uvicorn's httptools protocol with deadlines and caps on connections.

What uvicorn leaves open, closed here, per connection of one worker:

- Head size: httptools buffers a header of any size before the
  application sees it.  The bytes of each request head are counted as they
  arrive; over `max_head` without the blank line that ends the head: 431
  and the connection is closed.
- Head deadline: a request head must be complete `head_timeout` seconds
  after its first byte (the first request of a connection: after the
  connection opened, so a connection that sends nothing is closed too);
  else 408 (nothing when no byte came) and the connection is closed.  A
  slow-loris client that sends a byte every few seconds is cut off there.
- Body deadline: the body must be complete `body_timeout` seconds after
  the head; else 408 and close (a stalled upload, or a Content-Length
  larger than what is sent).  The application sees the close as a
  disconnect and lets go of what it had read.
- Send deadline: a response the client does not read (the transport's
  buffer stays over its high-water mark) for `body_timeout` seconds: the
  connection is dropped.
- Idle keep-alive connections are closed after `idle_timeout`, and a
  connection older than `connection_max_age` gets ``Connection: close`` on
  its next response: clients reconnect, and the kernel spreads them over
  the workers again (a restarted worker gets its share).
- Caps: at most `max_connections` open connections per worker (more: 503)
  and `max_client_connections` per client address (more: 429).  A refused
  connection gets its answer at once, its write side is shut, and it is
  closed when the client closes or after a second; at most _LINGER_MAX of
  them wait so, beyond that they are closed at once.

Answers written at once: with `quick` (LookupApp.quick), a GET or HEAD
whose head ends without a body (no Content-Length or Transfer-Encoding),
query string, %-escape or Expect, with nothing before it still in flight
on the connection, is offered to it as soon as its head is parsed; if it
answers (single lookups, /v1/ping, /healthz), the status line, uvicorn's
date header, the app's header lines and the body go out in one
transport.write: no ASGI scope, task, coroutine or Event, and one write
instead of uvicorn's two (head, then body, each its own send() on the
socket).  The bytes are uvicorn's (same status line, header order and
``connection: close`` rules, HEAD without the body), keep-alive, max-age
and the idle timer behave the same, and a request the transport cannot
take now (the client is not reading) takes the ASGI path, which waits.
Everything else takes the ASGI path unchanged.

Timers cost nothing on the hot path: a GET whose head arrives in one read
starts and completes within one data_received() and arms none; a timer is
armed only when a read ends inside a head or a body (the head byte count
tells where a read ended).  In-process, data_received() of a GET costs
what it cost with the head bound alone (medians 14.1 and 14.3 us, 30
alternating rounds).  Each cut-off is
counted (Metrics.limit: hashlookup_limits_total, a rate-limited log line).
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from hashlookup.server._config import ServerConfig
from hashlookup.server._metrics import Metrics

_END = b"\r\n\r\n"
#: A refused connection waits at most this long for its client to close.
_LINGER = 1.0
#: Refused connections waiting so, per worker; more are closed at once.
_LINGER_MAX = 256
#: File descriptors kept free of connections (dataset, logs, accept).
_FD_MARGIN = 64


def _reply(status: bytes, message: str, extra: bytes = b"") -> bytes:
    body = b'{"message":"%s"}' % message.encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"connection: close\r\n\r\n"
        + body
    )


def connection_cap(wanted: int) -> int:
    """`wanted`, at most the soft descriptor limit less _FD_MARGIN (a
    worker that runs out of descriptors cannot accept, or open a file)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - _FD_MARGIN))


class _Counts:
    """The connections of one worker: open ones, per client address, and
    refused ones still lingering."""

    def __init__(self) -> None:
        self.open = 0
        self.by_client: dict[str, int] = {}
        self.lingering = 0


#: quick(method, path, headers, client): (status, header lines, body), or
#: None for a request it does not answer (LookupApp.quick)
Quick = Callable[
    [str, str, list[tuple[bytes, bytes]], "tuple[str, int] | None"],
    "tuple[int, bytes, bytes] | None",
]


def bounded_protocol(
    cfg: ServerConfig | int,
    metrics: Metrics | None = None,
    worker: int = 0,
    quick: Quick | None = None,
) -> type:
    """An HttpToolsProtocol class with the limits of `cfg` (see the module
    docstring); counts go to `metrics`.  An int `cfg` is a head size limit
    with the default deadlines and caps.  With `quick`, a GET or HEAD
    without a body, query string or escapes is first offered to it and, if
    answered, written at once in one piece (see the module docstring)."""
    if isinstance(cfg, int):
        cfg = ServerConfig("", max_head=cfg)
    if metrics is None:
        metrics = Metrics(1)
        metrics.bind(worker)
    shared: Metrics = metrics
    max_head = cfg.max_head
    head_timeout = cfg.head_timeout
    body_timeout = cfg.body_timeout
    idle_timeout = cfg.idle_timeout
    max_age = cfg.connection_max_age
    max_conn = connection_cap(cfg.max_connections)
    max_client = cfg.max_client_connections
    limit = shared.limit
    counts = _Counts()
    # uvicorn's default header lines (the date), rendered once per list
    # (uvicorn makes a new list when the date changes)
    defaults: list[Any] = [None, b""]
    offer: Quick = quick if quick is not None else lambda *_: None

    too_large = _reply(
        b"431 Request Header Fields Too Large",
        f"request header fields too large (limit {max_head} bytes)",
    )
    head_late = _reply(
        b"408 Request Timeout",
        f"request head not received within {head_timeout:g} s",
    )
    body_late = _reply(
        b"408 Request Timeout",
        f"request body not received within {body_timeout:g} s",
    )
    worker_full = _reply(
        b"503 Service Unavailable",
        "too many connections to this worker; retry",
        b"retry-after: 1\r\n",
    )
    client_full = _reply(
        b"429 Too Many Requests",
        f"more than {max_client} connections from this address",
        b"retry-after: 1\r\n",
    )

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        # bytes of the current head seen; -1: in a body; 0: between requests
        # (where a deadline finds a connection: the 408 it gets)
        _hl_head = 0
        _hl_tail = b""
        _hl_timer: asyncio.TimerHandle | None = None
        _hl_send_timer: asyncio.TimerHandle | None = None
        _hl_age_timer: asyncio.TimerHandle | None = None
        _hl_addr: str | None = None  # counted in `counts` (None: refused)
        _hl_refused = False
        _hl_old = False  # past max_age: the next response closes
        _hl_quick = False  # the current request was answered by quick()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # uvicorn types it int; its call_later takes any number
            self.timeout_keep_alive = idle_timeout  # type: ignore[assignment]

        # -- connections -----------------------------------------------------

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            addr = self.client[0] if self.client else "?"
            if counts.open >= max_conn:
                self._hl_refuse(worker_full, "worker_connections", addr)
                return
            n = counts.by_client.get(addr, 0)
            if n >= max_client:
                self._hl_refuse(client_full, "client_connections", addr)
                return
            counts.open += 1
            counts.by_client[addr] = n + 1
            self._hl_addr = addr
            shared.connections(counts.open)
            self._hl_arm(head_timeout)
            if max_age > 0:
                self._hl_age_timer = self.loop.call_later(max_age, self._hl_aged)

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._hl_timer, self._hl_send_timer, self._hl_age_timer):
                if timer is not None:
                    timer.cancel()
            self._hl_timer = self._hl_send_timer = self._hl_age_timer = None
            addr = self._hl_addr
            if addr is not None:
                self._hl_addr = None
                counts.open -= 1
                n = counts.by_client[addr] - 1
                if n:
                    counts.by_client[addr] = n
                else:
                    del counts.by_client[addr]
                shared.connections(counts.open)
            elif self._hl_refused:
                counts.lingering -= 1
                self._hl_refused = False
            super().connection_lost(exc)

        def _hl_refuse(self, reply: bytes, reason: str, addr: str) -> None:
            """Answer `reply` at once and close: after the client closes (so
            the answer is not lost to a reset), within _LINGER seconds."""
            limit(reason, addr)
            transport = self.transport
            transport.write(reply)
            if counts.lingering >= _LINGER_MAX:
                transport.close()
                return
            self._hl_refused = True
            counts.lingering += 1
            try:
                transport.write_eof()
            except (NotImplementedError, OSError, RuntimeError):
                transport.close()
                return
            self._hl_timer = self.loop.call_later(_LINGER, transport.close)

        def _hl_aged(self) -> None:
            # not closed now even when idle: a client may be sending its next
            # request this instant; that request's answer closes it instead
            # (and an idle one meets the idle timeout)
            self._hl_age_timer = None
            self._hl_old = True

        # -- deadlines -------------------------------------------------------

        def _hl_arm(self, seconds: float) -> None:
            if seconds > 0:
                self._hl_timer = self.loop.call_later(seconds, self._hl_expired)

        def _hl_disarm(self) -> None:
            timer = self._hl_timer
            if timer is not None:
                timer.cancel()
                self._hl_timer = None

        def _hl_expired(self) -> None:
            self._hl_timer = None
            transport = self.transport
            if transport.is_closing():
                return
            addr = self._hl_addr
            if self._hl_head < 0:
                limit("body_deadline", addr)
                cycle = self.cycle
                if cycle is not None and not cycle.response_started:
                    transport.write(body_late)
                    cycle.disconnected = True  # the app's receive() ends
                    cycle.message_event.set()
            else:
                limit("head_deadline", addr)
                if self._hl_head > 0:  # some of a head came
                    transport.write(head_late)
            transport.close()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._hl_send_timer is None and body_timeout > 0:
                self._hl_send_timer = self.loop.call_later(
                    body_timeout, self._hl_send_expired
                )

        def resume_writing(self) -> None:
            timer = self._hl_send_timer
            if timer is not None:
                timer.cancel()
                self._hl_send_timer = None
            super().resume_writing()

        def _hl_send_expired(self) -> None:
            self._hl_send_timer = None
            limit("send_deadline", self._hl_addr)
            self.transport.abort()

        def timeout_keep_alive_handler(self) -> None:
            if not self.transport.is_closing():
                limit("idle")
            super().timeout_keep_alive_handler()

        # -- parsing ---------------------------------------------------------

        def data_received(self, data: bytes) -> None:
            if self._hl_refused:
                return  # read and dropped until the close
            seen = self._hl_head
            if seen >= 0:
                room = max_head - seen
                if len(data) > room and _END not in self._hl_tail + data[:room]:
                    limit("head_size", self._hl_addr)
                    self.transport.write(too_large)
                    self.transport.close()
                    return
                self._hl_head = seen + len(data)
                self._hl_tail = data[-3:]
            super().data_received(data)
            # a read that ends inside a head or a body starts its deadline
            # (the first request keeps the one armed at the opening).  Bytes
            # of a pipelined head that follow a whole request in one read
            # are not counted: uvicorn's keep-alive timer bounds that read,
            # the next read starts the head deadline.
            if self._hl_timer is None and self.parser is not None:
                seen = self._hl_head
                if seen > 0:
                    self._hl_arm(head_timeout)
                elif seen < 0:
                    self._hl_arm(body_timeout)

        def on_headers_complete(self) -> None:
            if self._hl_timer is not None:  # (inline: on every request)
                self._hl_disarm()
            self._hl_head = -1
            if quick is not None and self._hl_answer():
                self._hl_quick = True
                return
            super().on_headers_complete()
            if self._hl_old and self.cycle is not None:
                if self.cycle.keep_alive:
                    limit("max_age")
                self.cycle.keep_alive = False

        def on_message_complete(self) -> None:
            if self._hl_timer is not None:
                self._hl_disarm()
            if self._hl_quick:  # answered already; no cycle of its own
                self._hl_quick = False
            else:
                super().on_message_complete()
            self._hl_head = 0
            self._hl_tail = b""

        # -- answers written at once -----------------------------------------

        def _hl_answer(self) -> bool:
            """Offer the request whose head just ended to quick(); True if
            it is answered (or dropped: the connection is closing, as a
            request pipelined after one that closes is in uvicorn).  Only a
            GET or HEAD with no body, no query, no %-escape and nothing in
            flight before it on the connection (so answers keep their
            order), while the transport takes writes (else uvicorn's path,
            which waits for the client to read)."""
            transport = self.transport
            if transport.is_closing():
                return True
            url = self.url
            cycle = self.cycle
            if (
                url[:1] != b"/"
                or b"?" in url
                or b"%" in url
                or b"#" in url
                or not url.isascii()
                or self.expect_100_continue
                or self.pipeline
                or (cycle is not None and not cycle.response_complete)
                or self.flow.write_paused
            ):
                return False
            parser = self.parser
            method = parser.get_method()
            if (method != b"GET" and method != b"HEAD") or parser.should_upgrade():
                return False
            headers = self.headers
            for name, _ in headers:
                if name == b"content-length" or name == b"transfer-encoding":
                    return False
            answer = offer(method.decode(), url.decode(), headers, self.client)
            if answer is None:
                return False
            status, head, body = answer
            keep_alive = (
                parser.get_http_version() != "1.0" and parser.should_keep_alive()
            )
            if self._hl_old and keep_alive:
                limit("max_age")
                keep_alive = False
            dh = self.server_state.default_headers
            if dh is not defaults[0]:
                defaults[1] = b"".join([k + b": " + v + b"\r\n" for k, v in dh])
                defaults[0] = dh
            # uvicorn's bytes: status line, its headers, the app's, then
            # connection: close when the connection ends here
            transport.write(
                b"".join(
                    (
                        STATUS_LINE[status],
                        defaults[1],
                        head,
                        b"\r\n" if keep_alive else b"connection: close\r\n\r\n",
                        body if method != b"HEAD" else b"",
                    )
                )
            )
            if not keep_alive:
                transport.close()
            self.on_response_complete()  # uvicorn's: keep-alive timer
            return True

    return BoundedHttpToolsProtocol
