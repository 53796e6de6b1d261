"""Start-up of ``match`` of a short list and ``scan`` of an empty directory:
what they no longer import (each checked in a fresh process), the plain
classes that stand for their dataclasses (hashlookup/_plain.py), the scan's
own thread pool (hashlookup/scan/_pool.py), and a scan after a privilege
drop importing nothing."""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib.util
import json
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

_KNOWN = [f"{i:032x}" for i in range(1, 200, 7)]  # synthetic md5 digests


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str, Path]:
    """A dataset (md5 digests, one label), a 10-line digest list (half of it
    known), an empty directory and a small tree with two known files."""
    d = tmp_path_factory.mktemp("paths")
    tree = d / "tree"
    (tree / "sub").mkdir(parents=True)
    contents = [b"first file\n", b"second file\n", b"not listed\n"]
    for i, data in enumerate(contents):
        (tree / ("sub" if i else "") / f"f{i}").write_bytes(data)
    import hashlib

    listed = [hashlib.md5(c).hexdigest() for c in contents[:2]]
    (d / "known.md5").write_text("".join(f"{h}  file\n" for h in _KNOWN + listed))
    subprocess.run(
        [sys.executable, "-I", "-m", "hashlookup", "build", "-q", "-o",
         str(d / "ds.hlds"), f"known={d / 'known.md5'}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    lines = _KNOWN[:5] + [f"{i:032x}" for i in range(1000, 1005)]
    (d / "list10.md5").write_text("".join(f"{h}  f{i}\n" for i, h in enumerate(lines)))
    (d / "empty").mkdir()
    return str(d / "ds.hlds"), str(d / "list10.md5"), str(d / "empty"), tree


_RUN = """
import contextlib, io, json, sys
from hashlookup.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps([code, out.getvalue(), sorted(sys.modules)]))
"""


def _run(code: str, *argv: str) -> list[object]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: list[object] = json.loads(out.stdout.splitlines()[-1])
    return result


def _imported(modules: object, *names: str) -> list[str]:
    assert isinstance(modules, list)
    return sorted(m for m in modules for n in names if m == n or m.startswith(n + "."))


#: Imported by neither path: the standard thread pool and what it brings
#: (logging, traceback, queue, threading), argparse and the signal module's
#: enums, and for a match the import readers and record batches.
_NEITHER = (
    "concurrent",
    "logging",
    "traceback",
    "queue",
    "threading",
    "argparse",
    "signal",
    "hashlookup.cli._parser",
    "hashlookup.importers._readers",
    "hashlookup.importers._records",
    "hashlookup.scan",
)

_PARSER = "hashlookup.cli._parser"

#: Nor by a scan of an empty directory: hashlib with OpenSSL (no file is
#: hashed; the C reader's libcrypto is loaded at the first file), the image
#: stage (no image seen) and the import readers.
_NOT_FOR_AN_EMPTY_SCAN = (
    "hashlib",
    "_hashlib",
    "concurrent",
    "logging",
    "traceback",
    "queue",
    "threading",
    "argparse",
    "signal",
    _PARSER,
    "hashlookup.scan.images",
    "hashlookup.importers",
    "hashlookup.match",
)


def test_match_of_a_short_list_imports_no_pool_threads_or_readers(
    dataset: tuple[str, str, str, Path],
) -> None:
    code, out, modules = _run(_RUN, "match", dataset[0], dataset[1])
    assert code == 1
    assert str(out).splitlines() == [f"{h}  f{i}" for i, h in enumerate(_KNOWN[:5])]
    assert _imported(modules, *_NEITHER, "hashlib") == []


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_scan_of_an_empty_directory_imports_no_pool_hashlib_or_images(
    dataset: tuple[str, str, str, Path], fmt: str
) -> None:
    argv = ("scan", dataset[0], dataset[2])
    if fmt != "text":
        argv = (*argv, "--format", fmt)  # argparse reads it
    code, out, modules = _run(_RUN, *argv)
    assert (code, out) == (0, "")
    never = _NOT_FOR_AN_EMPTY_SCAN
    if fmt != "text":  # an option: argparse reads the command line
        never = tuple(n for n in never if n not in ("argparse", _PARSER))
    assert _imported(modules, *never) == []


def test_scan_of_a_tree_still_finds_its_files(
    dataset: tuple[str, str, str, Path],
) -> None:
    # The same command on a tree: the files are hashed (in C, libcrypto
    # loaded at the first file) and found, still without concurrent.futures.
    code, out, modules = _run(_RUN, "scan", dataset[0], str(dataset[3]))
    assert code == 1
    assert sorted(line.split("\t")[0] for line in str(out).splitlines()) == [
        str(dataset[3] / "f0"),
        str(dataset[3] / "sub" / "f1"),
    ]
    assert _imported(modules, "concurrent", "logging", "threading") == []


# -- what the modules on these paths import at module level -----------------

#: Modules whose imports another part of the start-up work owns (the
#: package facade and the store's open path: tests/test_cli_startup.py).
_ELSEWHERE = ("hashlookup", "hashlookup._lazy", "hashlookup.store")

#: Imports kept on purpose: the scan's state file is JSON lines, and a
#: resumed scan may run after a privilege drop (nothing it needs is
#: imported late: docs/SCAN.md).
_KEPT = {"hashlookup.scan.state": {"json"}}

#: Never imported at module level by the modules a match of a short list or
#: a scan of an empty directory loads (dataclasses and json: the store's
#: open path loses them too, and these modules must not bring them back).
_HEAVY = {
    "dataclasses", "json", "typing", "threading", "concurrent", "logging",
    "hashlib", "argparse", "signal", "datetime",
}  # fmt: skip


def _module_level_imports(path: str) -> set[str]:
    """Top-level names of the modules imported when `path` is imported (not
    inside functions, not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(Path(path).read_text())
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add((node.module or "").split(".")[0])
            elif isinstance(node, ast.If):
                test = node.test
                if not (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, (ast.Try, ast.ClassDef)):
                visit(node.body)

    visit(tree.body)
    return found


@pytest.mark.parametrize("path", ["match", "scan"])
def test_modules_on_the_path_import_nothing_heavy(
    dataset: tuple[str, str, str, Path], path: str
) -> None:
    argv = (dataset[1],) if path == "match" else (dataset[2],)
    _, _, modules = _run(_RUN, path, dataset[0], *argv)
    assert isinstance(modules, list)
    ours = [
        m
        for m in modules
        if m.startswith("hashlookup")
        and m not in _ELSEWHERE
        and not m.startswith("hashlookup.store.")
    ]
    assert "hashlookup.cli." + path in ours
    checked = 0
    for name in ours:
        spec = importlib.util.find_spec(name)
        if spec is None or not (spec.origin or "").endswith(".py"):
            continue  # an extension
        assert spec.origin is not None
        heavy = _module_level_imports(spec.origin) & _HEAVY - _KEPT.get(name, set())
        assert heavy == set(), (name, heavy)
        checked += 1
    assert checked > 10


# -- the plain classes behave as the dataclasses they were -------------------


def _examples() -> list[object]:
    import numpy as np

    from hashlookup.match.inventory import InventoryStats
    from hashlookup.match.keys import ChunkMatch, MatchStats
    from hashlookup.match.pieces import Inventory, Piece
    from hashlookup.scan import ScanHit, ScanReport

    inv = Inventory("-", stream=None)
    keys = np.zeros((2, 16), np.uint8)
    return [
        ScanHit("p", "md5", "ab" * 16, 3, ("x",)),
        ScanHit("p", "pdq", "cd" * 32, 4, (), ("sha1",), 7, 90),
        ScanReport(files_seen=2, hashed=("md5",)),
        MatchStats(bytes=10, keys=2, hits=1, algorithm="md5"),
        InventoryStats(lines=3, empty=1),
        inv,
        Piece(inv, keys, None, None, None, units=2),
        ChunkMatch(b"x\n", keys, np.ones(2, bool), None, None),
    ]


def _model(obj: object) -> type:
    """The dataclass the object's class stands for, made by dataclasses."""
    from hashlookup._plain import _model as model

    return model(type(obj))


@pytest.mark.parametrize("index", range(8))
def test_plain_classes_are_their_dataclasses(index: int) -> None:
    from hashlookup import _plain

    obj = _examples()[index]
    cls = type(obj)
    names = [f.name for f in dataclasses.fields(cls)]
    assert dataclasses.is_dataclass(obj) and dataclasses.is_dataclass(cls)
    assert names == list(cls.__match_args__) == list(vars(obj))
    model = _model(obj)
    twin = model(**{n: getattr(obj, n) for n in names})
    if cls.__repr__ is _plain._repr:  # (Piece, ChunkMatch: their own)
        assert repr(obj) == repr(twin)
    dup = dataclasses.replace(obj)
    assert type(dup) is cls and all(getattr(dup, n) is getattr(obj, n) for n in names)
    params = model.__dataclass_params__  # type: ignore[attr-defined]
    if params.frozen:
        assert hash(obj) == hash(twin) == hash(dup)
        for attr in (names[0], "other"):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(obj, attr, 1)
            with pytest.raises(dataclasses.FrozenInstanceError):
                delattr(obj, attr)
    else:
        assert cls.__hash__ is None and model.__hash__ is None
        setattr(dup, names[-1], getattr(obj, names[-1]))
    if cls.__name__ not in ("Piece", "ChunkMatch"):  # (numpy fields)
        assert obj == dup and obj != twin  # another class: not equal
        assert dataclasses.asdict(obj) == dataclasses.asdict(twin)
        assert pickle.loads(pickle.dumps(obj)) == obj == copy.deepcopy(obj)


def test_public_fields_and_defaults_are_kept() -> None:
    from hashlookup.match.inventory import InventoryStats
    from hashlookup.match.keys import MatchStats
    from hashlookup.scan import ScanHit

    def defaults(cls: type) -> list[tuple[str, object]]:
        return [
            (f.name, "<required>" if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(cls)
        ]

    assert defaults(ScanHit) == [
        ("path", "<required>"), ("algorithm", "<required>"),
        ("digest", "<required>"), ("record_id", "<required>"),
        ("labels", "<required>"), ("mismatch", ()), ("distance", None),
        ("quality", None),
    ]  # fmt: skip
    stats = [("bytes", 0), ("lines", 0), ("keys", 0), ("hits", 0), ("invalid", 0),
             ("chunks", 0), ("filtered", 0), ("algorithm", "")]  # fmt: skip
    assert defaults(MatchStats) == stats
    assert defaults(InventoryStats) == [*stats, ("empty", 0)]
    assert InventoryStats().misses == 0 and isinstance(InventoryStats(), MatchStats)


def test_scan_hit_equality_and_fields_are_a_frozen_dataclass_s() -> None:
    from hashlookup.scan import ScanHit, ScanReport

    a = ScanHit("p", "md5", "ab", 3, ("x",))
    assert a == ScanHit("p", "md5", "ab", 3, ("x",), (), None, None)
    assert a != ScanHit("p", "md5", "ab", 4, ("x",))
    assert {a, ScanHit("p", "md5", "ab", 3, ("x",))} == {a}
    assert repr(a) == (
        "ScanHit(path='p', algorithm='md5', digest='ab', record_id=3, "
        "labels=('x',), mismatch=(), distance=None, quality=None)"
    )
    assert dataclasses.replace(a, distance=2).distance == 2
    assert dataclasses.astuple(a) == ("p", "md5", "ab", 3, ("x",), (), None, None)
    r, s = ScanReport(), ScanReport()
    assert r.hits == [] and r.hits is not s.hits  # default_factory=list
    assert r == s and dataclasses.asdict(r)["hits"] == []
    r.hits.append(a)
    assert r != s and dataclasses.asdict(r)["hits"][0]["record_id"] == 3
    with pytest.raises(TypeError):
        ScanHit("p", "md5")  # type: ignore[call-arg]
    match a:
        case ScanHit(path, algorithm):
            assert (path, algorithm) == ("p", "md5")


# -- the scan's thread pool --------------------------------------------------


def test_pool_results_errors_order_and_cancel() -> None:
    from hashlookup.scan._pool import Cancelled, Pool

    pool = Pool(3)
    gate = threading.Event()
    tasks = [pool.submit(lambda i=i: (gate.wait(10), i * i)[1]) for i in range(6)]
    fail = pool.submit(lambda: 1 / 0)
    assert not tasks[0].done()
    gate.set()
    assert [t.result() for t in tasks] == [i * i for i in range(6)]
    with pytest.raises(ZeroDivisionError):
        fail.result()
    assert all(t.done() for t in tasks) and not tasks[0].cancel()
    # One worker, busy: what waits behind it is cancelled by shutdown.
    one = Pool(1)
    gate.clear()
    running = threading.Event()

    def hold() -> bool:
        running.set()
        return gate.wait(10)

    busy = one.submit(hold)
    assert running.wait(30)  # started: shutdown waits for it
    waiting = [one.submit(time.sleep, 0) for _ in range(3)]
    assert waiting[0].cancel() and waiting[0].cancel() and waiting[0].done()
    with pytest.raises(Cancelled):
        waiting[0].result()
    threading.Timer(0.2, gate.set).start()
    one.shutdown()  # waits for the busy one, cancels the rest
    assert busy.result() is True
    assert all(t.done() for t in waiting)
    with pytest.raises(Cancelled):
        waiting[2].result()
    with pytest.raises(RuntimeError):
        one.submit(time.sleep, 0)
    pool.shutdown()
    with pytest.raises(ValueError):
        Pool(0)


def test_ticker_ticks_until_halted() -> None:
    from hashlookup.scan._pool import start_ticker

    ticks: list[float] = []
    halt = start_ticker(lambda: ticks.append(time.monotonic()), 0.01)
    deadline = time.monotonic() + 30  # generous: a loaded 2-core machine
    while len(ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    halt()
    n = len(ticks)
    assert n >= 3
    time.sleep(0.05)
    assert len(ticks) == n  # no tick after halt() returned


def test_scan_of_an_empty_directory_starts_no_thread(
    dataset: tuple[str, str, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hashlookup.scan import _pool, scan

    started: list[object] = []
    real = _pool._thread.start_new_thread

    def counted(*args: object) -> int:
        started.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_pool._thread, "start_new_thread", counted)
    r = scan(dataset[0], [dataset[2]])
    assert (r.files_seen, r.hits, started) == (0, [], [])
    r = scan(dataset[0], [str(dataset[3])], jobs=2)
    assert len(r.hits) == 2 and 1 <= len(started) <= 2


# -- a scan after a privilege drop imports nothing ---------------------------

_NO_IMPORTS = """
import json, sys
import hashlookup
from hashlookup import open_dataset
from hashlookup.scan import scan
ds = open_dataset(sys.argv[1])
import numpy, pyroaring  # imported first by such processes (hashlookup._lazy)

class Refuse:
    # As after a drop to a user who cannot read the installation.
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"import of {name} after the privilege drop")

sys.meta_path.insert(0, Refuse())
before = set(sys.modules)
hits = []
for jobs in (1, 2):
    r = scan(ds, [sys.argv[2]], jobs=jobs, progress=lambda r: None)
    hits.append(sorted(h.path for h in r.hits))
print(json.dumps([hits, r.errors, sorted(set(sys.modules) - before)]))
"""


def test_a_scan_after_a_privilege_drop_imports_nothing(
    dataset: tuple[str, str, str, Path],
) -> None:
    hits, errors, new = _run(_NO_IMPORTS, dataset[0], str(dataset[3]))
    tree = dataset[3]
    assert hits == [[str(tree / "f0"), str(tree / "sub" / "f1")]] * 2
    assert (errors, new) == (0, [])


# -- a small digest list is read into a buffer of its size ----------------------


@pytest.mark.parametrize("size", [0, 1, 33, 1000, 4095, 4096, 4097, 10_000])
def test_small_files_read_into_buffers_of_their_size(tmp_path: Path, size: int) -> None:
    import io
    import random

    from hashlookup.match.pieces import UTF8_BOM, read_chunks

    rng = random.Random(size)
    lines = b"".join(b"%032x\n" % rng.getrandbits(128) for _ in range(size // 33 + 1))
    for data in (lines[:size], UTF8_BOM + lines[:size], lines[: max(size - 1, 0)]):
        path = tmp_path / "list.md5"
        path.write_bytes(data)
        with path.open("rb") as f:
            chunks = [
                (bytes(s["buf"][:n]), len(s["buf"]), d, t)
                for s, n, d, t in read_chunks(f, 4096, False)
            ]
        # The same chunks as from a stream of unknown size (chunk buffers).
        stream = io.BytesIO(data)
        expected = [
            (bytes(s["buf"][:n]), d, t)
            for s, n, d, t in read_chunks(stream, 4096, False)
        ]
        assert [(c, d, t) for c, _, d, t in chunks] == expected
        if len(data) < 4096:
            assert all(n == len(data) + 1 for _, n, _, _ in chunks)
