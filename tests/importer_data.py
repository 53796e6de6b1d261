"""Synthetic input files for the importer tests (and a throughput benchmark).

Everything is generated from ``numpy.random.default_rng(seed)`` with fixed
seeds: random digests, sizes and categories, never real hash lists.  Each
writer returns (or the generator holds) the ground truth as a list of
``Record`` tuples in file order, which the tests compare with what the
importers read.

Benchmark (writes ~1M-record files into a temporary directory and times
``iter_records`` on each format)::

    cd tests && ../.venv/bin/python importer_data.py [--n 1000000] [--dir DIR]
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}
ALGOS = tuple(WIDTH)


class Record(NamedTuple):
    """One expected record: raw digests (None if absent), size (-1 unknown),
    labels."""

    md5: bytes | None
    sha1: bytes | None
    sha256: bytes | None
    size: int
    labels: frozenset[str]


def records_of(batches: Iterable) -> list[Record]:
    """The records of RecordBatch objects, in order."""
    out: list[Record] = []
    for b in batches:
        n = len(b)
        labels: list[set[str]] = [set() for _ in range(n)]
        for label, rows in b.labels.items():
            assert rows.dtype == np.int64
            assert np.all(np.diff(rows) > 0), "label rows must be ascending"
            for r in rows.tolist():
                labels[r].add(label)
        for i in range(n):
            out.append(
                Record(
                    b.md5[i].tobytes() if b.has_md5[i] else None,
                    b.sha1[i].tobytes() if b.has_sha1[i] else None,
                    b.sha256[i].tobytes() if b.has_sha256[i] else None,
                    int(b.size[i]),
                    frozenset(labels[i]),
                )
            )
    return out


def check_batch(b) -> None:
    """Shapes, dtypes and invariants of one RecordBatch."""
    n = len(b)
    assert n > 0
    for algo, w in WIDTH.items():
        arr = getattr(b, algo)
        has = getattr(b, "has_" + algo)
        assert arr.shape == (n, w) and arr.dtype == np.uint8, algo
        assert has.shape == (n,) and has.dtype == np.bool_, algo
        assert not arr[~has].any(), f"{algo}: absent digests must be zeros"
    assert b.size.shape == (n,) and b.size.dtype == np.int64
    assert (b.size >= -1).all()
    assert (b.has_md5 | b.has_sha1 | b.has_sha256).all()
    for rows in b.labels.values():
        assert len(rows) and rows.min() >= 0 and rows.max() < n


# ---------------------------------------------------------------------------
# tables of records


@dataclass
class Table:
    """Columns of n synthetic records."""

    digests: dict[str, np.ndarray]  # algo -> (n, width) uint8
    present: dict[str, np.ndarray]  # algo -> (n,) bool
    size: np.ndarray  # int64, -1 unknown
    category: np.ndarray  # int64, -1 none
    names: list[str] = field(default_factory=list)  # file names

    def __len__(self) -> int:
        return len(self.size)

    def records(
        self,
        algos: Sequence[str] = ALGOS,
        sizes: bool = True,
        category_prefix: str | None = "category",
    ) -> list[Record]:
        out = []
        cols = {a: (self.digests[a].tobytes(), WIDTH[a]) for a in algos}
        for i in range(len(self)):
            d = {
                a: (
                    cols[a][0][i * cols[a][1] : (i + 1) * cols[a][1]]
                    if self.present[a][i]
                    else None
                )
                for a in algos
            }
            labels = frozenset(
                [f"{category_prefix}:{self.category[i]}"]
                if category_prefix and self.category[i] >= 0
                else []
            )
            out.append(
                Record(
                    d.get("md5"),
                    d.get("sha1"),
                    d.get("sha256"),
                    int(self.size[i]) if sizes else -1,
                    labels,
                )
            )
        return out

    def hex(self, algo: str, upper: bool = False) -> list[str]:
        """Hex text of a column ("" where absent)."""
        w = WIDTH[algo]
        h = self.digests[algo].tobytes().hex()
        if upper:
            h = h.upper()
        arr = np.frombuffer(h.encode(), dtype=f"S{2 * w}").astype(str).tolist()
        return [x if p else "" for x, p in zip(arr, self.present[algo].tolist())]


def make_table(
    n: int,
    seed: int,
    algos: Sequence[str] = ALGOS,
    missing: float = 0.0,
    categories: int = 0,
    unknown_size: float = 0.0,
) -> Table:
    """n records with random digests of `algos` (each absent with probability
    `missing`, but every record has one), sizes (unknown with probability
    unknown_size), categories 0..categories-1 (none if 0; else -1 with
    probability 0.2) and file names with commas and spaces."""
    rng = np.random.default_rng(seed)
    digests = {a: rng.integers(0, 256, (n, WIDTH[a]), dtype=np.uint8) for a in ALGOS}
    present = {
        a: (rng.random(n) >= missing) if a in algos else np.zeros(n, bool)
        for a in ALGOS
    }
    anyp = np.zeros(n, bool)
    for a in algos:
        anyp |= present[a]
    present[algos[0]] |= ~anyp
    for a in ALGOS:
        digests[a][~present[a]] = 0
    size = rng.integers(0, 1 << 40, n, dtype=np.int64)
    size[rng.random(n) < unknown_size] = -1
    if categories:
        category = rng.integers(0, categories, n, dtype=np.int64)
        category[rng.random(n) < 0.2] = -1
    else:
        category = np.full(n, -1, np.int64)
    names = [f"dir {i % 7}/file,{i}, part {i % 3}.jpg" for i in range(n)]
    return Table(digests, present, size, category, names)


# ---------------------------------------------------------------------------
# writers


def write_text(
    path: Path,
    table: Table,
    algo: str,
    *,
    style: str = "plain",
    newline: str = "\n",
    upper: bool = False,
    comments: bool = False,
) -> list[Record]:
    """A digest list ("plain"), md5sum text mode ("sum") or binary mode
    ("binsum", "<hex> *name") of one algorithm's column."""
    hexes = table.hex(algo, upper)
    lines = []
    if comments:
        lines += ["# synthetic list", ""]
    hexes = [h for h in hexes if h]  # absent digests are left out
    for h, name in zip(hexes, table.names):
        if style == "plain":
            lines.append(h)
        elif style == "sum":
            lines.append(f"{h}  {name}")
        else:
            lines.append(f"{h} *{name}")
        if comments and len(lines) % 5 == 0:
            lines.append("# comment " + name)
    path.write_bytes((newline.join(lines) + newline).encode())
    return [
        Record(
            **{**dict.fromkeys(ALGOS), algo: bytes.fromhex(h)},
            size=-1,
            labels=frozenset(),
        )
        for h in hexes
    ]


def write_hashdeep(
    path: Path,
    table: Table,
    columns: Sequence[str] = ("size", "md5", "sha256", "filename"),
    *,
    newline: str = "\n",
    upper: bool = False,
) -> list[Record]:
    """hashdeep output with the given columns (tiger and whirlpool get random
    hex).  Records of absent digests are written with empty cells."""
    rng = np.random.default_rng(len(table))
    cols: dict[str, list[str]] = {}
    for c in columns:
        if c in WIDTH:
            cols[c] = table.hex(c, upper)
        elif c == "size":
            cols[c] = [str(s) for s in table.size.tolist()]
        elif c == "filename":
            cols[c] = table.names
        else:  # tiger (24 bytes), whirlpool (64 bytes)
            w = 24 if c == "tiger" else 64
            raw = rng.integers(0, 256, (len(table), w), dtype=np.uint8)
            cols[c] = [bytes(r).hex() for r in raw]
    lines = [
        "%%%% HASHDEEP-1.0",
        "%%%% " + ",".join(columns),
        "## Invoked from: /synthetic",
        "## $ hashdeep -r .",
        "##",
    ]
    lines += [",".join(row) for row in zip(*(cols[c] for c in columns))]
    path.write_bytes((newline.join(lines) + newline).encode())
    algos = [a for a in ALGOS if a in columns]
    return table.records(algos, sizes="size" in columns, category_prefix=None)


def write_csv(
    path: Path,
    table: Table,
    *,
    names: dict[str, str] | None = None,
    delimiter: str = ",",
    size_name: str | None = "Size",
    category_name: str | None = None,
    newline: str = "\n",
    upper: bool = True,
    encoding: str = "utf-8",
    bom: bool = False,
) -> list[Record]:
    """CSV with a header; `names` maps algorithm -> column name (default
    MD5, SHA1, SHA256 for the algorithms present); a quoted file name column
    (with commas, quotes) comes first."""
    import csv
    import io

    if names is None:
        names = {a: a.upper() for a in ALGOS if table.present[a].any()}
    header = ["FileName"] + list(names.values())
    cols = [table.names] + [table.hex(a, upper) for a in names]
    if size_name:
        header.append(size_name)
        cols.append([str(s) if s >= 0 else "" for s in table.size.tolist()])
    if category_name:
        header.append(category_name)
        cols.append([str(c) if c >= 0 else "" for c in table.category.tolist()])
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    w.writerow(header)
    for row in zip(*cols):
        w.writerow(row)
    data = buf.getvalue().encode(encoding)
    if bom:
        data = (
            "\ufeff".encode(encoding)
            if encoding.startswith("utf-16")
            else b"\xef\xbb\xbf"
        ) + data
    path.write_bytes(data)
    return table.records(
        list(names),
        sizes=bool(size_name),
        category_prefix="category" if category_name else None,
    )


def write_nsrl(
    path: Path, table: Table, *, extra_tables: bool = True, not_null: bool = True
) -> list[Record]:
    """An NSRL RDSv3-like SQLite file: table FILE with upper-case hex."""
    con = sqlite3.connect(path)
    nn = " NOT NULL" if not_null else ""
    con.execute(
        f"CREATE TABLE FILE (sha256 TEXT{nn}, sha1 TEXT{nn}, md5 TEXT{nn}, "
        f"crc32 TEXT, file_name TEXT, file_size INTEGER, package_id INTEGER)"
    )
    if extra_tables:
        con.execute("CREATE TABLE PKG (package_id INTEGER, name TEXT)")
    rows = zip(
        table.hex("sha256", True),
        table.hex("sha1", True),
        table.hex("md5", True),
        ["00000000"] * len(table),
        table.names,
        table.size.tolist(),
        [1] * len(table),
    )
    con.executemany("INSERT INTO FILE VALUES (?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    return table.records(ALGOS, category_prefix=None)


# ---------------------------------------------------------------------------
# VICS


VICS_CONTEXT = {
    "1.3": (
        "odata.metadata",
        "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media",
    ),
    "2.0": (
        "@odata.context",
        "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/$metadata#Media",
    ),
}


def _vics_bool(value: bool, style: str, rng: np.random.Generator) -> object:
    if style == "json":
        return value
    if style == "str":
        return "true" if value else "false"
    # mixed: JSON booleans and strings in several spellings
    return [
        value,
        "true" if value else "false",
        "True" if value else "False",
        "TRUE" if value else "FALSE",
    ][int(rng.integers(4))]


def make_vics(
    n_media: int,
    seed: int,
    *,
    version: str = "1.3",
    bools: str = "json",
    files: bool = True,
    sha256: bool = False,
) -> tuple[list[dict], list[Record]]:
    """Media objects and the records expected from them.

    Per Media: MD5 and SHA1 (sometimes one absent, null or empty; 5% have
    neither), SHA256 when sha256=True (2.0), a Category (int, string, or
    absent), MediaSize (int or string), IsDistributed / IsPrecategorized
    in the `bools` style ("json", "str" or "mixed"), and 0-3 MediaFiles:
    repeats of the Media's digests (dropped), other files (records with
    the Media's labels) and files without digests (ignored)."""
    rng = np.random.default_rng(seed)
    media: list[dict] = []
    expected: list[Record] = []

    def digest(algo: str) -> bytes:
        return rng.integers(0, 256, WIDTH[algo], dtype=np.uint8).tobytes()

    def hexed(d: bytes) -> str:
        h = d.hex()
        return h.upper() if rng.random() < 0.7 else h

    for i in range(n_media):
        m: dict = {"MediaID": 1000 + i}
        labels = set()
        r = rng.random()
        if r < 0.6:
            cat = int(rng.integers(0, 4))
            m["Category"] = cat
            labels.add(f"category:{cat}")
        elif r < 0.9:
            cat = int(rng.integers(0, 4))
            m["Category"] = str(cat)
            labels.add(f"category:{cat}")
        elif r < 0.95:
            m["Category"] = None
        d = {a: digest(a) for a in ALGOS}
        if not sha256:
            d["sha256"] = None
        r = rng.random()
        if r < 0.05:
            d["md5"] = d["sha1"] = d["sha256"] = None
        elif r < 0.15:
            d["md5"] = None
        elif r < 0.25:
            d["sha1"] = None
        for a, key in (("md5", "MD5"), ("sha1", "SHA1"), ("sha256", "SHA256")):
            if d[a] is not None:
                m[key] = hexed(d[a])
            elif a != "sha256" or sha256:
                m[key] = [None, ""][int(rng.integers(2))]
        size = int(rng.integers(0, 1 << 32))
        m["MediaSize"] = size if rng.random() < 0.7 else str(size)
        dist = bool(rng.random() < 0.5)
        pre = bool(rng.random() < 0.3)
        m["IsDistributed"] = _vics_bool(dist, bools, rng)
        m["IsPrecategorized"] = _vics_bool(pre, bools, rng)
        if dist:
            labels.add("vics:distributed")
        if pre:
            labels.add("vics:precategorized")
        m["DateUpdated"] = "2024-01-02T03:04:05.0000Z"
        m["Comments"] = {"nested": [1, 2, {"x": "y"}]}  # ignored
        lab = frozenset(labels)
        own = any(v is not None for v in d.values())
        if own:
            expected.append(Record(d["md5"], d["sha1"], d["sha256"], size, lab))
        if files:
            mfs = []
            emitted = [d] if own else []
            for j in range(int(rng.integers(0, 4))):
                kind = rng.random()
                mf: dict = {"FileName": f"img,{i}_{j}.jpg", "FilePath": "C:\\x\\y"}
                if kind < 0.3 and own:
                    # a repeat of (some of) the Media's digests, in lower case
                    have = [a for a in ALGOS if d[a] is not None]
                    pick = [a for a in have if rng.random() < 0.6] or have[:1]
                    for a in pick:
                        mf[a.upper()] = d[a].hex()
                    mf["FileSize"] = size
                elif kind < 0.85:
                    fd = {
                        "md5": digest("md5"),
                        "sha1": digest("sha1"),
                        "sha256": digest("sha256") if sha256 else None,
                    }
                    if rng.random() < 0.2:
                        fd["sha1"] = None
                    for a, key in (
                        ("md5", "MD5"),
                        ("sha1", "SHA1"),
                        ("sha256", "SHA256"),
                    ):
                        if fd[a] is not None:
                            mf[key] = hexed(fd[a])
                    fsize = int(rng.integers(0, 1 << 32))
                    if rng.random() < 0.8:
                        mf["FileSize"] = fsize
                    else:
                        fsize = -1
                    emitted.append(fd)
                    expected.append(
                        Record(fd["md5"], fd["sha1"], fd["sha256"], fsize, lab)
                    )
                else:
                    mf["MD5"] = None  # no digests: not a record
                mfs.append(mf)
            if mfs or rng.random() < 0.5:
                m["MediaFiles"] = mfs
        media.append(m)
    return media, expected


def write_vics(
    path: Path,
    media: Iterable[dict],
    *,
    version: str = "1.3",
    indent: int | None = None,
    newline: str = "\n",
    extra: dict | None = None,
) -> None:
    """A VICS export, written incrementally (so large files need no whole
    document in memory)."""
    key, url = VICS_CONTEXT[version]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("{" + json.dumps(key) + ": " + json.dumps(url) + "," + newline)
        for k, v in (extra or {}).items():
            f.write(json.dumps(k) + ": " + json.dumps(v) + "," + newline)
        f.write('"value": [' + newline)
        first = True
        for m in media:
            if not first:
                f.write("," + newline)
            first = False
            text = json.dumps(m, indent=indent)
            f.write(text.replace("\n", newline) if indent else text)
        f.write(newline + "]}" + newline)


# ---------------------------------------------------------------------------
# benchmark


def _bench(n: int, directory: Path) -> None:
    import time

    from hashlookup.importers import ImportReport, iter_records

    directory.mkdir(parents=True, exist_ok=True)
    t = make_table(n, 1, categories=5)
    files: list[tuple[str, Path, dict]] = []

    def add(label: str, name: str, writer, **kw) -> None:
        p = directory / name
        if not p.exists():
            writer(p)
        files.append((label, p, kw))

    add("text (md5)", "list.md5", lambda p: write_text(p, t, "md5"))
    add(
        "text (sha256sum)",
        "list.sha256",
        lambda p: write_text(p, t, "sha256", style="sum"),
    )
    add(
        "hashdeep (size,md5,sha1,sha256,filename)",
        "list.hashdeep",
        lambda p: write_hashdeep(p, t, ("size", "md5", "sha1", "sha256", "filename")),
    )
    add(
        "csv (name,md5,sha1,sha256,size,category)",
        "list.csv",
        lambda p: write_csv(p, t, category_name="Category"),
        label_columns={"category": "Category"},
    )
    add("sqlite (NSRL RDSv3)", "list.db", lambda p: write_nsrl(p, t))

    def vics(p: Path) -> None:
        def gen() -> Iterator[dict]:
            step = 50_000
            for s in range(0, n, step):
                ms, _ = make_vics(min(step, n - s), 1000 + s, files=True)
                yield from ms

        write_vics(p, gen())

    add("vics 1.3 (Media with MediaFiles)", "list.json", vics)
    print(f"{'format':45} {'records':>10} {'seconds':>8} {'records/s':>12} {'MB/s':>7}")
    for label, p, kw in files:
        rep = ImportReport()
        t0 = time.perf_counter()
        for _ in iter_records(p, report=rep, **kw):
            pass
        dt = time.perf_counter() - t0
        mb = p.stat().st_size / 1e6
        print(
            f"{label:45} {rep.records:>10} {dt:8.2f} {rep.records / dt:12,.0f}"
            f" {mb / dt:7.0f}"
        )


def read_hashdeep_both_ways(path: Path, use_c: bool, skip: bool, batch: int) -> tuple:
    """A hashdeep file read by the C reader of data lines (`use_c`) or by the
    Python reader alone: (records as columns, report fields) or the error
    message, so that the two can be compared (test_build_fast.py, the fuzz
    target ``hashdeep_c``)."""
    from hashlookup import InputError
    from hashlookup.importers import ImportReport, _hashdeep, iter_records

    old = _hashdeep.USE_C
    _hashdeep.USE_C = use_c
    rep = ImportReport()
    try:
        batches = list(
            iter_records(
                path,
                input_format="hashdeep",
                skip_invalid=skip,
                batch_size=batch,
                report=rep,
            )
        )
    except InputError as e:
        return ("error", str(e))
    finally:
        _hashdeep.USE_C = old
    cols = {}
    for name in ("md5", "sha1", "sha256", "has_md5", "has_sha1", "has_sha256", "size"):
        parts = [getattr(b, name) for b in batches]
        cols[name] = np.concatenate(parts).tobytes() if parts else b""
    fields = (rep.records, rep.invalid, rep.digests, rep.sized, rep.columns)
    return ("ok", cols, fields, rep.examples)


if __name__ == "__main__":
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    if args.dir:
        _bench(args.n, args.dir)
    else:
        with tempfile.TemporaryDirectory() as d:
            _bench(args.n, Path(d))
