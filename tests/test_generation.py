"""Dataset.current(): the public Generation that layers above the store use
(tables, records, rowmaps, labels, a hit's Match), and the single lookup
that goes into C once and comes back once (no Python code runs in it)."""

import shutil
import sys

import numpy as np
import pytest

import hashlookup
from hashlookup.store.generation import Generation


def _build(tmp_path, name="d.hlds", seed=4242, generation=None):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    b = rng.integers(0, 256, (200, 16), dtype=np.uint8)
    (tmp_path / "a.txt").write_text("".join(bytes(r).hex() + "\n" for r in a))
    both = np.concatenate([a[:100], b])
    (tmp_path / "b.txt").write_text("".join(bytes(r).hex() + "\n" for r in both))
    hashlookup.build_dataset(
        [("a", tmp_path / "a.txt"), ("b", tmp_path / "b.txt")],
        tmp_path / name,
        generation=generation,
    )
    return tmp_path / name, a, b


def test_generation_facts_and_hits(tmp_path):
    path, a, b = _build(tmp_path)
    with hashlookup.open_dataset(path, suppress=["source:zzz"]) as ds:
        gen = ds.current()
        assert isinstance(gen, Generation) and gen is ds.current()
        assert (gen.name, gen.generation, gen.built, gen.count) == (
            ds.name,
            ds.generation,
            ds.built,
            len(ds),
        )
        assert gen.algorithms == ds.algorithms == ("md5",)
        assert gen.is_dataset and gen.record_table is not None
        assert gen.labels is not None and set(gen.labels.names()) == set(ds.labels())
        assert ds.suppress == ("source:zzz",)
        table = gen.tables["md5"]
        assert table is ds.table("md5")
        rows = table.find_many(np.concatenate([a, b]))
        for row, digest in zip(rows.tolist(), np.concatenate([a, b]), strict=True):
            m = gen.match("md5", row)
            assert m == ds.lookup(bytes(digest)) == gen.lookup(bytes(digest).hex())
            assert (
                gen.record_id("md5", row) == m.record_id == int(gen.rowmaps["md5"][row])
            )
            assert gen.record(m.record_id) == m
            assert int(gen.records[m.record_id]["md5_row"]) == row
        keep = gen.record_filter(only="source:a", exclude=["source:b"])
        assert [keep(gen.record_id("md5", r)) for r in rows.tolist()] == [
            False
        ] * 100 + [True] * 200 + [False] * 200
        assert (
            gen.match("md5", int(rows[0]), only="source:a", exclude="source:b") is None
        )
        gen.verify()
    with pytest.raises(ValueError, match="closed"):
        ds.current()


def test_plain_index_is_a_generation(tmp_path):
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 256, (50, 20), dtype=np.uint8)
    hashlookup.build_index([bytes(k) for k in keys], tmp_path / "i.hlx")
    with hashlookup.open_dataset(tmp_path / "i.hlx") as ds:
        gen = ds.current()
        assert not gen.is_dataset and gen.record_table is None and gen.labels is None
        assert gen.records is None and gen.rowmaps == {}
        table = gen.tables["sha1"]
        for k in keys:
            row = table.find(bytes(k))
            m = gen.match("sha1", row)
            assert m == ds.lookup(bytes(k)) == gen.record(row)
            assert (m.record_id, m.sha1, m.md5, m.size, m.labels) == (
                row,
                bytes(k).hex(),
                None,
                None,
                (),
            )
            assert gen.record_id("sha1", row) == row


def test_a_held_generation_answers_across_reload(tmp_path):
    path, a, _ = _build(tmp_path, "g1.hlds", seed=1, generation=1)
    path2, a2, _ = _build(tmp_path, "g2.hlds", seed=2, generation=2)
    live = tmp_path / "live.hlds"
    shutil.copyfile(path, live)
    with hashlookup.open_dataset(live) as ds:
        old = ds.current()
        shutil.copyfile(path2, tmp_path / "tmp")
        (tmp_path / "tmp").replace(live)
        assert ds.reload()
        new = ds.current()
        assert (old.generation, new.generation) == (1, 2)
        assert old.lookup(bytes(a[5])).generation == 1
        assert old.lookup(bytes(a2[5])) is None
        assert ds.lookup(bytes(a2[5])).generation == 2


def test_lookup_runs_no_python_code(tmp_path):
    """A single lookup, hit or miss, filtered or not, is one call into C:
    no Python function runs inside it (sys.setprofile sees every Python
    call; calls made from C into C, such as pyroaring's, are not Python)."""
    path, a, b = _build(tmp_path)
    with hashlookup.open_dataset(path, suppress=["source:zzz"]) as ds:
        queries = [
            (bytes(a[150]).hex(), None, None),
            (bytes(a[0]), None, None),
            (bytes(b[150]), "source:b", None),
            (bytes(a[0]), None, "source:b"),
            ("00" * 16, None, None),
            ("00" * 32, None, None),
        ]
        want = [ds.lookup(q, only, exclude) for q, only, exclude in queries]  # warm
        calls = []

        def profile(frame, event, arg):
            if event == "call":
                calls.append(frame.f_code.co_qualname)

        got = []
        sys.setprofile(profile)
        try:
            for q, only, exclude in queries:
                got.append(ds.lookup(q, only, exclude))
        finally:
            sys.setprofile(None)
        assert got == want and got[0] is not None and got[3] is None
        assert calls == []
