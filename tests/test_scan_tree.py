"""scan() over a real tree with every awkward thing in it (nested folders, a
symlink loop, a self-referencing link, an unreadable file and directory, an
empty file, a file growing while it is read, a FIFO), checked against the
digests computed by the standard md5sum/sha1sum/sha256sum tools.

Unreadable files: root reads a chmod 000 file anyway, so when the tests run
as root the scan runs in a subprocess that has dropped to the "nobody" user
(a real permission error, not a simulated one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hashlookup import build_dataset, open_dataset
from hashlookup.scan import scan

STDLIB = Path(sysconfig.get_paths()["stdlib"])
NOBODY = 65534
ALGS = ("md5", "sha1", "sha256")


def _tool_digests(files: list[Path]) -> dict[str, dict[str, str]]:
    """{algorithm: {path: hex}} from coreutils' md5sum/sha1sum/sha256sum."""
    out: dict[str, dict[str, str]] = {}
    for a in ALGS:
        res = subprocess.run(
            [f"{a}sum", "--", *map(str, files)],
            check=True,
            capture_output=True,
            text=True,
        )
        out[a] = {}
        for line in res.stdout.splitlines():
            digest, path = line.split("  ", 1)
            out[a][path] = digest
    return out


@pytest.fixture
def tree():
    # Not under pytest's tmp_path (mode 0700 as root): a dropped-privilege
    # scan must be able to walk everything but the locked parts.
    top = Path(tempfile.mkdtemp(prefix="hl-scan-tree-"))
    top.chmod(0o755)
    root = top / "tree"
    rng = np.random.default_rng(21)
    srcs = sorted(STDLIB.glob("*.py"))[:40]
    for i, src in enumerate(srcs):
        d = root / f"n{i % 4}" / ("x" if i % 3 else "") / ("y" if i % 5 == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, d / src.name)
    big = rng.integers(0, 256, 3 * (1 << 20) + 77, dtype=np.uint8).tobytes()
    (root / "n1" / "big.bin").write_bytes(big)  # streamed in chunks
    (root / "n2" / "copy-of-big.bin").write_bytes(big)  # same content elsewhere
    (root / "empty").write_bytes(b"")
    (root / "n0" / "loop").symlink_to(root)  # cycle when following
    (root / "self").symlink_to(root / "self")  # ELOOP when following
    os.mkfifo(root / "n3" / "fifo")
    locked = root / "locked"
    locked.mkdir()
    shutil.copyfile(srcs[0], locked / "hidden.py")
    (root / "n2" / "secret.py").write_bytes(b"unreadable\n" * 100)
    for dirpath, _dirnames, filenames in os.walk(top):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, 0o644)
    yield root
    locked.chmod(0o755)
    shutil.rmtree(top)


def _regular(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _dataset(
    path: Path, digests: dict[str, dict[str, str]], files: list[Path], combined: bool
) -> None:
    """combined: one hashdeep record (md5+sha1+sha256) per listed file;
    otherwise three lists, one algorithm each (records never merge)."""
    rng = np.random.default_rng(4)
    listed = files[::3]
    if combined:
        lines = ["%%%% HASHDEEP-1.0", "%%%% md5,sha1,sha256,filename", "##"]
        lines += [
            ",".join(digests[a][str(p)] for a in ALGS) + f",{p.name}" for p in listed
        ]
        for i in range(200):
            lines.append(
                ",".join(
                    bytes(rng.integers(0, 256, w, dtype=np.uint8)).hex()
                    for w in (16, 20, 32)
                )
                + f",synthetic{i}"
            )
        src = path.with_suffix(".hashdeep")
        src.write_text("\n".join(lines) + "\n")
        build_dataset({"hd": str(src)}, str(path))
        return
    sources = {}
    for k, a in enumerate(ALGS):
        mine = [digests[a][str(p)] for p in listed[k::3]]
        w = {"md5": 16, "sha1": 20, "sha256": 32}[a]
        mine += [bytes(r).hex() for r in rng.integers(0, 256, (100, w), dtype=np.uint8)]
        src = path.with_name(f"{path.stem}-{a}.txt")
        src.write_text("\n".join(mine) + "\n")
        sources[a] = str(src)
    build_dataset(sources, str(path))


def _oracle(
    ds_path: Path, digests: dict[str, dict[str, str]], files: list[Path]
) -> set[tuple[str, str, str]]:
    """(path, algorithm, digest) of the first digest (md5, sha1, sha256 order)
    finding each record, straight from the tools' digests."""
    out = set()
    with open_dataset(ds_path) as ds:
        for p in files:
            records = set()
            for a in ALGS:
                if a not in ds.algorithms:
                    continue
                m = ds.lookup(digests[a][str(p)])
                if m is not None and m.record_id not in records:
                    records.add(m.record_id)
                    out.add((str(p), a, digests[a][str(p)]))
    return out


def _run_scan(
    ds_path: Path, root: Path, as_user: int | None, hashing: str, **kw
) -> tuple[set[tuple[str, str, str]], list[tuple[str, str]], dict]:
    """scan() in a subprocess (optionally as another user); hits, errors,
    counters."""
    # As root, the child opens the dataset, then drops to `as_user` for good
    # (setresuid clears the capabilities that let root read anything).
    code = (
        "import json, os, sys\n"
        "from hashlookup import open_dataset\n"
        "from hashlookup.scan import scan\n"
        f"ds = open_dataset({str(ds_path)!r})\n"
        "import hashlookup.scan as S\n"
        "if sys.argv[3] == 'python':\n"
        "    S._native = None\n"
        # numpy and pyroaring: the scan imports them lazily (records,
        # labels of a hit), and this interpreter's files (or a virtual
        # environment in a 0700 temporary directory) may be unreadable by
        # `as_user`.
        "import numpy, pyroaring\n"
        "uid = int(sys.argv[2])\n"
        "if uid >= 0:\n"
        "    os.setgroups([])\n"
        "    os.setresgid(uid, uid, uid)\n"
        "    os.setresuid(uid, uid, uid)\n"
        "errors = []\n"
        f"r = scan(ds, [{str(root)!r}], jobs=2, "
        "on_error=lambda p, w: errors.append((p, w)), **json.loads(sys.argv[1]))\n"
        "print(json.dumps({'hits': [[h.path, h.algorithm, h.digest, list(h.mismatch)]"
        " for h in r.hits], 'errors': errors, 'read': r.files_read, "
        "'special': r.special, 'hashed': r.hashed}))\n"
    )
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            json.dumps(kw),
            str(-1 if as_user is None else as_user),
            hashing,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert all(h[3] == [] for h in out["hits"])
    hits = {(h[0], h[1], h[2]) for h in out["hits"]}
    return hits, [tuple(e) for e in out["errors"]], out


class Grower:
    """Appends to a file every millisecond while the scan runs.  The file
    is 32 MiB, so that reading it takes tens of milliseconds and some writes
    fall inside the read even when this process waits for a CPU (with 4 MiB
    a loaded machine once let the whole read pass between two writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(bytes(32 << 20))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with open(self.path, "ab", buffering=0) as f:
            while not self.stop.is_set():
                f.write(b"x" * 512)
                time.sleep(0.001)

    def __enter__(self) -> Grower:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.parametrize("hashing", ["native", "python"])
@pytest.mark.parametrize("combined", [False, True], ids=["three-lists", "hashdeep"])
def test_awkward_tree_against_coreutils(tree, tmp_path, combined, hashing):
    root = tree
    ds_path = tree.parent / "ds.hlds"
    locked_dir, secret = root / "locked", root / "n2" / "secret.py"
    growing = root / "n1" / "growing.log"
    stable = [p for p in _regular(root) if p != growing]
    digests = _tool_digests(stable)
    _dataset(ds_path, digests, stable, combined)
    os.chmod(ds_path, 0o644)

    locked_dir.chmod(0)
    secret.chmod(0)
    as_user = NOBODY if os.geteuid() == 0 else None
    readable = [p for p in stable if p != secret and locked_dir not in p.parents]
    expect = _oracle(ds_path, digests, readable)
    assert len(expect) >= 10
    with Grower(growing):
        hits, errors, out = _run_scan(ds_path, root, as_user, hashing)
    assert hits == expect
    # The growing file: read past the size fstat gave, or mtime moved.
    changed = {"file changed size while read", "file changed while read"}
    assert next(w for p, w in errors if p == str(growing)) in changed
    assert sorted(e for e in errors if e[0] != str(growing)) == sorted(
        [(str(locked_dir), "permission denied"), (str(secret), "permission denied")]
    )
    assert len(errors) == 3
    # empty file, big file (3 MiB, streamed) and its copy were all read
    assert out["read"] == len(readable)
    assert out["special"] == 3  # the two links and the FIFO
    if combined:  # one cheapest algorithm covers all records
        assert len(out["hashed"]) == 1
    else:
        assert out["hashed"] == list(ALGS)

    # Following links: the loop is walked once, the self-link is an error.
    with Grower(growing):
        hits, errors, out = _run_scan(
            ds_path, root, as_user, hashing, follow_symlinks=True
        )
    assert hits == expect
    assert (str(root / "self"), "symbolic link loop") in errors
    assert out["read"] == len(readable)


def test_fifo_given_as_path_and_swapped_in_does_not_block(tmp_path):
    """A FIFO is never opened by the walk; one that replaces a file between
    the walk and the read is opened non-blocking and refused."""
    from hashlookup.scan import reader as scan_mod

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    lst = tmp_path / "l.txt"
    lst.write_text("00" * 16 + "\n")
    build_dataset([str(lst)], str(tmp_path / "ds.hlds"))
    r = scan(tmp_path / "ds.hlds", [fifo])
    assert r.special == 1 and r.files_read == 0
    f = tmp_path / "d" / "file"
    f.parent.mkdir()
    f.write_bytes(b"data")
    many = scan_mod.Hasher.many

    def swap(self, group):
        for path, _, _ in group:
            os.unlink(path)
            os.mkfifo(path)
        return many(self, group)

    for native in (scan_mod._native, None):
        f.unlink()
        f.write_bytes(b"data")
        errors = []
        scan_mod.Hasher.many, saved, scan_mod._native = swap, scan_mod._native, native
        try:
            r = scan(
                tmp_path / "ds.hlds",
                [f.parent],
                on_error=lambda p, w: errors.append((p, w)),  # noqa: B023 (called here)
            )
        finally:
            scan_mod.Hasher.many, scan_mod._native = many, saved
        assert errors == [(str(f), "no longer a regular file")]


def test_cli_report_is_atomic_and_progress_only_when_asked(tree, tmp_path):
    files = [p for p in _regular(tree) if p.stat().st_mode & 0o444]
    digests = _tool_digests(files)
    lst = tmp_path / "k.md5"
    lst.write_text("".join(f"{digests['md5'][str(p)]}  {p.name}\n" for p in files[:6]))
    ds = tmp_path / "k.hlds"
    build_dataset({"k": str(lst)}, str(ds))
    report = tmp_path / "hits.csv"
    report.write_text("old\n")
    cmd = [
        sys.executable,
        "-m",
        "hashlookup",
        "scan",
        str(ds),
        str(tree),
        "--format",
        "csv",
        "--report",
        str(report),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    assert res.stdout == ""  # hits in the report only
    assert "\x1b[K" not in res.stderr  # stderr is a pipe: no progress
    rows = report.read_text().splitlines()
    assert rows[0] == "path,algorithm,digest,record,labels,mismatch"
    assert {r.split(",")[2] for r in rows[1:]} >= {
        digests["md5"][str(p)] for p in files[:6]
    }
    assert not list(tmp_path.glob(".hits.csv.*"))  # no temporary left
    # (bytes: text mode would read each "\r" as a line end)
    res = subprocess.run(cmd + ["--progress"], capture_output=True)
    assert res.returncode == 1
    err = res.stderr.decode()
    # forced on: the line drawn (each redraw overwrites the last) is erased
    # before the summary (a slow run redraws it several times)
    assert "scanning:" not in err or "\r\x1b[K" in err
    assert err.split("\r\x1b[K")[-1].startswith("hashlookup: scanned")


def test_progress_line():
    import io

    from hashlookup.cli.scan import Progress
    from hashlookup.scan import ScanReport

    buf = io.StringIO()
    p = Progress(buf)
    p.clear()
    assert buf.getvalue() == ""  # nothing shown, nothing to erase
    p.update(
        ScanReport(
            files_seen=12, files_read=10, bytes_read=5_000_000, errors=1, seconds=2.0
        )
    )
    text = buf.getvalue()
    assert text.startswith("\r") and text.endswith("\x1b[K")
    for part in ("10 files read of 12 seen", "5.0 MB", "0 hits", "1 errors", "2 MB/s"):
        assert part in text
    p.clear()
    assert buf.getvalue().endswith("\r\x1b[K") and not p.shown


def test_one_file_system_through_a_link_to_another_device(tmp_path):
    """A bind mount needs privileges a test should not use; a link (followed)
    to a directory on another file system (/dev/shm is a tmpfs) crosses a
    device boundary just the same."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no /dev/shm on another file system than the temp directory")
    other = Path(tempfile.mkdtemp(dir=shm))
    try:
        data = b"on another file system\n"
        (other / "far.txt").write_bytes(data)
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "near.txt").write_bytes(data)
        (tree / "elsewhere").symlink_to(other)
        (tree / "far-file").symlink_to(other / "far.txt")
        lst = tmp_path / "l.txt"
        lst.write_text(
            subprocess.run(["md5sum", "-"], input=data, capture_output=True, check=True)
            .stdout.decode()
            .split()[0]
            + "\n"
        )
        build_dataset([str(lst)], str(tmp_path / "ds.hlds"))
        ds = tmp_path / "ds.hlds"
        everywhere = {h.path for h in scan(ds, [tree], follow_symlinks=True).hits}
        assert everywhere == {
            str(tree / "near.txt"),
            str(tree / "elsewhere" / "far.txt"),
            str(tree / "far-file"),
        }
        here = {
            h.path
            for h in scan(ds, [tree], follow_symlinks=True, one_file_system=True).hits
        }
        assert here == {str(tree / "near.txt")}
    finally:
        shutil.rmtree(other)


def test_native_hash_files_against_hashlib(tmp_path):
    """_core.hash_files (C, GIL released): digests equal hashlib's for sizes
    around the buffer size; per-file errors as codes."""
    import hashlib

    from hashlookup import _core

    if not _core.filehash_available():
        pytest.skip("libcrypto not loadable: scan() hashes in Python (tested)")
    rng = np.random.default_rng(9)
    buf = bytearray(4096)
    paths, datas = [], []
    for n in (0, 1, 4095, 4096, 4097, 3 * 4096 + 5, 100_000):
        p = tmp_path / f"f{n}"
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        p.write_bytes(data)
        paths.append(os.fsencode(p))
        datas.append(data)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    st = os.stat(paths[1])
    extra = [os.fsencode(tmp_path / "missing"), os.fsencode(fifo), paths[2]]
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    for bits in range(1, 8):
        out = _core.hash_files(
            paths + extra,
            [None] * len(paths) + [None, None, (st.st_dev, st.st_ino)],
            bits,
            flags,
            buf,
        )
        for data, res in zip(datas, out):
            assert res[0] == len(data)
            for k, a in enumerate(ALGS):
                want = getattr(hashlib, a)(data).digest() if bits >> k & 1 else None
                assert res[k + 1] == want
        assert out[len(paths) :] == [2, -1, -2]  # ENOENT, not regular, other inode
    with pytest.raises(ValueError):
        _core.hash_files([b"a\0b"], [None], 1, flags, buf)


def test_native_candidates_get_every_digest(tmp_path):
    """probe/rest of _core.hash_files: a file whose md5 is in the table gets
    sha1 and sha256 from the buffer (candidate 2), or is flagged for a
    second read when it did not fit (candidate 1)."""
    import hashlib

    from hashlookup import _core

    if not _core.filehash_available():
        pytest.skip("libcrypto not loadable")
    small, large, other = (tmp_path / n for n in ("small", "large", "other"))
    small.write_bytes(b"s" * 1000)
    large.write_bytes(b"l" * 10000)
    other.write_bytes(b"o" * 1000)
    lst = tmp_path / "l.txt"
    lst.write_text(
        "".join(hashlib.md5(p.read_bytes()).hexdigest() + "\n" for p in (small, large))
    )
    build_dataset([str(lst)], str(tmp_path / "ds.hlds"))
    with open_dataset(tmp_path / "ds.hlds") as ds:
        out = _core.hash_files(
            [os.fsencode(p) for p in (small, large, other)],
            [None] * 3,
            1,
            os.O_RDONLY,
            bytearray(4096),
            None,
            (ds.table("md5"), None, None),
            6,
        )
    s = small.read_bytes()
    assert out[0] == (
        1000,
        hashlib.md5(s).digest(),
        hashlib.sha1(s).digest(),
        hashlib.sha256(s).digest(),
        2,
    )
    assert out[1][1:] == (hashlib.md5(large.read_bytes()).digest(), None, None, 1)
    assert out[2][2:] == (None, None, 0)
