"""Export keys as a DCSO "bloom v1" Bloom filter: the file format of DCSO's Go
``bloom`` tool (github.com/DCSO/bloom) and of the Python package ``flor``.

Layout and hashing follow ``flor`` 1.1.3 (``flor/filter.py``, ``flor/fnv.py``)
exactly, and the output is byte-identical to what flor writes after adding the
same values in the same order (see docs/BLOOM_EXPORT.md)::

    header  six little-endian 8-byte fields (48 bytes):
            flags  uint64   1 (flor and Go accept a file when flags & 0xFF == 1)
            n      uint64   capacity
            p      float64  false-positive probability
            k      uint64   bit indexes per value
            m      uint64   number of bits
            N      uint64   flor's element count: add() calls that set a new bit
    bits    ceil(m / 64) * 8 bytes: bit i of the filter is bit (i % 8) of
            byte (i // 8), i.e. bit (i % 64) of little-endian uint64 word i // 64
    data    every byte after the bits, to the end of the file (flor
            ``BloomFilter.data``, Go ``BloomFilter.Data`` / ``bloom get-data``)

    m = int(abs(ceil(n * log(p) / pow(log(2), 2))))     # flor's float formula
    k = int(ceil(log(2) * m / n))

A digest is added as its uppercase hex spelling in ASCII, no newline.  The bit
indexes of a value::

    h = FNV-1-64(value) % 18446744073709551557
    k times:  h = ((h * 18446744073709550147) mod 2**64) % 18446744073709551557
              index = h % m

The product wraps at 64 bits (Go uint64 arithmetic; flor masks with
``& 0xFFFFFFFFFFFFFFFF``) *before* the reduction: it is not an exact modular
multiplication, so 128-bit arithmetic would give a different, incompatible
filter.  Everything below is plain uint64 numpy arithmetic, which wraps the
same way.
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from hashlookup.store.index import HashIndex

from hashlookup._atomic import atomic_output

__all__ = [
    "BloomExportReport",
    "BloomExportWarning",
    "DcsoBloomFilter",
    "dcso_fingerprint",
    "dcso_parameters",
    "export_bloom",
    "read_bloom",
]

#: FNV-1 64-bit offset basis and prime (flor/fnv.py; Go hash/fnv New64)
FNV64_OFFSET = 14695981039346656037
FNV64_PRIME = 1099511628211
#: modulus of the index generator ("m" in flor/filter.py and Go bloom.go), 2**64 - 59
DCSO_MODULUS = 18446744073709551557
#: multiplier of the index generator ("g" in flor/filter.py and Go bloom.go)
DCSO_MULTIPLIER = 18446744073709550147
#: the version flor and Go accept (they check ``flags & 0xFF == 1``)
DCSO_VERSION = 1
#: flags, n, p, k, m, N
HEADER = struct.Struct("<QQdQQQ")

#: Fewest keys (of the capacity) per residue class of the bit index modulo
#: 2**a, the largest power of two dividing m.  DCSO's index generator keeps
#: the low bits of its state, so with m = odd * 2**a all k indexes of a value
#: are fixed modulo 2**a by the low a bits of its FNV hash: the filter is
#: really 2**a interleaved sub-filters, unevenly loaded when each gets few
#: keys, and the false-positive rate exceeds p (DCSO/bloom issue #19: 23x for
#: m = 2**20).  Measured excess: about 10% at 64 keys per class, 40% at 16,
#: 5x at 3; 256 keeps it to a few percent.  See docs/BLOOM_EXPORT.md.
MIN_KEYS_PER_CLASS = 256

_MASK64 = (1 << 64) - 1
_U64_PRIME = np.uint64(FNV64_PRIME)
_U64_OFFSET = np.uint64(FNV64_OFFSET)
_U64_MODULUS = np.uint64(DCSO_MODULUS)
_U64_MULT = np.uint64(DCSO_MULTIPLIER)

# Keys per chunk (a power of two).  Larger chunks mean fewer passes of the
# sequential bit-setting step over the filter (its main cost); smaller ones
# less memory per chunk in flight (about 40 * k bytes per key).
_CHUNK = 1 << 16


class BloomExportWarning(UserWarning):
    """The requested filter will have a worse false-positive rate than asked."""


@dataclass
class BloomExportReport:
    """What export_bloom wrote.

    Attributes
    ----------
    path : str
        The filter file written.
    n : int
        Capacity, as in the header.
    m : int
        Number of bits, as in the header.
    k : int
        Hash rounds per key, as in the header.
    fpr : float
        False-positive probability ``p``, as in the header.
    file_size : int
        Bytes written.
    seconds : float
        Wall-clock time of the export.
    keys : int
        How many keys were added.
    elements : int
        The element count N in the header, counted the way flor counts it:
        keys whose insertion set at least one new bit.  It can therefore be
        a little lower than ``keys``.
    """

    path: str
    n: int
    m: int
    k: int
    fpr: float
    file_size: int
    seconds: float
    keys: int = 0
    elements: int = 0


# ---------------------------------------------------------------------------
# parameters and the pure-Python reference


def dcso_parameters(n: int, p: float) -> tuple[int, int]:
    """``(m, k)`` for capacity ``n`` and false-positive probability ``p``.

    Same float expressions, in the same order, as ``flor.BloomFilter.__init__``
    (and Go ``bloom.Initialize``)."""
    ln2_squared = math.pow(math.log(2.0), 2.0)
    m = int(abs(math.ceil(float(n) * math.log(float(p)) / ln2_squared)))
    k = math.ceil(math.log(2) * float(m) / float(n))
    return m, k


def _keys_per_class(n: int, m: int) -> float:
    """Capacity per residue class modulo the power of two dividing m."""
    return n / (m & -m)


def _unevenly_hashed(n: int, m: int) -> bool:
    return m % 2 == 0 and _keys_per_class(n, m) < MIN_KEYS_PER_CLASS


def _fnv1_64(value: bytes) -> int:
    h = FNV64_OFFSET
    for byte in value:
        h = (h * FNV64_PRIME) & _MASK64
        h ^= byte
    return h


def dcso_fingerprint(key_hex_upper: bytes, k: int, m: int) -> list[int]:
    """The ``k`` bit indexes of one value in a filter of ``m`` bits.

    Pure-Python reference, transcribed from flor's ``BloomFilter.fingerprint``.
    ``key_hex_upper`` is the value exactly as added (for exported digests:
    the uppercase hex spelling in ASCII, no newline)."""
    hn = _fnv1_64(bytes(key_hex_upper)) % DCSO_MODULUS
    out = []
    for _ in range(k):
        hn = ((hn * DCSO_MULTIPLIER) & _MASK64) % DCSO_MODULUS
        out.append(hn % m)
    return out


# ---------------------------------------------------------------------------
# vectorised hashing


def _hex_upper_chars(keys_t: np.ndarray) -> np.ndarray:
    """ASCII codes of the uppercase hex spelling, one row per character.

    ``keys_t`` is a transposed chunk (width, c); returns uint8 (2 * width, c),
    row 2j the high and row 2j + 1 the low digit of byte j of every key."""
    width, c = keys_t.shape
    digits = np.empty((width, 2, c), dtype=np.uint8)
    np.right_shift(keys_t, 4, out=digits[:, 0])
    np.bitwise_and(keys_t, 15, out=digits[:, 1])
    letters = digits > 9
    digits += 48  # '0'..'9'
    digits += letters * np.uint8(7)  # 10..15 -> 'A'..'F'
    return digits.reshape(2 * width, c)


def _fnv1_hex_upper(keys_t: np.ndarray) -> np.ndarray:
    """FNV-1 64 of the uppercase hex spelling of every key.

    ``keys_t`` is a transposed chunk, shape (width, c), C-contiguous, so each
    byte position is one contiguous row.  Returns a uint64 array (c,)."""
    chars = _hex_upper_chars(keys_t)
    h = np.full(keys_t.shape[1], _U64_OFFSET, dtype=np.uint64)
    for row in chars:
        np.multiply(h, _U64_PRIME, out=h)
        # the uint8 characters are zero-extended to uint64
        np.bitwise_xor(h, row, out=h, casting="unsafe")
    return h


def _reduce_modulus(h: np.ndarray, scratch: np.ndarray) -> None:
    """``h %= 2**64 - 59`` in place.  Any uint64 is below twice the modulus,
    so one subtraction, needed by only 59 of the 2**64 values (hence the
    cheap test first)."""
    np.greater_equal(h, _U64_MODULUS, out=scratch)
    if scratch.any():
        np.subtract(h, _U64_MODULUS, out=h, where=scratch)


def _index_rounds(h: np.ndarray, k: int, m: int) -> np.ndarray:
    """The k bit indexes for FNV hashes ``h`` (uint64 (c,), consumed):
    uint64 (k, c), column j = value j."""
    c = h.shape[0]
    scratch = np.empty(c, dtype=np.bool_)
    _reduce_modulus(h, scratch)
    out = np.empty((k, c), dtype=np.uint64)
    q = np.empty(c, dtype=np.uint64)
    m64 = np.uint64(m)
    for i in range(k):
        np.multiply(h, _U64_MULT, out=h)  # wraps at 2**64, like Go and flor
        _reduce_modulus(h, scratch)
        # h % m as h - (h // m) * m: numpy divides by a scalar with libdivide,
        # several times faster than its remainder
        np.floor_divide(h, m64, out=q)
        np.multiply(q, m64, out=q)
        np.subtract(h, q, out=out[i])
    return out


def _fingerprints(chunk: np.ndarray, k: int, m: int) -> np.ndarray:
    """Bit indexes of a chunk of keys: uint64 (k, c), column j = key j."""
    return _index_rounds(_fnv1_hex_upper(np.ascontiguousarray(chunk.T)), k, m)


# ---------------------------------------------------------------------------
# building the bit array


def _chunk_entries(
    chunk: np.ndarray, k: int, m: int, rows: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """The distinct bits a chunk of keys sets, and the first key setting each.

    Depends on the chunk only, so it runs in worker threads.  Returns
    ``(c, bits, first_row)``: ``bits`` are the sorted distinct bit indexes
    of the chunk's k*c indexes, ``first_row[j]`` is the lowest row of the
    chunk having bit ``bits[j]``.  One sort of ``bit << shift | row`` pairs
    gives both (``rows`` is arange(chunk size), a power of two)."""
    c = chunk.shape[0]
    shift = rows.size.bit_length() - 1
    fp = _fingerprints(chunk, k, m).view(np.int64)  # every value < m < 2**63
    pair = np.left_shift(fp, shift, out=fp)
    pair |= rows[:c]  # broadcast over the k rounds
    pair = pair.reshape(-1)
    pair.sort()
    pos = pair >> shift
    first = np.empty(pos.size, dtype=np.bool_)
    first[:1] = True
    np.not_equal(pos[1:], pos[:-1], out=first[1:])
    first_row = pair[first]
    first_row &= rows.size - 1
    return c, pos[first], first_row


def _map_chunks(
    keys: np.ndarray, k: int, m: int, chunk: int, threads: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """_chunk_entries of every chunk, in row order; with threads > 1
    computed ahead by worker threads (numpy releases the GIL in its loops)."""
    starts = range(0, keys.shape[0], chunk)
    rows = np.arange(chunk, dtype=np.int64)
    if threads <= 1 or len(starts) < 2:
        for s in starts:
            yield _chunk_entries(keys[s : s + chunk], k, m, rows)
        return
    with ThreadPoolExecutor(
        max_workers=threads, thread_name_prefix="bloom-export"
    ) as ex:
        pending: deque[Future[tuple[int, np.ndarray, np.ndarray]]] = deque()
        try:
            for s in starts:
                pending.append(
                    ex.submit(_chunk_entries, keys[s : s + chunk], k, m, rows)
                )
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def _build_bits(
    keys: np.ndarray, k: int, m: int, threads: int
) -> tuple[np.ndarray, int]:
    """Set the bits of every key; returns (one bool per bit, element count N).

    N is counted like flor's ``add()``: keys (in row order) that set at least
    one bit not set before them.  Chunks are applied in row order; within a
    chunk a key is new when it is the chunk's first key with a bit that no
    earlier chunk set (_chunk_entries gives the first key of each bit).
    The bool array has ceil(m/64)*64 entries, so that packbits gives exactly
    flor's byte count; the entries past m stay False.
    """
    chunk = _CHUNK
    if chunk < 1 or chunk & (chunk - 1):
        raise AssertionError("_CHUNK must be a power of two")
    if m >= 1 << (63 - (chunk.bit_length() - 1)):  # (bit, row) in one int64
        raise ValueError(f"filter too large: {m} bits")
    bits = np.zeros(-(-m // 64) * 64, dtype=np.bool_)
    count = 0
    new_rows = np.empty(chunk, dtype=np.bool_)
    for c, pos, first_row in _map_chunks(keys, k, m, chunk, threads):
        fresh = bits[pos]
        np.logical_not(fresh, out=fresh)
        nr = new_rows[:c]
        nr[:] = False
        nr[first_row[fresh]] = True
        count += int(np.count_nonzero(nr))
        bits[pos] = True
    return bits, count


# ---------------------------------------------------------------------------
# argument checks


def _key_array(keys: Any) -> np.ndarray:
    if isinstance(keys, np.ndarray):
        arr = keys
    elif callable(getattr(keys, "keys", None)) and not isinstance(keys, dict):
        arr = keys.keys()
    else:
        raise TypeError(
            "keys must be a HashIndex (anything whose .keys() returns an "
            "(n, width) uint8 array) or an (n, width) uint8 numpy array, "
            f"not {type(keys).__name__}"
        )
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 2:
        got = (
            f"a {arr.dtype} array of shape {arr.shape}"
            if isinstance(arr, np.ndarray)
            else type(arr).__name__
        )
        raise TypeError(f"keys must be an (n, width) numpy uint8 array, got {got}")
    if arr.shape[1] < 1:
        raise ValueError("keys must be at least 1 byte wide")
    return arr


def _check_fpr(fpr: Any) -> float:
    if isinstance(fpr, (bool, np.bool_)) or not isinstance(
        fpr, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"fpr must be a float, not {type(fpr).__name__}")
    p = float(fpr)
    if not 0.0 < p < 1.0:  # also rejects NaN
        raise ValueError(f"fpr must be strictly between 0 and 1, got {fpr!r}")
    return p


def _check_capacity(capacity: Any, count: int) -> int:
    if isinstance(capacity, (bool, np.bool_)) or not isinstance(
        capacity, (int, np.integer)
    ):
        raise TypeError(
            f"capacity must be an int or None, not {type(capacity).__name__}"
        )
    n = int(capacity)
    if n < 1:
        raise ValueError(f"capacity must be at least 1, got {n}")
    if n < count:
        raise ValueError(
            f"capacity ({n}) is smaller than the number of keys ({count}): the "
            "false-positive rate would exceed fpr (and flor's add() raises "
            "CapacityError)"
        )
    if n >= 1 << 64:
        raise ValueError(f"capacity must fit in 64 bits, got {n}")
    return n


def _default_capacity(count: int, p: float) -> int:
    """The number of keys, or the next capacity whose m is not dominated by
    a power of two (see MIN_KEYS_PER_CLASS); a step changes m by
    log(1/p)/log(2)**2 bits, so this is almost always the count itself."""
    n = max(count, 1)
    for candidate in range(n, n + 4096):
        m, _ = dcso_parameters(candidate, p)
        if not _unevenly_hashed(candidate, m):
            return candidate
    return n  # not reached for any p in (0, 1); the caller warns


def _metadata_bytes(metadata: Any) -> bytes:
    if metadata is None:
        return b""
    if isinstance(metadata, dict):
        try:
            text = json.dumps(
                metadata,
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
                allow_nan=False,
            )
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadata dict is not JSON-serialisable: {e}") from None
        return text.encode("utf-8")
    if isinstance(metadata, str):
        return metadata.encode("utf-8")
    if isinstance(metadata, (bytes, bytearray, memoryview)):
        return bytes(metadata)
    raise TypeError(
        f"metadata must be a dict, bytes, str or None, not {type(metadata).__name__}"
    )


def _check_threads(threads: Any, count: int) -> int:
    if threads is None:
        if count < 4 * _CHUNK:
            return 1
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, 4))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


# ---------------------------------------------------------------------------
# export


def export_bloom(
    keys: HashIndex | npt.NDArray[np.uint8],
    path: str | os.PathLike[str],
    *,
    fpr: float = 1e-4,
    capacity: int | None = None,
    metadata: dict[str, Any] | bytes | str | None = None,
    threads: int | None = None,
) -> BloomExportReport:
    """Write keys as a DCSO bloom v1 filter, readable by flor and DCSO bloom.

    Parameters
    ----------
    keys : HashIndex or numpy.ndarray
        A HashIndex (anything whose ``.keys()`` returns an (n, width) uint8
        array) or an (n, width) uint8 numpy array.  Each row is added as its
        uppercase hex spelling (``b"D41D8CD98F00B204E9800998ECF8427E"``), in
        row order.
    path : str or os.PathLike
        Output file.  Written atomically: an existing file is replaced only
        by a complete new one, and left untouched on any error.
    fpr : float, default 1e-4
        False-positive probability ``p``, 0 < fpr < 1.
    capacity : int, optional
        Capacity ``n`` in the header; m and k follow from n and p.  Default:
        the number of keys (1 for none), raised in rare cases (by 1, as a
        rule) so that m is not dominated by a power of two, which ruins the
        false-positive rate of DCSO's hashing (DCSO/bloom issue #19).  An
        explicit capacity is used as given; if its m is such a bad value, a
        BloomExportWarning says so.  It must not be below the number of
        keys.  flor's ``add()`` raises ``CapacityError`` once its count
        reaches the capacity, so give more room to keep adding values with
        flor.
    metadata : dict, str or bytes, optional
        The trailer after the bit array (flor ``BloomFilter.data``, Go
        ``BloomFilter.Data``, ``bloom get-data``): a dict is stored as compact
        UTF-8 JSON with sorted keys, a str as UTF-8, bytes as they are; None
        means no trailer.
    threads : int, optional
        Worker threads that hash ahead of the sequential bit setting; None
        means min(cpu count, 4) from 262,144 keys up, else 1.  The output is
        the same for any value.

    Returns
    -------
    BloomExportReport
        The header's parameters, the counts, the file size and the time.

    Raises
    ------
    TypeError
        `keys`, `fpr`, `capacity` or `metadata` of the wrong type (a
        `keys` array that is not 2-d uint8, a metadata dict that is not
        JSON-serialisable).
    ValueError
        `fpr` not strictly between 0 and 1; `capacity` below 1, below the
        number of keys or beyond 64 bits; `threads` not a positive int;
        keys 0 bytes wide; parameters that give an unusable filter.
    OSError
        The file cannot be written (an existing file is left unchanged).

    Warns
    -----
    BloomExportWarning
        An explicit `capacity` whose m makes the false-positive rate much
        worse than `fpr`.

    Notes
    -----
    Every argument is checked before any work is done or any file touched.
    """
    t0 = time.perf_counter()
    arr = _key_array(keys)
    count = arr.shape[0]
    p = _check_fpr(fpr)
    if capacity is None:
        n = _default_capacity(count, p)
    else:
        n = _check_capacity(capacity, count)
    data = _metadata_bytes(metadata)
    nthreads = _check_threads(threads, count)
    m, k = dcso_parameters(n, p)
    if not 1 <= m < 1 << 64 or k < 1:
        raise ValueError(
            f"fpr={p!r} and capacity={n} give an unusable filter (m={m}, k={k})"
        )
    if _unevenly_hashed(n, m):
        warnings.warn(
            f"m={m} bits = {m // (m & -m)} * 2**{(m & -m).bit_length() - 1}: "
            "with DCSO's hashing the false-positive rate of this filter will be "
            f"well above fpr={p} (DCSO/bloom issue #19); use another capacity, "
            "e.g. the default",
            BloomExportWarning,
            stacklevel=2,
        )

    bits, elements = _build_bits(arr, k, m, nthreads)
    del arr  # no view of a HashIndex mapping may outlive this call
    packed = np.packbits(bits, bitorder="little")  # ceil(m/64) * 8 bytes
    del bits
    header = HEADER.pack(DCSO_VERSION, n, p, k, m, elements)
    with atomic_output(path) as f:
        f.write(header)
        f.write(memoryview(packed))
        f.write(data)
    path_str = os.fspath(path)
    return BloomExportReport(
        path=path_str,
        n=n,
        m=m,
        k=k,
        fpr=p,
        file_size=os.stat(path_str).st_size,
        seconds=time.perf_counter() - t0,
        keys=count,
        elements=elements,
    )


# ---------------------------------------------------------------------------
# reading back (vectorised membership checks)


@dataclass
class DcsoBloomFilter:
    """A DCSO bloom v1 filter, parsed as ``flor.BloomFilter.read`` does.

    ``bits`` holds the bit array as bytes (ceil(m/64) * 8 of them); bit i
    of the filter is ``bits[i >> 3] >> (i & 7) & 1``.  ``data`` is the
    trailer."""

    flags: int
    n: int
    p: float
    k: int
    m: int
    N: int
    bits: np.ndarray
    data: bytes

    def contains_many(
        self, keys: HashIndex | npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.bool_]:
        """Whether each digest of an (n, width) uint8 array (or HashIndex),
        spelt in uppercase hex, passes the filter: flor's ``check`` answer,
        vectorised.  A bool array (n,)."""
        arr = _key_array(keys)
        out = np.empty(arr.shape[0], dtype=np.bool_)
        seven = np.uint64(7)
        three = np.uint64(3)
        for start in range(0, arr.shape[0], _CHUNK):
            chunk = arr[start : start + _CHUNK]
            fp = _fingerprints(chunk, self.k, self.m)  # (k, c)
            byte = self.bits[fp >> three]
            byte >>= (fp & seven).astype(np.uint8)
            out[start : start + chunk.shape[0]] = (byte & np.uint8(1)).all(axis=0)
        return out

    def __contains__(self, value: bytes | str) -> bool:
        """Whether one value passes: a hex str (any case; checked in upper
        case) or the exact bytes that were added."""
        if isinstance(value, str):
            value = value.upper().encode("ascii")
        return all(
            (self.bits[i >> 3] >> (i & 7)) & 1
            for i in dcso_fingerprint(bytes(value), self.k, self.m)
        )


def read_bloom(path: str | os.PathLike[str]) -> DcsoBloomFilter:
    """Read an (uncompressed) DCSO bloom v1 file with flor's rules.

    Raises ValueError for a short file, a wrong version byte or missing bits."""
    name = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
        if len(head) != HEADER.size:
            raise ValueError(
                f"{name}: not a DCSO bloom filter (shorter than the header)"
            )
        flags, n, p, k, m, count = HEADER.unpack(head)
        if flags & 0xFF != DCSO_VERSION:
            raise ValueError(
                f"{name}: invalid version flag {flags & 0xFF} (expected 1)"
            )
        if m < 1:
            raise ValueError(f"{name}: filter has no bits (m=0)")
        nbytes = math.ceil(m / 64.0) * 8
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"{name}: expected {nbytes} bytes of bits, got {len(raw)}")
        data = f.read()
    return DcsoBloomFilter(
        flags=flags,
        n=n,
        p=p,
        k=k,
        m=m,
        N=count,
        bits=np.frombuffer(raw, dtype=np.uint8),
        data=data,
    )
