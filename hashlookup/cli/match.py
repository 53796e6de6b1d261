"""``hashlookup match``: inventories (text, CSV/TSV, Parquet) against a dataset.

The work is done by ``hashlookup.match.inventory.match_inventory`` (pieces decoded
and looked up on a thread pool, returned in input order); this module turns
the pieces into output: hit lines/rows as text, JSON lines or CSV, the input
annotated with a ``match`` column, or a count.  With ``--workers``/
``--scheduler`` the inventory is matched on Dask instead
(``hashlookup.cli.match_dask``).
"""

from __future__ import annotations

import os
import stat
import sys

from hashlookup.cli._common import EXIT_CLEAN, EXIT_FOUND, PROG, CLIError, Context
from hashlookup.cli._inputs import refuse_binary_text_input
from hashlookup.cli._near import (
    add_match_near_options,
    refuse_pdq_column,
    run_pdq_match,
)
from hashlookup.cli._open import Opened
from hashlookup.cli._options import (
    add_filter_options,
    add_format,
    add_lookup_threads,
    add_path,
    add_verify_key,
    int_arg,
    label_options,
)
from hashlookup.cli._output import csv_field, csv_matches, jsonl_matches, match_records
from hashlookup.match.inventory import Inventory, InventoryStats, Piece, match_inventory
from hashlookup.match.keys import KeyMatcher, record_labels

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    import numpy as np
else:
    from hashlookup._lazy import numpy as np

DESCRIPTION = (
    "Stream inventories of digests (hex digests one per line, md5sum/sha1sum/"
    "sha256sum output, or a named column of CSV/TSV/Parquet files) and print "
    "the lines or rows whose digest is in the dataset, file by file in input "
    "order. The first digest's length picks the md5, sha1 or sha256 table. "
    "Exit 1 if any digest was found (also with --invert/--count), 0 if "
    "none, 2 on error."
)

#: Exit status of match, shown in its --help.
EXIT_STATUS = (
    "Exit status: 0 no digest found, 1 at least one found (also with "
    "--invert and --count), 2 error (one line on stderr; with --skip-invalid "
    "invalid lines are no error: their number is reported), 130 interrupted."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``match``."""
    add_path(p)
    p.add_argument(
        "files",
        nargs="*",
        metavar="INPUT",
        help="digest lists, .csv/.tsv or .parquet files (none or '-': standard "
        "input, text); several are matched in parallel (--jobs)",
    )
    add_format(
        p,
        "text: the input lines (CSV rows for tables); jsonl: {line|row, "
        "digest[, text, record, labels]} objects; csv: the same columns; a file "
        "member/column is added with several inputs (default: text)",
    )
    p.add_argument(
        "-c",
        "--count",
        action="store_true",
        help="print only the number of matching (or with --invert, non-matching) lines",
    )
    p.add_argument(
        "-v",
        "--invert",
        action="store_true",
        help="print the lines whose digest is NOT in the dataset",
    )
    p.add_argument(
        "-n",
        "--line-number",
        action="store_true",
        help="text output of digest lists: prefix each line with its line "
        "number and ':' (as grep -n; after FILE: with several inputs)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip invalid lines instead of failing; the number skipped in "
        "each input is reported on stderr",
    )
    p.add_argument(
        "--attributes",
        action="store_true",
        help="jsonl and csv output of a dataset: each hit's record attributes "
        "(jsonl: an 'attributes' object; csv: an 'attributes' column holding "
        "a JSON object)",
    )
    add_filter_options(p)
    add_lookup_threads(p)
    p.add_argument(
        "--chunk-size",
        type=int_arg(1),
        default=None,
        metavar="BYTES",
        help="input read size (default: 4 MiB)",
    )
    _add_inventory_options(p)
    add_match_near_options(p)
    add_verify_key(p)


def _add_inventory_options(p: argparse.ArgumentParser) -> None:
    """CSV/Parquet inventories, parallelism and Dask."""
    p.add_argument(
        "--column",
        metavar="NAME",
        default=None,
        help="column holding the digests (CSV/TSV/Parquet inputs)",
    )
    p.add_argument(
        "--input-format",
        choices=("auto", "text", "csv", "tsv", "parquet"),
        default="auto",
        help="input kind (default: from the extension: .csv, .tsv/.tab, "
        ".parquet/.pq; else text, or csv when --column is given)",
    )
    p.add_argument(
        "--delimiter",
        metavar="CHAR",
        default=None,
        help="CSV field delimiter (default: ',' or a tab for .tsv)",
    )
    p.add_argument(
        "--annotate",
        action="store_true",
        help="write every input line/row with a match column (true/false) "
        "instead of the hits",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int_arg(0),
        default=0,
        metavar="N",
        help="threads decoding and looking up pieces of the inputs "
        "(0: one per core, at most 8; default: 0)",
    )
    p.add_argument(
        "--workers",
        type=int_arg(1),
        default=None,
        metavar="N",
        help="match on a local Dask cluster of N worker processes "
        "(needs hashlookup[dask])",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="match on the Dask cluster at ADDRESS; DATASET and the inputs "
        "must be readable at the same paths on every worker",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Match and write the hits (or the count, or the annotated input)."""
    if args.chunk_size is None:
        from hashlookup.match.keys import DEFAULT_CHUNK_SIZE

        args.chunk_size = DEFAULT_CHUNK_SIZE
    with Opened(args.path, args.verify_key) as opened:
        only, exclude = opened.label_filters(*label_options(args))
        refuse_pdq_column(args)
        if args.pdq:
            found = run_pdq_match(args, ctx, opened, only, exclude)
        elif args.workers is not None or args.scheduler is not None:
            from hashlookup.cli.match_dask import run_dask_match

            if args.attributes:
                raise CLIError(
                    "--attributes is not available with --workers/--scheduler "
                    "(Dask runs): match on this machine to show attributes"
                )

            found = run_dask_match(args, ctx, only, exclude)
        else:
            stats = run_match(args, ctx, opened, only, exclude)
            if args.count:
                ctx.out.line(str(stats.misses if args.invert else stats.hits))
            found = stats.hits > 0
    ctx.found = found
    return EXIT_FOUND if found else EXIT_CLEAN


_SNIFF = 4096  # bytes of each text input checked for binary content


def default_jobs() -> int:
    """Worker threads when --jobs is 0: the usable cores (at most 8: the
    batch kernel is memory bound beyond that)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def inventories_from_args(args: argparse.Namespace) -> list[Inventory]:
    """The inputs of ``match`` (standard input when none), checked."""
    files = list(args.files) or ["-"]
    invs = []
    for path in files:
        kind = args.input_format
        if path == "-":
            if kind not in ("auto", "text") or args.column is not None:
                raise CLIError(
                    "standard input is read as a text digest list: CSV/TSV "
                    "and Parquet inputs (--column) must be files"
                )
            stream = sys.stdin.buffer
            peek = getattr(stream, "peek", None)
            if peek is not None:
                refuse_binary_text_input("-", peek(_SNIFF)[:_SNIFF])
            invs.append(Inventory("-", "text", stream=stream))
            continue
        inv = Inventory(path, kind, column=args.column, delimiter=args.delimiter)
        if inv.kind == "text" and os.path.isfile(path):  # a pipe is read once
            with open(path, "rb") as f:
                refuse_binary_text_input(path, f.read(_SNIFF))
        invs.append(inv)
    if len({inv.is_table for inv in invs}) > 1:
        raise CLIError(
            "text digest lists and CSV/Parquet inputs cannot be mixed in "
            "one run (their outputs have different columns)"
        )
    if sum(1 for inv in invs if inv.path == "-") > 1:
        raise CLIError("standard input ('-') can be read only once")
    return invs


def _one_piece(invs: list[Inventory], chunk_size: int) -> bool:
    """Whether the inputs are one text file of at most one chunk (a piece)."""
    if len(invs) != 1 or invs[0].path == "-" or invs[0].kind != "text":
        return False
    try:
        st = os.stat(invs[0].path)
    except OSError:
        return False  # the reader reports it
    return stat.S_ISREG(st.st_mode) and st.st_size <= chunk_size


def run_match(
    args: argparse.Namespace,
    ctx: Context,
    opened: Opened,
    only: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
) -> InventoryStats:
    """Match the inventories of ``args`` against ``opened`` on this machine
    and write the output to ``ctx.out``; returns the totals."""
    invs = inventories_from_args(args)
    fmt: str = args.format
    invert: bool = args.invert
    tables = invs[0].is_table
    multi = len(invs) > 1
    numbered = bool(getattr(args, "line_number", False))
    if numbered and (tables or fmt != "text" or args.count or args.annotate):
        raise CLIError(
            "-n numbers the lines of text output of digest lists (jsonl and "
            "csv output carry the line or row number already); it does not "
            "combine with CSV/Parquet inputs, --count or --annotate"
        )
    if args.annotate:
        if multi:
            raise CLIError("--annotate takes one input file")
        if fmt != "text" or args.count or invert:
            raise CLIError(
                "--annotate writes the input with a match column: it does "
                "not combine with --format, --count or --invert"
            )
    ds = opened.dataset
    # Index files have no records: their hits are written as before datasets.
    with_records = (
        opened.is_dataset and fmt != "text" and not args.count and not args.annotate
    )
    show_attributes = bool(getattr(args, "attributes", False))
    if show_attributes and (fmt == "text" or args.count or args.annotate):
        raise CLIError(
            "--attributes adds the records' attributes to jsonl and csv output; "
            "it does not combine with text output, --count or --annotate"
        )
    show_attributes = show_attributes and with_records
    target = opened.matcher_target

    def matcher_for(_inv: Inventory) -> KeyMatcher:
        return KeyMatcher(
            target,
            want_records=with_records,
            only=only,
            exclude=exclude,
            threads=args.threads,
        )

    jobs = args.jobs or default_jobs()
    if jobs > 1 and _one_piece(invs, args.chunk_size):
        # One piece of work: a thread pool could only add start-up (its
        # import brings logging), never share the work.
        jobs = 1
    # Text lines printed as text (or only counted): selected in C, chunk by
    # chunk, without per-line work here (see match_inventory).
    render = None
    if (
        not tables
        and not args.annotate
        and not numbered
        and (fmt == "text" or args.count)
    ):
        render = "count" if args.count else "misses" if invert else "hits"
    pieces = match_inventory(
        matcher_for,
        invs,
        jobs=jobs,
        skip_invalid=args.skip_invalid,
        chunk_size=args.chunk_size,
        recycle=True,
        render=render,
        whole_rows=tables and (args.annotate or (fmt == "text" and not args.count)),
    )
    out = ctx.out
    total = InventoryStats()
    where = "row" if tables else "line"
    if fmt == "csv" and not args.count:
        cols = (
            (["file"] if multi else [])
            + [where, "digest"]
            + ([] if tables else ["text"])
            + (["record", "labels"] if with_records else [])
            + (["attributes"] if show_attributes else [])
        )
        out.write((",".join(cols) + "\n").encode())
    header_done = False
    skipped: dict[str, int] = {}
    for piece in pieces:
        total.add(piece)
        if piece.invalid:
            name = piece.inventory.name
            skipped[name] = skipped.get(name, 0) + piece.invalid
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
                out.write(
                    prefix
                    + bytes(piece.rendered[:-1]).replace(b"\n", b"\n" + prefix)
                    + b"\n"
                )
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

                out.write(
                    render_rows(
                        piece,
                        piece.positions(sel),
                        header=False,
                        prefix=f"{name}:" if multi else "",
                    )
                )
                continue
            lines = piece.lines(sel)
            if numbered:
                head = name.encode("utf-8", "surrogateescape") + b":" if multi else b""
                out.write(
                    b"".join(
                        b"%s%d:%s\n" % (head, n, line)
                        for n, line in zip(piece.number_list(sel), lines, strict=True)
                    )
                )
            elif multi:
                prefix = name.encode("utf-8", "surrogateescape") + b":"
                out.write(b"".join(prefix + line + b"\n" for line in lines))
            else:
                lines.append(bytearray())
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
                import json  # here: text output and counts never need it

                extras = [
                    f', "record": {r if r >= 0 else "null"}, "labels": '
                    f"{json.dumps(list(ls), ensure_ascii=False)}"
                    for r, ls in zip(rids, labels, strict=True)
                ]
            else:
                extras = [
                    f",{r if r >= 0 else ''},{csv_field(';'.join(ls))}"
                    for r, ls in zip(rids, labels, strict=True)
                ]
            if show_attributes:
                import json

                from hashlookup.store.attributes import attributes_of

                shown = [
                    json.dumps(dict(a), ensure_ascii=False)
                    for a in attributes_of(ds, rids)
                ]
                extras = [
                    e
                    + (f', "attributes": {t}' if fmt == "jsonl" else f",{csv_field(t)}")
                    for e, t in zip(extras, shown, strict=True)
                ]
        if not tables and not multi:  # the format from before inventories
            texts = [
                line.decode("utf-8", "surrogateescape") for line in piece.lines(sel)
            ]
            if fmt == "jsonl":
                out.write(jsonl_matches(numbers, digests, texts, extras))
            else:
                out.write(csv_matches(numbers, digests, texts, extras))
            continue
        row_texts = (
            [line.decode("utf-8", "surrogateescape") for line in piece.lines(sel)]
            if not tables
            else None
        )
        out.write(
            match_records(
                fmt,
                name if multi else None,
                where,
                numbers,
                digests,
                row_texts,
                extras,
            )
        )
    if args.annotate and not header_done and tables:
        # no piece at all (a header-only CSV): still write the header
        out.write(_annotated_header(invs[0]))
    _report_skipped(skipped, where)
    return total


def _report_skipped(skipped: dict[str, int], where: str) -> None:
    """One line on stderr per input with lines (rows) skipped by
    --skip-invalid, as build reports its count: never silently dropped."""
    for name, n in skipped.items():
        shown = "standard input" if name == "<stdin>" else name
        plural = "" if n == 1 else "s"
        sys.stderr.write(
            f"{PROG}: {shown}: skipped {n:,} invalid {where}{plural} (--skip-invalid)\n"
        )


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
        [*names, "match"]
    )
    return buf.getvalue().encode("utf-8", "surrogateescape")


def _annotated(piece: Piece, header: bool) -> bytes:
    """Every line (text) or row (table) of the piece with its match value:
    ``true``/``false`` for digests, empty for empty or invalid (skipped) cells;
    text lines without a digest (blank, comments, skipped) are copied as-is."""
    n_rows = piece.units
    assert piece.found is not None  # looked up, not rendered
    if piece.inventory.is_table:
        from hashlookup.match.tables import render_rows

        values = np.full(n_rows, "", dtype=object)
        pos = piece.positions()
        values[pos] = np.where(piece.found, "true", "false")
        return render_rows(
            piece, np.arange(n_rows), header=header, extra={"match": values.tolist()}
        )
    if piece.text is None or piece.nbytes == 0:
        return b""
    lines = bytes(piece.text[: piece.nbytes]).split(b"\n")
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
