"""`hashlookup serve`: a pre-fork supervisor running uvicorn workers.

The supervisor checks the dataset and keys file, binds the listening
socket, creates the shared metrics and rate-limit memory, then forks
`workers` processes.  Each worker maps the dataset itself (its own
mapping of the same page-cache pages), starting from the last good file,
which the supervisor keeps open (_files: a worker started while the file
on disk is bad serves the last good generation and reports the bad
file), and runs a uvicorn Server (uvloop, httptools with a bounded request
head) on the inherited socket; the kernel
spreads connections over the workers.  _supervisor restarts a worker
that dies (with back-off when they keep dying) or stops answering (a
watchdog on heartbeats), and stops them on SIGTERM or SIGINT gracefully
(uvicorn finishes the requests in flight) within a deadline; _worker is
the worker's side (heartbeat, dying with the supervisor).

The Bloom cache directory (unless --bloom-dir) is a temporary directory
named with the supervisor's pid: one left behind by a killed supervisor is
removed by the next start.

Why not `uvicorn --workers`: it starts workers with the spawn method, so
they could not share the anonymous memory that makes metrics and rate
limits global across workers.
"""

from __future__ import annotations

import glob
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile

from hashlookup.server._audit import mode_warning
from hashlookup.server._config import ServerConfig
from hashlookup.server._files import LastGood
from hashlookup.server._metrics import Metrics
from hashlookup.server._ratelimit import RateLimiter
from hashlookup.server._supervisor import Supervisor

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
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        raise OSError(
            exc.errno, f"cannot listen on {shown}:{port}: {exc.strerror}"
        ) from None
    sock.set_inheritable(True)
    return sock


def _say(message: str) -> None:
    print(f"hashlookup serve: {message}", file=sys.stderr, flush=True)


def serve(cfg: ServerConfig) -> int:
    """Run the lookup service until SIGTERM or SIGINT.

    Checks the dataset (and its signature with ``cfg.verify_key``) and the
    keys file, binds the socket, then forks ``cfg.workers`` uvicorn workers
    and supervises them (restarts, watchdog) until stopped.  Blocks for the
    life of the service; ``hashlookup serve`` calls it.

    Parameters
    ----------
    cfg : ServerConfig
        The settings of this run.  ``cfg.bloom_dir``, when empty, is set to
        the temporary directory created for the Bloom filter cache.

    Returns
    -------
    int
        The exit status: 0 after a stop, 2 when no worker ever started
        serving and the supervisor gave up.

    Raises
    ------
    ValueError
        Without ``cfg.api_keys`` unless ``cfg.no_auth``.
    hashlookup.errors.HashLookupError
        The dataset cannot be opened or fails its signature check, or the
        keys file is malformed (``KeysFileError``).
    OSError
        The address cannot be bound, or a file cannot be read.

    Examples
    --------
    >>> from hashlookup.server import ServerConfig, serve
    >>> serve(ServerConfig("nsrl.hlds", api_keys="keys.json"))  # doctest: +SKIP
    0
    """
    if not cfg.no_auth and cfg.api_keys is None:
        raise ValueError(
            "--api-keys FILE is required (or --no-auth for a public dataset)"
        )
    last = LastGood(
        cfg.dataset,
        None if cfg.no_auth else cfg.api_keys,
        cfg.allow_older_generation,
        _say,
    )
    try:
        return _serve(cfg, last)
    finally:
        last.close()


def _serve(cfg: ServerConfig, last: LastGood) -> int:
    # fail early on a bad (or, with --verify-key, unsigned) dataset; the
    # supervisor keeps the file: workers start from it (see _files)
    with last.open_first(cfg.open_options()) as ds:
        facts = f"{ds.name}, generation {ds.generation}, {len(ds):,} records"
    if not cfg.no_auth:
        store = last.load_keys()
        if not len(store):
            _say(
                f"warning: {cfg.api_keys} holds no key yet; add one with "
                f"'hlookup apikey add --keys {cfg.api_keys} NAME'"
            )
    warning = mode_warning(cfg.audit_log)
    if warning is not None:
        _say(f"warning: {warning}")
    elif not is_loopback(cfg.host):
        _say(
            f"warning: --no-auth on {cfg.host}: anyone who can reach this "
            "address can query the dataset"
        )
    # the worker's modules (uvicorn, the app), imported once here: a
    # replacement worker is forked ready to run
    from hashlookup.server import _worker

    sock = _bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    own_bloom_dir = not cfg.bloom_dir
    if own_bloom_dir:
        remove_stale_dirs()
        cfg.bloom_dir = tempfile.mkdtemp(prefix=f"{_BLOOM_PREFIX}{os.getpid()}-")
    metrics = Metrics(cfg.workers)
    limiter = RateLimiter(cfg.rate, cfg.burst, cfg.workers)
    supervisor = os.getpid()

    def spawn(index: int) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 0
        try:
            for s in (signal.SIGTERM, signal.SIGINT):
                signal.signal(s, signal.SIG_DFL)
            _worker.die_with_parent(supervisor)
            _worker.run_worker(cfg, sock, metrics, limiter, index, supervisor, last)
        except BaseException:  # a forked child must never return
            logging.getLogger("hashlookup.server").exception("worker %d failed", index)
            code = 3
        finally:
            sys.stderr.flush()
            os._exit(code)

    watchdog = float(os.environ.get("HASHLOOKUP_WATCHDOG") or cfg.watchdog)
    boss = Supervisor(
        cfg.workers,
        spawn,
        metrics,
        _say,
        watchdog,
        lambda now: last.poll(now, cfg.reload_interval),
    )
    shown = f"[{host}]" if ":" in host else host
    _say(f"listening on http://{shown}:{port} ({cfg.workers} workers; {facts})")
    old = {
        s: signal.signal(s, boss.request_stop) for s in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        status = boss.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sock.close()
        if own_bloom_dir:
            shutil.rmtree(cfg.bloom_dir, ignore_errors=True)
    _say("stopped")
    return status


_BLOOM_PREFIX = "hashlookup-bloom-"


def remove_stale_dirs(directory: str | None = None) -> list[str]:
    """Remove the Bloom cache directories that earlier `serve` runs of this
    user left behind when they were killed (named with the supervisor's
    pid: those of pids no longer running); returns the removed paths."""
    directory = directory or tempfile.gettempdir()
    removed = []
    for path in glob.glob(os.path.join(glob.escape(directory), _BLOOM_PREFIX + "*-*")):
        pid_part = os.path.basename(path)[len(_BLOOM_PREFIX) :].split("-", 1)[0]
        if not pid_part.isdigit() or int(pid_part) == os.getpid():
            continue
        try:
            if os.lstat(path).st_uid != os.getuid() or _alive(int(pid_part)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
