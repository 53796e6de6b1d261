"""One worker process of `hashlookup serve`: a uvicorn Server on the
socket the supervisor bound, with a heartbeat and hard deadlines.

- Heartbeat: every 0.1 s, from the event loop itself (uvicorn's tick), the
  worker writes the time into its slot of the shared metrics memory.  A
  loop that stops turning (a blocked call, a wedge) stops the beat, and
  the supervisor's watchdog kills and replaces the worker.
- Dies with the supervisor: on Linux PR_SET_PDEATHSIG delivers SIGTERM
  when the supervisor dies, even by SIGKILL; elsewhere the heartbeat
  notices the new parent.  Either starts a graceful stop.
- Stop deadline: a stop request (SIGTERM, SIGINT, the supervisor's death)
  arms a timer: if the graceful stop has not finished STOP_DEADLINE
  seconds later (a wedged loop never finishes it), SIGALRM's default
  action ends the process, so a worker never outlives its supervisor's
  deadline holding the port.

Imported by the supervisor before it forks, so a replacement worker starts
without importing uvicorn and the application again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from types import FrameType

import uvicorn

from hashlookup.server._config import ServerConfig
from hashlookup.server._files import LastGood
from hashlookup.server._metrics import Metrics
from hashlookup.server._protocol import bounded_protocol
from hashlookup.server._ratelimit import RateLimiter
from hashlookup.server.app import LookupApp

#: Seconds from SIGTERM to the end of a worker, whatever state it is in
#: (docs/SERVER.md promises a stop within 10 s; the supervisor kills its
#: workers at 9 s, this is the backstop when the supervisor is gone).
STOP_DEADLINE = 9.5
#: uvicorn's share of it: requests in flight may finish within this.
GRACEFUL = 8  # uvicorn takes whole seconds


class _Server(uvicorn.Server):
    """uvicorn's Server with the heartbeat and the stop deadline."""

    def __init__(
        self, config: uvicorn.Config, metrics: Metrics, supervisor: int
    ) -> None:
        super().__init__(config)
        self._metrics = metrics
        self._supervisor = supervisor

    async def on_tick(self, counter: int) -> bool:
        self._metrics.beat()
        if os.getppid() != self._supervisor and not self.should_exit:
            self.handle_exit(signal.SIGTERM, None)  # orphaned (not Linux)
        return await super().on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            signal.setitimer(signal.ITIMER_REAL, STOP_DEADLINE)
        super().handle_exit(sig, frame)


def die_with_parent(supervisor: int) -> None:
    """Linux: SIGTERM this process when the supervisor dies, even by SIGKILL,
    so no orphan keeps serving an old configuration (called right after the
    fork).  Exits at once if the supervisor already died."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != supervisor:  # the supervisor died before prctl
        os._exit(0)


def run_worker(
    cfg: ServerConfig,
    sock: socket.socket,
    metrics: Metrics,
    limiter: RateLimiter,
    index: int,
    supervisor: int,
    last_good: LastGood | None = None,
) -> None:
    """Serve on `sock` as worker slot `index` until told to stop, starting
    from the dataset and keys the supervisor kept (`last_good`)."""
    logging.basicConfig(
        level=cfg.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    limiter.bind(index)
    if last_good is not None:
        last_good.child_started()
    app = LookupApp(cfg, metrics, limiter, index, last_good)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=bounded_protocol(cfg, metrics, index, app.quick),
        lifespan="on",
        access_log=False,
        log_level=cfg.log_level,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=GRACEFUL,
    )
    server = _Server(config, metrics, supervisor)
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(3)
