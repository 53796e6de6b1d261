"""Datasets against a pure-Python oracle.

The acceptance test of the dataset feature: a dataset built from a VICS JSON
export (categories -> ``category:N``, MediaFiles), a hashdeep file (md5,
sha256, size), an NSRL-schema SQLite file (sha256, sha1, md5, file_size) and
a plain md5 list, with deliberate overlaps (one file in several sources,
known by different subsets of its digests), must answer every lookup exactly
as a dict oracle built from the same inputs:

* records: connected components of the input rows over shared digests
  (union-find over ``(algorithm, digest)`` keys, across inputs and
  algorithms);
* a record's digests: the digests of its rows (when a record has several
  digests of one algorithm, e.g. two rows that share an md5 but disagree on
  the sha256, the Match shows one of them);
* size: the largest known size of its rows (``hashlookup.builders.dataset`` takes
  ``np.maximum`` over the rows, -1 = unknown), None when none is known;
* labels: ``source:NAME`` of every input with a row of the record, plus the
  labels the importer gave the rows (VICS: ``category:N``,
  ``vics:distributed``);
* ``allow=``: every record with an allow-listed digest is dropped; the build
  report and the metadata count the dropped input rows per source.

Everything is synthetic (``numpy.random.default_rng`` with fixed seeds).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hashlookup
from hashlookup import Invalid, Match
from importer_data import write_vics

ALGS = ("md5", "sha1", "sha256")
WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}
VICS_KEY = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}
Key = tuple[str, bytes]  # (algorithm, raw digest)


# ---------------------------------------------------------------------------
# the oracle


@dataclass(frozen=True)
class Row:
    """One input record as the importer should read it."""

    source: str
    digests: dict[str, bytes]  # algorithm -> raw digest (non-empty)
    size: int = -1  # -1 = unknown
    labels: frozenset[str] = frozenset()

    def keys(self) -> list[Key]:
        return [(a, d) for a, d in self.digests.items()]


@dataclass
class Rec:
    """One expected dataset record (a connected component of rows)."""

    rows: list[int]
    digests: dict[str, set[bytes]] = field(
        default_factory=lambda: {a: set() for a in ALGS}
    )
    size: int = -1
    labels: set[str] = field(default_factory=set)

    def keys(self) -> list[Key]:
        return [(a, d) for a in ALGS for d in sorted(self.digests[a])]


class DatasetOracle:
    """Expected records, labels and lookups of build_dataset(rows' inputs)."""

    def __init__(
        self, rows: Sequence[Row], sources: Sequence[str], allow: Iterable[Key] = ()
    ) -> None:
        self.rows = list(rows)
        self.sources = list(sources)
        n = len(self.rows)
        parent = list(range(n))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        first: dict[Key, int] = {}
        for i, r in enumerate(self.rows):
            assert r.digests, "a row needs a digest"
            for k in r.keys():
                j = first.setdefault(k, i)
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        groups: dict[int, list[int]] = {}
        for i in range(n):
            groups.setdefault(find(i), []).append(i)
        self.allow = set(allow)
        self.records: list[Rec] = []  # kept, in order of their first row
        self.dropped: list[Rec] = []
        for root in sorted(groups):
            rec = Rec(groups[root])
            for i in rec.rows:
                r = self.rows[i]
                for a, d in r.digests.items():
                    rec.digests[a].add(d)
                rec.size = max(rec.size, r.size)
                rec.labels |= r.labels
                rec.labels.add(f"source:{r.source}")
            if any(k in self.allow for k in rec.keys()):
                self.dropped.append(rec)
            else:
                self.records.append(rec)
        self.by_key: dict[Key, Rec] = {
            k: rec for rec in self.records for k in rec.keys()
        }
        self.dropped_keys = {k for rec in self.dropped for k in rec.keys()}
        self.label_recs: dict[str, list[Rec]] = {}
        for rec in self.records:
            for label in rec.labels:
                self.label_recs.setdefault(label, []).append(rec)
        dropped_rows = Counter(
            self.rows[i].source for rec in self.dropped for i in rec.rows
        )
        # build_dataset reports per-source counts only when given an allow-list
        self.suppressed = (
            {s: dropped_rows.get(s, 0) for s in self.sources} if self.allow else {}
        )

    # -- expectations --------------------------------------------------------

    def all_keys(self) -> list[Key]:
        """Every digest of the inputs (kept or dropped)."""
        return sorted({k for r in self.rows for k in r.keys()})

    def keys_of(self, alg: str) -> set[bytes]:
        return {d for (a, d) in self.by_key if a == alg}

    def input_labels(self) -> set[str]:
        return {f"source:{s}" for s in self.sources} | {
            x for r in self.rows for x in r.labels
        }

    @staticmethod
    def passes(rec: Rec, only=None, exclude=None, suppress=()) -> bool:
        only = _labels(only)
        blocked = set(_labels(exclude)) | set(suppress)
        if only and not (rec.labels & set(only)):
            return False
        return not (rec.labels & blocked)

    def expect(self, key: Key, only=None, exclude=None, suppress=()) -> Rec | None:
        rec = self.by_key.get(key)
        if rec is None or not self.passes(rec, only, exclude, suppress):
            return None
        return rec


def _labels(x) -> tuple[str, ...]:
    if x is None:
        return ()
    if isinstance(x, str):
        return (x,)
    return tuple(x)


def assert_match(
    m,
    rec: Rec | None,
    alg: str,
    digest: bytes | None = None,
    generation: int | None = None,
) -> None:
    """m is the Match the oracle expects (rec), or None when rec is None."""
    if rec is None:
        assert m is None, f"expected a miss, got {m}"
        return
    assert isinstance(m, Match), f"expected a Match, got {m!r}"
    assert m.algorithm == alg
    for a in ALGS:
        got = getattr(m, a)
        want = {d.hex() for d in rec.digests[a]}
        if not want:
            assert got is None, f"{a}: expected None, got {got}"
        else:
            assert got in want, f"{a}: {got} is not one of the record's {want}"
    if digest is not None and len(rec.digests[alg]) == 1:
        assert getattr(m, alg) == digest.hex()
    assert m.size == (rec.size if rec.size >= 0 else None)
    assert m.labels == tuple(sorted(rec.labels))
    if generation is not None:
        assert m.generation == generation


def record_ids(ds, oracle: DatasetOracle) -> dict[int, int]:
    """id(rec) -> the dataset's record id, checking that all digests of a
    record give the same id and different records different ids."""
    out: dict[int, int] = {}
    for rec in oracle.records:
        ids = {ds.lookup(d).record_id for (_, d) in rec.keys()}
        assert len(ids) == 1, f"digests of one record give records {ids}"
        out[id(rec)] = ids.pop()
    assert sorted(out.values()) == list(range(len(oracle.records)))
    return out


def check_all(
    ds, oracle: DatasetOracle, misses: Sequence[Key] = (), generation: int | None = None
) -> None:
    """Every digest of the inputs (and the given misses) looked up by hex and
    raw bytes; records_with(), labels() and len() against the oracle."""
    assert len(ds) == len(oracle.records)
    for alg, d in oracle.all_keys():
        rec = oracle.expect((alg, d))
        assert_match(ds.lookup(d.hex()), rec, alg, d, generation)
        assert_match(ds.lookup(d), rec, alg, d, generation)
    for _alg, d in misses:
        assert ds.lookup(d) is None and ds.lookup(d.hex()) is None
    check_labels(ds, oracle)


def check_labels(ds, oracle: DatasetOracle) -> None:
    rid = record_ids(ds, oracle)
    want = {label: len(recs) for label, recs in oracle.label_recs.items()}
    got = ds.labels()
    # A label whose records were all dropped by the allow-list may stay in
    # the label index with count 0 (current behaviour); nothing else may.
    extra = {k: v for k, v in got.items() if k not in want}
    assert all(v == 0 for v in extra.values()), extra
    assert set(extra) <= oracle.input_labels()
    assert {k: v for k, v in got.items() if v} == want
    for label, recs in oracle.label_recs.items():
        bm = ds.records_with(label)
        assert sorted(bm) == sorted(rid[id(r)] for r in recs), label
    for rec in oracle.records:
        m = ds.record(rid[id(rec)])
        assert_match(m, rec, m.algorithm)


# ---------------------------------------------------------------------------
# writers (the format of each is what the importers read; see importer_data)


def _hex(d: bytes, upper: bool) -> str:
    h = d.hex()
    return h.upper() if upper else h


def write_hashdeep_rows(path: Path, rows: Sequence[Row], rng) -> None:
    """hashdeep with columns size,md5,sha256,filename (empty cell = absent)."""
    lines = [
        "%%%% HASHDEEP-1.0",
        "%%%% size,md5,sha256,filename",
        "## Invoked from: /synthetic",
        "## $ hashdeep -c md5,sha256 -r .",
        "##",
    ]
    for i, r in enumerate(rows):
        assert set(r.digests) <= {"md5", "sha256"} and r.size >= 0
        cells = [str(r.size)]
        for a in ("md5", "sha256"):
            d = r.digests.get(a)
            cells.append(_hex(d, bool(rng.random() < 0.3)) if d else "")
        cells.append(f"./dir {i % 5}/file,{i}.bin")
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_nsrl_rows(path: Path, rows: Sequence[Row]) -> None:
    """NSRL RDSv3 schema: FILE(sha256, sha1, md5, ..., file_size, ...)."""
    con = sqlite3.connect(path)
    try:
        con.execute(
            "CREATE TABLE FILE (sha256 TEXT NOT NULL, sha1 TEXT NOT NULL, "
            "md5 TEXT NOT NULL, crc32 TEXT, file_name TEXT, "
            "file_size INTEGER, package_id INTEGER)"
        )
        con.execute("CREATE TABLE PKG (package_id INTEGER, name TEXT)")
        con.executemany(
            "INSERT INTO FILE VALUES (?,?,?,?,?,?,?)",
            [
                tuple(
                    r.digests[a].hex().upper() if a in r.digests else ""
                    for a in ("sha256", "sha1", "md5")
                )
                + ("00000000", f"f{i}.dll", r.size if r.size >= 0 else None, 7)
                for i, r in enumerate(rows)
            ],
        )
        con.commit()
    finally:
        con.close()


def write_text_rows(path: Path, rows: Sequence[Row], rng, comments=True) -> None:
    """A plain digest list of one algorithm (comments, blank lines, mixed case)."""
    lines = ["# synthetic digest list", ""] if comments else []
    for r in rows:
        (d,) = r.digests.values()
        lines.append(_hex(d, bool(rng.random() < 0.3)))
        if comments and rng.random() < 0.05:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# the acceptance inputs


@dataclass
class Inputs:
    paths: dict[str, Path]  # source name -> file
    rows: list[Row]
    misses: list[Key]
    allow_paths: list[Path]
    allow_keys: set[Key]
    md5_only: list[bytes]  # for the plain-index test


SUBSETS = [
    ("md5", "sha1"),
    ("md5",),
    ("sha1",),
    ("md5", "sha1", "sha256"),
    ("sha256",),
    ("md5", "sha256"),
    ("sha1", "sha256"),
]
SUBSET_P = [0.5, 0.1, 0.1, 0.15, 0.05, 0.05, 0.05]


def make_inputs(
    d: Path, seed: int = 20240601, n_files: int = 2400, n_unlisted: int = 300
) -> Inputs:
    rng = np.random.default_rng(seed)
    n = n_files + n_unlisted
    raw = {a: rng.integers(0, 256, (n, WIDTH[a]), dtype=np.uint8) for a in ALGS}
    files = [{a: raw[a][i].tobytes() for a in ALGS} for i in range(n)]
    true_size = rng.integers(0, 1 << 40, n)
    true_size[rng.random(n) < 0.05] = 0
    rows: list[Row] = []

    def pick(k: int) -> list[int]:
        return rng.choice(n_files, k, replace=False).tolist()

    def subset(choices=SUBSETS, p=SUBSET_P) -> tuple[str, ...]:
        return choices[int(rng.choice(len(choices), p=p))]

    # -- VICS 2.0: Media (own digests) with MediaFiles (other files) ----------
    media = []
    vics_rows: list[Row] = []
    for k, i in enumerate(pick(700)):
        m: dict = {"MediaID": 5000 + k}
        labels: set[str] = set()
        r = rng.random()
        cat = int(rng.integers(0, 4))
        if r < 0.5:
            m["Category"] = cat
            labels.add(f"category:{cat}")
        elif r < 0.75:
            m["Category"] = str(cat)
            labels.add(f"category:{cat}")
        elif r < 0.85:
            m["Category"] = None
        dist = bool(rng.random() < 0.3)
        m["IsDistributed"] = dist
        if dist:
            labels.add("vics:distributed")
        lab = frozenset(labels)
        own = rng.random() >= 0.03  # 3%: a Media without digests
        if own:
            sub = subset()
            for a in sub:
                m[VICS_KEY[a]] = _hex(files[i][a], bool(rng.random() < 0.7))
            size = -1
            if rng.random() < 0.85:
                size = int(true_size[i])
                m["MediaSize"] = size if rng.random() < 0.7 else str(size)
            vics_rows.append(Row("vics", {a: files[i][a] for a in sub}, size, lab))
        else:
            m["MD5"] = None
        nfiles = int(rng.integers(1 if not own else 0, 3))
        others = [j for j in pick(nfiles + 1) if j != i][:nfiles]
        mfs = []
        for j in others:
            sub = subset()
            mf: dict = {"FileName": f"img,{k}_{j}.jpg", "FilePath": "C:\\x"}
            for a in sub:
                mf[VICS_KEY[a]] = _hex(files[j][a], bool(rng.random() < 0.5))
            size = -1
            if rng.random() < 0.8:
                size = int(true_size[j])
                mf["FileSize"] = size
            mfs.append(mf)
            vics_rows.append(Row("vics", {a: files[j][a] for a in sub}, size, lab))
        if mfs or rng.random() < 0.5:
            m["MediaFiles"] = mfs
        media.append(m)
    rows += vics_rows

    # -- hashdeep: md5, sha256, size (sometimes a different size: max wins) ---
    hd_rows = []
    for i in pick(900):
        sub = subset([("md5", "sha256"), ("md5",), ("sha256",)], [0.8, 0.1, 0.1])
        size = int(true_size[i])
        if rng.random() < 0.1:
            size += int(rng.integers(1, 1000)) * (1 if rng.random() < 0.5 else -1)
            size = max(size, 0)
        hd_rows.append(Row("hashdeep", {a: files[i][a] for a in sub}, size))
    for _ in range(6):  # conflicting rows: md5 of one file, sha256 of another
        x, y = pick(2)
        hd_rows.append(
            Row(
                "hashdeep",
                {"md5": files[x]["md5"], "sha256": files[y]["sha256"]},
                int(true_size[x]),
            )
        )
    rows += hd_rows

    # -- NSRL SQLite: sha256, sha1, md5, file_size ---------------------------
    ns_rows = []
    for i in pick(900):
        sub = subset(
            [ALGS, ("md5", "sha1"), ("sha1", "sha256"), ("md5", "sha256")],
            [0.85, 0.05, 0.05, 0.05],
        )
        size = int(true_size[i]) if rng.random() < 0.9 else -1
        ns_rows.append(Row("nsrl", {a: files[i][a] for a in sub}, size))
    rows += ns_rows

    # -- a plain md5 list (with repeated lines) -------------------------------
    md_idx = pick(600)
    md_idx += [md_idx[int(t)] for t in rng.integers(0, len(md_idx), 20)]
    md_rows = [Row("md5s", {"md5": files[i]["md5"]}) for i in md_idx]
    rows += md_rows

    paths = {
        "vics": d / "export.json",
        "hashdeep": d / "hashes.hashdeep",
        "nsrl": d / "NSRLFile.db",
        "md5s": d / "list.md5",
    }
    write_vics(paths["vics"], media, version="2.0")
    write_hashdeep_rows(paths["hashdeep"], hd_rows, rng)
    write_nsrl_rows(paths["nsrl"], ns_rows)
    write_text_rows(paths["md5s"], md_rows, rng)

    # -- misses: unlisted files' digests and near misses of listed ones ------
    misses: list[Key] = [(a, files[i][a]) for i in range(n_files, n) for a in ALGS]
    listed = {k for r in rows for k in r.keys()}
    for a, dig in sorted(listed)[::37]:
        b = bytearray(dig)
        b[-1] ^= 1
        misses.append((a, bytes(b)))
    misses = [k for k in misses if k not in listed]

    # -- allow-lists: an md5 list and sha256sum output -----------------------
    allow_md5 = [files[i]["md5"] for i in pick(40)] + [
        files[i]["md5"] for i in range(n_files, n_files + 5)
    ]
    allow_sha256 = [files[i]["sha256"] for i in pick(40)]
    p1, p2 = d / "allow.md5", d / "allow.sha256"
    p1.write_text("".join(f"{x.hex()}\n" for x in allow_md5))
    p2.write_text(
        "".join(
            f"{x.hex().upper()}  ./ok {k}.css\n" for k, x in enumerate(allow_sha256)
        )
    )
    allow_keys = {("md5", x) for x in allow_md5} | {("sha256", x) for x in allow_sha256}
    return Inputs(
        paths, rows, misses, [p1, p2], allow_keys, [files[i]["md5"] for i in md_idx]
    )


SOURCES = ["vics", "hashdeep", "nsrl", "md5s"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    return make_inputs(tmp_path_factory.mktemp("ds_inputs"))


@pytest.fixture(scope="module")
def oracle(inputs) -> DatasetOracle:
    return DatasetOracle(inputs.rows, SOURCES)


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    path = tmp_path_factory.mktemp("ds") / "known.hld"
    report = hashlookup.build_dataset(inputs.paths, path, name="known")
    return path, report


@pytest.fixture
def ds(built):
    with hashlookup.open_dataset(built[0]) as d:
        yield d


def test_oracle_has_the_intended_overlaps(oracle):
    """The generated inputs exercise what the test is about."""
    recs = oracle.records
    multi_source = [
        r for r in recs if len({x for x in r.labels if x.startswith("source:")}) >= 3
    ]
    assert len(multi_source) > 50
    # merged through a digest that not every row has (transitive merges)
    assert any(
        len(r.rows) >= 3
        and not all(
            set(oracle.rows[r.rows[0]].digests) & set(oracle.rows[i].digests)
            for i in r.rows
        )
        for r in recs
    )
    assert any(len(r.digests["sha256"]) > 1 for r in recs)  # conflicting rows
    assert any(r.size == -1 for r in recs) and any(r.size == 0 for r in recs)
    sizes = Counter()
    for r in recs:
        known = {oracle.rows[i].size for i in r.rows} - {-1}
        sizes[len(known) > 1] += 1
    assert sizes[True] > 5  # size conflicts
    assert {"category:0", "category:3", "vics:distributed"} <= set(oracle.label_recs)


def test_report_and_info(built, oracle, inputs, ds):
    _path, rep = built
    assert rep.records == len(oracle.records) == len(ds)
    assert rep.keys == {a: len(oracle.keys_of(a)) for a in ALGS}
    assert rep.inputs == Counter(r.source for r in oracle.rows)
    assert rep.invalid == 0 and rep.suppressed == {}
    assert rep.merged == len(oracle.rows) - len(oracle.records)
    assert rep.generation == 1 and ds.generation == 1 and ds.name == "known"
    info = ds.info()
    assert info["kind"] == "dataset" and info["records"] == len(oracle.records)
    assert info["labels"] == ds.labels()
    build = info["metadata"]["build"]
    assert {s: v["records"] for s, v in build["sources"].items()} == rep.inputs
    assert {s: v["format"] for s, v in build["sources"].items()} == {
        "vics": "vics",
        "hashdeep": "hashdeep",
        "nsrl": "sqlite",
        "md5s": "text",
    }
    assert ds.algorithms == ALGS
    for a in ALGS:
        assert len(ds.table(a)) == len(oracle.keys_of(a))
    assert ds.verify()["ok"]


def test_every_digest_matches_the_oracle(ds, oracle, inputs):
    check_all(ds, oracle, inputs.misses, generation=1)


def test_case_and_buffer_types(ds, oracle):
    keys = oracle.all_keys()[::7]
    for alg, d in keys:
        rec = oracle.expect((alg, d))
        for q in (
            d.hex().upper(),
            d.hex(),
            d,
            bytearray(d),
            memoryview(d),
            np.frombuffer(d, np.uint8),
        ):
            assert_match(ds.lookup(q), rec, alg, d)


def test_misses(ds, inputs):
    assert len(inputs.misses) > 900
    for a in ALGS:
        assert {x for x, _ in inputs.misses} >= {a}
    for _, d in inputs.misses:
        assert ds.lookup(d) is None
        assert ds.lookup(d.hex().upper()) is None


def test_tables_agree_with_the_oracle(ds, oracle, inputs):
    """The vectorised per-algorithm paths: contains_many, find_many and
    lookup_many on a (n, width) array."""
    for a in ALGS:
        qs = [d for (alg, d) in oracle.all_keys() + inputs.misses if alg == a]
        arr = np.frombuffer(b"".join(qs), np.uint8).reshape(len(qs), WIDTH[a])
        want = np.array([(a, d) in oracle.by_key for d in qs])
        t = ds.table(a)
        assert t.algorithm == a
        assert np.array_equal(t.contains_many(arr), want)
        assert np.array_equal(t.contains_many([d.hex() for d in qs]), want)
        assert np.array_equal(t.find_many(arr) >= 0, want)
        assert np.array_equal(t.contains_many(arr, threads=2), want)
        got = ds.lookup_many(arr)
        assert len(got) == len(qs)
        for d, m in zip(qs, got):
            assert_match(m, oracle.expect((a, d)), a, d)


INVALID_ITEMS = [
    "",
    "xyz",
    "0" * 31,
    "0" * 33,
    "0" * 48,
    "g" * 32,
    "é" * 32,
    " " + "0" * 31,
    b"",
    b"\x00" * 15,
    b"\x00" * 64,
    12345,
    None,
    1.5,
    ["0" * 32],
    {"md5": 1},
]


def test_lookup_many_mixed(ds, oracle, inputs):
    rng = np.random.default_rng(3)
    hits = oracle.all_keys()
    items: list = []
    want: list = []
    for k in range(2000):
        r = rng.random()
        if r < 0.6:
            a, d = hits[int(rng.integers(len(hits)))]
            q = [d.hex(), d.hex().upper(), d, bytearray(d)][k % 4]
            items.append(q)
            want.append(("hit", a, d))
        elif r < 0.85:
            a, d = inputs.misses[int(rng.integers(len(inputs.misses)))]
            items.append(d if k % 2 else d.hex())
            want.append(("miss",))
        else:
            items.append(INVALID_ITEMS[k % len(INVALID_ITEMS)])
            want.append(("invalid",))
    got = ds.lookup_many(items)
    assert len(got) == len(items)
    for q, w, m in zip(items, want, got):
        if w[0] == "hit":
            assert_match(m, oracle.expect((w[1], w[2])), w[1], w[2])
        elif w[0] == "miss":
            assert m is None
        else:
            assert isinstance(m, Invalid), (q, m)
            assert isinstance(m.reason, str) and m.reason, q
    # the reason is the message lookup() raises for that item
    for q in INVALID_ITEMS:
        (m,) = ds.lookup_many([q])
        with pytest.raises((TypeError, ValueError)) as e:
            ds.lookup(q)
        assert m == Invalid(str(e.value))
    assert ds.lookup_many([]) == []
    assert ds.lookup_many(iter([hits[0][1].hex()]))[0] is not None


def test_labels_and_records_with(ds, oracle):
    check_labels(ds, oracle)
    for bad in ("category:99", "source:nope", "nothing"):
        with pytest.raises(KeyError):
            ds.records_with(bad)


FILTERS = [
    dict(only="category:1"),
    dict(only=["category:1", "category:2"]),
    dict(only=("vics:distributed",)),
    dict(exclude="source:nsrl"),
    dict(exclude=["source:nsrl", "source:md5s"]),
    dict(only="source:vics", exclude=["vics:distributed", "source:md5s"]),
    dict(only=["source:hashdeep", "category:0"], exclude="category:3"),
    dict(only="no-such-label"),
    dict(exclude="no-such-label"),
    dict(only=["no-such-label", "source:md5s"], exclude=["source:nsrl"]),
]


@pytest.mark.parametrize("kw", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_only_exclude(ds, oracle, inputs, kw):
    keys = oracle.all_keys()
    n_hits = 0
    for alg, d in keys:
        rec = oracle.expect((alg, d), **kw)
        n_hits += rec is not None
        assert_match(ds.lookup(d.hex(), **kw), rec, alg, d)
    if "no-such-label" in _labels(kw.get("only")) and len(_labels(kw["only"])) == 1:
        assert n_hits == 0
    else:
        assert n_hits > 0
    sample = keys[::5]
    got = ds.lookup_many(
        [d for _, d in sample] + [m for _, m in inputs.misses[:50]], **kw
    )
    for (alg, d), m in zip(sample, got):
        assert_match(m, oracle.expect((alg, d), **kw), alg, d)
    assert got[len(sample) :] == [None] * 50
    for a in ALGS:
        qs = [d for alg, d in keys if alg == a]
        arr = np.frombuffer(b"".join(qs), np.uint8).reshape(len(qs), WIDTH[a])
        for d, m in zip(qs, ds.lookup_many(arr, **kw)):
            assert_match(m, oracle.expect((a, d), **kw), a, d)


@pytest.mark.parametrize(
    "suppress", [["source:nsrl"], ["category:2", "vics:distributed"]]
)
def test_suppress(built, oracle, suppress):
    with hashlookup.open_dataset(built[0], suppress=suppress) as ds:
        for alg, d in oracle.all_keys():
            assert_match(
                ds.lookup(d), oracle.expect((alg, d), suppress=suppress), alg, d
            )
        for kw in FILTERS[:7]:
            for alg, d in oracle.all_keys()[::9]:
                want = oracle.expect((alg, d), suppress=suppress, **kw)
                assert_match(ds.lookup(d, **kw), want, alg, d)
        # suppress filters matches, not the label directory
        assert {k: v for k, v in ds.labels().items() if v} == {
            label: len(r) for label, r in oracle.label_recs.items()
        }


def test_filter_cache_distinguishes_only_star_from_no_only(built, oracle):
    """BUG (hashlookup/store/dataset.py, Dataset._filter): the filter cache key is
    ``(o or ("*",), x)``, so ``only="*"`` (a label no record has) and
    ``only=None`` share one cache entry: whichever is asked first answers
    for both.  Expected: only="*" matches nothing, and no `only` matches
    everything not excluded."""
    (alg, d), rec = next(
        ((k, r) for k, r in oracle.by_key.items() if "source:nsrl" not in r.labels)
    )
    with hashlookup.open_dataset(built[0], suppress=["source:nsrl"]) as ds:
        assert ds.lookup(d, only="*") is None
        assert_match(ds.lookup(d), rec, alg, d)
    with hashlookup.open_dataset(built[0]) as ds:
        assert_match(ds.lookup(d, exclude="source:zzz"), rec, alg, d)
        assert ds.lookup(d, only="*", exclude="source:zzz") is None


# ---------------------------------------------------------------------------
# allow-list


@pytest.fixture(scope="module")
def allowed(inputs, tmp_path_factory):
    path = tmp_path_factory.mktemp("ds_allow") / "allowed.hld"
    rep = hashlookup.build_dataset(
        inputs.paths, path, allow=[str(p) for p in inputs.allow_paths]
    )
    return path, rep, DatasetOracle(inputs.rows, SOURCES, inputs.allow_keys)


def test_allow_list_drops_exactly_the_oracle_records(allowed, inputs):
    path, rep, orc = allowed
    assert len(orc.dropped) > 40
    # a dropped record goes with all its digests, allow-listed or not
    assert any(not (set(r.keys()) <= inputs.allow_keys) for r in orc.dropped)
    assert rep.records == len(orc.records)
    assert rep.suppressed == orc.suppressed
    assert sum(rep.suppressed.values()) == sum(len(r.rows) for r in orc.dropped)
    assert all(rep.suppressed[s] > 0 for s in SOURCES)
    assert rep.keys == {a: len(orc.keys_of(a)) for a in ALGS}
    with hashlookup.open_dataset(path) as ds:
        check_all(ds, orc, inputs.misses)
        for k in orc.dropped_keys:
            assert ds.lookup(k[1]) is None
        meta = ds.info()["metadata"]["build"]
        assert meta["suppressed"] == orc.suppressed
        assert meta["allow_lists"] == ["allow.md5", "allow.sha256"]
        assert meta["merged"] == sum(len(r.rows) for r in orc.records) - len(
            orc.records
        )
        for a in ALGS:
            t = ds.table(a)
            qs = sorted(d for (alg, d) in orc.dropped_keys if alg == a)
            assert not t.contains_many(qs).any()


def test_allow_list_dropping_everything(tmp_path):
    p = tmp_path / "a.md5"
    p.write_text("00" * 16 + "\n" + "11" * 16 + "\n")
    with pytest.raises(hashlookup.InputError, match="allow-list"):
        hashlookup.build_dataset({"a": p}, tmp_path / "x.hld", allow=[str(p)])
    assert not (tmp_path / "x.hld").exists()


# ---------------------------------------------------------------------------
# input forms


def test_input_forms_give_the_same_dataset(inputs, oracle, tmp_path):
    pairs = [(s, inputs.paths[s]) for s in SOURCES]
    a = hashlookup.build_dataset(pairs, tmp_path / "pairs.hld")
    assert a.inputs == Counter(r.source for r in oracle.rows)
    with hashlookup.open_dataset(tmp_path / "pairs.hld") as ds:
        for alg, d in oracle.all_keys()[::11]:
            assert_match(ds.lookup(d), oracle.expect((alg, d)), alg, d)
    # a list of paths: the source names are the file stems
    stems = hashlookup.build_dataset([str(p) for _, p in pairs], tmp_path / "stems.hld")
    assert set(stems.inputs) == {"export", "hashes", "NSRLFile", "list"}
    with hashlookup.open_dataset(tmp_path / "stems.hld") as ds:
        assert set(ds.labels()) >= {
            "source:export",
            "source:hashes",
            "source:NSRLFile",
            "source:list",
        }
        assert len(ds) == len(oracle.records)


# ---------------------------------------------------------------------------
# a plain index opened as a dataset


def test_plain_index_as_dataset(inputs, tmp_path):
    keys = inputs.md5_only
    path = tmp_path / "plain.hlx"
    hashlookup.build_index([k.hex() for k in keys], path)
    uniq = sorted(set(keys))
    with hashlookup.open_dataset(path) as ds:
        assert len(ds) == len(uniq)
        assert ds.algorithms == ("md5",)
        assert ds.labels() == {}
        assert ds.generation == 0
        assert ds.info()["kind"] == "index"
        with pytest.raises(KeyError):
            ds.records_with("source:plain")
        with pytest.raises(KeyError):
            ds.table("sha1")
        seen = set()
        for k in uniq:
            for q in (k, k.hex(), k.hex().upper()):
                m = ds.lookup(q)
                assert isinstance(m, Match)
                assert (m.algorithm, m.md5, m.sha1, m.sha256, m.size, m.labels) == (
                    "md5",
                    k.hex(),
                    None,
                    None,
                    None,
                    (),
                )
                assert m.generation == 0
            seen.add(m.record_id)
            assert ds.record(m.record_id) == m
            assert ds.lookup(k, only="source:plain") is None
            assert ds.lookup(k, exclude="source:plain") == m
        assert seen == set(range(len(uniq)))
        for _, d in inputs.misses[:200]:
            assert ds.lookup(d) is None  # misses, sha1 and sha256 too
        arr = np.frombuffer(b"".join(uniq), np.uint8).reshape(-1, 16)
        assert [m.md5 for m in ds.lookup_many(arr)] == [k.hex() for k in uniq]
        got = ds.lookup_many([uniq[0], "zz", inputs.misses[0][1]])
        assert got[0].md5 == uniq[0].hex()
        assert isinstance(got[1], Invalid) and got[2] is None
        assert ds.table("md5").contains_many(arr).all()
        assert ds.verify()["ok"]
    with hashlookup.open_dataset(path, suppress=["source:x"]) as ds:
        assert ds.lookup(uniq[0]).md5 == uniq[0].hex()


def test_raw_index_is_not_a_dataset(tmp_path):
    path = tmp_path / "raw.hlx"
    hashlookup.build_index([b"\x01" * 8, b"\x02" * 8], path, algorithm="raw", width=8)
    with pytest.raises(hashlookup.IndexFormatError):
        hashlookup.open_dataset(path)


# ---------------------------------------------------------------------------
# property test: small random multi-source inputs with random overlaps

# A few digests per algorithm, so that random rows overlap a lot.
_POOL_RNG = np.random.default_rng(77)
POOL = {
    a: [
        _POOL_RNG.integers(0, 256, WIDTH[a], dtype=np.uint8).tobytes() for _ in range(7)
    ]
    for a in ALGS
}
POOL_MISSES = {a: POOL[a][5:] for a in ALGS}  # never used in rows
POOL = {a: POOL[a][:5] for a in ALGS}
FORMAT_ALGS = {"hashdeep": ("md5", "sha256"), "nsrl": ALGS, "vics": ALGS, "text": ALGS}


@st.composite
def sources_strategy(draw):
    n_sources = draw(st.integers(1, 4))
    out = []
    for k in range(n_sources):
        fmt = draw(st.sampled_from(sorted(FORMAT_ALGS)))
        allowed = FORMAT_ALGS[fmt]
        text_alg = draw(st.sampled_from(ALGS))
        rows = []
        for _ in range(draw(st.integers(1, 5))):
            if fmt == "text":
                algs = [text_alg]
            else:
                algs = draw(st.lists(st.sampled_from(allowed), min_size=1, unique=True))
            digests = {a: POOL[a][draw(st.integers(0, 4))] for a in algs}
            if fmt == "text":
                size = -1
            elif fmt == "hashdeep":
                size = draw(st.integers(0, 60))
            else:
                size = draw(st.one_of(st.just(-1), st.integers(0, 60)))
            labels = frozenset()
            if fmt == "vics":
                cat = draw(st.one_of(st.none(), st.integers(0, 2)))
                labels = frozenset() if cat is None else frozenset({f"category:{cat}"})
            rows.append(Row(f"s{k}", digests, size, labels))
        out.append((f"s{k}", fmt, rows))
    return out


def _write_source(d: Path, fmt: str, rows: list[Row], rng) -> Path:
    if fmt == "text":
        p = d / f"{rows[0].source}.txt"
        write_text_rows(p, rows, rng, comments=False)
    elif fmt == "hashdeep":
        p = d / f"{rows[0].source}.hashdeep"
        write_hashdeep_rows(p, rows, rng)
    elif fmt == "nsrl":
        p = d / f"{rows[0].source}.db"
        write_nsrl_rows(p, rows)
    else:
        p = d / f"{rows[0].source}.json"
        media = []
        for i, r in enumerate(rows):
            m: dict = {"MediaID": i}
            for x in r.labels:
                m["Category"] = int(x.split(":")[1])
            for a, dig in r.digests.items():
                m[VICS_KEY[a]] = dig.hex()
            if r.size >= 0:
                m["MediaSize"] = r.size
            media.append(m)
        write_vics(p, media, version="2.0")
    return p


@given(
    sources=sources_strategy(),
    allow=st.lists(st.tuples(st.sampled_from(ALGS), st.integers(0, 4)), max_size=3),
    only=st.one_of(
        st.none(),
        st.lists(
            st.sampled_from(
                ["source:s0", "source:s1", "category:0", "category:1", "nope"]
            ),
            min_size=1,
            max_size=2,
        ),
    ),
    exclude=st.one_of(
        st.none(),
        st.lists(
            st.sampled_from(["source:s0", "source:s2", "category:2", "nope"]),
            min_size=1,
            max_size=2,
        ),
    ),
)
def test_property_random_overlaps(sources, allow, only, exclude):
    rows = [r for _, _, rs in sources for r in rs]
    allow_keys = {(a, POOL[a][i]) for a, i in allow}
    orc = DatasetOracle(rows, [s for s, _, _ in sources], allow_keys)
    rng = np.random.default_rng(len(rows))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        paths = {name: _write_source(d, fmt, rs, rng) for name, fmt, rs in sources}
        allow_paths = []
        for a in ALGS:
            ks = sorted(x for alg, x in allow_keys if alg == a)
            if ks:
                p = d / f"allow_{a}.txt"
                p.write_text("".join(x.hex() + "\n" for x in ks))
                allow_paths.append(str(p))
        out = d / "ds.hld"
        if not orc.records:
            with pytest.raises(hashlookup.InputError):
                hashlookup.build_dataset(paths, out, allow=allow_paths)
            return
        # with the first-level filter (explicit), without, or the default
        # (none beside the Bloom filter): same answers
        pre = (0.0, 4.0, None)[len(rows) % 3]
        rep = hashlookup.build_dataset(
            paths, out, allow=allow_paths, prefilter_bits_per_key=pre
        )
        assert rep.records == len(orc.records)
        assert rep.suppressed == orc.suppressed
        assert rep.merged == sum(len(r.rows) for r in orc.records) - len(orc.records)
        with hashlookup.open_dataset(out) as ds:
            misses = [(a, x) for a in ALGS for x in POOL_MISSES[a]]
            check_all(ds, orc, misses)
            qs = [(a, x) for a in ALGS for x in POOL[a]]
            got = ds.lookup_many([x for _, x in qs], only=only, exclude=exclude)
            for (a, x), m in zip(qs, got):
                assert_match(m, orc.expect((a, x), only, exclude), a, x)
            assert ds.verify()["ok"]
