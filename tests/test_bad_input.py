"""Bad input everywhere: one row per (input, bad form) of docs/BAD_INPUT.md.

Each row names what is fed where, and what must come back: an exception
type and a pattern its message must contain, a CLI exit status and a
pattern of its stderr, or None for input that is accepted (with a check of
the answer).  The test id of a row is its name, so the table in
docs/BAD_INPUT.md points at `test_bad_input.py::test_bad_input[<name>]`.
Rows already covered elsewhere (test_api_errors.py, test_corrupt.py,
test_importers.py, test_build.py, test_cli*.py) are referenced from the
doc instead of being repeated here.
"""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

import hashlookup
from hashlookup import IndexFormatError, InputError, cli
from hashlookup.importers import iter_records

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


class Env:
    """Files shared by the rows (built once) and per-test helpers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        rng = np.random.default_rng(61)
        self.md5 = rng.integers(0, 256, (40, 16), dtype=np.uint8)
        self.sha1 = rng.integers(0, 256, (30, 20), dtype=np.uint8)
        self.index_path = root / "known.hlx"
        hashlookup.build_index(self.md5, self.index_path)
        self.file("a.sha1", "\n".join(bytes(k).hex() for k in self.sha1) + "\n")
        self.file("b.md5", "\n".join(bytes(k).hex() for k in self.md5[:10]) + "\n")
        self.dataset_path = root / "known.hlds"
        hashlookup.build_dataset(
            {"a": str(root / "a.sha1"), "b": str(root / "b.md5")}, self.dataset_path
        )
        self.index = hashlookup.open_index(self.index_path)
        self.ds = hashlookup.open_dataset(self.dataset_path)
        self.monkeypatch: pytest.MonkeyPatch | None = None
        self.count = 0

    def file(self, name: str, content: str | bytes) -> str:
        path = self.root / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    def new(self, content: str | bytes, suffix: str = ".txt") -> str:
        """A fresh input file with this content."""
        self.count += 1
        return self.file(f"in{self.count}{suffix}", content)

    def out(self, suffix: str = ".hlx") -> str:
        self.count += 1
        return str(self.root / f"out{self.count}{suffix}")

    def member(self) -> bytes:
        return bytes(self.md5[3])

    def cli(self, *argv: str, stdin: bytes = b"") -> tuple[int, str]:
        """Run the CLI in-process: (exit status, stderr)."""
        assert self.monkeypatch is not None
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli.main([str(a) for a in argv])
        return code, err.getvalue()


class Row(NamedTuple):
    name: str
    call: Callable[[Env], Any]
    expect: type[BaseException] | int | None  # exception, exit status, accepted
    match: str = ""  # in the message / stderr
    check: Callable[[Any, Env], bool] | None = None  # for accepted input


def _nsrl(env: Env, text_value: bytes) -> str:
    """An NSRL-like database whose md5 column holds text_value (raw bytes
    stored as TEXT, e.g. not UTF-8)."""
    env.count += 1
    path = env.root / f"nsrl{env.count}.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE FILE (md5 TEXT, file_size INTEGER)")
    con.execute("INSERT INTO FILE VALUES (CAST(? AS TEXT), 1)", (text_value,))
    con.commit()
    con.close()
    return str(path)


def _damaged_dataset(env: Env, edit: Callable[[list[list[int]]], None]) -> str:
    """A copy of the dataset whose record table was edited, with every
    checksum recomputed: only verify()'s structural checks can tell."""
    from hashlookup.store import format as _format

    data = bytearray(env.dataset_path.read_bytes())
    header = _format.read_header(data, len(data), "x")
    rec = next(s for s in header.sections if s.kind == _format.KIND_RECORDS)
    n = rec.length // _format.RECORD.size
    rows = [
        list(_format.RECORD.unpack_from(data, rec.offset + i * _format.RECORD.size))
        for i in range(n)
    ]
    edit(rows)
    for i, r in enumerate(rows):
        _format.RECORD.pack_into(data, rec.offset + i * _format.RECORD.size, *r)
    for i, s in enumerate(header.sections):
        at = _format.HEADER.size + i * _format.SECTION.size + 32
        body = bytes(data[s.offset : s.offset + s.length])
        data[at : at + 8] = _format.section_checksum(body).to_bytes(8, "little")
    at = _format.HEADER_CHECKSUM_OFFSET
    data[at : at + 8] = _format.header_checksum(data[: header.header_size]).to_bytes(
        8, "little"
    )
    return env.new(bytes(data), ".hlds")


def _swap_sha1_rows(rows: list[list[int]]) -> None:
    rows[0][1], rows[1][1] = rows[1][1], rows[0][1]


def _drop_digests(rows: list[list[int]]) -> None:
    rows[0][:3] = [0xFFFFFFFF] * 3


def _verify(path: str) -> Any:
    with hashlookup.open_dataset(path) as ds:
        return ds.verify()


def _record0(path: str) -> Any:
    with hashlookup.open_dataset(path) as ds:
        return ds.record(0)


def _records(path: str, **kw: Any) -> int:
    return sum(len(b) for b in iter_records(path, **kw))


def _build(env: Env, content: str | bytes, **kw: Any) -> int:
    out = env.out()
    hashlookup.build_index(env.new(content), out, **kw)
    with hashlookup.open_index(out) as idx:
        return len(idx)


ROWS = [
    # -- index / dataset files ------------------------------------------------
    Row(
        "file-empty",
        lambda e: hashlookup.open_index(e.new(b"")),
        IndexFormatError,
        "empty file",
    ),
    Row(
        "file-nul-bytes",
        lambda e: hashlookup.open_index(e.new(bytes(8192))),
        IndexFormatError,
        "bad magic",
    ),
    Row(
        "file-text",
        lambda e: hashlookup.open_dataset(e.new(MD5 + "\n")),
        IndexFormatError,
        "not a hashlookup index",
    ),
    Row(
        "file-dataset-as-index",
        lambda e: hashlookup.open_index(e.dataset_path),
        IndexFormatError,
        "open_dataset",
    ),
    Row(
        "file-records-crossed",
        lambda e: _verify(_damaged_dataset(e, _swap_sha1_rows)),
        IndexFormatError,
        "record 0 points at sha1 row .*, which maps to another record",
    ),
    Row(
        "file-record-without-digest",
        lambda e: _verify(_damaged_dataset(e, _drop_digests)),
        IndexFormatError,
        "which has no sha1 digest",
    ),
    Row(
        "file-record-without-digest-record",
        lambda e: _record0(_damaged_dataset(e, _drop_digests)),
        IndexFormatError,
        "record 0 has no digest",
    ),
    Row("file-path-none", lambda e: hashlookup.open_index(None), TypeError, "NoneType"),
    Row("file-path-nul", lambda e: hashlookup.open_dataset("a\0b"), ValueError, "null"),
    Row(
        "file-path-bytes",
        lambda e: len(hashlookup.open_index(str(e.index_path).encode())),
        None,
        check=lambda r, e: r == 40,
    ),
    # -- one digest: `in`, find() ---------------------------------------------
    Row("key-none", lambda e: None in e.index, TypeError, "got NoneType"),
    Row("key-int", lambda e: e.index.find(7), TypeError, "got int"),
    Row("key-list", lambda e: e.index.find([e.member()]), TypeError, "got list"),
    Row("key-short-bytes", lambda e: bytes(15) in e.index, ValueError, "got 15 bytes"),
    Row("key-empty-bytes", lambda e: b"" in e.index, ValueError, "got 0 bytes"),
    Row("key-empty-str", lambda e: "" in e.index, ValueError, "str of length 0"),
    Row(
        "key-hex-as-bytes",
        lambda e: MD5.encode() in e.index,
        ValueError,
        "got 32 bytes",
    ),
    Row(
        "key-non-hex",
        lambda e: "g" * 32 in e.index,
        ValueError,
        "non-hex character 'g' at position 0",
    ),
    Row("key-non-ascii", lambda e: "é" * 32 in e.index, ValueError, "non-ASCII"),
    Row("key-nul-chars", lambda e: "\0" * 32 in e.index, ValueError, "non-hex"),
    Row(
        "key-inner-space",
        lambda e: MD5[:30] + " e" in e.index,
        ValueError,
        "position 30",
    ),
    Row("key-huge-str", lambda e: "a" * 10**6 in e.index, ValueError, "length 1000000"),
    Row(
        "key-upper-hex",
        lambda e: e.member().hex().upper() in e.index,
        None,
        check=lambda r, e: r is True,
    ),
    Row(
        "key-strided-memoryview",
        lambda e: (
            memoryview(bytes(b for c in e.member() for b in (c, 0)))[::2] in e.index
        ),
        None,
        check=lambda r, e: r is True,
    ),
    Row("key-after-close", lambda e: MD5 in _closed(e), ValueError, "closed index"),
    # -- batches: contains_many / find_many -----------------------------------
    Row("batch-none", lambda e: e.index.contains_many(None), TypeError, "NoneType"),
    Row("batch-single-str", lambda e: e.index.find_many(MD5), TypeError, "single str"),
    Row(
        "batch-int-items",
        lambda e: e.index.contains_many([1, 2]),
        TypeError,
        r"got int \(item 0\)",
    ),
    Row(
        "batch-bad-item",
        lambda e: e.index.find_many([MD5, "xyz"]),
        ValueError,
        r"length 3 \(item 1\)",
    ),
    Row(
        "batch-flat-odd-length",
        lambda e: e.index.contains_many(bytes(15)),
        ValueError,
        "not a multiple of the key width 16",
    ),
    Row(
        "batch-array-dtype",
        lambda e: e.index.contains_many(np.zeros((2, 16), np.int8)),
        TypeError,
        "dtype int8",
    ),
    Row(
        "batch-array-3d",
        lambda e: e.index.contains_many(np.zeros((2, 2, 16), np.uint8)),
        ValueError,
        "3 dimensions",
    ),
    Row(
        "batch-array-width",
        lambda e: e.index.find_many(np.zeros((2, 20), np.uint8)),
        ValueError,
        r"shape \(2, 20\)",
    ),
    Row(
        "batch-empty",
        lambda e: e.index.contains_many([]),
        None,
        check=lambda r, e: r.shape == (0,),
    ),
    Row(
        "batch-generator",
        lambda e: e.index.contains_many(x for x in [e.member(), bytes(16)]),
        None,
        check=lambda r, e: r.tolist() == [True, False],
    ),
    Row(
        "batch-threads-none",
        lambda e: e.index.contains_many([MD5], threads=None),
        TypeError,
        "threads must be an int",
    ),
    Row(
        "batch-threads-float",
        lambda e: e.index.find_many([MD5], threads=1.5),
        TypeError,
        "threads must be an int",
    ),
    Row(
        "batch-out-readonly",
        lambda e: e.index.contains_many([MD5], out=np.frombuffer(b"\0", np.bool_)),
        ValueError,
        "writeable",
    ),
    # -- datasets: lookup, lookup_many, labels, records -------------------------
    Row("ds-lookup-none", lambda e: e.ds.lookup(None), TypeError, "NoneType"),
    Row(
        "ds-lookup-length",
        lambda e: e.ds.lookup("a" * 33),
        ValueError,
        "32, 40 or 64 hex characters",
    ),
    Row(
        "ds-lookup-non-hex-absent-table",
        lambda e: e.ds.lookup("z" * 64),
        ValueError,
        "sha256 digest in hex",
    ),
    Row(
        "ds-lookup-absent-table",
        lambda e: e.ds.lookup("0" * 64),
        None,
        check=lambda r, e: r is None,
    ),
    Row(
        "ds-lookup-non-ascii", lambda e: e.ds.lookup("é" * 40), ValueError, "non-ASCII"
    ),
    Row(
        "ds-lookup-only-unknown-label",
        lambda e: e.ds.lookup(bytes(e.sha1[0]), only=["nope"]),
        None,
        check=lambda r, e: r is None,
    ),
    Row(
        "ds-lookup-many-none",
        lambda e: e.ds.lookup_many(None),
        TypeError,
        "not iterable",
    ),
    Row(
        "ds-lookup-many-items",
        lambda e: e.ds.lookup_many(
            [None, "xyz", b"\0" * 20, "é" * 40, bytes(e.sha1[1])]
        ),
        None,
        check=lambda r, e: (
            [type(x).__name__ for x in r]
            == ["Invalid", "Invalid", "NoneType", "Invalid", "Match"]
            and all(x.reason for x in r[:2])
        ),
    ),
    Row(
        "ds-lookup-many-array-dtype",
        lambda e: e.ds.lookup_many(np.zeros((2, 20), np.int8)),
        TypeError,
        "uint8 array",
    ),
    Row(
        "ds-lookup-many-array-width",
        lambda e: e.ds.lookup_many(np.zeros((2, 17), np.uint8)),
        ValueError,
        "17 bytes",
    ),
    Row(
        "ds-record-out-of-range", lambda e: e.ds.record(-1), IndexError, "out of range"
    ),
    Row(
        "ds-records-with-unknown",
        lambda e: e.ds.records_with("nope"),
        KeyError,
        "no label 'nope'",
    ),
    Row("ds-table-unknown", lambda e: e.ds.table("md4"), KeyError, "no md4 table"),
    Row(
        "ds-reload-interval-zero",
        lambda e: hashlookup.open_dataset(e.dataset_path, reload_interval=0),
        ValueError,
        "must be > 0",
    ),
    # -- text digest lists (build_index, iter_records "text") -----------------
    Row("text-empty", lambda e: _build(e, ""), InputError, "no digests"),
    Row("text-comments-only", lambda e: _build(e, "# x\n\n"), InputError, "no digests"),
    Row(
        "text-empty-records",
        lambda e: _records(e.new("")),
        None,
        check=lambda r, e: r == 0,
    ),
    Row(
        "text-nul-line",
        lambda e: _build(e, MD5 + "\n\0\0\0\n"),
        InputError,
        r"in\d+\.txt:2: expected 32 hex characters \(md5\)",
    ),
    Row(
        "text-nul-in-digest",
        lambda e: _build(e, f"{MD5}\n{MD5[:30]}\0e\n"),
        InputError,
        ":2: expected 32 hex characters (md5), got non-hex",
    ),
    Row(
        "text-non-ascii",
        lambda e: _build(e, MD5[:31] + "é\n"),
        InputError,
        ":1: expected a hex md5, sha1 or sha256 digest",
    ),
    Row(
        "text-wrong-length",
        lambda e: _build(e, f"{MD5}\n{MD5}0\n"),
        InputError,
        ":2: expected 32 hex characters",
    ),
    Row(
        "text-mixed-lengths",
        lambda e: _build(e, f"{MD5}\n{'a' * 40}\n"),
        InputError,
        "mixed digest lengths",
    ),
    Row(
        "text-huge-line",
        lambda e: _build(e, MD5 + "\n" + "a" * (2 << 20) + "\n"),
        InputError,
        ":2: line longer than 1048576 bytes",
    ),
    Row(
        "text-utf16",
        lambda e: _records(e.new((MD5 + "\n").encode("utf-16"))),
        InputError,
        "convert this text file to UTF-8",
    ),
    Row(
        "text-skip-invalid",
        lambda e: _build(e, f"{MD5}\nzz\n\0\n{'b' * 32}\n", skip_invalid=True),
        None,
        check=lambda r, e: r == 2,
    ),
    Row(
        "text-crlf-and-blanks",
        lambda e: _build(e, f" {MD5} \r\n\t\r\n"),
        None,
        check=lambda r, e: r == 1,
    ),
    Row("md5sum-no-separator", lambda e: _build(e, MD5 + "name\n"), InputError, ":1:"),
    Row(
        "md5sum-escaped-name",
        lambda e: _build(e, f"\\{MD5}  a\\nb\n"),
        None,
        check=lambda r, e: r == 1,
    ),
    # -- other list formats ---------------------------------------------------
    Row(
        "hashdeep-bad-digest",
        lambda e: _records(
            e.new("%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n1,zz,f\n")
        ),
        InputError,
        ":3: column md5: expected 32 hex characters",
    ),
    Row(
        "csv-no-digest-column",
        lambda e: _records(e.new("name,size\na,1\n", ".csv"), input_format="csv"),
        InputError,
        "no md5, sha1 or sha256 column",
    ),
    Row(
        "csv-bare-cr-in-header",
        lambda e: _records(
            e.new(b"md5\r,x\n" + MD5.encode() + b",1\n", ".csv"), input_format="csv"
        ),
        InputError,
        "unreadable CSV header",
    ),
    Row(
        "csv-nul-in-cell",
        lambda e: _records(e.new(f"md5,size\n{MD5[:31]}\0,1\n", ".csv")),
        InputError,
        ":2:",
    ),
    Row(
        "vics-not-vics-json",
        lambda e: _records(e.new('{"a": 1}', ".json")),
        InputError,
        "not a VICS export",
    ),
    Row(
        "vics-truncated",
        lambda e: _records(e.new('{"odata.metadata": "x", "value": [', ".json")),
        InputError,
        "malformed JSON",
    ),
    Row(
        "nsrl-not-sqlite",
        lambda e: _records(e.new("hello", ".db")),
        InputError,
        "not an SQLite database",
    ),
    Row(
        "nsrl-damaged",
        lambda e: _records(e.new(b"SQLite format 3\0" + bytes(200), ".sqlite")),
        InputError,
        "SQLite",
    ),
    Row(
        "nsrl-text-not-utf8",
        lambda e: _records(_nsrl(e, b"\xff" * 32)),
        InputError,
        "FILE rowid 1",
    ),
    # -- build and import arguments -------------------------------------------
    Row(
        "build-source-none",
        lambda e: hashlookup.build_index(None, e.out()),
        TypeError,
        "NoneType",
    ),
    Row(
        "build-source-missing-file",
        lambda e: hashlookup.build_index(MD5, e.out()),
        FileNotFoundError,
        MD5,
    ),
    Row(
        "build-item-none",
        lambda e: hashlookup.build_index([None], e.out()),
        InputError,
        "item 0",
    ),
    Row(
        "build-unknown-algorithm",
        lambda e: hashlookup.build_index([MD5], e.out(), algorithm="md4"),
        ValueError,
        "unknown algorithm 'md4'",
    ),
    Row(
        "records-batch-size",
        lambda e: _records(e.new(MD5), batch_size=0),
        ValueError,
        "batch_size",
    ),
    Row(
        "records-unknown-format",
        lambda e: _records(e.new(MD5), input_format="xml"),
        ValueError,
        "unknown input_format",
    ),
    Row(
        "records-columns-type",
        lambda e: _records(e.new(MD5), input_format="csv", columns=["md5"]),
        TypeError,
        "columns must be a dict",
    ),
    # -- command line and standard input --------------------------------------
    Row("cli-no-command", lambda e: e.cli(), 2, "required: COMMAND"),
    Row(
        "cli-check-bad-digest",
        lambda e: e.cli("check", e.dataset_path, "zz"),
        2,
        "digest argument 1",
    ),
    Row(
        "cli-check-non-ascii",
        lambda e: e.cli("check", e.dataset_path, "é" * 32),
        2,
        "digest argument 1",
    ),
    Row(
        "cli-check-missing-file",
        lambda e: e.cli("check", e.root / "no.hlds", MD5),
        2,
        "No such file",
    ),
    Row(
        "cli-info-not-an-index",
        lambda e: e.cli("info", e.new(bytes(100))),
        2,
        "bad magic",
    ),
    Row(
        "cli-threads-negative",
        lambda e: e.cli("match", e.dataset_path, "--threads", "-1"),
        2,
        ">= 0",
    ),
    Row("stdin-empty", lambda e: e.cli("match", e.dataset_path), 0, ""),
    Row(
        "stdin-nul-bytes",
        lambda e: e.cli("match", e.dataset_path, stdin=MD5.encode() + b"\n\0\0\n"),
        2,
        "<stdin>:2:",
    ),
    Row(
        "stdin-not-utf8",
        lambda e: e.cli("match", e.dataset_path, stdin=b"\xff\xfe\n"),
        2,
        "<stdin>:1:",
    ),
    Row(
        "stdin-huge-line",
        lambda e: e.cli("match", e.dataset_path, stdin=b"a" * (2 << 20)),
        2,
        "line longer than",
    ),
    Row(
        "stdin-build-index-bad-line",
        lambda e: e.cli("build", "--index", "-o", e.out(), "-", stdin=b"zz\n"),
        2,
        ":1: expected a hex md5",
    ),  # in-process stdin is named <stream>
    Row(
        "stdin-build-dataset-bad-line",
        lambda e: e.cli("build", "-o", e.out(".hlds"), "-", stdin=b"zz\n"),
        2,
        "error: <stdin>:1: expected a hex md5",
    ),
    Row(
        "cli-chunk-size-zero",
        lambda e: e.cli("match", e.dataset_path, "--chunk-size", "0"),
        2,
        ">= 1",
    ),
]


def _closed(env: Env) -> hashlookup.HashIndex:
    idx = hashlookup.open_index(env.index_path)
    idx.close()
    return idx


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(tmp_path_factory.mktemp("bad_input"))
    yield e
    e.index.close()
    e.ds.close()


def test_row_names_are_unique():
    assert len({r.name for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input(row: Row, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.monkeypatch = monkeypatch
    if isinstance(row.expect, int):  # a CLI exit status
        code, err = row.call(env)
        assert code == row.expect, err
        assert row.match in err, err
        if code == 2 and row.match:
            assert "Traceback" not in err
    elif row.expect is None:  # accepted, with a checked answer
        result = row.call(env)
        assert row.check is not None and row.check(result, env), result
    else:
        with pytest.raises(row.expect) as info:
            row.call(env)
        assert row.match, "every refusal row says what its message must contain"
        assert re.search(row.match, str(info.value)) or row.match in str(info.value), (
            str(info.value)
        )
