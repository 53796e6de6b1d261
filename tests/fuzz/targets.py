"""The fuzz targets: what each one feeds the library, and which exceptions
it documents (docs/API.md, docs/IMPORTERS.md).  A documented exception is
a correct answer to bad input; anything else (another exception, a failed
consistency check, a crash, a hang) is a finding.

Besides "does not crash", the targets check answers wherever an oracle is
cheap: a row returned by find() holds the key that was asked for; an index
or dataset that passes verify() finds every one of its keys (and a dataset
answers with the record of that very digest); the C line parser agrees
with a plain Python reading of the documented grammar; batch lookups agree
with a Python set.

Input encodings (the leading bytes are flags, so that mutations can switch
modes):
  index, dataset   flags, file.  flags & 1: fix the header checksum and
                   declared file size, & 2: fix the section checksums
                   (so mutated bodies get past the checksums and reach the
                   lookup code and verify()).
  text, hashdeep, csv, vics, sqlite
                   flags, file.  flags & 1: skip_invalid, & 2: detect the
                   format instead of naming it, & 4 (csv): label columns.
  hashdeep_c       flags, file.  The C reader of hashdeep data lines against
                   the Python reader (records, report or error), both ways of
                   skip_invalid; flags % 3 picks the batch size.
  build            flags, text.  build_index over a text list, compared
                   with the grammar of docs/API.md.
  lines            flags, width, text.  _core.parse_lines vs the reference.
  batch            a FuzzedDataProvider program of single and batch lookups
                   with odd arguments, against a Python set.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hashlookup
import importer_data as data_files
from fuzz import near_target, seeds
from hashlookup import IndexFormatError, InputError, _core
from hashlookup.importers import ImportReport, iter_records
from hashlookup.store import format as _format


class Target(NamedTuple):
    run: Callable[[bytes], None]
    documented: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]]
    max_len: int


# ---------------------------------------------------------------------------
# scratch files (tmpfs when there is one: one file write per input)

_scratch: str | None = None


def scratch(name: str) -> str:
    global _scratch
    if _scratch is None:
        base = (
            "/dev/shm"
            if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
            else None
        )
        _scratch = tempfile.mkdtemp(prefix="hashlookup-fuzz-", dir=base)
        atexit.register(shutil.rmtree, _scratch, True)
    return os.path.join(_scratch, name)


def write(name: str, data: bytes) -> str:
    path = scratch(name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------------
# index and dataset files


def fix_checksums(b: bytearray, flags: int) -> None:
    """Make a mutated file pass the cheap checks of open: declared size,
    header size, section checksums, header checksum (as far as the header
    is readable at all)."""
    H, S = _format.HEADER, _format.SECTION
    if len(b) < H.size or not flags & (seeds.FIX_HEADER | seeds.FIX_SECTIONS):
        return
    count = struct.unpack_from("<I", b, 20)[0]
    if count <= _format.MAX_SECTIONS:
        struct.pack_into("<I", b, 16, H.size + S.size * count)
    struct.pack_into("<Q", b, 32, len(b))
    header_size = min(len(b), H.size + S.size * min(count, _format.MAX_SECTIONS))
    if flags & seeds.FIX_SECTIONS:
        for i in range((header_size - H.size) // S.size):
            at = H.size + i * S.size
            offset, length = struct.unpack_from("<QQ", b, at + 16)
            if offset + length <= len(b):
                struct.pack_into(
                    "<Q",
                    b,
                    at + 32,
                    _format.section_checksum(bytes(b[offset : offset + length])),
                )
    struct.pack_into(
        "<Q",
        b,
        _format.HEADER_CHECKSUM_OFFSET,
        _format.header_checksum(b[:header_size]),
    )


def _file(data: bytes, name: str) -> str | None:
    if not data:
        return None
    body = bytearray(data[1:])
    fix_checksums(body, data[0])
    return write(name, bytes(body))


def _probes(keys: np.ndarray) -> np.ndarray:
    """Some keys of the table and near misses of them (last byte changed)."""
    sample = np.array(keys[:48])
    near = sample.copy()
    if near.size:
        near[:, -1] ^= 0x5A
    return np.concatenate([sample, near])


def _check_rows(keys: np.ndarray, probes: np.ndarray, rows: np.ndarray) -> None:
    """A row returned for a probe must hold exactly that probe, whatever
    state the file is in (the search compares before it answers)."""
    for p, r in zip(probes, rows.tolist()):
        assert r == -1 or (0 <= r < len(keys) and bytes(keys[r]) == bytes(p)), (
            f"find returned row {r} for a key that is not there"
        )


def exercise_index(idx: hashlookup.HashIndex) -> None:
    n, w = len(idx), idx.width
    assert idx.algorithm in _format.ALGORITHMS
    repr(idx)
    idx.info()
    keys = idx.keys()
    assert keys.shape == (n, w)
    probes = _probes(keys)
    rows = idx.find_many(probes)
    _check_rows(keys, probes, rows)
    assert (idx.contains_many(probes) == (rows >= 0)).all()
    for p, r in itertools.islice(zip(probes, rows.tolist()), 8):
        raw = bytes(p)
        assert idx.find(raw) == r and (raw in idx) == (r >= 0)
        assert idx.find(raw.hex().upper()) == r
    assert list(itertools.islice(iter(idx), 4)) == [bytes(k) for k in keys[:4]]
    try:
        idx.verify()
    except IndexFormatError:
        return
    # A verified table finds every key at its row, and only its keys.
    assert (idx.find_many(keys) == np.arange(n)).all(), "verified index misses keys"
    members = set(map(bytes, keys))
    expect = [bytes(p) in members for p in probes]
    assert idx.contains_many(probes).tolist() == expect


def _fuzz_file(
    data: bytes,
    name: str,
    opener: Callable[[str], Any],
    exercise: Callable[[Any], None],
) -> None:
    path = _file(data, name)
    if path is not None:
        with opener(path) as opened:
            exercise(opened)


def fuzz_index(data: bytes) -> None:
    _fuzz_file(data, "index.hlx", hashlookup.open_index, exercise_index)


def exercise_dataset(ds: hashlookup.Dataset) -> None:
    repr(ds)
    ds.info()
    labels = ds.labels()
    n = len(ds)
    for rid in range(min(n, 3)):
        ds.record(rid)
    some = []
    for alg in ds.algorithms:
        t = ds.table(alg)
        keys = t.keys()
        probes = _probes(keys)
        rows = t.find_many(probes)
        _check_rows(keys, probes, rows)
        ids = ds.record_ids(t, rows)
        assert ((ids >= 0) == (rows >= 0)).all() and (ids < n).all()
        for p in probes[:4]:
            m = ds.lookup(bytes(p))
            assert m is None or getattr(m, alg) == bytes(p).hex() or m.algorithm == alg
            some.append(bytes(p).hex())
    for label in list(labels)[:3]:
        ds.records_with(label)
        for h in some[:4]:
            ds.lookup(h, only=[label])
            ds.lookup(h, exclude=label)
    ds.lookup_many(some + ["", "x" * 32, b"\0" * 20, None, 7])
    _check_single_answers(ds, some[:8] + ["zz" * 16, "AB" * 20])
    try:
        ds.verify()
    except IndexFormatError:
        return
    # A verified dataset finds every digest it holds, and answers with a
    # record whose digests lead back to that record (a merged record owns
    # several digests of one algorithm and shows the first).
    for alg in ds.algorithms:
        keys = ds.table(alg).keys()
        for k in keys[:200]:
            m = ds.lookup(bytes(k))
            assert m is not None, f"verified dataset misses a {alg} key"
            assert 0 <= m.record_id < n
            assert m == ds.record(m.record_id)._replace(algorithm=alg)
            for a in ds.algorithms:
                shown = getattr(m, a)
                assert shown is None or ds.lookup(shown).record_id == m.record_id, (
                    f"verified dataset answers a {alg} key with a record whose "
                    f"{a} digest leads to another record"
                )


def _check_single_answers(ds: hashlookup.Dataset, digests: list[str]) -> None:
    """The lookup service's single-digest path (one C call: decode, look up,
    render) answers as Dataset.lookup and the reference renderer do."""
    from hashlookup.server import _check

    single = _check.SingleHits(ds)
    single.prepare()
    for h in digests:
        alg = {32: "md5", 40: "sha1", 64: "sha256"}[len(h)]
        got = single.answer(alg, h)
        try:
            m = ds.lookup(h)
        except ValueError:
            assert got == _check.INVALID, (h, got)
            continue
        assert got == (_check.circl_json(m, ds.name) if m else _check.MISS), (h, got)


def fuzz_dataset(data: bytes) -> None:
    _fuzz_file(data, "dataset.hlds", hashlookup.open_dataset, exercise_dataset)


# ---------------------------------------------------------------------------
# importers

_EXT = {
    "text": "txt",
    "hashdeep": "hashdeep",
    "csv": "csv",
    "vics": "json",
    "sqlite": "sqlite",
}
_WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32}


def check_batch(b: Any) -> None:
    n = len(b)
    assert n > 0
    for algo, w in _WIDTHS.items():
        arr, has = b.digests(algo)
        assert arr.shape == (n, w) and arr.dtype == np.uint8, algo
        assert has.shape == (n,) and has.dtype == np.bool_, algo
    assert b.size.shape == (n,) and b.size.dtype == np.int64
    assert (b.size >= -1).all()
    assert (b.has_md5 | b.has_sha1 | b.has_sha256).all(), "record without digest"
    for label, rows in b.labels.items():
        assert isinstance(label, str) and label
        assert rows.dtype == np.int64 and len(rows)
        assert rows.min() >= 0 and rows.max() < n and (np.diff(rows) > 0).all()


def importer(fmt: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        if not data:
            return
        flags = data[0]
        path = write("input." + _EXT[fmt], data[1:])
        detect = bool(flags & 2)
        kw: dict[str, Any] = {}
        if fmt == "csv" and not detect and flags & 4:
            kw["label_columns"] = {"category": "Category"}
        report = ImportReport()
        total = 0
        for batch in iter_records(
            path,
            input_format=None if detect else fmt,
            skip_invalid=bool(flags & 1),
            batch_size=4,
            report=report,
            **kw,
        ):
            check_batch(batch)
            total += len(batch)
        assert report.records == total

    return run


def hashdeep_c(data: bytes) -> None:
    """The C reader of hashdeep data lines gives what the Python reader gives
    (records, report, or the same error), both ways of ``skip_invalid``."""
    if not data:
        return
    flags = data[0]
    path = Path(write("input.hashdeep", data[1:]))
    batch = (1, 7, 4096)[flags % 3]
    for skip in (False, True):
        c = data_files.read_hashdeep_both_ways(path, True, skip, batch)
        py = data_files.read_hashdeep_both_ways(path, False, skip, batch)
        assert c == py, (skip, batch, c[:2], py[:2])


# ---------------------------------------------------------------------------
# text digest lists: the C parser against the grammar of docs/API.md

_BLANK = b" \t\r\v\f"
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")


def reference_lines(
    buf: bytes, width: int, max_line: int, skip: bool
) -> tuple[
    int, list[bytes], list[int], list[int], int, int, tuple[int, int, int, int] | None
]:
    """Plain Python reading of digest lines: (status, keys, key lines, key
    line offsets, lines, invalid, (err_line, err_offset, err_length,
    err_status) of the first bad line or None)."""
    want = 2 * width
    keys: list[bytes] = []
    lines: list[int] = []
    offsets: list[int] = []
    invalid = 0
    err = None
    pos = line = 0
    while pos < len(buf):
        end = buf.find(b"\n", pos)
        end = len(buf) if end < 0 else end
        text = buf[pos:end]
        body = text.lstrip(_BLANK)
        i = len(text) - len(body)
        bad = None
        if max_line and len(text) > max_line:
            bad = (_core.ETOOLONG, pos, len(text))
        elif body and body[:1] != b"#":
            if body[:1] == b"\\":
                body, i = body[1:], i + 1
            tok = body
            for c in _BLANK:
                cut = tok.find(bytes([c]))
                tok = tok if cut < 0 else tok[:cut]
            if len(tok) == want and all(c in _HEXDIGITS for c in tok):
                keys.append(bytes.fromhex(tok.decode()))
                lines.append(line)
                offsets.append(pos)
            else:
                bad = (
                    _core.EHEX if len(tok) == want else _core.ELENGTH,
                    pos + i,
                    len(tok),
                )
        if bad is not None:
            if err is None:
                err = (line, bad[1], bad[2], bad[0])
            if not skip:
                return bad[0], keys, lines, offsets, line + 1, invalid, err
            invalid += 1
        pos = end + 1
        line += 1
    return _core.OK, keys, lines, offsets, line, invalid, err


def fuzz_lines(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, width, buf = data[0], data[1] % 66, data[2:]
    skip = bool(flags & 1)
    max_line = (0, 40, 64, 65, 129)[(flags >> 1) % 5]
    cap = len(buf) // (2 * width + 1) + 1 if width else 1
    out = np.zeros(cap * max(width, 1), np.uint8)
    idx = np.zeros(cap, np.int64)
    offs = np.zeros(cap, np.int64)
    if not 1 <= width <= 64:
        _expect(False, _core.parse_lines, buf, width, max_line, out, idx, offs, skip)
        return
    got = _core.parse_lines(buf, width, max_line, out, idx, offs, skip)
    status, n, nlines, invalid, eline, eoff, elen, estatus = got
    r_status, r_keys, r_lines, r_offs, r_nlines, r_invalid, r_err = reference_lines(
        buf, width, max_line, skip
    )
    assert status == r_status, (got, r_status)
    assert n == len(r_keys), (n, len(r_keys))
    assert out[: n * width].tobytes() == b"".join(r_keys)
    assert idx[:n].tolist() == r_lines and offs[:n].tolist() == r_offs
    assert nlines == r_nlines and invalid == r_invalid, (got, r_nlines, r_invalid)
    if r_err is not None:
        assert (eline, eoff, elen, estatus) == r_err, (got, r_err)


def fuzz_matchlines(data: bytes) -> None:
    """KeyTable.match_lines (parse, look up and select lines in one C call,
    the `match` text path) against reference_lines and a set: the same
    status, counts, first bad line, and exactly the selected lines.  The
    first bytes pick known digests to put in front, so that there are hits."""
    if len(data) < 3:
        return
    fx = _batch_fixture()
    flags, picks, rest = data[0], data[1 : 1 + data[1] % 8], data[1 + data[1] % 8 :]
    skip, invert = bool(flags & 1), bool(flags & 2)
    max_line = (0, 0, 33, 40, 129)[(flags >> 2) % 5]
    crlf = b"\r" if flags & 32 else b""
    buf = (
        b"".join(bytes(fx["keys"][p % 64]).hex().encode() + crlf + b"\n" for p in picks)
        + rest
    )
    out = bytearray(len(buf) + 1)
    got = fx["index"].match_lines(buf, max_line, skip, invert, out)
    status, n, nlines, invalid, found, selected, out_len, eline, eoff, elen = got
    r_status, r_keys, _r_lines, r_offs, r_nlines, r_invalid, r_err = reference_lines(
        buf, 16, max_line, skip
    )
    assert status == r_status, (got, r_status)
    assert nlines == r_nlines and invalid == r_invalid, (got, r_nlines, r_invalid)
    if r_err is not None:
        assert (eline, eoff, elen, status if not skip else r_err[3]) == r_err, (
            got,
            r_err,
        )
    if status != _core.OK:
        return  # the output of a chunk with a bad line is discarded
    assert n == len(r_keys)
    hits = [k in fx["members"] for k in r_keys]
    assert found == sum(hits)
    want = []
    for hit, start in zip(hits, r_offs, strict=True):
        if hit != invert:
            end = buf.find(b"\n", start)
            line = buf[start : len(buf) if end < 0 else end]
            want.append(line[:-1] if line.endswith(b"\r") else line)
    assert selected == len(want)
    assert bytes(out[:out_len]) == b"".join(x + b"\n" for x in want), (got, want)
    counted = fx["index"].match_lines(buf, max_line, skip, invert, None)
    assert counted[:6] == got[:6] and counted[6] == 0


def fuzz_build(data: bytes) -> None:
    """build_index over a text list: the index holds exactly the digests
    the grammar finds, or InputError when a line is bad (strict mode)."""
    if not data:
        return
    skip = bool(data[0] & 1)
    text = data[1:]
    src = write("list.txt", text)
    out = scratch("built.hlx")
    width, bad_first = None, False
    for line in text.split(b"\n"):
        body = line.strip(_BLANK)
        if not body or body.startswith(b"#"):
            continue
        tok = body.split(None, 1)[0]
        tok = tok[1:] if tok.startswith(b"\\") else tok
        if len(tok) in (32, 40, 64) and all(c in _HEXDIGITS for c in tok):
            width = len(tok) // 2
            break
        bad_first = True
        if not skip:
            break
    status, keys = (
        (_core.OK, []) if width is None else reference_lines(text, width, 0, skip)[:2]
    )
    strict_bad = not skip and (bad_first or status != _core.OK)
    try:
        report = hashlookup.build_index(src, out, skip_invalid=skip)
    except InputError:
        # An input without any digest may be refused too.
        assert strict_bad or width is None, "build refused a valid list"
        return
    assert not strict_bad, "build accepted a bad line"
    assert report.unique_keys == len(set(keys))
    with hashlookup.open_index(out) as idx:
        idx.verify()
        assert set(map(bytes, idx.keys())) == set(keys)


# ---------------------------------------------------------------------------
# batch and single lookups with odd arguments

_fixture: dict[str, Any] = {}


def _batch_fixture() -> dict[str, Any]:
    if not _fixture:
        rng = np.random.default_rng(15)
        keys = rng.integers(0, 256, (64, 16), dtype=np.uint8)
        path = scratch("batch.hlx")
        hashlookup.build_index(keys, path)
        src = scratch("batch.sha1")
        sha1 = rng.integers(0, 256, (16, 20), dtype=np.uint8)
        with open(src, "w") as f:
            f.write("\n".join(bytes(k).hex() for k in sha1) + "\n")
        ds_path = scratch("batch.hlds")
        hashlookup.build_dataset({"a": src}, ds_path)
        _fixture.update(
            index=hashlookup.open_index(path),
            members=set(map(bytes, keys)),
            keys=keys,
            ds=hashlookup.open_dataset(ds_path),
            ds_members=set(map(bytes, sha1)),
            sha1=sha1,
        )
    return _fixture


def _odd_key(fdp: Any, fx: dict[str, Any]) -> Any:
    kind = fdp.ConsumeIntInRange(0, 11)
    member = bytes(fx["keys"][fdp.ConsumeIntInRange(0, 63)])
    if kind == 0:
        return member
    if kind == 1:
        return member.hex() if fdp.ConsumeBool() else member.hex().upper()
    if kind == 2:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 70))
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 70))
    if kind == 4:
        return fdp.ConsumeString(32)
    if kind == 5:
        return bytearray(fdp.ConsumeBytes(16))
    if kind == 6:
        return memoryview(fdp.ConsumeBytes(32))[::2]
    if kind == 7:
        return np.frombuffer(fdp.ConsumeBytes(16), np.uint8)
    if kind == 8:
        return bytes(fx["sha1"][fdp.ConsumeIntInRange(0, 15)])
    return (None, 7, 1.5, [member], ())[fdp.ConsumeIntInRange(0, 4)]


def _as_key(item: Any, width: int) -> bytes | None:
    """What the library should read item as for a table of `width` bytes
    (None: not a key of that table)."""
    if isinstance(item, str):
        if len(item) == 2 * width and all(c in "0123456789abcdefABCDEF" for c in item):
            return bytes.fromhex(item)
        return None
    try:
        b = memoryview(item).tobytes()
    except TypeError:
        return None
    return b if len(b) == width else None


def _digest_width(item: Any) -> int:
    """Width of the md5/sha1/sha256 digest item would be, or 0."""
    for w in (16, 20, 32):
        if _as_key(item, w) is not None:
            return w
    return 0


def _odd_array(fdp: Any) -> np.ndarray:
    dtype = (np.uint8, np.int8, np.uint16, np.bool_, "S16", "V16", np.float32, "S8")[
        fdp.ConsumeIntInRange(0, 7)
    ]
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400))
    item = np.dtype(dtype).itemsize
    arr = np.frombuffer(raw[: len(raw) // item * item], dtype)
    shape = fdp.ConsumeIntInRange(0, 4)
    if shape == 1 and arr.size % 16 == 0:
        arr = arr.reshape(-1, 16)
    elif shape == 2 and arr.size % 8 == 0:
        arr = arr.reshape(-1, 8)
    elif shape == 3 and arr.size % 32 == 0:
        arr = arr.reshape(-1, 2, 16)
    elif shape == 4 and arr.size % 32 == 0:
        arr = arr.reshape(-1, 32)[:, ::2]  # not contiguous
    return arr


def _array_rows(arr: np.ndarray, width: int) -> list[bytes] | None:
    """The keys a batch call should read from arr, or None if it must refuse."""
    if arr.dtype.kind in "SV" and arr.dtype.itemsize == width:
        flat = np.ascontiguousarray(arr).tobytes()
    elif arr.dtype != np.uint8:
        return None
    elif (arr.ndim == 2 and arr.shape[1] == width) or (
        arr.ndim == 1 and arr.size % width == 0
    ):
        flat = np.ascontiguousarray(arr).tobytes()
    else:
        return None
    return [flat[i : i + width] for i in range(0, len(flat), width)]


REFUSED = object()


def _expect(valid: bool | None, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call fn; a TypeError/ValueError with a message is the documented
    refusal of a bad argument, and must happen exactly when valid is False
    (None: either is fine)."""
    try:
        result = fn(*args, **kw)
    except (TypeError, ValueError) as e:
        if isinstance(e, (IndexFormatError, InputError)):
            raise
        assert valid is not True, f"refused a valid argument: {e!r}"
        assert str(e), "an error without a message"
        return REFUSED
    assert valid is not False, f"accepted an invalid argument {args!r:.200}"
    return result


def fuzz_batch(data: bytes) -> None:
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    fx = _batch_fixture()
    idx, members, ds, ds_members = (
        fx["index"],
        fx["members"],
        fx["ds"],
        fx["ds_members"],
    )
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        op = fdp.ConsumeIntInRange(0, 6)
        if op == 0:
            key = _odd_key(fdp, fx)
            want = _as_key(key, 16)
            got = _expect(want is not None, idx.__contains__, key)
            if got is not REFUSED:
                assert got == (want in members), key
                assert (idx.find(key) >= 0) == got
        elif op == 1:
            items = [_odd_key(fdp, fx) for _ in range(fdp.ConsumeIntInRange(0, 9))]
            want = [_as_key(x, 16) for x in items]
            threads = fdp.ConsumeIntInRange(-1, 3)
            rows = _expect(
                None not in want and threads >= 0, idx.find_many, items, threads=threads
            )
            if rows is not REFUSED:
                assert (rows >= 0).tolist() == [k in members for k in want]
                assert idx.contains_many(items).tolist() == (rows >= 0).tolist()
        elif op == 2:
            flat = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 100))
            buf = (bytes, bytearray, memoryview)[fdp.ConsumeIntInRange(0, 2)](flat)
            mask = _expect(len(flat) % 16 == 0, idx.contains_many, buf)
            if mask is not REFUSED:
                assert mask.tolist() == [
                    flat[i : i + 16] in members for i in range(0, len(flat), 16)
                ]
        elif op == 3:
            arr = _odd_array(fdp)
            want = _array_rows(arr, 16)
            out = None
            valid = want is not None
            if fdp.ConsumeBool():
                out = np.zeros(
                    fdp.ConsumeIntInRange(0, 30),
                    (np.bool_, np.int64)[fdp.ConsumeIntInRange(0, 1)],
                )
                valid = valid and out.dtype == np.bool_ and len(out) == len(want)
            mask = _expect(valid, idx.contains_many, arr, out=out)
            if mask is not REFUSED:
                assert mask.tolist() == [k in members for k in want]
                assert out is None or mask is out
        elif op == 4:
            key = _odd_key(fdp, fx)
            w = _digest_width(key)
            m = _expect(bool(w), ds.lookup, key)
            if m is not REFUSED:
                kb = _as_key(key, w)
                assert (m is not None) == (kb in ds_members), key
                if m is not None:
                    assert m.algorithm == "sha1" and m.sha1 == kb.hex()
        elif op == 5:
            items = [_odd_key(fdp, fx) for _ in range(fdp.ConsumeIntInRange(0, 9))]
            res = ds.lookup_many(items)
            assert len(res) == len(items)
            for item, r in zip(items, res):
                w = _digest_width(item)
                if not w:
                    assert isinstance(r, hashlookup.Invalid) and r.reason, (item, r)
                    continue
                kb = _as_key(item, w)
                assert (r is not None) == (kb in ds_members), (item, r)
                if r is not None:
                    assert r.sha1 == kb.hex()
        else:
            items = [_odd_key(fdp, fx) for _ in range(fdp.ConsumeIntInRange(0, 5))]
            width = fdp.ConsumeIntInRange(0, 70)
            want = [_as_key(x, width) for x in items]
            packed = _expect(
                None not in want and 1 <= width <= 64,
                _core.pack_keys,
                items,
                width,
                "a key",
            )
            if packed is not REFUSED:
                assert bytes(packed) == b"".join(want)


TARGETS: dict[str, Target] = {
    "index": Target(
        fuzz_index,
        (IndexFormatError,),
        lambda: seeds.with_flags(seeds.index_files()),
        1 << 16,
    ),
    "dataset": Target(
        fuzz_dataset,
        (IndexFormatError,),
        lambda: seeds.with_flags(seeds.dataset_files() + seeds.index_files()[:6]),
        1 << 16,
    ),
    "text": Target(
        importer("text"), (InputError,), lambda: seeds.importer_files("text"), 4096
    ),
    "hashdeep": Target(
        importer("hashdeep"),
        (InputError,),
        lambda: seeds.importer_files("hashdeep"),
        4096,
    ),
    "hashdeep_c": Target(
        hashdeep_c, (), lambda: seeds.importer_files("hashdeep"), 4096
    ),
    "csv": Target(
        importer("csv"), (InputError,), lambda: seeds.importer_files("csv"), 4096
    ),
    "vics": Target(
        importer("vics"), (InputError,), lambda: seeds.importer_files("vics"), 8192
    ),
    "sqlite": Target(
        importer("sqlite"),
        (InputError,),
        lambda: seeds.importer_files("sqlite"),
        1 << 15,
    ),
    "build": Target(
        fuzz_build, (InputError,), lambda: seeds.importer_files("text")[::3], 4096
    ),
    "lines": Target(fuzz_lines, (), seeds.digest_lines, 4096),
    "matchlines": Target(fuzz_matchlines, (), seeds.digest_lines, 4096),
    "batch": Target(fuzz_batch, (), seeds.batch_programs, 2048),
    "pdq": Target(
        near_target.fuzz_pdq, (IndexFormatError,), near_target.seeds, 1 << 16
    ),
}


def run_one(name: str, data: bytes) -> None:
    """Run target `name` on one input; documented exceptions are answers."""
    target = TARGETS[name]
    try:
        target.run(data)
    except target.documented as e:
        if not str(e):
            raise AssertionError(f"{type(e).__name__} without a message") from e
