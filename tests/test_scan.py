"""hashlookup.scan: walking, hashing and looking up real files (copies of
Python standard library files) against datasets of synthetic digests plus
the digests of some of those files; a pure-Python oracle gives the hits."""

from __future__ import annotations

import hashlib
import os
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from hashlookup import build_dataset, open_dataset
from hashlookup.scan import ScanReport, scan

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SOURCES = [
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
    "json/scanner.py",
    "json/tool.py",
    "os.py",
    "fnmatch.py",
    "string.py",
    "textwrap.py",
    "this.py",
    "shutil.py",
    "typing.py",
]


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def _random_hex(n: int, width: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [bytes(r).hex() for r in rng.integers(0, 256, (n, width), dtype=np.uint8)]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tree/ with stdlib copies in a few subdirectories (some duplicated)."""
    root = tmp_path / "tree"
    for i, rel in enumerate(SOURCES):
        d = root / f"d{i % 3}" / ("sub" if i % 2 else "")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STDLIB / rel, d / rel.replace("/", "_"))
    shutil.copyfile(STDLIB / "os.py", root / "os-copy.py")
    (root / "empty").write_bytes(b"")
    return root


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _md5_dataset(tmp_path: Path, listed: list[Path], name: str = "ds.hlx") -> Path:
    lst = tmp_path / "list.txt"
    digests = sorted({_md5(p) for p in listed}) + _random_hex(500, 16, seed=1)
    lst.write_text("\n".join(digests) + "\n")
    out = tmp_path / name
    build_dataset({"synthetic": str(lst)}, str(out))
    return out


def _oracle(files: list[Path], listed: set[str]) -> set[tuple[str, str]]:
    return {(str(p), _md5(p)) for p in files if _md5(p) in listed}


def _hits(report: ScanReport) -> set[tuple[str, str]]:
    return {(h.path, h.digest) for h in report.hits}


def _listed(ds_path: Path) -> set[str]:
    lst = ds_path.parent / "list.txt"
    return set(lst.read_text().split())


def test_hits_match_oracle(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files[::2])
    seen, errors = [], []
    with open_dataset(ds_path) as ds:
        r = scan(
            ds,
            [tree],
            jobs=2,
            on_hit=seen.append,
            on_error=lambda p, why: errors.append((p, why)),
        )
        assert ds.algorithms == ("md5",)  # left open
    assert errors == [] and r.errors == 0
    expect = _oracle(files, _listed(ds_path))
    assert len(expect) >= 6
    assert _hits(r) == expect
    assert seen == r.hits
    assert r.files_seen == r.files_read == len(files)
    assert r.bytes_read == sum(p.stat().st_size for p in files)
    assert r.skipped_size == r.skipped_excluded == r.special == 0
    for h in r.hits:
        assert h.algorithm == "md5" and h.labels == ("source:synthetic",)
    assert r.seconds > 0 and r.throughput > 0


def test_dataset_path_single_file_and_one_job(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    r = scan(ds_path, str(files[0]), jobs=1)
    assert _hits(r) == {(str(files[0]), _md5(files[0]))}


def test_all_digests_and_one_hit_per_record(tmp_path, tree):
    """A hashdeep list with md5+sha1+sha256: every algorithm is computed;
    a file is reported once per record, not once per digest."""
    files = _files(tree)
    lines = ["%%%% HASHDEEP-1.0", "%%%% size,md5,sha1,sha256,filename", "##"]
    for p in files[:5]:
        b = p.read_bytes()
        lines.append(
            f"{len(b)},{hashlib.md5(b).hexdigest()},"
            f"{hashlib.sha1(b).hexdigest()},{hashlib.sha256(b).hexdigest()},"
            f"./{p.name}"
        )
    src = tmp_path / "list.hashdeep"
    src.write_text("\n".join(lines) + "\n")
    build_dataset({"hd": str(src)}, str(tmp_path / "hd.hlx"))
    r = scan(tmp_path / "hd.hlx", [tree])
    want = {str(p) for p in files[:5]} | {
        str(p) for p in files if _md5(p) in {_md5(q) for q in files[:5]}
    }
    assert sorted(h.path for h in r.hits) == sorted(want)
    assert {h.algorithm for h in r.hits} == {"md5"}
    assert r.algorithms == ("md5", "sha1", "sha256")


def test_symlinks(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(STDLIB / "this.py", outside / "linked-this.py")
    (tree / "link-dir").symlink_to(outside)
    (tree / "link-file").symlink_to(tree / "os-copy.py")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    (tree / "d0" / "loop").symlink_to(tree)  # a cycle when followed

    r = scan(ds_path, [tree])
    assert r.special == 4 and r.errors == 0
    assert r.files_read == len(files)
    assert not any("link" in os.path.relpath(h.path, tree) for h in r.hits)

    errors = []
    r = scan(
        ds_path,
        [tree],
        follow_symlinks=True,
        on_error=lambda p, why: errors.append((p, why)),
    )
    assert errors == [(str(tree / "dangling"), "dangling symbolic link")]
    paths = {h.path for h in r.hits}
    assert str(tree / "link-dir" / "linked-this.py") in paths
    assert str(tree / "link-file") in paths
    # The loop is walked once: every real file once, plus the two links.
    assert r.files_read == len(files) + 2
    assert not any("loop" in os.path.relpath(p, tree) for p in paths)


def test_symlink_given_as_path(tmp_path, tree):
    ds_path = _md5_dataset(tmp_path, _files(tree))
    link = tmp_path / "tree-link"
    link.symlink_to(tree)
    # a path given is followed (as hashdeep, clamscan, find -H), with or
    # without follow_symlinks
    assert scan(ds_path, [link]).files_read == len(_files(tree))
    assert scan(ds_path, [link], follow_symlinks=True).files_read == len(_files(tree))


def test_exclude(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    r = scan(ds_path, [tree], exclude=["json_*.py", str(tree / "d1")])
    kept = [
        p
        for p in files
        if not p.name.startswith("json_") and tree / "d1" not in p.parents
    ]
    assert _hits(r) == _oracle(kept, _listed(ds_path))
    assert r.files_read == len(kept)
    n_json_outside_d1 = sum(
        1 for p in files if p.name.startswith("json_") and tree / "d1" not in p.parents
    )
    assert r.skipped_excluded == n_json_outside_d1 + 1  # + the d1 directory
    assert scan(ds_path, [tree], exclude="tree").skipped_excluded == 1


def test_min_max_size(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    sizes = sorted(p.stat().st_size for p in files)
    lo, hi = sizes[3], sizes[-3]
    r = scan(ds_path, [tree], min_size=lo, max_size=hi)
    kept = [p for p in files if lo <= p.stat().st_size <= hi]
    assert r.files_read == len(kept) and r.skipped_size == len(files) - len(kept)
    assert _hits(r) == _oracle(kept, _listed(ds_path))
    with pytest.raises(ValueError):
        scan(ds_path, [tree], min_size=-1)


def _hashdeep_dataset(tmp_path: Path, listed: list[Path], sizes: bool = True) -> Path:
    rng = np.random.default_rng(7)
    cols = "size,md5,filename" if sizes else "md5,filename"
    lines = ["%%%% HASHDEEP-1.0", f"%%%% {cols}", "## synthetic", "##"]
    for p in listed:
        lines.append(
            (f"{p.stat().st_size}," if sizes else "") + f"{_md5(p)},./{p.name}"
        )
    for i, h in enumerate(_random_hex(300, 16, seed=3)):
        # Synthetic sizes far from every real file's size.
        lines.append(
            (f"{int(rng.integers(10**9, 10**10))}," if sizes else "")
            + f"{h},./synthetic{i}"
        )
    src = tmp_path / "sizes.hashdeep"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / ("sized.hlx" if sizes else "unsized.hlx")
    build_dataset({"hd": str(src)}, str(out))
    return out


def test_size_skip(tmp_path, tree):
    files = _files(tree)
    listed = [p for p in files[1::3] if p.stat().st_size > 0]
    ds_path = _hashdeep_dataset(tmp_path, listed)
    known = {p.stat().st_size for p in listed}
    readable = [p for p in files if p.stat().st_size in known]
    expect = {(str(p), _md5(p)) for p in files if _md5(p) in {_md5(q) for q in listed}}

    r = scan(ds_path, [tree])
    assert r.files_read == len(readable) < len(files)
    assert r.skipped_size == len(files) - len(readable)
    assert r.bytes_read == sum(p.stat().st_size for p in readable)
    assert _hits(r) == expect

    r = scan(ds_path, [tree], skip_unknown_sizes=False)
    assert r.files_read == len(files) and r.skipped_size == 0
    assert _hits(r) == expect


def test_no_size_skip_when_a_size_is_unknown(tmp_path, tree):
    files = _files(tree)
    ds_path = _hashdeep_dataset(tmp_path, files[:4], sizes=False)
    r = scan(ds_path, [tree])
    assert r.files_read == len(files) and r.skipped_size == 0
    # plain md5 lists have no sizes either
    r = scan(_md5_dataset(tmp_path, files[:4]), [tree])
    assert r.files_read == len(files)


def test_missing_path_and_fifo(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    fifo = tree / "fifo"
    os.mkfifo(fifo)
    errors = []
    gone = tmp_path / "vanished.bin"
    r = scan(
        ds_path, [gone, tree, files[0]], on_error=lambda p, why: errors.append((p, why))
    )
    assert errors == [(str(gone), "vanished or does not exist")]
    assert r.errors == 1 and r.special == 1
    assert r.files_read == len(files) + 1


@pytest.mark.parametrize("native", [True, False])  # hashing in C / in Python
@pytest.mark.parametrize("min_size", [None, 0])  # walk without / with stat
def test_vanishing_file_while_queued(tmp_path, tree, monkeypatch, min_size, native):
    """A file removed between the walk and the read is an error, not a crash."""
    from hashlookup.scan import reader as scan_mod

    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    victim = files[2]
    real = scan_mod.Hasher.many

    def racing(self, group):
        if str(victim) in [p for p, _, _ in group] and victim.exists():
            victim.unlink()
        return real(self, group)

    monkeypatch.setattr(scan_mod.Hasher, "many", racing)
    if not native:
        monkeypatch.setattr(scan_mod, "_native", None)
    errors = []
    r = scan(
        ds_path,
        [tree],
        min_size=min_size,
        on_error=lambda p, why: errors.append((p, why)),
    )
    assert errors == [(str(victim), "vanished or does not exist")]
    assert r.files_read == len(files) - 1


def test_permission_denied(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    locked_file, locked_dir = files[0], tree / "d2"
    locked_file.chmod(0)
    locked_dir.chmod(0)
    try:
        if os.access(locked_file, os.R_OK):
            pytest.skip("running as root: chmod 000 does not block reading")
        errors = []
        r = scan(ds_path, [tree], on_error=lambda p, why: errors.append((p, why)))
        assert sorted(errors) == sorted(
            [
                (str(locked_file), "permission denied"),
                (str(locked_dir), "permission denied"),
            ]
        )
        assert r.errors == 2
    finally:
        locked_file.chmod(0o644)
        locked_dir.chmod(0o755)


@pytest.mark.parametrize("chunk_size", [1, 4096, 1 << 20])
def test_large_file_streamed(tmp_path, chunk_size):
    data = (
        np.random.default_rng(5)
        .integers(0, 256, 3 * 65536 + 123, dtype=np.uint8)
        .tobytes()
    )
    big = tmp_path / "files" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(data)
    lst = tmp_path / "big.txt"
    lst.write_text(hashlib.md5(data).hexdigest() + "\n")
    sha = tmp_path / "big-sha256.txt"
    sha.write_text(hashlib.sha256(data).hexdigest() + "\n")
    build_dataset({"a": str(lst), "b": str(sha)}, str(tmp_path / "big.hlx"))
    r = scan(tmp_path / "big.hlx", [big.parent], chunk_size=chunk_size)
    assert r.bytes_read == len(data) and r.errors == 0
    # md5 and sha256 name two records (nothing connects them): two hits.
    assert sorted((h.algorithm, h.digest) for h in r.hits) == [
        ("md5", hashlib.md5(data).hexdigest()),
        ("sha256", hashlib.sha256(data).hexdigest()),
    ]


def test_suppressed_label_is_a_miss(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    with open_dataset(ds_path, suppress=["source:synthetic"]) as ds:
        r = scan(ds, [tree])
    assert r.hits == [] and r.files_read == len(files)


def test_bad_arguments(tmp_path, tree):
    ds_path = _md5_dataset(tmp_path, _files(tree))
    for kw in ({"jobs": 0}, {"chunk_size": 0}, {"max_size": -5}):
        with pytest.raises(ValueError):
            scan(ds_path, [tree], **kw)


@pytest.mark.parametrize("min_size", [None, 0])
def test_permission_denied_simulated(tmp_path, tree, monkeypatch, min_size):
    """As root chmod cannot deny reading: make open and scandir fail instead."""
    from hashlookup.scan import reader as scan_mod

    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    locked_file, locked_dir = str(files[0]), str(tree / "d2")
    real_open, real_scandir = os.open, os.scandir

    def fake_open(path, *a, **kw):
        if path == locked_file:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *a, **kw)

    def fake_scandir(path="."):
        if os.fspath(path) == locked_dir:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(scan_mod, "_native", None)  # opens in C otherwise
    monkeypatch.setattr(scan_mod.os, "open", fake_open)
    monkeypatch.setattr(scan_mod.os, "scandir", fake_scandir)
    errors = []
    r = scan(
        ds_path,
        [tree],
        min_size=min_size,
        on_error=lambda p, why: errors.append((p, why)),
    )
    monkeypatch.undo()
    assert sorted(errors) == sorted(
        [(locked_file, "permission denied"), (locked_dir, "permission denied")]
    )
    in_d2 = [p for p in files if tree / "d2" in p.parents]
    assert r.errors == 2 and r.files_read == len(files) - len(in_d2) - 1
    assert _hits(r) == _oracle(
        [p for p in files if str(p) != locked_file and p not in in_d2], _listed(ds_path)
    )


@pytest.mark.parametrize("chunk_size", [64, 1 << 20])
def test_file_changing_while_read(tmp_path, tree, monkeypatch, chunk_size):
    """The second fstat of a file (after reading) shows another size."""
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    victim = files[1]
    ino = victim.stat().st_ino
    real_fstat = os.fstat
    calls = []

    def fake_fstat(fd):
        st = real_fstat(fd)
        if st.st_ino == ino:
            calls.append(fd)
            if len(calls) == 2:
                v = list(st)
                v[6] += 10  # st_size
                return os.stat_result(v)
        return st

    from hashlookup.scan import reader as scan_mod

    monkeypatch.setattr(scan_mod, "_native", None)  # fstat in C otherwise
    monkeypatch.setattr(os, "fstat", fake_fstat)
    errors = []
    r = scan(
        ds_path,
        [tree],
        jobs=1,
        chunk_size=chunk_size,
        on_error=lambda p, why: errors.append((p, why)),
    )
    monkeypatch.undo()
    assert errors == [(str(victim), "file changed while read")]
    assert r.files_read == len(files) - 1
    assert str(victim) not in {h.path for h in r.hits}


def test_one_file_system_same_device(tmp_path, tree):
    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files)
    r = scan(ds_path, [tree], one_file_system=True)
    assert r.files_read == len(files)
    assert _hits(r) == _oracle(files, _listed(ds_path))


@pytest.mark.parametrize("follow", [False, True])
def test_deep_tree_no_recursion_limit(tmp_path, follow):
    import sys

    depth = sys.getrecursionlimit() + 100
    top = str(tmp_path / "deep")
    leaf = top
    os.mkdir(top)
    for _ in range(depth):  # os.makedirs recurses
        leaf = os.path.join(leaf, "a")
        os.mkdir(leaf)
    try:
        target = os.path.join(leaf, "this.py")
        shutil.copyfile(STDLIB / "this.py", target)
        lst = tmp_path / "l.txt"
        lst.write_text(_md5(Path(target)) + "\n")
        build_dataset([str(lst)], str(tmp_path / "deep.hlx"))
        r = scan(tmp_path / "deep.hlx", [top], follow_symlinks=follow)
        assert [h.path for h in r.hits] == [target]
    finally:  # remove bottom-up: the cleanup of tmp_path may recurse
        os.unlink(os.path.join(leaf, "this.py"))
        d = leaf
        while d != top:
            os.rmdir(d)
            d = os.path.dirname(d)


# ---------------------------------------------------------------- CLI


def test_cli_scan_reports_hits_and_exit_codes(tmp_path, capsys):
    import hashlib
    import json as _json
    import shutil
    import sysconfig

    from hashlookup.cli import main

    stdlib = sorted(
        p for p in os.listdir(sysconfig.get_paths()["stdlib"]) if p.endswith(".py")
    )[:20]
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in stdlib:
        shutil.copy(os.path.join(sysconfig.get_paths()["stdlib"], name), tree / name)
    known = stdlib[:5]
    listing = tmp_path / "known.md5"
    listing.write_text(
        "".join(
            hashlib.md5((tree / n).read_bytes()).hexdigest() + "  " + n + "\n"
            for n in known
        )
    )
    ds = tmp_path / "known.hlds"
    assert main(["build", "-o", str(ds), f"police={listing}", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["scan", str(ds), str(tree), "--format", "jsonl", "--quiet"]) == 1
    hits = [_json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(os.path.basename(h["path"]) for h in hits) == sorted(known)
    assert all(h["labels"] == ["source:police"] for h in hits)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["scan", str(ds), str(empty), "--quiet"]) == 0
    assert main(["scan", str(tmp_path / "missing.hlds"), str(tree)]) == 2
    capsys.readouterr()
    assert main(["scan", str(ds), str(tmp_path / "no-such-dir")]) == 2
    assert "no-such-dir" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_record_pairing_other_content_is_a_flagged_hit(
    tmp_path, tree, monkeypatch, native
):
    """A record whose md5 and sha1 are a file's but whose sha256 is another
    content's: still a hit (the digests are listed), flagged as a mismatch."""
    from hashlookup.cli.scan import format_hit
    from hashlookup.scan import reader as scan_mod

    if not native:
        monkeypatch.setattr(scan_mod, "_native", None)
    files = _files(tree)
    a, b = files[0].read_bytes(), b"something else"
    src = tmp_path / "odd.hashdeep"
    src.write_text(
        "%%%% HASHDEEP-1.0\n%%%% md5,sha1,sha256,filename\n##\n"
        f"{hashlib.md5(a).hexdigest()},{hashlib.sha1(a).hexdigest()},"
        f"{hashlib.sha256(b).hexdigest()},odd\n"
    )
    build_dataset({"odd": str(src)}, str(tmp_path / "odd.hlds"))
    r = scan(tmp_path / "odd.hlds", [files[0]])
    assert len(r.hashed) == 1
    assert [(h.algorithm, h.digest, h.mismatch) for h in r.hits] == [
        ("md5", hashlib.md5(a).hexdigest(), ("sha256",))
    ]
    assert format_hit(r.hits[0], "text").endswith(b"\tmismatch:sha256\n")
    assert b'"mismatch": ["sha256"]' in format_hit(r.hits[0], "jsonl")


def test_interrupt_while_awaiting_a_batch_is_a_scan_interrupt(
    tmp_path, tree, monkeypatch
):
    # Ctrl-C (or SIGTERM's KeyboardInterrupt) landing while the scan waits
    # for a batch: plain, or as concurrent.futures' Condition.wait gave it
    # ("RuntimeError: cannot release un-acquired lock" with the
    # KeyboardInterrupt as its context). It must still end the scan as an
    # interrupt (report so far, state saved), not as a crash.
    from hashlookup.scan import ScanInterrupted
    from hashlookup.scan._pool import Task

    def interrupted(self, timeout=None):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("cannot release un-acquired lock") from None

    def plain(self, timeout=None):
        raise KeyboardInterrupt

    files = _files(tree)
    ds_path = _md5_dataset(tmp_path, files[::2])
    for result in (interrupted, plain):
        monkeypatch.setattr(Task, "result", result)
        with open_dataset(ds_path) as ds, pytest.raises(ScanInterrupted) as info:
            scan(ds, [tree], jobs=2)
        assert isinstance(info.value.report, ScanReport)

    def broken(self, timeout=None):
        raise RuntimeError("something else")

    # any other RuntimeError is not taken for an interrupt
    monkeypatch.setattr(Task, "result", broken)
    with open_dataset(ds_path) as ds, pytest.raises(RuntimeError, match="else"):
        scan(ds, [tree], jobs=2)
