"""`hashlookup serve`: a pre-fork supervisor running uvicorn workers.

The supervisor checks the dataset and keys file, binds the listening
socket, creates the shared metrics and rate-limit memory, then forks
`workers` processes.  Each worker opens the dataset itself (its own
mapping of the same page-cache pages) and runs a uvicorn Server (uvloop,
httptools with a bounded request head) on the inherited socket; the kernel
spreads connections over the workers.  A worker that dies is restarted;
SIGTERM or SIGINT stops the workers gracefully (uvicorn finishes the
requests in flight) and then the supervisor.

Why not `uvicorn --workers`: it starts workers with the spawn method, so
they could not share the anonymous memory that makes metrics and rate
limits global across workers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from hashlookup.store.dataset import open_dataset
from hashlookup.server._config import ServerConfig
from hashlookup.server._keys import KeyStore
from hashlookup.server._metrics import Metrics
from hashlookup.server._ratelimit import RateLimiter

log = logging.getLogger("hashlookup.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _say(message: str) -> None:
    print(f"hashlookup serve: {message}", file=sys.stderr, flush=True)


def serve(cfg: ServerConfig) -> int:
    """Run the service until SIGTERM/SIGINT; returns the exit status."""
    # fail early on a bad (or, with --verify-key, unsigned) dataset
    with open_dataset(cfg.dataset, **cfg.open_options()) as ds:
        facts = f"{ds.name}, generation {ds.generation}, {len(ds):,} records"
    if not cfg.no_auth:
        if cfg.api_keys is None:
            raise ValueError("--api-keys FILE is required (or --no-auth for a "
                             "public dataset)")
        store = KeyStore.load(cfg.api_keys)
        if not len(store):
            _say(f"warning: {cfg.api_keys} holds no key yet; add one with "
                 f"'hashlookup apikey add --keys {cfg.api_keys} NAME'")
    elif not is_loopback(cfg.host):
        _say(f"warning: --no-auth on {cfg.host}: anyone who can reach this "
             "address can query the dataset")
    own_bloom_dir = not cfg.bloom_dir
    if own_bloom_dir:
        cfg.bloom_dir = tempfile.mkdtemp(prefix="hashlookup-bloom-")
    sock = _bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    metrics = Metrics(cfg.workers)
    limiter = RateLimiter(cfg.rate, cfg.burst)
    shown = f"[{host}]" if ":" in host else host
    _say(f"listening on http://{shown}:{port} ({cfg.workers} workers; {facts})")
    children: dict[int, int] = {}   # pid -> worker index
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for i in range(cfg.workers):
            children[_fork_worker(cfg, sock, metrics, limiter, i)] = i
        restarts: list[float] = []
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            index = children.pop(pid, None)
            if index is None or stopping:
                continue
            _say(f"worker {index} (pid {pid}) exited with status "
                 f"{os.waitstatus_to_exitcode(status)}; restarting it")
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 10 * cfg.workers:
                _say("workers keep dying; giving up")
                on_signal(signal.SIGTERM, None)
                return 2
            time.sleep(0.2)
            children[_fork_worker(cfg, sock, metrics, limiter, index)] = index
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sock.close()
        if own_bloom_dir:
            shutil.rmtree(cfg.bloom_dir, ignore_errors=True)
    _say("stopped")
    return 0


def _fork_worker(cfg: ServerConfig, sock: socket.socket, metrics: Metrics,
                 limiter: RateLimiter, index: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        _die_with_parent()
        _worker(cfg, sock, metrics, limiter, index)
    except BaseException:  # noqa: BLE001 (a forked child must never return)
        logging.getLogger("hashlookup.server").exception("worker %d failed", index)
        code = 3
    finally:
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the supervisor dies, even by SIGKILL,
    so no orphan keeps serving an old configuration."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the supervisor died before prctl
            os._exit(0)


def _worker(cfg: ServerConfig, sock: socket.socket, metrics: Metrics,
            limiter: RateLimiter, index: int) -> None:
    import uvicorn

    from hashlookup.server._protocol import bounded_protocol
    from hashlookup.server.app import LookupApp

    logging.basicConfig(level=cfg.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = LookupApp(cfg, metrics, limiter, index)
    config = uvicorn.Config(
        app, loop="uvloop", http=bounded_protocol(cfg.max_head),
        lifespan="on", access_log=False, log_level=cfg.log_level,
        proxy_headers=False, server_header=False, date_header=True,
        timeout_keep_alive=30, timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(3)
