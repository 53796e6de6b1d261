"""Reloads that must not make the service lie or fall over: a real
`hashlookup serve --workers 2` on loopback under load, its dataset replaced
50 times by damaged (valid header, bad body), truncated, older and valid
files, then its workers killed while the file on disk (dataset or keys) is
bad.

- Under load, no request fails and every answer is exactly the one of the
  generation it names (X-Dataset-Version, the record's and the batch's
  generation field), checked against a dict oracle per generation; only
  valid files' generations ever answer.
- A valid newer file is served by every worker within SWITCH seconds (its
  body checked by one worker for all); a refused one never is, and every
  worker's /readyz names it (file, generation, reason) within SWITCH
  seconds, still ready.
- A worker killed while the file on disk is bad (damaged, truncated, older,
  missing) or the keys file is corrupt comes back within RECOVERY seconds
  serving the last good generation with the last good keys, and its
  /readyz reports the bad file.

Bounded in time and requests; synthetic data, fixed seeds; Linux (/proc).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests

import hashlookup
from server_utils import Server, add_key, algorithm_of, bearer, make_dataset

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        not Path("/proc/self/task").is_dir(), reason="needs Linux /proc"
    ),
]

#: every worker serves a valid replacement, or reports a refused one, within
SWITCH = 10.0
#: a killed worker is replaced and answers within
RECOVERY = 6.0
REPLACEMENTS = 50
VALID = 12  # of them valid (generations 4, 6, ... ascending); the rest bad
BAD_GENERATION = 999  # damaged and truncated files: never a valid generation
OLD_GENERATION = 1  # the older file: lower than every valid one
#: what the /readyz warning of a refused file says, per kind
REASON = {"damaged": "checksum mismatch", "truncated": "", "older": "is older than"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Valid files of generations 2, 4, ..., 2 * (VALID + 1), each with its
    oracle (digest -> record), and the sources of the bad ones."""
    d = tmp_path_factory.mktemp("reload-faults")
    valid = {}
    for i in range(VALID + 1):
        gen = 2 * (i + 1)
        valid[gen] = make_dataset(
            d, n=250, seed=900 + i, name=f"g{gen}.hlds", generation=gen
        )
    newer, _ = make_dataset(
        d, n=250, seed=77, name="g999.hlds", generation=BAD_GENERATION
    )
    older, _ = make_dataset(
        d, n=250, seed=78, name="g1.hlds", generation=OLD_GENERATION
    )
    return d, valid, newer, older


def damaged_copy(src: Path, dst: Path, rng: random.Random) -> None:
    """`src` with a run of bytes inverted in a key table or the record
    table: the header stays valid (the file opens), a body checksum not."""
    with hashlookup.open_dataset(src) as ds:
        g = ds.current()
        spans = [(o, w * n) for o, w, n in g.key_spans.values()]
        spans.append((g.records_offset, 16 * g.count))
    data = bytearray(src.read_bytes())
    offset, length = rng.choice(spans)
    at = offset + rng.randrange(0, max(1, length - 64))
    data[at : at + 64] = bytes(b ^ 0xFF for b in data[at : at + 64])
    dst.write_bytes(data)


def truncated_copy(src: Path, dst: Path, rng: random.Random) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: rng.randrange(1, len(data) - 1)])


def put(src: Path, live: Path) -> None:
    """Replace `live` atomically, as build and update do."""
    tmp = live.with_name(live.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, live)


def _workers(srv: Server) -> list[int]:
    pid = srv.proc.pid
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def _fresh(srv: Server, path: str, token: str) -> requests.Response:
    """One request on a new connection (the kernel picks the worker)."""
    return requests.get(
        srv.url + path, timeout=5, headers={**bearer(token), "Connection": "close"}
    )


def _every_worker(srv: Server, token: str, ok, limit: float, n: int = 12) -> float:
    """Wait for `n` answers of /readyz in a row, each on a new connection,
    that satisfy ok(json); fails after `limit`.  Returns the seconds until
    the first of them was asked (the n answers only confirm it)."""
    t0 = time.monotonic()
    row = 0
    last = None
    start = t0
    while row < n:
        asked = time.monotonic()
        try:
            r = _fresh(srv, "/readyz", token)
            last = r.json()
            row = row + 1 if ok(last) else 0
        except requests.RequestException:
            row = 0
        if row == 1:
            start = asked
        if time.monotonic() - t0 > limit:
            raise AssertionError(
                f"not within {limit} s: {last}\n{srv.stderr()[-3000:]}"
            )
        if row < n:
            time.sleep(0.01)
    return start - t0


class _Load:
    """Client threads querying until stopped: single lookups (hits of every
    generation and misses) and /v1/check batches.  Every answer is checked
    against the oracle of the generation it names; any other status, any
    failed request, any generation not in `valid` is a failure."""

    def __init__(self, srv: Server, token: str, valid: dict, threads: int = 3):
        self.srv, self.valid = srv, valid
        self.headers = bearer(token)
        universe = sorted({h for _, o in valid.values() for h in o})
        rng = random.Random(5)
        self.probe = rng.sample(universe, 150) + [
            rng.randbytes(n).hex() for n in (16, 20, 32) for _ in range(10)
        ]
        self.answers: dict[int, int] = {}
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True)
            for i in range(threads)
        ]

    def _oracle(self, gen: int, where: str) -> dict | None:
        if gen not in self.valid:
            self.failures.append(f"{where}: generation {gen} answered")
            return None
        with self._lock:
            self.answers[gen] = self.answers.get(gen, 0) + 1
        return self.valid[gen][1]

    def _lookup(self, s: requests.Session, digest: str) -> None:
        r = s.get(f"{self.srv.url}/lookup/{algorithm_of(digest)}/{digest}", timeout=10)
        gen = int(r.headers["x-dataset-version"])
        oracle = self._oracle(gen, "lookup")
        if oracle is None:
            return
        rec = oracle.get(digest)
        if rec is None:
            if r.status_code != 404:
                self.failures.append(f"gen {gen}: {r.status_code} for a miss")
            return
        if r.status_code != 200:
            self.failures.append(f"gen {gen}: {r.status_code} for a hit")
            return
        body = r.json()
        got = [body.get(k, "").lower() or None for k in ("MD5", "SHA-1", "SHA-256")]
        want = [rec[a] for a in ("md5", "sha1", "sha256")]
        if body["hashlookup:generation"] != gen or got != want:
            self.failures.append(f"gen {gen}: wrong record {got} != {want}")
        elif sorted(body["hashlookup:labels"]) != rec["labels"]:
            self.failures.append(f"gen {gen}: wrong labels")

    def _check(self, s: requests.Session, batch: list[str]) -> None:
        r = s.post(f"{self.srv.url}/v1/check", json={"hashes": batch}, timeout=10)
        if r.status_code != 200:
            self.failures.append(f"check: status {r.status_code}")
            return
        body = r.json()
        gen = body["generation"]
        if int(r.headers["x-dataset-version"]) != gen:
            self.failures.append("check: header and body disagree")
        oracle = self._oracle(gen, "check")
        if oracle is None:
            return
        got = [x["status"] for x in body["results"]]
        want = ["hit" if h in oracle else "miss" for h in batch]
        if got != want:
            self.failures.append(f"check: not generation {gen}'s answers")

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as s:
            s.headers.update(self.headers)
            for i in range(200_000):  # bounded; stopped long before
                if self._stop.is_set():
                    return
                try:
                    if i % 8 == 0:
                        self._check(s, rng.sample(self.probe, 40))
                    else:
                        self._lookup(s, rng.choice(self.probe))
                except Exception as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def _plan(rng: random.Random) -> list[str]:
    """The kinds of the 50 replacements: VALID valid ones, the rest bad."""
    bad = REPLACEMENTS - VALID
    kinds = ["valid"] * VALID + [
        ("damaged", "truncated", "older")[i % 3] for i in range(bad)
    ]
    rng.shuffle(kinds)
    return kinds


def test_replacements_under_load_and_kills_while_the_file_is_bad(files, tmp_path):
    _, valid, newer, older = files
    rng = random.Random(1717)
    live = tmp_path / "live.hlds"
    put(valid[2][0], live)
    keys = tmp_path / "keys.json"
    token = add_key(keys, "load")
    next_valid = iter(sorted(valid)[1:])
    current = 2
    switches: list[float] = []
    refusals: dict[str, list[float]] = {"damaged": [], "truncated": [], "older": []}
    with Server(
        live,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--reload-interval",
        "0.1",
        "--no-audit-log",
        workdir=tmp_path,
    ) as srv:
        with _Load(srv, token, valid) as load:
            previous = "valid"
            plan = _plan(rng)
            for n, kind in enumerate(plan):
                src = tmp_path / f"replacement-{n}.hlds"
                if kind == "valid":
                    current = next(next_valid)
                    shutil.copyfile(valid[current][0], src)
                elif kind == "damaged":
                    damaged_copy(newer, src, rng)
                elif kind == "truncated":
                    truncated_copy(rng.choice([newer, valid[current][0]]), src, rng)
                else:  # older: the old-numbered file, or an earlier valid one
                    earlier = [g for g in valid if g < current]
                    pick = rng.choice([OLD_GENERATION, *earlier])
                    shutil.copyfile(
                        older if pick == OLD_GENERATION else valid[pick][0], src
                    )
                put(src, live)
                if kind == "valid":
                    switches.append(
                        _every_worker(
                            srv,
                            token,
                            lambda j, g=current: (
                                j["generation"] == g and not j["warnings"]
                            ),
                            SWITCH,
                        )
                    )
                else:
                    # after another refusal its warning may read the same:
                    # give the workers time to look at this file first
                    clean = previous == "valid"
                    if not clean:
                        time.sleep(0.3)
                    took = _every_worker(
                        srv,
                        token,
                        lambda j, g=current, why=REASON[kind]: (
                            j["generation"] == g
                            and j["status"] == "ready"
                            and any(
                                "dataset file refused" in w
                                and str(live) in w
                                and why in w
                                for w in j["warnings"]
                            )
                        ),
                        SWITCH,
                    )
                    if clean:  # timed from the rename
                        refusals[kind].append(took)
                previous = kind
                time.sleep(0.05)
        assert not load.failures, load.failures[:5]
        assert set(load.answers) <= set(valid) and current in load.answers
        total = sum(load.answers.values())
        err = srv.stderr()
        assert "checksum mismatch" in err and "is older than generation" in err
        # a refused file is named with its reason and generation
        assert f"(generation {BAD_GENERATION})" in err
        # each valid file's body was checked by one worker, for both
        assert err.count("body checked here") == VALID, err[-3000:]
        killed = _kills_while_bad(
            srv, token, live, keys, valid, current, newer, older, rng
        )
        assert "giving up" not in srv.stderr()
    refused = [t for v in refusals.values() for t in v]
    print(
        f"\n{REPLACEMENTS} replacements under load ({VALID} valid, "
        + ", ".join(f"{plan.count(k)} {k}" for k in refusals)
        + f"): {total} answers checked, none wrong or lost; every worker on a "
        f"valid file after median {statistics.median(switches) * 1000:.0f} ms "
        f"(max {max(switches) * 1000:.0f}); a refused file (after a valid one) "
        f"in every worker's /readyz after median "
        f"{statistics.median(refused) * 1000:.0f} ms "
        f"(max {max(refused) * 1000:.0f}); "
        f"{killed}"
    )


def _kill_all(srv: Server) -> list[float]:
    """SIGKILL each worker in turn, waiting for its replacement; the times
    the service took to answer again on a new connection."""
    took = []
    for victim in _workers(srv):
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        while True:
            pids = _workers(srv)
            if victim not in pids and len(pids) == 2:
                try:
                    if requests.get(srv.url + "/healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
            assert time.monotonic() - t0 < RECOVERY, srv.stderr()[-3000:]
            time.sleep(0.01)
        took.append(time.monotonic() - t0)
    return took


def _kills_while_bad(srv, token, live, keys, valid, current, newer, older, rng) -> str:
    """Every worker killed while the file on disk is bad: its replacement
    serves the last good generation (checked against its oracle) and
    reports the bad file."""
    oracle = valid[current][1]
    hits = list(oracle)[:40]
    times: list[float] = []
    for kind in ("damaged", "truncated", "older", "missing"):
        src = tmp = live.with_name(f"bad-{kind}.hlds")
        if kind == "damaged":
            damaged_copy(newer, src, rng)
        elif kind == "truncated":
            truncated_copy(newer, src, rng)
        elif kind == "older":
            shutil.copyfile(older, tmp)
        if kind == "missing":
            os.unlink(live)
        else:
            put(src, live)
        time.sleep(0.3)  # the running workers see it
        times += _kill_all(srv)
        want_ready = kind != "missing"  # a missing file is a problem (503)

        def reports(j, want_ready=want_ready):
            if j["generation"] != current:
                return False
            if not want_ready:
                return j["status"] == "not ready" and "missing" in " ".join(
                    j["problems"]
                )
            return j["status"] == "ready" and any(
                "dataset file refused" in w and str(live) in w for w in j["warnings"]
            )

        _every_worker(srv, token, reports, SWITCH)
        for h in hits:
            r = _fresh(srv, f"/lookup/{algorithm_of(h)}/{h}", token)
            assert r.status_code == 200 and r.json()["hashlookup:generation"] == current
            assert (
                r.json()[
                    {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}[
                        algorithm_of(h)
                    ]
                ]
                == h.upper()
            )
    put(valid[current][0], live)  # a good file again (a new copy of the same)
    # a corrupt keys file: new workers start with the keys loaded before
    saved = keys.read_bytes()
    keys.write_text("{not json")

    def keys_reported(j):
        return any("keys file not loaded" in w for w in j["warnings"])

    _every_worker(srv, token, keys_reported, SWITCH)  # the running workers
    assert _fresh(srv, "/v1/ping", token).status_code == 200
    times += _kill_all(srv)
    _every_worker(srv, token, keys_reported, SWITCH)  # the new ones
    assert _fresh(srv, "/v1/ping", token).status_code == 200
    keys.write_bytes(saved)
    _every_worker(srv, token, lambda j: not j["warnings"], SWITCH)
    return (
        f"{len(times)} worker kills while the dataset was damaged, truncated, "
        f"older, missing, or the keys corrupt: both workers back and answering "
        f"after median {statistics.median(times) * 1000:.0f} ms, max "
        f"{max(times) * 1000:.0f} ms (back-off: each slot killed 5 times within "
        f"seconds), serving generation {current}"
    )


def test_allow_older_generation(files, tmp_path):
    """With --allow-older-generation a lower generation number is served
    (a rollback without a restart)."""
    _, valid, _, older = files
    live = tmp_path / "live.hlds"
    put(valid[4][0], live)
    with Server(
        live,
        "--no-auth",
        "--rate-limit",
        "0",
        "--reload-interval",
        "0.1",
        "--allow-older-generation",
        workdir=tmp_path,
    ) as srv:
        put(older, live)
        _every_worker(srv, "", lambda j: j["generation"] == OLD_GENERATION, SWITCH)
        put(valid[2][0], live)
        _every_worker(srv, "", lambda j: j["generation"] == 2, SWITCH)


def test_last_good_keeps_what_workers_report(files, tmp_path):
    """The supervisor's side alone: it keeps the file a (forked) worker
    reports, not what the path names later, ignores an older report, and
    keeps the last keys file that loaded."""
    from hashlookup.server._files import LastGood

    _, valid, _, _ = files
    live = tmp_path / "live.hlds"
    put(valid[2][0], live)
    keys = tmp_path / "keys.json"
    add_key(keys, "first")
    said: list[str] = []
    last = LastGood(str(live), str(keys), False, said.append)
    try:
        last.open_first({}).close()
        last.load_keys()
        assert last.generation == 2 and len(last.keys) == 1

        def report(gen: int) -> None:
            put(valid[gen][0], live)
            fd = os.open(live, os.O_RDONLY)
            pid = os.fork()
            if pid == 0:  # a worker
                last.child_started()
                last.report(fd, gen)
                os._exit(0)
            os.close(fd)
            os.waitpid(pid, 0)
            last.poll(time.monotonic(), 1.0)

        report(6)
        report(4)  # older than the kept one: ignored
        put(valid[8][0], live)  # not reported: not kept
        with hashlookup.Dataset.open(live, source=last.source()) as ds:
            assert ds.generation == last.generation == 6
        keys.write_text("{broken")
        for _ in range(3):
            last.poll(time.monotonic() + 10, 1.0)
        assert len(last.keys) == 1 and len(said) == 1 and "keys file" in said[0]
        keys.unlink()
        add_key(keys, "second")
        add_key(keys, "third")
        last.poll(time.monotonic() + 20, 1.0)
        assert len(last.keys) == 2
    finally:
        last.close()


def test_body_check_once_and_lock_survives_a_killed_holder(tmp_path):
    """LastGood.checked across forked workers: a verdict (good or refused)
    is taken by the others without a second check, and a worker killed
    while it holds the lock, inside a check, blocks nobody."""
    from hashlookup.errors import IndexFormatError
    from hashlookup.server._files import LastGood

    last = LastGood(str(tmp_path / "none.hlds"), None, False, print)
    try:

        def in_child(key, check) -> int:
            pid = os.fork()
            if pid == 0:
                try:
                    last.checked(key, check)
                finally:
                    os._exit(0)
            return pid

        def refuse(verify):
            raise IndexFormatError("bad body")

        os.waitpid(in_child([1], refuse), 0)
        calls: list[bool] = []
        with pytest.raises(IndexFormatError, match="bad body"):
            last.checked([1], lambda verify: calls.append(verify))
        assert calls == []  # taken from the verdict, not checked again
        good = object()
        os.waitpid(in_child([2], lambda verify: good), 0)
        got, who = last.checked([2], lambda verify: calls.append(verify) or good)
        assert got is good and calls == [False] and who == "by another worker"
        r, w = os.pipe()

        def hang(verify):
            os.write(w, b"x")
            time.sleep(60)

        pid = in_child([3], hang)
        os.read(r, 1)  # the child holds the lock, inside its check
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        t0 = time.monotonic()
        got, who = last.checked([3], lambda verify: calls.append(verify) or good)
        assert time.monotonic() - t0 < 1 and calls == [False, True]
        assert who.startswith("here")
        os.close(r)
        os.close(w)
    finally:
        last.close()
