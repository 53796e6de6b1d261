"""Building index files: collect digests, sort and deduplicate them with
numpy, build the locator and Bloom filter in C, write the file atomically.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from hashlookup import _core, algorithms
from hashlookup._atomic import atomic_output
from hashlookup._version import __version__
from hashlookup.algorithms import describe as _describe
from hashlookup.builders import prefilter as _prefilter
from hashlookup.builders.assemble import FileAssembler
from hashlookup.builders.runs import (
    DEFAULT_MEMORY,
    Progress,
    RunSorter,
    SpillDir,
    check_memory,
)
from hashlookup.errors import InputError
from hashlookup.importers import digests as _parse
from hashlookup.store import format as _format

# Defaults chosen by benchmarks/compare.py --sweep (see docs/BENCHMARKS.md).
DEFAULT_BLOOM_BITS_PER_KEY = 12.0
DEFAULT_BLOOM_HASHES = 8
# fixed, so identical inputs give identical files; the first-level filter's
# too (one hash per lookup serves both filters)
BLOOM_SEED = _prefilter.PREFILTER_SEED
DEFAULT_PREFILTER_BITS_PER_KEY = _prefilter.DEFAULT_PREFILTER_BITS_PER_KEY
_SEQ_BATCH = 1 << 20

Source = Any  # path, list of paths, binary stream, iterable of keys, ndarray


@dataclass
class BuildReport:
    """What build_index did.

    Attributes
    ----------
    path : str
        The index file written.
    algorithm : str
        ``"md5"``, ``"sha1"``, ``"sha256"`` or ``"raw"``.
    width : int
        Key width in bytes.
    input_keys : int
        Valid digests read, duplicates included.
    unique_keys : int
        Keys in the index.
    duplicates : int
        ``input_keys - unique_keys``.
    invalid : int
        Bad entries skipped (``skip_invalid=True``; 0 otherwise).
    file_size : int
        Bytes written.
    seconds : float
        Wall-clock time of the build.
    """

    path: str
    algorithm: str
    width: int
    input_keys: int
    unique_keys: int
    duplicates: int
    invalid: int
    file_size: int
    seconds: float


class _Collector:
    """Accumulates (n, width) key blocks and fixes the width on first use."""

    def __init__(
        self,
        algorithm: str | None,
        width: int | None,
        spill: SpillDir,
        buffer_bytes: int,
        progress: Progress,
    ) -> None:
        self.algorithm = algorithm
        self.width = width
        self.sorter: RunSorter | None = None
        self.spill = spill
        self.buffer_bytes = buffer_bytes
        self.progress = progress
        self.invalid = 0
        self.sources: list[str] = []

    def set_width(self, width: int, origin: str) -> None:
        if self.width is None:
            self.width = width
            if self.algorithm is None:
                if width not in _format.ALGORITHM_BY_WIDTH:
                    raise InputError(
                        f"{origin}: cannot tell the algorithm from {width}-byte keys; "
                        "pass algorithm='raw' with width="
                    )
                self.algorithm = _format.ALGORITHM_BY_WIDTH[width]
        elif width != self.width:
            raise InputError(
                f"{origin}: {width}-byte keys, but earlier input has "
                f"{self.width}-byte keys ({self.algorithm})"
            )

    def add(self, keys: np.ndarray, origin: str) -> None:
        if len(keys):
            self.set_width(keys.shape[1], origin)
            if self.sorter is None:
                assert self.width is not None
                self.sorter = RunSorter(self.width, self.buffer_bytes, self.spill)
            self.sorter.add(keys)
            self.progress.update("reading", self.sorter.rows_in)


def _resolve_algorithm(
    algorithm: str | None, width: int | None
) -> tuple[str | None, int | None]:
    if algorithm is None:
        if width is not None:
            raise ValueError("width= needs algorithm='raw'")
        return None, None
    if algorithm not in _format.ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {algorithm!r}; expected one of "
            f"{', '.join(_format.ALGORITHMS)}"
        )
    fixed = _format.ALGORITHMS[algorithm][1]
    if fixed:
        if width is not None and width != fixed:
            raise ValueError(f"{algorithm} keys are {fixed} bytes, not {width}")
        return algorithm, fixed
    if width is None or not 1 <= width <= _format.MAX_WIDTH:
        raise ValueError(
            f"algorithm='raw' needs width= between 1 and "
            f"{_format.MAX_WIDTH}, got {width}"
        )
    return algorithm, width


def _read_stream(f: BinaryIO, name: str, c: _Collector, skip_invalid: bool) -> None:
    for chunk in _parse.iter_parsed(
        f, c.width, algorithm=c.algorithm, name=name, skip_invalid=skip_invalid
    ):
        c.invalid += chunk.invalid
        if len(chunk.keys):
            c.add(chunk.keys, name)  # copied into the sort buffer


def _read_sequence(items: Iterable[Any], c: _Collector, skip_invalid: bool) -> None:
    it = iter(items)
    name = "<sequence>"
    index = 0
    while True:
        batch = list(itertools.islice(it, _SEQ_BATCH))
        if not batch:
            return
        if c.width is None:
            w = _detect_item_width(batch, index, name, skip_invalid)
            if w is None:  # nothing valid in this batch (skip_invalid)
                c.invalid += len(batch)
                index += len(batch)
                continue
            c.set_width(w, name)
        assert c.width is not None and c.algorithm is not None
        keys, bad = _parse.pack_sequence(
            batch,
            c.width,
            _describe(c.algorithm, c.width),
            name=name,
            first_index=index,
            skip_invalid=skip_invalid,
        )
        c.invalid += bad
        c.add(keys, name)
        index += len(batch)


def _detect_item_width(
    batch: list[Any], index: int, name: str, skip_invalid: bool
) -> int | None:
    """Key width of the first valid digest item (hex str of 32/40/64
    characters, or 16/20/32 raw bytes).  Without skip_invalid the first item
    must be one."""
    for i, item in enumerate(batch):
        width = None
        if isinstance(item, str):
            w = algorithms.HEX_WIDTH.get(len(item))
            if w and item.isascii() and _parse.is_hex(item.encode()):
                width = w
        elif isinstance(item, (bytes, bytearray, memoryview)):
            n = memoryview(item).nbytes
            width = n if n in _format.ALGORITHM_BY_WIDTH else None
        if width is not None:
            return width
        if not skip_invalid:
            shown = (
                repr(item[:80])
                if isinstance(item, (str, bytes))
                else type(item).__name__
            )
            raise InputError(
                f"{name}: item {index + i}: expected a hex md5, sha1 or "
                f"sha256 digest (32, 40 or 64 hex characters) or "
                f"16, 20 or 32 raw bytes, got {shown}"
            )
    return None


def _collect(source: Source, c: _Collector, skip_invalid: bool) -> None:
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 2:
            raise TypeError(
                "expected a uint8 array of shape (n, width), got "
                f"dtype {source.dtype} with {source.ndim} dimensions"
            )
        c.sources.append("<array>")
        c.set_width(source.shape[1], "<array>")
        c.add(np.ascontiguousarray(source), "<array>")
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        c.sources.append(os.path.basename(path))
        with open(path, "rb") as f:
            _read_stream(f, path, c, skip_invalid)
    elif hasattr(source, "read"):
        name = getattr(source, "name", "<stream>")
        name = name if isinstance(name, str) else "<stream>"
        c.sources.append(os.path.basename(name))
        _read_stream(source, name, c, skip_invalid)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError(
            "a single bytes object is ambiguous as a source; pass a "
            "list of digests, a path or a binary stream"
        )
    elif isinstance(source, Iterable):
        if not isinstance(source, (list, tuple)):
            # An iterator of (n, width) uint8 blocks is taken block by block
            # (a build larger than memory need not hold its input).
            it = iter(source)
            head = next(it, None)
            if isinstance(head, np.ndarray) and head.ndim == 2:
                c.sources.append("<blocks>")
                for block in itertools.chain([head], it):
                    if not (
                        isinstance(block, np.ndarray)
                        and block.dtype == np.uint8
                        and block.ndim == 2
                    ):
                        raise TypeError(
                            "an iterator of key blocks must yield uint8 arrays "
                            f"of shape (n, width), got {type(block).__name__}"
                        )
                    c.set_width(block.shape[1], "<blocks>")
                    c.add(np.ascontiguousarray(block), "<blocks>")
                return
            source = [] if head is None else [head, *it]
        items = source if isinstance(source, (list, tuple)) else list(source)
        if items and _are_paths(items):
            for p in items:
                _collect(p, c, skip_invalid)
        else:
            _blame_missing_path(items)
            c.sources.append("<sequence>")
            _read_sequence(items, c, skip_invalid)
    else:
        raise TypeError(f"cannot read digests from {type(source).__name__}")


def _blame_missing_path(items: Sequence[Any]) -> None:
    """A list that starts with a path but is not all paths has a misspelt
    (or missing) path in it, not digests: raise naming that item."""
    if not items:
        return
    first = items[0]
    if not isinstance(first, os.PathLike) and not (
        isinstance(first, str) and os.path.isfile(first)
    ):
        return
    for i, x in enumerate(items):
        if isinstance(x, os.PathLike):
            continue
        if not isinstance(x, str):
            raise TypeError(
                f"item {i} of the list of paths: expected a path, got "
                f"{type(x).__name__}"
            )
        if not os.path.isfile(x):
            if os.path.exists(x):
                raise InputError(f"{x} (item {i} of the list of paths): not a file")
            raise FileNotFoundError(
                errno.ENOENT, f"No such file (item {i} of the list of paths)", x
            )


def _are_paths(items: Sequence[Any]) -> bool:
    """A list holds paths if every entry is os.PathLike or a str naming an
    existing file; otherwise its str entries are digests.  (Stops at the
    first entry that is neither, so a long digest list costs one stat.)"""
    for x in items:
        if isinstance(x, os.PathLike):
            continue
        if not isinstance(x, str) or not os.path.isfile(x):
            return False
    return True


def sort_unique(keys: np.ndarray) -> np.ndarray:
    """Rows of keys sorted in memcmp order with duplicates removed (radix
    sort in C, hl_sort.c; sorts a private copy, keys is not modified)."""
    n, w = keys.shape
    work = np.array(keys, dtype=np.uint8, order="C", copy=True)
    if n < 2:
        return work
    unique = _core.sort_unique(work.reshape(-1), w)
    return work[:unique]


def table_sections(
    keys: np.ndarray,
    algorithm: str,
    group: int,
    bloom_bits_per_key: float,
    bloom_hashes: int,
    prefilter_bits_per_key: float | None = None,
) -> list[_format.SectionData]:
    """Keys, locator, Bloom (unless bloom_bits_per_key is 0) and first-level
    filter (builders/prefilter.py: None, "auto", builds one only without a
    Bloom filter; 0 none; none either when it would be too large for its
    purpose) sections of one key table, from sorted unique keys (n, width)."""
    n, width = keys.shape
    if n > _format.MAX_KEYS:
        raise ValueError(f"{n} keys exceed the maximum of {_format.MAX_KEYS} per table")
    flat = keys.reshape(-1)
    bits = _core.locator_bits_for(n, width)
    locator = np.zeros(4 * ((1 << bits) + 1), dtype=np.uint8)
    _core.build_locator(flat, n, width, bits, locator)
    alg_id = _format.ALGORITHMS[algorithm][0]
    parts = [
        _format.SectionData(
            _format.KIND_KEYS, flat, group=group, params=(alg_id, width, n)
        ),
        _format.SectionData(
            _format.KIND_LOCATOR, locator, group=group, params=(bits, 4, 0)
        ),
    ]
    if bloom_bits_per_key > 0:
        blocks = _core.bloom_blocks_for(n, float(bloom_bits_per_key))
        bloom = np.zeros(blocks * _format.BLOOM_BLOCK, dtype=np.uint8)
        _core.build_bloom(flat, n, width, blocks, bloom_hashes, BLOOM_SEED, bloom)
        parts.append(
            _format.SectionData(
                _format.KIND_BLOOM,
                bloom,
                group=group,
                params=(blocks, bloom_hashes, BLOOM_SEED),
            )
        )
    pre_bits = _prefilter.prefilter_bits_for(prefilter_bits_per_key, bloom_bits_per_key)
    pre = _prefilter.PrefilterBuilder(n, width, pre_bits)
    pre.add(flat)
    section = pre.section(group)
    if section is not None:
        parts.append(section)
    return parts


def key_slots(keys: np.ndarray, bits: int) -> np.ndarray:
    """Locator slot of each key of an (m, width) array (docs/FORMAT.md: the
    top `bits` bits of the big-endian prefix of the first 8 bytes)."""
    m, width = keys.shape
    if bits == 0:
        return np.zeros(m, np.uint64)
    pre = np.zeros((m, 8), np.uint8)
    pre[:, : min(width, 8)] = keys[:, :8]
    prefix = pre.view(">u8").ravel().astype(np.uint64)
    slots: np.ndarray = prefix >> np.uint64(64 - bits)
    return slots


class TableWriter:
    """One key table written from sorted unique keys given in chunks.

    add() streams the keys section into the file; finish() places the
    locator and Bloom sections (their sizes follow from the key count) and
    fills them in one pass over the keys read back from the file, chunk by
    chunk: the locator is written as it goes, the Bloom filter is the only
    part held in memory.  The file is identical to table_sections' for the
    same keys.

    Other per-key sections (a filter built from the sorted keys) join the
    same pass through `consumers`: objects with ``start(n, width)`` (called
    once the key count is known), ``add(keys, row0)`` (every chunk of sorted
    keys, in order, with the row of its first key) and ``sections()`` (their
    SectionData, written after the Bloom section in that order; an in-memory
    build must append them to table_sections' list the same way).
    """

    def __init__(
        self,
        assembler: Any,
        algorithm: str,
        width: int,
        group: int,
        bloom_bits_per_key: float,
        bloom_hashes: int,
        chunk_rows: int = 1 << 20,
        consumers: Sequence[Any] = (),
    ) -> None:
        self.asm = assembler
        self.consumers = list(consumers)
        self.algorithm = algorithm
        self.width = width
        self.group = group
        self.bloom_bits_per_key = bloom_bits_per_key
        self.bloom_hashes = bloom_hashes
        self.chunk_rows = max(1, chunk_rows)
        self.n = 0
        self.bits = 0
        self.keys = assembler.place(_format.KIND_KEYS, None, group=group)

    def add(self, keys: np.ndarray) -> None:
        """Append the next keys: (m, width), sorted, after every key so far."""
        if len(keys):
            self.keys.write(np.ascontiguousarray(keys))
            self.n += len(keys)

    def finish(self) -> int:
        """Close the keys section and write the locator and Bloom sections;
        returns the key count."""
        n, width = self.n, self.width
        if n > _format.MAX_KEYS:
            raise ValueError(
                f"{n} keys exceed the maximum of {_format.MAX_KEYS} per table"
            )
        alg_id = _format.ALGORITHMS[self.algorithm][0]
        self.asm.close(self.keys, (alg_id, width, n))
        self.bits = bits = _core.locator_bits_for(n, width)
        locator = self.asm.place(
            _format.KIND_LOCATOR,
            4 * ((1 << bits) + 1),
            group=self.group,
            params=(bits, 4, 0),
        )
        bloom = blocks = None
        if self.bloom_bits_per_key > 0:
            blocks = _core.bloom_blocks_for(n, float(self.bloom_bits_per_key))
            bloom = np.zeros(blocks * _format.BLOOM_BLOCK, dtype=np.uint8)
            bloom_slot = self.asm.place(
                _format.KIND_BLOOM,
                len(bloom),
                group=self.group,
                params=(blocks, self.bloom_hashes, BLOOM_SEED),
            )
        for c in self.consumers:
            c.start(n, width)
        next_slot = 0
        buf = np.empty(self.chunk_rows * width, np.uint8)
        for row0 in range(0, n, self.chunk_rows):
            m = min(self.chunk_rows, n - row0)
            view = memoryview(buf)[: m * width]
            _pread_exact(self.asm.fd, view, self.keys.offset + row0 * width)
            chunk = buf[: m * width].reshape(m, width)
            next_slot = self._feed(chunk, row0, locator, next_slot, bloom, blocks)
            for c in self.consumers:
                c.add(chunk, row0)
        slots = 1 << bits
        while next_slot <= slots:  # the slots after the last key: all n
            stop = min(slots + 1, next_slot + (1 << 22))
            locator.write(np.full(stop - next_slot, n, dtype="<u4"))
            next_slot = stop
        if bloom is not None:
            bloom_slot.write(bloom)
        for c in self.consumers:
            for part in c.sections():
                self.asm.add(part)
        return n

    def _feed(
        self,
        chunk: np.ndarray,
        row0: int,
        locator: Any,
        next_slot: int,
        bloom: np.ndarray | None,
        blocks: int | None,
    ) -> int:
        """One chunk of keys (rows row0..) into the locator (entries up to
        the chunk's last slot) and the Bloom filter; returns the next slot
        whose entry is still to be written."""
        m, width = chunk.shape
        slots = key_slots(chunk, self.bits)
        last = int(slots[-1])
        if last >= next_slot:
            # Entry s: the first row whose slot is >= s; it is in this chunk
            # for every s up to the chunk's last slot.
            wanted = np.arange(next_slot, last + 1, dtype=np.uint64)
            first = np.searchsorted(slots, wanted, side="left") + row0
            locator.write(first.astype("<u4"))
            next_slot = last + 1
        if bloom is not None:
            assert blocks is not None
            _core.build_bloom(
                chunk.reshape(-1),
                m,
                width,
                blocks,
                self.bloom_hashes,
                BLOOM_SEED,
                bloom,
            )
        return next_slot


def _pread_exact(fd: int, view: memoryview, offset: int) -> None:
    got = 0
    while got < view.nbytes:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            raise OSError(f"file ended at {offset + got} while reading keys back")
        got += n


def check_bloom_params(bloom_bits_per_key: float, bloom_hashes: int) -> None:
    if not 0 <= bloom_bits_per_key <= 64:
        raise ValueError(
            f"bloom_bits_per_key must be in 0..64, got {bloom_bits_per_key}"
        )
    if not 1 <= bloom_hashes <= _format.MAX_BLOOM_K:
        raise ValueError(
            f"bloom_hashes must be in 1..{_format.MAX_BLOOM_K}, got {bloom_hashes}"
        )


def build_index(
    source: Source,
    path: str | os.PathLike[str],
    *,
    algorithm: str | None = None,
    width: int | None = None,
    skip_invalid: bool = False,
    bloom_bits_per_key: float = DEFAULT_BLOOM_BITS_PER_KEY,
    bloom_hashes: int = DEFAULT_BLOOM_HASHES,
    prefilter_bits_per_key: float | None = None,
    metadata: dict[str, Any] | None = None,
    memory: int = DEFAULT_MEMORY,
    tmp_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> BuildReport:
    """Build an index file at `path` from `source` (see docs/API.md).

    Parameters
    ----------
    source : path, list of paths, binary file, iterable or numpy.ndarray
        Path(s) of digest lists, a binary stream, an iterable of hex str or
        raw bytes, a (n, width) uint8 array, or an iterator (not a list) of
        such arrays, read one block at a time.
    path : str or os.PathLike
        The index file to write, atomically: a failed build leaves an
        existing file untouched.
    algorithm : str, optional
        "md5", "sha1", "sha256" or "raw" (with `width`); detected from the
        first digest if None.
    width : int, optional
        Key width in bytes (1..64), for ``algorithm="raw"`` only.
    skip_invalid : bool, default False
        Count and skip bad lines instead of raising InputError.
    bloom_bits_per_key : float, default 12.0
        Bloom filter size (0..64); 0 builds no filter.
    bloom_hashes : int, default 8
        Bits probed per key (1..16).
    prefilter_bits_per_key : float or None, default None
        Size of the first-level filter (0..64 bits per key; docs/FORMAT.md
        kind 12), which lookups probe only when there is no Bloom filter.
        None ("auto"): 4 bits per key if `bloom_bits_per_key` is 0, none
        otherwise; 0: none; a number > 0: that size, even beside a Bloom
        filter.  None is built when it would exceed 4 MiB (about 8 M keys).
    metadata : dict, optional
        JSON-serialisable dict stored under "user" in the metadata section.
    memory : int, default 2_000_000_000
        Memory budget in bytes (peak RSS aimed at, at least 16 MiB): keys
        past about a quarter of it are sorted in runs spilled to a
        temporary directory and merged from disk (docs/API.md, "Builds
        larger than memory").  The file is the same either way.
    tmp_dir : str or os.PathLike, optional
        Where the runs go (default: the output's directory); the directory
        created there is removed when the build ends, whatever happens.
    progress : bool, default False
        Show progress on stderr (the CLI does when stderr is a terminal).

    Returns
    -------
    BuildReport
        Counts, file size and time of the build.

    Raises
    ------
    InputError
        An invalid line or item (message: source, line or item, text), or
        no digest to detect the algorithm from.
    ValueError
        An unknown `algorithm`, a `width` that does not fit it, or Bloom
        parameters out of range.
    OSError
        A source cannot be read or the file cannot be written (an existing
        file is left unchanged).
    """
    t0 = time.perf_counter()
    alg, w = _resolve_algorithm(algorithm, width)
    check_bloom_params(bloom_bits_per_key, bloom_hashes)
    _prefilter.check_prefilter_params(prefilter_bits_per_key)
    user_meta = json.loads(json.dumps(metadata)) if metadata is not None else None

    check_memory(memory)
    show = Progress(None if progress else False)
    try:
        with SpillDir(os.fspath(path), tmp_dir) as spill:
            c = _Collector(alg, w, spill, memory // 4, show)
            _collect(source, c, skip_invalid)
            size, input_keys, n = _write_index(
                c,
                path,
                (bloom_bits_per_key, bloom_hashes, prefilter_bits_per_key),
                user_meta,
                show,
            )
    finally:
        show.close()
    assert c.algorithm is not None and c.width is not None
    return BuildReport(
        os.fspath(path),
        c.algorithm,
        c.width,
        input_keys,
        n,
        input_keys - n,
        c.invalid,
        size,
        time.perf_counter() - t0,
    )


def _write_index(
    c: _Collector,
    path: str | os.PathLike[str],
    filters: tuple[float, int, float | None],
    user_meta: Any,
    show: Progress,
) -> tuple[int, int, int]:
    """Sort (in memory, or by merging the spilled runs) and write the file;
    returns (file size, input keys, unique keys)."""
    if c.width is None:  # only without algorithm= (it fixes the width)
        raise InputError(
            f"no digests in {', '.join(c.sources) or 'the input'}: cannot "
            "detect the algorithm; pass algorithm="
        )
    assert c.width is not None and c.algorithm is not None
    width = c.width
    sorter = c.sorter or RunSorter(width, 1 << 16, c.spill)
    input_keys = sorter.rows_in
    bloom_bits_per_key, bloom_hashes, prefilter_bits_per_key = filters

    def metadata(n: int, bits: int, pre_words: int) -> _format.SectionData:
        meta = {
            "format": "hashlookup-index",
            "hashlookup_version": __version__,
            "algorithm": c.algorithm,
            "width": width,
            "count": n,
            "build": {
                "input_keys": input_keys,
                "duplicates": input_keys - n,
                "invalid": c.invalid,
                "sources": c.sources,
                "bloom_bits_per_key": bloom_bits_per_key,
                "bloom_hashes": bloom_hashes if bloom_bits_per_key > 0 else 0,
                "locator_bits": bits,
                "prefilter_bits_per_key": 64 * pre_words / n if pre_words else 0,
            },
        }
        if user_meta is not None:
            meta["user"] = user_meta
        return _format.SectionData(
            _format.KIND_METADATA, json.dumps(meta, sort_keys=True).encode(), flags=0
        )

    if not sorter.spilled:
        keys = sorter.sorted_in_memory()
        n = len(keys)
        parts = table_sections(keys, c.algorithm, 0, *filters)
        pre_words = next(
            (p.params[0] for p in parts if p.kind == _format.KIND_PREFILTER), 0
        )
        parts.append(metadata(n, parts[1].params[0], pre_words))
        created_ns = time.time_ns()
        with atomic_output(path) as f:
            size = _format.write_file(f, parts, created_ns)
        return size, input_keys, n
    with atomic_output(path) as f:
        asm = FileAssembler(f)
        pre = _prefilter.PrefilterConsumer(
            prefilter_bits_per_key, bloom_bits_per_key=bloom_bits_per_key
        )
        table = TableWriter(
            asm,
            c.algorithm,
            width,
            0,
            bloom_bits_per_key,
            bloom_hashes,
            consumers=[pre],
        )
        for chunk in sorter.chunks(max(1, (16 << 20) // width)):
            table.add(chunk)
            show.update("merging", table.n, input_keys)
        sorter.discard()
        show.update("writing the filter", table.n, force=True)
        n = table.finish()
        asm.add(metadata(n, table.bits, pre.words))
        size = asm.finish(time.time_ns())
    return size, input_keys, n
