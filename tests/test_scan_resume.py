"""hashlookup scan --resume: real subprocesses stopped by real signals
(SIGINT, SIGTERM, SIGKILL) at several points, then resumed; the final report
must equal the one of an uninterrupted scan, byte for byte.

The child is `python -m hashlookup scan` run through a small wrapper that
slows every file down by a few milliseconds (sleep in the hashing worker), so
that the test can stop it at a chosen number of finished directories instead
of racing a scan that takes a fraction of a second."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hashlookup import HashLookupError, build_dataset
from hashlookup.scan import scan

SLOW = """
import sys, time
from hashlookup.scan import tree as s
s._GROUP_FILES = 4
real = s.Hasher.many
def slow(self, files):
    time.sleep(float(sys.argv[1]) * len(files))
    return real(self, files)
s.Hasher.many = slow
from hashlookup.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """120 directories (some nested, some empty) of small random files; the
    dataset lists a third of them (md5 list) plus synthetic digests."""
    base = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(11)
    tree = base / "tree"
    listed = []
    for i in range(120):
        d = tree / f"a{i % 7}" / f"b{i:03d}"
        if i % 5 == 0:
            d = d / "deeper"
        d.mkdir(parents=True)
        for j in range(int(rng.integers(0, 5))):
            data = rng.integers(
                0, 256, int(rng.integers(0, 9000)), dtype=np.uint8
            ).tobytes()
            p = d / f"f{j}.bin"
            p.write_bytes(data)
            if rng.random() < 0.35:
                listed.append(hashlib.md5(data).hexdigest())
    synthetic = [
        bytes(r).hex() for r in rng.integers(0, 256, (300, 16), dtype=np.uint8)
    ]
    lst = base / "known.md5"
    lst.write_text("\n".join(listed + synthetic) + "\n")
    ds = base / "known.hlds"
    build_dataset({"police": str(lst)}, str(ds))
    script = base / "slow.py"
    script.write_text(SLOW)
    return base, tree, ds, script, len(set(listed))


def _cmd(script: Path, delay: float, *args: str) -> list[str]:
    return [sys.executable, str(script), str(delay), "scan", *args]


def _units(state: Path) -> int:
    try:
        return state.read_bytes().count(b"\n") - 1
    except FileNotFoundError:
        return 0


def _stop_at(
    cmd: list[str], state: Path, units: int, sig: int, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    """Start cmd, send `sig` once the state file holds `units` finished units."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    deadline = time.monotonic() + 60
    while _units(state) < units and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def test_uninterrupted_equals_api(setup):
    _base, tree, ds, _script, n_listed = setup
    r = scan(ds, [tree])
    assert len(r.hits) >= n_listed > 20


@pytest.mark.parametrize(
    "stops",
    [
        [(3, signal.SIGINT)],
        [(25, signal.SIGINT), (70, signal.SIGINT)],
        [(40, signal.SIGTERM)],
        [(15, signal.SIGKILL), (60, signal.SIGINT)],
    ],
    ids=["sigint-early", "sigint-twice", "sigterm", "sigkill-then-sigint"],
)
def test_interrupted_and_resumed_equals_uninterrupted(setup, tmp_path, stops):
    _base, tree, ds, script, _ = setup
    full = tmp_path / "full.txt"
    args = [str(ds), str(tree), "--jobs", "2", "--no-progress", "--format", "jsonl"]
    done = subprocess.run(
        _cmd(script, 0, *args, "--report", str(full)), capture_output=True, cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    expect = full.read_bytes()
    assert expect.count(b"\n") > 20

    state, report = tmp_path / "scan.state", tmp_path / "report.txt"
    cmd = _cmd(script, 0.004, *args, "--resume", str(state), "--report", str(report))
    for units, sig in stops:
        res = _stop_at(cmd, state, units, sig, tmp_path)
        if sig == signal.SIGKILL:
            assert res.returncode == -signal.SIGKILL
        else:
            assert res.returncode == 130, res.stderr
            assert b"interrupted" in res.stderr
            partial = report.with_name("report.txt.partial").read_bytes()
            # what was found so far: a subset of the final hits
            assert set(partial.splitlines()) <= set(expect.splitlines())
        assert not report.exists()
        assert units <= _units(state) < 120 + 1, "the scan was not stopped mid-way"
    finished_before = _units(state)
    res = subprocess.run(cmd, capture_output=True, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert report.read_bytes() == expect
    assert not report.with_name("report.txt.partial").exists()
    summary = res.stderr.decode()
    assert f"resumed: {finished_before:,} directories" in summary
    # Running it once more: the state records a finished scan, so a new scan
    # runs (not a replay of the old result); same tree, same report.
    res = subprocess.run(
        _cmd(script, 0, *args, "--resume", str(state), "--report", str(report)),
        capture_output=True,
        cwd=tmp_path,
    )
    assert res.returncode == 1 and report.read_bytes() == expect
    assert b"recorded a finished scan: this is a new scan, started over" in res.stderr
    assert b"resumed:" not in res.stderr
    # stdout instead of a report: the same lines
    res = subprocess.run(
        _cmd(script, 0, *args, "--resume", str(state)),
        capture_output=True,
        cwd=tmp_path,
    )
    assert res.stdout == expect


def test_resumed_api_report_equals_uninterrupted(setup, tmp_path):
    """In-process: stop scan() from its own hit callback (like Ctrl-C at
    that moment), resume, compare hits, errors and counters."""
    _base, tree, ds, _script, _ = setup
    full = scan(ds, [tree], jobs=2)
    state = tmp_path / "s.state"

    class Stop(Exception):
        pass

    n = 0

    def stop_after_5(hit):
        nonlocal n
        n += 1
        if n == 5:
            raise Stop

    with pytest.raises(Stop):
        scan(ds, [tree], jobs=2, resume=state, on_hit=stop_after_5)
    seen = []
    r = scan(ds, [tree], jobs=2, resume=state, on_hit=seen.append)
    assert r.hits == full.hits == seen
    assert r.resumed_units > 0
    for f in (
        "files_seen",
        "files_read",
        "skipped_size",
        "skipped_excluded",
        "special",
        "errors",
        "bytes_read",
    ):
        assert getattr(r, f) == getattr(full, f), f


def test_state_refused_with_other_parameters(setup, tmp_path):
    _base, tree, ds, script, _ = setup
    state = tmp_path / "s.state"
    scan(ds, [tree / "a1"], resume=state)
    # without its end marker: an unfinished scan (a finished one is started
    # over, whatever its parameters)
    lines = state.read_bytes().splitlines(keepends=True)
    state.write_bytes(b"".join(lines[:-1]))
    for kw in (
        {"paths": [tree / "a2"]},
        {"exclude": ["*.bin"]},
        {"min_size": 10},
        {"follow_symlinks": True},
    ):
        paths = kw.pop("paths", [tree / "a1"])
        with pytest.raises(HashLookupError, match="other parameters"):
            scan(ds, paths, resume=state, **kw)
    # another generation of the dataset
    other = tmp_path / "other.hlds"
    lst = tmp_path / "l.txt"
    lst.write_text("00" * 16 + "\n")
    build_dataset({"police": str(lst)}, str(other))
    with pytest.raises(HashLookupError, match="dataset"):
        scan(other, [tree / "a1"], resume=state)
    res = subprocess.run(
        _cmd(script, 0, str(ds), str(tree / "a2"), "--resume", str(state)),
        capture_output=True,
    )
    assert res.returncode == 2
    assert b"other parameters" in res.stderr and b"roots" in res.stderr


def test_torn_and_damaged_state(setup, tmp_path):
    _base, tree, ds, _script, _ = setup
    state = tmp_path / "s.state"
    full = scan(ds, [tree], resume=state)
    lines = state.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1].split(b"\t", 1)[1])["end"] is True
    # A crash in the middle of the last write: torn line dropped, scan redone
    # for that unit only.
    state.write_bytes(b"".join(lines[:-2]) + lines[-2][:30])
    r = scan(ds, [tree], resume=state)
    assert r.hits == full.hits and r.resumed_units == len(lines) - 3
    # Damage in the middle: refused, clearly.
    data = bytearray(state.read_bytes())
    data[len(lines[0]) + 3] ^= 1
    state.write_bytes(bytes(data))
    with pytest.raises(Exception, match="line 2 is damaged"):
        scan(ds, [tree], resume=state)
    for foreign in (b"hello\n", b"hello", b'{"format": 1}\n'):
        state.write_bytes(foreign)  # not ours: refused and left as it was
        with pytest.raises(Exception, match="line 1 is damaged"):
            scan(ds, [tree], resume=state)
        assert state.read_bytes() == foreign


def test_state_locked_while_in_use(setup, tmp_path):
    from hashlookup.scan.state import ScanState

    state = tmp_path / "s.state"
    held = ScanState(state, {"x": 1})
    try:
        with pytest.raises(Exception, match="in use"):
            ScanState(state, {"x": 1})
    finally:
        held.close()
    ScanState(state, {"x": 1}).close()


def test_ctrl_c_does_not_wait_for_a_huge_file(tmp_path):
    """A 64 GiB sparse file takes many seconds to read; SIGINT must stop the
    worker in the middle of it (stop flag polled between reads)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "huge.img", "wb") as f:
        f.truncate(64 << 30)
    lst = tmp_path / "l.txt"
    lst.write_text("00" * 16 + "\n")
    ds = tmp_path / "ds.hlds"
    build_dataset([str(lst)], str(ds))
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hashlookup",
            "scan",
            str(ds),
            str(tree),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)
    assert p.poll() is None, "the scan ended before the signal"
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert time.monotonic() - t < 5


def test_native_stop_flag(tmp_path):
    import array

    from hashlookup import _core

    if not _core.filehash_available():
        pytest.skip("libcrypto not loadable")
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10000)
    stop = array.array("i", [1])
    buf = bytearray(1024)
    assert _core.hash_files(
        [os.fsencode(f)] * 2, [None] * 2, 1, os.O_RDONLY, buf, stop
    ) == [-6, -6]
    stop[0] = 0
    assert (
        _core.hash_files([os.fsencode(f)], [None], 1, os.O_RDONLY, buf, stop)[0][0]
        == 10000
    )
