"""Crash safety of writes: SIGKILL during `hashlookup build`, a full disk
(RLIMIT_FSIZE), and files changed on disk under an open handle.

Every kill is a real SIGKILL of a real process running `hashlookup build`
(the CLI's main), over an existing index and over an existing dataset.  The
builds run in children forked from a warm fork server (tests/crash_child.py),
which saves the interpreter start-up per kill; a few more kills hit
`python -m hashlookup build` processes started from scratch.  Kill points:

* deterministic: the child kills itself at step k of the atomic write
  (temporary file created, each half of each write, flush, fchmod, fsync,
  replace, directory fsync), for every k;
* timed: the child is killed after a delay spread finely over the build's
  measured duration (reading, sorting, building the sections, writing).

Afterwards the target must hold the complete old file (byte for byte) or the
complete new one (verify() passes, the keys are exactly the new input's),
and the only leftovers allowed are temporary files named after the killed
process (docs/SAFETY.md), which the next build removes.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import hashlookup
from hashlookup._atomic import temp_prefix

PY = sys.executable
CHILD = str(Path(__file__).with_name("crash_child.py"))
# Imports everything first, says so, then runs the CLI: timed kills are
# measured from "ready", so that they land in the build, not in start-up.
READY_CHILD = (
    "import sys, hashlookup.cli; sys.stdout.write('ready\\n'); "
    "sys.stdout.flush(); sys.exit(hashlookup.cli.main(sys.argv[1:]))"
)
WORKERS = 3
TIMED_INDEX_KILLS = 40
CLI_KILLS = 6
TIMED_DATASET_KILLS = 20
DATASET_STEP_STRIDE = 1


def _write_list(path: Path, keys: np.ndarray) -> None:
    path.write_text("".join(bytes(k).hex() + "\n" for k in keys))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """kind -> (old list, new list, the new list's keys sorted).  Datasets
    take longer to build per key: they get smaller lists, so that both
    campaigns take about the same time."""
    d = tmp_path_factory.mktemp("crash_inputs")
    rng = np.random.default_rng(20260601)
    out = {}
    for kind, n in (("index", 200_000), ("dataset", 60_000)):
        old = rng.integers(0, 256, (n // 2, 16), dtype=np.uint8)
        new = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        _write_list(d / f"old-{kind}.txt", old)
        _write_list(d / f"new-{kind}.txt", new)
        keys = np.unique(new.view("V16").ravel()).view(np.uint8).reshape(-1, 16)
        out[kind] = (d / f"old-{kind}.txt", d / f"new-{kind}.txt", keys)
    return out


def _build_args(kind: str, target: Path, src: Path) -> list[str]:
    if kind == "index":
        return ["build", "--index", "-q", "-o", str(target), str(src)]
    return ["build", "-q", "-o", str(target), f"police={src}"]


def _stray(directory: Path, base: str) -> list[str]:
    return [
        n
        for n in os.listdir(directory)
        if n.startswith(f".{base}.") and n.endswith(".tmp")
    ]


class _Target:
    """One worker's directory: a target reset to the old file before each kill."""

    def __init__(self, root: Path, kind: str, inputs, old_bytes: bytes, name: str):
        self.dir = root / name
        self.dir.mkdir()
        self.kind = kind
        self.src = inputs[kind][1]
        self.new_keys = inputs[kind][2]
        self.old = old_bytes
        self.path = self.dir / ("known.hlx" if kind == "index" else "known.hlds")
        self.killed: list[int] = []  # pids killed here (their temp files may stay
        # until a build gets as far as writing)
        self.server = _Server(self.dir)

    def reset(self) -> None:
        tmp = self.dir / "reset.part"
        tmp.write_bytes(self.old)
        os.replace(tmp, self.path)

    def check(self, pid: int | None) -> str:
        """Assert the target is the complete old or new file; returns which,
        and whether the killed process left a temporary file."""
        if pid is not None:
            self.killed.append(pid)
        leftovers = _stray(self.dir, self.path.name)
        patterns = [
            re.compile(re.escape(temp_prefix(self.path.name, p)) + r"[a-z0-9_]+\.tmp\Z")
            for p in self.killed
        ]
        for name in leftovers:
            assert any(p.match(name) for p in patterns), (
                f"unexpected leftover {name} (killed: {self.killed})"
            )
        data = self.path.read_bytes()
        tag = (
            "+tmp"
            if pid is not None and any(patterns[-1].match(n) for n in leftovers)
            else ""
        )
        if data == self.old:
            return "old" + tag
        if self.kind == "index":
            with hashlookup.open_index(self.path) as index:
                index.verify()
                assert np.array_equal(index.keys(), self.new_keys)
        else:
            with hashlookup.open_dataset(self.path) as ds:
                ds.verify()
                assert ds.generation == 2
                assert len(ds) == len(self.new_keys)
                assert np.array_equal(ds.table("md5").keys(), self.new_keys)
        return "new" + tag


def _old_file(kind: str, root: Path, inputs) -> bytes:
    path = root / ("old.hlx" if kind == "index" else "old.hlds")
    src = inputs[kind][0]
    if kind == "index":
        hashlookup.build_index(str(src), path)
    else:
        hashlookup.build_dataset({"police": str(src)}, path, generation=1)
    return path.read_bytes()


class _Server:
    """One crash_child.py fork server (see there)."""

    def __init__(self, directory: Path) -> None:
        self.log = open(directory / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PY, CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )

    def run(
        self, step: int, delay: float, step_file: Path, args: list[str]
    ) -> tuple[int, float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(
            json.dumps(
                {
                    "step": step,
                    "delay": delay,
                    "step_file": str(step_file),
                    "args": args,
                }
            )
            + "\n"
        )
        self.proc.stdin.flush()
        code, elapsed, pid = self.proc.stdout.readline().split()
        return int(code), float(elapsed), int(pid)

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.log.close()


def _run_step_kill(t: _Target, step: int) -> str:
    t.reset()
    code, _, pid = t.server.run(
        step, -1.0, t.dir / "steps", _build_args(t.kind, t.path, t.src)
    )
    if step > 0:
        assert code == -signal.SIGKILL, (step, code)
        return t.check(pid)
    assert code == 0, code
    return "complete"


def _run_timed_kill(t: _Target, delay: float) -> tuple[str, float]:
    """SIGKILL the build `delay` seconds after it started (fork server);
    returns the outcome and the run time (delay < 0: never killed).  On this
    shared machine build times vary: a build that finished before its kill
    is checked, then run again with a shorter delay (at most 4 times)."""
    for _ in range(4):
        t.reset()
        code, elapsed, pid = t.server.run(
            0, delay, t.dir / "steps", _build_args(t.kind, t.path, t.src)
        )
        if code != 0:
            break
        assert t.check(None) == "new"
        if delay < 0:
            return "complete", elapsed
        delay *= 0.75
    else:
        return "completed", elapsed
    assert code == -signal.SIGKILL, code
    return t.check(pid), elapsed


def _run_cli_kill(t: _Target, delay: float) -> str:
    """The same with `python -m hashlookup build` started from scratch: the
    kill lands `delay` seconds after its imports are done."""
    t.reset()
    proc = subprocess.Popen(
        [PY, "-c", READY_CHILD, *_build_args(t.kind, t.path, t.src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)  # no-op if it has exited (and is reaped)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode == 0:
        assert t.check(None) == "new"
        return "completed"
    assert proc.returncode == -signal.SIGKILL
    return t.check(proc.pid)


def _kill_campaign(
    kind: str, root: Path, inputs, timed_kills: int, stride: int = 1
) -> dict[str, int]:
    old = _old_file(kind, root, inputs)
    targets = [_Target(root, kind, inputs, old, f"w{i}") for i in range(WORKERS)]
    # One unkilled run of each kind: the number of write steps, the build time.
    assert _run_step_kill(targets[0], 0) == "complete"
    steps = int((targets[0].dir / "steps").read_text())
    assert steps >= 10
    # Build time under the same load as the kills (WORKERS at once).
    with ThreadPoolExecutor(WORKERS) as pool:
        build_time = max(
            e for _, e in pool.map(lambda t: _run_timed_kill(t, -1.0), targets)
        )
    jobs = [("step", k) for k in range(1, steps + 1, stride)]
    if (steps - 1) % stride:
        jobs.append(("step", steps))  # the very last step (after the replace)
    # Delays from 0 to 110% of the build time, finely spaced.
    jobs += [
        ("timed", 1.1 * build_time * (i + 0.5) / timed_kills)
        for i in range(timed_kills)
    ]

    # A few kills of `python -m hashlookup build` started from scratch.
    jobs += [
        ("cli", 1.1 * build_time * (i + 0.5) / CLI_KILLS) for i in range(CLI_KILLS)
    ]

    def worker(w: int) -> list[str]:
        out = []
        for how, arg in jobs[w::WORKERS]:
            if how == "step":
                out.append(f"step:{_run_step_kill(targets[w], int(arg))}")
            elif how == "timed":
                out.append(f"timed:{_run_timed_kill(targets[w], float(arg))[0]}")
            else:
                out.append(f"cli:{_run_cli_kill(targets[w], float(arg))}")
        return out

    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            outcomes = [o for part in pool.map(worker, range(WORKERS)) for o in part]
    finally:
        for t in targets:
            t.server.close()
    summary: dict[str, int] = {}
    for o in outcomes:
        summary[o] = summary.get(o, 0) + 1
    # The last kills may have left temporary files: one normal build removes
    # those of dead processes and leaves exactly the new file.
    for t in targets:
        t.reset()
        proc = subprocess.run(
            [PY, "-m", "hashlookup", *_build_args(t.kind, t.path, t.src)],
            capture_output=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert _stray(t.dir, t.path.name) == []
        assert t.check(None) == "new"
    print(
        f"\n{kind}: {len(outcomes)} kill points "
        f"({len(jobs) - timed_kills - CLI_KILLS} of {steps} write steps, "
        f"{CLI_KILLS} of whole CLI processes, "
        f"{timed_kills} timed over {build_time * 1000:.0f} ms): {summary}"
    )
    return summary


@pytest.mark.timeout(300)
def test_sigkill_during_index_build(tmp_path, inputs):
    summary = _kill_campaign("index", tmp_path, inputs, TIMED_INDEX_KILLS)
    killed = sum(v for k, v in summary.items() if "completed" not in k)
    assert killed >= 50
    # Both outcomes and the temp-file case were actually exercised.
    assert summary.get("timed:old", 0) and summary.get("step:old+tmp", 0)
    assert summary.get("step:new", 0)


@pytest.mark.timeout(300)
def test_sigkill_during_dataset_build(tmp_path, inputs):
    summary = _kill_campaign(
        "dataset", tmp_path, inputs, TIMED_DATASET_KILLS, DATASET_STEP_STRIDE
    )
    killed = sum(v for k, v in summary.items() if "completed" not in k)
    assert killed >= 50
    assert summary.get("step:old+tmp", 0) and summary.get("step:new", 0)


def test_stale_temp_files_of_live_processes_and_other_hosts_are_kept(tmp_path):
    target = tmp_path / "known.hlx"
    hashlookup.build_index(["d41d8cd98f00b204e9800998ecf8427e"], target)
    dead = subprocess.run(
        [PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    mine = tmp_path / f"{temp_prefix(target.name)}abc123.tmp"
    gone = tmp_path / f"{temp_prefix(target.name, int(dead))}abc123.tmp"
    other_host = tmp_path / f".known.hlx.{dead}@elsewhere-host.abc123.tmp"
    unrelated = tmp_path / ".other.hlx.1.tmp"
    for p in (mine, gone, other_host, unrelated):
        p.write_bytes(b"partial")
    hashlookup.build_index(["d41d8cd98f00b204e9800998ecf8427e"], target)
    assert not gone.exists()
    assert mine.exists() and other_host.exists() and unrelated.exists()


# ---------------------------------------------------------------------------
# out of space


def _limit_file_size(limit: int):
    def apply() -> None:
        # Python already ignores SIGXFSZ; make sure, so that a write past the
        # limit fails with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("kind", ["index", "dataset"])
@pytest.mark.parametrize("limit", [0, 1 << 20])
def test_file_size_limit_fails_cleanly(tmp_path, inputs, kind, limit):
    old = _old_file(kind, tmp_path, inputs)
    target = tmp_path / ("known.hlx" if kind == "index" else "known.hlds")
    target.write_bytes(old)
    proc = subprocess.run(
        [PY, "-m", "hashlookup", *_build_args(kind, target, inputs[kind][1])],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size(limit),
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("hashlookup: error:"), err
    assert "File too large" in err and str(target) in err, err
    assert "nothing was replaced" in err, err
    assert "Traceback" not in proc.stderr
    assert target.read_bytes() == old
    assert _stray(tmp_path, target.name) == []


_FULL_DISK = """
import json, os, shutil, subprocess, sys
directory, old, new_list, kind = sys.argv[1:5]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", directory],
               check=True)
target = os.path.join(directory, "known.hlx" if kind == "index" else "known.hlds")
shutil.copy(old, target)
args = (["build", "--index", "-q", "-o", target, new_list] if kind == "index"
        else ["build", "-q", "-o", target, "police=" + new_list])
p = subprocess.run([sys.executable, "-m", "hashlookup", *args],
                   capture_output=True, text=True)
with open(target, "rb") as a, open(old, "rb") as b:
    same = a.read() == b.read()
print(json.dumps({"rc": p.returncode, "err": p.stderr, "same": same,
                  "files": sorted(os.listdir(directory))}))
"""


@pytest.mark.parametrize("kind", ["index", "dataset"])
def test_full_disk_fails_cleanly(tmp_path, inputs, kind):
    """A real ENOSPC: a 3 MiB tmpfs in a private user and mount namespace
    (needs unprivileged user namespaces; the RLIMIT_FSIZE test above is the
    one that always runs)."""
    old = tmp_path / "old.file"
    old.write_bytes(_old_file(kind, tmp_path, inputs))
    assert old.stat().st_size < 3 << 20  # fits; the new file does not
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        proc = subprocess.run(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                PY,
                "-c",
                _FULL_DISK,
                str(mnt),
                str(old),
                str(inputs[kind][1]),
                kind,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except FileNotFoundError:
        pytest.skip("unshare(1) is not installed")
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"no private tmpfs here: {proc.stderr.strip()[:200]}")
    result = json.loads(proc.stdout)
    assert result["rc"] == 2, result
    assert "No space left on device while writing" in result["err"], result
    assert "nothing was replaced" in result["err"], result
    assert result["same"], result
    assert result["files"] == ["known.hlx" if kind == "index" else "known.hlds"]


# ---------------------------------------------------------------------------
# files changed on disk under an open handle (docs/SAFETY.md)


def test_verify_detects_in_place_modification_of_open_index(tmp_path):
    keys = np.random.default_rng(5).integers(0, 256, (5000, 20), dtype=np.uint8)
    path = tmp_path / "k.hlx"
    hashlookup.build_index(keys, path)
    # File systems stamp mtime with a coarse clock: start from a past mtime so
    # that the edit below surely changes it, as a later edit would.
    past = time.time_ns() - 60 * 10**9
    os.utime(path, ns=(past, past))
    index = hashlookup.open_index(path)
    ds = hashlookup.open_dataset(path)
    try:
        index.verify()
        ds.verify()
        size = path.stat().st_size
        for pos in (20, 4096 + 7, size - 3):  # header, keys, metadata
            with open(path, "r+b") as f:  # what operators must not do
                f.seek(pos)
                b = f.read(1)
                f.seek(pos)
                f.write(bytes([b[0] ^ 0x40]))
            with pytest.raises(
                hashlookup.IndexFormatError, match="changed on disk after it was opened"
            ):
                index.verify()
            with pytest.raises(
                hashlookup.IndexFormatError, match="changed on disk after it was opened"
            ):
                ds.verify()
            with open(path, "r+b") as f:  # undo; the checksums pass again,
                f.seek(pos)  # but the file was still modified
                f.write(b)
            with pytest.raises(hashlookup.IndexFormatError, match="changed on disk"):
                index.verify()
    finally:
        index.close()
        ds.close()


def test_verify_detects_in_place_truncation_without_touching_the_pages(tmp_path):
    # In a subprocess: if verify() read past the new end, SIGBUS would kill
    # the process, and that must show as a failure, not end the test run.
    code = f"""
import os, numpy as np, hashlookup
path = {str(tmp_path / "k.hlx")!r}
keys = np.random.default_rng(6).integers(0, 256, (50000, 16), dtype=np.uint8)
hashlookup.build_index(keys, path)
index = hashlookup.open_index(path)
ds = hashlookup.open_dataset(path)
os.truncate(path, 8192)
for h in (index, ds):
    try:
        h.verify()
    except hashlookup.IndexFormatError as e:
        print("refused:", e)
    else:
        print("not detected")
"""
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("refused:") and "truncated" in line, line


def test_replaced_file_keeps_old_mapping_and_verify_passes(tmp_path):
    """The supported way: replace.  An open handle keeps answering from the
    old file, and verify() checks that (intact) old file."""
    a = np.random.default_rng(7).integers(0, 256, (3000, 16), dtype=np.uint8)
    b = np.random.default_rng(8).integers(0, 256, (3000, 16), dtype=np.uint8)
    path = tmp_path / "k.hlx"
    hashlookup.build_index(a, path)
    with hashlookup.open_index(path) as index:
        hashlookup.build_index(b, path)
        assert index.contains_many(a).all()
        assert index.verify()["ok"]
        with hashlookup.open_index(path) as fresh:
            assert fresh.contains_many(b).all()
