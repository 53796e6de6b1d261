"""Dataset.near and near_many against a brute-force numpy oracle: random
sets with neighbours planted at every distance, duplicates, all-zero and
all-one hashes, the quality and label filters, both search strategies,
threads; query forms and their errors; files without PDQ hashes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hashlookup
from hashlookup.store import format as _format
from near_utils import build, flip, oracle, planted_set

RADII = [0, 1, 15, 31, 32, 47, 63, 64, 100, 255, 256, 1000]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("near")
    hashes, centers = planted_set(4000, seed=7)
    quality = np.random.default_rng(8).integers(0, 101, len(hashes)).astype(np.uint8)
    path = build(tmp, hashes, quality)
    rng = np.random.default_rng(9)
    queries = np.concatenate(
        [
            centers,
            np.stack([flip(c, int(rng.integers(0, 40)), rng) for c in centers]),
            hashes[rng.choice(len(hashes), 20, replace=False)],
            np.zeros((1, 32), np.uint8),
            np.full((1, 32), 255, np.uint8),
        ]
    )
    with hashlookup.open_dataset(path) as ds:
        yield ds, hashes, quality, queries


@pytest.mark.parametrize("max_distance", RADII)
@pytest.mark.parametrize("min_quality", [0, 50])
def test_near_many_matches_brute_force(planted, max_distance, min_quality):
    ds, hashes, quality, queries = planted
    got = ds.near_many(queries, max_distance, min_quality=min_quality, threads=2)
    want = oracle(queries, hashes, quality, max_distance, min_quality)
    assert np.array_equal(got.query, want[0])
    assert np.array_equal(got.record_id, want[1])
    assert np.array_equal(got.distance, want[2])
    if min_quality == 0:  # the planted neighbours are there to be found
        assert len(np.unique(got.query)) > len(queries) // 2


@pytest.mark.parametrize("max_distance", [0, 1, 15, 31, 32, 47, 63])
@pytest.mark.parametrize("strategy", ["index", "scan", "auto"])
def test_strategies_agree(planted, max_distance, strategy):
    ds, hashes, quality, queries = planted
    idx = ds.current().pdq
    got = idx.search(queries, max_distance, 0, strategy=strategy)
    want = oracle(queries, hashes, quality, max_distance, 0)
    assert np.array_equal(got.query, want[0])
    assert np.array_equal(idx.record_ids[got.row], want[1])
    assert np.array_equal(got.distance, want[2])


def test_near_returns_whole_records(planted):
    ds, hashes, quality, queries = planted
    for q in queries[:12]:
        got = ds.near(q.tobytes().hex().upper(), 31, min_quality=0)
        _, rec, dist = oracle(q[None], hashes, quality, 31, 0)
        assert [m.record_id for m in got] == rec.tolist()
        assert [m.distance for m in got] == dist.tolist()
        for m in got:
            assert m.pdq == hashes[m.record_id].tobytes().hex()
            assert m.quality == quality[m.record_id]
            r = ds.record(m.record_id)
            assert (m.md5, m.labels, m.generation) == (r.md5, r.labels, r.generation)
        assert got == ds.near(q.tobytes(), 31, min_quality=0)


def test_threads_and_query_forms_agree(planted):
    ds, _, _, queries = planted
    many = np.repeat(queries, 20, axis=0)  # enough rows to split over threads
    one = ds.near_many(many, 31, threads=1)
    for threads in (2, 3, None):
        other = ds.near_many(many, 31, threads=threads)
        assert all(np.array_equal(a, b) for a, b in zip(one, other))
    as_hex = ds.near_many([q.tobytes().hex() for q in queries], 31)
    as_bytes = ds.near_many([q.tobytes() for q in queries], 31)
    ref = ds.near_many(queries, 31)
    for got in (as_hex, as_bytes):
        assert all(np.array_equal(a, b) for a, b in zip(ref, got))
    empty = ds.near_many(np.zeros((0, 32), np.uint8))
    assert len(empty.query) == 0 and empty.query.dtype == np.int64


def test_duplicates_zero_and_one_hashes(tmp_path):
    rng = np.random.default_rng(3)
    h = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    h[[4, 9, 30]] = h[20]  # one hash, four records
    h[5] = 0
    h[6] = 255
    path = build(tmp_path, h)
    with hashlookup.open_dataset(path) as ds:
        got = ds.near(h[20].tobytes(), 0)
        assert [(m.record_id, m.distance) for m in got] == [
            (4, 0),
            (9, 0),
            (20, 0),
            (30, 0),
        ]
        assert [m.record_id for m in ds.near(bytes(32), 0)] == [5]
        assert [m.record_id for m in ds.near(b"\xff" * 32, 0)] == [6]
        far = ds.near(bytes(32), 256)  # everything, the all-one hash last
        assert len(far) == 50 and far[-1].record_id == 6 and far[-1].distance == 256
        assert [m.distance for m in far] == sorted(m.distance for m in far)


def test_quality_filter(tmp_path):
    rng = np.random.default_rng(4)
    h = rng.integers(0, 256, (6, 32), dtype=np.uint8)
    h[:] = h[0]
    q = np.array([0, 49, 50, 51, 100, 100], np.uint8)
    path = build(tmp_path, h, q)
    with hashlookup.open_dataset(path) as ds:
        ids = [m.record_id for m in ds.near(h[0].tobytes())]
        assert ids == [2, 3, 4, 5]  # quality >= 50 by default, as HMA
        assert [m.record_id for m in ds.near(h[0].tobytes(), min_quality=0)] == [
            0,
            1,
            2,
            3,
            4,
            5,
        ]
        assert [m.record_id for m in ds.near(h[0].tobytes(), min_quality=100)] == [
            4,
            5,
        ]
        assert ds.near(h[0].tobytes())[0].quality == 50
        for bad in (-1, 101):
            with pytest.raises(ValueError, match="min_quality"):
                ds.near(h[0].tobytes(), min_quality=bad)


def test_quality_defaults_to_100_without_a_column(tmp_path):
    h = np.random.default_rng(5).integers(0, 256, (3, 32), dtype=np.uint8)
    with hashlookup.open_dataset(build(tmp_path, h)) as ds:
        assert [m.quality for m in ds.near(h[1].tobytes(), 0)] == [100]


def test_label_filters_and_suppress(tmp_path):
    h = np.random.default_rng(6).integers(0, 256, (4, 32), dtype=np.uint8)
    h[:] = h[0]
    path = build(tmp_path, h, labels=["a", "b", "a", "c"])
    with hashlookup.open_dataset(path) as ds:
        q = h[0].tobytes()
        assert [m.record_id for m in ds.near(q, only="category:a")] == [0, 2]
        assert [m.record_id for m in ds.near(q, exclude="category:a")] == [1, 3]
        hits = ds.near_many([q, q], exclude=["category:a", "category:c"])
        assert hits.query.tolist() == [0, 1] and hits.record_id.tolist() == [1, 1]
    with hashlookup.open_dataset(path, suppress=["category:b"]) as ds:
        assert [m.record_id for m in ds.near(q)] == [0, 2, 3]
        assert ds.near_many([q]).record_id.tolist() == [0, 2, 3]


@settings(deadline=None, max_examples=20)
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    max_distance=st.integers(0, 90),
    min_quality=st.integers(0, 100),
    flips=st.lists(st.integers(0, 70), min_size=1, max_size=6),
)
def test_property_against_brute_force(
    tmp_path_factory, n, seed, max_distance, min_quality, flips
):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    # Hashes clustered around three seeds so that every radius has hits.
    hashes = np.stack(
        [flip(base[i % 3], int(rng.integers(0, 80)), rng) for i in range(n)]
    )
    quality = rng.integers(0, 101, n).astype(np.uint8)
    path = build(tmp_path_factory.mktemp("prop"), hashes, quality)
    queries = np.stack([flip(base[i % 3], f, rng) for i, f in enumerate(flips)])
    with hashlookup.open_dataset(path) as ds:
        got = ds.near_many(queries, max_distance, min_quality=min_quality)
    want = oracle(queries, hashes, quality, max_distance, min_quality)
    assert np.array_equal(got.query, want[0])
    assert np.array_equal(got.record_id, want[1])
    assert np.array_equal(got.distance, want[2])


def test_bad_queries_are_named_not_echoed(planted):
    ds = planted[0]
    secret = "ab" * 31 + "zz"
    with pytest.raises(ValueError, match="non-hex character at position 62") as e:
        ds.near(secret)
    assert secret not in str(e.value)
    with pytest.raises(ValueError, match="got a str of length 40"):
        ds.near("a" * 40)
    with pytest.raises(ValueError, match="got 16 bytes"):
        ds.near(bytes(16))
    with pytest.raises(TypeError, match="got int"):
        ds.near(12)
    with pytest.raises(ValueError, match=r"item 1\)"):
        ds.near_many(["00" * 32, "11" * 31])
    with pytest.raises(TypeError, match="got float"):
        ds.near_many([b"\0" * 32, 1.5])
    with pytest.raises(ValueError, match=r"shape \(2, 16\)"):
        ds.near_many(np.zeros((2, 16), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        ds.near_many(np.zeros((2, 32), np.int32))
    with pytest.raises(ValueError, match="max_distance"):
        ds.near(bytes(32), -1)
    with pytest.raises(TypeError, match="max_distance"):
        ds.near(bytes(32), 3.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        ds.near_many(np.zeros((200, 32), np.uint8), threads=0)


def test_files_without_pdq(tmp_path):
    md5 = tmp_path / "plain.txt"
    md5.write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    out = tmp_path / "plain.hlds"
    hashlookup.build_dataset(str(md5), out)
    with hashlookup.open_dataset(out) as ds:
        assert not ds.has_pdq
        with pytest.raises(ValueError, match="no PDQ hashes"):
            ds.near(bytes(32))
        assert ds.lookup("d41d8cd98f00b204e9800998ecf8427e") is not None
        header = ds.current().header
    assert not [s for s in header.sections if s.kind in _format.PDQ_KINDS]
    ds = hashlookup.open_dataset(out)
    ds.close()
    with pytest.raises(ValueError, match="closed"):
        ds.near(bytes(32))


def test_pdq_sections_are_optional_for_older_readers(tmp_path):
    """An older hashlookup skips the PDQ sections (not REQUIRED) and keeps
    answering digest lookups from the same file."""
    h = np.random.default_rng(10).integers(0, 256, (5, 32), dtype=np.uint8)
    path = build(tmp_path, h)
    with hashlookup.open_dataset(path) as ds:
        kinds = {s.kind: s.flags for s in ds.current().header.sections}
        assert ds.verify()["ok"]
        assert ds.info()["metadata"]["dataset"]["pdq"] == 5
    assert {k: kinds[k] for k in _format.PDQ_KINDS} == dict.fromkeys(
        _format.PDQ_KINDS, 0
    )


def test_update_carries_pdq(tmp_path):
    rng = np.random.default_rng(11)
    h = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    path = build(tmp_path, h, name="first")
    more = tmp_path / "more.txt"
    more.write_text("".join(f"{i:032x}\n" for i in range(1, 6)))
    hashlookup.update_dataset(path, add={"more": str(more)})
    with hashlookup.open_dataset(path) as ds:
        assert ds.generation == 2 and len(ds) == 35
        got = ds.near_many(h, 0)
        assert got.query.tolist() == list(range(30))
        assert np.array_equal(got.record_id, got.query)
        assert ds.verify()["ok"]


def test_records_with_several_hashes(tmp_path):
    """Rows that share an md5 are one record: its distinct PDQ hashes are
    all searched, a repeated one counts once with its best quality."""
    rng = np.random.default_rng(12)
    a, b, c = (rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in "abc")
    md5 = ["11" * 16, "22" * 16, "11" * 16, "11" * 16, "33" * 16]
    pdq = [b, c, a, b, c]
    quality = [40, 90, 70, 60, 80]
    csv = tmp_path / "multi.csv"
    csv.write_text(
        "md5,pdq,quality\n"
        + "".join(f"{m},{p},{q}\n" for m, p, q in zip(md5, pdq, quality))
    )
    hashlookup.build_dataset(str(csv), tmp_path / "multi.hlds")
    with hashlookup.open_dataset(tmp_path / "multi.hlds") as ds:
        idx = ds.current().pdq
        assert idx.record_ids.tolist() == [0, 0, 1, 2]
        rows = {
            (int(r), h.tobytes().hex(), int(q))
            for r, h, q in zip(idx.record_ids, idx.hashes, idx.quality)
        }
        assert rows == {(0, b, 60), (0, a, 70), (1, c, 90), (2, c, 80)}
        assert [(m.record_id, m.quality) for m in ds.near(c, 0)] == [(1, 90), (2, 80)]
        assert [m.pdq for m in ds.near(a, 0)] == [a]
        assert ds.verify()["ok"]


def test_pdq_lists_are_never_guessed(tmp_path):
    """64 hex characters a line is a SHA-256 list unless input_format="pdq"
    says otherwise; a dataset of PDQ lists alone has no digest table and is
    refused (PDQ lists go beside digest lists)."""
    rng = np.random.default_rng(13)
    h = rng.integers(0, 256, (5, 32), dtype=np.uint8)
    pdq = tmp_path / "shared.txt"
    pdq.write_text(
        "# PDQ hashes\n" + "".join(f"{x.tobytes().hex()}\n" for x in h) + "\n"
    )
    from hashlookup.importers import detect_format

    assert detect_format(pdq) == "text"
    out = tmp_path / "guess.hlds"
    hashlookup.build_dataset(str(pdq), out)
    with hashlookup.open_dataset(out) as ds:
        assert ds.algorithms == ("sha256",) and not ds.has_pdq
    with pytest.raises(hashlookup.InputError, match="no digests"):
        hashlookup.build_dataset(str(pdq), tmp_path / "only.hlds", input_format="pdq")


def test_pdq_list_beside_digests(tmp_path):
    rng = np.random.default_rng(14)
    h = rng.integers(0, 256, (5, 32), dtype=np.uint8)
    pdq = tmp_path / "shared.txt"
    pdq.write_text("".join(f"{x.tobytes().hex().upper()}\n" for x in h))
    csv = tmp_path / "known.csv"
    csv.write_text("md5,pdq\n" + "11" * 16 + "," + h[2].tobytes().hex() + "\n")
    out = tmp_path / "mixed.hlds"
    from hashlookup.importers import iter_records

    batches = list(iter_records(pdq, input_format="pdq"))
    assert sum(len(b) for b in batches) == 5
    assert all(not b.has_md5.any() and b.has_pdq.all() for b in batches)
    hashlookup.build_dataset({"known": str(csv)}, out)
    hashlookup.update_dataset(out, add={"shared": str(pdq)}, input_format="pdq")
    with hashlookup.open_dataset(out) as ds:
        assert len(ds) == 6 and ds.verify()["ok"]
        got = ds.near(h[2].tobytes(), 0)
        assert [(m.md5 is not None, m.labels) for m in got] == [
            (True, ("source:known",)),
            (False, ("source:shared",)),
        ]
        assert ds.record(got[1].record_id).md5 is None
        assert ds.near_many(h, 0).query.tolist() == [0, 1, 2, 2, 3, 4]


def test_bad_pdq_list_lines(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("ab" * 32 + "\n" + "cd" * 20 + "\n")
    with pytest.raises(hashlookup.InputError, match=r"bad.txt:2: .*64 hex.*\(pdq\)"):
        hashlookup.build_dataset(str(bad), tmp_path / "x.hlds", input_format="pdq")


def test_threads_share_a_dataset(planted):
    """near and near_many from several threads at once: the answers of a
    single thread (the GIL is released in the searches)."""
    import threading

    ds, _, _, queries = planted
    want = [ds.near(q.tobytes(), 40, min_quality=0) for q in queries]
    want_many = ds.near_many(queries, 40, min_quality=0, threads=1)
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        barrier.wait()
        for _ in range(3):
            for i, q in enumerate(queries):
                if ds.near(q.tobytes(), 40, min_quality=0) != want[i]:
                    errors.append(f"thread {k} query {i}")
            got = ds.near_many(queries, 40, min_quality=0, threads=2)
            if not all(np.array_equal(a, b) for a, b in zip(got, want_many)):
                errors.append(f"thread {k} batch")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_reload_answers_from_the_new_generation(tmp_path):
    rng = np.random.default_rng(15)
    h = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    path = build(tmp_path, h[:10], name="gen")
    more = tmp_path / "more.csv"
    more.write_text(
        "md5,pdq\n"
        + "".join(f"{i + 1:032x},{x.tobytes().hex()}\n" for i, x in enumerate(h[10:]))
    )
    with hashlookup.open_dataset(path) as ds:
        assert ds.near(h[15].tobytes(), 0) == []
        old = ds.current()
        hashlookup.update_dataset(path, add={"more": str(more)})
        assert ds.reload()
        assert [m.record_id for m in ds.near(h[15].tobytes(), 0)] == [15]
        assert ds.near(h[3].tobytes(), 0)[0].generation == 2
        # A generation held by a caller keeps answering from its file.
        assert old.pdq is not None and old.pdq.search_one(h[15].tobytes(), 0, 0) == []
