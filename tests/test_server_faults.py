"""The lookup service survives its own faults: real `hashlookup serve`
processes on loopback under load, their workers and supervisor killed.

- workers SIGKILLed at random points under load, many of them inside the
  rate limiter (a test hook pauses every take() between its read and its
  write), at intervals of 50 to 250 ms: after each kill the service answers
  an authenticated request (which goes through the limiter) again within
  RECOVERY seconds, and no answer is ever wrong;
- 30 SIGKILLs 0.25 s apart leave a working service with all its workers;
- a worker whose event loop stops (SIGSTOP) is killed by the watchdog and
  replaced, while the other keeps answering; a slot killed again and again
  is restarted with back-off, which /readyz reports;
- a SIGKILLed supervisor takes its workers with it and frees the port, and
  the next start removes the Bloom directory it left;
- SIGTERM under load completes within the 10 s deadline, also with a
  worker that cannot stop gracefully (SIGSTOPped: killed at the deadline).
- a port already taken: the error names the address, no temporary
  directory is left.

- two processes sharing a limiter get together what one bucket gives, and
  one killed inside take() blocks nobody.

The kills: 200 in a row (KILLS; HASHLOOKUP_FAULT_KILLS=N runs another
count), which takes about a minute on a 2-core machine.
Every test is bounded in time and in requests.  Linux only (/proc).
"""

from __future__ import annotations

import os
import platform
import random
import re
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests

from server_utils import Server, add_key, bearer, make_dataset

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not Path("/proc/self/task").is_dir(), reason="needs Linux /proc"
    ),
]

KILLS = int(os.environ.get("HASHLOOKUP_FAULT_KILLS", "200"))
#: the service answers again within this many seconds after any kill
RECOVERY = 6.0
#: SIGTERM to exit (docs/SERVER.md)
STOP_DEADLINE = 10.0
#: clock_nanosleep, where time.sleep() waits: a worker's main thread in it
#: is inside the limiter's paused section
_NANOSLEEP = {"x86_64": 230, "aarch64": 115}.get(platform.machine())
#: no 429 under the test load: every request still takes a token
_UNLIMITED = ("--rate-limit", "100000", "--burst", "200000", "--no-audit-log")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("server-faults")
    path, oracle = make_dataset(d, n=600, seed=1717)
    keys = d / "keys.json"
    token = add_key(keys, "load")
    hit = next(h for h in oracle if len(h) == 64)
    return d, path, keys, token, hit


def _workers(srv: Server) -> list[int]:
    pid = srv.proc.pid
    try:
        return [
            int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except FileNotFoundError:
        return []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _answers(srv: Server, token: str, limit: float) -> float:
    """Seconds until an authenticated request (through the rate limiter) on
    a new connection is answered 200; fails after `limit`."""
    t0 = time.monotonic()
    while True:
        try:
            r = requests.get(
                srv.url + "/v1/ping",
                timeout=1,
                headers={**bearer(token), "Connection": "close"},
            )
            if r.status_code == 200:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        if time.monotonic() - t0 > limit:
            raise AssertionError(f"no answer within {limit} s:\n{srv.stderr()[-3000:]}")
        time.sleep(0.01)


class _Load:
    """Client threads sending lookups of one hit (keep-alive, reconnecting
    when their worker dies) until stopped or `cap` requests each; every
    answer must be right: 200 with the record, never an error status."""

    def __init__(
        self, srv: Server, token: str, hit: str, threads: int = 2, cap: int = 50_000
    ) -> None:
        self.url = f"{srv.url}/lookup/sha256/{hit}"
        self.headers = bearer(token)
        self.want = hit.upper()
        self.cap = cap
        self.ok = self.dropped = 0
        self.wrong: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(threads)
        ]

    def _run(self) -> None:
        session = requests.Session()
        for _ in range(self.cap):
            if self._stop.is_set():
                break
            try:
                r = session.get(self.url, headers=self.headers, timeout=5)
            except requests.RequestException:
                self.dropped += 1  # its worker died: a new connection
                session = requests.Session()
                time.sleep(0.005)
                continue
            if r.status_code == 200 and r.json().get("SHA-256") == self.want:
                self.ok += 1
            else:
                self.wrong.append(f"{r.status_code} {r.text[:200]}")

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def _in_limiter(pid: int) -> bool:
    try:
        nr = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return nr.isdigit() and int(nr) == _NANOSLEEP


def test_worker_kills_under_load_inside_rate_limiter(data, tmp_path, monkeypatch):
    _, path, keys, token, hit = data
    # every take() sleeps 2 ms between reading the buckets and writing its
    # own: under load a worker spends most of its time there
    monkeypatch.setenv("HASHLOOKUP_TEST_LIMITER_PAUSE", "0.002")
    rng = random.Random(17)
    recoveries: list[float] = []
    inside = 0
    with Server(path, "--api-keys", str(keys), *_UNLIMITED, workdir=tmp_path) as srv:
        with _Load(srv, token, hit) as load:
            time.sleep(0.3)
            # the same probe without a kill: what the client and the load cost
            baseline = statistics.median(
                _answers(srv, token, RECOVERY) for _ in range(10)
            )
            for _ in range(KILLS):
                pids = _workers(srv)
                if pids:
                    victim = rng.choice(pids)
                    inside += _in_limiter(victim)
                    os.kill(victim, signal.SIGKILL)
                recoveries.append(_answers(srv, token, RECOVERY))
                time.sleep(rng.uniform(0.05, 0.2))
        assert load.ok > 0 and not load.wrong, load.wrong[:5]
        # the limiter still limits: a key of 1/s gets 429 after its burst
        slow = add_key(keys, "slow-after-kills", "--rate", "1", "--burst", "2")
        time.sleep(1.5)  # the keys file is re-read every second
        codes = [
            requests.get(
                srv.url + "/v1/ping", headers=bearer(slow), timeout=5
            ).status_code
            for _ in range(5)
        ]
        assert codes[:2] == [200, 200] and 429 in codes
        assert "giving up" not in srv.stderr()
    print(
        f"\n{KILLS} kills ({inside} inside the rate limiter), "
        f"{load.ok} answers, {load.dropped} dropped connections; answering "
        f"again after median {statistics.median(recoveries) * 1000:.0f} ms, "
        f"max {max(recoveries) * 1000:.0f} ms (without a kill: median "
        f"{baseline * 1000:.0f} ms)"
    )
    if _NANOSLEEP is not None:
        assert inside >= KILLS // 5, f"only {inside} kills inside the limiter"
    assert max(recoveries) < RECOVERY


def test_thirty_kills_quarter_second_apart(data, tmp_path):
    _, path, keys, token, hit = data
    rng = random.Random(30)
    with Server(path, "--api-keys", str(keys), *_UNLIMITED, workdir=tmp_path) as srv:
        with _Load(srv, token, hit) as load:
            for _ in range(30):
                pids = _workers(srv)
                if pids:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                time.sleep(0.25)
            took = _answers(srv, token, RECOVERY)
        assert not load.wrong, load.wrong[:5]
        deadline = time.monotonic() + RECOVERY
        while len(_workers(srv)) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_workers(srv)) == 2
        for _ in range(20):
            assert (
                requests.get(
                    srv.url + "/v1/ping",
                    timeout=5,
                    headers={**bearer(token), "Connection": "close"},
                ).status_code
                == 200
            )
        err = srv.stderr()
        # Most kills cause a restart; a kill that lands on a worker already
        # dead but not yet reaped (a loaded machine) causes none.
        assert "giving up" not in err and err.count("restarting it") >= 20
        code = srv.stop()
    assert code == 0
    print(f"\n30 kills 0.25 s apart: answering {took * 1000:.0f} ms after the last")


def test_watchdog_and_backoff(data, tmp_path, monkeypatch):
    _, path, keys, token, _ = data
    monkeypatch.setenv("HASHLOOKUP_WATCHDOG", "1")
    with Server(path, "--api-keys", str(keys), *_UNLIMITED, workdir=tmp_path) as srv:
        victim = _workers(srv)[0]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGSTOP)  # its event loop stops turning
        while victim in _workers(srv) and time.monotonic() - t0 < 10:
            _answers(srv, token, RECOVERY)  # the other worker answers meanwhile
            time.sleep(0.05)
        took = time.monotonic() - t0
        assert victim not in _workers(srv)
        assert "has not answered for" in srv.stderr()
        deadline = time.monotonic() + RECOVERY
        while len(_workers(srv)) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_workers(srv)) == 2
        # back-off: the same slot killed again and again within seconds of
        # its start waits longer each time, and /readyz (answered by the
        # other worker) says so
        keep = next(p for p in _workers(srv) if p != victim)
        warnings: list[str] = []
        for _ in range(4):
            deadline = time.monotonic() + RECOVERY
            while time.monotonic() < deadline:
                others = [p for p in _workers(srv) if p != keep]
                if others:
                    break
                time.sleep(0.02)
            os.kill(others[0], signal.SIGKILL)
            time.sleep(0.05)
            warnings = requests.get(srv.url + "/readyz", timeout=5).json()["warnings"]
        assert keep in _workers(srv)
        assert any("restarting with back-off" in w for w in warnings), warnings
        assert "(back-off: 4 deaths in a row" in srv.stderr()
    print(
        f"\nwatchdog (1 s): a stopped worker replaced after {took:.2f} s; "
        f"/readyz during back-off: {warnings}"
    )
    assert took < 1 + 2


def test_supervisor_sigkill_frees_port_and_temp_dir(data, tmp_path, monkeypatch):
    _, path, keys, token, hit = data
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    srv = Server(path, "--api-keys", str(keys), *_UNLIMITED, workdir=tmp_path)
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        pids = _workers(srv)
        assert len(pids) == 2
        stale = [p.name for p in tmp.iterdir()]
        assert stale == [
            f"hashlookup-bloom-{srv.proc.pid}-" + stale[0].rsplit("-", 1)[1]
        ]
        with _Load(srv, token, hit):
            time.sleep(0.3)
            t0 = time.monotonic()
            srv.proc.kill()
            srv.proc.wait(5)
            while not all(_gone(p) for p in pids) and time.monotonic() - t0 < 10:
                time.sleep(0.02)
            took = time.monotonic() - t0
        assert all(_gone(p) for p in pids), "workers outlived their supervisor"
        with socket.socket() as s:  # nothing listens on the port any more
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
    finally:
        srv.stop()
    assert (tmp / stale[0]).exists()  # left behind by the killed supervisor
    with Server(path, "--api-keys", str(keys), *_UNLIMITED, workdir=tmp_path) as again:
        assert not (tmp / stale[0]).exists()
        assert _answers(again, token, RECOVERY) < RECOVERY
    assert not list(tmp.iterdir())  # a clean stop removes its own
    print(f"\nsupervisor SIGKILLed: workers gone and port free after {took:.2f} s")
    assert took < STOP_DEADLINE


def test_sigterm_under_load_within_deadline(data, tmp_path):
    _, path, keys, token, hit = data
    figures = []
    for wedge in (False, True):
        srv = Server(path, "--api-keys", str(keys), *_UNLIMITED, workdir=tmp_path)
        try:
            pids = _workers(srv)
            with _Load(srv, token, hit) as load:
                time.sleep(0.5)
                if wedge:  # a worker that cannot stop gracefully
                    os.kill(pids[0], signal.SIGSTOP)
                t0 = time.monotonic()
                srv.proc.send_signal(signal.SIGTERM)
                code = srv.proc.wait(STOP_DEADLINE + 5)
                took = time.monotonic() - t0
        finally:
            srv.stop()
        assert not load.wrong, load.wrong[:5]
        assert code == 0 and "stopped" in srv.stderr()
        assert all(_gone(p) for p in pids)
        assert ("did not stop within" in srv.stderr()) == wedge
        figures.append(took)
        assert took < STOP_DEADLINE
    print(
        f"\nSIGTERM under load: stopped after {figures[0]:.2f} s; with a "
        f"stopped worker, killed at the deadline, {figures[1]:.2f} s"
    )


def test_limiter_across_processes_without_lock(monkeypatch):
    """Two forked processes take() for one client as fast as they can for
    1 s: together they get the burst plus the rate, within one request per
    other process; a process killed inside take() blocks nobody."""
    from hashlookup.server._ratelimit import RateLimiter

    rate, burst, seconds = 200.0, 50.0, 1.0
    limiter = RateLimiter(rate, burst, workers=3)
    start = time.monotonic() + 0.2
    pipes, pids = [], []
    for w in range(2):
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # a worker: count admissions until the end
            os.close(r)
            limiter.bind(w)
            n = 0
            while time.monotonic() < start:
                pass
            while time.monotonic() < start + seconds:
                n += limiter.take("client") == 0.0
            os.write(wfd, str(n).encode())
            os._exit(0)
        os.close(wfd)
        pipes.append(r)
        pids.append(pid)
    counts = []
    for r, pid in zip(pipes, pids):
        with os.fdopen(r) as f:
            counts.append(int(f.read()))
        os.waitpid(pid, 0)
    total = sum(counts)
    print(
        f"\n2 processes, 1 s, rate {rate:g}/s, burst {burst:g}: {counts} admitted, "
        f"{total} in all (a single bucket: {burst + rate * seconds:g})"
    )
    assert min(counts) > 0
    # Contention costs at most one request per other process at a time, repaid
    # by later refusals; a process preempted between a check's read and its
    # write near the end of the window leaves a few unrepaid (256 seen on a
    # loaded 2-core machine), and a process starved of CPU takes fewer.  The
    # bounds, 10 % around a single bucket, still tell a shared limit from
    # per-process buckets (twice as many) or lost admissions.
    single = burst + rate * seconds
    assert 0.9 * single <= total <= 1.1 * single
    # slot 2 dies paused inside take(), between its read and its write
    monkeypatch.setenv("HASHLOOKUP_TEST_LIMITER_PAUSE", "30")
    pid = os.fork()
    if pid == 0:
        limiter.bind(2)
        limiter.take("other")
        os._exit(0)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    monkeypatch.delenv("HASHLOOKUP_TEST_LIMITER_PAUSE")
    limiter.bind(0)  # this process, as slot 0: not blocked, still limiting
    t0 = time.monotonic()
    got = [limiter.take("other") for _ in range(60)]
    assert time.monotonic() - t0 < 0.5
    assert got[:50] == [0.0] * 50 and all(g > 0 for g in got[52:])


def test_failed_bind_names_the_address_and_leaves_no_temp_dir(data, tmp_path):
    import subprocess
    import sys

    _, path, keys, _, _ = data
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "hashlookup",
                "serve",
                str(path),
                "--port",
                str(port),
                "--api-keys",
                str(keys),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TMPDIR": str(tmp)},
        )
    assert out.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr, out.stderr
    assert not list(tmp.iterdir())


def test_dead_worker_open_connections_gauge_zeroed():
    # a worker killed with connections open: the kernel closed them, so the
    # supervisor zeroes its gauge rather than leave the last value showing
    # until a replacement binds the slot
    from hashlookup.server._metrics import Metrics

    metrics = Metrics(2)
    metrics.bind(1)
    metrics.connections(7)
    metrics.bind(0)
    metrics.connections(3)
    gauge = re.compile(r'^hashlookup_connections_open\{worker="(\d)"\} (\S+)$', re.M)
    before = dict(gauge.findall(metrics.render(0).decode()))
    assert before == {"0": "3", "1": "7"}
    metrics.worker_gone(1)
    after = dict(gauge.findall(metrics.render(0).decode()))
    assert after == {"0": "3", "1": "0"}
