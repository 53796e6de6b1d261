"""The first-level filter of a key table ("prefilter", docs/FORMAT.md kind
12): a Bloom filter blocked by 64-bit words, a few bits per key, that
answers most misses from the L2 cache.  The lookup kernels probe it only in
tables without a Bloom filter (probing it before the Bloom filter made
single lookups slower: README, "First-level filter"), so by default
(``bits_per_key=None``, "auto", :func:`prefilter_bits_for`) a build writes
it only there.

:class:`PrefilterBuilder` takes the keys in chunks, in any order and with
duplicates (setting bits is order-independent), so a streaming build can
feed it the sorted runs or the merged output as they come, without holding
all keys: it only needs an upper bound of the key count up front, to size
the filter (an over-estimate gives a slightly larger filter with fewer false
positives).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hashlookup import _core
from hashlookup.store import format as _format

# Sizes measured by benchmarks/compare.py --prefilter-sweep (README,
# benchmarks/results.md): 4 bits per key with 2 probes per 64-bit word
# answers ~84 % of misses and takes 0.5 byte per key.  This is the size
# "auto" builds for a table without a Bloom filter (prefilter_bits_for).
DEFAULT_PREFILTER_BITS_PER_KEY = 4.0
DEFAULT_PREFILTER_HASHES = 2
# A filter larger than this is not built by default: it would not stay in
# a core's L2 (1-2 MiB on current x86) next to the query stream, and a miss
# would then cost two memory accesses (this filter and the Bloom filter)
# instead of one.  4 MiB at 4 bits per key is about 8.4 M keys.
DEFAULT_PREFILTER_MAX_BYTES = 4 << 20
# The seed of the keys' hash: the Bloom filter's (builders.index.BLOOM_SEED
# is this value), so that a lookup hashes a key once for both filters.
PREFILTER_SEED = 0x686C6F6F6B7570


def prefilter_bits_for(bits_per_key: float | None, bloom_bits_per_key: float) -> float:
    """The first-level filter size a key table gets.

    Parameters
    ----------
    bits_per_key : float or None
        The size asked for: None is "auto", a number is kept as is (0:
        none; N > 0: built even beside a Bloom filter).
    bloom_bits_per_key : float
        The table's Bloom filter size (0: the table has none).

    Returns
    -------
    float
        `bits_per_key` if it is a number; for None,
        :data:`DEFAULT_PREFILTER_BITS_PER_KEY` when the table has no Bloom
        filter and 0 when it has one (the lookup kernels never read a
        first-level filter beside a Bloom filter).
    """
    if bits_per_key is not None:
        return float(bits_per_key)
    return DEFAULT_PREFILTER_BITS_PER_KEY if bloom_bits_per_key <= 0 else 0.0


def check_prefilter_params(bits_per_key: float | None, hashes: int = 2) -> None:
    """Raise ValueError unless bits_per_key is None ("auto") or in 0..64
    and hashes in 1..4."""
    if bits_per_key is not None and not 0 <= bits_per_key <= 64:
        raise ValueError(f"prefilter_bits_per_key must be in 0..64, got {bits_per_key}")
    if not 1 <= hashes <= _format.MAX_PREFILTER_K:
        raise ValueError(
            f"prefilter hashes must be in 1..{_format.MAX_PREFILTER_K}, got {hashes}"
        )


class PrefilterBuilder:
    """The first-level filter of one key table, built from chunks of keys.

    Parameters
    ----------
    expected_keys : int
        The number of distinct keys of the table, or an upper bound of it
        (the filter is sized from it before any key is added).
    width : int
        Key width in bytes (1..64).
    bits_per_key : float, default 4.0
        Filter size; 0 builds none (:attr:`enabled` is False).
    hashes : int, default 2
        Bits probed per key (1..4).
    seed : int, optional
        Seed of the key hash; the default is the Bloom filter's.
    max_bytes : int or None, default 4 MiB
        Build nothing when the filter would be larger (see the module's
        notes); None: no limit.

    Attributes
    ----------
    enabled : bool
        Whether a filter is built (False: :meth:`add` does nothing and
        :meth:`section` returns None).
    words : int
        Its size in 64-bit words (0 when disabled).

    Examples
    --------
    ::

        pre = PrefilterBuilder(len(keys), 16)
        for chunk in chunks:          # (m, 16) uint8 arrays, any order
            pre.add(chunk)
        section = pre.section(group=0)   # a SectionData, or None
    """

    def __init__(
        self,
        expected_keys: int,
        width: int,
        bits_per_key: float = DEFAULT_PREFILTER_BITS_PER_KEY,
        *,
        hashes: int = DEFAULT_PREFILTER_HASHES,
        seed: int = PREFILTER_SEED,
        max_bytes: int | None = DEFAULT_PREFILTER_MAX_BYTES,
    ) -> None:
        check_prefilter_params(bits_per_key, hashes)
        if not 1 <= width <= _format.MAX_WIDTH:
            raise ValueError(f"key width must be 1..{_format.MAX_WIDTH}, got {width}")
        if expected_keys < 0:
            raise ValueError(f"expected_keys must be >= 0, got {expected_keys}")
        self.width = width
        self.hashes = hashes
        self.seed = seed
        self.words = 0
        if bits_per_key > 0 and expected_keys > 0:
            words = _core.prefilter_words_for(expected_keys, float(bits_per_key))
            if max_bytes is None or 8 * words <= max_bytes:
                self.words = words
        self.enabled = self.words > 0
        self._bits = np.zeros(8 * self.words, dtype=np.uint8)

    def add(self, keys: Any) -> None:
        """Set the bits of a chunk of keys.

        Parameters
        ----------
        keys : numpy.ndarray or bytes-like
            A ``(m, width)`` uint8 array or ``m * width`` bytes; any order,
            duplicates allowed.
        """
        if not self.enabled:
            return
        if isinstance(keys, np.ndarray):
            flat = np.ascontiguousarray(keys, dtype=np.uint8).reshape(-1)
        else:
            flat = np.frombuffer(memoryview(keys).cast("B"), dtype=np.uint8)
        if flat.size % self.width:
            raise ValueError(
                f"{flat.size} bytes of keys is not a multiple of the width {self.width}"
            )
        if flat.size:
            _core.add_prefilter(flat, self.width, self.hashes, self.seed, self._bits)

    def section(self, group: int = 0) -> _format.SectionData | None:
        """The section to write (not marked required: readers that do not
        know it answer the same from the other sections), or None."""
        if not self.enabled:
            return None
        return _format.SectionData(
            _format.KIND_PREFILTER,
            self._bits,
            flags=0,
            group=group,
            params=(self.words, self.hashes, self.seed),
        )


class PrefilterConsumer:
    """The first-level filter of a key table that a streaming build writes
    in chunks (a ``consumers`` entry of builders.index.TableWriter): the
    same section table_sections appends after the Bloom filter.

    Parameters
    ----------
    bits_per_key : float or None
        Filter size; None: "auto" (:func:`prefilter_bits_for`).
    group : int, default 0
        The key table's group.
    bloom_bits_per_key : float
        The table's Bloom filter size, which "auto" follows.
    """

    def __init__(
        self, bits_per_key: float | None, group: int = 0, *, bloom_bits_per_key: float
    ) -> None:
        self.bits_per_key = prefilter_bits_for(bits_per_key, bloom_bits_per_key)
        self.group = group
        self.builder: PrefilterBuilder | None = None

    def start(self, n: int, width: int) -> None:
        self.builder = PrefilterBuilder(n, width, self.bits_per_key)

    def add(self, keys: Any, row0: int) -> None:
        assert self.builder is not None
        self.builder.add(keys)

    def sections(self) -> list[_format.SectionData]:
        section = self.builder.section(self.group) if self.builder else None
        return [] if section is None else [section]

    @property
    def words(self) -> int:
        """64-bit words of the filter (0: none was built)."""
        return self.builder.words if self.builder is not None else 0
