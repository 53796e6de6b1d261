"""Inputs that are streams, and inputs that would balloon.

* A pipe (a FIFO, ``<(...)`` as /dev/fd/N) is read once: format detection
  and reading share one pass, with or without ``input_format``; every error
  names the file.
* A CSV line (header or data) has a length bound: past it the error names
  file and line, and the reader stops reading (a pipe's writer sees the
  reader go away after a few MiB, not after the whole line).
* A UTF-8 byte-order mark is skipped by every reader: build, build --index
  and match.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import hashlookup
from hashlookup.errors import InputError
from hashlookup.importers import iter_records
from importer_data import (
    make_table,
    make_vics,
    records_of,
    write_csv,
    write_hashdeep,
    write_nsrl,
    write_text,
    write_vics,
)

HLOOKUP = str(Path(sys.executable).parent / "hlookup")
BOM = b"\xef\xbb\xbf"


class _Writer(threading.Thread):
    """Writes chunks into a pipe's write end until done or the reader has
    gone away; counts the bytes the reader took."""

    def __init__(self, fd_or_path: int | str, chunks: Iterator[bytes]) -> None:
        super().__init__(daemon=True)
        self.target = fd_or_path
        self.chunks = chunks
        self.written = 0
        self.broken = False

    def run(self) -> None:
        fd = (
            self.target
            if isinstance(self.target, int)
            else os.open(self.target, os.O_WRONLY)
        )
        try:
            for chunk in self.chunks:
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    self.written += n
                    view = view[n:]
        except BrokenPipeError:
            self.broken = True
        finally:
            os.close(fd)


@contextmanager
def pipe_of(chunks: Iterator[bytes] | bytes) -> Iterator[tuple[str, _Writer]]:
    """A /dev/fd/N path of a pipe fed by a thread (what ``<(...)`` gives)."""
    if isinstance(chunks, bytes):
        chunks = iter([chunks])
    r, w = os.pipe()
    writer = _Writer(w, chunks)
    writer.start()
    try:
        yield f"/dev/fd/{r}", writer
    finally:
        os.close(r)  # the writer sees EPIPE if it is still writing
        writer.join(timeout=60)
        assert not writer.is_alive()


def _formats(tmp_path: Path) -> dict[str, Path]:
    table = make_table(300, seed=5, categories=3)
    files = {
        "text": tmp_path / "list.md5",
        "hashdeep": tmp_path / "list.hashdeep",
        "csv": tmp_path / "list.csv",
        "csv16": tmp_path / "list16.csv",
        "vics": tmp_path / "list.json",
    }
    write_text(files["text"], table, "md5", style="sum", comments=True)
    write_hashdeep(files["hashdeep"], table)
    write_csv(files["csv"], table)
    write_csv(files["csv16"], table, encoding="utf-16", bom=True)
    media, _ = make_vics(40, seed=6)
    write_vics(files["vics"], media)
    return files


@pytest.mark.parametrize("given", [False, True], ids=["detected", "input_format"])
def test_pipe_reads_once_like_a_file(tmp_path: Path, given: bool) -> None:
    for kind, path in _formats(tmp_path).items():
        fmt = "csv" if kind == "csv16" else kind
        expected = records_of(iter_records(path))
        assert expected, kind
        with pipe_of(path.read_bytes()) as (name, _):
            got = records_of(
                iter_records(name, input_format=fmt if given else None, batch_size=77)
            )
        assert got == expected, kind


FIXTURES = Path(__file__).parent / "data" / "formats"


@pytest.mark.parametrize(
    ("fixture", "fmt"),
    [
        ("md5sum_tag.txt", "bsd"),
        ("openssl_sha256.txt", "bsd"),
        ("md5deep_z.txt", "md5deep-size"),
        ("sha256deep_z.txt", "md5deep-size"),
    ],
)
@pytest.mark.parametrize("given", [False, True], ids=["detected", "input_format"])
def test_pipe_of_other_tools_layouts(fixture: str, fmt: str, given: bool) -> None:
    # the layouts of coreutils --tag, openssl and md5deep -z read from a pipe
    # as from a file (read once, the head replayed)
    path = FIXTURES / fixture
    expected = records_of(iter_records(path))
    assert expected
    with pipe_of(path.read_bytes()) as (name, _):
        got = records_of(iter_records(name, input_format=fmt if given else None))
    assert got == expected


def test_fifo_build_does_not_hang(tmp_path: Path) -> None:
    """A named pipe: the CLI's dataset build opens it once (a second open
    would wait for a writer that never comes)."""
    table = make_table(500, seed=7, algos=("sha1",))
    src = tmp_path / "list.sha1"
    write_text(src, table, "sha1")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _Writer(str(fifo), iter([src.read_bytes()]))
    writer.start()
    out = subprocess.run(
        [HLOOKUP, "build", "-o", str(tmp_path / "ds.hlds"), str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    writer.join(timeout=60)
    assert out.returncode == 0, out.stderr
    with hashlookup.open_dataset(tmp_path / "ds.hlds") as ds:
        assert len(ds) == 500
        some = table.digests["sha1"][:50]
        assert all(ds.lookup(k.tobytes().hex()) is not None for k in some)


@pytest.mark.parametrize("fmt", [[], ["--input-format", "text"]], ids=["auto", "fmt"])
def test_process_substitution_build(tmp_path: Path, fmt: list[str]) -> None:
    table = make_table(200, seed=8, algos=("md5",))
    src = tmp_path / "list.md5"
    write_text(src, table, "md5")
    r, w = os.pipe()
    writer = _Writer(w, iter([src.read_bytes()]))
    writer.start()
    try:
        out = subprocess.run(
            [HLOOKUP, "build", *fmt, "-o", str(tmp_path / "d.hlds"), f"/dev/fd/{r}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            pass_fds=(r,),
        )
    finally:
        os.close(r)
        writer.join(timeout=60)
    assert out.returncode == 0, out.stderr
    with hashlookup.open_dataset(tmp_path / "d.hlds") as ds:
        assert len(ds) == 200


def test_sqlite_from_a_pipe_is_refused_by_name(tmp_path: Path) -> None:
    db = tmp_path / "rds.db"
    write_nsrl(db, make_table(20, seed=9))
    with (
        pipe_of(db.read_bytes()) as (name, _),
        pytest.raises(InputError, match=rf"^{name}: an SQLite database"),
    ):
        list(iter_records(name))


def test_errors_name_the_pipe(tmp_path: Path) -> None:
    with (
        pipe_of(b"not a digest\n") as (name, _),
        pytest.raises(InputError, match=rf"^{name}:1: "),
    ):
        list(iter_records(name, input_format="text"))


def test_table_inventory_from_a_pipe_is_refused_not_hung(tmp_path: Path) -> None:
    """`match` reads a CSV inventory more than once (header, rows): from a
    pipe it says so instead of waiting for a writer for ever."""
    keys = _keys(20, 13)
    hashlookup.build_index(
        [k.tobytes().hex() for k in keys], tmp_path / "k.hlx", algorithm="md5"
    )
    csv_text = "md5,name\n" + "".join(f"{k.tobytes().hex()},f\n" for k in keys)
    fifo = tmp_path / "inventory.csv"
    os.mkfifo(fifo)
    writer = _Writer(str(fifo), iter([csv_text.encode()]))
    writer.start()
    out = subprocess.run(
        [HLOOKUP, "match", str(tmp_path / "k.hlx"), str(fifo), "--column", "md5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if writer.is_alive():  # nobody opened the FIFO: let the writer go
        with open(fifo, "rb") as f:
            f.read()
    writer.join(timeout=60)
    assert out.returncode == 2
    assert f"{fifo}: a csv inventory must be a regular file" in out.stderr


# ------------------------------------------------------------- line bounds


def _endless(first: bytes, fill: bytes = b"x", total: int = 512 << 20):
    yield first
    block = fill * (1 << 20)
    for _ in range(total >> 20):
        yield block


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le"])
def test_csv_header_line_is_bounded(encoding: str) -> None:
    """A 512 MiB 'header' from a pipe: the error names file and line 1 and
    the reader stops after a few MiB (the writer's pipe breaks)."""
    from hashlookup.importers import _csv

    if encoding == "utf-8":
        gen = _endless(b"\n\nmd5,", b"x")
    else:
        gen = _endless(b"\xff\xfe" + "md5,".encode("utf-16-le"), "x".encode(encoding))
    with pipe_of(gen) as (name, writer), pytest.raises(InputError) as err:
        list(iter_records(name, input_format="csv"))
    line = 3 if encoding == "utf-8" else 1
    assert str(err.value).startswith(f"{name}:{line}: the CSV header line is longer")
    assert writer.broken
    bound = 4 * _csv.MAX_HEADER + 2 * _csv.CHUNK_SIZE + (1 << 20)
    assert writer.written < bound, writer.written


def test_csv_data_line_is_bounded_utf16(tmp_path: Path) -> None:
    from hashlookup.importers import _csv

    row = "0" * 32 + ",1\n"
    first = b"\xff\xfe" + ("md5,size\n" + row * 3).encode("utf-16-le")
    gen = _endless(first, "y".encode("utf-16-le"), total=(4 * _csv.MAX_RECORD))
    with (
        pipe_of(gen) as (name, writer),
        pytest.raises(InputError, match=rf"^{name}:5: a line longer than"),
    ):
        list(iter_records(name, input_format="csv"))
    assert writer.broken
    assert writer.written < 3 * 2 * _csv.MAX_RECORD


def test_csv_header_at_the_bound_is_read(tmp_path: Path) -> None:
    from hashlookup.importers import _csv

    pad = "p" * (_csv.MAX_HEADER - len("md5,") - 1)
    path = tmp_path / "wide.csv"
    path.write_text(f"md5,{pad}\n{'ab' * 16},x\n")
    got = records_of(iter_records(path))
    assert [r.md5 for r in got] == [bytes.fromhex("ab" * 16)]
    path.write_text(f"md5,{pad}pp\n{'ab' * 16},x\n")
    with pytest.raises(InputError, match=rf"^{path}:1: the CSV header line"):
        list(iter_records(path))


# ------------------------------------------------------------------- BOM


def _keys(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.unique(rng.integers(0, 256, (n, 16), dtype=np.uint8), axis=0)


def test_bom_is_skipped_by_every_reader(tmp_path: Path) -> None:
    keys = _keys(300, 11)
    text = "".join(k.tobytes().hex() + "\n" for k in keys).encode()
    plain, marked = tmp_path / "plain.md5", tmp_path / "marked.md5"
    plain.write_bytes(text)
    marked.write_bytes(BOM + text)
    # build (dataset) and build_index
    hashlookup.build_dataset({"a": marked}, tmp_path / "a.hlds")
    hashlookup.build_index(marked, tmp_path / "a.hlx")
    for out in ("a.hlds", "a.hlx"):
        with hashlookup.open_dataset(tmp_path / out) as ds:
            assert len(ds) == len(keys)
    # the command line: build --index and match (text and line numbers)
    cli = subprocess.run(
        [HLOOKUP, "build", "--index", "-o", str(tmp_path / "c.hlx"), str(marked)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    hits = {}
    for path in (plain, marked):
        out = subprocess.run(
            [HLOOKUP, "match", str(tmp_path / "a.hlx"), str(path), "-j", "2"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 1, out.stderr
        hits[path] = out.stdout.replace(str(path).encode(), b"FILE")
    assert hits[plain] == hits[marked]
    assert hits[plain].count(b"\n") == len(keys)


def test_bom_in_hashdeep_and_digest_stream(tmp_path: Path) -> None:
    table = make_table(100, seed=12)
    path = tmp_path / "h.txt"
    write_hashdeep(path, table)
    expected = records_of(iter_records(path))
    path.write_bytes(BOM + path.read_bytes())
    assert records_of(iter_records(path)) == expected
