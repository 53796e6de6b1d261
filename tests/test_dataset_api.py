"""Dataset.record_ids / record_filter: the vectorised bridge from table rows
to records that batch jobs (match, scan) use."""

import numpy as np

import hashlookup


def _dataset(tmp_path):
    rng = np.random.default_rng(4242)
    a = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    b = rng.integers(0, 256, (200, 16), dtype=np.uint8)
    (tmp_path / "a.txt").write_text("".join(bytes(r).hex() + "\n" for r in a))
    both = np.concatenate([a[:100], b])
    (tmp_path / "b.txt").write_text("".join(bytes(r).hex() + "\n" for r in both))
    hashlookup.build_dataset(
        [("a", tmp_path / "a.txt"), ("b", tmp_path / "b.txt")], tmp_path / "d.hlds"
    )
    return hashlookup.open_dataset(tmp_path / "d.hlds"), a, b, rng


def test_record_ids_match_lookup(tmp_path):
    ds, a, b, rng = _dataset(tmp_path)
    q = np.concatenate([a, b, rng.integers(0, 256, (100, 16), dtype=np.uint8)])
    table = ds.table("md5")
    ids = ds.record_ids(table, table.find_many(q))
    expected = [m.record_id if m else -1 for m in (ds.lookup(bytes(r)) for r in q)]
    assert ids.tolist() == expected
    assert (ids[-100:] == -1).all()
    ds.close()


def test_record_filter_is_bitmap_algebra(tmp_path):
    ds, a, b, _ = _dataset(tmp_path)
    table = ds.table("md5")
    assert ds.record_filter(table) is None
    keep = ds.record_filter(table, only=["source:a"], exclude=["source:b"])
    ids = ds.record_ids(table, table.find_many(np.concatenate([a, b])))
    wanted = [keep(int(i)) for i in ids]
    # only in a: a[100:]; a[:100] are also in b; b[100:] only in b
    assert wanted == [False] * 100 + [True] * 200 + [False] * 200
    ds.close()


def test_lookup_after_close_raises(tmp_path):
    import pytest

    ds, a, _, _ = _dataset(tmp_path)
    # the native lookups, held past the close: their open check still runs
    # before a table's kernel is called
    lookups = ds.current().lookups
    ds.close()
    for digest in (bytes(a[0]), bytes(a[0]).hex(), b"\0" * 20):
        with pytest.raises(ValueError, match="closed"):
            ds.lookup(digest)
    for digest in (bytes(a[0]), bytes(a[0]).hex(), b"\1" * 16):  # md5: a table
        with pytest.raises(ValueError, match="closed"):
            lookups.find(digest)
        with pytest.raises(ValueError, match="closed"):
            lookups.lookup(digest)
