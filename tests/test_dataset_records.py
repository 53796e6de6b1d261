"""A hit's record (digests, size, labels) read in C (_core.RecordTable) and
labels via LabelStore.of, against a dict oracle and against the reference
read in Python (struct unpack of the record, slices of the key tables,
membership in each label bitmap): records with missing digests and sizes,
and many labels that combine."""

import struct

import numpy as np
import pytest

import hashlookup
from hashlookup import _core
from hashlookup.errors import IndexFormatError

N = 400
SOURCES = 12
CATEGORIES = 7


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("records")
    rng = np.random.default_rng(20261128)
    records = []
    for i in range(N):
        md5 = rng.integers(0, 256, 16, dtype=np.uint8).tobytes().hex()
        sha1 = rng.integers(0, 256, 20, dtype=np.uint8).tobytes().hex() if i % 5 else ""
        sha256 = (
            rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() if i % 7 else ""
        )
        size = "" if i % 6 == 0 else str(int(rng.integers(0, 1 << 40)))
        cat = str(int(rng.integers(0, CATEGORIES)))
        sources = sorted(
            {int(x) for x in rng.integers(0, SOURCES, int(rng.integers(1, 4)))}
        )
        records.append((md5, sha1, sha256, size, cat, sources))
    inputs = {}
    for s in range(SOURCES):
        p = d / f"s{s}.csv"
        p.write_text(
            "MD5,SHA1,SHA256,Size,Category\n"
            + "".join(
                f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]}\n" for r in records if s in r[5]
            )
        )
        inputs[f"s{s:02d}"] = str(p)
    path = d / "r.hlds"
    hashlookup.build_dataset(inputs, path, label_columns={"category": "Category"})
    oracle = {}
    for md5, sha1, sha256, size, cat, sources in records:
        labels = tuple(
            sorted([f"category:{cat}"] + [f"source:s{s:02d}" for s in sources])
        )
        rec = (md5, sha1 or None, sha256 or None, int(size) if size else None, labels)
        for alg, h in (("md5", md5), ("sha1", sha1), ("sha256", sha256)):
            if h:
                oracle[h] = (alg, rec)
    return path, oracle


def _reference(ds, rid):
    """The record as the Python code before RecordTable read it."""
    st = ds.current()
    rows = struct.unpack_from("<IIIIq", st.mapping, st.records_offset + 24 * rid)
    out = []
    for a, row in zip(("md5", "sha1", "sha256"), rows):
        off, w, n = st.key_spans[a]
        out.append(
            st.mapping[off + row * w : off + (row + 1) * w].hex()
            if row != 0xFFFFFFFF and row < n
            else None
        )
    labels = tuple(sorted(n for n in ds.labels() if rid in ds.records_with(n)))
    return (*out, rows[4] if rows[4] >= 0 else None, labels)


def test_every_lookup_matches_the_oracle(built):
    path, oracle = built
    with hashlookup.open_dataset(path) as ds:
        assert len(ds.labels()) == SOURCES + CATEGORIES
        assert len(ds) == N
        for h, (alg, rec) in oracle.items():
            for q in (h, h.upper(), bytes.fromhex(h)):
                m = ds.lookup(q)
                assert m is not None and m.algorithm == alg
                assert (m.md5, m.sha1, m.sha256, m.size, m.labels) == rec
                assert type(m) is hashlookup.Match and m.generation == ds.generation
            assert ds.record(m.record_id)[2:] == m[2:]
            assert _reference(ds, m.record_id) == rec


def test_records_and_reader_agree_with_the_reference(built):
    path, _ = built
    with hashlookup.open_dataset(path) as ds:
        reader = ds.current().record_table
        rng = np.random.default_rng(7)
        for rid in rng.permutation(N)[:150].tolist():
            ref = _reference(ds, rid)
            assert reader.read(rid) == ref[:4]
            m = ds.record(rid)
            assert (m.md5, m.sha1, m.sha256, m.size, m.labels) == ref
        # hit(): the rowmap of each table leads to the same record
        for a, k in (("md5", 0), ("sha1", 1), ("sha256", 2)):
            table = ds.table(a)
            for row in range(len(table)):
                rid, *fields = reader.hit(k, row)
                assert tuple(fields) == reader.read(rid)
                assert fields[k] == bytes(table.keys()[row]).hex()


def test_label_tuples_are_interned(built):
    path, oracle = built
    with hashlookup.open_dataset(path) as ds:
        seen = {}
        for h in oracle:
            m = ds.lookup(h)
            assert seen.setdefault(m.labels, m.labels) is m.labels


def test_reader_bounds_and_close(built):
    path, _ = built
    ds = hashlookup.open_dataset(path)
    reader = ds.current().record_table
    n_md5 = len(ds.table("md5"))
    for bad in (-1, n_md5):
        with pytest.raises(IndexError):
            reader.hit(0, bad)
    with pytest.raises(IndexError):
        reader.hit(3, 0)
    for bad in (-1, N):
        with pytest.raises(IndexError, match="out of range"):
            reader.read(bad)
    ds.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(0)
    with pytest.raises(ValueError, match="closed"):
        reader.hit(0, 0)


def test_reader_rejects_sections_outside_the_buffer():
    buf = bytearray(1000)
    none3 = [None, None, None]
    with pytest.raises(IndexFormatError, match="record table outside"):
        _core.RecordTable(buf, 990, 1, none3, none3, "x")
    with pytest.raises(IndexFormatError, match="md5 keys outside"):
        _core.RecordTable(buf, 0, 1, [(900, 16, 10), None, None], none3, "x")
    with pytest.raises(IndexFormatError, match="sha1 rowmap outside"):
        _core.RecordTable(buf, 0, 1, [None, (0, 20, 10), None], [None, 980, None], "x")


def test_rowmap_past_the_records_is_a_format_error():
    # one record; the md5 table's rowmap points at record 5
    buf = bytearray(24 + 16 + 4)
    buf[0:24] = struct.pack("<IIIIq", 0, 0xFFFFFFFF, 0xFFFFFFFF, 0, 12)
    buf[24:40] = bytes(range(16))
    buf[40:44] = struct.pack("<I", 5)
    reader = _core.RecordTable(
        buf, 0, 1, [(24, 16, 1), None, None], [40, None, None], "f.hlds"
    )
    assert reader.read(0) == (bytes(range(16)).hex(), None, None, 12)
    with pytest.raises(
        IndexFormatError,
        match=r"f\.hlds: rowmap of md5 row 0 points past the 1 records",
    ):
        reader.hit(0, 0)
    buf[40:44] = struct.pack("<I", 0)
    assert reader.hit(0, 0) == (0, bytes(range(16)).hex(), None, None, 12)
