"""The records of a dataset build: the columns collected from the input
batches (Columns), records that share a digest merged into one (connected
components by label propagation with numpy), the allow-list applied, and
per algorithm the digests sorted with their record ids (the C radix sort).
hashlookup.builders.dataset runs these steps and writes the file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hashlookup import _core, algorithms
from hashlookup.builders.attributes import AttributeColumns, stored_columns
from hashlookup.builders.pdq import PdqColumns, pdq_batches
from hashlookup.builders.runs import RunSorter, SpillDir
from hashlookup.store import format as _format
from hashlookup.store import labels as _labels

ALGORITHMS = algorithms.NAMES
WIDTHS = algorithms.WIDTH


@dataclass
class Columns:
    """All records read so far, as growing lists of column blocks."""

    digests: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {a: [] for a in ALGORITHMS}
    )
    present: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {a: [] for a in ALGORITHMS}
    )
    sizes: list[np.ndarray] = field(default_factory=list)
    labels: dict[str, list[np.ndarray]] = field(default_factory=dict)
    pdq: PdqColumns = field(default_factory=PdqColumns)
    attributes: AttributeColumns = field(default_factory=AttributeColumns)
    n: int = 0
    # Label rows that form a contiguous range (every source label, most
    # carried labels) are kept as (start, stop): 16 bytes, not 8 per row.
    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    # With `sorters` (the main build; an allow-list's Columns has none),
    # digests go straight into per-algorithm RunSorters as rows of digest +
    # 4-byte big-endian row number, spilled past the memory budget.
    sorters: dict[str, RunSorter] | None = None
    spill: SpillDir | None = None
    budget: int = 0
    size_file: Any = None  # sizes of spilled builds, int64 per row

    def add(self, batch: Any, source_label: str | None) -> None:
        m = len(batch)
        if m == 0:
            return
        self.pdq.add(batch, self.n)
        for a in ALGORITHMS:
            d, p = batch.digests(a)
            if self.sorters is not None:
                self.sorters[a].add_digests(d, p, self.n)
                continue
            # Own copies: importers may hand out views of one buffer holding
            # all columns, which would keep every column alive until the last
            # one is consumed (the sort frees each column as it goes).
            self.digests[a].append(np.array(d, copy=True) if d.base is not None else d)
            self.present[a].append(p)
        self.sizes.append(batch.size)
        self.attributes.add(batch, self.n)
        for name, rows in batch.labels.items():
            self._add_label(
                _labels.check_label(name), np.asarray(rows, dtype=np.int64) + self.n
            )
        if source_label is not None:
            self.ranges.setdefault(source_label, []).append((self.n, self.n + m))
        self.n += m
        if self.sorters is not None:
            self._maybe_spill()

    def _add_label(self, name: str, rows: np.ndarray) -> None:
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
            if len(rows) == 1 or bool(np.all(rows[1:] > rows[:-1])):
                self.ranges.setdefault(name, []).append(
                    (int(rows[0]), int(rows[-1]) + 1)
                )
                return
        self.labels.setdefault(name, []).append(rows)

    def _maybe_spill(self) -> None:
        """Past half the budget (counting what the in-memory steps would
        add per row), spill every sorter's buffer and the sizes."""
        assert self.sorters is not None and self.spill is not None
        held = sum(s.fill * s.width for s in self.sorters.values())
        spilled = any(s.spilled for s in self.sorters.values())
        if held + (0 if spilled else 72 * self.n) <= self.budget // 2:
            return
        for s in self.sorters.values():
            if s.fill:
                s.flush()
        self.flush_sizes()

    @property
    def spilled(self) -> bool:
        return self.sorters is not None and any(
            s.spilled for s in self.sorters.values()
        )

    def flush_sizes(self) -> None:
        """Move the sizes held in memory to the size file."""
        assert self.spill is not None
        if self.size_file is None:
            self.size_file = self.spill.open_file("sizes")
        for block in self.sizes:
            self.size_file.write(memoryview(np.ascontiguousarray(block, "<i8")))
        self.sizes = []

    def materialize_labels(self) -> None:
        """Ranges back to row arrays, for the in-memory build."""
        for name, spans in self.ranges.items():
            self.labels.setdefault(name, []).extend(
                np.arange(a, b, dtype=np.int64) for a, b in spans
            )
        self.ranges = {}

    def column(self, a: str) -> tuple[np.ndarray, np.ndarray]:
        w = WIDTHS[a]
        if not self.digests[a]:
            return np.empty((0, w), np.uint8), np.empty(0, bool)
        return np.concatenate(self.digests[a]), np.concatenate(self.present[a])


def sort_augmented(aug: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort rows of digest + 4-byte big-endian id in place, then split them
    without copying the digests (the rows are narrowed in place)."""
    m = len(aug)
    flat = aug.reshape(-1)
    u = _core.sort_unique(flat, w + 4) if m > 1 else m
    return split_rows(aug[:u], w)


def split_rows(aug: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted rows of digest + 4-byte big-endian id (the start of a
    contiguous buffer) as (digests, ids), narrowing the rows in place."""
    u = len(aug)
    ids = np.ascontiguousarray(aug[:, w:]).view(">u4").ravel().astype(np.int64)
    flat = aug.reshape(-1)  # a view: aug is C-contiguous
    _core.narrow_rows(flat, u, w + 4, w)
    return flat[: u * w].reshape(u, w), ids


def release_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps the many small
    blocks of the importers' batches otherwise, and the peak RSS of a large
    build would include them).  A no-op where malloc_trim does not exist."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def sort_digests(cols: Columns) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per algorithm, the digests of all rows sorted (memcmp order) with the
    row each came from: one radix sort per algorithm, used to find records
    that share digests, to apply the allow-list and to write the key tables.
    The input column blocks are released as they are consumed."""
    out = {}
    for a in ALGORITHMS:
        w = WIDTHS[a]
        if cols.sorters is not None:
            sorter = cols.sorters[a]
            if sorter.rows_in:
                aug = sorter.sorted_in_memory()
                sorter.buf = None
                out[a] = split_rows(aug, w)
            continue
        blocks, present = cols.digests[a], cols.present[a]
        total = int(sum(int(np.count_nonzero(p)) for p in present))
        aug = np.empty((total, w + 4), dtype=np.uint8)
        pos = base = 0
        while blocks:
            d, p = blocks.pop(0), present.pop(0)
            rows = np.flatnonzero(p)
            k = len(rows)
            aug[pos : pos + k, :w] = d[rows]
            aug[pos : pos + k, w:] = (
                (rows + base).astype(">u4").view(np.uint8).reshape(k, 4)
            )
            pos += k
            base += len(p)
            del d, p
        if total:
            out[a] = sort_augmented(aug, w)
        del aug
        release_memory()
    return out


def same_as_previous(keys: np.ndarray) -> np.ndarray:
    """keys[i + 1] == keys[i] for each i, without an (m, w) temporary."""
    v = keys.view(f"V{keys.shape[1]}").ravel()
    same: np.ndarray = v[1:] == v[:-1]
    return same


def equal_runs(
    same: np.ndarray, srows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Groups of rows with equal keys, given rows in key order and whether
    each key equals the previous one: (rows, group starts, group of row),
    keeping only groups of two or more."""
    if not same.any():
        return None
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    sizes = np.diff(np.append(starts, len(srows)))
    multi = sizes > 1
    g_rows = srows[np.repeat(multi, sizes)]
    g_sizes = sizes[multi]
    g_starts = np.concatenate(([0], np.cumsum(g_sizes)[:-1]))
    g_index = np.repeat(np.arange(len(g_sizes)), g_sizes)
    return g_rows, g_starts, g_index


def components(
    n: int,
    sorted_digests: dict[str, tuple[np.ndarray, np.ndarray]],
    links: np.ndarray | None = None,
) -> np.ndarray:
    """For every row, the smallest row index of the records it shares a digest
    with, transitively (connected components by label propagation).  Rows
    0..len(links)-1 with equal `links` values (record ids carried over from an
    earlier generation) belong together too."""
    comp = np.arange(n, dtype=np.int64)
    groups = []
    for keys, srows in sorted_digests.values():
        if len(keys) >= 2:
            g = equal_runs(same_as_previous(keys), srows)
            if g is not None:
                groups.append(g)
    if links is not None and len(links) >= 2:
        order = np.argsort(links, kind="stable")
        lk = links[order]
        g = equal_runs(lk[1:] == lk[:-1], order.astype(np.int64))
        if g is not None:
            groups.append(g)
    changed = bool(groups)
    while changed:
        changed = False
        for g_rows, g_starts, g_index in groups:
            cur = comp[g_rows]
            low = np.minimum.reduceat(cur, g_starts)[g_index]
            if np.any(low < cur):
                comp[g_rows] = low
                changed = True
        while True:  # pointer jumping: every row to its representative's
            nxt = comp[comp]
            if np.array_equal(nxt, comp):
                break
            comp = nxt
    return comp


def changed_records(
    n_old: int,
    comp: np.ndarray,
    kept: np.ndarray,
    sorted_digests: dict[str, tuple[np.ndarray, np.ndarray]],
    labels: dict[str, list[np.ndarray]],
) -> int:
    """Old records that gained a digest or a label from new rows."""
    n = len(comp)
    is_new_kept = np.zeros(n, dtype=bool)
    is_new_kept[kept[kept >= n_old]] = True
    changed = np.zeros(n, dtype=bool)  # indexed by component (row) id
    for keys, srows in sorted_digests.values():
        if len(keys) == 0:
            continue
        first = np.ones(len(keys), dtype=bool)
        first[1:] = ~same_as_previous(keys)
        group = np.cumsum(first) - 1
        old_in_group = np.zeros(int(group[-1]) + 1, dtype=bool)
        old_in_group[group[srows < n_old]] = True
        brings = is_new_kept[srows] & ~old_in_group[group]
        c = comp[srows[brings]]
        changed[c[c < n_old]] = True
    for blocks in labels.values():
        rows = np.concatenate(blocks)
        had = np.zeros(n, dtype=bool)
        had[comp[rows[rows < n_old]]] = True
        c = comp[rows[is_new_kept[rows]]]
        c = c[(c < n_old) & ~had[c]]
        changed[c] = True
    return int(np.count_nonzero(changed))


def member(keys: np.ndarray, known: np.ndarray) -> np.ndarray:
    """keys[i] in known, via an in-memory key table (no file)."""
    from hashlookup.builders.index import sort_unique

    known = sort_unique(known)
    table = memory_table(known)
    out = np.empty(len(keys), dtype=np.uint8)
    table._contains_into(np.ascontiguousarray(keys).reshape(-1), out)
    return out.view(bool)


def memory_table(keys: np.ndarray) -> Any:
    """A KeyTable over sorted unique keys held in memory (no Bloom filter)."""
    n, w = keys.shape
    bits = _core.locator_bits_for(n, w)
    loc = np.zeros(4 * ((1 << bits) + 1), dtype=np.uint8)
    _core.build_locator(keys.reshape(-1), n, w, bits, loc)
    buf = bytearray(keys.tobytes() + loc.tobytes())
    t = _core.KeyTable()
    t._attach(buf, 0, n, w, n * w, bits, 0, 0, 0, 0, "a digest")
    return t


def dataset_batches(ds: Any, batch_size: int = 1_000_000) -> Iterable[Any]:
    """The records of an open dataset as (RecordBatch, record ids) pairs,
    labels included: first one row per record (in record order), then one
    row for every further key a record owns (a record may own several keys
    of one algorithm); update_dataset links rows by their record ids."""
    from hashlookup.importers import RecordBatch

    st = ds.current()
    n = st.count
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        b = RecordBatch.empty(stop - start)
        if st.records is None:
            alg = next(iter(st.tables))
            getattr(b, alg)[:] = st.tables[alg].keys()[start:stop]
            getattr(b, "has_" + alg)[:] = True
        else:
            rec = st.records[start:stop]
            for a in ALGORITHMS:
                rows = rec[f"{a}_row"].astype(np.int64)
                has = rows != _format.NO_ROW
                if a in st.tables and has.any():
                    getattr(b, a)[has] = st.tables[a].keys()[rows[has]]
                    getattr(b, "has_" + a)[:] = has
            b.size[:] = rec["size"]
            b.attributes = stored_columns(st, start, stop)
            if st.labels is not None:
                for label in st.labels.names():
                    ids = np.asarray(st.labels.bitmap(label).to_array(), dtype=np.int64)
                    ids = ids[(ids >= start) & (ids < stop)] - start
                    if len(ids):
                        b.labels[label] = ids
        yield b, np.arange(start, stop, dtype=np.int64)
    if st.records is None:
        return
    for a, table in st.tables.items():
        rowmap = st.rowmaps[a].astype(np.int64)
        primary = st.records[f"{a}_row"].astype(np.int64)
        extra = np.flatnonzero(primary[rowmap] != np.arange(len(rowmap)))
        for i in range(0, len(extra), batch_size):
            rows = extra[i : i + batch_size]
            b = RecordBatch.empty(len(rows))
            getattr(b, a)[:] = table.keys()[rows]
            getattr(b, "has_" + a)[:] = True
            yield b, rowmap[rows]
    yield from pdq_batches(st, batch_size)
