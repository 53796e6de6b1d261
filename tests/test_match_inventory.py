"""`hashlookup match` over inventories: text lists in parallel pieces, several
files, CSV/TSV (pyarrow and csv-module readers), Parquet, --annotate.

Every expectation comes from a Python set oracle over the same synthetic,
seed-fixed digests; the CSV oracle reads the files with the csv module.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hashlookup
from hashlookup.cli import main
from hashlookup.match.inventory import Inventory, match_inventory
from hashlookup.match.keys import KeyMatcher

SEED = 0x4D41  # "MA"
N_KNOWN = 3000


class Data:
    def __init__(self, root: Path) -> None:
        rng = np.random.default_rng(SEED)
        keys = rng.integers(0, 256, size=(2 * N_KNOWN, 16), dtype=np.uint8)
        hexes = [bytes(k).hex() for k in keys]
        assert len(set(hexes)) == len(hexes)
        self.known = hexes[:N_KNOWN]
        self.others = hexes[N_KNOWN:]
        self.known_set = set(self.known)
        sha = rng.integers(0, 256, size=(500, 32), dtype=np.uint8)
        self.sha256 = [bytes(k).hex() for k in sha]
        self.root = root
        (root / "known.txt").write_text("".join(h + "\n" for h in self.known))
        (root / "known.sha256").write_text("".join(h + "\n" for h in self.sha256))
        self.dataset = root / "known.hlx"
        hashlookup.build_dataset(
            {"md5list": str(root / "known.txt"), "shalist": str(root / "known.sha256")},
            str(self.dataset),
        )
        self.rng = np.random.default_rng(SEED + 1)

    def digests(self, n: int, hit: float = 0.1) -> list[str]:
        out = []
        for _ in range(n):
            pool = self.known if self.rng.random() < hit else self.others
            out.append(pool[int(self.rng.integers(len(pool)))])
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    return Data(tmp_path_factory.mktemp("inventory"))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hashlookup: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


# ---------------------------------------------------------------- text


def _text_lines(data: Data, n: int) -> list[str]:
    lines = []
    for i, h in enumerate(data.digests(n)):
        shape = i % 5
        if shape == 0:
            lines.append(h.upper())
        elif shape == 1:
            lines.append(f"{h}  some/file{i}")
        elif shape == 2:
            lines.append(f"  {h}\r")
        elif shape == 3 and i % 3 == 0:
            lines.append("# comment")
        else:
            lines.append(h)
    return lines


def _oracle_text(known: set[str], lines: list[str]) -> list[tuple[int, str, str]]:
    """(line number, lowercase digest, line without CR) of every hit."""
    out = []
    for number, line in enumerate(lines, 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        digest = token.split()[0].lower()
        if digest in known:
            out.append((number, digest, line.rstrip("\r")))
    return out


@pytest.mark.parametrize("jobs", [1, 3])
def test_text_pieces_in_parallel_match_oracle(
    data: Data, tmp_path: Path, jobs: int, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    expected = []
    for k in range(3):
        lines = _text_lines(data, 4000 + 1000 * k)
        path = tmp_path / f"inv{k}.txt"
        path.write_text("\n".join(lines) + ("\n" if k != 1 else ""), newline="")
        files.append(path)
        expected += [(str(path), *hit) for hit in _oracle_text(data.known_set, lines)]
    # small chunks: every file is cut into many pieces matched concurrently
    code, out, err = _run(
        [
            "match",
            data.dataset,
            *files,
            "--format",
            "jsonl",
            "--jobs",
            jobs,
            "--chunk-size",
            3000,
        ],
        capsys,
    )
    assert code == 1, err
    got = [json.loads(line) for line in out.splitlines()]
    assert [(g["file"], g["line"], g["digest"], g["text"]) for g in got] == expected
    assert all(g["labels"] == ["source:md5list"] for g in got)
    code, out, _ = _run(
        ["match", data.dataset, *files, "--jobs", jobs, "--chunk-size", 3000], capsys
    )
    assert out.splitlines() == [f"{f}:{text}" for f, _, _, text in expected]
    code, out, _ = _run(["match", data.dataset, *files, "--count", "-j", jobs], capsys)
    assert out.strip() == str(len(expected))


def test_text_error_line_numbers_across_pieces(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = data.digests(3000)
    lines[2500] = "not-a-digest"
    lines[2700] = "x" * 40
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = _run(
        ["match", data.dataset, path, "-j", 3, "--chunk-size", 2000], capsys
    )
    assert code == 2
    _error_line(err, f"{path}:2501:", "'not-a-digest'")
    code, out, err = _run(
        [
            "match",
            data.dataset,
            path,
            "-j",
            3,
            "--chunk-size",
            2000,
            "--skip-invalid",
            "--format",
            "jsonl",
        ],
        capsys,
    )
    assert code == 1, err
    numbers = [json.loads(line)["line"] for line in out.splitlines()]
    assert numbers == [i + 1 for i, h in enumerate(lines) if h in data.known_set]


def test_text_over_long_line(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hashlookup.importers.digests import MAX_LINE

    lines = data.digests(50, hit=0.5)
    path = tmp_path / "long.txt"
    path.write_text("\n".join(lines[:20] + ["a" * (MAX_LINE + 10)] + lines[20:]) + "\n")
    code, _, err = _run(
        ["match", data.dataset, path, "--chunk-size", 4096, "-j", 2], capsys
    )
    assert code == 2
    _error_line(err, f"{path}:21:", "longer than")
    code, out, err = _run(
        [
            "match",
            data.dataset,
            path,
            "--chunk-size",
            4096,
            "--skip-invalid",
            "--format",
            "jsonl",
        ],
        capsys,
    )
    numbers = [json.loads(line)["line"] for line in out.splitlines()]
    expect = [i + 1 + (i >= 20) for i, h in enumerate(lines) if h in data.known_set]
    assert numbers == expect


def test_text_annotate(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["# header", *data.digests(300), "", "ABC" * 0]
    path = tmp_path / "a.txt"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _run(
        ["match", data.dataset, path, "--annotate", "--chunk-size", 1000, "-j", 2],
        capsys,
    )
    assert code == 1, err
    expect = []
    for line in lines:
        if line and not line.startswith("#"):
            line += "\ttrue" if line in data.known_set else "\tfalse"
        expect.append(line)
    assert out.split("\n")[:-1] == expect


def test_algorithm_per_file(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md5 = tmp_path / "m.txt"
    md5.write_text(data.known[0] + "\n" + data.others[0] + "\n")
    sha = tmp_path / "s.txt"
    sha.write_text(data.sha256[7] + "\n")
    code, out, _ = _run(["match", data.dataset, md5, sha, "--format", "csv"], capsys)
    assert code == 1
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["file", "line", "digest", "text", "record", "labels"]
    assert [(r[0], r[2], r[5]) for r in rows[1:]] == [
        (str(md5), data.known[0], "source:md5list"),
        (str(sha), data.sha256[7], "source:shalist"),
    ]


# ---------------------------------------------------------------- CSV / TSV


def _tricky_rows(data: Data, n: int) -> list[list[str]]:
    rows = []
    for i, h in enumerate(data.digests(n, hit=0.2)):
        name = [
            f"plain{i}",
            f"with, comma {i}",
            f'say "hi" {i}',
            f"two\nlines {i}",
            f"tab\there {i}",
            "",
        ][i % 6]
        cell = [h, h.upper(), f"  {h} ", h][i % 4]
        if i % 37 == 5:
            cell = ""
        rows.append([name, cell, str(i)])
    return rows


def _write_csv(
    path: Path,
    rows: list[list[str]],
    delimiter: str = ",",
    header: tuple[str, ...] = ("name", "md5", "size"),
    crlf: bool = False,
) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
        w.writerow(header)
        w.writerows(rows)


def _oracle_rows(
    data: Data, rows: list[list[str]], col: int = 1
) -> list[tuple[int, str]]:
    out = []
    for i, row in enumerate(rows, 1):
        cell = row[col].strip().lower()
        if cell and cell in data.known_set:
            out.append((i, cell))
    return out


@pytest.mark.parametrize("engine", ["pyarrow", "python"])
@pytest.mark.parametrize(
    "suffix,delimiter,crlf", [(".csv", ",", False), (".tsv", "\t", True)]
)
@pytest.mark.parametrize("plain", [False, True])
def test_csv_engines_match_oracle(
    data: Data,
    tmp_path: Path,
    engine: str,
    suffix: str,
    delimiter: str,
    crlf: bool,
    plain: bool,
) -> None:
    """Quoting edge cases (csv module path without pyarrow), and files without
    a single quote and with empty lines (the plain split path)."""
    rows = _tricky_rows(data, 3000)
    path = tmp_path / f"inv{suffix}"
    if plain:
        rows = [[f"name{i}", cell, size] for i, (_, cell, size) in enumerate(rows)]
    _write_csv(path, rows, delimiter, crlf=crlf)
    if plain:  # empty lines are not rows (pyarrow skips them too)
        text = path.read_bytes().replace(
            b"\nname7" + delimiter.encode(), b"\n\nname7" + delimiter.encode()
        )
        path.write_bytes(text + b"\n")
        assert b'"' not in text
    inv = Inventory(str(path), column="md5")
    ds = hashlookup.open_dataset(str(data.dataset))
    try:
        pieces = list(
            match_inventory(lambda _i: KeyMatcher(ds), [inv], jobs=2, engine=engine)
        )
    finally:
        ds.close()
    got = []
    for p in pieces:
        sel = p.select()
        got += list(zip(p.number_list(sel), p.hex_digests(sel), strict=True))
    assert got == _oracle_rows(data, rows)
    empty = sum(1 for r in rows if not r[1].strip())
    assert sum(p.empty for p in pieces) == empty
    assert sum(p.units for p in pieces) == len(rows)


def test_csv_cli_outputs(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _tricky_rows(data, 600)
    path = tmp_path / "inv.csv"
    _write_csv(path, rows)
    hits = _oracle_rows(data, rows)
    code, out, err = _run(
        ["match", data.dataset, path, "--column", "md5", "--format", "jsonl"], capsys
    )
    assert code == 1, err
    got = [json.loads(line) for line in out.splitlines()]
    assert [(g["row"], g["digest"]) for g in got] == hits
    # text: the hit rows themselves, as CSV
    code, out, _ = _run(["match", data.dataset, path, "--column", "md5"], capsys)
    assert list(csv.reader(io.StringIO(out))) == [rows[i - 1] for i, _ in hits]
    # several files: every row (quoted newlines included) gets a FILE: prefix
    second = tmp_path / "inv2.csv"
    _write_csv(second, rows[:50])
    code, out, _ = _run(
        ["match", data.dataset, path, second, "--column", "md5"], capsys
    )
    expect = io.StringIO()
    writer = csv.writer(expect, lineterminator="\n")
    for name, count in ((path, len(rows)), (second, 50)):
        for i, _ in hits:
            if i <= count:
                expect.write(f"{name}:")
                writer.writerow(rows[i - 1])
    assert out == expect.getvalue()
    # annotate: every row plus a match column
    code, out, _ = _run(
        ["match", data.dataset, path, "--column", "md5", "--annotate"], capsys
    )
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == ["name", "md5", "size", "match"]
    hit_rows = {i for i, _ in hits}
    for i, (row, got_row) in enumerate(zip(rows, table[1:], strict=True), 1):
        want = "" if not row[1].strip() else ("true" if i in hit_rows else "false")
        assert got_row == [*row, want]
    # an explicit delimiter and input format on a file without extension
    other = tmp_path / "inv.data"
    _write_csv(other, rows, ";")
    code, out, _ = _run(
        [
            "match",
            data.dataset,
            other,
            "--column",
            "md5",
            "--delimiter",
            ";",
            "--count",
        ],
        capsys,
    )
    assert out.strip() == str(len(hits))


def test_csv_column_errors(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inv.csv"
    _write_csv(path, [["a", data.known[0], "1"]])
    code, _, err = _run(["match", data.dataset, path, "--column", "sha"], capsys)
    assert code == 2
    _error_line(err, str(path), "no column 'sha'", "'md5'")
    code, _, err = _run(["match", data.dataset, path], capsys)
    assert code == 2
    _error_line(err, str(path), "--column")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = _run(["match", data.dataset, empty, "--column", "md5"], capsys)
    assert code == 2
    _error_line(err, str(empty), "no header")


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_csv_bad_digest(
    data: Data,
    tmp_path: Path,
    engine: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if engine == "python":
        import hashlookup.match.tables as tables

        monkeypatch.setattr(tables, "_have_pyarrow", lambda: False)
    rows = [
        ["a", data.known[1], "1"],
        ["b\nc", data.others[2], "2"],
        ["d", data.known[3][:-1] + "g", "3"],
        ["e", data.known[4], "4"],
    ]
    path = tmp_path / "bad.csv"
    _write_csv(path, rows)
    code, _, err = _run(["match", data.dataset, path, "--column", "md5"], capsys)
    assert code == 2
    # row 3 starts on line 5: the quoted newline of row 2 takes a line
    _error_line(err, f"{path}:5: row 3: column 'md5'", "non-hex")
    code, out, err = _run(
        [
            "match",
            data.dataset,
            path,
            "--column",
            "md5",
            "--skip-invalid",
            "--format",
            "jsonl",
        ],
        capsys,
    )
    assert code == 1, err
    assert [json.loads(line)["row"] for line in out.splitlines()] == [1, 4]
    inv = Inventory(str(path), column="md5")
    ds = hashlookup.open_dataset(str(data.dataset))
    try:
        pieces = list(
            match_inventory(lambda _i: KeyMatcher(ds), [inv], skip_invalid=True)
        )
    finally:
        ds.close()
    assert sum(p.invalid for p in pieces) == 1


# ---------------------------------------------------------------- Parquet


def test_parquet_nulls_and_binary(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digests = data.digests(2000, hit=0.2)
    cells: list[str | None] = [
        None if i % 11 == 0 else h for i, h in enumerate(digests)
    ]
    path = tmp_path / "inv.parquet"
    pq.write_table(
        pa.table(
            {
                "id": list(range(len(cells))),
                "md5": cells,
                "raw": [None if c is None else bytes.fromhex(c) for c in cells],
            }
        ),
        path,
        row_group_size=700,
    )
    hits = [
        (i + 1, c) for i, c in enumerate(cells) if c is not None and c in data.known_set
    ]
    for column in ("md5", "raw"):
        code, out, err = _run(
            ["match", data.dataset, path, "--column", column, "--format", "jsonl"],
            capsys,
        )
        assert code == 1, err
        got = [json.loads(line) for line in out.splitlines()]
        assert [(g["row"], g["digest"]) for g in got] == hits
    code, out, _ = _run(["match", data.dataset, path, "--column", "md5"], capsys)
    assert [r[0] for r in csv.reader(io.StringIO(out))] == [str(i - 1) for i, _ in hits]
    code, _, err = _run(["match", data.dataset, path, "--column", "sha1"], capsys)
    assert code == 2
    _error_line(err, str(path), "no column 'sha1'", "'md5'")
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"md5": [data.known[0], "zz"]}), bad)
    code, _, err = _run(["match", data.dataset, bad, "--column", "md5"], capsys)
    assert code == 2
    _error_line(err, f"{bad}: row 2: column 'md5'")


def test_record_labels_vectorised(tmp_path: Path) -> None:
    """record_labels agrees with Dataset.record(id).labels, merged records
    (several labels) and misses (-1) included."""
    from hashlookup.match.keys import record_labels

    rng = np.random.default_rng(SEED + 7)
    hexes = [bytes(k).hex() for k in rng.integers(0, 256, (900, 16), dtype=np.uint8)]
    for name, part in (("x", hexes[:500]), ("y", hexes[300:800]), ("z", hexes[700:])):
        (tmp_path / f"{name}.txt").write_text("".join(h + "\n" for h in part))
    path = tmp_path / "multi.hlx"
    hashlookup.build_dataset({n: str(tmp_path / f"{n}.txt") for n in "xyz"}, str(path))
    with hashlookup.open_dataset(str(path)) as ds:
        rids = np.concatenate([rng.integers(0, len(ds), 400), [-1, 0, -1]])
        want = [() if r < 0 else tuple(ds.record(int(r)).labels) for r in rids]
        assert record_labels(ds, rids) == want
        assert {len(w) for w in want} == {0, 1, 2}
        assert record_labels(ds, np.empty(0, np.int64)) == []


def test_parquet_annotate_invert_and_missing_table(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digests = data.digests(1500, hit=0.3)
    cells = [None if i % 9 == 4 else h for i, h in enumerate(digests)]
    path = tmp_path / "inv.parquet"
    pq.write_table(
        pa.table({"n": list(range(len(cells))), "md5": cells}), path, row_group_size=400
    )
    code, out, err = _run(
        ["match", data.dataset, path, "--column", "md5", "--annotate", "-j", 3], capsys
    )
    assert code == 1, err
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == ["n", "md5", "match"]
    want = [
        [
            str(i),
            c or "",
            "" if c is None else ("true" if c in data.known_set else "false"),
        ]
        for i, c in enumerate(cells)
    ]
    assert table[1:] == want
    misses = sum(1 for c in cells if c is not None and c not in data.known_set)
    code, out, _ = _run(
        ["match", data.dataset, path, "--column", "md5", "--invert", "--count"], capsys
    )
    assert code == 1 and out.strip() == str(misses)
    sha1 = tmp_path / "sha1.csv"
    _write_csv(
        sha1, [["a", "", "1"], ["b", "ab" * 20, "2"]], header=("name", "sha1", "size")
    )
    code, _, err = _run(["match", data.dataset, sha1, "--column", "sha1"], capsys)
    assert code == 2
    _error_line(err, f"{sha1}: row 2", "sha1 digests", "no sha1 table")


def test_plain_csv_path_errors(
    data: Data,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without pyarrow, a quote-free CSV takes the numpy/C path; its errors
    name the same line and row as the other readers."""
    import hashlookup.match.tables as tables

    monkeypatch.setattr(tables, "_have_pyarrow", lambda: False)
    path = tmp_path / "plain.csv"
    good = [data.known[5], data.others[6], data.known[7]]
    path.write_text(
        "name;md5\n"
        + "a;"
        + good[0]
        + "\n\n"
        + "b;"
        + good[1]
        + "\n"
        + "c;"
        + good[2][:-2]
        + "xx\n"
        + "d;"
        + good[2]
        + "\n"
    )
    code, _, err = _run(
        ["match", data.dataset, path, "--column", "md5", "--delimiter", ";"], capsys
    )
    assert code == 2
    _error_line(err, f"{path}:5: row 3: column 'md5'", "non-hex")
    code, out, _ = _run(
        [
            "match",
            data.dataset,
            path,
            "--column",
            "md5",
            "--delimiter",
            ";",
            "--skip-invalid",
            "--format",
            "jsonl",
        ],
        capsys,
    )
    assert [json.loads(x)["row"] for x in out.splitlines()] == [1, 4]
    path.write_text("name;md5\na;" + good[0] + "\nb;c;" + good[1] + "\n")
    code, _, err = _run(
        ["match", data.dataset, path, "--column", "md5", "--delimiter", ";"], capsys
    )
    assert code == 2
    _error_line(err, f"{path}:3: expected 2 fields, got 3")


def test_decode_hex_at() -> None:
    from hashlookup import _core

    text = b"xx" + b"0f" * 16 + b"," + b"A0" * 16
    out = np.empty(32, np.uint8)
    starts = np.array([2, 35], dtype=np.int64)
    assert _core.decode_hex_at(text, starts, 16, out) == -1
    assert out.tobytes() == b"\x0f" * 16 + b"\xa0" * 16
    assert _core.decode_hex_at(text, np.array([35, 0], dtype=np.int64), 16, out) == 1
    with pytest.raises(ValueError, match="past the text"):
        _core.decode_hex_at(text, np.array([40, 2], dtype=np.int64), 16, out)
    with pytest.raises(ValueError, match="past the text"):
        _core.decode_hex_at(text, np.array([-1, 2], dtype=np.int64), 16, out)


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_csv_byte_order_mark(
    data: Data,
    tmp_path: Path,
    engine: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A UTF-8 BOM (spreadsheets' "CSV UTF-8") is not part of the first name."""
    if engine == "python":
        import hashlookup.match.tables as tables

        monkeypatch.setattr(tables, "_have_pyarrow", lambda: False)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfmd5,n\r\n" + data.known[3].encode() + b",1\r\n")
    code, out, err = _run(
        ["match", data.dataset, bom, "--column", "md5", "--format", "jsonl"], capsys
    )
    assert code == 1, err
    assert json.loads(out)["row"] == 1
    code, out, err = _run(
        ["match", data.dataset, bom, "--column", "md5", "--annotate"], capsys
    )
    assert out.splitlines()[0] == "md5,n,match"
