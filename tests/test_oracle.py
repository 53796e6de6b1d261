"""Every lookup path of HashIndex must agree with a Python set (the oracle).

Covers md5/sha1/sha256 and raw widths 1, 7, 8, 9, 16, 20, 32, 64; single lookups with
bytes/bytearray/memoryview/hex (both cases); ``find`` rows; ``contains_many`` and
``find_many`` with every documented input form, ``out=`` and ``threads=``; ``len``,
``iter`` and ``keys()``.
"""

from __future__ import annotations

import itertools
import tempfile
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hashlookup
from utils import (
    ALGO_WIDTH,
    CONFIG_IDS,
    CONFIGS,
    Oracle,
    build,
    near_misses,
    random_keys,
    run_in_subprocess,
    to_array,
    to_list,
    unique_random_keys,
)

# ---------------------------------------------------------------------------
# the checker


def _first_mismatch(got, expected, queries) -> str:
    got = list(got)
    expected = list(expected)
    if len(got) != len(expected):
        return f"length {len(got)} != {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            q = queries[i]
            return f"first mismatch at {i}: key {q.hex()} got {g!r} expected {e!r}"
    return "no mismatch"


def assert_same(got, expected, queries, what: str) -> None:
    got_l = [bool(x) if isinstance(x, (bool, np.bool_)) else int(x) for x in got]
    exp_l = [bool(x) if isinstance(x, (bool, np.bool_)) else int(x) for x in expected]
    assert got_l == exp_l, f"{what}: {_first_mismatch(got_l, exp_l, queries)}"


def check_contents(idx, oracle: Oracle, algorithm: str, width: int) -> None:
    assert idx.algorithm == algorithm
    assert idx.width == width
    assert len(idx) == len(oracle)
    assert list(iter(idx)) == oracle.sorted
    assert all(type(k) is bytes for k in idx)
    keys = idx.keys()
    assert isinstance(keys, np.ndarray)
    assert keys.dtype == np.uint8
    assert keys.shape == (len(oracle), width)
    assert not keys.flags.writeable
    assert np.array_equal(keys, to_array(oracle.sorted, width))
    del keys


def _mixed_case(h: str) -> str:
    return "".join(c.upper() if i % 3 == 1 else c for i, c in enumerate(h))


def check_single(idx, oracle: Oracle, queries: list[bytes]) -> None:
    exp_c = oracle.contains(queries)
    exp_f = oracle.find(queries)
    assert_same([q in idx for q in queries], exp_c, queries, "bytes in")
    assert_same([bytearray(q) in idx for q in queries], exp_c, queries, "bytearray in")
    assert_same(
        [memoryview(q) in idx for q in queries], exp_c, queries, "memoryview in"
    )
    assert_same([q.hex() in idx for q in queries], exp_c, queries, "hex in")
    assert_same([q.hex().upper() in idx for q in queries], exp_c, queries, "HEX in")
    assert_same(
        [_mixed_case(q.hex()) in idx for q in queries], exp_c, queries, "mIxEd hex in"
    )
    assert_same([idx.find(q) for q in queries], exp_f, queries, "find bytes")
    assert_same(
        [idx.find(bytearray(q)) for q in queries], exp_f, queries, "find bytearray"
    )
    assert_same(
        [idx.find(memoryview(q)) for q in queries], exp_f, queries, "find memoryview"
    )
    assert_same([idx.find(q.hex()) for q in queries], exp_f, queries, "find hex")
    assert_same(
        [idx.find(q.hex().upper()) for q in queries], exp_f, queries, "find HEX"
    )
    rows = [idx.find(q) for q in queries]
    assert all(type(r) is int for r in rows)
    if len(oracle):
        keys = idx.keys()
        for q, r in zip(queries, rows):
            if r >= 0:
                assert keys[r].tobytes() == q
        del keys


def batch_forms(queries: list[bytes], width: int):
    """(name, object) for every documented batch input form of the same queries."""
    n = len(queries)
    arr = to_array(queries, width)
    flat = arr.tobytes()
    wide = np.zeros((n, width + 5), dtype=np.uint8)
    wide[:, 2 : 2 + width] = arr
    doubled = np.zeros((2 * n, width), dtype=np.uint8)
    doubled[::2] = arr
    doubled[1::2] = 0xA5
    ro = arr.copy()
    ro.setflags(write=False)
    mixed = []
    for i, q in enumerate(queries):
        mixed.append((q, q.hex(), q.hex().upper())[i % 3])
    return [
        ("array", arr),
        ("array_readonly", ro),
        ("array_column_slice", wide[:, 2 : 2 + width]),
        ("array_row_stride", doubled[::2]),
        ("array_fortran", np.asfortranarray(arr)),
        ("array_reversed_view", arr[::-1].copy()[::-1]),
        ("flat_bytes", flat),
        ("flat_bytearray", bytearray(flat)),
        ("flat_memoryview", memoryview(flat)),
        ("flat_1d_array", np.frombuffer(flat, dtype=np.uint8)),
        ("list_bytes", list(queries)),
        ("tuple_bytes", tuple(queries)),
        ("iter_bytes", iter(list(queries))),
        ("list_hex", [q.hex() for q in queries]),
        ("list_HEX", [q.hex().upper() for q in queries]),
        ("list_mixed", mixed),
    ]


def check_batch(idx, oracle: Oracle, queries: list[bytes], width: int) -> None:
    exp_c = oracle.contains(queries)
    exp_f = oracle.find(queries)
    n = len(queries)
    for name, form in batch_forms(queries, width):
        c = idx.contains_many(form)
        assert isinstance(c, np.ndarray) and c.dtype == np.bool_, name
        assert c.shape == (n,), name
        assert_same(c, exp_c, queries, f"contains_many[{name}]")
    for name, form in batch_forms(queries, width):
        f = idx.find_many(form)
        assert isinstance(f, np.ndarray) and f.dtype == np.int64, name
        assert f.shape == (n,), name
        assert_same(f, exp_f, queries, f"find_many[{name}]")

    arr = to_array(queries, width)
    # out=
    out_c = np.ones(n, dtype=bool) if n % 2 else np.zeros(n, dtype=bool)
    res = idx.contains_many(arr, out=out_c)
    assert_same(out_c, exp_c, queries, "contains_many out=")
    assert_same(res, exp_c, queries, "contains_many out= (returned)")
    out_f = np.full(n, 12345, dtype=np.int64)
    res = idx.find_many(arr, out=out_f)
    assert_same(out_f, exp_f, queries, "find_many out=")
    assert_same(res, exp_f, queries, "find_many out= (returned)")
    # out= as a slice of a larger array: the neighbours must stay untouched
    big_c = np.ones(n + 2, dtype=bool)
    big_f = np.full(n + 2, 99, dtype=np.int64)
    idx.contains_many(arr, out=big_c[1 : n + 1])
    idx.find_many(arr, out=big_f[1 : n + 1])
    assert big_c[0] and big_c[-1] and big_f[0] == 99 and big_f[-1] == 99
    assert_same(big_c[1 : n + 1], exp_c, queries, "contains_many out=slice")
    assert_same(big_f[1 : n + 1], exp_f, queries, "find_many out=slice")
    out_c2 = np.zeros(n, dtype=bool)
    idx.contains_many([q.hex() for q in queries], out=out_c2)
    assert_same(out_c2, exp_c, queries, "contains_many list out=")
    # threads
    for threads in (2, 0):
        assert_same(
            idx.contains_many(arr, threads=threads),
            exp_c,
            queries,
            f"contains_many threads={threads}",
        )
        assert_same(
            idx.find_many(arr, threads=threads),
            exp_f,
            queries,
            f"find_many threads={threads}",
        )
    out_f2 = np.zeros(n, dtype=np.int64)
    idx.find_many(arr.tobytes(), out=out_f2, threads=2)
    assert_same(out_f2, exp_f, queries, "find_many flat out= threads=2")


def check_everything(path, input_keys, queries, algorithm, width) -> None:
    oracle = Oracle(input_keys)
    with hashlookup.open_index(path) as idx:
        check_contents(idx, oracle, algorithm, width)
        check_single(idx, oracle, queries)
        check_batch(idx, oracle, queries, width)


def make_queries(keys: list[bytes], width: int, rng, n_members, n_random, n_near):
    uniq = sorted(set(keys))
    q: list[bytes] = []
    if uniq:
        q += [uniq[int(i)] for i in rng.integers(0, len(uniq), size=n_members)]
    q += to_list(random_keys(n_random, width, int(rng.integers(2**32))))
    q += near_misses(uniq, rng, n_near)
    q += [b"\x00" * width, b"\xff" * width]
    order = rng.permutation(len(q))
    return [q[int(i)] for i in order]


# ---------------------------------------------------------------------------
# hypothesis: random key sets of many shapes


@st.composite
def key_lists(draw, width: int) -> list[bytes]:
    mode = draw(
        st.sampled_from(["random", "hypothesis", "prefix", "neighbors", "extremes"])
    )
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "random":
        n = draw(st.integers(0, 400))
        keys = to_list(random_keys(n, width, seed))
    elif mode == "hypothesis":
        keys = draw(st.lists(st.binary(min_size=width, max_size=width), max_size=40))
    elif mode == "prefix":
        # many keys sharing a long common prefix, suffix from a small alphabet
        n = draw(st.integers(1, 300))
        p = draw(st.integers(0, width - 1))
        alphabet = draw(st.sampled_from([[0, 255], [0, 1, 255], list(range(256))]))
        prefix = rng.integers(0, 256, size=p, dtype=np.uint8).tobytes()
        suffixes = rng.choice(np.array(alphabet, dtype=np.uint8), size=(n, width - p))
        keys = [prefix + s.tobytes() for s in suffixes]
    elif mode == "neighbors":
        # consecutive big-endian integers: keys adjacent in memcmp order
        n = draw(st.integers(1, 300))
        step = draw(st.integers(1, 3))
        base = int.from_bytes(rng.bytes(width), "big")
        mod = 1 << (8 * width)
        keys = [((base + i * step) % mod).to_bytes(width, "big") for i in range(n)]
    else:
        keys = [b"\x00" * width, b"\xff" * width]
        if width > 1:
            keys += [b"\x00" * (width - 1) + b"\x01", b"\xff" * (width - 1) + b"\xfe"]
        keys += to_list(random_keys(draw(st.integers(0, 20)), width, seed))
        keys = [k for k in keys if draw(st.booleans())] or keys[:1]
    if keys and draw(st.booleans()):
        extra = rng.integers(0, len(keys), size=draw(st.integers(1, 30)))
        keys = keys + [keys[int(i)] for i in extra]
        keys = [keys[int(i)] for i in rng.permutation(len(keys))]
    return keys


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
@given(data=st.data())
def test_oracle_property(cfg, data, tmp_path_factory):
    algorithm, width = cfg
    keys = data.draw(key_lists(width), label="keys")
    source_form = data.draw(
        st.sampled_from(
            ["bytes", "array"]
            if algorithm == "raw"
            else ["bytes", "array", "hex", "HEX"]
        ),
        label="source_form",
    )
    qseed = data.draw(st.integers(0, 2**32 - 1), label="query_seed")
    rng = np.random.default_rng(qseed)
    queries = make_queries(
        keys,
        width,
        rng,
        n_members=data.draw(st.integers(0, 60), label="members"),
        n_random=data.draw(st.integers(0, 60), label="random"),
        n_near=data.draw(st.integers(0, 60), label="near"),
    )
    if source_form == "array":
        source = to_array(keys, width)
    elif source_form == "hex":
        source = [k.hex() for k in keys]
    elif source_form == "HEX":
        source = [k.hex().upper() for k in keys]
    else:
        source = list(keys)
    # mostly the default Bloom filter (8 probes: the width-specialised kernels);
    # sometimes none or another probe count (the generic kernel)
    bloom = data.draw(
        st.sampled_from(
            [
                {},
                {},
                {"bloom_bits_per_key": 0},
                {"bloom_bits_per_key": 3, "bloom_hashes": 1},
                {"bloom_hashes": 5},
            ]
        ),
        label="bloom",
    )
    # the first-level filter: default ("auto": 4 bits per key, 2 probes per
    # word, the specialised kernels, only without a Bloom filter), none,
    # explicit 4 (beside a Bloom filter too), or tiny (most misses pass it)
    prefilter = data.draw(
        st.sampled_from(
            [
                {},
                {"prefilter_bits_per_key": 0},
                {"prefilter_bits_per_key": 4},
                {"prefilter_bits_per_key": 0.5},
            ]
        ),
        label="prefilter",
    )
    base = tmp_path_factory.getbasetemp()
    with tempfile.TemporaryDirectory(dir=base) as d:
        path = build(d, source, algorithm=algorithm, width=width, **bloom, **prefilter)
        bits = prefilter.get(
            "prefilter_bits_per_key", 4 if bloom.get("bloom_bits_per_key") == 0 else 0
        )
        with hashlookup.open_index(path) as idx:
            assert (idx.info()["prefilter"] is not None) == (bits > 0 and len(keys) > 0)
        check_everything(path, keys, queries, algorithm, width)


# ---------------------------------------------------------------------------
# explicit edge cases, for every configuration


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_empty_index(cfg, tmp_path):
    algorithm, width = cfg
    path = build(tmp_path, [], algorithm=algorithm, width=width)
    queries = to_list(random_keys(50, width, 1)) + [b"\x00" * width, b"\xff" * width]
    with hashlookup.open_index(path) as idx:
        assert len(idx) == 0
        assert list(idx) == []
        assert idx.keys().shape == (0, width)
        assert idx.algorithm == algorithm and idx.width == width
        for q in queries:
            assert q not in idx
            assert q.hex() not in idx
            assert idx.find(q) == -1
        for empty in (np.empty((0, width), np.uint8), b"", [], ()):
            c = idx.contains_many(empty)
            assert c.dtype == np.bool_ and c.shape == (0,)
            f = idx.find_many(empty)
            assert f.dtype == np.int64 and f.shape == (0,)
        assert not idx.contains_many(to_array(queries, width)).any()
        assert (idx.find_many(queries) == -1).all()
        assert (idx.find_many(to_array(queries, width), threads=2) == -1).all()
        idx.verify()


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_zero_queries_on_nonempty_index(cfg, tmp_path):
    algorithm, width = cfg
    path = build(
        tmp_path, to_list(random_keys(10, width, 2)), algorithm=algorithm, width=width
    )
    with hashlookup.open_index(path) as idx:
        for empty in (np.empty((0, width), np.uint8), b"", [], iter([])):
            assert idx.contains_many(empty).shape == (0,)
        assert idx.find_many(np.empty((0, width), np.uint8), threads=2).shape == (0,)
        assert idx.contains_many([], out=np.empty(0, bool)).shape == (0,)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_one_key(cfg, tmp_path):
    algorithm, width = cfg
    key = bytes(random_keys(1, width, 3)[0])
    path = build(tmp_path, [key], algorithm=algorithm, width=width)
    rng = np.random.default_rng(3)
    queries = [key] + near_misses([key], rng, 40) + [b"\x00" * width, b"\xff" * width]
    check_everything(path, [key], queries, algorithm, width)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_keys_differing_in_last_byte(cfg, tmp_path):
    algorithm, width = cfg
    prefix = bytes(random_keys(1, width, 4)[0])[:-1]
    every = [prefix + bytes([b]) for b in range(256)]
    keys = every[::2]  # even last bytes present, odd ones are near misses
    other = bytes([(prefix[0] + 1) & 0xFF]) + prefix[1:] if prefix else b""
    queries = every + (
        [other + bytes([b]) for b in range(0, 256, 7)] if width > 1 else []
    )
    path = build(tmp_path, keys, algorithm=algorithm, width=width)
    check_everything(path, keys, queries, algorithm, width)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_all_zero_and_all_ff_keys(cfg, tmp_path):
    algorithm, width = cfg
    z, f = b"\x00" * width, b"\xff" * width
    rng = np.random.default_rng(5)
    probes = [z, f] + near_misses([z, f], rng, 30) + to_list(random_keys(30, width, 5))
    for i, keys in enumerate(
        ([z], [f], [z, f], [z, f] + to_list(random_keys(100, width, 6)))
    ):
        path = build(tmp_path, keys, algorithm=algorithm, width=width, name=f"x{i}.hlx")
        check_everything(path, keys, probes + keys, algorithm, width)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_long_common_prefix(cfg, tmp_path):
    """Keys whose first 8+ bytes are all equal: all fall in one locator bucket."""
    algorithm, width = cfg
    p = min(max(8, width - 4), width - 1)
    rng = np.random.default_rng(7)
    prefix = rng.integers(0, 256, size=p, dtype=np.uint8).tobytes()
    n = min(3000, 256 ** (width - p))
    suffixes = unique_random_keys(n, width - p, 8)
    keys = [prefix + s.tobytes() for s in suffixes]
    # half of them plus a few random keys; the other half: misses, same prefix
    present = keys[::2] + to_list(random_keys(50, width, 9))
    queries = (
        keys + near_misses(present, rng, 200) + to_list(random_keys(100, width, 10))
    )
    path = build(tmp_path, present, algorithm=algorithm, width=width)
    check_everything(path, present, queries, algorithm, width)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_two_dense_clusters(cfg, tmp_path):
    """Two clusters of keys with long shared prefixes plus sparse random keys."""
    algorithm, width = cfg
    if width < 3:
        pytest.skip("needs room for two prefixes")
    p = min(8, width - 2)
    keys = []
    for c, seed in ((0x10, 11), (0xEF, 12)):
        prefix = bytes([c]) * p
        keys += [
            prefix + s.tobytes() for s in unique_random_keys(1500, width - p, seed)
        ]
    keys += to_list(random_keys(200, width, 13))
    present = keys[::3]
    rng = np.random.default_rng(14)
    queries = keys + near_misses(present, rng, 300)
    path = build(tmp_path, present, algorithm=algorithm, width=width)
    check_everything(path, present, queries, algorithm, width)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_duplicate_input_keys(cfg, tmp_path):
    algorithm, width = cfg
    base = to_list(unique_random_keys(50 if width > 1 else 40, width, 15))
    keys = base * 3 + base[:7]
    rng = np.random.default_rng(15)
    keys = [keys[int(i)] for i in rng.permutation(len(keys))]
    path = tmp_path / "dups.hlx"
    report = hashlookup.build_index(
        keys,
        str(path),
        algorithm=algorithm,
        **({"width": width} if algorithm == "raw" else {}),
    )
    assert report.input_keys == len(keys)
    assert report.unique_keys == len(base)
    assert report.duplicates == len(keys) - len(base)
    check_everything(path, keys, base + near_misses(base, rng, 50), algorithm, width)


def test_raw_width1_full_table(tmp_path):
    """All 256 one-byte keys: every query is a hit."""
    keys = [bytes([b]) for b in range(256)][::-1]
    path = build(tmp_path, keys, algorithm="raw", width=1)
    check_everything(path, keys, [bytes([b]) for b in range(256)], "raw", 1)


@pytest.mark.parametrize("algorithm", list(ALGO_WIDTH))
def test_hex_case_in_input(algorithm, tmp_path):
    width = ALGO_WIDTH[algorithm]
    keys = to_list(unique_random_keys(30, width, 16))
    source = []
    for i, k in enumerate(keys):
        h = k.hex()
        source.append(h.upper() if i % 3 == 0 else h)
        if i % 4 == 0:
            source.append(h.upper() if i % 3 else h)  # same key, other case
        if i % 5 == 0:
            # mixed case inside one digest
            source.append("".join(c.upper() if j % 2 else c for j, c in enumerate(h)))
    path = tmp_path / "case.hlx"
    report = hashlookup.build_index(source, str(path))
    assert report.algorithm == algorithm
    assert report.unique_keys == len(keys)
    assert report.duplicates == len(source) - len(keys)
    rng = np.random.default_rng(16)
    check_everything(path, keys, keys + near_misses(keys, rng, 30), algorithm, width)


@pytest.mark.parametrize(
    "bits,hashes", [(0, 1), (0.5, 2), (1, 1), (2, 1), (4, 3), (12, 8), (32, 16)]
)
def test_bloom_parameters_do_not_change_answers(bits, hashes, tmp_path):
    """A tiny or huge Bloom filter only changes speed, never answers."""
    keys = to_list(random_keys(3000, 16, 17))
    rng = np.random.default_rng(17)
    queries = (
        keys[::5] + to_list(random_keys(2000, 16, 18)) + near_misses(keys, rng, 500)
    )
    path = build(
        tmp_path, keys, algorithm="md5", bloom_bits_per_key=bits, bloom_hashes=hashes
    )
    oracle = Oracle(keys)
    with hashlookup.open_index(path) as idx:
        assert len(idx) == len(oracle)
        assert_same(
            [q in idx for q in queries], oracle.contains(queries), queries, "in"
        )
        assert_same(
            idx.contains_many(queries), oracle.contains(queries), queries, "many"
        )
        assert_same(
            idx.find_many(to_array(queries, 16)),
            oracle.find(queries),
            queries,
            "find_many",
        )
        idx.verify()


# ---------------------------------------------------------------------------
# scale


def test_large_md5(tmp_path):
    """200k md5 keys, 200k queries with about 1% hits: batch and single paths."""
    n = 200_000
    keys = random_keys(n, 16, 100)
    path = build(tmp_path, keys, algorithm="md5")
    rng = np.random.default_rng(101)
    queries = random_keys(n, 16, 102)
    hit_rows = rng.choice(n, size=n // 100, replace=False)
    at = rng.choice(n, size=n // 100, replace=False)
    queries[at] = keys[hit_rows]
    key_list = to_list(keys)
    q_list = to_list(queries)
    oracle = Oracle(key_list)
    exp_c = oracle.contains(q_list)
    exp_f = oracle.find(q_list)
    assert exp_c.sum() >= n // 100
    with hashlookup.open_index(path) as idx:
        assert len(idx) == len(oracle)
        sorted_arr = idx.keys()
        assert np.array_equal(sorted_arr, to_array(oracle.sorted, 16))
        del sorted_arr
        for threads in (1, 2, 0):
            c = idx.contains_many(queries, threads=threads)
            assert np.array_equal(c, exp_c), f"contains_many threads={threads}"
            f = idx.find_many(queries, threads=threads)
            assert np.array_equal(f, exp_f), f"find_many threads={threads}"
        assert np.array_equal(idx.contains_many(queries.tobytes()), exp_c)
        assert np.array_equal(idx.find_many(q_list[:20000]), exp_f[:20000])
        single = np.fromiter((q in idx for q in q_list), dtype=bool, count=n)
        assert np.array_equal(single, exp_c)
        hits = [q for q, c in zip(q_list, exp_c) if c]
        assert [idx.find(q) for q in hits] == [oracle.rows[q] for q in hits]
        assert all(q.hex() in idx for q in hits[:500])
        # every key of the index finds its own row
        assert np.array_equal(
            idx.find_many(to_array(oracle.sorted, 16)),
            np.arange(len(oracle), dtype=np.int64),
        )


def test_concurrent_lookups_from_threads(tmp_path):
    """Lookups from several Python threads at once on one open index."""
    keys = random_keys(20000, 20, 110)
    path = build(tmp_path, keys, algorithm="sha1")
    queries = np.concatenate([keys[::4], random_keys(15000, 20, 111)])
    q_list = to_list(queries)
    oracle = Oracle(to_list(keys))
    exp_c = oracle.contains(q_list)
    exp_f = oracle.find(q_list)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)
    with hashlookup.open_index(path) as idx:

        def worker(k: int) -> None:
            try:
                barrier.wait()
                for _ in range(3):
                    if k % 2:
                        assert np.array_equal(
                            idx.contains_many(queries, threads=2), exp_c
                        )
                    else:
                        assert np.array_equal(idx.find_many(queries), exp_f)
                    sample = q_list[k::50]
                    assert [q in idx for q in sample] == list(exp_c[k::50])
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors


# ---------------------------------------------------------------------------
# opening and introspection


def test_open_forms(tmp_path):
    keys = to_list(random_keys(100, 16, 120))
    path = build(tmp_path, keys, algorithm="md5")
    for opener in (hashlookup.open_index, hashlookup.HashIndex.open):
        for p in (path, str(path)):
            with opener(p) as idx:
                assert isinstance(idx, hashlookup.HashIndex)
                assert idx.path == str(path)
                assert len(idx) == len(set(keys))
                assert keys[0] in idx
    # the same file opened twice at once
    a = hashlookup.open_index(path)
    b = hashlookup.open_index(path)
    try:
        assert np.array_equal(a.contains_many(keys), b.contains_many(keys))
    finally:
        a.close()
        b.close()


def test_info_sections_are_sane(tmp_path):
    keys = random_keys(5000, 16, 130)
    path = build(tmp_path, keys, algorithm="md5")
    size = path.stat().st_size
    with hashlookup.open_index(path) as idx:
        info = idx.info()
        idx.verify()
    assert isinstance(info, dict)
    assert 0 < info["header_size"] <= size
    sections = info["sections"]
    assert sections, "an index has sections"
    spans = []
    for s in sections:
        assert {"kind", "offset", "length"} <= set(s)
        assert isinstance(s["kind"], str) and s["kind"]
        assert s["offset"] >= 0 and s["length"] >= 0
        assert s["offset"] + s["length"] <= size, s
        spans.append((s["offset"], s["offset"] + s["length"]))
    spans.sort()
    for (_a0, a1), (b0, _b1) in itertools.pairwise(spans):
        assert a1 <= b0, f"sections overlap: {spans}"
    kinds = " ".join(s["kind"].lower() for s in sections)
    assert "key" in kinds


def test_keys_array_is_read_only(tmp_path):
    keys = random_keys(100, 16, 140)
    path = build(tmp_path, keys, algorithm="md5")
    with hashlookup.open_index(path) as idx:
        arr = idx.keys()
        with pytest.raises(ValueError):
            arr[0, 0] = 1
        with pytest.raises(ValueError):
            arr.setflags(write=True)
        del arr


@pytest.mark.parametrize("width", [7, 16, 33])
def test_batches_split_over_threads(width, tmp_path):
    """Batches large enough to be split over threads, with an odd size, in every
    input form and with out=."""
    keys = random_keys(50_000, width, 150)
    path = build(tmp_path, keys, algorithm="raw", width=width)
    n = 3 * 32768 + 7
    rng = np.random.default_rng(151)
    queries = random_keys(n, width, 152)
    at = rng.choice(n, size=n // 3, replace=False)
    queries[at] = keys[rng.integers(0, len(keys), size=len(at))]
    q_list = to_list(queries)
    oracle = Oracle(to_list(keys))
    exp_c = oracle.contains(q_list)
    exp_f = oracle.find(q_list)
    forms = {
        "array": queries,
        "column_slice": np.pad(queries, ((0, 0), (1, 2)))[:, 1 : 1 + width],
        "flat_bytes": queries.tobytes(),
        "memoryview": memoryview(queries.tobytes()),
        "list_bytes": q_list,
        "list_hex": [q.hex() for q in q_list[:40000]],
    }
    with hashlookup.open_index(path) as idx:
        for threads in (2, 3, 0, 16):
            for name, form in forms.items():
                m = 40000 if name == "list_hex" else n
                c = idx.contains_many(form, threads=threads)
                assert np.array_equal(c, exp_c[:m]), (name, threads)
                f = idx.find_many(form, threads=threads)
                assert np.array_equal(f, exp_f[:m]), (name, threads)
            out_c = np.zeros(n, dtype=bool)
            out_f = np.full(n, 7, dtype=np.int64)
            idx.contains_many(queries, out=out_c, threads=threads)
            idx.find_many(queries, out=out_f, threads=threads)
            assert np.array_equal(out_c, exp_c) and np.array_equal(out_f, exp_f)


def test_batch_threads_in_forked_child(tmp_path):
    """A worker process forked after the parent used threads= (gunicorn --preload,
    multiprocessing 'fork') must still be able to run threaded batches: a thread
    pool inherited across fork() has no threads and would wait forever."""
    keys = random_keys(100_000, 16, 160)
    path = build(tmp_path, keys, algorithm="md5")
    code = f"""
        import os, signal
        import numpy as np
        import hashlookup
        rng = np.random.default_rng(161)
        keys = rng.integers(0, 256, (100_000, 16), dtype=np.uint8)
        idx = hashlookup.open_index({str(path)!r})
        q = np.concatenate([idx.keys()[:50_000], keys])
        expected = idx.contains_many(q, threads=1)
        assert np.array_equal(idx.contains_many(q, threads=2), expected)
        pid = os.fork()
        if pid == 0:
            signal.alarm(10)   # a hang becomes SIGALRM (exit status 14)
            try:
                ok = np.array_equal(idx.contains_many(q, threads=2), expected)
                ok = ok and np.array_equal(idx.find_many(q, threads=0) >= 0, expected)
                with hashlookup.open_index({str(path)!r}) as idx2:
                    c2 = idx2.contains_many(q, threads=2)
                    ok = ok and np.array_equal(c2, expected)
            except BaseException as e:
                print("child error", repr(e), flush=True)
                os._exit(3)
            os._exit(0 if ok else 4)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print("child killed by signal", os.WTERMSIG(status))
        else:
            print("child exit", os.WEXITSTATUS(status))
    """
    rc, out, err = run_in_subprocess(code, timeout=120)
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == "child exit 0", out + err


def test_close_while_batch_runs_in_other_thread(tmp_path):
    """close() from one thread while another thread is inside a long batch lookup
    (GIL released): close() must refuse (BufferError) or wait; never unmap under
    the running kernel.  Several rounds, closing at different moments."""
    keys = random_keys(200_000, 16, 170)
    path = build(tmp_path, keys, algorithm="md5")
    code = f"""
        import threading, time
        import numpy as np
        import hashlookup
        rng = np.random.default_rng(171)
        q = rng.integers(0, 256, (2_000_000, 16), dtype=np.uint8)
        with hashlookup.open_index({str(path)!r}) as idx:
            q[:200_000:2] = idx.keys()[::2]
            expected = idx.contains_many(q)
        refused_total = 0
        completed = 0
        for r in range(12):
            idx = hashlookup.open_index({str(path)!r})
            started = threading.Event()
            out = []

            def lookups():
                started.set()
                try:
                    out.append(np.array_equal(
                        idx.contains_many(q, threads=1 + r % 2), expected))
                except ValueError as e:
                    assert "closed" in str(e), e

            t = threading.Thread(target=lookups)
            t.start()
            started.wait()
            time.sleep(0.002 * r)
            deadline = time.time() + 30
            while True:
                try:
                    idx.close()
                    break
                except BufferError:
                    refused_total += 1
                    time.sleep(0.001)
                assert time.time() < deadline
            t.join()
            assert all(out), r
            completed += len(out)
        print("ok", refused_total, completed)
    """
    rc, out, err = run_in_subprocess(code, timeout=120)
    assert rc == 0, err
    assert out.startswith("ok"), out + err


@pytest.mark.parametrize("width", [2, 3])
def test_dense_small_widths(width, tmp_path):
    """Narrow raw keys with heavy duplication: the builder's sort/dedupe and the
    locator on a nearly full key space."""
    keys = random_keys(120_000, width, 180)
    key_list = to_list(keys)
    oracle = Oracle(key_list)
    path = tmp_path / "dense.hlx"
    r = hashlookup.build_index(keys, str(path), algorithm="raw", width=width)
    assert r.unique_keys == len(oracle)
    assert r.duplicates == len(key_list) - len(oracle)
    if width == 2:
        queries = [i.to_bytes(2, "big") for i in range(65536)]
    else:
        queries = key_list[:5000] + to_list(random_keys(20_000, width, 181))
    with hashlookup.open_index(path) as idx:
        assert np.array_equal(idx.keys(), to_array(oracle.sorted, width))
        assert np.array_equal(idx.contains_many(queries), oracle.contains(queries))
        assert np.array_equal(idx.find_many(queries), oracle.find(queries))
        assert [q in idx for q in queries[:3000]] == list(
            oracle.contains(queries[:3000])
        )
        idx.verify()


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_massive_duplicates(algorithm, tmp_path):
    """Tens of thousands of copies of a few keys (and of one key)."""
    width = ALGO_WIDTH[algorithm]
    few = to_list(unique_random_keys(5, width, 190))
    rng = np.random.default_rng(191)
    keys = [few[int(i)] for i in rng.integers(0, 5, size=60_000)]
    r = hashlookup.build_index(keys, str(tmp_path / "a.hlx"))
    assert (r.input_keys, r.unique_keys, r.duplicates) == (60_000, 5, 59_995)
    r = hashlookup.build_index(
        to_array([few[0]] * 50_000, width), str(tmp_path / "b.hlx")
    )
    assert r.unique_keys == 1
    with (
        hashlookup.open_index(tmp_path / "a.hlx") as a,
        hashlookup.open_index(tmp_path / "b.hlx") as b,
    ):
        assert list(a) == sorted(few)
        assert list(b) == [few[0]]
        assert a.contains_many(few).all() and b.contains_many(few).tolist() == [
            True,
            False,
            False,
            False,
            False,
        ]


@pytest.mark.parametrize(
    "algorithm,width,bloom",
    [
        ("md5", 16, {}),
        ("md5", 16, {"bloom_bits_per_key": 0}),
        ("sha1", 20, {"bloom_hashes": 3}),
        ("raw", 7, {}),
        ("raw", 64, {"bloom_bits_per_key": 0}),
    ],
    ids=["md5", "md5-nobloom", "sha1-k3", "raw7", "raw64-nobloom"],
)
def test_batch_size_sweep(algorithm, width, bloom, tmp_path):
    """Every batch size from 0 to 100 and around multiples of the kernels' group
    size: the pipelined kernel's head and tail, with out= slices guarded by
    sentinels on both sides."""
    keys = to_list(unique_random_keys(2000, width, 200))
    path = build(tmp_path, keys, algorithm=algorithm, width=width, **bloom)
    oracle = Oracle(keys)
    rng = np.random.default_rng(201)
    pool = keys[:600] + to_list(random_keys(600, width, 202))
    pool = [pool[int(i)] for i in rng.permutation(len(pool))]
    sizes = list(range(101)) + [
        g * m + d for g in (16, 32, 64) for m in (3, 7) for d in (-1, 0, 1)
    ]
    with hashlookup.open_index(path) as idx:
        for n in sizes:
            q = pool[:n]
            exp_c, exp_f = oracle.contains(q), oracle.find(q)
            arr = to_array(q, width)
            c = np.full(n + 2, True)
            f = np.full(n + 2, -7, dtype=np.int64)
            idx.contains_many(arr, out=c[1 : n + 1])
            idx.find_many(arr, out=f[1 : n + 1])
            assert c[0] and c[-1] and f[0] == -7 and f[-1] == -7, n
            assert np.array_equal(c[1 : n + 1], exp_c), n
            assert np.array_equal(f[1 : n + 1], exp_f), n
            assert np.array_equal(idx.contains_many(q), exp_c), n
