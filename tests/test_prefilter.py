"""The first-level filter ("prefilter" section, docs/FORMAT.md): built by
default only in tables without a Bloom filter (an explicit size anywhere),
optional in the format (files without it, and readers that skip it,
answer the same), validated on open, checked by verify(), built from chunks
in any order, and never changing an answer (checked against a set for the
single, hex, find and batch paths, with and without the Bloom filter)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import hashlookup
from hashlookup.builders.prefilter import PrefilterBuilder
from hashlookup.errors import IndexFormatError
from hashlookup.store import format as _format
from utils import Oracle, build, near_misses, random_keys, to_array, to_list


def _sections(path) -> dict[str, dict]:
    with hashlookup.open_index(path) as idx:
        return {s["kind"]: s for s in idx.info()["sections"]}


def _check_answers(path, keys: list[bytes], queries: list[bytes], width: int) -> None:
    oracle = Oracle(keys)
    want = oracle.contains(queries).tolist()
    rows = oracle.find(queries).tolist()
    with hashlookup.open_index(path) as idx:
        assert [q in idx for q in queries] == want, "`in` (bytes)"
        assert [q.hex() in idx for q in queries] == want, "`in` (hex)"
        assert [bytearray(q) in idx for q in queries] == want, "`in` (bytearray)"
        assert [idx.find(q) for q in queries] == rows, "find"
        assert idx.contains_many(queries).tolist() == want, "contains_many"
        arr = to_array(queries, width)
        assert idx.find_many(arr).tolist() == rows, "find_many"
        assert idx.find_many(arr, threads=2).tolist() == rows, "find_many threads"
        idx.verify()


@pytest.mark.parametrize(
    ("bloom", "bits", "built"),
    [
        (12, None, False),  # the default: nothing beside a Bloom filter
        (0, None, True),  # auto: the only filter lookups read
        (12, 4, True),  # an explicit size is kept
        (0, 0, False),
        (12, 0, False),
    ],
)
def test_auto_default_and_described(tmp_path, bloom, bits, built):
    """None ("auto", the default) builds the filter only in a table without a
    Bloom filter, the only tables whose lookups probe it; a number is kept.
    info() and the metadata report what was built; answers match a set."""
    keys = to_list(random_keys(20_000, 16, 1))
    queries = keys[::11] + to_list(random_keys(3000, 16, 12))
    kw = {} if bits is None else {"prefilter_bits_per_key": bits}
    if bloom != 12:
        kw["bloom_bits_per_key"] = bloom
    path = build(tmp_path, keys, algorithm="md5", **kw)
    assert ("prefilter" in _sections(path)) == built
    with hashlookup.open_index(path) as idx:
        info = idx.info()
        pre = info["prefilter"]
        meta = info["metadata"]["build"]["prefilter_bits_per_key"]
        if not built:
            assert pre is None and meta == 0
        else:
            assert pre is not None and pre["hashes"] == 2
            assert pre["bits_per_key"] == pytest.approx(4.0, abs=0.01)
            assert meta == pytest.approx(4.0, abs=0.01)
            if bloom:
                assert pre["seed"] == info["bloom"]["seed"]  # one hash per lookup
            sec = {s["kind"]: s for s in info["sections"]}["prefilter"]
            # optional: readers that do not know it skip it
            assert not sec["required"]
            assert sec["kind_id"] == _format.KIND_PREFILTER
    _check_answers(path, keys, queries, 16)


def test_prefilter_bits_for():
    from hashlookup.builders.prefilter import (
        DEFAULT_PREFILTER_BITS_PER_KEY,
        prefilter_bits_for,
    )

    assert prefilter_bits_for(None, 0) == DEFAULT_PREFILTER_BITS_PER_KEY == 4.0
    assert prefilter_bits_for(None, 12) == 0
    assert prefilter_bits_for(None, 0.5) == 0
    assert prefilter_bits_for(0, 0) == 0
    assert prefilter_bits_for(3, 12) == 3
    assert prefilter_bits_for(4, 0) == 4


@pytest.mark.parametrize("bloom", [0, 12])
@pytest.mark.parametrize("bits", [0, 0.5, 1, 2, 4, 8])
@pytest.mark.parametrize(("algorithm", "width"), [("md5", 16), ("raw", 7)])
def test_sizes_never_change_answers(tmp_path, algorithm, width, bits, bloom):
    """Tiny, default and large filters, with and without a Bloom filter
    (without one, batches use the first-level filter too)."""
    keys = to_list(random_keys(3000, width, 2))
    rng = np.random.default_rng(3)
    queries = (
        keys[::7] + to_list(random_keys(1500, width, 4)) + near_misses(keys, rng, 500)
    )
    kw = {"width": width} if algorithm == "raw" else {}
    path = build(
        tmp_path,
        keys,
        algorithm=algorithm,
        bloom_bits_per_key=bloom,
        prefilter_bits_per_key=bits,
        **kw,
    )
    assert ("prefilter" in _sections(path)) == (bits > 0)
    _check_answers(path, keys, queries, width)


def test_edge_keys(tmp_path):
    """All-zero and all-0xff keys and one-byte neighbours, one-key tables."""
    for width, algorithm in ((16, "md5"), (20, "sha1"), (32, "sha256"), (1, "raw")):
        kw = {"width": width} if algorithm == "raw" else {}
        edge = [bytes(width), b"\xff" * width]
        for keys in (edge, edge[:1]):
            d = tmp_path / f"{algorithm}{len(keys)}"
            d.mkdir()
            path = build(d, keys, algorithm=algorithm, **kw)
            queries = edge + [bytes([1]) + bytes(width - 1), b"\xfe" * width]
            _check_answers(path, keys, queries, width)


def test_files_without_it_and_readers_that_skip_it(tmp_path):
    """Older files (no section) open unchanged; a file whose section table
    no longer lists the filter (what an older reader sees, as it skips the
    unknown kind) answers the same."""
    keys = to_list(random_keys(5000, 20, 5))
    queries = keys[::9] + to_list(random_keys(2000, 20, 6))
    old = build(tmp_path, keys, algorithm="sha1", prefilter_bits_per_key=0)
    assert "prefilter" not in _sections(old)
    with hashlookup.open_index(old) as idx:
        assert idx.info()["prefilter"] is None
    _check_answers(old, keys, queries, 20)

    new = build(
        tmp_path, keys, algorithm="sha1", name="new.hlx", prefilter_bits_per_key=4
    )
    data = bytearray(new.read_bytes())
    header = _format.read_header(memoryview(bytes(data)), len(data), str(new))
    kept = [s for s in header.sections if s.kind != _format.KIND_PREFILTER]
    assert len(kept) == len(header.sections) - 1
    head = _format.encode_header(kept, header.created_ns, header.file_size)
    data[: _format.ALIGN] = head.ljust(_format.ALIGN, b"\0")
    stripped = tmp_path / "stripped.hlx"
    stripped.write_bytes(bytes(data))
    with hashlookup.open_index(stripped) as idx:
        assert idx.info()["prefilter"] is None
    _check_answers(stripped, keys, queries, 20)


def _patched(src, dst, fn) -> None:
    """Copy src to dst with fn(data, prefilter section) applied and the header
    checksum recomputed (a crafted file)."""
    data = bytearray(src.read_bytes())
    header = _format.read_header(memoryview(bytes(data)), len(data), str(src))
    index = next(
        i for i, s in enumerate(header.sections) if s.kind == _format.KIND_PREFILTER
    )
    fn(data, header.sections[index], _format.HEADER.size + index * _format.SECTION.size)
    struct.pack_into("<Q", data, _format.HEADER_CHECKSUM_OFFSET, 0)
    checksum = _format.header_checksum(data[: header.header_size])
    struct.pack_into("<Q", data, _format.HEADER_CHECKSUM_OFFSET, checksum)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        (40, 0, "word count"),
        (40, 1 << 33, "word count"),
        (48, 0, "probes"),
        (48, 5, "probes"),
        (40, 7, "length"),
    ],
)
def test_bad_parameters_refused_on_open(tmp_path, field, value, words):
    keys = to_list(random_keys(1000, 16, 7))
    path = build(tmp_path, keys, algorithm="md5", prefilter_bits_per_key=4)

    def change(data, section, entry):
        struct.pack_into("<Q", data, entry + field, value)

    bad = tmp_path / "bad.hlx"
    _patched(path, bad, change)
    with pytest.raises(IndexFormatError, match=f"prefilter section: .*{words}"):
        hashlookup.open_index(bad)


@pytest.mark.parametrize("bloom", [0, 12])
def test_damaged_body_found_by_verify_never_crashes(tmp_path, bloom):
    """A zeroed filter (checksum recomputed, so only the structure check can
    see it) rejects members where lookups probe it (tables without a Bloom
    filter): answers wrong but safe.  With a Bloom filter lookups do not
    probe it and stay right.  Either way verify() names the section and the
    first rejected row."""
    keys = to_list(random_keys(2000, 16, 8))
    path = build(
        tmp_path,
        keys,
        algorithm="md5",
        bloom_bits_per_key=bloom,
        prefilter_bits_per_key=4,
    )

    def zero(data, section, entry):
        data[section.offset : section.offset + section.length] = bytes(section.length)
        checksum = _format.section_checksum(
            bytes(data[section.offset : section.offset + section.length])
        )
        struct.pack_into("<Q", data, entry + 32, checksum)

    bad = tmp_path / "zeroed.hlx"
    _patched(path, bad, zero)
    with hashlookup.open_index(bad) as idx:
        probed = bloom == 0
        assert [k in idx for k in keys[:50]] == [not probed] * 50
        assert idx.contains_many(keys).tolist() == [not probed] * len(keys)
        with pytest.raises(
            IndexFormatError, match=r"prefilter section rejects .*row 0"
        ):
            idx.verify()


def test_builder_chunks_any_order_and_duplicates():
    keys = random_keys(10_000, 20, 9)
    whole = PrefilterBuilder(len(keys), 20)
    whole.add(keys)
    rng = np.random.default_rng(10)
    shuffled = keys[rng.permutation(len(keys))]
    parts = PrefilterBuilder(len(keys), 20)
    for chunk in np.array_split(shuffled, 7)[::-1]:
        parts.add(chunk)
    parts.add(keys[:100])  # duplicates change nothing
    parts.add(keys[:0])
    parts.add(keys[100:200].tobytes())  # flat bytes work too
    a, b = whole.section(3), parts.section(3)
    assert a is not None and b is not None
    assert bytes(a.data) == bytes(b.data)
    assert a.params == b.params and a.group == 3 and a.flags == 0


def test_builder_size_limits():
    assert not PrefilterBuilder(0, 16).enabled
    assert not PrefilterBuilder(1000, 16, 0).enabled
    assert PrefilterBuilder(1000, 16).section() is not None
    # the default cap: nothing beyond 4 MiB, unless asked for
    big = PrefilterBuilder(9_000_000, 16)
    assert not big.enabled and big.section() is None
    big.add(random_keys(10, 16, 1))  # ignored
    assert PrefilterBuilder(9_000_000, 16, max_bytes=None).words == 562_500
    # an over-estimated count only makes the filter larger
    assert PrefilterBuilder(2000, 16).words > PrefilterBuilder(1000, 16).words
    with pytest.raises(ValueError, match="prefilter_bits_per_key"):
        PrefilterBuilder(10, 16, -1)
    with pytest.raises(ValueError, match="hashes"):
        PrefilterBuilder(10, 16, hashes=5)
    with pytest.raises(ValueError, match="width"):
        PrefilterBuilder(10, 65)
    with pytest.raises(ValueError, match="multiple of the width"):
        PrefilterBuilder(10, 16).add(b"x" * 17)
    with pytest.raises(ValueError, match="prefilter_bits_per_key"):
        hashlookup.build_index([bytes(16)], "never.hlx", prefilter_bits_per_key=65)


def _kinds(path) -> list[str]:
    data = path.read_bytes()
    return [s.name for s in _format.read_header(data, len(data), str(path)).sections]


@pytest.mark.parametrize(
    ("kw", "built"),
    [
        ({}, False),
        ({"bloom_bits_per_key": 0}, True),
        ({"prefilter_bits_per_key": 4}, True),
        ({"bloom_bits_per_key": 0, "prefilter_bits_per_key": 0}, False),
    ],
)
def test_datasets_follow_the_same_rule(tmp_path, kw, built):
    """build_dataset: one filter per key table where the rule builds one."""
    lines = [f"{bytes([i % 256, i // 256] * 8).hex()}  f{i}\n" for i in range(1, 400)]
    src = tmp_path / "list.md5"
    src.write_text("".join(lines))
    out = tmp_path / "ds.hlds"
    hashlookup.build_dataset([str(src)], out, **kw)
    assert _kinds(out).count("prefilter") == int(built)
    with hashlookup.open_dataset(out) as ds:
        for line in lines[:20]:
            assert ds.lookup(line[:32]) is not None
        assert ds.lookup("00" * 16) is None
        assert ds.lookup(bytes([1, 0] * 7 + [1, 1]).hex()) is None


def test_cli_option(tmp_path):
    """--prefilter-bits-per-key of build (index and dataset) and update, and
    its default: a filter only without a Bloom filter."""
    from hashlookup.cli import main

    src = tmp_path / "list.md5"
    src.write_text("".join(k.hex() + "\n" for k in to_list(random_keys(300, 16, 11))))
    idx = tmp_path / "i.hlx"
    q = "-q"
    assert main(["build", "--index", str(src), "-o", str(idx), q]) == 0
    assert "prefilter" not in _kinds(idx)
    no_bloom = ["--bloom-bits-per-key", "0"]
    assert main(["build", "--index", str(src), "-o", str(idx), *no_bloom, q]) == 0
    assert "prefilter" in _kinds(idx)
    args = ["--prefilter-bits-per-key", "0", q]
    assert main(["build", "--index", str(src), "-o", str(idx), *no_bloom, *args]) == 0
    assert "prefilter" not in _kinds(idx)
    four = ["--prefilter-bits-per-key", "4", q]
    assert main(["build", "--index", str(src), "-o", str(idx), *four]) == 0
    assert "prefilter" in _kinds(idx) and "bloom" in _kinds(idx)
    ds = tmp_path / "d.hlds"
    assert main(["build", str(src), "-o", str(ds), *four]) == 0
    assert "prefilter" in _kinds(ds)
    # update: the same default, whatever the previous generation had
    assert main(["update", str(ds), "--json"]) == 0
    assert "prefilter" not in _kinds(ds)
    assert main(["update", str(ds), "--prefilter-bits-per-key", "2", "--json"]) == 0
    assert "prefilter" in _kinds(ds)
    bad = ["build", str(src), "-o", str(ds), "--prefilter-bits-per-key", "-1"]
    assert main(bad) == 2
