"""build_index: input formats, algorithm detection, invalid input, reports,
atomic writes and file size."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hashlookup
from hashlookup import InputError
from utils import (
    ALGO_WIDTH,
    Oracle,
    random_keys,
    run_in_subprocess,
    to_array,
    to_list,
    unique_random_keys,
)


def keys_of(path) -> list[bytes]:
    with hashlookup.open_index(path) as idx:
        return list(idx)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def dir_listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def hexkeys(n, width, seed) -> list[bytes]:
    return to_list(unique_random_keys(n, width, seed))


# ---------------------------------------------------------------------------
# text files


def test_comments_blank_lines_whitespace_crlf(tmp_path):
    keys = hexkeys(6, 16, 1)
    h = [k.hex() for k in keys]
    text = (
        "# a comment\r\n"
        "\r\n"
        f"{h[0]}\r\n"
        f"   {h[1]}   \r\n"
        "\t\r\n"
        f"\t{h[2].upper()}\t\n"
        "#" + h[5] + "\n"  # commented-out digest: not a key
        "   \n"
        f"{h[3]}\n"
        f"{h[4]}"  # no newline at the end of the file
    )
    src = write(tmp_path / "list.txt", text)
    out = tmp_path / "out.hlx"
    report = hashlookup.build_index(src, out)
    assert report.algorithm == "md5" and report.width == 16
    assert report.input_keys == 5 and report.unique_keys == 5
    assert report.duplicates == 0 and report.invalid == 0
    assert keys_of(out) == sorted(keys[:5])


@pytest.mark.parametrize("algorithm", list(ALGO_WIDTH))
def test_checksum_tool_output(algorithm, tmp_path):
    w = ALGO_WIDTH[algorithm]
    keys = hexkeys(5, w, 2)
    h = [k.hex() for k in keys]
    text = (
        f"{h[0]}  plain.txt\n"
        f"{h[1]} *binary.bin\n"
        f"\\{h[2]}  weird\\\\name\\nwith newline\n"
        f"{h[3].upper()}  name with  spaces.txt\r\n"
        f"{h[4]}  {h[0]}\n"  # a file name that looks like a digest
    )
    src = write(tmp_path / f"{algorithm}sum.txt", text)
    out = tmp_path / "out.hlx"
    report = hashlookup.build_index(src, out)
    assert report.algorithm == algorithm and report.width == w
    assert report.unique_keys == 5 and report.invalid == 0
    assert keys_of(out) == sorted(keys)


@pytest.mark.parametrize("algorithm", list(ALGO_WIDTH))
def test_algorithm_detection(algorithm, tmp_path):
    w = ALGO_WIDTH[algorithm]
    keys = hexkeys(20, w, 3)
    src = write(tmp_path / "l.txt", "\n".join(k.hex() for k in keys) + "\n")
    report = hashlookup.build_index(src, tmp_path / "a.hlx")
    assert (report.algorithm, report.width) == (algorithm, w)
    with hashlookup.open_index(tmp_path / "a.hlx") as idx:
        assert idx.algorithm == algorithm and idx.width == w
    # raw bytes of 16/20/32 are detected too
    report = hashlookup.build_index(list(keys), tmp_path / "b.hlx")
    assert (report.algorithm, report.width) == (algorithm, w)
    report = hashlookup.build_index(to_array(keys, w), tmp_path / "c.hlx")
    assert (report.algorithm, report.width) == (algorithm, w)
    assert keys_of(tmp_path / "c.hlx") == sorted(keys)


@pytest.mark.parametrize("algorithm", list(ALGO_WIDTH))
def test_explicit_algorithm(algorithm, tmp_path):
    w = ALGO_WIDTH[algorithm]
    keys = hexkeys(20, w, 4)
    src = write(tmp_path / "l.txt", "\n".join(k.hex() for k in keys))
    report = hashlookup.build_index(src, tmp_path / "a.hlx", algorithm=algorithm)
    assert report.algorithm == algorithm
    assert keys_of(tmp_path / "a.hlx") == sorted(keys)


def test_explicit_algorithm_mismatch(tmp_path):
    keys = hexkeys(5, 16, 5)
    src = write(tmp_path / "l.txt", "\n".join(k.hex() for k in keys) + "\n")
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(src, tmp_path / "a.hlx", algorithm="sha1")
    msg = str(ei.value)
    assert "l.txt" in msg and re.search(r"\b1\b", msg), msg
    assert not (tmp_path / "a.hlx").exists()


def test_raw_from_hex_and_bytes(tmp_path):
    keys = hexkeys(30, 9, 6)
    src = write(tmp_path / "l.txt", "\n".join(k.hex() for k in keys))
    r = hashlookup.build_index(src, tmp_path / "a.hlx", algorithm="raw", width=9)
    assert (r.algorithm, r.width, r.unique_keys) == ("raw", 9, 30)
    assert keys_of(tmp_path / "a.hlx") == sorted(keys)
    r = hashlookup.build_index(
        [k.hex() for k in keys], tmp_path / "b.hlx", algorithm="raw", width=9
    )
    assert keys_of(tmp_path / "b.hlx") == sorted(keys)
    r = hashlookup.build_index(keys, tmp_path / "c.hlx", algorithm="raw", width=9)
    assert keys_of(tmp_path / "c.hlx") == sorted(keys)


@pytest.mark.parametrize(
    "kw",
    [
        {"algorithm": "sha512"},
        {"algorithm": "MD4"},
        {"algorithm": "raw"},  # raw needs width=
        {"algorithm": "raw", "width": 0},
        {"algorithm": "raw", "width": 65},
        {"algorithm": "raw", "width": -1},
    ],
)
def test_bad_algorithm_arguments(kw, tmp_path):
    keys = hexkeys(3, 16, 7)
    with pytest.raises((ValueError, TypeError)):
        hashlookup.build_index(keys, tmp_path / "a.hlx", **kw)
    assert dir_listing(tmp_path) == []


# ---------------------------------------------------------------------------
# invalid input


def _assert_input_error(ei, fname: str, lineno: int, text: str) -> None:
    msg = str(ei.value)
    assert isinstance(ei.value, hashlookup.HashLookupError)
    assert isinstance(ei.value, ValueError)
    assert fname in msg, msg
    assert re.search(rf"(?<!\d){lineno}(?!\d)", msg), f"line {lineno} not in: {msg}"
    assert text in msg, f"{text!r} not in: {msg}"


@pytest.mark.parametrize(
    "bad",
    [
        "xyz",
        "nothex!!",
        "d41d8cd98f00b204e9800998ecf8427",
        "d41d8cd98f00b204e9800998ecf8427e0",
        "g41d8cd98f00b204e9800998ecf8427e",
    ],
)
def test_invalid_line_names_file_line_and_text(bad, tmp_path):
    keys = hexkeys(10, 16, 8)
    lines = (
        ["# header comment", ""]
        + [k.hex() for k in keys[:5]]
        + [bad]
        + [k.hex() for k in keys[5:]]
    )
    # the bad line is physical line 8 (comments and blank lines count)
    src = write(tmp_path / "known.txt", "\r\n".join(lines) + "\r\n")
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(src, tmp_path / "a.hlx")
    _assert_input_error(ei, "known.txt", 8, bad)
    assert dir_listing(tmp_path) == ["known.txt"]


def test_invalid_first_line(tmp_path):
    src = write(tmp_path / "first.txt", "zzzz\n" + hexkeys(1, 16, 9)[0].hex() + "\n")
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(src, tmp_path / "a.hlx")
    _assert_input_error(ei, "first.txt", 1, "zzzz")


def test_mixed_lengths(tmp_path):
    md5 = hexkeys(3, 16, 10)
    sha1 = hexkeys(1, 20, 11)
    lines = [md5[0].hex(), md5[1].hex(), sha1[0].hex(), md5[2].hex()]
    src = write(tmp_path / "mixed.txt", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(src, tmp_path / "a.hlx")
    _assert_input_error(ei, "mixed.txt", 3, sha1[0].hex())
    # mixed lengths in an iterable of str / bytes
    with pytest.raises(InputError):
        hashlookup.build_index(lines, tmp_path / "a.hlx")
    with pytest.raises(InputError):
        hashlookup.build_index([md5[0], md5[1], sha1[0]], tmp_path / "a.hlx")
    assert dir_listing(tmp_path) == ["mixed.txt"]


def test_invalid_in_second_file_of_list(tmp_path):
    a = write(tmp_path / "a.txt", "\n".join(k.hex() for k in hexkeys(5, 16, 12)) + "\n")
    b = write(
        tmp_path / "b.txt",
        "\n".join(k.hex() for k in hexkeys(3, 16, 13)) + "\nBADLINE\n",
    )
    with pytest.raises(InputError) as ei:
        hashlookup.build_index([a, b], tmp_path / "x.hlx")
    _assert_input_error(ei, "b.txt", 4, "BADLINE")
    assert "a.txt" not in str(ei.value)


def test_invalid_in_iterable_names_position(tmp_path):
    keys = [k.hex() for k in hexkeys(6, 16, 14)]
    keys[4] = "nothex"
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(keys, tmp_path / "x.hlx")
    msg = str(ei.value)
    assert re.search(r"(?<!\d)[45](?!\d)", msg), msg  # the item's position
    assert "nothex" in msg, f"offending text not in: {msg}"


@pytest.mark.parametrize("first", ["nothex", "", "d41d8cd98f00b204e9800998ecf8427"])
def test_iterable_whose_first_item_is_invalid(first, tmp_path):
    """A list of digest strings whose first entry is bad is still a list of digests
    (an InputError, or counted with skip_invalid), not a list of file paths."""
    keys = [k.hex() for k in hexkeys(6, 16, 14)]
    with pytest.raises(InputError):
        hashlookup.build_index([first] + keys, tmp_path / "x.hlx")
    r = hashlookup.build_index([first] + keys, tmp_path / "y.hlx", skip_invalid=True)
    assert (r.invalid, r.unique_keys) == (1, 6)
    r = hashlookup.build_index(
        [first] + keys, tmp_path / "z.hlx", algorithm="md5", skip_invalid=True
    )
    assert (r.invalid, r.unique_keys) == (1, 6)


def test_skip_invalid(tmp_path):
    keys = hexkeys(10, 16, 15)
    sha1 = hexkeys(1, 20, 16)[0]
    lines = (
        [k.hex() for k in keys[:4]]
        + ["garbage", "00ff"]
        + [k.hex() for k in keys[4:]]
        + [sha1.hex(), "g" * 32, keys[0].hex()]
    )
    src = write(tmp_path / "s.txt", "\n".join(lines) + "\n")
    report = hashlookup.build_index(src, tmp_path / "a.hlx", skip_invalid=True)
    assert report.invalid == 4
    assert report.input_keys == 11
    assert report.unique_keys == 10
    assert report.duplicates == 1
    assert keys_of(tmp_path / "a.hlx") == sorted(keys)
    # the same for an iterable
    report = hashlookup.build_index(lines, tmp_path / "b.hlx", skip_invalid=True)
    assert (report.invalid, report.unique_keys) == (4, 10)
    assert keys_of(tmp_path / "b.hlx") == sorted(keys)


def test_duplicates_counted(tmp_path):
    keys = hexkeys(50, 20, 17)
    lines = (
        [k.hex() for k in keys]
        + [k.hex().upper() for k in keys[:10]]
        + [k.hex() for k in keys[:5]]
    )
    src = write(tmp_path / "d.txt", "\n".join(lines) + "\n")
    report = hashlookup.build_index(src, tmp_path / "a.hlx")
    assert report.input_keys == 65
    assert report.unique_keys == 50
    assert report.duplicates == 15
    assert report.invalid == 0
    with hashlookup.open_index(tmp_path / "a.hlx") as idx:
        assert len(idx) == 50


def test_empty_inputs(tmp_path):
    # with the algorithm given, an empty input is an empty index
    src = write(tmp_path / "empty.txt", "# nothing here\n\n")
    r = hashlookup.build_index(src, tmp_path / "a.hlx", algorithm="sha1")
    assert (r.unique_keys, r.input_keys, r.algorithm) == (0, 0, "sha1")
    with hashlookup.open_index(tmp_path / "a.hlx") as idx:
        assert len(idx) == 0 and idx.width == 20
    r = hashlookup.build_index([], tmp_path / "b.hlx", algorithm="raw", width=5)
    assert r.width == 5 and r.unique_keys == 0
    # without it, nothing to detect the algorithm from
    with pytest.raises(ValueError):
        hashlookup.build_index([], tmp_path / "c.hlx")
    assert not (tmp_path / "c.hlx").exists()


# ---------------------------------------------------------------------------
# source forms


def _forms(tmp_path: Path, keys: list[bytes]):
    text = "\n".join(k.hex() for k in keys) + "\n"
    p = write(tmp_path / "src.txt", text)
    half = len(keys) // 2
    p1 = write(tmp_path / "src1.txt", "\n".join(k.hex() for k in keys[:half]) + "\n")
    p2 = write(tmp_path / "src2.txt", "\n".join(k.hex() for k in keys[half:]) + "\n")
    w = len(keys[0])
    return {
        "path_str": lambda: str(p),
        "pathlib": lambda: p,
        "list_of_paths": lambda: [p1, p2],
        "tuple_of_str_paths": lambda: (str(p1), str(p2)),
        "binary_file": lambda: open(p, "rb"),
        "bytesio": lambda: io.BytesIO(text.encode()),
        "iter_str": lambda: iter([k.hex() for k in keys]),
        "list_str_upper": lambda: [k.hex().upper() for k in keys],
        "generator_str": lambda: (k.hex() for k in keys),
        "list_bytes": lambda: list(keys),
        "iter_bytes": lambda: iter(keys),
        "numpy": lambda: to_array(keys, w),
        "numpy_noncontiguous": lambda: np.asfortranarray(to_array(keys, w)),
    }


FORM_NAMES = [
    "path_str",
    "pathlib",
    "list_of_paths",
    "tuple_of_str_paths",
    "binary_file",
    "bytesio",
    "iter_str",
    "list_str_upper",
    "generator_str",
    "list_bytes",
    "iter_bytes",
    "numpy",
    "numpy_noncontiguous",
]


@pytest.mark.parametrize("form", FORM_NAMES)
def test_source_forms(form, tmp_path):
    keys = hexkeys(300, 16, 18)
    keys = keys + keys[:7]  # duplicates
    src = _forms(tmp_path, keys)[form]()
    out = tmp_path / "out.hlx"
    try:
        report = hashlookup.build_index(src, out)
    finally:
        if hasattr(src, "close"):
            src.close()
    assert report.algorithm == "md5"
    assert report.input_keys == 307
    assert report.unique_keys == 300
    assert report.duplicates == 7
    assert keys_of(out) == sorted(set(keys))


def test_pathlike_target_and_str_target(tmp_path):
    keys = hexkeys(10, 16, 19)
    r1 = hashlookup.build_index(keys, tmp_path / "p.hlx")
    r2 = hashlookup.build_index(keys, str(tmp_path / "s.hlx"))
    assert Path(r1.path).resolve() == (tmp_path / "p.hlx").resolve()
    assert Path(r2.path).resolve() == (tmp_path / "s.hlx").resolve()
    assert (tmp_path / "p.hlx").read_bytes()[:8] == (tmp_path / "s.hlx").read_bytes()[
        :8
    ]


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError):
        hashlookup.build_index(tmp_path / "missing.txt", tmp_path / "a.hlx")
    with pytest.raises((TypeError, ValueError)):
        hashlookup.build_index(np.zeros((5, 16), dtype=np.int32), tmp_path / "a.hlx")
    with pytest.raises((TypeError, ValueError)):
        hashlookup.build_index([None, 5], tmp_path / "a.hlx")
    with pytest.raises(TypeError):
        hashlookup.build_index(12345, tmp_path / "a.hlx")
    assert dir_listing(tmp_path) == []


def test_missing_target_directory(tmp_path):
    with pytest.raises(OSError):
        hashlookup.build_index(hexkeys(3, 16, 20), tmp_path / "no" / "such" / "a.hlx")
    assert dir_listing(tmp_path) == []


# ---------------------------------------------------------------------------
# report and file


def test_report_fields(tmp_path):
    keys = hexkeys(1000, 32, 21)
    out = tmp_path / "r.hlx"
    r = hashlookup.build_index(keys + keys[:10], out)
    assert Path(r.path).resolve() == out.resolve()
    assert (r.algorithm, r.width) == ("sha256", 32)
    assert (r.input_keys, r.unique_keys, r.duplicates, r.invalid) == (1010, 1000, 10, 0)
    assert r.file_size == out.stat().st_size
    assert r.seconds >= 0
    import dataclasses

    assert dataclasses.is_dataclass(r)


def test_metadata_round_trip(tmp_path):
    out = tmp_path / "m.hlx"
    hashlookup.build_index(
        hexkeys(10, 16, 22), out, metadata={"dataset": "unit-test-marker-8271", "n": 10}
    )
    with hashlookup.open_index(out) as idx:
        info = idx.info()
    assert "unit-test-marker-8271" in repr(info)


def test_build_is_deterministic_in_content(tmp_path):
    """The same keys in any order and form give the same key table."""
    keys = hexkeys(500, 16, 23)
    rng = np.random.default_rng(23)
    shuffled = [keys[int(i)] for i in rng.permutation(len(keys))]
    hashlookup.build_index(keys, tmp_path / "a.hlx")
    hashlookup.build_index([k.hex().upper() for k in shuffled], tmp_path / "b.hlx")
    with (
        hashlookup.open_index(tmp_path / "a.hlx") as a,
        hashlookup.open_index(tmp_path / "b.hlx") as b,
    ):
        assert np.array_equal(a.keys(), b.keys())


def test_file_size_bound(tmp_path):
    n = 100_000
    keys = random_keys(n, 16, 24)
    out = tmp_path / "big.hlx"
    r = hashlookup.build_index(keys, out)
    assert r.unique_keys == n  # 128-bit random keys: no collisions
    assert r.file_size == out.stat().st_size
    assert r.file_size <= 1.35 * 16 * n, r.file_size / (16 * n)
    with hashlookup.open_index(out) as idx:
        assert len(idx) == n
        assert idx.contains_many(keys[::1000]).all()


# ---------------------------------------------------------------------------
# atomicity


def _existing_index(tmp_path: Path) -> tuple[Path, bytes, list[bytes]]:
    keys = hexkeys(200, 16, 25)
    out = tmp_path / "known.hlx"
    hashlookup.build_index(keys, out)
    return out, out.read_bytes(), keys


def test_failed_build_leaves_existing_file(tmp_path):
    out, before, keys = _existing_index(tmp_path)
    src = write(
        tmp_path / "bad.txt",
        "\n".join(k.hex() for k in hexkeys(100, 16, 26)) + "\nnot a digest\n",
    )
    listing = dir_listing(tmp_path)
    with pytest.raises(InputError):
        hashlookup.build_index(src, out)
    assert out.read_bytes() == before
    assert dir_listing(tmp_path) == listing
    assert keys_of(out) == sorted(keys)


def test_interrupted_build_leaves_existing_file(tmp_path):
    out, before, _ = _existing_index(tmp_path)
    listing = dir_listing(tmp_path)

    def source():
        yield from (k.hex() for k in hexkeys(1000, 16, 27))
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        hashlookup.build_index(source(), out)
    assert out.read_bytes() == before
    assert dir_listing(tmp_path) == listing


def test_failed_build_without_existing_file(tmp_path):
    src = write(tmp_path / "bad.txt", "abc\n")
    with pytest.raises(InputError):
        hashlookup.build_index(src, tmp_path / "new.hlx")
    assert dir_listing(tmp_path) == ["bad.txt"]


def test_successful_rebuild_replaces_and_leaves_no_temp(tmp_path):
    out, before, _ = _existing_index(tmp_path)
    listing = dir_listing(tmp_path)
    new_keys = hexkeys(300, 16, 28)
    hashlookup.build_index(new_keys, out)
    assert out.read_bytes() != before
    assert dir_listing(tmp_path) == listing
    assert keys_of(out) == sorted(new_keys)


def test_rebuild_under_an_open_reader(tmp_path):
    """Readers holding the old mapping keep working after a rebuild (os.replace)."""
    old = hexkeys(5000, 16, 29)
    new = hexkeys(3000, 16, 30)
    out = tmp_path / "live.hlx"
    hashlookup.build_index(old, out)
    code = f"""
        import hashlookup
        old = [bytes.fromhex(h) for h in {[k.hex() for k in old[:200]]!r}]
        new = [bytes.fromhex(h) for h in {[k.hex() for k in new[:200]]!r}]
        idx = hashlookup.open_index({str(out)!r})
        assert all(k in idx for k in old)
        hashlookup.build_index(new, {str(out)!r})
        # the old mapping is intact: old answers, no SIGBUS
        assert len(idx) == {len(old)}
        assert all(k in idx for k in old)
        assert not any(k in idx for k in new)
        assert idx.contains_many(old).all()
        assert sum(1 for _ in idx) == {len(old)}
        idx.verify()
        idx.close()
        with hashlookup.open_index({str(out)!r}) as idx2:
            assert len(idx2) == len(new)
            assert all(k in idx2 for k in new)
        print("ok")
    """
    rc, stdout, stderr = run_in_subprocess(code)
    assert rc == 0, stderr
    assert stdout.strip() == "ok"


def test_build_then_membership_oracle(tmp_path):
    """A text list with everything at once; answers agree with a set."""
    keys = hexkeys(2000, 20, 31)
    lines = []
    for i, k in enumerate(keys):
        h = k.hex().upper() if i % 2 else k.hex()
        r = i % 5
        lines.append(
            h
            if r == 0
            else f"  {h}\t"
            if r == 1
            else f"{h}  f{i}.bin"
            if r == 2
            else f"{h} *f{i}.bin"
            if r == 3
            else f"\\{h}  f\\\\{i}"
        )
        if i % 97 == 0:
            lines.append("# comment " + h)
            lines.append("")
    src = write(tmp_path / "all.txt", "\r\n".join(lines))
    hashlookup.build_index(src, tmp_path / "a.hlx")
    oracle = Oracle(keys)
    queries = keys[::3] + to_list(random_keys(2000, 20, 32))
    with hashlookup.open_index(tmp_path / "a.hlx") as idx:
        assert len(idx) == len(keys)
        assert np.array_equal(idx.contains_many(queries), oracle.contains(queries))


# ---------------------------------------------------------------------------
# streams and odd text


class TrickleReader(io.RawIOBase):
    """A binary stream that returns at most `step` bytes per read, like a pipe or a
    socket: lines and CRLF pairs are split across reads."""

    def __init__(self, data: bytes, step: int = 7):
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("step", [1, 7, 33, 4096])
def test_short_reads(step, tmp_path):
    keys = hexkeys(300, 20, 40)
    lines = ["# list", ""]
    for i, k in enumerate(keys):
        lines.append(k.hex().upper() if i % 2 else f"{k.hex()}  file{i}.bin")
        if i % 50 == 0:
            lines.append("   ")
    data = ("\r\n".join(lines) + "\r\n").encode()
    r = hashlookup.build_index(TrickleReader(data, step), tmp_path / "a.hlx")
    assert (r.algorithm, r.unique_keys, r.invalid) == ("sha1", 300, 0)
    assert keys_of(tmp_path / "a.hlx") == sorted(keys)
    # an invalid line late in the stream: its line number survives the short reads
    bad = data + b"not-a-digest\r\n" + keys[0].hex().encode() + b"\r\n"
    bad_line = data.count(b"\n") + 1
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(TrickleReader(bad, step), tmp_path / "b.hlx")
    assert re.search(rf"(?<!\d){bad_line}(?!\d)", str(ei.value)), str(ei.value)
    assert "not-a-digest" in str(ei.value)


def test_non_utf8_invalid_line(tmp_path):
    keys = hexkeys(3, 16, 41)
    data = (
        (keys[0].hex() + "\n").encode()
        + b"\xff\xfe\x00garbage\x80\n"
        + (keys[1].hex() + "\n").encode()
    )
    src = write(tmp_path / "bin.txt", data)
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(src, tmp_path / "a.hlx")
    msg = str(ei.value)
    assert "bin.txt" in msg and re.search(r"(?<!\d)2(?!\d)", msg), msg
    assert "garbage" in msg, msg
    r = hashlookup.build_index(src, tmp_path / "a.hlx", skip_invalid=True)
    assert (r.invalid, r.unique_keys) == (1, 2)


def test_very_long_line(tmp_path):
    keys = hexkeys(3, 16, 42)
    data = (
        keys[0].hex() + "\n" + "a" * 2_000_000 + "\n" + keys[1].hex() + "\n"
    ).encode()
    src = write(tmp_path / "long.txt", data)
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(src, tmp_path / "a.hlx")
    msg = str(ei.value)
    assert "long.txt" in msg and re.search(r"(?<!\d)2(?!\d)", msg), msg[:300]
    assert len(msg) < 2000, "the message quotes a bounded part of the line"
    # no newline at all: a huge single "line"
    src2 = write(tmp_path / "blob.txt", b"b" * 3_000_000)
    with pytest.raises(InputError):
        hashlookup.build_index(src2, tmp_path / "a.hlx")
    assert sorted(os.listdir(tmp_path)) == ["blob.txt", "long.txt"]


def test_utf8_bom_first_line(tmp_path):
    """A BOM (Windows editors) is either ignored or reported on line 1: never a
    silent wrong key."""
    keys = hexkeys(3, 16, 43)
    src = write(
        tmp_path / "bom.txt",
        b"\xef\xbb\xbf" + "\n".join(k.hex() for k in keys).encode() + b"\n",
    )
    try:
        r = hashlookup.build_index(src, tmp_path / "a.hlx")
    except InputError as e:
        assert re.search(r"bom.txt:1\b", str(e)) or "1" in str(e)
    else:
        assert r.unique_keys == 3
        assert keys_of(tmp_path / "a.hlx") == sorted(keys)


@pytest.mark.parametrize(
    "kw",
    [
        {"metadata": {"x": object()}},
        {"metadata": {"x": float("nan"), "y": {1, 2}}},
        {"bloom_hashes": 0},
        {"bloom_hashes": 17},
        {"bloom_bits_per_key": -1},
    ],
)
def test_bad_build_parameters(kw, tmp_path):
    with pytest.raises((TypeError, ValueError)):
        hashlookup.build_index(hexkeys(10, 16, 44), tmp_path / "a.hlx", **kw)
    assert os.listdir(tmp_path) == []


def test_numpy_source_wrong_algorithm(tmp_path):
    arr = random_keys(10, 16, 45)
    with pytest.raises(ValueError):
        hashlookup.build_index(arr, tmp_path / "a.hlx", algorithm="sha1")
    with pytest.raises(ValueError):
        hashlookup.build_index(arr, tmp_path / "a.hlx", algorithm="raw", width=8)
    with pytest.raises(ValueError):  # 7-byte keys: no algorithm to detect
        hashlookup.build_index(random_keys(10, 7, 46), tmp_path / "a.hlx")
    assert os.listdir(tmp_path) == []


def test_path_with_spaces_and_unicode(tmp_path):
    d = tmp_path / "dir with spaces" / "ünïcødé"
    d.mkdir(parents=True)
    keys = hexkeys(20, 16, 47)
    src = write(d / "list ü.txt", "\n".join(k.hex() for k in keys) + "\nbad line\n")
    with pytest.raises(InputError) as ei:
        hashlookup.build_index(src, d / "out ü.hlx")
    assert "list ü.txt" in str(ei.value)
    r = hashlookup.build_index(src, d / "out ü.hlx", skip_invalid=True)
    assert r.unique_keys == 20
    with hashlookup.open_index(d / "out ü.hlx") as idx:
        assert idx.path == str(d / "out ü.hlx")
        assert all(k in idx for k in keys)


# ---------------------------------------------------------------------------
# the text parser against a model (hypothesis)


_NAME = st.text(alphabet="abcXYZ019 ._-#*\\", min_size=1, max_size=12).map(
    lambda s: s if s.strip() else "f"
)
_WS = st.sampled_from(["", " ", "  ", "\t", " \t "])


@st.composite
def _text_lines(draw, width: int):
    """(lines, expected keys, indexes of invalid lines)."""
    n = draw(st.integers(0, 40))
    lines: list[str] = []
    keys: list[bytes] = []
    invalid: list[int] = []
    for _ in range(n):
        kind = draw(
            st.sampled_from(
                [
                    "plain",
                    "plain",
                    "sum",
                    "sum_bin",
                    "sum_esc",
                    "blank",
                    "comment",
                    "bad",
                ]
            )
        )
        key = draw(st.binary(min_size=width, max_size=width))
        h = draw(st.sampled_from([key.hex(), key.hex().upper()]))
        if kind == "plain":
            lines.append(draw(_WS) + h + draw(_WS))
            keys.append(key)
        elif kind == "sum":
            lines.append(f"{h}  {draw(_NAME)}")
            keys.append(key)
        elif kind == "sum_bin":
            lines.append(f"{h} *{draw(_NAME)}")
            keys.append(key)
        elif kind == "sum_esc":
            lines.append(f"\\{h}  {draw(_NAME)}")
            keys.append(key)
        elif kind == "blank":
            lines.append(draw(_WS))
        elif kind == "comment":
            lines.append("#" + draw(st.sampled_from(["", " comment", h, "  " + h])))
        else:
            how = draw(st.sampled_from(["short", "long", "odd", "nonhex", "word"]))
            if how == "short":
                bad = h[:-2]
            elif how == "long":
                bad = h + "ab"
            elif how == "odd":
                bad = h[:-1]
            elif how == "nonhex":
                i = draw(st.integers(0, len(h) - 1))
                bad = h[:i] + draw(st.sampled_from("gxzG!-:")) + h[i + 1 :]
            else:
                bad = draw(st.sampled_from(["garbage", "NULL", "-", "0x" + h[2:]]))
            if not bad:
                bad = "?"
            invalid.append(len(lines))
            lines.append(draw(_WS) + bad + draw(_WS))
    return lines, keys, invalid


@pytest.mark.parametrize(
    "algorithm,width", [("md5", 16), ("sha1", 20), (None, 16), (None, 32)]
)
@given(data=st.data())
def test_text_parser_model(algorithm, width, data, tmp_path_factory):
    lines, keys, invalid = data.draw(_text_lines(width), label="lines")
    eol = data.draw(st.sampled_from(["\n", "\r\n"]), label="eol")
    final_eol = data.draw(st.booleans(), label="final_eol")
    step = data.draw(st.sampled_from([None, 1, 5, 64]), label="read_step")
    skip = data.draw(st.booleans(), label="skip_invalid")
    text = eol.join(lines) + (eol if final_eol and lines else "")
    raw = text.encode()
    d = tmp_path_factory.mktemp("parser")
    src = d / "list.txt"
    src.write_bytes(raw)
    source = TrickleReader(raw, step) if step else src
    out = d / "out.hlx"
    if algorithm is None and not keys and (skip or not invalid):
        # nothing to detect the algorithm from
        with pytest.raises(ValueError):
            hashlookup.build_index(source, out, skip_invalid=skip)
        assert not out.exists()
        return
    if invalid and not skip:
        with pytest.raises(InputError) as ei:
            hashlookup.build_index(source, out, algorithm=algorithm)
        msg = str(ei.value)
        line_no = invalid[0] + 1
        assert re.search(rf":{line_no}\b", msg), (line_no, msg)
        assert not out.exists()
        return
    r = hashlookup.build_index(source, out, algorithm=algorithm, skip_invalid=skip)
    assert r.invalid == len(invalid)
    assert r.input_keys == len(keys)
    assert r.unique_keys == len(set(keys))
    assert keys_of(out) == sorted(set(keys))
