"""Building datasets: several inputs and algorithms in one file, with
records, labels and an allow-list.

1. Every input is read by an importer (hashlookup.importers) into columnar
   record batches; all its records get the label source:NAME.
2. Records that share any digest are the same file: they are merged into one
   record (connected components over shared digests, found by label
   propagation with numpy), which carries the labels of all of them.
3. A record with any digest on the allow-list is dropped entirely: the file
   is known to be harmless (e.g. the empty file, common web assets).
4. Per algorithm, the digests are sorted together with their record id (the
   C radix sort on rows of digest + 4-byte id), giving the key table and its
   rowmap at once.  Records point back at their rows.
5. Everything is written with the index format's writer, atomically.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hashlookup import algorithms
from hashlookup._atomic import atomic_output
from hashlookup._version import __version__
from hashlookup.builders._merge import (
    Columns,
    changed_records,
    components,
    dataset_batches,
    member,
    release_memory,
    same_as_previous,
    sort_digests,
)
from hashlookup.builders.attributes import CodeTables
from hashlookup.builders.index import (
    DEFAULT_BLOOM_BITS_PER_KEY,
    DEFAULT_BLOOM_HASHES,
    check_bloom_params,
    table_sections,
)
from hashlookup.builders.pdq import pdq_sections
from hashlookup.builders.prefilter import check_prefilter_params
from hashlookup.builders.runs import (
    DEFAULT_MEMORY,
    Progress,
    RunSorter,
    SortScratch,
    SpillDir,
    check_memory,
    prefetch,
)
from hashlookup.errors import InputError
from hashlookup.store import format as _format
from hashlookup.store import labels as _labels

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from hashlookup._types import BuildOptions, DatasetInputs

ALGORITHMS = algorithms.NAMES
WIDTHS = algorithms.WIDTH
GROUPS = {a.name: a.format_id for a in algorithms.DIGESTS}  # table group = format id
#: formats whose ImportReport.version is an NSRL RDS version (the dataset's
#: nsrl-version, docs/DATASETS.md)
NSRL_FORMATS = ("nsrl-rds2", "sqlite")


@dataclass
class DatasetReport:
    """What build_dataset did.

    Attributes
    ----------
    path, name : str
        The file written and the dataset's name.
    generation : int
        The version number stored in the file.
    records : int
        Records in the dataset.
    keys : dict[str, int]
        Algorithm -> unique digests (its table's keys).
    inputs : dict[str, int]
        Source name -> records read from that input.
    invalid : int
        Bad records skipped (``skip_invalid=True``).
    merged : int
        Records read (or carried over) that share a digest with another
        and were merged into its record.
    suppressed : dict[str, int]
        Source name -> its records left out by the allow-lists (``{}``
        without `allow`).
    file_size : int
        Bytes written.
    seconds : float
        Wall-clock time of the build.
    carried : dict[str, int]
        With records carried over from a previous generation
        (update_dataset): ``added``, ``removed`` and ``changed`` counts as
        in :class:`UpdateReport`; ``{}`` otherwise.
    """

    path: str
    name: str
    generation: int
    records: int
    keys: dict[str, int]
    inputs: dict[str, int]
    invalid: int
    merged: int
    suppressed: dict[str, int] = field(default_factory=dict)
    file_size: int = 0
    seconds: float = 0.0
    carried: dict[str, int] = field(default_factory=dict)


def normalize_inputs(inputs: Any) -> list[tuple[str, str]]:
    """[(source name, path)] from a path, a list of paths or (name, path)
    pairs, or a {name: path} mapping.  The default name is the file's stem."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        items = list(inputs.items())
    else:
        items = []
        for x in inputs:
            if isinstance(x, (str, os.PathLike)):
                p = os.fspath(x)
                items.append((os.path.splitext(os.path.basename(p))[0] or p, p))
            elif isinstance(x, tuple) and len(x) == 2:
                items.append((str(x[0]), os.fspath(x[1])))
            else:
                raise TypeError(
                    "inputs must be paths, (name, path) pairs or a "
                    f"{{name: path}} mapping, got {type(x).__name__}"
                )
    seen = set()
    for name, _ in items:
        _labels.check_label(f"source:{name}")
        if name in seen:
            raise ValueError(f"two inputs are named {name!r}; name them NAME=PATH")
        seen.add(name)
    return [(n, os.fspath(p)) for n, p in items]


def _read(
    path: str,
    cols: Columns,
    source_label: str | None,
    opts: dict[str, Any],
    show: Progress | None = None,
) -> Any:
    from hashlookup.importers import ImportReport, iter_records

    report = ImportReport()
    # One pass over the input (a pipe cannot be opened twice); column options
    # are for the CSV inputs of a mixed build.
    batches = iter_records(path, report=report, csv_options_only_for_csv=True, **opts)
    for batch in prefetch(batches):
        cols.add(batch, source_label)
        if show is not None:
            show.update("reading", cols.n)
    return report


def _allowed_rows(
    n: int,
    sorted_digests: dict[str, tuple[np.ndarray, np.ndarray]],
    allow: list[str],
    opts: dict[str, Any],
) -> np.ndarray:
    """Rows with a digest on the allow-list (any format the importers read)."""
    allow_cols = Columns()
    for path in allow:
        _read(
            path,
            allow_cols,
            None,
            {k: v for k, v in opts.items() if k == "skip_invalid"},
        )
    hit = np.zeros(n, dtype=bool)
    for a in ALGORITHMS:
        ad, ap = allow_cols.column(a)
        if not ap.any() or a not in sorted_digests:
            continue
        keys, rows = sorted_digests[a]
        hit[rows] |= member(keys, ad[ap])
    return hit


def _next_generation(path: str) -> int:
    from hashlookup.store.dataset import open_dataset

    try:
        with open_dataset(path) as old:
            return old.generation + 1
    except (OSError, ValueError):
        return 1


def build_dataset(
    inputs: DatasetInputs,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    allow: Iterable[str] | None = None,
    input_format: str | None = None,
    columns: dict[str, str] | None = None,
    label_columns: dict[str, str] | None = None,
    attributes: list[str] | None = None,
    skip_invalid: bool = False,
    bloom_bits_per_key: float = DEFAULT_BLOOM_BITS_PER_KEY,
    bloom_hashes: int = DEFAULT_BLOOM_HASHES,
    prefilter_bits_per_key: float | None = None,
    generation: int | None = None,
    metadata: dict[str, Any] | None = None,
    memory: int = DEFAULT_MEMORY,
    tmp_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    _records: Iterable[Any] = (),
    _codes: CodeTables | None = None,
) -> DatasetReport:
    """Build a dataset file at `path` from one or more hash lists.

    Parameters
    ----------
    inputs : str, list or dict
        A path, a list of paths or (source name, path) pairs, or a
        {source name: path} mapping.  Each input's records get the label
        ``source:NAME`` (default NAME: the file's stem).  The format of each
        is detected from its content unless `input_format` is given.
    path : str or os.PathLike
        The dataset file to write, atomically.
    name : str, optional
        Dataset name (default: the output file's stem).
    allow : iterable of str, optional
        Paths of digest lists that must never match: records with any of
        these digests are left out (counted per source in the report).
    input_format : str, optional
        The format of every input (docs/IMPORTERS.md); detected if None.
    columns, label_columns, attributes : dict[str, str] or list of str, optional
        For CSV inputs: algorithm -> column, label prefix -> column, and the
        columns kept as record attributes (docs/DATASETS.md).
    skip_invalid : bool, default False
        Count and skip bad records instead of raising InputError.
    bloom_bits_per_key : float, default 12.0
        Bloom filter size of each key table (0..64); 0 builds none.
    bloom_hashes : int, default 8
        Bits probed per key (1..16).
    prefilter_bits_per_key : float or None, default None
        First-level filter of each key table (0..64 bits per key;
        docs/FORMAT.md kind 12), which lookups probe only when there is no
        Bloom filter.  None ("auto"): 4 bits per key if
        `bloom_bits_per_key` is 0, none otherwise; 0: none; a number > 0:
        that size, even beside a Bloom filter.
    generation : int, optional
        Version number stored in the file (default: the generation of the
        dataset currently at `path` plus one, or 1).
    metadata : dict, optional
        JSON-serialisable dict stored under "user" in the metadata section.
    memory : int, default 2_000_000_000
        Memory budget in bytes (the peak RSS aimed at, at least 1 MiB):
        past half of it the digests are sorted in runs spilled to a
        temporary directory and merged from disk (docs/API.md,
        "Builds larger than memory").  The file is the same either way.
    tmp_dir : str or os.PathLike, optional
        Where the runs go (default: the output's directory); the directory
        made there is removed when the build ends, whatever happens.
    progress : bool, default False
        Show progress on stderr when it is a terminal.

    Returns
    -------
    DatasetReport
        Counts, file size and time of the build.
    """
    t0 = time.perf_counter()
    path = os.fspath(path)
    check_memory(memory)
    check_bloom_params(bloom_bits_per_key, bloom_hashes)
    check_prefilter_params(prefilter_bits_per_key)
    show = Progress(None if progress else False)
    try:
        with SpillDir(path, tmp_dir) as spill:
            return _build(
                inputs,
                path,
                t0,
                spill,
                show,
                name=name,
                allow=allow,
                input_format=input_format,
                columns=columns,
                label_columns=label_columns,
                attributes=attributes,
                skip_invalid=skip_invalid,
                filters=(bloom_bits_per_key, bloom_hashes, prefilter_bits_per_key),
                generation=generation,
                metadata=metadata,
                memory=memory,
                _records=_records,
                codes=_codes if _codes is not None else CodeTables(),
            )
    finally:
        show.close()


def _build(
    inputs: Any,
    path: str,
    t0: float,
    spill: SpillDir,
    show: Progress,
    *,
    name: str | None,
    allow: Iterable[str] | None,
    input_format: str | None,
    columns: dict[str, str] | None,
    label_columns: dict[str, str] | None,
    attributes: list[str] | None,
    skip_invalid: bool,
    filters: tuple[float, int, float | None],
    generation: int | None,
    metadata: dict[str, Any] | None,
    memory: int,
    _records: Iterable[Any],
    codes: CodeTables,
) -> DatasetReport:
    sources = normalize_inputs(inputs) if inputs else []
    name = name or os.path.splitext(os.path.basename(path))[0]
    opts: dict[str, Any] = {"skip_invalid": skip_invalid, "attributes": attributes}
    opts.update(input_format=input_format, columns=columns, label_columns=label_columns)

    scratch = SortScratch()  # the tables flush one after another: one scratch
    cols = Columns(
        sorters={
            a: RunSorter(WIDTHS[a] + 4, memory // 2, spill, scratch) for a in ALGORITHMS
        },
        spill=spill,
        budget=memory,
    )
    # Record ids of carried rows, as (first row, rows, ids): None when the
    # ids are the row numbers themselves (one row per record, in order).
    link_blocks: list[tuple[int, int, np.ndarray | None]] = []
    for batch, ids in _records:  # records carried over by update_dataset:
        base = cols.n
        cols.add(batch, None)  # first, so that they keep their order
        ids = np.asarray(ids, dtype=np.int64)
        own = len(ids) and ids[0] == base and ids[-1] == base + len(ids) - 1
        if own and bool(np.all(np.diff(ids) == 1)):
            link_blocks.append((base, len(ids), None))
        else:
            link_blocks.append((base, len(ids), ids))
        show.update("reading", cols.n)
    n_old = cols.n
    read: dict[str, int] = {}
    source_meta: dict[str, Any] = {}
    invalid = 0
    for src, p in sources:
        before = cols.n
        rep = _read(p, cols, f"source:{src}", opts, show)
        codes.add(rep.tables, rep.version if rep.format in NSRL_FORMATS else None)
        read[src] = cols.n - before
        invalid += rep.invalid
        source_meta[src] = {
            "file": os.path.basename(p),
            "format": rep.format,
            "records": cols.n - before,
            "invalid": rep.invalid,
        }
    if cols.n > _format.MAX_RECORDS:
        raise ValueError(f"{cols.n} input records exceed {_format.MAX_RECORDS}")
    allow = list(allow or [])
    common = (name, generation, metadata, source_meta, invalid, allow, codes)
    if cols.spilled:
        return _build_spilled(
            cols,
            path,
            t0,
            show,
            sources,
            opts,
            read,
            n_old,
            link_blocks,
            common,
            filters,
            memory,
        )
    cols.materialize_labels()
    links = (
        np.concatenate(
            [
                np.arange(b, b + m, dtype=np.int64) if ids is None else ids
                for b, m, ids in link_blocks
            ]
        )
        if link_blocks
        else None
    )
    sorted_digests = sort_digests(cols)
    comp = components(cols.n, sorted_digests, links)
    dropped = np.zeros(cols.n, dtype=bool)
    suppressed: dict[str, int] = {}
    if allow:
        bad_comp = np.zeros(cols.n, dtype=bool)
        bad_comp[comp[_allowed_rows(cols.n, sorted_digests, allow, opts)]] = True
        dropped = bad_comp[comp]
        for src, _ in sources:
            rows = (
                np.concatenate(cols.labels[f"source:{src}"])
                if f"source:{src}" in cols.labels
                else np.empty(0, np.int64)
            )
            suppressed[src] = int(np.count_nonzero(dropped[rows]))
    kept = np.flatnonzero(~dropped)
    # Records are numbered in input order of their first row: a row is its
    # component's representative iff comp[row] == row.
    is_rep = np.zeros(cols.n, dtype=bool)
    is_rep[kept] = comp[kept] == kept
    rank = np.cumsum(is_rep, dtype=np.int64) - 1
    n_records = int(rank[-1] + 1) if cols.n else 0
    rid = np.full(cols.n, -1, dtype=np.int64)
    rid[kept] = rank[comp[kept]]
    carried = {}
    if n_old:
        assert links is not None
        carried = {
            "removed": len(np.unique(links[dropped[:n_old]])),
            "added": int(np.count_nonzero(is_rep[n_old:])),
            "changed": changed_records(n_old, comp, kept, sorted_digests, cols.labels),
        }

    del is_rep, rank, comp  # no longer needed: free before the tables
    records = np.zeros(n_records, dtype=_format.RECORD_DTYPE)
    for a in ALGORITHMS:
        records[f"{a}_row"] = _format.NO_ROW
    sizes = np.concatenate(cols.sizes) if cols.sizes else np.empty(0, np.int64)
    cols.sizes = []
    rec_size = np.full(n_records, -1, dtype=np.int64)
    if len(kept) == cols.n:  # nothing dropped: no fancy-indexed copies
        np.maximum.at(rec_size, rid, sizes)
    else:
        np.maximum.at(rec_size, rid[kept], sizes[kept])
    records["size"] = rec_size
    del sizes, rec_size
    release_memory()

    parts: list[_format.SectionData] = []
    key_counts: dict[str, int] = {}
    for a in ALGORITHMS:
        if a not in sorted_digests:
            continue
        keys, rows = sorted_digests.pop(a)
        live = ~dropped[rows]
        if not live.all():
            keys, rows = keys[live], rows[live]
        if len(keys) == 0:
            continue
        # Equal digests are adjacent and belong to one record: keep the first.
        first = np.ones(len(keys), dtype=bool)
        first[1:] = ~same_as_previous(keys)
        if not first.all():
            keys, rows = keys[first], rows[first]
        keys = np.ascontiguousarray(keys)
        ids = rid[rows]
        key_counts[a] = len(keys)
        group = GROUPS[a]
        parts += table_sections(keys, a, group, *filters)
        parts.append(
            _format.SectionData(
                _format.KIND_ROWMAP, ids.astype("<u4").view(np.uint8), group=group
            )
        )
        first_row = np.full(n_records, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_row, ids, np.arange(len(ids), dtype=np.int64))
        has = first_row != np.iinfo(np.int64).max
        records[f"{a}_row"][has] = first_row[has]
    parts.append(
        _format.SectionData(
            _format.KIND_RECORDS, records.view(np.uint8), params=(n_records, 0, 0)
        )
    )

    label_rids = {}
    mark = np.zeros(n_records, dtype=bool)
    for label, blocks in cols.labels.items():
        ids = rid[np.concatenate(blocks)]
        mark[ids[ids >= 0]] = True
        label_rids[label] = np.flatnonzero(mark).astype(np.uint32)
        mark[:] = False
    pdq_parts, pdq_rows = pdq_sections(cols.pdq, rid)
    parts += pdq_parts
    bitmaps, index = _labels.encode(label_rids)
    parts += [
        _format.SectionData(
            _format.KIND_LABEL_BITMAPS, np.frombuffer(bitmaps, np.uint8)
        ),
        _format.SectionData(_format.KIND_LABEL_INDEX, np.frombuffer(index, np.uint8)),
        *cols.attributes.sections(cols.n, rid, n_records),
        *codes.sections(),
    ]

    if generation is None:
        generation = _next_generation(path)
    created_ns = time.time_ns()
    parts.append(
        _metadata(
            common,
            int(generation),
            n_records,
            key_counts,
            pdq_rows,
            int(len(kept) - n_records),
            suppressed,
            filters,
        )
    )
    if not key_counts:
        raise InputError(
            "no digests in the inputs" + (" after the allow-list" if allow else "")
        )
    with atomic_output(path) as f:
        size = _format.write_file(f, parts, created_ns)
    return DatasetReport(
        path,
        name,
        int(generation),
        n_records,
        key_counts,
        read,
        invalid,
        int(len(kept) - n_records),
        suppressed,
        size,
        time.perf_counter() - t0,
        carried,
    )


def _metadata(
    common: tuple[Any, ...],
    generation: int,
    n_records: int,
    key_counts: dict[str, int],
    pdq_rows: int,
    merged: int,
    suppressed: dict[str, int],
    bloom: tuple[float, int, float | None],
) -> _format.SectionData:
    """The metadata section of a dataset (the same for both kinds of build)."""
    name, _, metadata, source_meta, invalid, allow, codes = common
    meta = {
        "format": "hashlookup-dataset",
        "hashlookup_version": __version__,
        "dataset": {
            "name": name,
            "generation": generation,
            "records": n_records,
            "keys": key_counts,
            **({"pdq": pdq_rows} if pdq_rows else {}),
            **({"nsrl-version": codes.nsrl_version} if codes.nsrl_version else {}),
        },
        "build": {
            "sources": source_meta,
            "invalid": invalid,
            "merged": merged,
            "suppressed": suppressed,
            "allow_lists": [os.path.basename(x) for x in allow],
            "bloom_bits_per_key": bloom[0],
            "bloom_hashes": bloom[1] if bloom[0] > 0 else 0,
        },
    }
    if metadata is not None:
        meta["user"] = metadata
    return _format.SectionData(
        _format.KIND_METADATA, json.dumps(meta, sort_keys=True).encode(), flags=0
    )


def _build_spilled(
    cols: Columns,
    path: str,
    t0: float,
    show: Progress,
    sources: list[tuple[str, str]],
    opts: dict[str, Any],
    read: dict[str, int],
    n_old: int,
    link_blocks: list[tuple[int, int, np.ndarray | None]],
    common: tuple[Any, ...],
    bloom: tuple[float, int, float | None],
    memory: int,
) -> DatasetReport:
    """build_dataset for digests sorted in runs on disk (builders/spilled.py)."""
    from hashlookup.builders import spilled

    name, generation, _, _, invalid, allow, codes = common
    allow_keys = None
    if allow:
        allow_cols = Columns()
        for p in allow:
            _read(p, allow_cols, None, {"skip_invalid": opts["skip_invalid"]})
        allow_keys = {}
        for a in ALGORITHMS:
            ad, ap = allow_cols.column(a)
            allow_keys[a] = ad[ap]
    if generation is None:
        generation = _next_generation(path)

    def meta(
        records: int, keys: dict[str, int], pdq: int, merged: int, sup: dict[str, int]
    ) -> _format.SectionData:
        return _metadata(
            common, int(generation), records, keys, pdq, merged, sup, bloom
        )

    with atomic_output(path) as f:
        r = spilled.write_dataset(
            cols,
            f,
            [s for s, _ in sources],
            allow_keys,
            link_blocks,
            n_old,
            bloom,
            memory,
            show,
            meta,
            codes.sections(),
        )
    return DatasetReport(
        path,
        name or "",
        int(generation),
        r.records,
        r.keys,
        read,
        invalid,
        r.merged,
        r.suppressed,
        r.size,
        time.perf_counter() - t0,
        r.carried,
    )


@dataclass
class UpdateReport:
    """What update_dataset changed between two generations.

    Attributes
    ----------
    path : str
        The file written (the dataset's path, or `output`).
    generation : int
        The new generation's version number (the old one's plus one).
    records_before, records_after : int
        Records in the old and in the new generation.
    added : int
        New records: records whose digests were all new.
    removed : int
        Old records dropped by the removal lists.
    changed : int
        Old records that gained digests or labels.
    file_size : int
        Bytes written.
    seconds : float
        Wall-clock time of the update.
    """

    path: str
    generation: int
    records_before: int
    records_after: int
    added: int
    removed: int
    changed: int
    file_size: int
    seconds: float


def update_dataset(
    path: str | os.PathLike[str],
    *,
    add: DatasetInputs | None = None,
    remove: Iterable[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    **build_options: Unpack[BuildOptions],
) -> UpdateReport:
    """Write the next generation of the dataset at `path`.

    Its records (with their labels) plus the records of `add`, minus every
    record with a digest in one of the `remove` lists; records that share a
    digest merge.  The result replaces `path` atomically (or goes to
    `output`); readers with auto_reload pick it up.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset (or plain index file) to update.
    add : optional
        Inputs as for build_dataset (a path, a list of paths or of (name,
        path) pairs, or a {name: path} mapping), tagged ``source:NAME``.
    remove : iterable of str, optional
        Paths of digest lists: no record with one of their digests, old or
        added, is kept.
    output : str or os.PathLike, optional
        Where to write the new generation (default: `path`).
    **build_options
        Other options of build_dataset (``input_format``, ``columns``,
        ``skip_invalid``, ``bloom_bits_per_key``, ``metadata``...).

    Returns
    -------
    UpdateReport
        What changed between the two generations.

    Raises
    ------
    IndexFormatError, OSError
        `path` cannot be opened as a dataset.
    InputError
        An invalid entry in an input, or no digest left.
    ValueError, TypeError
        Bad options or inputs, as for build_dataset.
    """
    from hashlookup.store.dataset import open_dataset

    t0 = time.perf_counter()
    path = os.fspath(path)
    out = os.fspath(output) if output is not None else path
    with open_dataset(path) as old:
        before = len(old)
        codes = CodeTables()
        codes.carry(old.code_tables, old.nsrl_version)
        rep = build_dataset(
            add or [],
            out,
            name=old.name,
            allow=remove,
            generation=old.generation + 1,
            _records=dataset_batches(old),
            _codes=codes,
            **build_options,
        )
    c = rep.carried
    return UpdateReport(
        out,
        rep.generation,
        before,
        rep.records,
        c.get("added", 0),
        c.get("removed", 0),
        c.get("changed", 0),
        rep.file_size,
        time.perf_counter() - t0,
    )
