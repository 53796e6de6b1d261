"""Export keys as a DCSO "bloom v1" Bloom filter (the format of DCSO's Go
``bloom`` tool and of the Python package ``flor``).

The byte layout and the hashing follow ``flor`` 1.1.3 (``flor/filter.py``,
``flor/fnv.py``) exactly; see docs/BLOOM_EXPORT.md.  In short::

    header   6 x 8 bytes, little-endian:
             flags (uint64) = 1          flor/Go check ``flags & 0xFF == 1``
             n     (uint64)              capacity
             p     (float64)             false-positive probability
             k     (uint64)              number of bit indexes per value
             m     (uint64)              number of bits
             N     (uint64)              elements counted by flor's add()
    bits     ceil(m / 64) uint64 words, little-endian; bit i of the filter is
             bit (i % 8) of byte (i // 8) (= bit i % 64 of word i // 64)
    data     any bytes up to the end of the file (flor: ``BloomFilter.data``)

    m = int(abs(ceil(n * log(p) / log(2) ** 2)))      (flor's float formula)
    k = int(ceil(log(2) * m / n))

A value is the uppercase hex spelling of a digest, as ASCII, no newline.  Its
bit indexes::

    h = FNV-1-64(value) % 18446744073709551557
    repeat k times:
        h = ((h * 18446744073709550147) mod 2**64) % 18446744073709551557
        index = h % m

The multiplication wraps at 64 bits (Go ``uint64`` arithmetic; flor masks with
``& 0xFFFFFFFFFFFFFFFF``) *before* the reduction: it is not an exact modular
multiplication, so no 128-bit arithmetic is needed and none must be used.

Everything here is vectorised with numpy (uint64 arithmetic wraps silently on
arrays), in chunks of keys so that temporaries stay in cache.
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashlookup._atomic import atomic_output

__all__ = [
    "BloomExportReport",
    "DcsoBloomFilter",
    "dcso_fingerprint",
    "dcso_parameters",
    "export_bloom",
    "read_bloom",
]

#: FNV-1 64-bit offset basis and prime (flor/fnv.py, Go hash/fnv New64)
FNV64_OFFSET = 14695981039346656037
FNV64_PRIME = 1099511628211
#: the generator's modulus ("m" in flor/filter.py and Go's bloom.go): 2**64 - 59
DCSO_MODULUS = 18446744073709551557
#: the generator's multiplier ("g" in flor/filter.py and Go's bloom.go)
DCSO_MULTIPLIER = 18446744073709550147
#: the only version flor and Go accept (they check ``flags & 0xFF == 1``)
DCSO_VERSION = 1
#: flags, n, p, k, m, N
HEADER = struct.Struct("<QQdQQQ")

_MASK64 = (1 << 64) - 1
_HEX_UPPER = b"0123456789ABCDEF"
# ASCII of the high / low hex digit of every byte value, as uint64 for the FNV loop
_HI_CHAR = np.array([_HEX_UPPER[b >> 4] for b in range(256)], dtype=np.uint64)
_LO_CHAR = np.array([_HEX_UPPER[b & 15] for b in range(256)], dtype=np.uint64)
_U64_PRIME = np.uint64(FNV64_PRIME)
_U64_OFFSET = np.uint64(FNV64_OFFSET)
_U64_MODULUS = np.uint64(DCSO_MODULUS)
_U64_MULT = np.uint64(DCSO_MULTIPLIER)
# Keys per chunk (a power of two).  Bigger chunks mean fewer passes of the
# bit-setting step over the whole filter (its cost); smaller ones less memory
# per chunk in flight (about 40 * k bytes per key).  2**16 measured best.
_CHUNK = 1 << 16


@dataclass
class BloomExportReport:
    """What export_bloom wrote.

    ``n``, ``m``, ``k`` and ``fpr`` are the header fields (capacity, bits, hash
    rounds, false-positive probability); ``keys`` is how many keys were added
    and ``elements`` the element count ``N`` written to the header (flor's
    count: keys whose insertion set at least one new bit, so it can be a few
    less than ``keys``).
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
    m = int(abs(math.ceil(float(n) * math.log(float(p)) / math.pow(math.log(2.0), 2.0))))
    k = int(math.ceil(math.log(2) * float(m) / float(n)))
    return m, k


def _fnv1_64(value: bytes) -> int:
    h = FNV64_OFFSET
    for byte in value:
        h = (h * FNV64_PRIME) & _MASK64
        h ^= byte
    return h


def dcso_fingerprint(key_hex_upper: bytes, k: int, m: int) -> list[int]:
    """The ``k`` bit indexes of one value in a filter of ``m`` bits.

    Pure-Python reference, written from flor's ``BloomFilter.fingerprint``;
    ``key_hex_upper`` is the value exactly as added (for exported digests:
    uppercase hex ASCII, no newline)."""
    hn = _fnv1_64(bytes(key_hex_upper)) % DCSO_MODULUS
    out = []
    for _ in range(k):
        hn = ((hn * DCSO_MULTIPLIER) & _MASK64) % DCSO_MODULUS
        out.append(hn % m)
    return out


# ---------------------------------------------------------------------------
# vectorised hashing


def _fnv1_hex_upper(keys_t: np.ndarray) -> np.ndarray:
    """FNV-1 64 of the uppercase hex spelling of every key.

    ``keys_t`` is the transposed chunk, shape (width, c), C-contiguous, so each
    key byte position is one contiguous row.  Returns a uint64 array (c,)."""
    width, c = keys_t.shape
    h = np.full(c, _U64_OFFSET, dtype=np.uint64)
    ch = np.empty(c, dtype=np.uint64)
    for j in range(width):
        col = keys_t[j]
        np.multiply(h, _U64_PRIME, out=h)
        np.take(_HI_CHAR, col, out=ch)
        np.bitwise_xor(h, ch, out=h)
        np.multiply(h, _U64_PRIME, out=h)
        np.take(_LO_CHAR, col, out=ch)
        np.bitwise_xor(h, ch, out=h)
    return h


def _reduce_modulus(h: np.ndarray, scratch: np.ndarray) -> None:
    """``h %= 2**64 - 59`` in place: h is below 2 * modulus, so one subtraction
    (needed for only 59 of the 2**64 values, hence the cheap test first)."""
    np.greater_equal(h, _U64_MODULUS, out=scratch)
    if scratch.any():
        np.subtract(h, _U64_MODULUS, out=h, where=scratch)


def _fingerprints(chunk: np.ndarray, k: int, m: int) -> np.ndarray:
    """Bit indexes of a chunk of keys: a uint64 array (k, c), column = one key."""
    keys_t = np.ascontiguousarray(chunk.T)
    h = _fnv1_hex_upper(keys_t)
    c = h.shape[0]
    scratch = np.empty(c, dtype=np.bool_)
    _reduce_modulus(h, scratch)
    out = np.empty((k, c), dtype=np.uint64)
    m64 = np.uint64(m)
    for i in range(k):
        np.multiply(h, _U64_MULT, out=h)       # wraps at 2**64, like Go and flor
        _reduce_modulus(h, scratch)
        np.remainder(h, m64, out=out[i])
    return out


def _chunks(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, keys.shape[0], _CHUNK):
        yield start, keys[start:start + _CHUNK]


# ---------------------------------------------------------------------------
# argument handling


def _key_array(keys: Any) -> np.ndarray:
    if hasattr(keys, "keys") and callable(keys.keys) and not isinstance(keys, dict):
        arr = keys.keys()
    elif isinstance(keys, np.ndarray):
        arr = keys
    else:
        raise TypeError(
            "keys must be a HashIndex (anything with .keys() returning an (n, width) "
            f"uint8 array) or an (n, width) uint8 numpy array, not {type(keys).__name__}"
        )
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 2:
        raise TypeError(
            "keys must be an (n, width) numpy uint8 array, got "
            + (f"{arr.dtype} array of shape {arr.shape}" if isinstance(arr, np.ndarray)
               else type(arr).__name__)
        )
    if arr.shape[1] < 1:
        raise ValueError("keys must have a width of at least 1 byte")
    return arr


def _check_fpr(fpr: Any) -> float:
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float, np.floating, np.integer)):
        raise TypeError(f"fpr must be a float, not {type(fpr).__name__}")
    p = float(fpr)
    if not (0.0 < p < 1.0):  # also rejects NaN
        raise ValueError(f"fpr must be a probability strictly between 0 and 1, got {fpr!r}")
    return p


def _check_capacity(capacity: Any, count: int) -> int:
    if capacity is None:
        return max(count, 1)
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    n = int(capacity)
    if n < 1:
        raise ValueError(f"capacity must be at least 1, got {n}")
    if n < count:
        raise ValueError(
            f"capacity ({n}) is smaller than the number of keys ({count}); "
            "flor would raise CapacityError and the false-positive rate would "
            "exceed fpr"
        )
    if n >= 1 << 64:
        raise ValueError(f"capacity must fit in 64 bits, got {n}")
    return n


def _metadata_bytes(metadata: Any) -> bytes:
    if metadata is None:
        return b""
    if isinstance(metadata, dict):
        try:
            text = json.dumps(metadata, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadata dict is not JSON-serialisable: {e}") from None
        return text.encode("utf-8")
    if isinstance(metadata, str):
        return metadata.encode("utf-8")
    if isinstance(metadata, (bytes, bytearray, memoryview)):
        return bytes(metadata)
    raise TypeError(
        f"metadata must be a dict, bytes or None, not {type(metadata).__name__}"
    )


# ---------------------------------------------------------------------------
# export


def _chunk_entries(chunk: np.ndarray, k: int, m: int,
                   rows: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The distinct bits a chunk of keys sets, and which key sets each first.

    Depends only on the chunk, so it runs in worker threads.  Returns
    ``(c, bits, first_row)``: ``bits`` the sorted distinct bit indexes of the
    chunk's k*c fingerprint entries, ``first_row[j]`` the lowest row (key) of
    the chunk that has bit ``bits[j]``.  One sort of (bit << shift | row)
    pairs gives both (``rows`` is arange(chunk size), a power of two)."""
    c = chunk.shape[0]
    shift = rows.size.bit_length() - 1
    fp = _fingerprints(chunk, k, m).view(np.int64)     # (k, c); every value < m < 2**63
    pair = np.left_shift(fp, shift, out=fp)
    pair |= rows[:c]                                   # broadcast over the k rounds
    pair = pair.reshape(-1)
    pair.sort()
    pos = pair >> shift
    first = np.empty(pos.size, dtype=np.bool_)
    first[:1] = True
    np.not_equal(pos[1:], pos[:-1], out=first[1:])
    bits = pos[first]
    first_row = pair[first]
    first_row &= rows.size - 1
    return c, bits, first_row


def _build_bits(keys: np.ndarray, k: int, m: int, threads: int) -> tuple[np.ndarray, int]:
    """Set the bits of every key; returns (one bool per filter bit, N).

    N is counted like flor's ``add()``: the keys (in row order) that set at
    least one bit that was not set before them.  Chunks are applied in row
    order; within a chunk, a key is new when it is the first key of the chunk
    with a bit that no earlier chunk set (see _chunk_entries).
    """
    chunk = _CHUNK
    assert chunk > 0 and chunk & (chunk - 1) == 0, "_CHUNK must be a power of two"
    if m >= 1 << (63 - (chunk.bit_length() - 1)):      # (bit, row) in one int64
        raise ValueError(f"filter too large: {m} bits")
    nwords = -(-m // 64)
    bits = np.zeros(nwords * 64, dtype=np.bool_)
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


def _map_chunks(keys: np.ndarray, k: int, m: int, chunk: int,
                threads: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """_chunk_entries of every chunk, in order; with threads > 1 computed
    ahead by a pool of worker threads (numpy releases the GIL in its loops)."""
    starts = range(0, keys.shape[0], chunk)
    rows = np.arange(chunk, dtype=np.int64)
    if threads <= 1 or len(starts) < 2:
        for s in starts:
            yield _chunk_entries(keys[s:s + chunk], k, m, rows)
        return
    ahead = threads + 1
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bloom-export") as ex:
        pending: deque[Future] = deque()
        try:
            for s in starts:
                pending.append(ex.submit(_chunk_entries, keys[s:s + chunk], k, m, rows))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def _default_threads(nkeys: int) -> int:
    if nkeys < 4 * _CHUNK:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def export_bloom(keys: Any, path: str | os.PathLike[str], *, fpr: float = 1e-4,
                 capacity: int | None = None,
                 metadata: dict | bytes | str | None = None,
                 threads: int | None = None) -> BloomExportReport:
    """Write the keys as a DCSO bloom v1 filter readable by flor and DCSO bloom.

    Parameters
    ----------
    keys
        A HashIndex (anything whose ``.keys()`` returns an (n, width) uint8
        array) or an (n, width) uint8 numpy array.  Each key is added as its
        uppercase hex spelling (``b"D41D8CD98F00B204E9800998ECF8427E"``), in
        row order.
    path
        Output file, written atomically (an existing file is replaced only
        when the new one is complete, and left untouched on any error).
    fpr
        False-positive probability ``p`` of the filter, 0 < fpr < 1.
    capacity
        Capacity ``n`` of the filter; defaults to the number of keys (at least
        1).  Must not be smaller than the number of keys.  Give a larger value
        to leave room for flor/Go ``add``; flor's ``add`` raises
        ``CapacityError`` once the count reaches the capacity.
    metadata
        Trailer bytes after the bit array (flor: ``BloomFilter.data``; Go:
        ``BloomFilter.Data``, ``bloom get-data``).  A dict is stored as compact
        UTF-8 JSON with sorted keys, a str as UTF-8, bytes as they are; None
        means no trailer.
    threads
        Worker threads hashing ahead of the (sequential) bit setting; None
        picks min(cpu count, 4) for 65,536 keys or more, else 1.  The output
        does not depend on it.

    Every argument is checked before anything is computed or written.
    """
    t0 = time.perf_counter()
    arr = _key_array(keys)
    p = _check_fpr(fpr)
    n = _check_capacity(capacity, arr.shape[0])
    data = _metadata_bytes(metadata)
    if threads is None:
        threads = _default_threads(arr.shape[0])
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    m, k = dcso_parameters(n, p)
    if m < 1 or k < 1 or m >= 1 << 64:
        raise ValueError(f"fpr={p!r} and capacity={n} give an unusable filter (m={m}, k={k})")

    count = arr.shape[0]
    bits, elements = _build_bits(arr, k, m, threads)
    del arr  # do not keep a view over a HashIndex mapping alive
    packed = np.packbits(bits, bitorder="little")   # ceil(m/64) * 8 bytes
    del bits
    header = HEADER.pack(DCSO_VERSION, n, p, k, m, elements)
    with atomic_output(path) as f:
        f.write(header)
        f.write(memoryview(packed))
        f.write(data)
    path_str = os.fspath(path)
    return BloomExportReport(
        path=path_str, n=n, m=m, k=k, fpr=p,
        file_size=os.stat(path_str).st_size,
        seconds=time.perf_counter() - t0,
        keys=count,
        elements=elements,
    )


# ---------------------------------------------------------------------------
# reading (vectorised membership checks of exported filters)


@dataclass
class DcsoBloomFilter:
    """A DCSO bloom v1 file, parsed exactly as ``flor.BloomFilter.read`` does.

    ``words`` holds the bit array as ceil(m/64) uint64 (bytes of the file in
    order); ``data`` the trailer."""

    flags: int
    n: int
    p: float
    k: int
    m: int
    N: int
    bits: np.ndarray   # uint8, ceil(m/64) * 8 bytes, bit i = bits[i>>3] >> (i&7) & 1
    data: bytes

    def contains_many(self, keys: np.ndarray) -> np.ndarray:
        """Whether each digest of an (n, width) uint8 array, spelt in
        uppercase hex, passes the filter (same answer as flor's ``check``)."""
        arr = _key_array(keys)
        out = np.empty(arr.shape[0], dtype=np.bool_)
        seven = np.uint64(7)
        three = np.uint64(3)
        for start, chunk in _chunks(arr):
            fp = _fingerprints(chunk, self.k, self.m)      # (k, c)
            byte = self.bits[fp >> three]
            hit = (byte >> (fp & seven).astype(np.uint8)) & np.uint8(1)
            out[start:start + chunk.shape[0]] = hit.all(axis=0)
        return out

    def __contains__(self, value: bytes | str) -> bool:
        """Whether one value (hex str, any case, or the exact bytes that were
        added) passes the filter."""
        if isinstance(value, str):
            value = value.upper().encode("ascii")
        for i in dcso_fingerprint(bytes(value), self.k, self.m):
            if not (self.bits[i >> 3] >> (i & 7)) & 1:
                return False
        return True


def read_bloom(path: str | os.PathLike[str]) -> DcsoBloomFilter:
    """Read a DCSO bloom v1 file (uncompressed) with flor's rules."""
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
        if len(head) != HEADER.size:
            raise ValueError(f"{os.fspath(path)}: not a DCSO bloom filter (file too short)")
        flags, n, p, k, m, count = HEADER.unpack(head)
        if flags & 0xFF != DCSO_VERSION:
            raise ValueError(f"{os.fspath(path)}: invalid version flag {flags & 0xFF}")
        nbytes = int(math.ceil(m / 64.0)) * 8
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(
                f"{os.fspath(path)}: expected {nbytes} bytes of bits, got {len(raw)}"
            )
        data = f.read()
    if m < 1:
        raise ValueError(f"{os.fspath(path)}: filter has no bits (m=0)")
    return DcsoBloomFilter(flags=flags, n=n, p=p, k=k, m=m, N=count,
                           bits=np.frombuffer(raw, dtype=np.uint8), data=data)
