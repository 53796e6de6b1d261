"""`hashlookup match`: inventories (text, CSV/TSV, Parquet) against a dataset.

The work is done by ``hashlookup.match.inventory.match_inventory`` (pieces decoded
and looked up on a thread pool, returned in input order); this module turns
the pieces into output: hit lines/rows as text, JSON lines or CSV, the input
annotated with a ``match`` column, or a count.  With ``--workers``/
``--scheduler`` the inventory is matched on Dask instead
(``hashlookup.cli.dask``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

from hashlookup.match.inventory import Inventory, InventoryStats, Piece, match_inventory
from hashlookup.match.keys import KeyMatcher, record_labels


def default_jobs() -> int:
    """Worker threads when --jobs is 0: the usable cores (at most 8: the
    batch kernel is memory bound beyond that)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def inventories_from_args(args: argparse.Namespace, error: Any) -> list[Inventory]:
    files = list(args.files) or ["-"]
    invs = []
    for path in files:
        kind = args.input_format
        if path == "-":
            if kind not in ("auto", "text") or args.column is not None:
                raise error("standard input is read as a text digest list: CSV/TSV "
                            "and Parquet inputs (--column) must be files")
            invs.append(Inventory("-", "text", stream=sys.stdin.buffer))
            continue
        invs.append(Inventory(path, kind, column=args.column,
                              delimiter=args.delimiter))
    if len({inv.is_table for inv in invs}) > 1:
        raise error("text digest lists and CSV/Parquet inputs cannot be mixed in "
                    "one run (their outputs have different columns)")
    if sum(1 for inv in invs if inv.path == "-") > 1:
        raise error("standard input ('-') can be read only once")
    return invs


def run_match(args: argparse.Namespace, ctx: Any, opened: Any, only: Any,
              exclude: Any, error: Any) -> InventoryStats:
    """Match the inventories of ``args`` against ``opened`` (cli._Opened) and
    write the output to ``ctx.out``; returns the totals."""
    from hashlookup.cli import _csv_field, _csv_matches, _jsonl_matches

    invs = inventories_from_args(args, error)
    fmt: str = args.format
    invert: bool = args.invert
    tables = invs[0].is_table
    multi = len(invs) > 1
    if args.annotate:
        if multi:
            raise error("--annotate takes one input file")
        if fmt != "text" or args.count or invert:
            raise error("--annotate writes the input with a match column: it does "
                        "not combine with --format, --count or --invert")
    ds = opened.dataset
    with_records = ds is not None and fmt != "text" and not args.count \
        and not args.annotate
    target = ds if ds is not None else opened.index

    def matcher_for(_inv: Inventory) -> KeyMatcher:
        return KeyMatcher(target, want_records=with_records, only=only,
                          exclude=exclude, threads=args.threads)

    jobs = args.jobs or default_jobs()
    # Text lines printed as text (or only counted): selected in C, chunk by
    # chunk, without per-line work here (see _inventory.match_inventory).
    render = None
    if not tables and not args.annotate and (fmt == "text" or args.count):
        render = "count" if args.count else "misses" if invert else "hits"
    pieces = match_inventory(
        matcher_for, invs, jobs=jobs, skip_invalid=args.skip_invalid,
        chunk_size=args.chunk_size, recycle=True, render=render,
        whole_rows=tables and (args.annotate or (fmt == "text" and not args.count)),
    )
    out = ctx.out
    total = InventoryStats()
    where = "row" if tables else "line"
    if fmt == "csv" and not args.count:
        cols = (["file"] if multi else []) + [where, "digest"] \
            + ([] if tables else ["text"]) + (["record", "labels"] if with_records
                                               else [])
        out.write((",".join(cols) + "\n").encode())
    header_done = False
    for piece in pieces:
        total.add(piece)
        if piece.hits:
            ctx.found = True
        if args.count:
            continue
        if args.annotate:
            out.write(_annotated(piece, header=not header_done))
            header_done = True
            continue
        if piece.rendered is not None:
            if multi and piece.rendered:
                prefix = piece.inventory.name.encode("utf-8", "surrogateescape") + b":"
                out.write(prefix + bytes(piece.rendered[:-1]).replace(
                    b"\n", b"\n" + prefix) + b"\n")
            else:
                out.write(piece.rendered)
            continue
        sel = piece.select(invert)
        if sel.size == 0:
            continue
        name = piece.inventory.name
        if fmt == "text":
            if tables:
                from hashlookup.match.tables import render_rows

                out.write(render_rows(piece, piece.positions(sel), header=False,
                                      prefix=f"{name}:" if multi else ""))
                continue
            lines = piece.lines(sel)
            if multi:
                prefix = name.encode("utf-8", "surrogateescape") + b":"
                lines = [prefix + line for line in lines]
            lines.append(b"")
            out.write(b"\n".join(lines))
            continue
        digests = piece.hex_digests(sel)
        numbers = piece.number_list(sel)
        extras: list[str] | None = None
        if with_records:
            assert piece.record_ids is not None
            rids = piece.record_ids[sel].tolist()
            labels = record_labels(ds, piece.record_ids[sel])
            if fmt == "jsonl":
                extras = [f', "record": {r if r >= 0 else "null"}, "labels": '
                          f"{json.dumps(list(ls), ensure_ascii=False)}"
                          for r, ls in zip(rids, labels, strict=True)]
            else:
                extras = [f",{r if r >= 0 else ''},{_csv_field(';'.join(ls))}"
                          for r, ls in zip(rids, labels, strict=True)]
        if not tables and not multi:  # the format from before inventories
            texts = [line.decode("utf-8", "surrogateescape")
                     for line in piece.lines(sel)]
            if fmt == "jsonl":
                out.write(_jsonl_matches(numbers, digests, texts, extras))
            else:
                out.write(_csv_matches(numbers, digests, texts, extras))
            continue
        texts = [line.decode("utf-8", "surrogateescape")
                 for line in piece.lines(sel)] if not tables else None
        out.write(_records(fmt, name if multi else None, where, numbers, digests,
                           texts, extras))
    if args.annotate and not header_done and tables:
        # no piece at all (a header-only CSV): still write the header
        out.write(_annotated_header(invs[0]))
    return total


def _records(fmt: str, name: str | None, where: str, numbers: list[int],
             digests: list[str], texts: list[str] | None,
             extras: list[str] | None) -> bytes:
    """jsonl objects / csv rows with a file member (several inputs) and/or a
    row number (tables)."""
    from hashlookup.cli import _csv_field, _json_str

    tails = extras if extras is not None else [""] * len(numbers)
    parts = []
    if fmt == "jsonl":
        head = f'{{"file": {_json_str(name)}, ' if name is not None else "{"
        for i, (n, d, x) in enumerate(zip(numbers, digests, tails, strict=True)):
            text = f', "text": {_json_str(texts[i])}' if texts is not None else ""
            parts.append(f'{head}"{where}": {n}, "digest": "{d}"{text}{x}}}\n')
    else:
        head = f"{_csv_field(name)}," if name is not None else ""
        for i, (n, d, x) in enumerate(zip(numbers, digests, tails, strict=True)):
            text = f",{_csv_field(texts[i])}" if texts is not None else ""
            parts.append(f"{head}{n},{d}{text}{x}\n")
    return "".join(parts).encode("utf-8", "surrogateescape")


def _annotated_header(inv: Inventory) -> bytes:
    from hashlookup.match.tables import csv_header

    if inv.kind == "parquet":
        import pyarrow.parquet as pq

        names = pq.ParquetFile(inv.path).schema_arrow.names
    else:
        names = csv_header(inv)
    delim = inv.delimiter if inv.kind in ("csv", "tsv") else ","
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, delimiter=delim or ",", lineterminator="\n").writerow(
        [*names, "match"])
    return buf.getvalue().encode("utf-8", "surrogateescape")


def _annotated(piece: Piece, header: bool) -> bytes:
    """Every line (text) or row (table) of the piece with its match value:
    ``true``/``false`` for digests, empty for empty or invalid (skipped) cells;
    text lines without a digest (blank, comments, skipped) are copied as-is."""
    n_rows = piece.units
    if piece.inventory.is_table:
        from hashlookup.match.tables import render_rows

        values = np.full(n_rows, "", dtype=object)
        pos = piece.positions()
        values[pos] = np.where(piece.found, "true", "false")
        return render_rows(piece, np.arange(n_rows), header=header,
                           extra={"match": values.tolist()})
    if piece.text is None or piece.nbytes == 0:
        return b""
    lines = bytes(piece.text[:piece.nbytes]).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    rel = piece.positions().tolist()
    for i, hit in zip(rel, piece.found.tolist(), strict=True):
        line = lines[i]
        if line.endswith(b"\r"):
            line = line[:-1]
        lines[i] = line + (b"\ttrue" if hit else b"\tfalse")
    lines.append(b"")
    return b"\n".join(lines)
