"""Tests of the command-line interface on datasets: build (NAME=PATH inputs,
formats, allow-lists), info, verify, check, match (algorithm detection, records,
label filters), update, export-bloom, and the dataset mode of the streaming
matcher.  The CLI runs in-process through ``main(argv)``.

All data is synthetic: the "files" are the strings ``synthetic file <i>`` and
their md5/sha1/sha256 digests.  Which list knows which file:

    file i      police (md5)   hotline (size, md5, sha256)   vendor (CSV)
    0..79       yes            -                              -
    80..119     yes            yes                            -
    120..149    -              yes                            -
    150..159    -              yes                            md5 + sha1, category
    160..179    -              yes                            sha1 only, category
    180..199    -              -                              sha1 only, category

The allow-list holds the md5 of file 100 (on police and hotline).  Records that
share a digest merge; a vendor row with only a sha1 shares nothing with the
hotline record of the same file, so files 160..179 have two records.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import hashlookup
from hashlookup.cli import main
from hashlookup.match.keys import MatchStats, match_chunks

N_FILES = 200
ALLOWED = 100


def _digest(algorithm: str, i: int) -> str:
    return hashlib.new(algorithm, f"synthetic file {i}".encode()).hexdigest()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hashlookup: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


@dataclass
class Expected:
    """The record a digest should find: its digests, size and labels."""

    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    size: int | None = None
    labels: set[str] = field(default_factory=set)


def police(i: int) -> bool:
    return i < 120


def hotline(i: int) -> bool:
    return 80 <= i < 180


def vendor(i: int) -> bool:
    return 150 <= i < 200


def vendor_md5(i: int) -> bool:
    return 150 <= i < 160


def category(i: int) -> int:
    return i % 3


def expected_record(algorithm: str, i: int) -> Expected | None:
    """What looking up file i's digest of `algorithm` should give (None: miss)."""
    md5_side = police(i) or hotline(i) or vendor_md5(i)
    if i == ALLOWED:
        return None
    if algorithm == "sha1":
        if not vendor(i):
            return None
        if not vendor_md5(i):  # a record of its own
            return Expected(
                sha1=_digest("sha1", i),
                labels={"source:vendor", f"category:{category(i)}"},
            )
    elif algorithm == "md5":
        if not md5_side:
            return None
    elif not hotline(i):  # sha256: only the hotline has them
        return None
    # the merged md5 record of file i
    rec = Expected(md5=_digest("md5", i))
    if police(i):
        rec.labels.add("source:police")
    if hotline(i):
        rec.labels.add("source:hotline")
        rec.sha256 = _digest("sha256", i)
        rec.size = 1000 + i
    if vendor_md5(i):
        rec.labels |= {"source:vendor", f"category:{category(i)}"}
        rec.sha1 = _digest("sha1", i)
    return rec


class Data:
    """The input lists and the dataset built from them by the CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.police = root / "police.txt"
        lines = ["# police list (synthetic)"]
        for i in range(N_FILES):
            if police(i):
                # plain digests and md5sum lines
                d = _digest("md5", i)
                lines.append(d if i % 2 else f"{d.upper()}  evidence/{i}.jpg")
        self.police.write_text("\n".join(lines) + "\n")
        self.hotline = root / "hotline.hashdeep"
        with open(self.hotline, "w") as f:
            f.write("%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n")
            f.write("## Invoked from: /tmp\n## $ hashdeep -c md5,sha256 -r .\n##\n")
            for i in range(N_FILES):
                if hotline(i):
                    f.write(
                        f"{1000 + i},{_digest('md5', i)},{_digest('sha256', i)},"
                        f"./files/file,{i}.bin\n"
                    )
        self.vendor = root / "vendor.csv"
        with open(self.vendor, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["MD5", "SHA-1", "Category", "Name"])
            for i in range(N_FILES):
                if vendor(i):
                    md5 = _digest("md5", i) if vendor_md5(i) else ""
                    w.writerow([md5, _digest("sha1", i), category(i), f"item {i}"])
        self.allow = root / "allow.txt"
        self.allow.write_text(_digest("md5", ALLOWED) + "\n")
        self.dataset = root / "known.hlx"
        self.index = root / "plain.hlx"
        hashlookup.build_index(str(self.police), str(self.index))


def _build_argv(data: Data, output: Path, *extra: str) -> list[str]:
    return [
        "build",
        f"police={data.police}",
        f"hotline={data.hotline}",
        str(data.vendor),
        "--label-column",
        "category=Category",
        "--allow",
        str(data.allow),
        "--name",
        "testset",
        "-o",
        str(output),
        *extra,
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    d = Data(tmp_path_factory.mktemp("cli_dataset"))
    assert main(_build_argv(d, d.dataset, "--quiet")) == 0
    return d


def _n_records() -> int:
    md5_records = sum(
        1 for i in range(N_FILES) if (police(i) or hotline(i) or vendor_md5(i))
    )
    sha1_only = sum(1 for i in range(N_FILES) if vendor(i) and not vendor_md5(i))
    return md5_records - 1 + sha1_only  # minus the allow-listed file


def _all_digests(algorithm: str) -> list[str]:
    return [_digest(algorithm, i) for i in range(N_FILES)]


def _key_rows(hexes: list[str]) -> np.ndarray:
    raw = bytes.fromhex("".join(hexes))
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(hexes), -1)


# ---------------------------------------------------------------- build


def test_build_dataset(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "b.hlx"
    code, out, err = _run(_build_argv(data, out_path), capsys)
    assert code == 0, err
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(
        f"hashlookup: wrote {out_path} (dataset testset, generation 1)"
    )
    assert f"{_n_records()} records from 270 input records" in line
    assert "(police 120, hotline 100, vendor 50)" in line
    assert "keys: md5 179, sha1 50, sha256 99" in line
    assert "2 suppressed by the allow-list" in line
    assert "0 invalid skipped" in line
    with hashlookup.open_dataset(out_path) as ds:
        assert ds.name == "testset"
        assert ds.generation == 1
        assert len(ds) == _n_records()
        assert ds.algorithms == ("md5", "sha1", "sha256")
        labels = ds.labels()
        assert labels["source:police"] == 119
        assert labels["source:hotline"] == 99
        assert labels["source:vendor"] == 50
        assert sum(v for k, v in labels.items() if k.startswith("category:")) == 50
        for algorithm in ("md5", "sha1", "sha256"):
            for i in range(N_FILES):
                want = expected_record(algorithm, i)
                got = ds.lookup(_digest(algorithm, i))
                if want is None:
                    assert got is None, (algorithm, i)
                    continue
                assert got is not None, (algorithm, i)
                assert (got.md5, got.sha1, got.sha256, got.size) == (
                    want.md5,
                    want.sha1,
                    want.sha256,
                    want.size,
                ), (algorithm, i)
                assert set(got.labels) == want.labels, (algorithm, i)
    # a rebuild over the file is its next generation (unless --generation)
    code, _, err = _run(_build_argv(data, out_path, "-q"), capsys)
    assert (code, err) == (0, "")
    with hashlookup.open_dataset(out_path) as ds:
        assert ds.generation == 2
    code, _, err = _run(_build_argv(data, out_path, "-q", "--generation", "7"), capsys)
    assert (code, err) == (0, "")
    with hashlookup.open_dataset(out_path) as ds:
        assert ds.generation == 7


def test_build_default_names_and_plain_paths(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an existing file whose name contains '=' is a path, named by its stem
    odd = tmp_path / "list=1.txt"
    odd.write_text(_digest("md5", 1) + "\n")
    # '=' after a '/' (a directory named k=v) is part of the path too
    sub = tmp_path / "k=v"
    sub.mkdir()
    nested = sub / "nested.txt"
    nested.write_text(_digest("md5", 2) + "\n")
    out_path = tmp_path / "n.hlx"
    code, _, err = _run(
        ["build", str(odd), str(nested), f"named={data.police}", "-o", out_path, "-q"],
        capsys,
    )
    assert (code, err) == (0, "")
    with hashlookup.open_dataset(out_path) as ds:
        assert set(ds.labels()) == {"source:list=1", "source:nested", "source:named"}
        assert ds.name == "n"
        m = ds.lookup(_digest("md5", 1))
        assert m is not None and set(m.labels) == {"source:list=1", "source:named"}


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["build", "police=", "-o", "{out}"], ["no path after '='"]),
        (
            ["build", "a={police}", "a={vendor}", "-o", "{out}"],
            ["two inputs are named"],
        ),
        (["build", "{police}", "{police}", "-o", "{out}"], ["two inputs are named"]),
        (["build", "x={root}/missing.txt", "-o", "{out}"], ["missing.txt"]),
        (["build", "{police}", "--algorithm", "md5", "-o", "{out}"], ["--index"]),
        (
            ["build", "--index", "{police}", "--allow", "{allow}", "-o", "{out}"],
            ["--allow"],
        ),
        (["build", "--index", "{police}", "--name", "x", "-o", "{out}"], ["--name"]),
        (["build", "--index", "p={police}", "-o", "{out}"], ["NAME=PATH"]),
        (["build", "-", "x=-", "-o", "{out}"], ["only once"]),
        (
            [
                "build",
                "{vendor}",
                "--column",
                "md5=A",
                "--column",
                "md5=B",
                "-o",
                "{out}",
            ],
            ["given twice"],
        ),
        (["build", "{vendor}", "--column", "crc=A", "-o", "{out}"], ["crc"]),
        (
            ["build", "{vendor}", "--label-column", "a:b=Category", "-o", "{out}"],
            ["a:b"],
        ),
        (
            ["build", "{vendor}", "--input-format", "hashdeep", "-o", "{out}"],
            ["vendor.csv"],
        ),
    ],
)
def test_build_errors(
    argv: list[str],
    fragments: list[str],
    data: Data,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    out_path = tmp_path / "err.hlx"
    names = {
        "out": str(out_path),
        "police": str(data.police),
        "vendor": str(data.vendor),
        "allow": str(data.allow),
        "root": str(tmp_path),
    }
    code, out, err = _run([a.format(**names) for a in argv], capsys)
    assert code == 2 and out == "", err
    _assert_one_error_line(err, *fragments)
    assert not out_path.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "x", "-o", "y", "--input-format", "xml"],
        ["build", "x", "-o", "y", "--column", "md5"],
        ["build", "x", "-o", "y", "--bloom-bits-per-key", "65"],
        ["build", "x", "-o", "y", "--bloom-bits-per-key", "nan"],
        ["update"],
        ["export-bloom", "x.hlx"],
        ["export-bloom", "x.hlx", "-o", "f", "--algorithm", "crc32"],
        ["check", "x.hlx", "d", "--only"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    assert "usage: hashlookup" in err
    assert "Traceback" not in err


def test_build_csv_options_and_input_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # header names that auto-detection does not know: read as text unless told
    src = tmp_path / "export.dat"
    rows = ["Hash;Kind;Bytes"] + [
        f"{_digest('md5', i)};{'ab'[i % 2]};{10 + i}" for i in range(10)
    ]
    src.write_text("\n".join(rows) + "\n")
    out_path = tmp_path / "c.hlx"
    code, _, err = _run(["build", src, "-o", out_path], capsys)
    assert code == 2
    _assert_one_error_line(err, "export.dat:1")
    code, _, err = _run(
        [
            "build",
            f"vendor={src}",
            "--input-format",
            "csv",
            "--column",
            "md5=Hash",
            "--column",
            "size=Bytes",
            "--label-column",
            "kind=Kind",
            "-o",
            out_path,
            "-q",
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    with hashlookup.open_dataset(out_path) as ds:
        assert ds.labels() == {"kind:a": 5, "kind:b": 5, "source:vendor": 10}
        m = ds.lookup(_digest("md5", 3))
        assert m is not None and m.size == 13
        assert m.labels == ("kind:b", "source:vendor")


def test_build_skip_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.txt"
    src.write_text(f"{_digest('md5', 0)}\n{_digest('md5', 1)}\nxyz-not-hex\n")
    out_path = tmp_path / "bad.hlx"
    code, out, err = _run(["build", src, "-o", out_path], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "bad.txt:3", "xyz-not-hex")
    assert not out_path.exists()
    code, out, err = _run(
        ["build", src, "-o", out_path, "--skip-invalid", "--bloom-bits-per-key", "0"],
        capsys,
    )
    assert code == 0, err
    assert "2 records" in err and "1 invalid skipped" in err
    with hashlookup.open_dataset(out_path) as ds:
        assert len(ds) == 2


def test_build_stdin(
    data: Data,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = "".join(_digest("sha1", i) + "\n" for i in range(5)).encode()
    for spec, label in (("-", "source:stdin"), ("feed=-", "source:feed")):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
        out_path = tmp_path / f"stdin-{label[7:]}.hlx"
        code, _, err = _run(["build", spec, str(data.police), "-o", out_path], capsys)
        assert code == 0, err
        with hashlookup.open_dataset(out_path) as ds:
            assert ds.labels()[label] == 5
            assert ds.algorithms == ("md5", "sha1")
            info = ds.info()["metadata"]["build"]["sources"][label[7:]]
            assert info["file"] == "stdin" and info["format"] == "text"


# ---------------------------------------------------------------- info / verify


def test_info(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["info", data.dataset, "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["kind"] == "dataset"
    assert info["name"] == "testset"
    assert info["generation"] == 1
    assert info["records"] == _n_records()
    assert info["keys"] == {"md5": 179, "sha1": 50, "sha256": 99}
    assert info["labels"]["source:police"] == 119
    assert info["suppressed"] == {"police": 1, "hotline": 1, "vendor": 0}
    assert info["sources"]["hotline"]["format"] == "hashdeep"
    assert info["sources"]["vendor"]["format"] == "csv"
    assert info["allow_lists"] == ["allow.txt"]
    assert info["built"].startswith("20")
    kinds = {s["kind"] for s in info["sections"]}
    assert {"rowmap", "records", "label bitmaps", "label index"} <= kinds
    assert info["metadata"]["dataset"]["name"] == "testset"
    code, text, err = _run(["info", data.dataset], capsys)
    assert code == 0, err
    lines = text.splitlines()
    for want in (
        "kind: dataset",
        "name: testset",
        "generation: 1",
        f"records: {_n_records()}",
        "  md5: 179",
        "  source:police: 119",
        "  police: 1",
        "  vendor: 0",
    ):
        assert want in lines, want
    # a single-table index: as before datasets
    code, out, err = _run(["info", data.index, "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["algorithm"] == "md5" and info["count"] == 120


def test_verify(data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["verify", data.dataset], capsys)
    assert (code, err) == (0, "")
    assert out == (
        f"OK: {data.dataset}: dataset testset generation 1, {_n_records()} records "
        "(179 md5, 50 sha1, 99 sha256 keys), all checks passed\n"
    )
    code, out, err = _run(["verify", data.index], capsys)
    assert (code, out, err) == (
        0,
        f"OK: {data.index}: 120 md5 keys, all checks passed\n",
        "",
    )
    raw = bytearray(data.dataset.read_bytes())
    with hashlookup.open_dataset(data.dataset) as ds:
        sections = ds.info()["tables"]["sha1"]["sections"]
    for kind in ("keys", "records", "label bitmaps"):
        s = next(x for x in sections if x["kind"] == kind)
        broken = bytearray(raw)
        broken[s["offset"] + s["length"] // 2] ^= 0x41
        path = tmp_path / f"broken-{kind.replace(' ', '_')}.hlx"
        path.write_bytes(bytes(broken))
        code, out, err = _run(["verify", path], capsys)
        assert code == 2 and out == "", kind
        _assert_one_error_line(err, "checksum")


# ---------------------------------------------------------------- check


def test_check_text(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    m155 = expected_record("sha256", 155)
    assert m155 is not None
    argv = ["check", data.dataset, _digest("sha256", 155), _digest("md5", 190)]
    code, out, err = _run(argv, capsys)
    assert (code, err) == (1, "")
    first, second = out.splitlines()
    fields = first.split("\t")
    assert fields[:2] == [_digest("sha256", 155), "FOUND"]
    assert fields[2].startswith("record=")
    assert fields[3:] == [
        f"md5={m155.md5}",
        f"sha1={m155.sha1}",
        f"sha256={m155.sha256}",
        "size=1155",
        f"labels=category:{category(155)};source:hotline;source:vendor",
    ]
    assert second == f"{_digest('md5', 190)}\tnot found"
    # the allow-listed file and files nobody listed: not found, exit 0
    code, out, err = _run(
        ["check", data.dataset, _digest("md5", ALLOWED).upper(), _digest("sha1", 5)],
        capsys,
    )
    assert (code, err) == (0, "")
    assert out == (
        f"{_digest('md5', ALLOWED)}\tnot found\n{_digest('sha1', 5)}\tnot found\n"
    )
    # a sha1-only record has no size and no other digests
    code, out, _ = _run(["check", data.dataset, _digest("sha1", 190)], capsys)
    assert code == 1
    assert out.split("\t")[3:] == [
        f"sha1={_digest('sha1', 190)}",
        f"labels=category:{category(190)};source:vendor\n",
    ]


def test_check_jsonl_csv(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    queries = [
        (a, i) for a in ("md5", "sha1", "sha256") for i in (3, 90, 100, 155, 170)
    ]
    argv = ["check", data.dataset, *(_digest(a, i) for a, i in queries)]
    code, out, err = _run([*argv, "--format", "jsonl"], capsys)
    assert (code, err) == (1, "")
    records = [json.loads(x) for x in out.splitlines()]
    assert len(records) == len(queries)
    ids = {}
    for (algorithm, i), rec in zip(queries, records, strict=True):
        want = expected_record(algorithm, i)
        assert rec["digest"] == _digest(algorithm, i)
        assert rec["found"] is (want is not None)
        if want is None:
            assert rec == {"digest": _digest(algorithm, i), "found": False}
            continue
        assert (rec["md5"], rec["sha1"], rec["sha256"], rec["size"]) == (
            want.md5,
            want.sha1,
            want.sha256,
            want.size,
        )
        assert set(rec["labels"]) == want.labels
        ids[(algorithm, i)] = rec["record"]
    # every digest of a merged file finds the same record
    assert ids[("md5", 155)] == ids[("sha1", 155)] == ids[("sha256", 155)]
    assert ids[("md5", 170)] == ids[("sha256", 170)] != ids[("sha1", 170)]
    code, out, err = _run([*argv, "--format", "csv"], capsys)
    assert (code, err) == (1, "")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == [
        "digest",
        "found",
        "record",
        "md5",
        "sha1",
        "sha256",
        "size",
        "labels",
    ]
    assert len(rows) == len(queries) + 1
    for (algorithm, i), row in zip(queries, rows[1:], strict=True):
        want = expected_record(algorithm, i)
        if want is None:
            assert row == [_digest(algorithm, i), "false"] + [""] * 6
            continue
        assert row[:2] == [_digest(algorithm, i), "true"]
        assert int(row[2]) == ids[(algorithm, i)]
        assert row[3:7] == [
            want.md5 or "",
            want.sha1 or "",
            want.sha256 or "",
            str(want.size or ""),
        ]
        assert set(row[7].split(";")) == want.labels


def test_check_filters(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    d90, d130 = _digest("md5", 90), _digest("md5", 130)  # police+hotline, hotline
    base = ["check", data.dataset, d90, d130]
    cases = [
        (["--only", "source:police"], [True, False]),
        (["--only", "source:police", "--only", "source:hotline"], [True, True]),
        (["--exclude-label", "source:police"], [False, True]),
        (
            ["--only", "source:hotline", "--exclude-label", "source:police"],
            [False, True],
        ),
        (
            ["--exclude-label", "source:police", "--exclude-label", "source:hotline"],
            [False, False],
        ),
        (["--exclude-label", "no-such-label"], [True, True]),
    ]
    for extra, want in cases:
        code, out, err = _run([*base, *extra, "--format", "jsonl"], capsys)
        assert err == "", (extra, err)
        got = [json.loads(x)["found"] for x in out.splitlines()]
        assert got == want, extra
        assert code == (1 if any(want) else 0), extra
    code, out, err = _run([*base, "--only", "source:nsrl"], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "'source:nsrl'", "source:police")
    # a single-table index has no labels
    code, out, err = _run(["check", data.index, d90, "--only", "source:police"], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "without labels")
    code, out, _ = _run(
        ["check", data.index, d90, "--exclude-label", "source:x"], capsys
    )
    assert (code, out) == (1, f"{d90}\tFOUND\n")


def test_check_invalid_digests(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _digest("sha256", 120)
    for bad in (good[:-1], good + "0", good[:-1] + "g", "ab" * 24):
        code, out, err = _run(["check", data.dataset, good, bad], capsys)
        assert code == 2 and out == ""
        _assert_one_error_line(err, "digest argument 2")
        assert bad not in err and good not in err  # queried digests never echoed
    # an algorithm the dataset has no table of is an error, not "not found"
    md5_only = tmp_path / "md5only.hlx"
    assert main(["build", str(data.police), "-o", str(md5_only), "-q"]) == 0
    code, out, err = _run(["check", md5_only, _digest("md5", 1), good], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "digest argument 2", "no sha256 table", "it has md5")
    assert good not in err


# ---------------------------------------------------------------- match


def _inventory(
    tmp_path: Path, algorithm: str, name: str, crlf: bool = False
) -> tuple[Path, list[str], list[int]]:
    """md5sum-style lines for every file (and a few blank/comment lines);
    returns the path, the lines and the file number of each line (-1: none)."""
    lines: list[str] = []
    files: list[int] = []
    for i in range(N_FILES):
        if i % 37 == 0:
            lines.append("# comment" if i % 2 else "")
            files.append(-1)
        d = _digest(algorithm, i)
        lines.append(f'{d}  dir/fi,le "{i}".bin' if i % 3 else d.upper())
        files.append(i)
    eol = "\r\n" if crlf else "\n"
    path = tmp_path / name
    path.write_bytes((eol.join(lines) + eol).encode())
    return path, lines, files


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_match_detects_algorithm(
    algorithm: str, data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv, lines, files = _inventory(tmp_path, algorithm, f"inv.{algorithm}")
    hits = [
        (n, line, i)
        for n, (line, i) in enumerate(zip(lines, files, strict=True), 1)
        if i >= 0 and expected_record(algorithm, i) is not None
    ]
    assert hits
    code, out, err = _run(["match", data.dataset, inv], capsys)
    assert (code, err) == (1, "")
    assert out.splitlines() == [line for _, line, _ in hits]
    code, out, err = _run(["match", data.dataset, inv, "--count"], capsys)
    assert (code, out, err) == (1, f"{len(hits)}\n", "")
    with hashlookup.open_dataset(data.dataset) as ds:
        want_ids = [ds.lookup(_digest(algorithm, i)).record_id for _, _, i in hits]
    # jsonl adds record and labels; small chunks exercise the chunk loop
    for chunk_size in ("7", "1000", "1048576"):
        code, out, err = _run(
            [
                "match",
                data.dataset,
                inv,
                "--format",
                "jsonl",
                "--chunk-size",
                chunk_size,
            ],
            capsys,
        )
        assert (code, err) == (1, "")
        records = [json.loads(x) for x in out.splitlines()]
        assert [(r["line"], r["text"]) for r in records] == [(n, t) for n, t, _ in hits]
        assert [r["digest"] for r in records] == [
            _digest(algorithm, i) for *_, i in hits
        ]
        assert [r["record"] for r in records] == want_ids
        assert [set(r["labels"]) for r in records] == [
            expected_record(algorithm, i).labels
            for *_, i in hits  # type: ignore[union-attr]
        ]
    code, out, err = _run(["match", data.dataset, inv, "--format", "csv"], capsys)
    assert (code, err) == (1, "")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["line", "digest", "text", "record", "labels"]
    assert [r[:3] for r in rows[1:]] == [
        [str(n), _digest(algorithm, i), t] for n, t, i in hits
    ]
    assert [int(r[3]) for r in rows[1:]] == want_ids
    assert [set(r[4].split(";")) for r in rows[1:]] == [
        expected_record(algorithm, i).labels
        for *_, i in hits  # type: ignore[union-attr]
    ]


def test_match_filters_and_invert(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv, _, files = _inventory(tmp_path, "md5", "inv.md5", crlf=True)

    def want(keep: object) -> list[int]:
        out = []
        for i in files:
            rec = expected_record("md5", i) if i >= 0 else None
            if rec is not None and keep(rec.labels):  # type: ignore[operator]
                out.append(i)
        return out

    cases = [
        (["--only", "source:vendor"], want(lambda ls: "source:vendor" in ls)),
        (
            ["--exclude-label", "source:police"],
            want(lambda ls: "source:police" not in ls),
        ),
        (
            [
                "--only",
                "source:hotline",
                "--exclude-label",
                "source:police",
                "--exclude-label",
                "category:0",
            ],
            want(
                lambda ls: (
                    "source:hotline" in ls
                    and "source:police" not in ls
                    and "category:0" not in ls
                )
            ),
        ),
    ]
    for extra, expected in cases:
        code, out, err = _run(
            ["match", data.dataset, inv, "--format", "jsonl", *extra], capsys
        )
        assert err == "", err
        records = [json.loads(x) for x in out.splitlines()]
        assert [files[r["line"] - 1] for r in records] == expected, extra
        assert code == (1 if expected else 0)
        code, out, _ = _run(["match", data.dataset, inv, "-c", *extra], capsys)
        assert out == f"{len(expected)}\n"
    # everything filtered out: exit 0, nothing printed
    code, out, err = _run(
        [
            "match",
            data.dataset,
            inv,
            "--only",
            "category:0",
            "--exclude-label",
            "category:0",
        ],
        capsys,
    )
    assert (code, out, err) == (0, "", "")
    # --invert reports the misses (filtered hits included), without a record
    hits = set(want(lambda ls: "source:vendor" in ls))
    code, out, err = _run(
        [
            "match",
            data.dataset,
            inv,
            "-v",
            "--only",
            "source:vendor",
            "--format",
            "csv",
        ],
        capsys,
    )
    assert code == 1 and err == ""
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["line", "digest", "text", "record", "labels"]
    assert [files[int(r[0]) - 1] for r in rows[1:]] == [
        i for i in files if i >= 0 and i not in hits
    ]
    assert all(r[3:] == ["", ""] for r in rows[1:])
    code, out, err = _run(["match", data.dataset, inv, "--only", "nope"], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "'nope'")


def test_match_input_errors(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the first digest decides; a later digest of another length is invalid
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(
        "# header\n\n"
        + "".join(d + "\n" for d in (_digest("sha1", 190), _digest("md5", 3)))
        + _digest("sha1", 191)
        + "\n"
    )
    code, out, err = _run(["match", data.dataset, mixed], capsys)
    assert code == 2
    _assert_one_error_line(err, "mixed.txt:4")
    code, out, err = _run(["match", data.dataset, mixed, "--skip-invalid"], capsys)
    assert (code, err) == (
        1,
        f"hashlookup: {mixed}: skipped 1 invalid line (--skip-invalid)\n",
    )
    assert out.splitlines() == [_digest("sha1", 190), _digest("sha1", 191)]
    # a first line that is no digest
    junk = tmp_path / "junk.txt"
    junk.write_text("not a digest\n" + _digest("md5", 1) + "\n")
    code, out, err = _run(["match", data.dataset, junk], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "junk.txt:1", "md5, sha1 or sha256")
    code, out, err = _run(["match", data.dataset, junk, "--skip-invalid"], capsys)
    assert (code, out) == (1, _digest("md5", 1) + "\n")
    assert err == f"hashlookup: {junk}: skipped 1 invalid line (--skip-invalid)\n"
    # an algorithm the file has no table of
    sha1s = tmp_path / "sha1s.txt"
    sha1s.write_text("\n# x\n" + _digest("sha1", 190) + "\n")
    for extra in ([], ["--count"]):
        code, out, err = _run(["match", data.index, sha1s, *extra], capsys)
        assert code == 2 and out == ""
        _assert_one_error_line(err, "sha1s.txt:3")
    md5_only = tmp_path / "md5only.hlx"
    assert main(["build", str(data.police), "-o", str(md5_only), "-q"]) == 0
    for extra in ([], ["--count"], ["--format", "csv"]):
        code, out, err = _run(["match", md5_only, sha1s, *extra], capsys)
        assert code == 2
        _assert_one_error_line(err, "sha1s.txt:3", "no sha1 table", "it has md5")
    # empty input: nothing found
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, out, err = _run(["match", data.dataset, empty, "--format", "csv"], capsys)
    assert (code, out, err) == (0, "line,digest,text,record,labels\n", "")


def test_match_index_file_unchanged(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A single-table index keeps its outputs (no record/labels fields)."""
    inv, _, files = _inventory(tmp_path, "md5", "inv.md5")
    code, out, err = _run(["match", data.index, inv, "--format", "csv"], capsys)
    assert code == 1 and err == ""
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["line", "digest", "text"]
    assert [files[int(r[0]) - 1] for r in rows[1:]] == [
        i for i in files if i >= 0 and police(i)
    ]
    code, out, _ = _run(["match", data.index, inv, "--format", "jsonl"], capsys)
    assert set(json.loads(out.splitlines()[0])) == {"line", "digest", "text"}


def test_match_chunks_dataset_api(data: Data) -> None:
    raw = "".join(f"{_digest('sha256', i)}  f{i}\n" for i in range(N_FILES)).encode()
    with hashlookup.open_dataset(data.dataset) as ds:
        police_ids = set(ds.records_with("source:police"))
        stats = MatchStats()
        chunks = list(
            match_chunks(
                ds,
                io.BytesIO(raw),
                chunk_size=500,
                want_records=True,
                exclude="source:police",
                stats=stats,
            )
        )
        assert stats.algorithm == "sha256"
        assert len(chunks) > 2
        found = np.concatenate([c.found for c in chunks])
        ids = np.concatenate([c.record_ids for c in chunks])  # type: ignore[misc]
        for i in range(N_FILES):
            rec = expected_record("sha256", i)
            keep = rec is not None and "source:police" not in rec.labels
            assert bool(found[i]) is keep, i
            if keep:
                m = ds.lookup(_digest("sha256", i))
                assert m is not None and ids[i] == m.record_id
                assert int(ids[i]) not in police_ids
            else:
                assert ids[i] == -1
        hotline_hits = sum(1 for i in range(N_FILES) if expected_record("sha256", i))
        assert stats.hits == int(found.sum())
        assert stats.filtered == hotline_hits - stats.hits > 0
        assert stats.keys == N_FILES
        # suppress= given at open time filters too
    with hashlookup.open_dataset(data.dataset, suppress=["source:hotline"]) as ds:
        stats = MatchStats()
        for _ in match_chunks(ds, io.BytesIO(raw), stats=stats):
            pass
        assert stats.hits == 0 and stats.filtered == hotline_hits
    with hashlookup.open_index(data.index) as index, pytest.raises(ValueError):
        next(match_chunks(index, io.BytesIO(raw), only="source:police"))


# ---------------------------------------------------------------- update


def test_update(data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base.hlx"
    base.write_bytes(data.dataset.read_bytes())
    # new: files 200..209 (md5); known again: files 0..4 (md5) gain a source
    extra = tmp_path / "extra.txt"
    extra.write_text(
        "".join(_digest("md5", i) + "\n" for i in [*range(200, 210), *range(5)])
    )
    removal = tmp_path / "removal.sha256"
    removal.write_text(_digest("sha256", 130) + "\n")
    removal2 = tmp_path / "removal.md5"
    removal2.write_text(_digest("md5", 131) + "\n")
    out_path = tmp_path / "next.hlx"
    code, out, err = _run(
        [
            "update",
            base,
            "--add",
            f"tips={extra}",
            "--remove",
            removal,
            "--remove",
            removal2,
            "-o",
            out_path,
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    before = _n_records()
    after = before + 10 - 2
    size = out_path.stat().st_size
    assert out.splitlines() == [
        f"updated: {base} -> {out_path}",
        "generation: 2 (was 1)",
        f"records: {after} (was {before})",
        "added: 10",
        "removed: 2",
        "changed: 5",
        f"file_size: {size} ({size / 1024:.1f} KiB)",
        out.splitlines()[-1],
    ]
    assert out.splitlines()[-1].startswith("seconds: ")
    with hashlookup.open_dataset(out_path) as ds:
        assert ds.generation == 2 and len(ds) == after and ds.name == "testset"
        assert ds.labels()["source:tips"] == 15
        assert ds.lookup(_digest("md5", 130)) is None
        assert ds.lookup(_digest("sha256", 131)) is None
        m = ds.lookup(_digest("md5", 2))
        assert m is not None and set(m.labels) == {"source:police", "source:tips"}
    with hashlookup.open_dataset(base) as ds:  # -o: the source is untouched
        assert ds.generation == 1 and len(ds) == before
    # in place, as JSON; an update without changes still makes a generation
    code, out, err = _run(["update", out_path, "--json"], capsys)
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["path"] == str(out_path)
    assert (summary["generation"], summary["previous_generation"]) == (3, 2)
    assert (summary["records_before"], summary["records_after"]) == (after, after)
    assert (summary["added"], summary["removed"], summary["changed"]) == (0, 0, 0)
    # errors
    code, out, err = _run(["update", tmp_path / "missing.hlx", "--add", extra], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "missing.hlx")
    code, out, err = _run(["update", out_path, "--add", tmp_path / "nope.txt"], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "nope.txt")
    with hashlookup.open_dataset(out_path) as ds:
        assert ds.generation == 3


# ---------------------------------------------------------------- export-bloom


def test_export_bloom(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bloom = pytest.importorskip("hashlookup.builders.bloom")
    out_path = tmp_path / "sha1.bloom"
    code, out, err = _run(
        [
            "export-bloom",
            data.dataset,
            "--algorithm",
            "sha1",
            "--fpr",
            "1e-3",
            "-o",
            out_path,
        ],
        capsys,
    )
    assert code == 0 and out == "", err
    (line,) = err.splitlines()
    assert line.startswith(
        f"hashlookup: wrote {out_path} (DCSO bloom v1, sha1): 50 keys"
    )
    assert "fpr 0.001" in line
    f = bloom.read_bloom(out_path)
    # the default capacity is the key count, raised a little in rare cases
    assert 50 <= f.n <= 60 and f.p == pytest.approx(1e-3)
    assert f"capacity {f.n}, {f.m} bits, {f.k} hashes" in line
    assert f.contains_many(_key_rows(_all_digests("sha1")[150:])).all()
    meta = json.loads(f.data)
    assert meta["dataset"] == "testset" and meta["algorithm"] == "sha1"
    assert meta["keys"] == 50 and meta["generation"] == 1
    # several tables: --algorithm is needed; a missing table is an error
    for argv, fragment in (
        (["export-bloom", data.dataset, "-o", out_path], "--algorithm"),
        (
            ["export-bloom", data.index, "--algorithm", "sha256", "-o", out_path],
            "no sha256 table",
        ),
        (
            [
                "export-bloom",
                data.dataset,
                "--algorithm",
                "md5",
                "--fpr",
                "0",
                "-o",
                out_path,
            ],
            "fpr",
        ),
    ):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        _assert_one_error_line(err, fragment)
    # an index file: its one table; --no-metadata, --quiet
    code, out, err = _run(
        ["export-bloom", data.index, "-o", out_path, "--no-metadata", "-q"], capsys
    )
    assert (code, out, err) == (0, "", "")
    f = bloom.read_bloom(out_path)
    assert f.data == b"" and 120 <= f.n <= 130
    assert f.contains_many(_key_rows(_all_digests("md5")[:120])).all()


# ---------------------------------------------------------------- entry point


def test_entry_point_subprocess(data: Data) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hashlookup",
            "match",
            str(data.dataset),
            "-",
            "--format",
            "jsonl",
            "--only",
            "source:vendor",
        ],
        input="\n".join(_all_digests("sha1")).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == b""
    records = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["line"] for r in records] == list(range(151, 201))
    assert all("source:vendor" in r["labels"] for r in records)


def test_raw_index_and_damaged_single_table_dataset(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a raw-key index (API only) is no dataset, but the commands still open it
    raw = tmp_path / "raw.hlx"
    hashlookup.build_index(
        [b"\x01\x02\x03", b"\x04\x05\x06"], raw, algorithm="raw", width=3
    )
    code, out, err = _run(["check", raw, "010203", "0a0b0c"], capsys)
    assert (code, out, err) == (1, "010203\tFOUND\n0a0b0c\tnot found\n", "")
    code, out, _ = _run(["verify", raw], capsys)
    assert (code, out) == (0, f"OK: {raw}: 2 raw keys, all checks passed\n")
    # a damaged md5-only dataset is not mistaken for an index
    one = tmp_path / "one.hlx"
    assert main(["build", str(data.police), "-o", str(one), "-q"]) == 0
    with hashlookup.open_dataset(one) as ds:
        sections = ds.info()["tables"]["md5"]["sections"]
    s = next(x for x in sections if x["kind"] == "label index")
    broken = bytearray(one.read_bytes())
    broken[s["offset"]] = ord("X")
    one.write_bytes(bytes(broken))
    for argv in (["check", one, _digest("md5", 1)], ["verify", one], ["info", one]):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        _assert_one_error_line(err, "label index")


def test_corrupt_rowmap(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rowmap entry past the records is reported, never followed."""
    with hashlookup.open_dataset(data.dataset) as ds:
        sections = ds.info()["tables"]["sha256"]["sections"]
    rowmap = next(x for x in sections if x["kind"] == "rowmap" and x["group"] == 3)
    broken = bytearray(data.dataset.read_bytes())
    start, end = rowmap["offset"], rowmap["offset"] + rowmap["length"]
    broken[start:end] = b"\xff" * (end - start)
    path = tmp_path / "rowmap.hlx"
    path.write_bytes(bytes(broken))
    inv = tmp_path / "inv.sha256"
    inv.write_text(_digest("sha256", 120) + "\n")
    for argv in (
        ["match", path, inv, "--format", "jsonl"],
        ["match", path, inv, "--exclude-label", "source:police", "--count"],
        ["check", path, _digest("sha256", 120)],
        ["verify", path],
    ):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == "", argv
        _assert_one_error_line(err, str(path))
    # without records wanted, match only needs the key table
    code, out, err = _run(["match", path, inv, "--count"], capsys)
    assert (code, out, err) == (1, "1\n", "")
