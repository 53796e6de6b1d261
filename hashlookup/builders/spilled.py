"""Dataset builds past memory: the steps of build_dataset over sorted runs.

When the digests of a build outgrow its memory budget they are sorted in
runs on disk (Columns with RunSorters); this module finishes such a build
with memory that grows with the *shared* digests, not with the records:

1. Per algorithm, the runs are merged (C k-way merge); equal digests are
   adjacent, ordered by input row.  Each equal run gives one key (its head:
   the smallest row) and, when longer than one, edges from its other rows
   to the head.  Without an allow-list the keys are written to the file as
   they come, the heads to a scratch file; with one, this first merge only
   collects edges and allow-listed heads, and a second merge writes the
   keys that survive.
2. Records are the connected components over the edges (and the record
   links of an update), found on the few rows that have edges (RecordPlan);
   every other row is a record of its own.  A row's record id is then its
   component's representative minus the rows before it that are no record.
3. Rowmaps (record id of every key) are written from the heads; records
   are filled in windows of record ids, each pass reading the rowmaps back
   from the file; labels from row ranges; then metadata and the header.

The file is byte for byte what the in-memory build writes (tests compare
them).  Attributes and PDQ hashes stay in memory, as in the in-memory build,
plus a record id per input row (8 bytes) when a build has any.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashlookup import _core, algorithms
from hashlookup.builders._merge import Columns, memory_table
from hashlookup.builders.assemble import FileAssembler, Slot
from hashlookup.builders.index import TableWriter, sort_unique
from hashlookup.builders.pdq import pdq_sections
from hashlookup.builders.prefilter import PrefilterConsumer
from hashlookup.builders.runs import Progress
from hashlookup.errors import InputError
from hashlookup.store import format as _format
from hashlookup.store import labels as _labels

ALGORITHMS = algorithms.NAMES
WIDTHS = algorithms.WIDTH
GROUPS = {a.name: a.format_id for a in algorithms.DIGESTS}
CHUNK = 1 << 20  # rows per merged chunk and per pass over row numbers


def _in_sorted(x: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """x[i] in sorted_values, for each i."""
    if len(sorted_values) == 0:
        return np.zeros(len(x), dtype=bool)
    i = np.searchsorted(sorted_values, x)
    i[i == len(sorted_values)] = 0
    found: np.ndarray = sorted_values[i] == x
    return found


@dataclass
class RecordPlan:
    """Record ids of input rows, from the few rows that share something.

    Attributes
    ----------
    n : int
        Input rows.
    nodes, node_comp : numpy.ndarray
        Rows with an edge (sorted) and their component (its smallest row).
    dropped : numpy.ndarray
        Components left out by the allow-list (sorted).
    removed : numpy.ndarray
        Rows that are no record: not their component's representative, or
        dropped (sorted).
    """

    n: int
    nodes: np.ndarray
    node_comp: np.ndarray
    dropped: np.ndarray
    removed: np.ndarray

    @property
    def records(self) -> int:
        return self.n - len(self.removed)

    def comp(self, rows: np.ndarray) -> np.ndarray:
        """Component (smallest row) of each row."""
        c = np.array(rows, dtype=np.int64, copy=True)
        if len(self.nodes):
            i = np.searchsorted(self.nodes, c)
            i[i == len(self.nodes)] = 0
            hit = self.nodes[i] == c
            c[hit] = self.node_comp[i[hit]]
        return c

    def rid(self, rows: np.ndarray) -> np.ndarray:
        """Record id of each row, -1 for a dropped one."""
        c = self.comp(rows)
        out: np.ndarray = c - np.searchsorted(self.removed, c)
        if len(self.dropped):
            out[_in_sorted(c, self.dropped)] = -1
        return out


def plan_records(
    n: int, edges: list[tuple[np.ndarray, np.ndarray]], hits: list[np.ndarray]
) -> RecordPlan:
    """Connected components over the edges (label propagation on the rows
    that have one), the components of the allow-listed rows dropped."""
    if edges:
        a = np.concatenate([e[0] for e in edges])
        b = np.concatenate([e[1] for e in edges])
    else:
        a = b = np.empty(0, np.int64)
    nodes = np.unique(np.concatenate([a, b]))
    ia, ib = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
    comp = np.arange(len(nodes), dtype=np.int64)  # index order is row order
    while len(ia):
        low = np.minimum(comp[ia], comp[ib])
        before = comp.copy()
        np.minimum.at(comp, ia, low)
        np.minimum.at(comp, ib, low)
        while True:  # pointer jumping
            nxt = comp[comp]
            if np.array_equal(nxt, comp):
                break
            comp = nxt
        if np.array_equal(before, comp):
            break
    node_comp = nodes[comp] if len(nodes) else nodes
    hit = np.unique(np.concatenate(hits)) if hits else np.empty(0, np.int64)
    plan = RecordPlan(n, nodes, node_comp, np.empty(0, np.int64), np.empty(0, np.int64))
    dropped = np.unique(plan.comp(hit))
    non_rep = nodes[node_comp != nodes]
    dropped_rows = np.concatenate(
        [nodes[_in_sorted(node_comp, dropped)], dropped[~_in_sorted(dropped, nodes)]]
    )
    plan.dropped = dropped
    plan.removed = np.unique(np.concatenate([non_rep, dropped_rows]))
    return plan


def _row_chunks(spans: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    for start, stop in spans:
        for a in range(start, stop, CHUNK):
            yield np.arange(a, min(stop, a + CHUNK), dtype=np.int64)


class _Table:
    """One algorithm's merge: its writer, scratch file of heads, counts."""

    def __init__(self, a: str) -> None:
        self.a = a
        self.writer: TableWriter | None = None
        self.heads: Any = None
        self.rowmap: Slot | None = None
        self.n = 0


def _merge_table(
    cols: Columns,
    a: str,
    allow: Any,
    plan: RecordPlan | None,
    sink: Callable[[np.ndarray, np.ndarray], None] | None,
    show: Progress,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray]]:
    """Merge the runs of algorithm `a`: edges of equal digests and the
    allow-listed heads; each surviving key and its head to `sink`."""
    assert cols.sorters is not None
    sorter = cols.sorters[a]
    w = WIDTHS[a]
    edges: list[tuple[np.ndarray, np.ndarray]] = []
    hits: list[np.ndarray] = []
    prev: np.ndarray | None = None
    carry = 0
    done = 0
    # Reused for every chunk: the sink consumes the keys before the next.
    ukeys_buf = np.empty((CHUNK, w), np.uint8)
    uheads_buf = np.empty(CHUNK, np.uint32)
    erow, ehead = np.empty(CHUNK, np.uint32), np.empty(CHUNK, np.uint32)
    for chunk in sorter.chunks(CHUNK, ahead=True):
        m = len(chunk)
        if m > len(uheads_buf):
            ukeys_buf = np.empty((m, w), np.uint8)
            uheads_buf = np.empty(m, np.uint32)
            erow, ehead = np.empty(m, np.uint32), np.empty(m, np.uint32)
        k, e, carry = _core.split_merged(
            chunk, w, prev, carry, ukeys_buf, uheads_buf, erow, ehead
        )
        if e:
            edges.append((erow[:e].astype(np.int64), ehead[:e].astype(np.int64)))
        prev = chunk[-1, :w].copy()
        ukeys, uheads = ukeys_buf[:k], uheads_buf[:k]
        if allow is not None and len(ukeys):
            out = np.empty(len(ukeys), dtype=np.uint8)
            allow._contains_into(np.ascontiguousarray(ukeys).reshape(-1), out)
            if out.any():
                hits.append(uheads[out.view(bool)].astype(np.int64))
        if sink is not None:
            if plan is not None and len(plan.dropped):
                live = plan.rid(uheads) >= 0
                ukeys, uheads = ukeys[live], uheads[live]
            if len(ukeys):
                sink(ukeys, uheads)
        done += m
        show.update(f"merging {a}", done, sorter.rows_in)
    return edges, hits


def build_spilled(
    cols: Columns,
    f: Any,
    allow_keys: dict[str, np.ndarray] | None,
    link_blocks: list[tuple[int, int, np.ndarray | None]],
    n_old: int,
    bloom: tuple[float, int, float | None],
    memory: int,
    show: Progress,
) -> dict[str, Any]:
    """Write the dataset's sections to `f` (an atomic_output file) up to the
    metadata; returns what build_dataset reports and stores in it."""
    assert cols.sorters is not None and cols.spill is not None
    spill = cols.spill
    # Every sorter's last rows to a run first: then the sort buffers and the
    # sorts' scratch are freed before any merge needs memory.
    for s in cols.sorters.values():
        if s.fill:
            s.flush()
        s.buf = None
        if s.scratch is not None:
            s.scratch.release()
    asm = FileAssembler(f)
    tables = {a: _Table(a) for a in ALGORITHMS if cols.sorters[a].rows_in}
    allow_tables = {
        a: memory_table(sort_unique(k)) for a, k in (allow_keys or {}).items() if len(k)
    }
    edges: list[tuple[np.ndarray, np.ndarray]] = []
    hits: list[np.ndarray] = []
    edges += _link_edges(link_blocks)
    plan: RecordPlan | None = None
    if allow_keys is not None:  # first merge: what the allow-list drops
        for a in tables:
            e, h = _merge_table(cols, a, allow_tables.get(a), None, None, show)
            edges += e
            hits += h
        plan = plan_records(cols.n, edges, hits)
    for a, t in tables.items():

        def sink(keys: np.ndarray, heads: np.ndarray, t: _Table = t) -> None:
            if t.writer is None:
                t.writer = TableWriter(
                    asm,
                    t.a,
                    WIDTHS[t.a],
                    GROUPS[t.a],
                    bloom[0],
                    bloom[1],
                    consumers=[
                        PrefilterConsumer(
                            bloom[2], GROUPS[t.a], bloom_bits_per_key=bloom[0]
                        )
                    ],
                )
                t.heads = spill.open_file("heads")
            t.writer.add(keys)
            t.heads.write(memoryview(heads.astype("<u4")))

        e, h = _merge_table(cols, a, None, plan, sink, show)
        if plan is None:
            edges += e
        if t.writer is not None:
            show.update(f"filter {a}", 0, force=True)
            t.n = t.writer.finish()
            t.rowmap = asm.place(_format.KIND_ROWMAP, 4 * t.n, group=GROUPS[a])
        cols.sorters[a].discard()
    if plan is None:
        plan = plan_records(cols.n, edges, hits)
    tables = {a: t for a, t in tables.items() if t.n}
    if not tables:
        return {"keys": {}}
    changed = []
    for t in tables.values():  # rowmaps, from the heads
        assert t.rowmap is not None
        t.heads.seek(0)
        while True:
            raw = t.heads.read(4 * CHUNK)
            if not raw:
                break
            heads = np.frombuffer(raw, "<u4").astype(np.int64)
            ids = plan.rid(heads)
            t.rowmap.write(ids.astype("<u4"))
            if n_old:  # a digest new to an old record: that record changed
                new = heads[heads >= n_old]
                c = plan.comp(new)
                changed.append(c[c < n_old])
        t.heads.close()
    n_records = plan.records
    _write_records(asm, cols, plan, tables, memory, show)
    return {
        "asm": asm,
        "plan": plan,
        "records": n_records,
        "keys": {a: t.n for a, t in tables.items()},
        "changed_digests": changed,
    }


def _link_edges(
    link_blocks: list[tuple[int, int, np.ndarray | None]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Edges between carried rows of one old record: rows whose record id
    is not their own row number, to the row of that id (or, for ids that
    are no row of their own, to the first row with that id)."""
    own = [(b, b + m) for b, m, ids in link_blocks if ids is None]
    rows, ids = [], []
    for base, m, block in link_blocks:
        if block is not None:
            rows.append(np.arange(base, base + m, dtype=np.int64))
            ids.append(block.astype(np.int64))
    if not rows:
        return []
    r, v = np.concatenate(rows), np.concatenate(ids)
    starts = np.array([s for s, _ in own], dtype=np.int64)
    stops = np.array([e for _, e in own], dtype=np.int64)
    i = np.searchsorted(starts, v, side="right") - 1
    is_own = (
        (i >= 0) & (v < stops[np.maximum(i, 0)])
        if len(starts)
        else np.zeros(len(v), bool)
    )
    out = [(r[is_own], v[is_own])]
    r, v = r[~is_own], v[~is_own]
    if len(r):
        order = np.lexsort((r, v))
        r, v = r[order], v[order]
        first = np.ones(len(v), dtype=bool)
        first[1:] = v[1:] != v[:-1]
        head = r[np.maximum.accumulate(np.where(first, np.arange(len(v)), 0))]
        out.append((r[~first], head[~first]))
    return out


def _write_records(
    asm: FileAssembler,
    cols: Columns,
    plan: RecordPlan,
    tables: dict[str, _Table],
    memory: int,
    show: Progress,
) -> None:
    """The records section, in windows of record ids: each pass reads the
    rowmaps back from the file and the sizes from their scratch file."""
    n_records = plan.records
    slot = asm.place(_format.KIND_RECORDS, 24 * n_records, params=(n_records, 0, 0))
    cols.flush_sizes()
    cols.size_file.flush()
    # No row shares a digest with another and none is dropped: record i is
    # row i, and its size is the row's.
    one_to_one = not (len(plan.nodes) or len(plan.removed) or len(plan.dropped))
    # ~36 bytes a record in a window (record 24, size 8, one rowmap column
    # 4): half the budget, as nothing else of the build is held by now; each
    # window reads every rowmap once, so fewer windows, fewer passes.
    window = max(1 << 16, (memory // 2) // 40)
    for lo in range(0, n_records, window):
        hi = min(n_records, lo + window)
        rec = np.zeros(hi - lo, dtype=_format.RECORD_DTYPE)
        for a in ALGORITHMS:
            col = np.full(hi - lo, _format.NO_ROW, dtype=np.uint32)
            t = tables.get(a)
            if t is not None:
                assert t.rowmap is not None
                for row0 in range(0, t.n, CHUNK):
                    m = min(CHUNK, t.n - row0)
                    buf = os.pread(asm.fd, 4 * m, t.rowmap.offset + 4 * row0)
                    if len(buf) != 4 * m:
                        raise OSError(f"rowmap of {a} is shorter than written")
                    _core.rowmap_invert(buf, row0, lo, hi, col)
            rec[f"{a}_row"] = col
        if one_to_one:
            raw = os.pread(cols.size_file.fileno(), 8 * (hi - lo), 8 * lo)
            if len(raw) != 8 * (hi - lo):
                raise OSError("size file is shorter than written")
            rec["size"] = np.frombuffer(raw, "<i8")
        else:
            rec["size"] = _window_sizes(cols, plan, lo, hi)
        slot.write(rec.view(np.uint8))
        show.update("records", hi, n_records, force=True)


def _window_sizes(cols: Columns, plan: RecordPlan, lo: int, hi: int) -> np.ndarray:
    """The size of records lo..hi: the largest of their rows' sizes."""
    size = np.full(hi - lo, -1, dtype=np.int64)
    cols.size_file.seek(0)
    row0 = 0
    while True:
        raw = cols.size_file.read(8 * CHUNK)
        if not raw:
            break
        sizes = np.frombuffer(raw, "<i8")
        ids = plan.rid(np.arange(row0, row0 + len(sizes), dtype=np.int64))
        sel = np.flatnonzero((ids >= lo) & (ids < hi))
        np.maximum.at(size, ids[sel] - lo, sizes[sel])
        row0 += len(sizes)
    return size


def record_ids(plan: RecordPlan) -> np.ndarray:
    """The record id of every input row (8 bytes a row: only for builds
    with attributes or PDQ hashes)."""
    out = np.empty(plan.n, dtype=np.int64)
    for rows in _row_chunks([(0, plan.n)]):
        out[rows[0] : rows[-1] + 1] = plan.rid(rows)
    return out


def label_records(cols: Columns, plan: RecordPlan) -> dict[str, np.ndarray]:
    """Label -> sorted record ids (uint32), from row ranges and arrays."""
    mark = np.zeros(plan.records, dtype=bool)
    out = {}
    for label in sorted(set(cols.labels) | set(cols.ranges)):
        for rows in _label_rows(cols, label):
            ids = plan.rid(rows)
            mark[ids[ids >= 0]] = True
        out[label] = np.flatnonzero(mark).astype(np.uint32)
        mark[:] = False
    return out


def _label_rows(cols: Columns, label: str) -> Iterator[np.ndarray]:
    yield from _row_chunks(cols.ranges.get(label, []))
    yield from cols.labels.get(label, [])


def dropped_rows(cols: Columns, plan: RecordPlan, spans: list[tuple[int, int]]) -> int:
    """Rows of `spans` left out by the allow-list."""
    if not len(plan.dropped):
        return 0
    return sum(int(np.count_nonzero(plan.rid(r) < 0)) for r in _row_chunks(spans))


def carried_counts(
    cols: Columns,
    plan: RecordPlan,
    n_old: int,
    link_blocks: list[tuple[int, int, np.ndarray | None]],
    changed_digests: list[np.ndarray],
) -> dict[str, int]:
    """update_dataset's added / removed / changed counts, as the in-memory
    build counts them."""
    removed_ids = []
    if len(plan.dropped):
        for base, m, ids in link_blocks:
            rows = np.arange(base, base + m, dtype=np.int64)
            gone = plan.rid(rows) < 0
            removed_ids.append(rows[gone] if ids is None else ids[gone])
    removed = len(np.unique(np.concatenate(removed_ids))) if removed_ids else 0
    new_non_records = len(plan.removed) - int(np.searchsorted(plan.removed, n_old))
    added = cols.n - n_old - new_non_records
    changed = list(changed_digests)
    nodes = plan.nodes
    for label in set(cols.labels) | set(cols.ranges):
        # Only rows with edges can join an old record: restrict to them.
        parts = [
            nodes[(nodes >= a) & (nodes < b)] for a, b in cols.ranges.get(label, [])
        ]
        parts += [r[_in_sorted(r, nodes)] for r in cols.labels.get(label, [])]
        rows = np.concatenate(parts) if parts else np.empty(0, np.int64)
        if not len(rows):
            continue
        had = np.unique(plan.comp(rows[rows < n_old]))
        new = rows[rows >= n_old]
        new = new[plan.rid(new) >= 0]
        c = plan.comp(new)
        changed.append(c[(c < n_old) & ~_in_sorted(c, had)])
    all_changed = np.concatenate(changed) if changed else np.empty(0, np.int64)
    return {
        "removed": removed,
        "added": int(added),
        "changed": len(np.unique(all_changed)),
    }


@dataclass
class SpilledResult:
    """What write_dataset reports back to build_dataset."""

    records: int
    keys: dict[str, int]
    merged: int
    suppressed: dict[str, int]
    size: int
    carried: dict[str, int]


def write_dataset(
    cols: Columns,
    f: Any,
    sources: list[str],
    allow_keys: dict[str, np.ndarray] | None,
    link_blocks: list[tuple[int, int, np.ndarray | None]],
    n_old: int,
    bloom: tuple[float, int, float | None],
    memory: int,
    show: Progress,
    metadata: Callable[..., _format.SectionData],
    code_tables: list[_format.SectionData],
) -> SpilledResult:
    """Every section of a spilled dataset build, in the in-memory build's
    order, to `f` (an atomic_output file); `metadata(records, keys, pdq
    rows, merged, suppressed)` gives the metadata section, written after
    the `code_tables` sections (as the in-memory build writes them)."""
    out = build_spilled(cols, f, allow_keys, link_blocks, n_old, bloom, memory, show)
    if not out["keys"]:
        raise InputError(
            "no digests in the inputs" + (" after the allow-list" if allow_keys else "")
        )
    plan, asm, n_records = out["plan"], out["asm"], out["records"]
    suppressed = (
        {
            s: dropped_rows(cols, plan, cols.ranges.get(f"source:{s}", []))
            for s in sources
        }
        if allow_keys is not None
        else {}
    )
    kept = cols.n - dropped_rows(cols, plan, [(0, cols.n)])
    carried = (
        carried_counts(cols, plan, n_old, link_blocks, out["changed_digests"])
        if n_old
        else {}
    )
    show.update("labels", 0, force=True)
    rid = (
        record_ids(plan)
        if len(cols.pdq) or cols.attributes.blocks
        else np.empty(0, np.int64)
    )
    pdq_parts, pdq_rows = pdq_sections(cols.pdq, rid)
    bitmaps, index = _labels.encode(label_records(cols, plan))
    for part in [
        *pdq_parts,
        _format.SectionData(
            _format.KIND_LABEL_BITMAPS, np.frombuffer(bitmaps, np.uint8)
        ),
        _format.SectionData(_format.KIND_LABEL_INDEX, np.frombuffer(index, np.uint8)),
        *cols.attributes.sections(cols.n, rid, n_records),
        *code_tables,
        metadata(n_records, out["keys"], pdq_rows, kept - n_records, suppressed),
    ]:
        asm.add(part)
    size = asm.finish(time.time_ns())
    return SpilledResult(
        n_records, out["keys"], kept - n_records, suppressed, size, carried
    )
