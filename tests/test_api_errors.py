"""Errors at the API boundary: wrong types, wrong lengths, bad hex, bad ``out=``,
use after close, missing files, ``repr``."""

from __future__ import annotations

import re

import numpy as np
import pytest

import hashlookup
from utils import ALGO_WIDTH, build, random_keys, run_in_subprocess, to_list

CLOSED = "I/O operation on closed index"

ERR_CONFIGS = [("md5", 16), ("sha1", 20), ("sha256", 32), ("raw", 7), ("raw", 64)]
ERR_IDS = ["md5", "sha1", "sha256", "raw7", "raw64"]


@pytest.fixture(params=ERR_CONFIGS, ids=ERR_IDS)
def index(request, tmp_path):
    algorithm, width = request.param
    keys = to_list(random_keys(200, width, 1))
    path = build(tmp_path, keys, algorithm=algorithm, width=width)
    idx = hashlookup.open_index(path)
    try:
        yield idx, keys
    finally:
        idx.close()


def _lookups(idx):
    """Every single-key entry point, as callables of one key."""
    return {
        "in": lambda k: k in idx,
        "find": idx.find,
        "contains_many[list]": lambda k: idx.contains_many([k]),
        "find_many[list]": lambda k: idx.find_many([k]),
    }


# ---------------------------------------------------------------------------
# exception hierarchy


def test_exception_hierarchy():
    assert issubclass(hashlookup.IndexFormatError, hashlookup.HashLookupError)
    assert issubclass(hashlookup.IndexFormatError, ValueError)
    assert issubclass(hashlookup.IndexVersionError, hashlookup.IndexFormatError)
    assert issubclass(hashlookup.InputError, hashlookup.HashLookupError)
    assert issubclass(hashlookup.InputError, ValueError)
    assert issubclass(hashlookup.HashLookupError, Exception)


# ---------------------------------------------------------------------------
# wrong lengths and bad hex


def test_wrong_width_bytes(index):
    index, _ = index
    w = index.width
    for n in sorted({0, 1, w - 1, w + 1, 2 * w} - {w}):
        for form in (bytes(n), bytearray(n), memoryview(bytes(n))):
            for name, fn in _lookups(index).items():
                with pytest.raises(ValueError) as ei:
                    fn(form)
                assert not isinstance(ei.value, hashlookup.IndexFormatError)
                msg = str(ei.value)
                assert re.search(rf"\b{w}\b", msg), (name, n, msg)


def test_wrong_width_message_is_helpful(tmp_path):
    path = build(tmp_path, to_list(random_keys(10, 16, 2)), algorithm="md5")
    with hashlookup.open_index(path) as idx, pytest.raises(ValueError) as ei:
        idx.find(bytes(15))
    msg = str(ei.value)
    assert "md5" in msg and "16" in msg and "32" in msg and "15" in msg, msg


def test_bad_hex_str(index):
    index, keys = index
    w = index.width
    good = keys[0].hex()
    bad = [
        "",
        good[:-1],  # odd length
        good + "0",
        good + "00",  # one byte too long
        "g" + good[1:],  # non-hex ASCII letter
        good[:-1] + "z",
        " " + good[1:],  # whitespace inside the right length
        good[:-1] + "\n",
        good[:-1] + "\x00",  # embedded NUL
        "0x" + good[2:],
        "\uff41" + good[1:],  # fullwidth 'a'
        "\u0661" + good[1:],  # ARABIC-INDIC DIGIT ONE
        "\u00e9" * (2 * w),  # non-ASCII of the right length
        "-" + good[1:],
    ]
    for s in bad:
        for name, fn in _lookups(index).items():
            with pytest.raises(ValueError) as ei:
                fn(s)
            msg = str(ei.value)
            # says what was expected (not a bare codec error)
            assert "hex" in msg.lower() or re.search(rf"\b{2 * w}\b", msg), (
                name,
                s,
                msg,
            )


def test_hex_of_bytes_is_not_hex_str(tmp_path):
    """32 ASCII hex bytes are 32 raw bytes, not an md5 in hex: wrong length."""
    keys = to_list(random_keys(10, 16, 3))
    path = build(tmp_path, keys, algorithm="md5")
    with hashlookup.open_index(path) as idx, pytest.raises(ValueError):
        keys[0].hex().encode() in idx  # noqa: B015


# ---------------------------------------------------------------------------
# wrong types


BAD_TYPES = [None, 0, 1, 3.5, 1j, [], object(), True]


def test_wrong_type_single(index):
    index, keys = index
    k = keys[0]
    for bad in BAD_TYPES + [[k], (k,), {k}, {k: 1}]:
        with pytest.raises(TypeError):
            bad in index  # noqa: B015
        with pytest.raises(TypeError):
            index.find(bad)


@pytest.mark.parametrize("method", ["contains_many", "find_many"])
def test_wrong_type_inside_sequence_names_item(index, method):
    index, keys = index
    keys = keys[:12]
    fn = getattr(index, method)
    for bad in (None, 7, 2.5, object()):
        for at in (0, 9):
            seq = [k.hex() if i % 2 else k for i, k in enumerate(keys)]
            seq[at] = bad
            with pytest.raises(TypeError) as ei:
                fn(seq)
            assert re.search(rf"\b{at}\b", str(ei.value)), str(ei.value)
            with pytest.raises(TypeError):
                fn(tuple(seq))


@pytest.mark.parametrize("method", ["contains_many", "find_many"])
def test_bad_value_inside_sequence_names_item(index, method):
    index, keys = index
    keys = keys[:12]
    fn = getattr(index, method)
    w = index.width
    at = 9
    for bad in (bytes(w - 1), bytes(w + 1), "zz" * w, keys[0].hex()[:-1], ""):
        seq = list(keys)
        seq[at] = bad
        with pytest.raises(ValueError) as ei:
            fn(seq)
        assert re.search(rf"\b{at}\b", str(ei.value)), str(ei.value)


@pytest.mark.parametrize("method", ["contains_many", "find_many"])
def test_bad_batch_arrays(index, method):
    index, _ = index
    fn = getattr(index, method)
    w = index.width
    n = 10
    # wrong width of a 2-d array
    for bad_w in (w - 1, w + 1):
        with pytest.raises(ValueError):
            fn(np.zeros((n, bad_w), dtype=np.uint8))
    # flat buffer whose length is not a multiple of the width
    with pytest.raises(ValueError):
        fn(bytes(n * w + 1))
    with pytest.raises(ValueError):
        fn(np.zeros(n * w - 1, dtype=np.uint8))
    # wrong dtype
    for dt in (np.int64, np.float64, np.int8, np.uint16):
        with pytest.raises((TypeError, ValueError)):
            fn(np.zeros((n, w), dtype=dt))
    # wrong dimensionality
    with pytest.raises((TypeError, ValueError)):
        fn(np.zeros((2, n, w), dtype=np.uint8))
    # not a batch at all
    for bad in (None, 5, 2.0):
        with pytest.raises(TypeError):
            fn(bad)


@pytest.mark.parametrize("method", ["contains_many", "find_many"])
def test_bad_threads(index, method):
    index, keys = index
    keys = keys[:5]
    fn = getattr(index, method)
    with pytest.raises((TypeError, ValueError)):
        fn(keys, threads=-1)
    with pytest.raises(TypeError):
        fn(keys, threads="2")


# ---------------------------------------------------------------------------
# out=


def test_bad_out(index):
    index, keys = index
    keys = keys[:10]
    n = len(keys)
    bad_c = [
        np.zeros(n, dtype=np.int64),  # wrong dtype
        np.zeros(n, dtype=np.uint8),
        np.zeros(n + 1, dtype=bool),  # wrong shape
        np.zeros(n - 1, dtype=bool),
        np.zeros((n, 1), dtype=bool),
        np.zeros(2 * n, dtype=bool)[::2],  # not contiguous
        [False] * n,  # not an array
    ]
    ro = np.zeros(n, dtype=bool)
    ro.setflags(write=False)
    bad_c.append(ro)
    for out in bad_c:
        with pytest.raises((TypeError, ValueError)):
            index.contains_many(keys, out=out)
    bad_f = [
        np.zeros(n, dtype=np.int32),
        np.zeros(n, dtype=np.uint64),
        np.zeros(n, dtype=bool),
        np.zeros(n + 1, dtype=np.int64),
        np.zeros((n, 1), dtype=np.int64),
        np.zeros(2 * n, dtype=np.int64)[::2],
        [0] * n,
    ]
    ro = np.zeros(n, dtype=np.int64)
    ro.setflags(write=False)
    bad_f.append(ro)
    for out in bad_f:
        with pytest.raises((TypeError, ValueError)):
            index.find_many(keys, out=out)
    # the index still works afterwards
    assert index.contains_many(keys).all()


def test_batch_error_leaves_index_usable(index):
    """A failing batch call raises and the index keeps working afterwards."""
    index, keys = index
    keys = keys[:10]
    out = np.zeros(len(keys), dtype=bool)
    with pytest.raises(TypeError):
        index.contains_many(keys[:9] + [None], out=out)
    assert index.contains_many(keys, out=out).all()


# ---------------------------------------------------------------------------
# closing


def _all_uses(idx, key):
    return {
        "in": lambda: key in idx,
        "in hex": lambda: key.hex() in idx,
        "find": lambda: idx.find(key),
        "len": lambda: len(idx),
        "iter": lambda: next(iter(idx)),
        "list": lambda: list(idx),
        "keys": lambda: idx.keys(),
        "info": lambda: idx.info(),
        "verify": lambda: idx.verify(),
        "contains_many": lambda: idx.contains_many([key]),
        "contains_many array": lambda: idx.contains_many(
            np.frombuffer(key, np.uint8).reshape(1, -1)
        ),
        "find_many": lambda: idx.find_many([key]),
        "find_many out": lambda: idx.find_many([key], out=np.zeros(1, np.int64)),
        "contains_many threads": lambda: idx.contains_many([key], threads=2),
    }


def test_use_after_close(tmp_path):
    keys = to_list(random_keys(100, 16, 4))
    path = build(tmp_path, keys, algorithm="md5")
    idx = hashlookup.open_index(path)
    assert keys[0] in idx
    idx.close()
    for name, use in _all_uses(idx, keys[0]).items():
        with pytest.raises(ValueError, match=re.escape(CLOSED)):
            use()
        assert name


def test_with_closes(tmp_path):
    keys = to_list(random_keys(100, 16, 5))
    path = build(tmp_path, keys, algorithm="md5")
    with hashlookup.open_index(path) as idx:
        assert keys[0] in idx
    for use in _all_uses(idx, keys[0]).values():
        with pytest.raises(ValueError, match=re.escape(CLOSED)):
            use()
    # with closes on error too
    with pytest.raises(RuntimeError), hashlookup.HashIndex.open(path) as idx2:
        raise RuntimeError("boom")
    with pytest.raises(ValueError, match=re.escape(CLOSED)):
        keys[0] in idx2  # noqa: B015


def test_close_twice(tmp_path):
    path = build(tmp_path, to_list(random_keys(10, 16, 6)), algorithm="md5")
    idx = hashlookup.open_index(path)
    idx.close()
    idx.close()
    with pytest.raises(ValueError, match=re.escape(CLOSED)):
        idx.find(bytes(16))


def test_closed_attribute_if_present(tmp_path):
    path = build(tmp_path, to_list(random_keys(10, 16, 7)), algorithm="md5")
    idx = hashlookup.open_index(path)
    if not hasattr(idx, "closed"):
        idx.close()
        pytest.skip("no closed attribute")
    assert idx.closed is False
    idx.close()
    assert idx.closed is True


def test_repr_open_and_closed(tmp_path):
    path = build(tmp_path, to_list(random_keys(10, 16, 8)), algorithm="md5")
    idx = hashlookup.open_index(path)
    r = repr(idx)
    assert isinstance(r, str) and r
    assert "md5" in r or str(path) in r or path.name in r, r
    idx.close()
    r2 = repr(idx)
    assert isinstance(r2, str) and r2


def test_keys_view_outlives_close_without_crash(tmp_path):
    """A keys() array taken before close() must not become a dangling pointer.

    Either close() refuses (BufferError) while the array is alive, or the mapping
    stays valid for as long as the array exists.  Run in a subprocess: a wrong
    answer here is a segfault."""
    keys = to_list(random_keys(1000, 16, 9))
    path = build(tmp_path, keys, algorithm="md5")
    code = f"""
        import hashlookup, gc
        idx = hashlookup.open_index({str(path)!r})
        arr = idx.keys()
        first = bytes(arr[0])
        try:
            idx.close()
            print("closed")
        except BufferError as e:
            print("buffererror", e)
        total = int(arr.sum())   # must not crash
        assert bytes(arr[0]) == first
        it = iter(arr)
        print("sum", total)
        del arr, it
        gc.collect()
        idx.close()
        idx.close()
        print("ok")
    """
    rc, out, err = run_in_subprocess(code)
    assert rc == 0, err
    assert out.splitlines()[-1] == "ok"


def test_iterator_across_close_without_crash(tmp_path):
    keys = to_list(random_keys(1000, 16, 10))
    path = build(tmp_path, keys, algorithm="md5")
    code = f"""
        import hashlookup
        idx = hashlookup.open_index({str(path)!r})
        it = iter(idx)
        a = next(it)
        try:
            idx.close()
        except BufferError:
            print("buffererror")
        try:
            rest = list(it)
            print("rest", len(rest))
        except ValueError as e:
            print("valueerror", e)
        del it
        idx.close()
        print("ok")
    """
    rc, out, err = run_in_subprocess(code)
    assert rc == 0, err
    assert out.splitlines()[-1] == "ok"


# ---------------------------------------------------------------------------
# files


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.hlx"
    for opener in (hashlookup.open_index, hashlookup.HashIndex.open):
        for p in (missing, str(missing)):
            with pytest.raises(FileNotFoundError) as ei:
                opener(p)
            assert "nope.hlx" in str(ei.value)


def test_directory_is_not_an_index(tmp_path):
    with pytest.raises((OSError, hashlookup.IndexFormatError)):
        hashlookup.open_index(tmp_path)


def test_wrong_path_type():
    for bad in (None, 3.0, ["a"]):
        with pytest.raises(TypeError):
            hashlookup.open_index(bad)


def test_properties(tmp_path):
    for algorithm, width in list(ALGO_WIDTH.items()) + [("raw", 9)]:
        path = build(
            tmp_path,
            to_list(random_keys(20, width, 11)),
            algorithm=algorithm,
            width=width,
            name=f"{algorithm}{width}.hlx",
        )
        with hashlookup.open_index(path) as idx:
            assert idx.algorithm == algorithm
            assert idx.width == width
            assert idx.path == str(path)
            assert isinstance(idx.info(), dict)


def test_str_that_cannot_be_encoded(tmp_path):
    """Lone surrogates: still a ValueError that says what was expected (not a bare
    codec error)."""
    path = build(tmp_path, to_list(random_keys(10, 16, 12)), algorithm="md5")
    with hashlookup.open_index(path) as idx:
        for bad in ("\udcff" * 32, "a" * 31 + "\ud800"):
            for fn in (lambda k: k in idx, idx.find, lambda k: idx.contains_many([k])):
                with pytest.raises(ValueError) as ei:
                    fn(bad)
                msg = str(ei.value)
                assert "hex" in msg.lower() or "md5" in msg, msg


def test_non_ascii_str_of_right_length_message(tmp_path):
    """A 32-character str with non-ASCII characters has the right length for an md5:
    the message must say the characters are wrong, not that the length is."""
    path = build(tmp_path, to_list(random_keys(10, 16, 13)), algorithm="md5")
    with hashlookup.open_index(path) as idx:
        for bad in ("\u00e9" * 32, "0" * 31 + "\u00e9", "\uff41" * 32):
            assert len(bad) == 32
            with pytest.raises(ValueError) as ei:
                idx.find(bad)
            msg = str(ei.value)
            assert "length 32" not in msg, msg
            assert "hex" in msg.lower(), msg


def test_lookups_after_file_is_deleted(tmp_path):
    """The mapping outlives the directory entry (unlink while open)."""
    keys = to_list(random_keys(2000, 16, 14))
    path = build(tmp_path, keys, algorithm="md5")
    code = f"""
        import os, hashlookup
        keys = [bytes.fromhex(h) for h in {[k.hex() for k in keys[:100]]!r}]
        idx = hashlookup.open_index({str(path)!r})
        os.unlink({str(path)!r})
        assert all(k in idx for k in keys)
        assert idx.contains_many(keys).all()
        idx.verify()
        idx.close()
        print("ok")
    """
    rc, out, err = run_in_subprocess(code)
    assert rc == 0, err
    assert out.strip() == "ok"
